"""`monitor compare --event` (issue 16, item 3): each series before and after a dated event.

The founding question on the demo: did Islamic State attacks in central Syria rise after the 6 February 2023
earthquake, and by how much? One sentence per governorate answers it.
"""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.detectors.rate_ratio import rate_ratio

NOW = "2026-11-24T09:00:00+00:00"


def test_a_level_only_comparison_is_the_ratio_of_the_means():
    """Under 8 weeks before, the model is the level and the after indicator alone: its maximum-likelihood ratio is
    exactly the ratio of the window means (mean 2 before, 6 after: ×3), and the interval contains it."""
    fit = rate_ratio([1, 3, 2, 4, 2, 0], [5, 7, 6])
    assert (fit.before_rate, fit.after_rate) == (2.0, 6.0)
    assert fit.rate_ratio == pytest.approx(3.0, rel=1e-4)
    assert fit.ci_low < 3.0 < fit.ci_high and fit.ci_low > 1.0
    assert "level" in fit.model and "trend" not in fit.model


def test_no_events_before_has_no_ratio_to_speak_of():
    fit = rate_ratio([0] * 10, [1, 0, 2])
    assert math.isinf(fit.rate_ratio) and math.isnan(fit.ci_low) and fit.note == "no events before: no rate to compare with"
    assert math.isnan(rate_ratio([0] * 10, [0, 0]).rate_ratio)


def _is_counts(demo_dir, admin1: str, start: str, end: str) -> int:
    """Islamic State events in the demo database between two dates, counted with SQL (independent of the code)."""
    with sqlite3.connect(demo_dir / "monitor.db") as conn:
        (n,) = conn.execute("SELECT count(*) FROM incidents WHERE admin1 = ? AND event_date BETWEEN ? AND ?"
                            " AND (actor1 LIKE '%Islamic State%' OR actor2 LIKE '%Islamic State%')", [admin1, start, end]).fetchone()  # fmt: skip
    return n


def test_the_founding_question_on_the_demo(demo_dir, tmp_path):
    config = str(demo_dir / "monitor.toml")
    result = CliRunner().invoke(cli, ["--config", config, "compare", "--event", "2023-02-06", "--series", "is_attacks",
                                      "--format", "json"], env={"MONITOR_NOW": NOW})  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r["series"]: r for r in json.loads(result.stdout)}
    first = next(iter(rows.values()))
    assert list(first)[:6] == ["series", "before_rate", "after_rate", "rate_ratio", "ci_low", "ci_high"]
    for place in ("Homs", "Hama", "Deir ez Zor"):
        row = rows[f"is_attacks/admin1={place}"]
        # six weeks from Monday 2023-02-06 to Sunday 2023-03-19; 52 weeks before it
        assert row["after_rate"] * 6 == pytest.approx(_is_counts(demo_dir, place, "2023-02-06", "2023-03-19"))
        assert row["before_rate"] * 52 == pytest.approx(_is_counts(demo_dir, place, "2022-02-07", "2023-02-05"))
        assert (row["before_weeks"], row["after_weeks"]) == (52, 6)
        assert row["ci_low"] > 1, row  # a clear rise in each of the three governorates
    table = CliRunner().invoke(cli, ["--config", config, "compare", "--event", "2023-02-06", "--series", "is_attacks",
                                     "--out", str(tmp_path / "charts")], env={"MONITOR_NOW": NOW})  # fmt: skip
    assert table.exit_code == 0, table.output
    homs = next(line for line in table.stdout.splitlines() if line.startswith("Islamic State events — Homs:"))
    assert "events a week in the 6 weeks from 2023-02-06, against" in homs and homs.endswith("a clear rise.")
    charts = sorted(p.name for p in (tmp_path / "charts").glob("*.png"))
    assert "is_attacks-admin1-homs.png" in charts and (tmp_path / "charts" / "is_attacks-admin1-homs.png").stat().st_size > 10_000


def test_bad_options_are_usage_errors(demo_dir):
    config = str(demo_dir / "monitor.toml")
    bad_date = CliRunner().invoke(cli, ["--config", config, "compare", "--event", "6 Feb 2023"], env={"MONITOR_NOW": NOW})
    assert bad_date.exit_code == 2 and "is not a date YYYY-MM-DD" in bad_date.output
    bad_weeks = CliRunner().invoke(cli, ["--config", config, "compare", "--event", "2023-02-06", "--before", "a year"],
                                   env={"MONITOR_NOW": NOW})  # fmt: skip
    assert bad_weeks.exit_code == 2 and "is not a number of weeks (e.g. 52w, 6w or 1y)" in bad_weeks.output
    future = CliRunner().invoke(cli, ["--config", config, "compare", "--event", "2024-06-01"], env={"MONITOR_NOW": NOW})
    assert future.exit_code == 1 and "has no data yet: the latest week with data is" in future.output


def test_the_weekly_report_compares_each_flagged_series_since_each_annotation(demo_dir):
    """The demo's config draws the 2023-02-06 earthquake; the report of 2023-W09 (four weeks from the event's week)
    gives each flagged Islamic State series the same comparison, as `monitor compare --after 4w` does."""
    report = (demo_dir / "reports" / "2023-W09" / "report.md").read_text(encoding="utf-8")
    line = next(x for x in report.splitlines() if x.startswith("Since Turkey–Syria earthquake (2023-02-06): Islamic State events — Homs:"))
    cli_run = CliRunner().invoke(cli, ["--config", str(demo_dir / "monitor.toml"), "compare", "--event", "2023-02-06", "--after", "4w",
                                       "--series", "key:is_attacks/admin1=Homs", "--format", "json"], env={"MONITOR_NOW": NOW})  # fmt: skip
    (row,) = json.loads(cli_run.stdout)
    assert f"×{row['rate_ratio']:.2f}" in line and "in the 4 weeks from 2023-02-06" in line and line.endswith("a clear rise.")


def test_no_events_after_is_a_ratio_of_zero_not_a_crash():
    fit = rate_ratio([3, 2, 4, 3] * 13, [0] * 6)
    assert (fit.rate_ratio, fit.ci_low) == (0.0, 0.0)
    assert fit.ci_high == pytest.approx((3 / 6) / 3.0)  # a Poisson count of zero is at most 3 events at 95 %


def test_the_before_window_reaches_back_to_the_start_of_the_data_not_of_the_series():
    """A series whose first event comes 11 weeks after the data starts: the 11 weeks before it count as zeros."""
    import pandas as pd

    from monitor.compare import compare_counts

    counts = pd.Series([1.0, 0, 2, 0, 1, 0], index=pd.date_range("2020-03-16", periods=6, freq="7D"))
    c = compare_counts(counts, event_week=pd.Timestamp("2020-04-06").date(), before=52, after=3,
                       data_start=pd.Timestamp("2019-12-30").date())  # fmt: skip
    assert (c.before_weeks, c.before_events, c.after_weeks) == (14, 3.0, 3)
    assert c.before_rate == pytest.approx(3 / 14)
    assert "only 14 weeks before (the data starts 2019-12-30)" in c.note


def test_json_has_null_where_there_is_no_ratio(demo_dir):
    result = CliRunner().invoke(cli, ["--config", str(demo_dir / "monitor.toml"), "compare", "--event", "2020-01-13",
                                      "--before", "2w", "--after", "1w", "--format", "json"], env={"MONITOR_NOW": NOW})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Infinity" not in result.stdout and "NaN" not in result.stdout
    json.loads(result.stdout)
