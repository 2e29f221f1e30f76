"""Reporting delays, measured: what share of a week's eventual count was known 0, 1, 2, ... weeks after the week ended.

An event is known from the time the database first saw it (`first_seen`, kept by every ingest
since schema 10). Events of a source's first ingest could not have been seen earlier, so for them
the time ACLED stamped on the row (`timestamp`, the earliest revision the database holds) is used
when it is earlier. The delay of an event is the number of whole weeks between the end of its
week and the time it became known (0: known within a week of the week's end).

The counts form a reporting triangle (event week × delay; a delay lies in the future when the
week has not yet been that long over at the latest ingest), from which `monitor.nowcast.estimate_delays`
gives the chain-ladder share known at each delay, and the number of event weeks behind each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np

from monitor.nowcast import MIN_WEEKS, Delays, estimate_delays
from monitor.weeks import week_start_of

#: Delays shown by default: events known more than 8 weeks after their week count as known at 8.
MAX_DELAY = 8


@dataclass(frozen=True)
class DelayTable:
    """Measured reporting delays of the incidents of one source (or all) and country (or all)."""

    events: int  # incidents behind the table
    weeks: int  # event weeks they fall in
    as_of: datetime | None  # the latest first sight: what the database knows up to
    max_delay: int
    delays: Delays | None  # None: too little history (see `reason`)
    reason: str = ""
    from_timestamp: int = 0  # events of a source's first ingest dated by their ACLED timestamp
    one_load: bool = False  # every incident came in one ingest: nothing measures delays

    def rows(self) -> list[dict]:
        """One row per delay: `delay` (weeks after the week ended), `known` (share of the eventual count)
        and `weeks` (event weeks that have reached the next delay, behind the step from this one)."""
        if self.delays is None:
            return []
        out = []
        for d, share in enumerate(self.delays.share):
            behind = int(self.delays.weeks[d]) if d < len(self.delays.weeks) else None
            out.append({"delay": d, "known": round(float(share), 4), "weeks": behind})
        return out


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def known_at(first_seen: str, earliest_revision: str, first_of_source: bool) -> datetime:
    """When an event became known: its first sight, or, for an event of its source's first ingest,
    the earlier of that and the Unix time of its earliest revision (ACLED `timestamp`)."""
    seen = _utc(first_seen)
    if first_of_source and earliest_revision.isascii() and earliest_revision.isdigit():
        stamped = datetime.fromtimestamp(int(earliest_revision), tz=timezone.utc)
        return min(seen, stamped)
    return seen


#: A week in nanoseconds (pandas' unit of time).
WEEK_NS = 7 * 86_400 * 10**9


def _known(rows: list[tuple[str, str, str, str]], week_start: str):
    """`known_at` for every sighting at once: (week starts as datetime64[D], known and first seen as
    UTC DatetimeIndex, how many were known earlier than first seen): a weekly ACLED delivery holds
    millions of rows."""
    import pandas as pd

    from monitor.weeks import WEEKDAYS

    event_dates, first_seen, revisions, firsts = zip(*rows)
    days = np.array([d[:10] for d in event_dates], dtype="datetime64[D]")
    # 1 January 1970 was a Thursday (weekday 3); the week starts `offset` days before the event
    offset = (days.astype(np.int64) + 3 - WEEKDAYS.index(week_start)) % 7
    starts = days - offset.astype("timedelta64[D]")
    seen = pd.DatetimeIndex(pd.to_datetime(pd.Series(first_seen), utc=True, format="ISO8601")).as_unit("ns")
    revision = pd.Series(revisions)
    # a Unix time of at most 10 digits before the year 2255 fits in nanoseconds (a later one cannot be earlier
    # than the first sight anyway)
    usable = (pd.Series(firsts).astype(bool) & revision.str.isascii() & revision.str.isdigit() & (revision.str.len() <= 10)).to_numpy()
    seconds = np.zeros(len(rows), dtype=np.int64)
    seconds[usable] = revision[usable].astype(np.int64).to_numpy()
    usable = usable & (seconds < 9_000_000_000)
    stamp = np.where(usable, seconds, 0) * 10**9  # ACLED's Unix time, in nanoseconds
    earlier = usable & (stamp < seen.asi8)
    known = pd.DatetimeIndex(np.where(earlier, stamp, seen.asi8).astype("datetime64[ns]"), tz="UTC")
    return starts, known, seen, int(earlier.sum())


def measure(sightings: list[tuple[str, str, str, str]], *, week_start: str = "monday", max_delay: int = MAX_DELAY,
            min_weeks: int = MIN_WEEKS) -> DelayTable:  # fmt: skip
    """The delay table of `Store.sightings` rows (event_date, first_seen, earliest revision, first_of_source)."""
    if max_delay < 0:
        raise ValueError(f"max_delay = {max_delay} must be 0 or more")
    rows = [r for r in sightings if r[1]]  # an event never seen by an ingest (none here) has no delay
    if not rows:
        return DelayTable(0, 0, None, max_delay, None, "no incidents with a first sight (ingest files first)")
    starts, known, seen, stamped = _known(rows, week_start)
    as_of = seen.max().to_pydatetime()
    first_week = starts.min()
    n_weeks = int((starts.max() - first_week) // np.timedelta64(7, "D")) + 1
    triangle = np.zeros((n_weeks, max_delay + 1))
    # whole weeks from the end of the event's week (midnight UTC) to when it became known
    ends = (starts + np.timedelta64(7, "D")).astype("datetime64[ns]").astype(np.int64)
    delay = np.clip((known.asi8 - ends) // WEEK_NS, 0, max_delay)
    np.add.at(triangle, ((starts - first_week) // np.timedelta64(7, "D"), delay), 1)
    first_week = first_week.astype(date)
    for w in range(n_weeks):  # delays the week has not yet been over for at `as_of` lie in the future
        end = datetime.combine(first_week + timedelta(days=7 * w + 7), datetime.min.time(), tzinfo=timezone.utc)
        for d in range(max_delay + 1):
            if end + timedelta(days=7 * (d + 1)) > as_of:
                triangle[w, d:] = np.nan
                break
    delays = estimate_delays(triangle, min_weeks=min_weeks)
    reason = ""
    one_load = len({r[1] for r in rows}) == 1 and not stamped
    if one_load:  # one bulk load of history says nothing about delays
        delays = None
        reason = (f"all {len(rows):,} incidents were first seen by one ingest ({as_of:%Y-%m-%d}) and carry no earlier "
                  "ACLED timestamp: delays show over repeated deliveries (ingest each week's export as it comes)")
    elif delays is None:
        reached = int((~np.isnan(triangle[:, max_delay])).sum())
        if reached < min_weeks:
            reason = (f"too little history: each delay up to {max_delay} weeks needs {min_weeks} event weeks that have "
                      f"reached it, and {reached} have reached {max_delay} (try a smaller --max-delay, or wait)")  # fmt: skip
        else:
            reason = "no share of these weeks' events was known early: every event measured was first seen late"
    return DelayTable(len(rows), n_weeks, as_of, max_delay, delays, reason, int(stamped), one_load)


#: Days after a week's end over which `by_day` follows its reporting (two weekly updates).
DAYS = 14


@dataclass(frozen=True)
class ByDay:
    """When in the days after a week ends its events become known: evidence for when to run the job."""

    shares: np.ndarray  # share of a week's eventual count known by the end of day d after the week ended, d = 0..DAYS-1
    weeks: int  # event weeks behind it (over for at least DAYS days at the latest ingest)
    week_start: str

    def day_name(self, d: int) -> str:
        from monitor.series import WEEKDAYS

        return WEEKDAYS[(WEEKDAYS.index(self.week_start) + d) % 7]

    @property
    def first_update(self) -> int:
        """The first day d by whose end the week's first update is in: at least 90 % of what is known
        by the end of the week after (day 6); a run the day after sees it."""
        plateau = float(self.shares[6])
        return next(d for d in range(7) if self.shares[d] >= 0.9 * plateau)

    def share_at(self, hours: float) -> float:
        """The share known `hours` after the week ended (interpolated per whole day, conservatively: the
        share by the end of the previous whole day)."""
        days = int(hours // 24)
        return 0.0 if days == 0 else float(self.shares[min(days, DAYS) - 1])


def by_day(sightings: list[tuple[str, str, str, str]], *, week_start: str = "monday", min_weeks: int = MIN_WEEKS) -> ByDay | None:
    """The share of each week's eventual count known by the end of each of the `DAYS` days after it ended
    (from `Store.sightings`, as `measure`), over the event weeks over for at least `DAYS` days; None with
    fewer than `min_weeks` such weeks, or when every incident came in one ingest without an ACLED timestamp."""
    rows = [r for r in sightings if r[1]]
    if not rows:
        return None
    as_of = max(_utc(r[1]) for r in rows)
    lags, weeks, stamped = [], set(), False
    for event_date, first_seen, revision, first in rows:
        start = week_start_of(date.fromisoformat(event_date[:10]), start=week_start)
        end = datetime.combine(start + timedelta(days=7), datetime.min.time(), tzinfo=timezone.utc)
        if end + timedelta(days=DAYS) > as_of:
            continue
        when = known_at(first_seen, revision, bool(first))
        stamped |= when < _utc(first_seen)
        weeks.add(start)
        lags.append((when - end) / timedelta(days=1))
    if len(weeks) < min_weeks or (len({r[1] for r in rows}) == 1 and not stamped):
        return None
    lag = np.asarray(lags)
    shares = np.array([float(np.mean(lag <= d + 1)) for d in range(DAYS)])
    return ByDay(shares=shares, weeks=len(weeks), week_start=week_start)


def nowcasts(store, series, *, week: date, week_start: str = "monday", history_weeks: int = 52) -> tuple[dict, str]:
    """Nowcasts of the weeks up to `week` still filling: {series key: {week start: Nowcast}} for each
    series of events, and why there is none for `week` although data came in several deliveries
    ("" otherwise).

    The delays are measured over the events of the last `history_weeks` weeks, all series pooled (a
    single series has too few events to measure its own); a week's delay is counted from its end to
    the latest ingest, and every week whose share known at its delay is below 1 gets a nowcast (the
    reported week, and the weeks before it still filling, which the next run re-judges). Each
    series' prior is its own recent level (`nowcast.prior_from_history` over the weeks before, each
    still-filling one divided by the share known at its delay; its shape at most
    `nowcast.PRIOR_SHAPE_MAX`, so a surge's reported events outweigh a steady history). Series of
    fatalities get none: delays are measured on events. A week that ended `MAX_DELAY` weeks or more before
    the latest ingest is complete at any measured delay: its check (say, of a past week) measures nothing.
    """
    since = week - timedelta(weeks=history_weeks)
    seen = [_utc(text) for text in store.sighting_times(since=since)]
    end = datetime.combine(week + timedelta(days=7), datetime.min.time(), tzinfo=timezone.utc)
    if seen and max(seen) - end >= timedelta(weeks=MAX_DELAY):
        return {}, ""  # the week was over MAX_DELAY weeks before the latest ingest: complete, whatever the delays
    return nowcasts_from(store.sightings(since=since), series, week=week, week_start=week_start)


def nowcasts_from(sightings, series, *, week: date, week_start: str = "monday") -> tuple[dict, str]:
    """`nowcasts` from `Store.sightings` rows (those known at a past run, for `monitor backtest --as-known`)."""
    from monitor.nowcast import nowcast_series

    table = measure(sightings, week_start=week_start)
    if table.delays is None or table.as_of is None:
        return {}, "" if table.one_load or not table.events else f"no nowcast for the latest week: {table.reason}"
    end = datetime.combine(week + timedelta(days=7), datetime.min.time(), tzinfo=timezone.utc)
    if table.as_of < end:  # the latest delivery was made before the week ended: not even delay 0 applies
        return {}, (f"no nowcast for the week of {week.isoformat()}: the latest ingest ({table.as_of:%Y-%m-%d %H:%M} UTC) "
                    "was made before the week ended")  # fmt: skip
    delay = math.floor((table.as_of - end) / timedelta(days=7))  # the delay of `week`; the week before is one later
    shares = table.delays.share
    if not any(shares[d] < 1 for d in range(delay, table.delays.max_delay)):
        return {}, ""  # reporting of the week is complete
    out: dict = {}
    for s in series:
        if s.metric != "events" or not len(s.counts) or s.counts.index[-1].date() != week:
            continue
        casts = {s.counts.index[at].date(): cast for at, cast in nowcast_series(s.counts.to_numpy(dtype=float), shares, delay=delay)}
        if casts:
            out[s.key] = casts
    return out, ""
