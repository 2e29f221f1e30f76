"""`monitor backtest --as-known` (issue 14, item 5): each past week judged on the data the database had at its run.

Weekly deliveries of one ACLED export (tests/test_history.py's `weekly_deliveries`): 24 event weeks of 4 events
(2 reach the export the Monday after their week, 1 a week later, 1 two weeks later), and in week 19 (2023-W20) a
surge of 6 events delivered at once and 6 more a week later. Each delivery is ingested on Monday at 06:00; the job
runs on Wednesday at 06:00 (the default schedule), so each run knows that Monday's delivery. By hand:

* on today's data 2023-W20 has 16 events, above nb-recent's threshold of 11: one alert episode;
* at its own run only 8 were known: no alert, but its nowcast (14, 90 % 10 to 20) ends above the threshold with a
  77 % chance, a warning; the run of 2023-W21 re-judges it on 15 known events: an alert one week late;
* the 7 weeks from 2023-W17 on had a nowcast at their run: 2 known of today's 4 (2023-W23: of 3, its fourth
  event is still to come) and 8 of 16 for 2023-W20, so the count known then was off by −2, −2, −2, −8, −2, −2
  and −1: a mean of −19/7 = −2.714.
"""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner
from test_history import monday, weekly_deliveries

from monitor.cli import cli


def test_as_known_replays_what_each_run_knew_and_when_the_surge_was_first_alerted(tmp_path):
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\npath = "m.db"\n[[series]]\nname = "all"\n', encoding="utf-8")
    weekly_deliveries(tmp_path, config, weeks=24, deliveries=24, surge=6, late=6, surge_week=19)
    out = tmp_path / "bt"
    result = CliRunner().invoke(cli, ["--config", str(config), "backtest", "--from", "2023-W15", "--to", "2023-W23", "--as-known",
                                      "--out", str(out)], env={"MONITOR_NOW": monday(24).isoformat()})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ("As known at the time: of 1 alert episodes on today's data, 0 were alerted the same week, 0 earlier, 1 later "
            "(by 1 weeks on average) and 0 never; 0 weeks alerted at the time that today's data does not alert.") in result.stdout  # fmt: skip
    assert "Counting the nowcast's warnings (likely surge once reporting completes) as a first flag: 1 the same week" in result.stdout

    detail = pd.read_csv(out / "as_known_detail.csv", keep_default_na=False).set_index("week")
    surge = detail.loc["2023-W20"]
    assert (surge["observed_then"], surge["level_then"], surge["alarm_then"], float(surge["nowcast"])) == (8, "warning", 0, 14)
    assert (surge["observed"], surge["alarm"], surge["alerted_at"], surge["flagged_at"]) == (16, 1, "2023-W21", "2023-W20")
    assert surge["run_at"] == "2023-05-24 06:00"  # the default schedule: Wednesday 06:00, after Monday's delivery
    assert list(detail["observed_then"]) == [2] * 5 + [8] + [2] * 3

    summary = json.loads((out / "as_known_summary.json").read_text(encoding="utf-8"))
    assert summary["timing"] == {"episodes": 1, "same": 0, "earlier": 0, "later": 1, "missed": 0, "unconfirmed": 0,
                                 "mean_weeks_late": 1.0}  # fmt: skip
    assert summary["timing_with_nowcast"]["same"] == 1
    nowcast = summary["nowcast"]
    assert (nowcast["weeks"], nowcast["raw_bias"], nowcast["coverage"]) == (7, round(-19 / 7, 3), 1.0)
    assert abs(nowcast["nowcast_bias"]) < 0.1 < abs(nowcast["raw_bias"])
    assert "## As known at the time" in (out / "backtest.md").read_text(encoding="utf-8")


def test_as_known_on_a_database_loaded_in_one_go_says_nothing_was_known_before(tmp_path):
    """Everything ingested at once, after the replayed weeks: no run of those weeks had anything to judge."""
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\npath = "m.db"\n[[series]]\nname = "all"\n', encoding="utf-8")
    weekly_deliveries(tmp_path, config, weeks=24, deliveries=24, first=24)  # only the last delivery is ingested
    result = CliRunner().invoke(cli, ["--config", str(config), "backtest", "--from", "2023-W15", "--to", "2023-W23", "--as-known",
                                      "--out", str(tmp_path / "bt")], env={"MONITOR_NOW": monday(24).isoformat()})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "9 replayed weeks ran before anything was ingested: nothing was known then" in result.stdout
    assert "of 0 alert episodes" in result.stdout


def test_as_known_needs_the_database(tmp_path):
    counts = tmp_path / "c.csv"
    counts.write_text("week_start,count\n2023-01-02,1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["backtest", "--counts", str(counts), "--detector", "nb-recent", "--as-known"])
    assert result.exit_code == 2 and "--as-known apply to the database" in result.output
