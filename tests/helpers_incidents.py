"""Small ACLED-format incident files for tests that run `monitor` on a real database."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

HEADER = ["event_id_cnty", "event_date", "event_type", "sub_event_type", "actor1", "actor2", "country", "admin1",
          "admin2", "location", "notes", "fatalities"]  # fmt: skip


def write_incidents(
    path: Path, places: list[str], *, prefix: str, surge: tuple[str, ...] = (), weeks: int = 112, **fields: str
) -> int:
    """An ACLED-format file of 3 events a week in each place from 2021-01-04 for `weeks` weeks (the last one 2023-W08
    by default), 14 in the last week of the places in `surge`; `fields` sets a column of every row. Returns the rows."""
    rows = []
    for w in range(weeks):
        monday = date(2021, 1, 4) + timedelta(weeks=w)
        for place in places:
            for j in range(14 if place in surge and w == weeks - 1 else 3):
                day = (monday + timedelta(days=j % 7)).isoformat()
                row = {"event_id_cnty": f"{prefix}{len(rows) + 1}", "event_date": day, "event_type": "Battles",
                       "sub_event_type": "Armed clash", "actor1": "Islamic State (Syria)",
                       "actor2": "Military Forces of Syria (2000-)", "country": "Syria", "admin1": place, "admin2": place,
                       "location": place, "notes": "clash reported", "fatalities": "1", **fields}  # fmt: skip
                rows.append([row[c] for c in HEADER])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return len(rows)
