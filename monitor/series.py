"""Weeks and weekly series: week arithmetic, filters, aggregation, zero-fill.

A week starts on the configured weekday (Monday by default). Its label is the ISO
week of its middle day (start + 3 days), which for Monday weeks is exactly the ISO
week (`2023-W07`) and gives every other week start one unambiguous label too.
"""

from __future__ import annotations

import difflib
import re
from datetime import date, timedelta
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from monitor.numbers import fmt_num, is_missing
from monitor.types import RunResult, SeriesProblem, SeriesResult, WeekFigures, WeeklySeries
from monitor.weeks import (  # noqa: F401
    WEEKDAYS,
    last_complete_week,
    last_full_week,
    parse_week,
    week_label,
    week_start_of,
)

# (the week arithmetic is in monitor.weeks; older callers import it from here)

def week_starts(dates: pd.Series, *, start: str = "monday") -> pd.Series:
    """Week start (datetime64) of each date in a datetime64 Series (`weeks.week_start_of`, vectorised)."""
    offset = (dates.dt.day_of_week - WEEKDAYS.index(start)) % 7
    return dates.dt.normalize() - pd.to_timedelta(offset, unit="D")


FILTER_COLUMNS = ("source", "country", "admin1", "admin2", "event_type", "sub_event_type")


class FrameFilter:
    """The [[series]] filters applied to one frame of records, many definitions at a time.

    Each column is factorized once (its distinct values and a code per row); a filter's mask is
    then a lookup table over the distinct values indexed by the codes, and the distinct values a
    column holds are known without another pass. Five hundred definitions cost five hundred
    lookups, not five hundred `isin` scans of every row (which took minutes for `check`).
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._factors: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _factor(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        got = self._factors.get(column)
        if got is None:
            codes, uniques = pd.factorize(self.frame[column], use_na_sentinel=True)  # missing: code -1
            got = self._factors[column] = (codes, np.asarray(uniques, dtype=object))
        return got

    def _lookup(self, column: str, hit) -> np.ndarray:
        """Rows whose value in `column` satisfies `hit(value)` (missing values are "")."""
        codes, uniques = self._factor(column)
        table = np.zeros(len(uniques) + 1, dtype=bool)  # the last entry is code -1: missing
        table[:-1] = [hit(v) for v in uniques]
        table[-1] = hit("")
        return table[codes]

    def mask(self, filters) -> np.ndarray:
        """Rows kept by a SeriesFilters, as a boolean array (the rule of `filter_mask`)."""
        # masks are not kept: one per definition over a million cells would hold gigabytes
        mask = np.ones(len(self.frame), dtype=bool)
        for column in FILTER_COLUMNS:
            wanted = set(getattr(filters, column))
            if wanted:
                codes, uniques = self._factor(column)
                table = np.zeros(len(uniques) + 1, dtype=bool)  # a missing value matches no wanted value
                table[:-1] = [v in wanted for v in uniques]
                mask &= table[codes]
        if filters.actor or filters.actor_contains:
            hit = np.zeros(len(self.frame), dtype=bool)
            for column in ("actor1", "actor2"):
                hit |= self._lookup(column, lambda name: _actor_named(name, filters))
            mask &= hit
        return mask

    def values(self, columns: Sequence[str]) -> set[str]:
        """The distinct non-empty values of these columns."""
        out: set[str] = set()
        for column in columns:
            if column in self.frame:
                out |= {str(v) for v in self._factor(column)[1]}
        out.discard("")
        return out


def filter_mask(frame: pd.DataFrame, filters) -> pd.Series:
    """Rows of an incident frame kept by a SeriesFilters (for many definitions over one frame, use FrameFilter)."""
    return pd.Series(FrameFilter(frame).mask(filters), index=frame.index)


def _actor_named(name: str, filters) -> bool:
    """An actor name named exactly in `actor` or containing one of `actor_contains`, in any letter case
    (either suffices: ACLED writes 'Islamic State (Syria)' where UCDP writes 'IS')."""
    if name in filters.actor:
        return True
    upper = name.upper()
    return any(needle.upper() in upper for needle in filters.actor_contains)


def _actor_matches(names: pd.Series, filters) -> pd.Series:
    """`_actor_named` for each of a Series of names ("" for none)."""
    named = {v: _actor_named(v, filters) for v in names.unique()}
    return names.map(named).astype(bool)


def _explode_actors(frame: pd.DataFrame, filters) -> pd.DataFrame:
    """One row per (incident, actor) so a series can be cut by actor.

    An incident counts once for each distinct actor it names; when the definition
    filters on actor names, only the matching actors become groups.
    """
    parts = []
    for column in ("actor1", "actor2"):
        part = frame.assign(actor=frame[column].fillna(""))
        parts.append(part)
    both = pd.concat(parts, ignore_index=False)
    both = both[both["actor"] != ""]
    both = both.reset_index().drop_duplicates(subset=["index", "actor"]).set_index("index")
    if filters.actor or filters.actor_contains:
        both = both[_actor_matches(both["actor"], filters).to_numpy()]
    return both


#: Prefix of a series filter that names one series exactly by its key (`key:is_attacks/admin1=Homs`), as the
#: digest's silence commands and `check --series` accept it.
KEY_PREFIX = "key:"


def shell_quote(text: str) -> str:
    """`text` as one POSIX shell word, always in single quotes (a key may hold spaces, quotes, `$` or `;`):
    what shlex.quote gives, also for text that would be safe bare, so every printed key reads alike."""
    return "'" + text.replace("'", "'\"'\"'") + "'" if text else "''"


def series_matches(text: str, series: WeeklySeries) -> bool:
    """A series filter: "key:<series key>" matches that series only; any other text matches series whose key
    or name ('Islamic State events — Homs', or without the dash) contains it, case-insensitive; empty matches all."""
    if text.startswith(KEY_PREFIX):
        return series.key == text[len(KEY_PREFIX):]
    needle = text.strip().lower()
    title = series.title or series.definition
    names = (series.key, f"{title} — {series.label}", f"{title} {series.label}")
    return not needle or any(needle in name.lower() for name in names)


def nearest(value: str, candidates: Iterable[str], *, n: int = 3) -> list[str]:
    """Up to `n` candidates closest to `value` (difflib, case-insensitive), then those containing it or
    contained in it ('ISIS' finds 'IS'); [] if none is close."""
    pool = sorted({str(c) for c in candidates if str(c)})
    lower = {c.lower(): c for c in pool}
    wanted = value.strip().lower()
    if wanted.startswith(KEY_PREFIX):
        wanted = wanted[len(KEY_PREFIX):]
    close = [lower[c] for c in difflib.get_close_matches(wanted, list(lower), n=n, cutoff=0.6)]
    if wanted:
        close += [c for c in pool if c not in close and (wanted in c.lower() or c.lower() in wanted)]
    return close[:n]


def nearest_keys(text: str, series: Iterable[WeeklySeries], *, n: int = 5) -> list[str]:
    """The keys of the (up to `n`) series closest to a --series text that matched none, closest first; []
    if none is close. Text shaped like a key (`is_attacks/admin1=Hom`) is compared label value by label
    value within its definition, so one letter off names that series rather than every key sharing the
    prefix; other text is compared with each series' name and label values (difflib ratio, case-insensitive)."""
    wanted = text.strip().lower()
    if wanted.startswith(KEY_PREFIX):
        wanted = wanted[len(KEY_PREFIX):]
    ratio = lambda a, b: difflib.SequenceMatcher(None, a, b.lower()).ratio()  # noqa: E731
    scored = []
    for s in series:
        values = " · ".join(v for _, v in s.labels) or "total"
        if "/" in wanted:
            name, _, rest = wanted.partition("/")
            typed = " · ".join(unescape_label(part.partition("=")[2] or part) for part in rest.split("|"))
            score = 0.25 * ratio(name, s.definition) + 0.75 * ratio(typed, values)
        else:
            title = s.title or s.definition
            score = max(ratio(wanted, name) for name in (s.key, values, f"{title} — {s.label}", *(v for _, v in s.labels)))
        scored.append((score, s.key))
    best = max((score for score, _ in scored), default=0.0)
    close = sorted((-score, key) for score, key in scored if score >= max(0.6, best - 0.1))
    return [key for _, key in close[:n]]


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)


def definition_problems(records: pd.DataFrame, definitions: Iterable, built: Iterable[WeeklySeries], *, week: str = "") -> list[SeriesProblem]:
    """Why each definition that produced no series produced none: the filter values that match no
    record (with the nearest values in the data), the filters that match only apart, or groups all
    under `min_events`.

    records: the frame `build_series` read (`combined_frame` / `cells_frame`), already cut at the week.
    built: the series `build_series` made from it. A definition with series is not questioned: a filter
    list means "any of", so a value absent from the data is allowed (the example config lists ACLED's
    and UCDP's event types side by side and a database may hold only one source).
    An empty `records` (nothing ingested up to the week) gives no problems: that is reported as no data.
    """
    made = {s.definition for s in built}
    if records.empty:
        return []
    upto = f" up to {week}" if week else ""
    out = []
    index = FrameFilter(records)
    for d in definitions:
        if d.name in made:
            continue
        f = d.filters
        dead: list[SeriesProblem] = []
        # a list means "any of": a filter is at fault when none of its values matches (a value absent from the
        # data beside others that match is allowed, e.g. ACLED's and UCDP's event types side by side)
        for name in ("source", "country", "admin1", "admin2", "event_type", "sub_event_type"):
            wanted = list(getattr(f, name))
            present = index.values((name,))
            if wanted and not present & set(wanted):
                dead.append(_dead(d.name, name, wanted, present, upto))
        if f.actor or f.actor_contains:  # `actor` and `actor_contains`: either suffices, so both are at fault or neither
            names = index.values(("actor1", "actor2"))
            if not names & set(f.actor) and not any(n.lower() in a.lower() for a in names for n in f.actor_contains):
                if f.actor:
                    dead.append(_dead(d.name, "actor", list(f.actor), names, upto))
                if f.actor_contains:
                    dead.append(_dead(d.name, "actor_contains", list(f.actor_contains), names, upto, contains=True))
        if dead:
            out += dead
            continue
        used = [f"{k}={v!r}" for k, v in f.model_dump().items() if v]
        from_filters = records[index.mask(f)] if used else records
        if from_filters.empty:
            out.append(SeriesProblem(d.name, "", (), f"series '{d.name}': its filters {', '.join(used)} each match some "
                                     f"incidents{upto} but never the same ones (every listed condition must hold)"))  # fmt: skip
        else:
            out.append(SeriesProblem(d.name, "", (), f"series '{d.name}': {int(from_filters['events'].sum()):,} events match its "
                                     f"filters{upto}, but no group of {', '.join(d.group_by)} reaches min_events = {d.min_events} "
                                     "and rollup = false (lower min_events or set rollup = true)"))  # fmt: skip
    return out


def _dead(definition: str, name: str, missing: list[str], present: set[str], upto: str, *, contains: bool = False) -> SeriesProblem:
    """A problem naming the filter values that match nothing and, for each, the nearest values in the data."""
    near: list[str] = []
    for value in missing:
        near += [c for c in nearest(value, present) if c not in near]
    verb = "is contained in no actor name" if contains else "matches no incident"
    text = f"series '{definition}': filter {name}={missing!r} {verb}{upto}"
    if near:
        text += f"; nearest values in the data: {_quoted(near)}"
    elif present:
        sample = sorted(present)[:5]
        text += f"; no close value among the data's {len(present):,} ({_quoted(sample)}{', ...' if len(present) > 5 else ''})"
    else:
        text += "; the data has no values in that column"
    return SeriesProblem(definition, name, tuple(missing), text, tuple(near))


#: Characters of a label value that would make a series key ambiguous (issue 12, item 7), percent-encoded
#: in keys as in URLs: `%` itself, `|` between labels and `=` between a dimension and its value. Every
#: other character is kept as it is, so the keys of ordinary labels stay what they always were.
_KEY_ESCAPES = {"%": "%25", "|": "%7C", "=": "%3D"}
_KEY_UNESCAPE = re.compile(r"%(25|7C|3D)", re.IGNORECASE)


def escape_label(value: str) -> str:
    """A label value as written in a series key: `%`, `|` and `=` percent-encoded (`A|B` → `A%7CB`)."""
    return "".join(_KEY_ESCAPES.get(c, c) for c in value)


def unescape_label(text: str) -> str:
    """The label value a series key spells (`A%7CB` → `A|B`); the inverse of `escape_label`."""
    return _KEY_UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def series_key(definition: str, labels: Sequence[tuple[str, str]]) -> str:
    """`is_attacks/admin1=Homs`, or `is_attacks/total` for the roll-up. Label values are escaped
    (`escape_label`), so two different label tuples never share a key: admin1 `A|admin2=B` gives
    `is_attacks/admin1=A%7Cadmin2%3DB`, not the key of admin1 `A` and admin2 `B`."""
    if not labels:
        return f"{definition}/total"
    return definition + "/" + "|".join(f"{k}={escape_label(v)}" for k, v in labels)


def legacy_key_readings(key: str, dimensions: Sequence[str]) -> list[tuple[tuple[str, str], ...]]:
    """Every label tuple a key written before label values were escaped (before schema 0008) may stand for.

    Such a key joined raw values, so `d/admin1=A|admin2=B` is admin1 `A` and admin2 `B`, or admin1
    `A|admin2=B`: each `|` followed by a dimension and `=` may start a new label or continue a value. A
    dimension is used once per key. One reading: the key can be rewritten; several: it is ambiguous;
    none (not a key of labels): []. The roll-up `d/total` reads as ((),).
    """
    _, slash, rest = key.partition("/")
    if not slash or not rest:
        return []
    if rest == "total":
        return [()]
    parts = rest.split("|")
    out: list[tuple[tuple[str, str], ...]] = []

    def walk(i: int, done: tuple[tuple[str, str], ...]) -> None:
        # parts[i] starts a label; it ends before any later part that can start one, or at the end
        dim, sep, value = parts[i].partition("=")
        if not sep or dim not in dimensions or dim in dict(done):
            return
        for j in range(i + 1, len(parts) + 1):
            label = (dim, "|".join([value, *parts[i + 1 : j]]))
            if j == len(parts):
                out.append((*done, label))
            else:
                walk(j, (*done, label))

    walk(0, ())
    return out


def parse_key(key: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(definition, labels) of a series key, the inverse of `series_key`: `is_attacks/admin1=A%7CB` →
    ('is_attacks', (('admin1', 'A|B'),)); labels () for `…/total`. A part without `=` keeps "" as its dimension."""
    definition, _, rest = key.partition("/")
    if rest == "total" or not rest:
        return definition, ()
    labels = []
    for part in rest.split("|"):
        dim, sep, value = part.partition("=")
        labels.append((dim, unescape_label(value)) if sep else ("", unescape_label(part)))
    return definition, tuple(labels)


def combined_frame(incidents: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Incidents and pre-aggregated count rows as one frame of weighted records.

    Each record has the dimension columns, `date`, `events` (1 per incident, `count`
    for a counts row) and `fatalities`.
    """
    inc = pd.DataFrame(
        {
            "source": incidents["source"],
            "date": pd.to_datetime(incidents["event_date"]),
            "country": incidents["country"],
            "admin1": incidents["admin1"],
            "admin2": incidents["admin2"],
            "event_type": incidents["event_type"],
            "sub_event_type": incidents["sub_event_type"],
            "actor1": incidents["actor1"],
            "actor2": incidents["actor2"],
            "events": 1,
            "fatalities": incidents["fatalities"].fillna(0).astype(int),
        }
    )
    if counts is None or counts.empty:
        return inc.reset_index(drop=True)
    return pd.concat([inc, _count_records(counts)], ignore_index=True)


def _count_records(counts: pd.DataFrame) -> pd.DataFrame:
    """Pre-aggregated count rows as weighted records (their actor is actor1)."""
    return pd.DataFrame(
        {
            "source": counts["source"],
            "date": pd.to_datetime(counts["week_start"]),
            "country": counts["country"],
            "admin1": counts["admin1"],
            "admin2": counts["admin2"],
            "event_type": counts["event_type"],
            "sub_event_type": counts["sub_event_type"],
            "actor1": counts["actor"],
            "actor2": "",
            "events": counts["count"].astype(int),
            "fatalities": counts["fatalities"].fillna(0).astype(int),
        }
    )


def cells_frame(cells: pd.DataFrame, counts: pd.DataFrame | None) -> pd.DataFrame:
    """Weekly incident cells (`Store.incident_cells`) and pre-aggregated count rows as one
    frame of weighted records, the input of `build_series` (like `combined_frame`)."""
    if counts is None or counts.empty:
        return cells.reset_index(drop=True)
    return pd.concat([cells, _count_records(counts)], ignore_index=True)


def build_series(
    records: pd.DataFrame,
    definitions: Iterable,
    *,
    week: date,
    week_start: str = "monday",
    detector_of=None,
    starts: dict[str, date] | None = None,
) -> list[WeeklySeries]:
    """Zero-filled weekly series for every definition, group and roll-up, up to `week`.

    records: output of `combined_frame`; rows after the end of `week` are ignored.
    definitions: SeriesDefinition values from the config.
    week: start date of the current (last) week.
    detector_of: callable(definition) -> (detector name, params model); None keeps the
        definition's detector name and its raw params.
    Each group's series starts at its own first week with a record (the roll-up at the
    definition's first), so a source that only begins in 2016, or a category that first
    appears in 2019, is not padded with years of false zeros.
    starts: an earlier first week per definition name (records read for one group only
        still give that group the weeks a full read would).
    """
    week_end = pd.Timestamp(week) + pd.Timedelta(days=7)
    records = records[records["date"] < week_end]
    index = FrameFilter(records)
    out: list[WeeklySeries] = []
    for definition in definitions:
        frame = records[index.mask(definition.filters)]
        if "actor" in definition.group_by:
            frame = _explode_actors(frame, definition.filters)
        if frame.empty:
            continue
        frame = frame.assign(week=week_starts(frame["date"], start=week_start))
        first = frame["week"].min()
        if starts and definition.name in starts:
            first = min(first, pd.Timestamp(starts[definition.name]))
        weeks = pd.date_range(first, pd.Timestamp(week), freq="7D")
        value = "events" if definition.metric == "events" else "fatalities"
        if detector_of is not None:
            detector, params = detector_of(definition)
            params = params.model_dump() if hasattr(params, "model_dump") else dict(params)
        else:
            detector, params = definition.detector, dict(definition.params)
        title = definition.title or definition.name
        # (labels, weekly events, weekly fatalities) of each group: both figures whatever the metric, for the
        # report's "8 events (14 fatalities)"
        groups: list[tuple[tuple[tuple[str, str], ...], np.ndarray, np.ndarray]] = []
        if definition.group_by:
            keyed = frame.assign(**{d: frame[d].fillna("") for d in definition.group_by})  # missing = unknown
            # every group's weekly sums at once (one groupby, not one per group: thousands in a global run)
            sums = keyed.groupby([*definition.group_by, "week"])[["events", "fatalities"]].sum()
            wide = sums["events"].unstack("week", fill_value=0).reindex(columns=weeks, fill_value=0)
            dead = sums["fatalities"].unstack("week", fill_value=0).reindex(index=wide.index, columns=weeks, fill_value=0)
            history_events = keyed.groupby(definition.group_by)["events"].sum().reindex(wide.index).to_numpy()
            for keys, events_row, deaths_row, events in zip(
                wide.index, wide.to_numpy(dtype=float), dead.to_numpy(dtype=float), history_events
            ):
                if events < definition.min_events:
                    continue
                # a group starts at its own first record: a region or category that first appears
                # in 2019 is judged from 2019 on, never against years of zeros it never had. Its first
                # record, not its first death: a fatalities series counts the weeks of attacks that
                # killed no one as zeros it really had
                nonzero = np.flatnonzero(events_row)
                lead = int(nonzero[0]) if nonzero.size else 0
                keys = keys if isinstance(keys, tuple) else (keys,)
                labels = tuple((dim, str(k)) for dim, k in zip(definition.group_by, keys))
                if any(v == "" for _, v in labels):
                    labels = tuple((d, v or "(unknown)") for d, v in labels)
                groups.append((labels, events_row[lead:], deaths_row[lead:]))
        if definition.rollup or not definition.group_by:
            total = frame if "actor" not in definition.group_by else frame[~frame.index.duplicated()]
            sums = total.groupby("week")[["events", "fatalities"]].sum().reindex(weeks, fill_value=0)
            groups.append(((), sums["events"].to_numpy(dtype=float), sums["fatalities"].to_numpy(dtype=float)))
        for labels, events_row, deaths_row in groups:
            own_weeks = weeks[len(weeks) - len(events_row) :]
            figures = pd.DataFrame({"events": events_row, "fatalities": deaths_row}, index=own_weeks, dtype=float)
            figures.index.name = "week_start"
            counts = pd.Series(figures[value].to_numpy(), index=own_weeks, name=value, dtype=float)
            counts.index.name = "week_start"
            out.append(
                WeeklySeries(
                    key=series_key(definition.name, labels),
                    definition=definition.name,
                    labels=labels,
                    metric=definition.metric,
                    detector=detector,
                    params=params,
                    counts=counts,
                    title=title,
                    min_count=getattr(definition, "min_count", 0),
                    figures=figures,
                )
            )
    return out


def incidents_behind(incidents: pd.DataFrame, series: WeeklySeries, definition, *, week: date, limit: int) -> pd.DataFrame:
    """The incidents counted in `series` during `week`, deadliest first."""
    if incidents.empty:
        return incidents
    start = pd.Timestamp(week)
    frame = incidents[(incidents["event_date"] >= start) & (incidents["event_date"] < start + pd.Timedelta(days=7))]
    mask = filter_mask(frame, definition.filters)
    for dim, value in series.labels:
        if dim == "actor":
            mask &= (frame["actor1"] == value) | (frame["actor2"] == value)
        else:
            column = frame[dim].fillna("")
            mask &= column == ("" if value == "(unknown)" else value)
    hits = frame[mask]
    return hits.sort_values(["fatalities", "event_date"], ascending=[False, True]).head(limit).reset_index(drop=True)


#: How far back the "year ago" figures look: the week 52 weeks before, the same ISO week a year earlier (one week
#: off after a 53-week year). One week rather than a mean of several, so the figure is a count the team can
#: look up, as the week's own is.
YEAR_AGO_WEEKS = 52


def week_figures(series: WeeklySeries, week: date) -> WeekFigures:
    """The events and fatalities of `series` in the week starting `week`; both None ("no data") when the week is
    before the series' first week (its first incident) or after its last.

    A series built without `figures` knows only its metric's count: the other figure is None.
    """
    stamp = pd.Timestamp(week)
    if series.figures is not None:
        if stamp in series.figures.index:
            row = series.figures.loc[stamp]
            return WeekFigures(week, float(row["events"]), float(row["fatalities"]))
        return WeekFigures(week, None, None)
    if stamp not in series.counts.index:
        return WeekFigures(week, None, None)
    value = float(series.counts.loc[stamp])
    return WeekFigures(week, value if series.metric != "fatalities" else None, value if series.metric == "fatalities" else None)


def _count(n: float, word: str, plural: str) -> str:
    return f"{fmt_num(n)} {word if n == 1 else plural}"


def figures_text(figures: WeekFigures, *, metric: str = "events") -> str:
    """'8 events (14 fatalities)', the metric's figure first ('14 fatalities (8 events)' for a fatalities
    series); '8 events' when the other figure is unknown; 'no data' when neither is known."""
    if not figures.known:
        return "no data"
    events = None if figures.events is None else _count(figures.events, "event", "events")
    deaths = None if figures.fatalities is None else _count(figures.fatalities, "fatality", "fatalities")
    first, other = (deaths, events) if metric == "fatalities" else (events, deaths)
    if first is None:
        first, other = other, None
    return f"{first} ({other})" if other else str(first)


def metric_unit(r: SeriesResult) -> str:
    """What a result's series counts: "fatalities" or "events"."""
    return "fatalities" if r.series.metric == "fatalities" else "events"


def result_figures(r: SeriesResult, result: RunResult, *, weeks_back: int = 0) -> WeekFigures:
    """The series' events and fatalities `weeks_back` weeks before the reported week; this week's are "no data"
    for a series none of whose sources reaches the week (missing, not zero). As report and digest show them."""
    week = result.week_start - timedelta(weeks=weeks_back)
    if weeks_back == 0 and r.series.key in result.no_data:
        return WeekFigures(week, None, None)
    return week_figures(r.series, week)


def observed_text(r: SeriesResult, result: RunResult) -> str:
    """'8 events (14 fatalities)': the count judged, then the other figure of the week when the series has it."""
    d, unit = r.detection, metric_unit(r)
    this = result_figures(r, result)
    other = this.events if unit == "fatalities" else this.fatalities
    if is_missing(d.observed) or other is None:
        return f"{fmt_num(d.observed)} {unit}"
    words = ("event", "events") if unit == "fatalities" else ("fatality", "fatalities")
    return f"{fmt_num(d.observed)} {unit} ({fmt_num(other)} {words[0] if other == 1 else words[1]})"


def figures_cell(figures: WeekFigures) -> str:
    """The figures as a table cell, events first whatever the metric: '8 (14)', '8' when the fatalities are
    unknown, '– (14)' when the events are, 'no data' when neither is (the header says 'events (fatalities)')."""
    if not figures.known:
        return "no data"
    events = "–" if figures.events is None else fmt_num(figures.events)
    return events if figures.fatalities is None else f"{events} ({fmt_num(figures.fatalities)})"


def trend_arrow(counts: pd.Series) -> str:
    """Last 4 weeks against the 4 before: ↑ above +25 %, ↓ below −25 %, → otherwise (as ACLED Trendfinder)."""
    recent, before = counts.iloc[-4:].sum(), counts.iloc[-8:-4].sum()
    if len(counts) < 8 or (recent <= 5 and before <= 5):  # too few events to call a direction
        return "→"
    if before == 0:
        return "↑" if recent > 0 else "→"
    change = (recent - before) / before
    return "↑" if change > 0.25 else ("↓" if change < -0.25 else "→")


def series_name(result) -> str:
    """'Islamic State events — Homs': the definition's title and the label of a SeriesResult's series (raw, unescaped)."""
    return f"{result.series.title or result.series.definition} — {result.series.label}"
