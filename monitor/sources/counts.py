"""Pre-aggregated weekly counts: `week_start,<keys...>,count[,fatalities][,source]`.

Keys are any of the series dimensions; a key the file lacks is stored as "".
A file without a `source` column gets the source "counts" (SOURCE), whatever its name:
rows are keyed by (source, week_start, keys), so the same export delivered again under
another file name updates the rows it wrote before instead of adding them a second time.
Files that must not overwrite each other name their own `source` in that column.
`count` and `fatalities` are whole numbers in 0..2**63-1; any other value rejects the row.
`week_start` must fall on the configured first day of the week (`week.start`, Monday by
default): a row dated on another day is rejected with the week it would have been counted
in, rather than moved there silently (a Sunday-start export read as Monday weeks shifts every
count six days back, into the week before its surge).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from monitor.errors import MonitorError
from monitor.sources._csv import Dates, RowError, Table, batches, fail, whole
from monitor.types import DIMENSIONS, CountRow, FileStream
from monitor.weeks import WEEKDAYS, week_label, week_start_of

#: The source of rows from a file without a `source` column (or with an empty cell there).
SOURCE = "counts"
ALLOWED = ("week_start", *DIMENSIONS, "count", "fatalities", "source")


def is_counts(lower: set[str]) -> bool:
    return "week_start" in lower and "count" in lower


def parse(table: Table, *, now: datetime, week_start: str = "monday") -> FileStream:
    """week_start: the configured first day of the week; rows dated on another day are rejected."""
    extra = [h for h in table.header if h and h.lower() not in ALLOWED]
    if extra:
        raise fail(
            table.path, table.header_line,
            f"column {extra[0]!r} is not allowed in a counts file (allowed: {', '.join(ALLOWED)})",
        )
    col = table.index(ALLOWED, fmt="counts", required=("week_start", "count"))
    name = {c: table.header[i] for c, i in col.items()}
    dates = Dates(now=now, fmt="iso")
    keys = {k: col.get(k) for k in DIMENSIONS}
    i_fat, i_src = col.get("fatalities"), col.get("source")

    first_day = WEEKDAYS.index(week_start)
    off_week: dict[date, str] = {}

    def on_week_start(day: date) -> str:
        if day.weekday() == first_day:
            return day.isoformat()
        reason = off_week.get(day)
        if reason is None:
            start = week_start_of(day, start=week_start)
            reason = off_week[day] = (
                f"{name['week_start']} {day.isoformat()} is a {WEEKDAYS[day.weekday()].capitalize()}, but weeks start on "
                f"{week_start.capitalize()} (week.start in the config): the row would be counted in the week of "
                f"{start.isoformat()} ({week_label(start)}); date each row by the first day of its week, "
                f"or set week.start = \"{WEEKDAYS[day.weekday()]}\" if the file's weeks are the ones to report"
            )
        raise RowError(reason)

    def convert(row: list[str]) -> CountRow:
        week = on_week_start(dates.parse(row[col["week_start"]], name["week_start"]))
        labels = {k: (row[i].strip() if i is not None else "") for k, i in keys.items()}
        return CountRow(
            source=(row[i_src].strip() if i_src is not None else "") or SOURCE,
            week_start=week,
            count=whole(row[col["count"]], name["count"]),
            fatalities=whole(row[i_fat], name["fatalities"], empty=0) if i_fat is not None else 0,
            **labels,
        )

    def key(r: CountRow) -> str:
        return "\x1f".join((r.source, r.week_start, *(getattr(r, k) for k in DIMENSIONS)))

    def label(r: CountRow) -> str:
        parts = [f"week_start {r.week_start}"] + [f"{k}={getattr(r, k)!r}" for k in DIMENSIONS if keys[k] is not None]
        return "row for " + ", ".join(parts)

    # the stream's source becomes the sources its rows name, once read
    parts = batches(table, convert, key=key, key_label=label)
    return FileStream(table.path, "counts", SOURCE, table.encoding, "counts", parts, table.header_line, close=table.close)


def read_series_csv(path: Path):
    """A CSV of one or more weekly series, `week_start,count[,series]` (`monitor detect`, `monitor backtest
    --counts`): a pandas frame with week_start as datetimes and count as numbers. Rows must be consecutive
    weeks in order per series, zeros included; anything else is a MonitorError naming the line, the column
    and the value. (Counts files for the database, `week_start,<keys...>,count`, are read by `parse`.)"""
    import numpy as np
    import pandas as pd  # only here: ingest of counts files needs no pandas
    try:
        frame = pd.read_csv(path, dtype={"series": str, "week_start": str, "count": str}, keep_default_na=False)
    except FileNotFoundError:
        raise MonitorError(f"{path}: file not found") from None
    except OSError as exc:
        raise MonitorError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MonitorError(f"{path}: not a readable CSV ({exc}); expected columns week_start,count[,series]") from None
    missing = [c for c in ("week_start", "count") if c not in frame.columns]
    if missing:
        raise MonitorError(
            f"{path}: line 1: missing column(s) {', '.join(missing)}; header is {','.join(map(str, frame.columns))} "
            "(expected week_start,count and optionally series)"
        )
    if frame.empty:  # an export that failed half-way, or the wrong file: nothing to judge is not a quiet result
        raise MonitorError(f"{path}: no rows after the header (expected week_start,count[,series] rows, one per week)")
    # A file of many series repeats its dates, counts and names: each distinct text is converted and checked
    # once (pandas.to_datetime caches its dates itself), and no check runs Python per row.
    dates = pd.to_datetime(frame["week_start"], format="%Y-%m-%d", errors="coerce")
    codes, distinct = pd.factorize(frame["count"], use_na_sentinel=False)
    counts = pd.Series(pd.to_numeric(distinct, errors="coerce").to_numpy()[codes], index=frame.index)
    checks = [
        ("week_start", dates.isna(), "a date YYYY-MM-DD"),
        ("count", counts.isna() | ~counts.abs().lt(float("inf")) | (counts < 0), "a finite number >= 0"),
    ]
    series, names = pd.factorize(frame["series"] if "series" in frame.columns else pd.Series("", index=frame.index),
                                 use_na_sentinel=False)  # fmt: skip
    if "series" in frame.columns:
        checks.append(("series", pd.Series((names.str.strip() == "")[series], index=frame.index), "a series name (empty cell)"))
    for column, bad, expected in checks:
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise MonitorError(f"{path}: line {i + 2}: {column} '{frame[column].iloc[i]}' is not {expected}")
    frame = frame.assign(week_start=dates, count=counts)
    # Each row must come 7 days after the one before it in its series (the file's order): the rows sorted
    # stably by series (in order of first appearance) and compared with their neighbours; the first gap of
    # the first series that has one is reported.
    order = np.argsort(series, kind="stable")
    gaps = (series[order][1:] == series[order][:-1]) & (np.diff(dates.to_numpy()[order]) != np.timedelta64(7, "D"))
    if gaps.any():
        j = int(gaps.nonzero()[0][0])
        row, before = int(order[j + 1]), int(order[j])
        where = f" (series {names[series[row]]})" if "series" in frame.columns else ""
        raise MonitorError(
            f"{path}: line {row + 2}: week_start {frame['week_start'].iloc[row].date()}{where} does not follow "
            f"{frame['week_start'].iloc[before].date()} by 7 days; rows must be consecutive weeks in order, zeros included"
        )
    return frame
