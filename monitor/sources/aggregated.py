"""ACLED's aggregated weekly data: events and fatalities per week, country, admin1, event type and sub-event type.

ACLED publishes these files per region (e.g. `Middle-East_aggregated_data_up_to_week_of-2026-05-02.xlsx`,
also as CSV); below the research tier they are the only recent subnational ACLED data an account
may use. Their header (matched case-insensitively, in any order):

    WEEK, REGION, COUNTRY, ADMIN1, EVENT_TYPE, SUB_EVENT_TYPE, EVENTS, FATALITIES,
    POPULATION_EXPOSURE, DISORDER_TYPE, ID, CENTROID_LATITUDE, CENTROID_LONGITUDE

**Their weeks.** `WEEK` is the Saturday that starts the week, and a row counts Saturday to Friday
(ACLED: "the Saturday marking the start of that week of aggregated data"). The monitor's weeks
start on `week.start` (Monday by default), so each ACLED week is counted in the monitor's week
that holds its middle day (the Tuesday), i.e. at least four of its seven days: with Monday weeks,
the ACLED week of Saturday 2023-02-04 (4–10 February) counts in the week of Monday 2023-02-06;
its Saturday and Sunday, two days of events, move one week later. With `week.start = "saturday"`
the weeks are ACLED's own and nothing moves. A `WEEK` that is not a Saturday rejects its row.

Rows are stored as weekly counts (source `acled-aggregated`, keys country, admin1, event_type and
sub_event_type; `EVENTS` and `FATALITIES`); rows that share those keys in a week (ACLED splits some
by disorder type) are added up. `POPULATION_EXPOSURE`, `ID` and the centroids are not kept.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from monitor.sources._csv import Dates, RowError, Table, batches, whole
from monitor.types import CountRow, FileStream
from monitor.weeks import WEEKDAYS, week_start_of

SOURCE = "acled-aggregated"
REQUIRED = ("week", "country", "admin1", "event_type", "sub_event_type", "events", "fatalities")
KNOWN = (*REQUIRED, "region", "population_exposure", "population_best", "disorder_type", "id", "centroid_latitude",
         "centroid_longitude")  # fmt: skip


def is_aggregated(lower: set[str]) -> bool:
    return {"week", "admin1", "sub_event_type", "events"} <= lower


def counted_in(week: date, *, week_start: str) -> date:
    """The monitor's week an ACLED aggregated week (Saturday `week`) is counted in: the one holding its Tuesday."""
    return week_start_of(week + timedelta(days=3), start=week_start)


def parse(table: Table, *, now: datetime, week_start: str = "monday") -> FileStream:
    col = table.index(KNOWN, fmt="acled-aggregated", required=REQUIRED)
    name = {c: table.header[i] for c, i in col.items()}
    dates = Dates(now=now, fmt="iso")
    saturday = WEEKDAYS.index("saturday")

    def convert(row: list[str]) -> tuple[tuple[str, ...], int, int]:
        day = dates.parse(row[col["week"]].strip()[:10], name["week"])
        if day.weekday() != saturday:
            raise RowError(
                f"{name['week']} {day.isoformat()} is a {WEEKDAYS[day.weekday()].capitalize()}: ACLED's aggregated weeks "
                "start on a Saturday (is this an aggregated ACLED file? other weekly counts go in a counts file: "
                "week_start,country,admin1,...,count)"
            )
        keys = tuple(row[col[k]].strip() for k in ("country", "admin1", "event_type", "sub_event_type"))
        events = whole(row[col["events"]], name["events"])
        deaths = whole(row[col["fatalities"]], name["fatalities"], empty=0)
        return (counted_in(day, week_start=week_start).isoformat(), *keys), events, deaths

    def summed():
        totals: dict[tuple[str, ...], list[int]] = {}
        rejects, rows = [], 0
        for items, bad, read in batches(table, convert, key=lambda _item: None, key_label=str):
            rows += read
            rejects += bad
            for key, events, deaths in items:
                total = totals.setdefault(key, [0, 0])
                total[0] += events
                total[1] += deaths
        out = [
            CountRow(source=SOURCE, week_start=k[0], country=k[1], admin1=k[2], admin2="", event_type=k[3],
                     sub_event_type=k[4], actor="", count=v[0], fatalities=v[1])  # fmt: skip
            for k, v in totals.items()
        ]
        yield out, rejects, rows

    return FileStream(table.path, "acled-aggregated", SOURCE, table.encoding, "counts", summed(), table.header_line,
                      close=table.close)  # fmt: skip

