"""Any CSV read through a configured column mapping (`[[ingest.mappings]]`).

Without an id column, a row's id is the SHA-1 of its normalised content plus `#n` for
the n-th identical row, so re-ingesting the same file finds the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.sources._csv import (
    Dates,
    RowError,
    Table,
    batches,
    coordinate,
    fail,
    whole,
)
from monitor.types import FileStream, Incident

TEXT_FIELDS = ("country", "admin1", "admin2", "location", "event_type", "sub_event_type", "actor1", "actor2", "notes")


def matches(mapping: Any, header: list[str]) -> bool:
    """The file's header equals the mapping's match_header (case-insensitive, trailing unnamed columns ignored)."""
    wanted = [h.strip().lower() for h in mapping.match_header]
    got = [h.lower() for h in header]
    while got and not got[-1]:
        got.pop()
    return bool(wanted) and got == wanted


def choose(mappings: Sequence[Any], header: list[str], *, path, line: int, name: str = "") -> Any:
    """The mapping to read a file with: by name when given, else the one whose header matches."""
    if name:
        for m in mappings:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in mappings) or "none configured"
        raise fail(path, line, f"no generic mapping named {name!r} (mappings: {known})")
    hits = [m for m in mappings if matches(m, header)]
    if hits:
        return hits[0]
    if len(mappings) == 1:
        return mappings[0]
    if not mappings:
        raise fail(path, line, "format generic needs a column mapping ([[ingest.mappings]] in the config); none is configured")
    listed = "; ".join(f"{m.name}: {','.join(m.match_header)}" for m in mappings)
    raise fail(path, line, f"no generic mapping matches the header {','.join(header)} (mappings: {listed})")


def parse(table: Table, *, now: datetime, mapping: Any) -> FileStream:
    fmt = f"generic mapping {mapping.name!r}"
    columns = dict(mapping.columns)
    needed = [mapping.date_column, *columns.values()] + ([mapping.id_column] if mapping.id_column else [])
    col = table.index(needed, fmt=fmt, required=list(dict.fromkeys(needed)))
    name = {c.lower(): table.header[i] for c, i in col.items()}
    pos = {c.lower(): i for c, i in col.items()}
    dates = Dates(now=now, fmt=mapping.date_format)
    i_date = pos[mapping.date_column.lower()]
    i_id = pos[mapping.id_column.lower()] if mapping.id_column else None
    src = {f: pos[c.lower()] for f, c in columns.items()}
    constants = dict(mapping.constants)
    seen: dict[str, int] = {}

    def cname(f: str) -> str:
        return name[columns[f].lower()] if f in src else f

    # (field, column position or None, constant) decided once, not per row
    plan = [(f, None if f in constants else src.get(f), constants.get(f, "")) for f in TEXT_FIELDS]
    numbers = {f: (None if f in constants else src.get(f), constants.get(f, "")) for f in ("latitude", "longitude", "fatalities")}
    i_end = None if "date_end" in constants else src.get("date_end")

    def number(row: list[str], f: str) -> str:
        i, const = numbers[f]
        return row[i] if i is not None else const

    def convert(row: list[str]) -> Incident:
        if i_id is not None:
            source_id = row[i_id].strip()
            if not source_id:
                raise RowError(f"{name[mapping.id_column.lower()]} is empty (every row needs an id in the id column)")
        else:
            digest = hashlib.sha1("\x1f".join([v.strip() for v in row]).encode("utf-8")).hexdigest()
            n = seen.get(digest, 0) + 1
            seen[digest] = n
            source_id = f"{digest}#{n}"
        day = dates.parse(row[i_date], name[mapping.date_column.lower()])
        end = day
        if i_end is not None and row[i_end].strip():
            end = dates.parse(row[i_end], cname("date_end"), future_ok=True)
        lat, lon = number(row, "latitude"), number(row, "longitude")
        text = {f: (row[i].strip() if i is not None else const) for f, i, const in plan}
        return Incident(
            source=mapping.source,
            source_id=source_id,
            event_date=day.isoformat(),
            date_end=end.isoformat(),
            latitude=coordinate(lat, cname("latitude"), limit=90) if lat.strip() else None,
            longitude=coordinate(lon, cname("longitude"), limit=180) if lon.strip() else None,
            fatalities=whole(number(row, "fatalities"), cname("fatalities"), empty=0),
            revision="",
            **text,
        )

    id_label = name[mapping.id_column.lower()] if mapping.id_column else "row"
    parts = batches(
        table, convert,
        key=lambda inc: inc.source_id if i_id is not None else None,
        key_label=lambda inc: f"{id_label} {inc.source_id!r}",
    )
    return FileStream(table.path, "generic", mapping.source, table.encoding, "incidents", parts, table.header_line, close=table.close)
