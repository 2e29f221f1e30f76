"""ACLED exports: the current 31-column layout and the legacy (v6) upper-case layout.

Legacy files differ in name case, `ALLY_ACTOR_*` for `assoc_actor_*`, dd/mm/yyyy dates,
seven trailing unnamed columns and Windows-1252 text; both map to the same incident.
"""

from __future__ import annotations

from datetime import datetime

from monitor.sources._csv import Dates, RowError, Table, batches, coordinate, whole
from monitor.types import FileStream, Incident

REQUIRED = ("event_id_cnty", "event_date", "event_type", "actor1", "country", "fatalities")
OPTIONAL = (
    "sub_event_type", "actor2", "admin1", "admin2", "location", "latitude", "longitude", "notes", "timestamp",
)
#: Header columns that only the legacy layout has.
LEGACY_MARKERS = ("gwno", "event_id_no_cnty", "ally_actor_1", "ally_actor_2")


def is_legacy(header: list[str]) -> bool:
    """Legacy (v6) layout: its own columns, or upper-case names throughout."""
    lower = {h.lower() for h in header}
    named = [h for h in header if h]
    return bool(lower & set(LEGACY_MARKERS)) or (bool(named) and all(h == h.upper() for h in named))


def parse(table: Table, *, now: datetime, legacy: bool) -> FileStream:
    fmt = "acled-legacy" if legacy else "acled"
    required = [c.upper() for c in REQUIRED] if legacy else list(REQUIRED)
    col = table.index([*REQUIRED, *OPTIONAL], fmt=fmt, required=required)
    name = {c: table.header[i] for c, i in col.items()}  # as written in the file, for messages
    dates = Dates(now=now, fmt="iso-or-dmy")
    i_id, i_date, i_fat = col["event_id_cnty"], col["event_date"], col["fatalities"]
    i_lat, i_lon = col.get("latitude"), col.get("longitude")
    text = {f: col.get(f) for f in ("country", "admin1", "admin2", "location", "event_type", "sub_event_type",
                                      "actor1", "actor2", "notes")}
    i_rev = col.get("timestamp")  # legacy exports have none: revision ""

    def get(row: list[str], i: int | None) -> str:
        return row[i].strip() if i is not None else ""

    def revision(row: list[str]) -> str:
        # Unix seconds of the event's last edit: the store compares it so that an older
        # revision never replaces a newer one (issue 12, item 8); "1.676e9" reads as 1676000000
        value = get(row, i_rev)
        return str(whole(value, name["timestamp"])) if value else ""

    def convert(row: list[str]) -> Incident:
        source_id = row[i_id].strip()
        if not source_id:
            raise RowError(f"{name['event_id_cnty']} is empty (every row needs an event id)")
        day = dates.parse(row[i_date], name["event_date"]).isoformat()
        return Incident(
            source="acled",
            source_id=source_id,
            event_date=day,
            date_end=day,
            country=get(row, text["country"]),
            admin1=get(row, text["admin1"]),
            admin2=get(row, text["admin2"]),
            location=get(row, text["location"]),
            latitude=coordinate(row[i_lat], name["latitude"], limit=90) if i_lat is not None else None,
            longitude=coordinate(row[i_lon], name["longitude"], limit=180) if i_lon is not None else None,
            event_type=get(row, text["event_type"]),
            sub_event_type=get(row, text["sub_event_type"]),
            actor1=get(row, text["actor1"]),
            actor2=get(row, text["actor2"]),
            fatalities=whole(row[i_fat], name["fatalities"]),
            notes=get(row, text["notes"]),
            revision=revision(row),
        )

    parts = batches(
        table, convert, key=lambda inc: inc.source_id, key_label=lambda inc: f"{name['event_id_cnty']} {inc.source_id!r}"
    )
    return FileStream(table.path, fmt, "acled", table.encoding, "incidents", parts, table.header_line, close=table.close)
