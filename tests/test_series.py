"""Week arithmetic, filters and zero-filled weekly aggregation."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from monitor.config import SeriesDefinition
from monitor.errors import MonitorError
from monitor.series import (
    WEEKDAYS,
    build_series,
    combined_frame,
    incidents_behind,
    last_complete_week,
    parse_week,
    trend_arrow,
    week_label,
    week_start_of,
)
from monitor.types import INCIDENT_FIELDS


def test_iso_labels_round_trip_for_every_week_start():
    for start in WEEKDAYS:
        for year in (2020, 2021, 2023):
            for week in range(1, 53):
                label = f"{year}-W{week:02d}"
                first = parse_week(label, start=start)
                assert first.weekday() == WEEKDAYS.index(start)
                assert week_label(first) == label


def test_known_weeks():
    assert parse_week("2023-W09") == date(2023, 2, 27)
    assert week_label(date(2023, 2, 6)) == "2023-W06"  # the earthquake's Monday
    assert parse_week("2020-W53") == date(2020, 12, 28)  # a 53-week ISO year
    assert parse_week("2023-03-02") == date(2023, 2, 27)  # a date inside the week
    assert week_start_of(date(2023, 3, 2), start="saturday") == date(2023, 2, 25)


@pytest.mark.parametrize("bad", ["2023-W54", "2021-W53", "2023-W9", "last week"])
def test_bad_week_labels(bad):
    with pytest.raises(MonitorError, match="week"):
        parse_week(bad)


def test_last_complete_week():
    # Monday 6 March 2023, 06:00: the job reports on the week that ended Sunday 5 March
    assert last_complete_week(datetime(2023, 3, 6, 6, 0)) == date(2023, 2, 27)
    assert last_complete_week(datetime(2023, 3, 5, 23, 0)) == date(2023, 2, 20)


def incidents(rows):
    base = {f: "" for f in INCIDENT_FIELDS}
    frame = pd.DataFrame([{**base, "fatalities": 0, **r} for r in rows])
    frame["event_date"] = pd.to_datetime(frame["event_date"])
    return frame


ROWS = [
    {"event_date": "2023-01-02", "country": "Syria", "admin1": "Homs", "actor1": "Islamic State (Syria)", "actor2": "Military Forces of Syria (2000-)", "event_type": "Battles", "fatalities": 3},
    {"event_date": "2023-01-04", "country": "Syria", "admin1": "Homs", "actor1": "Military Forces of Syria (2000-)", "event_type": "Battles", "fatalities": 1},
    {"event_date": "2023-01-20", "country": "Syria", "admin1": "Hama", "actor1": "Unidentified Armed Group (Syria)", "actor2": "Islamic State (Syria)", "event_type": "Explosions/Remote violence", "fatalities": 10},
    {"event_date": "2023-02-28", "country": "Syria", "admin1": "Hama", "actor1": "Islamic State (Syria)", "event_type": "Explosions/Remote violence", "fatalities": 10},
    {"event_date": "2023-03-08", "country": "Syria", "admin1": "Hama", "actor1": "Islamic State (Syria)", "event_type": "Battles", "fatalities": 2},
]


def test_zero_filled_series_with_filter_group_and_rollup():
    definition = SeriesDefinition(name="is", group_by=["admin1"], filters={"actor_contains": ["islamic state"]}, min_events=0)
    records = combined_frame(incidents(ROWS), None)
    series = {s.key: s for s in build_series(records, [definition], week=date(2023, 2, 27))}
    assert set(series) == {"is/admin1=Homs", "is/admin1=Hama", "is/total"}
    homs, hama, total = series["is/admin1=Homs"], series["is/admin1=Hama"], series["is/total"]
    # each group spans consecutive weeks from its own first record to `week` (Hama's IS events begin
    # in the week of 2023-01-16: never years or weeks of zeros it did not have); the total from the first of all
    for s, first in ((homs, "2023-01-02"), (hama, "2023-01-16"), (total, "2023-01-02")):
        assert s.counts.index[0] == pd.Timestamp(first)
        assert s.counts.index[-1] == pd.Timestamp("2023-02-27")
        assert (s.counts.index.to_series().diff().dropna() == pd.Timedelta(days=7)).all()
        assert s.counts.iloc[0] > 0 and s.min_count == 3  # the definition's floor travels with the series
    assert homs.counts.tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]  # the government-only Homs event is filtered out
    assert hama.counts.sum() == 2  # the 2023-03-08 event is after the week and ignored
    assert total.counts.sum() == 3
    assert hama.labels == (("admin1", "Hama"),) and total.label == "All (total)"


def test_fatalities_metric_min_events_and_no_rollup():
    definition = SeriesDefinition(name="f", group_by=["admin1"], metric="fatalities", rollup=False, min_events=2)
    records = combined_frame(incidents(ROWS), None)
    series = build_series(records, [definition], week=date(2023, 3, 6))
    assert [s.key for s in series] == ["f/admin1=Hama", "f/admin1=Homs"]
    assert series[0].counts.sum() == 22 and series[1].counts.sum() == 4
    only_hama = build_series(records, [definition.model_copy(update={"min_events": 3})], week=date(2023, 3, 6))
    assert [s.key for s in only_hama] == ["f/admin1=Hama"]


def test_group_by_actor_counts_an_incident_for_each_actor_it_names():
    definition = SeriesDefinition(name="a", group_by=["actor"], min_events=0)
    series = {s.key: s for s in build_series(combined_frame(incidents(ROWS), None), [definition], week=date(2023, 3, 6))}
    assert series["a/actor=Islamic State (Syria)"].counts.sum() == 4
    assert series["a/actor=Military Forces of Syria (2000-)"].counts.sum() == 2
    assert series["a/total"].counts.sum() == 5  # the roll-up counts each incident once


def test_counts_rows_add_to_incidents():
    counts = pd.DataFrame([{"source": "counts:x", "week_start": "2023-01-02", "country": "Syria", "admin1": "Homs", "admin2": "",
                            "event_type": "Battles", "sub_event_type": "", "actor": "", "count": 5, "fatalities": 0}])
    definition = SeriesDefinition(name="all", group_by=["admin1"], min_events=0)
    series = {s.key: s for s in build_series(combined_frame(incidents(ROWS), counts), [definition], week=date(2023, 1, 2))}
    assert series["all/admin1=Homs"].counts.tolist() == [7]


def test_incidents_behind_a_series():
    definition = SeriesDefinition(name="is", group_by=["admin1"], filters={"actor_contains": ["Islamic State"]}, min_events=0)
    frame = incidents(ROWS)
    series = [s for s in build_series(combined_frame(frame, None), [definition], week=date(2023, 2, 27)) if s.key == "is/admin1=Hama"][0]
    behind = incidents_behind(frame, series, definition, week=date(2023, 2, 27), limit=10)
    assert behind["event_date"].dt.date.tolist() == [date(2023, 2, 28)]


def test_trend_arrow():
    assert trend_arrow(pd.Series([5, 5, 5, 5, 10, 10, 10, 10], dtype=float)) == "↑"
    assert trend_arrow(pd.Series([10, 10, 10, 10, 5, 5, 5, 5], dtype=float)) == "↓"
    assert trend_arrow(pd.Series([10, 10, 10, 10, 11, 10, 10, 10], dtype=float)) == "→"
    assert trend_arrow(pd.Series([0, 0, 1, 0, 1, 2, 1, 0], dtype=float)) == "→"  # too few events to call


def test_exact_actor_names_and_substrings_either_match():
    """ACLED's 'Islamic State (Syria)' and UCDP's 'IS' fall in one series; 'ISIS-K' does not match 'IS' exactly."""
    rows = ROWS + [
        {"event_date": "2023-01-03", "country": "Syria", "admin1": "Homs", "actor1": "Government of Syria", "actor2": "IS"},
        {"event_date": "2023-01-03", "country": "Syria", "admin1": "Homs", "actor1": "Islamist militia", "actor2": ""},
    ]
    definition = SeriesDefinition(name="is", group_by=["admin1"], min_events=0,
                                  filters={"actor": ["IS"], "actor_contains": ["Islamic State"]})
    series = {s.key: s for s in build_series(combined_frame(incidents(rows), None), [definition], week=date(2023, 2, 27))}
    assert series["is/admin1=Homs"].counts.sum() == 2  # the ACLED row and the UCDP row, not the Islamist militia
    by_actor = definition.model_copy(update={"group_by": ["actor"]})
    actors = {s.key for s in build_series(combined_frame(incidents(rows), None), [by_actor], week=date(2023, 2, 27))}
    assert actors == {"is/actor=IS", "is/actor=Islamic State (Syria)", "is/total"}


def _series_by_key(series) -> dict:
    return {s.key: s.counts for s in series}


@pytest.mark.parametrize("week_start", ["monday", "thursday", "sunday"])
def test_series_from_weekly_cells_equal_series_from_every_incident(shared_db, week_start):
    """The weekly run counts series from SQL-aggregated weekly cells (Store.incident_cells), not
    from every incident row; both must give the same series, whatever the week's first day."""
    from monitor.assemble import _cell_columns
    from monitor.series import WEEKDAYS, cells_frame, combined_frame, week_start_of
    from monitor.store import Store

    definitions = [
        SeriesDefinition(name="a1", group_by=["country", "admin1", "event_type"], min_events=3),
        SeriesDefinition(name="fat", group_by=["admin2"], metric="fatalities", rollup=False, filters={"country": ["Nigeria", "Mali"]}),
        SeriesDefinition(name="act", group_by=["actor"], filters={"actor_contains": ["militia"]}, min_events=5),
        SeriesDefinition(name="sub", group_by=["sub_event_type"], filters={"event_type": ["Battles"], "source": ["acled"]}),
    ]

    class Cfg:
        series = definitions

    week = week_start_of(date(2022, 6, 20), start=week_start)
    # the ACLED sample, ingested once per test run (tests/conftest.py)
    with Store(shared_db("acled_sample_9000_2022-01-01_2022-06-30.csv"), read_only=True) as store:
        end = week + pd.Timedelta(days=6)
        whole = combined_frame(store.incidents_frame(end=end), store.counts_frame(end=end))
        cells = store.incident_cells(end=end, columns=_cell_columns(Cfg), week_start=WEEKDAYS.index(week_start))
        assert int(cells['events'].sum()) == len(whole)  # every incident up to the week's end, once
        from_cells = cells_frame(cells, store.counts_frame(end=end))
    expected = _series_by_key(build_series(whole, definitions, week=week, week_start=week_start))
    got = _series_by_key(build_series(from_cells, definitions, week=week, week_start=week_start))
    assert len(expected) > 100 and list(got) == list(expected)
    for key, counts in expected.items():
        pd.testing.assert_series_equal(got[key], counts, check_names=False)
