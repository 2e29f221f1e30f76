"""UCDP GED event files (19.1: 41 columns; 20.1 on: 49 columns), mapped by column name.

Governorate names lose UCDP's " Governorate" suffix and take ACLED's spelling, so series
from both sources share admin1 keys (spellings as in ACLED's own export, see SYRIA_ADMIN1).
"""

from __future__ import annotations

from datetime import datetime

from monitor.sources._csv import Dates, RowError, Table, batches, coordinate, whole
from monitor.types import FileStream, Incident

REQUIRED = ("id", "date_start", "type_of_violence", "side_a", "side_b", "country", "best")
OPTIONAL = ("date_end", "adm_1", "adm_2", "where_coordinates", "latitude", "longitude", "source_headline")
#: Columns that mark a header as UCDP GED when present together with date_start.
MARKERS = ("type_of_violence", "side_a", "dyad_name", "where_coordinates", "best")

VIOLENCE = {"1": "State-based conflict", "2": "Non-state conflict", "3": "One-sided violence"}

#: UCDP governorate (suffix removed) -> ACLED admin1, as written in ACLED's 2022 export.
#: HDX COD-AB writes some differently (Ar-Raqqa, As-Sweida, Dar'a, Al-Hasakeh).
SYRIA_ADMIN1 = {
    "Aleppo": "Aleppo",
    "Al Hasakah": "Al Hasakeh",
    "Ar Raqqah": "Ar Raqqa",
    "As Suwayda": "As Sweida",
    "Damascus": "Damascus",
    "Daraa": "Dara",
    "Deir ez Zor": "Deir ez Zor",
    "Hamah": "Hama",
    "Homs": "Homs",
    "Idlib": "Idleb",
    "Latakia": "Lattakia",
    "Quneitra": "Quneitra",
    "Rif Dimashq": "Rural Damascus",
    "Tartus": "Tartous",
}
SUFFIX = " Governorate"


def is_ucdp(lower: set[str]) -> bool:
    return "date_start" in lower and any(m in lower for m in MARKERS)


def admin1(value: str, country: str) -> str:
    name = value.strip()
    if name.endswith(SUFFIX):
        name = name[: -len(SUFFIX)].strip()
    if country == "Syria":
        name = SYRIA_ADMIN1.get(name, name)
    return name


def parse(table: Table, *, now: datetime) -> FileStream:
    col = table.index([*REQUIRED, *OPTIONAL], fmt="ucdp", required=REQUIRED)
    name = {c: table.header[i] for c, i in col.items()}
    dates = Dates(now=now, fmt="iso")
    i = col
    opt = {f: col.get(f) for f in OPTIONAL}
    cache: dict[tuple[str, str], str] = {}

    def get(row: list[str], idx: int | None) -> str:
        return row[idx].strip() if idx is not None else ""

    def convert(row: list[str]) -> Incident:
        source_id = row[i["id"]].strip()
        if not source_id:
            raise RowError(f"{name['id']} is empty (every row needs an event id)")
        start = dates.parse(row[i["date_start"]], name["date_start"])
        end = start
        if opt["date_end"] is not None and row[opt["date_end"]].strip():
            # an event may end after `now` only if it started before; the start date counts
            end = dates.parse(row[opt["date_end"]], name["date_end"], future_ok=True)
            if end < start:
                raise RowError(
                    f"{name['date_end']} {row[opt['date_end']]!r} is before {name['date_start']} {start.isoformat()} "
                    "(expected an end on or after the start)"
                )
        violence = row[i["type_of_violence"]].strip()
        if violence not in VIOLENCE:
            raise RowError(f"{name['type_of_violence']} {violence!r} is not a UCDP violence type (expected 1, 2 or 3)")
        country = row[i["country"]].strip()
        key = (get(row, opt["adm_1"]), country)
        adm1 = cache.get(key)
        if adm1 is None:
            adm1 = cache[key] = admin1(*key)
        lat, lon = opt["latitude"], opt["longitude"]
        return Incident(
            source="ucdp",
            source_id=source_id,
            event_date=start.isoformat(),
            date_end=end.isoformat(),
            country=country,
            admin1=adm1,
            admin2=get(row, opt["adm_2"]),
            location=get(row, opt["where_coordinates"]),
            latitude=coordinate(row[lat], name["latitude"], limit=90) if lat is not None else None,
            longitude=coordinate(row[lon], name["longitude"], limit=180) if lon is not None else None,
            event_type=VIOLENCE[violence],
            sub_event_type="",
            actor1=row[i["side_a"]].strip(),
            actor2=row[i["side_b"]].strip(),
            fatalities=whole(row[i["best"]], name["best"]),
            notes=get(row, opt["source_headline"]),
            # GED event files carry no version column (19.1 and 20.1+ alike; the release is only in
            # the file name), so a UCDP event has no revision: the latest ingest wins (issue 12, item 8)
            revision="",
        )

    parts = batches(table, convert, key=lambda inc: inc.source_id, key_label=lambda inc: f"{name['id']} {inc.source_id!r}")
    return FileStream(table.path, "ucdp", "ucdp", table.encoding, "incidents", parts, table.header_line, close=table.close)
