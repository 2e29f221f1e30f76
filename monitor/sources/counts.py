"""Pre-aggregated weekly counts: `week_start,<keys...>,count[,fatalities][,source]`.

Keys are any of the series dimensions; a key the file lacks is stored as "".
A file without a `source` column gets the source "counts" (SOURCE), whatever its name:
rows are keyed by (source, week_start, keys), so the same export delivered again under
another file name updates the rows it wrote before instead of adding them a second time.
Files that must not overwrite each other name their own `source` in that column.
`count` and `fatalities` are whole numbers in 0..2**63-1; any other value rejects the row.
"""

from __future__ import annotations

from datetime import datetime

from monitor.sources._csv import Dates, Table, batches, fail, whole
from monitor.types import DIMENSIONS, CountRow, FileStream

#: The source of rows from a file without a `source` column (or with an empty cell there).
SOURCE = "counts"
ALLOWED = ("week_start", *DIMENSIONS, "count", "fatalities", "source")


def is_counts(lower: set[str]) -> bool:
    return "week_start" in lower and "count" in lower


def parse(table: Table, *, now: datetime) -> FileStream:
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

    def convert(row: list[str]) -> CountRow:
        week = dates.parse(row[col["week_start"]], name["week_start"]).isoformat()
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
