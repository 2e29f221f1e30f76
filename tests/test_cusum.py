"""cusum against R surveillance 1.20.3 (`../shared/reference/*.cusum.csv`), and its reset.

Cases come from manifest.csv: the R call gives k, h, m and trans; R never resets after an
alarm, so the translated parameters carry reset=false.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import assert_close, load_reference, reference_cases
from pydantic import ValidationError

from monitor.detectors import run_detector
from monitor.detectors._common import CORE_COLUMNS
from monitor.detectors.cusum import CusumParams, detect, min_history

CASES = reference_cases("cusum")


@pytest.mark.parametrize("row", CASES)
def test_matches_r_surveillance_without_reset(row, shared_reference):
    case = load_reference(row, shared_reference)
    assert case.detector == "cusum" and case.params["reset"] == "false"
    out = detect(case.counts, CusumParams(**case.params), weeks=case.weeks)
    golden = case.golden

    assert (out["week_start"] == golden["week_start"]).all()
    assert (out["count"] == golden["count"]).all()
    assert_close(out["expected"], golden["expected"], "expected")
    assert_close(out["upperbound"], golden["upperbound"], "upperbound")
    assert_close(out["cusum_statistic"], golden["cusum_statistic"], "cusum_statistic")
    r = golden["alarm"].astype("boolean")
    assert out["alarm"].isna().tolist() == r.isna().tolist()
    assert (out["alarm"].astype(bool).to_numpy() == r.astype(bool).to_numpy()).all()
    assert int(out["alarm"].sum()) == int(row["n_alarms"])


@pytest.mark.parametrize("row", CASES)
def test_reset_alarms_at_most_as_often_and_bound_means_alarm(row, shared_reference):
    case = load_reference(row, shared_reference)
    params = CusumParams(**{**case.params, "reset": "true"})
    out = run_detector("cusum", params, case.counts, weeks=case.weeks)
    assert out["alarm"].sum() <= int(row["n_alarms"])
    assert (out["alarm"].astype(bool) == (out["count"] >= out["upperbound"])).all()


def _series(values) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2015-01-05", periods=len(values), freq="7D"), name="count")


def _seasonal(n: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(1, n + 1)
    return rng.poisson(np.exp(1.5 + 0.4 * np.sin(2 * np.pi * t / 52))).astype(float)


def test_reset_stops_alarming_after_a_one_week_spike():
    values = _seasonal(120)
    values[108] = 40
    counts = _series(values)
    weeks = range(104, 120)
    no_reset = detect(counts, CusumParams(reset=False), weeks=weeks)
    reset = detect(counts, CusumParams(), weeks=weeks)
    assert bool(reset.loc[4, "alarm"]) and bool(no_reset.loc[4, "alarm"])
    assert no_reset.loc[5:, "alarm"].sum() >= 1  # R: the huge sum decays slowly, alarming on
    assert not reset.loc[5:, "alarm"].any()  # textbook: one alarm for one spike
    assert reset.loc[5, "upperbound"] == math.ceil(reset.loc[5, "expected"] + math.sqrt(reset.loc[5, "expected"]) * (2.26 + 1.04))


def test_reset_keeps_alarming_on_a_sustained_rise():
    values = _seasonal(130)
    values[110:130] += 15
    out = detect(_series(values), CusumParams(), weeks=range(104, 130))
    assert out.loc[6:, "alarm"].sum() >= 10


def test_by_hand_and_mean_m():
    values = [2.0, 3, 1, 2, 2, 9, 2]
    out = detect(_series(values), CusumParams(m="mean"), weeks=[4, 5, 6])
    m = 2.0
    c4 = max(0.0, (2 - m) / math.sqrt(m) - 1.04)
    c5 = max(0.0, c4 + (9 - m) / math.sqrt(m) - 1.04)
    assert out["expected"].tolist() == [m, m, m]
    assert out.loc[1, "cusum_statistic"] == pytest.approx(c5)
    assert bool(out.loc[1, "alarm"]) is (c5 >= 2.26)
    assert out.loc[1, "upperbound"] == math.ceil(m + math.sqrt(m) * (2.26 + 1.04 - c4))


def test_column_contract_short_history_and_missing_count():
    counts = _series(_seasonal(70))
    out = detect(counts, CusumParams(), weeks=[69, 60])
    assert tuple(out.columns[:7]) == CORE_COLUMNS
    assert list(out.columns[7:]) == ["cusum_statistic", "note"]
    assert str(out["alarm"].dtype) == "boolean"
    assert min_history(CusumParams()) == 52 and min_history(CusumParams(m="mean")) == 4
    short = detect(counts, CusumParams(), weeks=range(20, 30))
    assert short["alarm"].isna().all() and short["note"].str.startswith("too little history for cusum").all()
    values = _seasonal(70)
    values[65] = np.nan
    out = detect(_series(values), CusumParams(), weeks=range(60, 70))
    assert pd.isna(out.loc[5, "alarm"]) and out.loc[5, "note"] == "the count of this week is missing"
    assert out.loc[6, "cusum_statistic"] >= 0


def test_params_from_strings_and_validation():
    p = CusumParams.model_validate({"k": "0.5", "h": "4", "m": "MEAN", "trans": "standard", "reset": "false"})
    assert (p.k, p.h, p.m, p.trans, p.reset) == (0.5, 4.0, "mean", "standard", False)
    for bad in ({"h": "0"}, {"k": "-1"}, {"m": "2.5"}, {"trans": "rossi"}, {"reset": "maybe"}, {"alpha": "0.1"}):
        with pytest.raises(ValidationError):
            CusumParams.model_validate(bad)
    assert all(f.description for f in CusumParams.model_fields.values())


def _level_changed_long_ago() -> pd.Series:
    # 3 years at 5 a week, 1 year at 20, then 26 monitored weeks at 20 (issue 11, item 5)
    rng = np.random.default_rng(7)
    return _series(np.concatenate([rng.poisson(5, 156), rng.poisson(20, 52 + 26)]).astype(float))


def test_a_level_reached_a_year_ago_is_the_in_control_level_not_the_first_year():
    counts = _level_changed_long_ago()
    monitored = range(208, 234)
    out = detect(counts, CusumParams(), weeks=monitored)
    assert out["alarm"].notna().all() and out["alarm"].sum() < len(monitored) / 2
    # before: the weekly job charted such a series from week 52 against its first year
    first_year = detect(counts, CusumParams(), weeks=range(52, 234)).iloc[-len(monitored):]
    assert first_year["alarm"].sum() >= 20 > 2 * out["alarm"].sum()  # 23 against 9 of the 26 weeks


def test_in_control_window_is_every_week_before_the_run_up_to_the_cap():
    rng = np.random.default_rng(3)
    values = rng.poisson(np.repeat([3.0, 8.0, 15.0], 100)).astype(float)
    counts = _series(values)
    for params, first, window in [
        (CusumParams(m="mean"), 250, slice(146, 250)),  # capped: the last 104 weeks
        (CusumParams(m="mean"), 80, slice(0, 80)),  # fewer: all there are
        (CusumParams(m="mean", in_control_weeks=0), 250, slice(0, 250)),  # R: every week before
        (CusumParams(m="mean", in_control_weeks=156), 250, slice(94, 250)),
    ]:
        out = detect(counts, params, weeks=range(first, first + 5))
        assert out["expected"].tolist() == pytest.approx([values[window].mean()] * 5)
    # the GLM sees only the window: dropping a year before it (harmonics keep their phase) changes nothing
    full = detect(counts, CusumParams(), weeks=range(260, 270))
    cut = detect(counts.iloc[52:], CusumParams(), weeks=range(208, 218))
    assert full["expected"].tolist() == pytest.approx(cut["expected"].tolist(), rel=1e-12)


def test_in_control_weeks_validation():
    assert CusumParams().in_control_weeks == 104
    assert CusumParams.model_validate({"in_control_weeks": "0"}).in_control_weeks == 0
    assert CusumParams(m="mean", in_control_weeks=10).in_control_weeks == 10
    with pytest.raises(ValidationError, match="in_control_weeks=30 is shorter than the 52 weeks"):
        CusumParams(in_control_weeks=30)
