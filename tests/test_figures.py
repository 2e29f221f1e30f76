"""The figures people expect (issue 16, item 6): fatalities beside events, last week and a year ago, and each
incident linked to its source record where the source has a public page.

The demo's Islamic State fatalities series must flag 2023-W07 in Homs: the 17 February 2023 attack east of Homs
killed 68 in one event, a surge of its week's deaths while the count of events barely moved.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from datetime import date, timedelta

import pandas as pd
import pytest
from click.testing import CliRunner

from helpers_result import W09, make_result, report_settings
from monitor.cli import cli
from monitor.config import SeriesDefinition
from monitor.formats import record_url
from monitor.report.html import render_html
from monitor.report.markdown import render_markdown
from monitor.series import build_series, combined_frame, figures_cell, figures_text, week_figures
from monitor.types import INCIDENT_FIELDS, WeekFigures, WeeklySeries

NOW = "2026-11-24T09:00:00+00:00"


# building: both figures on every series, and where a fatalities series starts


def _incidents(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """Incidents of (date, admin1, fatalities), all by the Islamic State."""
    frame = pd.DataFrame(
        [{f: "" for f in INCIDENT_FIELDS} | {"source": "acled", "source_id": f"E{i}", "event_date": day, "date_end": day,
          "country": "Syria", "admin1": admin1, "actor1": "Islamic State (Syria)", "fatalities": deaths}
         for i, (day, admin1, deaths) in enumerate(rows)],  # fmt: skip
        columns=list(INCIDENT_FIELDS),
    )
    return combined_frame(frame, pd.DataFrame())


def _definition(metric: str, **extra) -> SeriesDefinition:
    return SeriesDefinition(name=f"is_{metric}", group_by=["admin1"], metric=metric, min_events=1,
                            filters={"actor_contains": ["Islamic State"]}, **extra)  # fmt: skip


def test_a_fatalities_series_starts_at_its_groups_first_incident_not_its_first_death():
    # Homs: attacks that killed no one in the weeks of 2 and 9 January, then 68 dead on 17 February
    records = _incidents([("2023-01-03", "Homs", 0), ("2023-01-10", "Homs", 0), ("2023-02-17", "Homs", 68),
                          ("2023-02-15", "Homs", 2), ("2023-01-24", "Hama", 1)])  # fmt: skip
    (hama, homs, total) = build_series(records, [_definition("fatalities")], week=date(2023, 2, 13))
    assert homs.key == "is_fatalities/admin1=Homs" and homs.metric == "fatalities"
    assert homs.counts.index[0] == pd.Timestamp("2023-01-02")  # the week of its first incident, not of its first death
    assert homs.counts.tolist() == [0, 0, 0, 0, 0, 0, 70]
    assert homs.figures["events"].tolist() == [1, 1, 0, 0, 0, 0, 2]
    assert (homs.figures.index == homs.counts.index).all()
    assert hama.counts.index[0] == pd.Timestamp("2023-01-23") and hama.counts.tolist() == [1, 0, 0, 0]
    assert total.counts.tolist() == [0, 0, 0, 1, 0, 0, 70] and total.figures["events"].tolist() == [1, 1, 0, 1, 0, 0, 2]
    # the event series of the same incidents carries the same figures, its count being the events
    (_, homs_events, _) = build_series(records, [_definition("events")], week=date(2023, 2, 13))
    assert homs_events.key == "is_events/admin1=Homs"
    assert homs_events.counts.tolist() == homs.figures["events"].tolist()
    assert homs_events.figures.equals(homs.figures)


def test_week_figures_and_their_words():
    records = _incidents([("2023-01-03", "Homs", 0), ("2023-02-17", "Homs", 68), ("2023-02-15", "Homs", 2)])
    (homs, _) = build_series(records, [_definition("fatalities")], week=date(2023, 2, 13))
    this = week_figures(homs, date(2023, 2, 13))
    assert this == WeekFigures(date(2023, 2, 13), 2.0, 70.0)
    assert figures_text(this, metric="fatalities") == "70 fatalities (2 events)"
    assert figures_text(this, metric="events") == "2 events (70 fatalities)"
    assert figures_cell(this) == "2 (70)"  # events first in a cell, whatever the metric
    quiet = week_figures(homs, date(2023, 1, 9))
    assert figures_text(quiet, metric="fatalities") == "0 fatalities (0 events)"
    one = WeekFigures(date(2023, 1, 2), 1.0, 1.0)
    assert figures_text(one) == "1 event (1 fatality)"
    before = week_figures(homs, date(2022, 12, 26))  # before the series' first week: no data, not zero
    assert not before.known and figures_text(before) == "no data" and figures_cell(before) == "no data"
    assert not week_figures(homs, date(2023, 2, 20)).known  # after its last week too
    # a series built from counts alone knows only its metric's figure
    bare = WeeklySeries("s/total", "s", (), "events", "farrington", {}, homs.counts)
    assert week_figures(bare, date(2023, 2, 13)) == WeekFigures(date(2023, 2, 13), 70.0, None)
    assert figures_text(week_figures(bare, date(2023, 2, 13))) == "70 events" and figures_cell(WeekFigures(W09, 3.0, None)) == "3"


# the report and the digest


@pytest.fixture(scope="module")
def result():
    return make_result()


def test_last_week_and_year_ago_in_the_tables_with_no_data_before_a_series_starts(result, tmp_path):
    text = render_markdown(result, charts={}, settings=report_settings(tmp_path))
    glance = [line for line in text.splitlines() if line.startswith("| ")]
    header = next(line for line in glance if line.startswith("| Series | This week"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[3:6] == ["Events (fatalities)", "Last week", "Year ago"]
    quneitra = next(line for line in glance if "Quneitra" in line)  # ten weeks of history: a year ago is before it
    cells = [c.strip() for c in quneitra.strip("|").split("|")]
    series = next(r.series for r in result.results if r.series.label == "Quneitra")
    this, last = series.counts.iloc[-1], series.counts.iloc[-2]
    assert cells[3:6] == [f"{this:g} ({2 * this:g})", f"{last:g} ({2 * last:g})", "no data"]
    homs = next(r.series for r in result.results if r.series.label == "Homs")
    ago = homs.counts[pd.Timestamp(W09 - timedelta(weeks=52))]
    assert f"| 9 (18) | 8 (16) | {ago:g} ({2 * ago:g}) |" in text
    assert "Year ago (the week 52 weeks earlier, the same ISO week a year before)" in text
    assert "**Events and fatalities**" in text and "a single week, not a mean" in text


def test_a_flagged_series_without_a_year_of_history_says_no_data_and_when_it_starts(result, tmp_path):
    quneitra = next(r for r in result.results if r.series.label == "Quneitra")
    flagged = replace(quneitra, detection=replace(quneitra.detection, alarm=True, level="alert"), status="new", weeks_in_alert=1)
    changed = replace(result, results=tuple(flagged if r is quneitra else r for r in result.results))
    text = render_markdown(changed, charts={}, settings=report_settings(tmp_path))
    start = quneitra.series.counts.index[0].isocalendar()
    sentence = next(line for line in text.splitlines() if line.startswith("- Political violence events in Quneitra rose"))
    assert sentence.endswith(f"the same week a year earlier (2022-W09): no data (the series starts in {start[0]}-W{start[1]:02d}).")


def test_this_weeks_figures_are_no_data_for_a_series_no_source_reaches(result, tmp_path):
    homs = next(r for r in result.results if r.series.label == "Homs")
    changed = replace(result, no_data={homs.series.key: "acled: last event 2023-02-20"})
    text = render_markdown(changed, charts={}, settings=report_settings(tmp_path))
    row = next(line for line in text.splitlines() if line.startswith("| Islamic State events — Homs | 9 |"))
    assert "| no data | 8 (16) |" in row  # missing, not zero; last week's figures are known


# links to source records


@pytest.mark.parametrize(
    ("source", "source_id", "url"),
    [
        ("ucdp", "12345", "https://ucdp.uu.se/event/12345"),
        ("ucdp", 12345, "https://ucdp.uu.se/event/12345"),
        ("ucdp", "0042", "https://ucdp.uu.se/event/0042"),
        ("ucdp", "12a", ""),
        ("ucdp", "１２３", ""),  # full-width digits: numeric to str.isdigit, not ASCII
        ("ucdp", "٣٤", ""),  # Arabic-Indic digits
        ("ucdp", " 123", ""),
        ("ucdp", "123\n", ""),
        ("ucdp", "1/../../evil", ""),
        ("ucdp", "javascript:alert(1)", ""),
        ("ucdp", "", ""),
        ("ucdp", "1" * 19, ""),
        ("ucdp", True, ""),
        ("ucdp", -5, ""),
        ("acled", "SYR12345", ""),  # ACLED has no public page per event
        ("acled", "12345", ""),
        ("UCDP", "12345", ""),
        (None, "12345", ""),
    ],
)
def test_record_urls_are_built_from_ascii_numeric_ucdp_ids_only(source, source_id, url):
    assert record_url(source, source_id) == url


def _with_sources(result, rows: list[tuple[str, str]]):
    """The result with the Homs alarm's first incidents given these (source, source_id)."""
    homs = next(r for r in result.flagged if r.series.label == "Homs")
    frame = homs.incidents.copy()
    for i, (source, source_id) in enumerate(rows):
        frame.loc[i, "source"], frame.loc[i, "source_id"] = source, source_id
    changed = replace(homs, incidents=frame)
    return replace(result, results=tuple(changed if r is homs else r for r in result.results))


HOSTILE_IDS = [("ucdp", "401"), ("ucdp", "7](javascript:alert(1))"), ("ucdp", "<b>9</b>"), ("acled", "SYR7"), ("ucdp", "12 | x")]


def test_incidents_link_to_their_ucdp_page_and_hostile_ids_stay_text(result, tmp_path):
    text = render_markdown(_with_sources(result, HOSTILE_IDS), charts={}, settings=report_settings(tmp_path))
    links = re.findall(r"(?<!\\)\]\(([^)]*)\)", text)
    assert links == ["https://ucdp.uu.se/event/401"]  # the one numeric UCDP id, and nothing else opened a link
    assert "| [ucdp 401](https://ucdp.uu.se/event/401) |" in text
    assert "| ucdp 7\\](javascript:alert(1)) |" in text  # shown, escaped, unlinked
    assert "ucdp &lt;b&gt;9&lt;/b&gt;" in text and "| acled SYR7 |" in text and "ucdp 12 \\| x" in text
    page = render_html(text, folder=tmp_path)
    hrefs = re.findall(r'<a href="([^"]*)"', page)
    assert hrefs == ["https://ucdp.uu.se/event/401"]
    assert '<a href="https://ucdp.uu.se/event/401" rel="noopener noreferrer">ucdp 401</a>' in page
    assert "<b>9</b>" not in page and "javascript:" not in "".join(hrefs)


def test_a_ucdp_file_ingested_and_reported_links_its_incidents_and_shows_both_figures(tmp_path):
    """Real files end to end: a UCDP GED file ingested into SQLite, a fatalities series reported on it."""
    header = ["id", "year", "type_of_violence", "side_a", "side_b", "country", "adm_1", "adm_2", "where_coordinates",
              "latitude", "longitude", "date_start", "date_end", "best", "source_headline"]  # fmt: skip
    start = date(2019, 1, 7)  # a Monday: 2019-W02
    rows = []
    for k in range(40):  # one attack a week, a death every fourth week, the first killing no one
        day = start + timedelta(weeks=k, days=2)
        rows.append([str(5000 + k), "2019", "3", "IS", "Civilians", "Syria", "Homs Governorate", "Tadmor district", "Palmyra",
                     "34.55", "38.27", day.isoformat(), day.isoformat(), "1" if k % 4 == 3 else "0", "attack"])  # fmt: skip
    surge = start + timedelta(weeks=40)
    rows.append(["6001", "2019", "3", "IS", "Civilians", "Syria", "Homs Governorate", "Tadmor district", "Al Sukhnah",
                 "34.88", "38.87", surge.isoformat(), surge.isoformat(), "68", "attack east of Homs"])  # fmt: skip
    rows.append(["6002", "2019", "1", "Government of Syria", "IS", "Syria", "Homs Governorate", "Tadmor district", "Palmyra",
                 "34.55", "38.27", (surge + timedelta(days=1)).isoformat(), (surge + timedelta(days=1)).isoformat(), "2", "clash"])  # fmt: skip
    data = tmp_path / "ged.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    config = tmp_path / "monitor.toml"
    config.write_text(
        '[database]\npath = "m.db"\n\n[report]\nfolder = "reports"\n\n[[series]]\nname = "is_deaths"\ntitle = "IS fatalities"\n'
        'group_by = ["admin1"]\nfilters = { actor = ["IS"] }\nmetric = "fatalities"\ndetector = "nb-recent"\nrollup = false\n'
        "min_events = 1\nmin_count = 3\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    base = ["--config", str(config)]
    ingested = runner.invoke(cli, [*base, "ingest", "--format", "ucdp", str(data)], env={"MONITOR_NOW": NOW})
    assert ingested.exit_code == 0 and "42 inserted" in ingested.output, ingested.output
    week = f"{surge.isocalendar()[0]}-W{surge.isocalendar()[1]:02d}"
    checked = runner.invoke(cli, [*base, "check", "--week", week, "--format", "json"], env={"MONITOR_NOW": NOW})
    (row,) = json.loads(checked.stdout)
    assert row["observed"] == 70 and row["alarm"], row
    reported = runner.invoke(cli, [*base, "report", "--week", week], env={"MONITOR_NOW": NOW})
    assert reported.exit_code == 0, reported.output
    text = (tmp_path / "reports" / week / "report.md").read_text(encoding="utf-8")
    homs = re.search(r"- IS fatalities in (\S+) rose to 70 fatalities \(2 events\) this week against .*?\. Last week: "
                     r"1 fatality \(1 event\); the same week a year earlier \((2018-W\d\d)\): no data \(the series starts in "
                     r"2019-W02\)\.", text)  # fmt: skip
    assert homs, text.split("## Key messages")[1][:800]
    assert "| [ucdp 6001](https://ucdp.uu.se/event/6001) |" in text and "| [ucdp 6002](https://ucdp.uu.se/event/6002) |" in text
    # the series starts at the first attack (no one killed), not at the first death three weeks later
    assert "| 2 (70) | 1 (1) | no data |" in text


# the demo


def test_the_demo_flags_homs_islamic_state_fatalities_in_2023_w07(demo_dir):
    """The 17 February 2023 attack east of Homs (68 killed, one event) makes 2023-W07 a fatalities surge in Homs,
    while Homs' Islamic State events that week are a handful."""
    from datetime import datetime, timezone

    from monitor.config import load_config
    from monitor.detection import detect_week
    from monitor.store import Store

    config = load_config(demo_dir / "monitor.toml")
    with Store(config.db_path) as store:
        result = detect_week(config, store, week=date(2023, 2, 13), now=datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc))
    by_key = {r.series.key: r for r in result.results}
    deaths, events = by_key["is_fatalities/admin1=Homs"], by_key["is_attacks/admin1=Homs"]
    d = deaths.detection
    assert d.alarm and d.level == "alert" and d.observed == 70 and d.expected < 1 and d.threshold <= 12, d
    figures = week_figures(deaths.series, date(2023, 2, 13))
    assert figures == WeekFigures(date(2023, 2, 13), 3.0, 70.0)  # dozens killed in three events
    assert events.detection.observed == 3  # the same week's events
    # both series start at Homs' first Islamic State incident
    assert deaths.series.counts.index[0] == events.series.counts.index[0]
    text = render_markdown(result, charts={}, settings=config.report_settings)
    assert ("Islamic State fatalities in Homs rose to 70 fatalities (3 events) this week against "
            f"{d.expected:.1f} expected (threshold {d.threshold:g}); in alert for 2 weeks. Last week: 15 fatalities (3 events); "
            "the same week a year earlier (2022-W07): 3 fatalities (2 events).") in text  # fmt: skip
    # in alert since 2023-W06: the 11 February attack near Palmyra (11 killed) and others, 15 deaths that week
    row = next(line for line in text.splitlines() if line.startswith("| ") and "Islamic State fatalities — Homs" in line)
    assert "| 3 (70) |" in row


def test_the_demo_config_watches_fatalities_beside_events(demo_dir):
    from monitor.config import load_config

    names = {d.name: d for d in load_config(demo_dir / "monitor.toml").series}
    assert names["is_fatalities"].metric == "fatalities" and names["is_attacks"].metric == "events"
    assert names["is_fatalities"].filters == names["is_attacks"].filters
    report = (demo_dir / "reports" / "2023-W09" / "report.md").read_text(encoding="utf-8")
    assert "Islamic State fatalities in Hama rose to 26 fatalities (6 events) this week" in report
    assert "Islamic State events in Homs rose to 8 events (14 fatalities) this week" in report
