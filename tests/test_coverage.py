"""No silent all-clear (issue 11): which week the data reaches, and what happens to a week it does not.

Real SQLite files, the real CLI through CliRunner, the clock fixed with $MONITOR_NOW. The data ends
years before the clock (as a UCDP GED release does): without --week the commands judge the latest
week with data and say so on stderr; a week no source reaches exits 6 and is recorded `no-data`.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import load_config
from monitor.coverage import choose_week
from monitor.pipeline import EXIT_NO_DATA
from monitor.schedule import catch_up, owed_weeks
from monitor.series import parse_week
from monitor.store import Store
from tests.helpers_incidents import write_incidents

#: Tuesday 2026-12-08: the clock's last complete week is 2026-W49, years after the data.
NOW = "2026-12-08T09:00:00+00:00"
CONFIG = """\
[database]
path = "monitor.db"
[ingest]
inbox = ["inbox"]
[report]
folder = "reports"
annotations = []
[alerts]
enabled = {alerts}
[[series]]
name = "events"
group_by = ["admin1"]
detector = "acled-surge"
min_events = 0
"""
#: acled's data ends on Sunday 2023-02-26 (the surge week has an event every day): 2023-W08 is complete.
LAST_EVENT = "acled: last event 2023-02-26"


def _setup(tmp_path: Path, *, alerts: bool = False, surge: tuple[str, ...] = ("Homs",)) -> Path:
    """A config and a database holding 112 weeks of ACLED events (2021-W01 .. 2023-W08) in Homs and Hama."""
    config = tmp_path / "monitor.toml"
    config.write_text(CONFIG.format(alerts=str(alerts).lower()), encoding="utf-8")
    (tmp_path / "inbox").mkdir()
    write_incidents(tmp_path / "acled.csv", ["Homs", "Hama"], prefix="A", surge=surge)
    done = invoke(config, "ingest", str(tmp_path / "acled.csv"))
    assert done.exit_code == 0, done.output
    return config


def invoke(config: Path, *args: str, now: str = NOW):
    return CliRunner().invoke(cli, ["--config", str(config), *args], env={"MONITOR_NOW": now, "MONITOR_CONFIG": None})


def _write_counts(path: Path, source: str, weeks: list[date], admin1: str = "Aleppo", count: int = 3) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["week_start", "admin1", "count", "source"])
        out.writerows((w.isoformat(), admin1, count, source) for w in weeks)


# ---- the rule: the last complete week each source reaches ------------------------------------------------------


@pytest.mark.parametrize(
    "surge,now,expected",
    [
        (("Homs",), NOW, "2023-W08"),  # data to Sunday 2023-02-26: its week is complete
        ((), NOW, "2023-W07"),  # data to Wednesday 2023-02-22: W08 is partial, W07 is the last complete week
        (("Homs",), "2023-02-22T12:00:00+00:00", "2023-W07"),  # never after the clock's last complete week
    ],
)
def test_the_week_chosen_is_the_last_complete_week_the_data_reaches(tmp_path, surge, now, expected):
    config_path = _setup(tmp_path, surge=surge)
    config = load_config(config_path)
    with Store(config.db_path) as store:
        coverage = choose_week(config, store, week=None, now=datetime.fromisoformat(now))
    assert coverage.week == parse_week(expected) and not coverage.asked and coverage.reached


def test_weekly_counts_complete_their_own_week_and_each_source_is_named(tmp_path):
    """A count row describes its whole week; with two sources the latest week either completes is chosen."""
    config_path = _setup(tmp_path, surge=())  # acled: to Wednesday of 2023-W08, complete to 2023-W07
    counts = tmp_path / "cep.csv"
    _write_counts(counts, "cep", [date(2023, 2, 20)])  # one weekly count for 2023-W08
    assert invoke(config_path, "ingest", str(counts)).exit_code == 0
    config = load_config(config_path)
    with Store(config.db_path) as store:
        coverage = choose_week(config, store, week=None, now=datetime.fromisoformat(NOW))
    assert coverage.week == parse_week("2023-W08")
    assert coverage.announce("checking") == (
        "checking 2023-W08: the latest week with data (acled: last event 2023-02-22; cep: weekly counts to 2023-W08; "
        "the last complete week is 2026-W49)"
    )


# ---- check --------------------------------------------------------------------------------------------------


def test_check_without_week_judges_the_latest_week_with_data_and_says_so_on_stderr(tmp_path):
    config = _setup(tmp_path)
    result = invoke(config, "check", "--format", "json")
    assert result.exit_code == 3, result.output  # Homs surges in 2023-W08; the calendar's week would read all quiet
    assert result.stderr == (
        f"checking 2023-W08: the latest week with data ({LAST_EVENT}; the last complete week is 2026-W49)\n"
    )
    rows = json.loads(result.stdout)  # stdout stays pure JSON for scripts
    assert {r["week"] for r in rows} == {"2023-W08"}
    assert [r["series"] for r in rows if r["alarm"]] == ["events/admin1=Homs", "events/total"]


def test_check_of_a_week_no_data_reaches_exits_6_and_names_the_last_week_with_data(tmp_path):
    config = _setup(tmp_path)
    result = invoke(config, "check", "--week", "2026-W40", "--format", "csv")
    assert result.exit_code == EXIT_NO_DATA == 6
    assert result.stdout == ""  # no table of zeros
    assert result.stderr == (
        f"error: no data for 2026-W40: no source's data reaches it ({LAST_EVENT}); ingest newer data, "
        "or pass --week 2023-W08, the latest week with data\n"
    )
    # the week after the data's last day is the first not reached; the week holding it is judged
    assert invoke(config, "check", "--week", "2023-W09").exit_code == 6
    assert invoke(config, "check", "--week", "2023-W08").exit_code == 3


def test_series_of_a_stale_source_have_no_data_and_are_not_quiet(tmp_path):
    """acled reaches 2023-W08, cep's weekly counts stop at 2023-W06: cep's series are "no data", acled's are judged."""
    config_path = _setup(tmp_path)
    text = config_path.read_text(encoding="utf-8").replace(
        'min_events = 0\n', 'min_events = 0\nfilters = { source = ["acled"] }\n'
    ) + '[[series]]\nname = "cep"\ngroup_by = ["admin1"]\ndetector = "acled-surge"\nmin_events = 0\nrollup = false\n' \
        'filters = { source = ["cep"] }\n'  # fmt: skip
    config_path.write_text(text, encoding="utf-8")
    counts = tmp_path / "cep.csv"
    _write_counts(counts, "cep", [date(2021, 1, 4) + timedelta(weeks=i) for i in range(110)])  # to 2023-W06
    assert invoke(config_path, "ingest", str(counts)).exit_code == 0
    result = invoke(config_path, "check", "--week", "2023-W08", "--format", "json")
    assert result.exit_code == 3, result.output  # judged: acled's Homs surge, not exit 6
    rows = {r["series"]: r for r in json.loads(result.stdout)}
    stale = rows["cep/admin1=Aleppo"]
    assert stale["alarm"] is None and stale["note"] == "no data this week (cep: weekly counts to 2023-W06)"
    assert rows["events/admin1=Homs"]["alarm"] is True and rows["events/admin1=Hama"]["alarm"] is False
    assert "1 of 4 series have no data for 2023-W08 (cep: weekly counts to 2023-W06): not judged" in result.stderr
    report = invoke(config_path, "report", "--week", "2023-W08")
    assert report.exit_code == 0, report.output
    text = (tmp_path / "reports" / "2023-W08" / "report.md").read_text(encoding="utf-8")
    assert "NO DATA FOR THIS WEEK" not in text
    assert "- 1 series with no data for this week, not judged (missing, not zero; their sources' data ends before " \
           "the week: cep: weekly counts to 2023-W06): cep — Aleppo." in text  # fmt: skip
    assert "| no data (cep: weekly counts to 2023-W06) |" in text


# ---- report and backtest ------------------------------------------------------------------------------------


def test_report_without_week_reports_the_latest_week_with_data(tmp_path):
    config = _setup(tmp_path)
    result = invoke(config, "report")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("reporting on 2023-W08: the latest week with data (acled: last event 2023-02-26;")
    assert result.stdout.startswith("2023-W08: 2 of 3 series flagged; report: ")
    assert (tmp_path / "reports" / "2023-W08" / "report.md").exists()


def test_a_report_of_a_week_no_data_reaches_leads_with_it_and_exits_6(tmp_path):
    config = _setup(tmp_path)
    result = invoke(config, "report", "--week", "2026-W40")
    assert result.exit_code == 6
    assert result.stderr.startswith("error: no data for 2026-W40: no source's data reaches it (acled: last event 2023-02-26)")
    lines = (tmp_path / "reports" / "2026-W40" / "report.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# Incident monitor — weekly report 2026-W40"
    assert lines[2].startswith("> **⚠ NO DATA FOR THIS WEEK.** No data for 2026-W40: no source's data reaches it")
    assert "pass --week 2023-W08" in lines[2]
    assert "- No monitored series rose above its threshold this week." not in lines


def test_backtest_without_to_ends_at_the_latest_week_with_data(tmp_path):
    config = _setup(tmp_path)
    result = invoke(config, "backtest", "--weeks", "4", "--out", str(tmp_path / "bt"))
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("replaying up to 2023-W08: the latest week with data (acled: last event 2023-02-26;")
    weeks = pd.read_csv(tmp_path / "bt" / "backtest_weeks.csv")
    assert weeks["week"].tolist() == ["2023-W05", "2023-W06", "2023-W07", "2023-W08"]
    assert "Homs" in result.stdout  # the surge of 2023-W08 is in the replay
    beyond = invoke(config, "backtest", "--to", "2026-W40", "--out", str(tmp_path / "bt2"))
    assert beyond.exit_code == 6 and not (tmp_path / "bt2").exists()
    assert "no data for 2026-W40" in beyond.stderr and "pass --to 2023-W08, the latest week with data" in beyond.stderr


# ---- run, schedule, status ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alerts,args", [(False, ["--no-email"]), (True, [])])
def test_run_of_a_week_no_data_reaches_is_recorded_no_data_and_exits_6(tmp_path, alerts, args):
    """The issue's case: `run --no-email` (alerts off) of the calendar's week used to record it `ok`."""
    config = _setup(tmp_path, alerts=alerts)
    result = invoke(config, "run", *args)
    assert result.exit_code == 6, result.output
    assert result.stderr.splitlines()[0] == (
        f"error: no data for 2026-W49: no source's data reaches it ({LAST_EVENT}); ingest newer data, "
        "or pass --week 2023-W08, the latest week with data"
    )
    with Store(tmp_path / "monitor.db") as store:
        assert [(r["week"], r["status"]) for r in store.runs()] == [("2026-W49", "no-data")]
    report = (tmp_path / "reports" / "2026-W49" / "report.md").read_text(encoding="utf-8")
    assert report.splitlines()[2].startswith("> **⚠ NO DATA FOR THIS WEEK.**")
    owed = json.loads(invoke(config, "status", "--format", "json").stdout)["schedule"]["owed"]
    assert owed == ["2026-W49"]  # not settled


def test_the_scheduler_keeps_a_week_without_data_owed_and_judges_it_once_the_late_file_is_in(tmp_path):
    config = load_config(_setup(tmp_path))
    monday = datetime(2023, 3, 6, 6, 0, tzinfo=timezone.utc)  # 2023-W09 is due; the data ends with 2023-W08
    lines: list[str] = []
    with Store(config.db_path) as store:
        assert catch_up(config, store, clock=lambda: monday, echo=lines.append) == [("2023-W09", 6)]
        assert [w.isoformat() for w in owed_weeks(config, store, now=monday)] == ["2023-02-27"]
        assert lines[-1].startswith(f"{monday.isoformat()} no data for 2023-W09: no source's data reaches it ({LAST_EVENT})")
        assert "the week stays owed and runs again at the next tick" in lines[-1]
        # the late file arrives in the inbox: the next tick runs the week again and judges it
        write_incidents(tmp_path / "inbox" / "w09.csv", ["Homs", "Hama"], prefix="L", weeks=113)
        assert catch_up(config, store, clock=lambda: monday, echo=lines.append) == [("2023-W09", 0)]
        assert owed_weeks(config, store, now=monday) == []
        assert [r["status"] for r in store.runs()] == ["no-data", "ok"]
    assert "2023-W09: 0 of 3 series flagged" in lines[-1]


def test_status_shows_how_many_weeks_each_source_lags_the_clock(tmp_path):
    config = _setup(tmp_path)
    counts = tmp_path / "cep.csv"
    _write_counts(counts, "cep", [date(2026, 11, 23)])  # a weekly count of 2026-W48: one week behind 2026-W49
    assert invoke(config, "ingest", str(counts)).exit_code == 0
    info = json.loads(invoke(config, "status", "--format", "json").stdout)
    lag = {s["source"]: (s["last_week_with_data"], s["weeks_behind"]) for s in info["sources"]}
    assert lag == {"acled": ("2023-W08", 197), "cep": ("2026-W48", 1)}
    table = invoke(config, "status").stdout.splitlines()
    at = table.index("data freshness per source")
    assert table[at + 1].split()[:6] == ["source", "records", "latest_event_date", "last_week_with_data", "weeks_behind",
                                          "last_ingest"]  # fmt: skip
    assert table[at + 2].split()[:5] == ["acled", "683", "2023-02-26", "2023-W08", "197"]
    assert table[at + 3].split()[:5] == ["cep", "1", "2026-11-23", "2026-W48", "1"]


def test_a_source_up_to_date_lags_zero_weeks(tmp_path):
    config_path = _setup(tmp_path)
    info = json.loads(invoke(config_path, "status", "--format", "json", now="2023-02-27T06:00:00+00:00").stdout)
    assert [(s["last_week_with_data"], s["weeks_behind"]) for s in info["sources"]] == [("2023-W08", 0)]


def test_the_ucdp_release_of_the_issue_is_checked_up_to_its_last_complete_week(tmp_path, shared_data):
    """The issue's reproduction: UCDP GED Syria ends on Saturday 2019-11-30, so 2019-W47 is its last complete week;
    the calendar's week is no data (exit 6), not "nothing flagged" (exit 0)."""
    config = tmp_path / "monitor.toml"
    config.write_text(CONFIG.format(alerts="false").replace('detector = "acled-surge"\n', ""), encoding="utf-8")
    assert invoke(config, "ingest", str(shared_data / "ucdp_ged_syria_2016-01-01_2019-11-30.csv")).exit_code == 0
    result = invoke(config, "check", "--format", "csv")
    assert result.stderr == ("checking 2019-W47: the latest week with data (ucdp: last event 2019-11-30; "
                             "the last complete week is 2026-W49)\n")  # fmt: skip
    assert set(pd.read_csv(io.StringIO(result.stdout))["week"]) == {"2019-W47"}
    calendar = invoke(config, "check", "--week", "2026-W49")
    assert calendar.exit_code == 6 and "pass --week 2019-W47, the latest week with data" in calendar.stderr


def test_a_config_without_series_says_so_rather_than_no_data(tmp_path):
    """With no [[series]] no source is in use; `check` said "(no data ingested)" of a database with 9,000 events."""
    write_incidents(tmp_path / "acled.csv", ["Homs"], prefix="C")
    (tmp_path / "monitor.toml").write_text('[database]\npath = "m.db"\n', encoding="utf-8")
    runner = CliRunner()
    env = {"MONITOR_NOW": "2023-03-06T06:00:00+00:00", "MONITOR_CONFIG": None}
    assert runner.invoke(cli, ["--config", str(tmp_path / "monitor.toml"), "ingest", str(tmp_path / "acled.csv")], env=env).exit_code == 0
    result = runner.invoke(cli, ["--config", str(tmp_path / "monitor.toml"), "check"], env=env)
    assert "checking 2023-W09: the last complete week (no [[series]] configured, so no source is in use)" in result.output
    assert "no data ingested" not in result.output
