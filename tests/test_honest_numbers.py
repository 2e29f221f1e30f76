"""Honest numbers (issue 11, item 4): the false-alert rate a report states is the one a backtest measured.

The surge rule on hand-made counts; then, on a real SQLite file of synthetic weekly counts
through the CLI (CliRunner, clock fixed with $MONITOR_NOW): the report first labels its
figure nominal and names the command that measures it; `monitor backtest` prints alerts per
100 series-weeks and the share per detector, which this file recomputes from the detail
table and from the counts themselves (its own reading of the surge rule); the measured rate
is stored, and the next report states it.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import load_config
from monitor.store import Store
from monitor.surges import in_surge, surge_episodes, surge_flags

NOW = "2024-03-05T09:00:00+00:00"
CONFIG = """\
[database]
path = "monitor.db"
[ingest]
inbox = ["inbox"]
[report]
folder = "reports"
annotations = []
[alerts]
enabled = false
[[series]]
name = "events"
group_by = ["admin1"]
detector = "ears"
min_events = 0
[[series]]
name = "south"
group_by = ["admin1"]
filters = { admin1 = ["Homs", "Hama"] }
detector = "acled-surge"
min_events = 0
"""
#: The admin1 areas of each series definition (for its `total` roll-up).
AREAS = {"events": ("Aleppo", "Homs", "Hama", "Idleb"), "south": ("Homs", "Hama")}
START = date(2018, 1, 1)  # a Monday (2018-W01)
WEEKS = 321  # to 2024-02-19 (2024-W08)
LAST = "2024-W08"
FIRST = "2023-W37"  # 24 replayed weeks


def _counts() -> dict[str, list[int]]:
    """Three noisy series (one with a planted surge, one with isolated spikes) and one that starts late."""
    rng = np.random.default_rng(20240305)
    base = {name: rng.poisson(mean, WEEKS).astype(int) for name, mean in (("Aleppo", 6), ("Homs", 4), ("Hama", 3))}
    base["Homs"][300:306] += [10, 14, 18, 16, 12, 9]  # a surge inside the replayed range
    base["Hama"][[295, 310]] += 9  # one-week spikes: too small to be a surge by the rule
    base["Idleb"] = np.concatenate([np.zeros(WEEKS - 30, dtype=int), rng.poisson(3, 30)])  # zeros until 30 weeks ago
    base["Idleb"][-8] += 12
    return {k: v.tolist() for k, v in base.items()}


def invoke(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args], env={"MONITOR_NOW": NOW, "MONITOR_CONFIG": None})


@pytest.fixture(scope="module")
def counts_db(tmp_path_factory) -> tuple[Path, dict[str, list[int]]]:
    folder = tmp_path_factory.mktemp("honest")
    (folder / "inbox").mkdir()
    config = folder / "monitor.toml"
    config.write_text(CONFIG, encoding="utf-8")
    counts = _counts()
    with open(folder / "counts.csv", "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["week_start", "admin1", "count"])
        for name, values in counts.items():
            first = next(i for i, v in enumerate(values) if v) if name == "Idleb" else 0
            out.writerows(((START + timedelta(weeks=i)).isoformat(), name, v) for i, v in enumerate(values) if i >= first)
    done = invoke(config, "ingest", str(folder / "counts.csv"))
    assert done.exit_code == 0, done.output
    return config, counts


# ---- the surge rule ----------------------------------------------------------------------------------------


#: 12 quiet weeks of 1 event, then 4 weeks of 3 (sum 12 >= 10; 8 weeks before: sum 8), then 2 quiet weeks.
SERIES = [1.0] * 12 + [3.0] * 4 + [1.0] * 2


def test_surge_weeks_and_the_in_surge_window_on_hand_made_counts():
    assert [t for t, f in enumerate(surge_flags(SERIES)) if f] == [14, 15, 16]
    # the surge 14..16 makes 11..16 in-surge (from 3 weeks before its onset)
    assert in_surge(SERIES, lo=0).tolist() == [t in range(11, 17) for t in range(18)]
    assert in_surge(SERIES, lo=12, hi=15).tolist() == [True] * 4
    # a surge that starts after the range does not reach back into it; one running into it counts from its start
    assert not in_surge(SERIES, lo=0, hi=12).any()
    assert in_surge(SERIES, lo=16).tolist() == [True, False]
    assert surge_episodes(surge_flags(SERIES), 16) == [(16, 16)]
    # 4-week sum under 10 is never a surge, however steep; flat high counts are not a surge either
    assert not any(surge_flags([0.0] * 12 + [9.0] + [0.0] * 3))
    assert not any(surge_flags([20.0] * 30))


# ---- backtest -> database -> report, through the CLI ------------------------------------------------------


def _surge_mask(values: list[int], lo: int, hi: int) -> np.ndarray:
    """This test's own reading of the rule: S4 >= 10 and S4 >= 2 x S8/2; in-surge from onset - 3 to the last week."""
    y = np.asarray(values, dtype=float)
    flag = np.zeros(len(y), dtype=bool)
    for t in range(11, len(y)):
        s4, s8 = y[t - 3 : t + 1].sum(), y[t - 11 : t - 3].sum()
        flag[t] = s4 >= 10 and s4 >= s8
    inside = np.zeros(len(y), dtype=bool)
    t = lo
    while t <= hi:
        if flag[t]:
            end = t
            while end + 1 <= hi and flag[end + 1]:
                end += 1
            inside[max(t - 3, 0) : end + 1] = True
            t = end + 1
        else:
            t += 1
    return inside[lo : hi + 1]


def test_backtest_rate_is_stored_and_the_report_states_it(counts_db, tmp_path):
    config, counts = counts_db
    before = invoke(config, "report", "--week", LAST)
    assert before.exit_code == 0, before.output
    report = Path(config.parent / "reports" / LAST / "report.md")
    text = report.read_text(encoding="utf-8")
    # no backtest yet: the alpha figure is labelled nominal and the command that measures it is named
    line = next(x for x in text.splitlines() if "false alerts a week" in x.lower() and x.startswith("- "))
    assert "nominal" in line and "usually exceeded" in line and f"`monitor backtest --from 2023-W09 --to {LAST}`" in line
    assert "These figures are nominal" in text
    assert json.loads((report.parent / "summary.json").read_text())["false_alerts_basis"] == "nominal"

    out = tmp_path / "bt"
    run = invoke(config, "backtest", "--from", FIRST, "--to", LAST, "--out", str(out))
    assert run.exit_code == 0, run.output
    detail = pd.read_csv(out / "backtest_detail.csv")
    n = detail["series"].nunique()
    assert n == 8 and len(detail) == n * 24 and set(detail["week"]) >= {FIRST, LAST}  # 4 + 2 areas, 2 totals

    # independently: alerts are rows with alarm 1, warnings are not alerts, shares by the detector column
    alerts = detail["alarm"] == 1
    assert alerts.sum() > 0 and (detail.loc[detail["level"] == "warning", "alarm"] != 1).all()
    per100 = 100 * alerts.sum() / len(detail)
    masks = []
    for key, rows in detail.groupby("series", sort=False):
        values = _series_counts(key, counts)
        lo = len(values) - len(rows)
        masks.append(pd.Series(_surge_mask(values, lo, len(values) - 1), index=rows.index))
    inside = pd.concat(masks).reindex(detail.index).to_numpy()
    assert inside.any(), "the planted Homs surge is a known surge"
    assert detail["surge"].astype(bool).tolist() == inside.tolist()
    outside100 = 100 * (alerts & ~inside).sum() / (~inside).sum()
    assert f"Alerts per 100 series-weeks: {per100:.2f} in all, {outside100:.2f} outside known surges" in run.output
    n_alerts = int(alerts.sum())
    by = detail.loc[alerts, "detector"].value_counts()
    for name, k in by.items():
        assert f"{name} {k} ({k / n_alerts:.0%})" in run.output
    shares = re.search(r"Alerts by detector used: (.+)\.", run.output).group(1)
    assert shares.count("(") == detail["detector"].nunique()  # every detector used, also one without alerts
    summary = json.loads((out / "backtest_summary.json").read_text())
    assert summary["alerts"] == n_alerts and summary["series_weeks"] == len(detail)
    assert summary["alerts_per_100_series_weeks_outside_surges"] == pytest.approx(outside100, abs=1e-4)

    # stored in the database with its range, counts and fingerprint
    with Store(load_config(config).db_path) as store:
        (row,) = store.backtests()
    assert (row["first_week"], row["last_week"], row["weeks"], row["series"]) == (FIRST, LAST, 24, n)
    assert (row["series_weeks"], row["alerts"], row["outside_alerts"]) == (len(detail), n_alerts, int((alerts & ~inside).sum()))
    assert row["outside_per_100"] == pytest.approx(outside100, abs=1e-4) and row["fingerprint"] in run.output
    assert row["ran_at"].isoformat() == NOW and "4-week sum" in row["surge_rule"]

    # the next report states the measured rate instead of the nominal one
    after = invoke(config, "report", "--week", LAST)
    assert after.exit_code == 0, after.output
    text = report.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("- False alerts:"))
    assert line == (
        f"- False alerts: measured by `monitor backtest` over {FIRST}..{LAST}: {outside100:.2f} alerts per 100 "
        f"series-weeks outside surges, i.e. about {_about(outside100 / 100 * n)} false alerts a week for these {n} series "
        "(only 24 weeks replayed: rough; see Method)."
    )
    assert "Expected false alerts a week" not in text and "These figures are nominal" not in text
    assert f"Measured: `monitor backtest` of this configuration over {FIRST}..{LAST} (24 weeks, {n} series" in text
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["false_alerts_basis"] == "measured"
    assert summary["measured_false_alerts_a_week"] == pytest.approx(outside100 / 100 * n, abs=1e-4)

    # another detector is another configuration: its report does not borrow this rate
    other = invoke(config, "backtest", "--from", FIRST, "--to", LAST, "--detector", "acled-surge", "--out", str(tmp_path / "b2"))
    assert other.exit_code == 0, other.output
    with Store(load_config(config).db_path) as store:
        rows = store.backtests()
    assert len(rows) == 2 and rows[0]["fingerprint"] != rows[1]["fingerprint"] and rows[0]["detector"] == "acled-surge"
    again = invoke(config, "report", "--week", LAST)
    assert again.exit_code == 0 and f"{outside100:.2f} alerts per 100" in report.read_text(encoding="utf-8")


def _about(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def _series_counts(key: str, counts: dict[str, list[int]]) -> list[int]:
    """The weekly counts of a series key, `events/admin1=Homs` or `events/total`, zero-filled from START
    (a group's series starts at its own first event, a total at the first of all)."""
    name, cut = key.split("/", 1)
    areas = AREAS[name] if cut == "total" else (cut.split("=", 1)[1],)
    values = [int(sum(week)) for week in zip(*(counts[a] for a in areas))]
    first = next(i for i, v in enumerate(values) if v)
    return values[first:]
