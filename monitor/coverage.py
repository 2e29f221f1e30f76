"""How far the ingested data reaches: the week to judge by default, and weeks no source reaches (issue 11).

A monitor must never read missing data as quiet. The rules, per source in use:

* its data **covers** every day up to its last day: the date of its last event, or the last day
  of its last weekly count row (a pre-aggregated count describes a whole week);
* a week is **complete** in the data when a source covers the week's last day: its last event
  is on or after that day, or it has data in a later week. Data that stops on a Saturday
  completes the week before (with Monday weeks), not its own;
* the data **reaches** a week when a source has data on or after the week's first day.

Without --week (--to), `check`, `report` and `backtest` judge the latest complete week of any
source in use (`choose_week`), never one after the clock's last complete week. A week that no
source in use reaches is "no data": the commands say so and exit 6 (`NoDataError`) instead of
calling every series quiet, and `run` records it `no-data`, so the scheduler runs it again once a
late file is in. In a week some sources reach and others do not, the series that count only the
stale sources have no data (`series_without_data`): they are held, not quiet.

The sources in use are those named by the series definitions' `filters.source`, or every source
in the database as soon as one definition counts them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from monitor.config import Config
from monitor.errors import MonitorError
from monitor.weeks import last_complete_week, last_full_week, week_label

if TYPE_CHECKING:
    from monitor.store_protocol import Storage


@dataclass(frozen=True)
class SourceReach:
    """How far one source's data goes."""

    source: str
    last_event: date | None = None  # its latest incident
    last_count_week: date | None = None  # the week start of its latest weekly count row
    last_day: date | None = None  # the last day its data covers
    last_week: date | None = None  # the start of the last week its data completes

    def reaches(self, week: date) -> bool:
        """Whether the source has data on or after the first day of `week` (a week start)."""
        return self.last_day is not None and self.last_day >= week

    def describe(self) -> str:
        """'acled: last event 2023-03-31', 'counts: weekly counts to 2023-W13', 'acme: no data ingested'."""
        parts = []
        if self.last_event:
            parts.append(f"last event {self.last_event.isoformat()}")
        if self.last_count_week:
            parts.append(f"weekly counts to {week_label(self.last_count_week)}")
        return f"{self.source}: {' and '.join(parts) or 'no data ingested'}"


def source_reach(store: Storage, *, start: str = "monday", stats: dict | None = None) -> dict[str, SourceReach]:
    """Every source in the database and how far its data goes (`store.stats()`, not bounded by a week; pass
    `stats` to reuse one already read)."""
    out = {}
    for name, entry in sorted((stats if stats is not None else store.stats())["sources"].items()):
        event, counted = entry.get("latest_incident_date"), entry.get("latest_count_week")
        days = [d for d in (event, counted + timedelta(days=6) if counted else None) if d is not None]
        last_day = max(days) if days else None
        out[name] = SourceReach(name, event, counted, last_day, last_full_week(last_day, start=start) if last_day else None)
    return out


def sources_in_use(config: Config, reach: dict[str, SourceReach]) -> tuple[SourceReach, ...]:
    """The sources the configured series count, by name (a named source with no data is listed as such)."""
    named: set[str] = set()
    for definition in config.series:
        if not definition.filters.source:
            return tuple(reach.values())
        named.update(definition.filters.source)
    return tuple(reach.get(name) or SourceReach(name) for name in sorted(named))


@dataclass(frozen=True)
class Coverage:
    """A week to judge and how far the data of the sources in use reaches it."""

    week: date  # the week's start
    asked: bool  # named by --week / --to or by the scheduler; False: chosen by `choose_week`
    last_complete: date  # the clock's last complete week
    latest: date | None  # the latest week a source in use completes, never after last_complete
    sources: tuple[SourceReach, ...]  # the sources in use
    monitored: bool = True  # some series are configured (with none, nothing is judged and nothing is missing)

    @property
    def reached(self) -> bool:
        """Whether a source in use has data on or after the week's first day."""
        return not self.monitored or any(s.reaches(self.week) for s in self.sources)

    def describe(self) -> str:
        """Each source in use and how far its data goes, e.g. 'acled: last event 2023-03-31; ucdp: ...'."""
        if not self.monitored:
            return "no [[series]] configured, so no source is in use"
        return "; ".join(s.describe() for s in self.sources) or "no data ingested"

    def announce(self, doing: str) -> str:
        """The line naming the week chosen without --week, e.g. `checking 2023-W13: the latest week with data (...)`."""
        label = week_label(self.week)
        if self.week == self.last_complete:
            return f"{doing} {label}: the last complete week ({self.describe()})"
        return (f"{doing} {label}: the latest week with data ({self.describe()}; "
                f"the last complete week is {week_label(self.last_complete)})")  # fmt: skip

    def no_data_message(self, *, option: str = "--week") -> str:
        """Why the week cannot be judged and what to do: ingest newer data, or judge the latest week with data."""
        label = week_label(self.week)
        if self.latest is None:
            return (f"no data for {label}: nothing ingested reaches it ({self.describe()}); ingest files first "
                    "(`monitor ingest FILE...`, or the inbox), then run the week again")  # fmt: skip
        return (f"no data for {label}: no source's data reaches it ({self.describe()}); ingest newer data, "
                f"or pass {option} {week_label(self.latest)}, the latest week with data")  # fmt: skip


def choose_week(config: Config, store: Storage, *, week: date | None, now: datetime) -> Coverage:
    """The week to judge and how far the data reaches it: `week` if given (refused if it has not ended
    yet), else the latest week a source in use completes, or the clock's last complete week if that
    is earlier (or nothing is ingested)."""
    last_complete = select_week(config, week=None, now=now)
    sources = sources_in_use(config, source_reach(store, start=config.week.start))
    weeks = [s.last_week for s in sources if s.last_week is not None]
    latest = min(max(weeks), last_complete) if weeks else None
    chosen = select_week(config, week=week, now=now) if week is not None else (latest or last_complete)
    return Coverage(week=chosen, asked=week is not None, last_complete=last_complete, latest=latest, sources=sources,
                    monitored=bool(config.series))  # fmt: skip


def series_without_data(config: Config, keys_and_definitions, coverage: Coverage) -> dict[str, str]:
    """Series with no data in the coverage's week: no source they count (their definition's `filters.source`,
    or every source) reaches it. Returns series key -> how far their sources go (for the note)."""
    everything = {s.source: s for s in coverage.sources}
    out = {}
    for key, definition in keys_and_definitions:
        wanted = definition.filters.source
        mine = [everything.get(name) or SourceReach(name) for name in wanted] if wanted else list(everything.values())
        if not any(s.reaches(coverage.week) for s in mine):
            out[key] = "; ".join(s.describe() for s in mine) or "no data ingested"
    return out


def lag_weeks(last_week: date | None, last_complete: date) -> int | None:
    """Weeks from a source's last complete week to the clock's last complete week (0: up to date)."""
    return None if last_week is None else max((last_complete - last_week).days // 7, 0)


def select_week(config: Config, *, week: date | None, now: datetime) -> date:
    """The week to report on: the given one, else the last week that has ended at `now`.

    `now` is read in the schedule's time zone, so a Monday-morning run in Tokyo reports on
    the week that has just ended there. A week that has not ended yet is refused: its
    counts would be partial and every series would look quiet.
    """
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(config.schedule.timezone)) if now.tzinfo else now
    last = last_complete_week(local, start=config.week.start)
    if week is None:
        return last
    if week > last:
        raise MonitorError(
            f"week {week_label(week)} has not ended yet ({local:%Y-%m-%d %H:%M} {config.schedule.timezone}); "
            f"the last complete week is {week_label(last)}"
        )
    return week
