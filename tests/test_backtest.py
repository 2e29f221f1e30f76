"""`monitor backtest`: each replayed week is judged as the weekly job would have judged it."""

from __future__ import annotations

import math
import shutil
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import config_from_dict
from monitor.backtest import backtest_csv, backtest_store
from monitor.detection import detect_week
from monitor.series import parse_week, week_label
from monitor.store import Store
from tests.conftest import demo_config, load_reference, reference_cases

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
WEEK = parse_week("2023-W09")


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("detector", "params"),
    [(None, None), ("cusum", None), ("farrington-cusum", {"b": 3})],
    ids=["configured", "cusum-stateful", "farrington-cusum-stateful"],
)
@pytest.mark.parametrize("control", ["per-series", "fdr"])
def test_each_replayed_week_equals_the_weekly_check_of_that_week(demo_dir, detector, params, control):
    config = demo_config(demo_dir, multiple_testing=control)
    first = WEEK - timedelta(weeks=5)
    with Store(config.db_path) as store:
        replay = backtest_store(
            config, store, first_week=first, last_week=WEEK, weeks=52, now=NOW, detector=detector, params=params
        )
        assert replay.weeks == 6 and len(replay.per_series) == 31  # the demo's 31 series (8 of Islamic State fatalities)
        for k in range(6):
            week = first + timedelta(weeks=k)
            checked = detect_week(config, store, week=week, now=NOW, detector=detector, params=params, with_context=False)
            rows = replay.detail[replay.detail["week"] == week_label(week)].set_index("series")
            assert len(rows) == len(checked.results)
            for r in checked.results:
                row, d = rows.loc[r.series.key], r.detection
                assert row["level"] == d.level, (week, r.series.key)
                assert (None if pd.isna(row["alarm"]) else bool(row["alarm"])) == d.alarm
                assert _same(row["expected"], d.expected) and _same(row["threshold"], d.threshold)
                assert _same(row["qvalue"], d.qvalue)


def test_backtest_counts_alerts_per_series_and_week(demo_dir):
    config = demo_config(demo_dir)
    with Store(config.db_path) as store:
        replay = backtest_store(config, store, first_week=None, last_week=WEEK, weeks=26, now=NOW)
    assert replay.first_week == WEEK - timedelta(weeks=25) and replay.weeks == 26
    assert int(replay.per_week["alerts"].sum()) == int(replay.per_series["alerts"].sum()) == int(replay.detail["alarm"].fillna(False).sum())
    last = replay.per_week.set_index("week").loc["2023-W09"]
    assert {"is_attacks/admin1=Homs", "is_attacks/admin1=Hama", "is_attacks/admin1=Deir ez Zor"} <= set(last["alerted"].split("; "))
    homs = replay.per_series.set_index("series").loc["is_attacks/admin1=Homs"]
    assert homs["last_alert"] == "2023-W09" and homs["episodes"] <= homs["alerts"]


def test_cli_backtest_writes_tables_and_refuses_bad_options(demo_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "bt"
    db = tmp_path / "monitor.db"  # a backtest stores its measured rate: keep the shared demo database unchanged
    shutil.copyfile(demo_dir / "monitor.db", db)
    args = ["--config", str(demo_dir / "monitor.toml"), "--db", str(db), "backtest", "--to", "2023-W09", "--weeks", "4", "--out", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Replayed 4 weeks (2023-W06 to 2023-W09) of 31 series" in result.output
    for name in ("backtest.md", "backtest_detail.csv", "backtest_series.csv", "backtest_weeks.csv"):
        assert (out / name).is_file()
    weeks = pd.read_csv(out / "backtest_weeks.csv")
    assert weeks["week"].tolist() == ["2023-W06", "2023-W07", "2023-W08", "2023-W09"]
    assert len(pd.read_csv(out / "backtest_detail.csv")) == 4 * 31
    bad = runner.invoke(cli, ["--config", str(demo_dir / "monitor.toml"), "backtest", "--counts", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "--counts needs --detector" in bad.output
    bad = runner.invoke(cli, ["--config", str(demo_dir / "monitor.toml"), "backtest", "--param", "alpha=0.01"])
    assert bad.exit_code == 2 and "--param needs --detector" in bad.output


def _replayable(prefix: str) -> list:
    # stateless detectors only: R ran cusum/glrnb as one chart from the range's start
    return [c for c in reference_cases(prefix) if c.values[0] is None or c.values[0]["range_last_index"] == c.values[0]["n_weeks_series"]]


@pytest.mark.parametrize("row", _replayable("ff_") + _replayable("ears_"))
def test_replaying_a_counts_file_gives_r_surveillances_alarms(row, shared_reference, tmp_path):
    case = load_reference(row, shared_reference)
    path = tmp_path / "counts.csv"
    pd.DataFrame({"week_start": case.counts.index.strftime("%Y-%m-%d"), "count": case.counts.to_numpy()}).to_csv(path, index=False)
    config = config_from_dict({}, base_dir=tmp_path)
    replay = backtest_csv(path, config=config, detector=case.detector, params=case.params, weeks=len(case.weeks))
    assert replay.weeks == len(case.weeks)
    ours = replay.detail["alarm"].astype("boolean").reset_index(drop=True)
    theirs = case.golden[case.alarm_column].map(lambda a: pd.NA if pd.isna(a) else bool(a)).astype("boolean")
    assert ours.isna().tolist() == theirs.isna().tolist()
    assert ours.fillna(False).tolist() == theirs.fillna(False).tolist()


@pytest.mark.parametrize("detector", ["farrington-cusum", "nb-recent"])
def test_series_replayed_together_are_each_replayed_alone(detector):
    """`replay_many` hands the series of a backtest to the chart detectors together (Farrington's fits batched,
    templates shared by series of one calendar): each series' rows are exactly those of its replay alone, for
    series of one calendar, of another (a later start), shorter ones, one too short to judge and an empty one."""
    import numpy as np

    from monitor.backtest import replay_counts, replay_many
    from monitor.detectors import make_params

    rng = np.random.default_rng(5)
    def series(start: str, weeks: int, mean: float) -> pd.Series:
        return pd.Series(rng.negative_binomial(2, 2 / (2 + mean), weeks).astype(float),
                         index=pd.date_range(start, periods=weeks, freq="7D"), name="count")  # fmt: skip

    jobs = [(series("2019-01-07", 260, 3.0), 100, 0), (series("2019-01-07", 260, 0.4), 0, 2),
            (series("2019-03-04", 200, 6.0), 150, 0), (series("2019-01-07", 120, 1.0), 30, 0),
            (series("2019-01-07", 3, 1.0), 0, 0), (series("2019-01-07", 260, 2.0), 260, 0)]  # fmt: skip
    params = make_params(detector, {"b": 2, "b_min": 1} if detector == "farrington-cusum" else {})
    together = replay_many(jobs, detector=detector, params=params, fallback_params=None)
    assert [len(frame) for frame in together] == [160, 260, 50, 90, 3, 0]
    for (counts, first, floor), frame in zip(jobs, together):
        alone = replay_counts(counts, detector=detector, params=params, fallback_params=None, first=first, min_count=floor)
        pd.testing.assert_frame_equal(frame, alone, check_exact=True)


@pytest.mark.parametrize("detector", ["farrington-cusum", "nb-recent"])
def test_the_replay_of_every_week_equals_the_weekly_job_on_the_series_cut_at_it(detector):
    """`replay_counts` (the chart detectors' replay computes each week's baseline once and runs each chart
    from where the weekly job starts it) gives, week for week, the row `detect_counts` gives on the series
    cut at that week: over a series' whole span, through the weeks nothing judges, the fallback's weeks and
    the detector's own, with a surge and a `min_count` floor."""
    import numpy as np

    from monitor.backtest import replay_counts
    from monitor.detection import detect_counts
    from monitor.detectors import make_params

    rng = np.random.default_rng(11)
    mean = np.r_[np.full(150, 2.0), np.full(6, 9.0), np.full(144, 2.5)]  # a surge in its third year; charts of 156 weeks
    counts = pd.Series(rng.negative_binomial(2, 2 / (2 + mean)).astype(float),
                       index=pd.date_range("2019-01-07", periods=len(mean), freq="7D"), name="count")  # fmt: skip
    params = make_params(detector, {"b": 2, "b_min": 1} if detector == "farrington-cusum" else {})
    replay = replay_counts(counts, detector=detector, params=params, fallback_params=None, first=0, min_count=3)
    assert len(replay) == len(counts)
    used = set(replay["detector"])
    assert used == ({"farrington-cusum", "nb-recent"} if detector == "farrington-cusum" else {"nb-recent"})
    assert replay["alarm"].isna().any() and replay["alarm"].fillna(False).any()
    # every week where the detector or the fallback takes over or a chart's start moves off the series' start,
    # and every fifth week besides (each check runs the weekly job on its own: a few seconds for all)
    handover = {t for t in range(1, len(counts)) if replay["detector"].iloc[t] != replay["detector"].iloc[t - 1]}
    weeks = sorted({t for h in handover for t in range(h - 3, h + 4)} | set(range(0, len(counts), 5)) | {len(counts) - 1})
    assert len(handover) >= (1 if detector == "farrington-cusum" else 0)
    for t in weeks:
        weekly = detect_counts(counts.iloc[: t + 1], lookback=0, detector=detector, params=params, fallback_params=None, min_count=3)
        row = replay.iloc[t]
        for column in weekly.columns:
            a, b = weekly[column].iloc[0], row[column]
            if isinstance(a, float) or isinstance(b, float):
                assert (pd.isna(a) and pd.isna(b)) or a == b, (t, column, a, b)
            else:
                assert (pd.isna(a) and pd.isna(b)) if pd.isna(a) is True or pd.isna(b) is True else a == b, (t, column, a, b)
