"""ACLED ratio rules on hand-made series; right answers computed here from the definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from monitor.detectors._common import CORE_COLUMNS
from monitor.detectors.rules import (
    AcledSurgeParams,
    AcledThreatParams,
    detect_surge,
    detect_threat,
    surge_min_history,
    threat_min_history,
)


def _series(values) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2022-01-03", periods=len(values), freq="7D"), name="count")


# --- acled-surge: count >= ratio x mean(previous window), only where that mean >= min_mean ---

SURGE_CASES = [
    # (previous weeks, this week, params, alarm)
    ([2, 2, 2, 2], 4, {}, True),  # 4 >= 2 x 2
    ([2, 2, 2, 2], 3, {}, False),
    ([1, 1, 1, 0], 10, {}, False),  # mean 0.75 < min_mean 1: not tracked
    ([1, 1, 1, 1], 2, {}, True),  # mean exactly 1 is tracked; 2 >= 2 x 1
    ([1, 1, 1, 0], 10, {"min_mean": 0.5}, True),
    ([10, 10, 10, 10], 11, {"ratio": 1.1}, True),  # 1.1 x 10 is 11.000000000000002 in floating point
    ([10, 10, 10, 10], 10, {"ratio": 1.1}, False),
    ([3, 5, 4], 9, {"window": 3, "ratio": 2.5}, False),  # 9 < 2.5 x 4
    ([3, 5, 4], 10, {"window": 3, "ratio": 2.5}, True),
]


@pytest.mark.parametrize(("previous", "this_week", "values", "alarm"), SURGE_CASES)
def test_surge_rule(previous, this_week, values, alarm):
    params = AcledSurgeParams(**values)
    counts = _series([7] * 5 + previous + [this_week])  # leading weeks outside the window must not matter
    t = len(counts) - 1
    out = detect_surge(counts, params, weeks=[t])
    mean = sum(previous) / len(previous)
    assert out.loc[0, "expected"] == pytest.approx(mean)
    assert out.loc[0, "upperbound"] == pytest.approx(params.ratio * mean)
    assert out.loc[0, "score"] == pytest.approx(this_week / mean)
    assert np.isnan(out.loc[0, "pvalue"])
    assert bool(out.loc[0, "alarm"]) is alarm
    if mean < params.min_mean:
        assert "below min_mean" in out.loc[0, "note"]


def test_surge_matches_definition_on_a_long_series():
    rng = np.random.default_rng(7)
    values = rng.poisson(2.0, 200).tolist()
    values[120] = 25
    params = AcledSurgeParams()
    out = detect_surge(_series(values), params, weeks=range(200))
    for t in range(200):
        if t < 4:
            assert pd.isna(out.loc[t, "alarm"])
            continue
        mean = sum(values[t - 4 : t]) / 4
        assert bool(out.loc[t, "alarm"]) is (mean >= 1 and values[t] >= 2 * mean)
    assert bool(out.loc[120, "alarm"]) is True


def test_surge_short_history_and_zero_series():
    out = detect_surge(_series([0] * 10), AcledSurgeParams(), weeks=range(10))
    assert out["alarm"].isna().tolist() == [True] * 4 + [False] * 6
    assert out.loc[3, "note"] == "too little history for acled-surge (needs 4 weeks, has 3)"
    assert not out["alarm"].fillna(False).any()
    assert out.loc[4:, "score"].isna().all()  # count / 0 is not a score
    assert surge_min_history(AcledSurgeParams(window=6)) == 6


# --- acled-threat: mean(last window, this week included) >= ratio x mean(baseline weeks before) ---


def _threat_by_hand(values, t, ratio=2.0, window=4, baseline=52):
    recent = sum(values[t - window + 1 : t + 1]) / window
    base = sum(values[t - window - baseline + 1 : t - window + 1]) / baseline
    return recent, base, recent > 0 and recent >= ratio * base


@pytest.mark.parametrize(
    ("recent_weeks", "alarm"),
    [([2, 2, 2, 2], True), ([2, 2, 2, 1], False), ([0, 0, 0, 8], True), ([1, 1, 1, 1], False)],
)
def test_threat_rule(recent_weeks, alarm):
    values = [1] * 52 + recent_weeks
    out = detect_threat(_series(values), AcledThreatParams(), weeks=[55])
    recent, base, expected_alarm = _threat_by_hand(values, 55)
    assert expected_alarm is alarm
    assert out.loc[0, "expected"] == pytest.approx(base) == pytest.approx(1.0)
    assert out.loc[0, "upperbound"] == pytest.approx(2.0)
    assert out.loc[0, "recent_mean"] == pytest.approx(recent)
    assert out.loc[0, "score"] == pytest.approx(recent / base)
    assert bool(out.loc[0, "alarm"]) is alarm


def test_threat_matches_definition_on_a_long_series():
    rng = np.random.default_rng(11)
    values = rng.poisson(1.5, 160).tolist()
    values[100:104] = [6, 7, 5, 8]
    params = AcledThreatParams()
    out = detect_threat(_series(values), params, weeks=range(160))
    need = threat_min_history(params)
    assert need == 55
    for t in range(160):
        if t < need:
            assert pd.isna(out.loc[t, "alarm"])
            continue
        recent, base, alarm = _threat_by_hand(values, t)
        assert out.loc[t, "recent_mean"] == pytest.approx(recent)
        assert out.loc[t, "expected"] == pytest.approx(base)
        assert bool(out.loc[t, "alarm"]) is alarm
    assert bool(out.loc[103, "alarm"]) is True


def test_threat_zero_baseline():
    # All zero: "0 >= 2 x 0" must not alarm.
    out = detect_threat(_series([0] * 80), AcledThreatParams(), weeks=range(55, 80))
    assert not out["alarm"].any()
    # Violence after 52 quiet weeks is a surge, but its ratio is undefined: score NaN and a note.
    out = detect_threat(_series([0] * 55 + [1]), AcledThreatParams(), weeks=[55])
    assert bool(out.loc[0, "alarm"]) is True
    assert np.isnan(out.loc[0, "score"])
    assert "no events in the 52 baseline weeks" in out.loc[0, "note"]


def test_threat_small_windows():
    params = AcledThreatParams(window=2, baseline=3)
    values = [1, 2, 3, 5, 3]  # t=4: recent (5+3)/2 = 4; baseline (1+2+3)/3 = 2
    out = detect_threat(_series(values), params, weeks=[3, 4])
    assert pd.isna(out.loc[0, "alarm"]) and "needs 4 weeks, has 3" in out.loc[0, "note"]
    assert (out.loc[1, "recent_mean"], out.loc[1, "expected"], bool(out.loc[1, "alarm"])) == (4.0, 2.0, True)


# --- shared contract ---


@pytest.mark.parametrize(
    ("detect", "params", "extras"),
    [(detect_surge, AcledSurgeParams(), []), (detect_threat, AcledThreatParams(), ["recent_mean"])],
)
def test_contract(detect, params, extras):
    counts = _series(list(range(70)))
    before = counts.copy()
    out = detect(counts, params, weeks=[69, 2, 60])
    pd.testing.assert_series_equal(counts, before)
    assert tuple(out.columns[:7]) == CORE_COLUMNS
    assert list(out.columns[7:]) == [*extras, "note"]
    assert str(out["alarm"].dtype) == "boolean"
    assert out["week_start"].tolist() == [counts.index[t] for t in (69, 2, 60)]
    assert out["pvalue"].isna().all()


def test_params_accept_strings_and_reject_nonsense():
    assert AcledSurgeParams.model_validate({"ratio": "1.5", "window": "3", "min_mean": "0.5"}) == AcledSurgeParams(
        ratio=1.5, window=3, min_mean=0.5
    )
    assert AcledThreatParams.model_validate({"baseline": "26"}).baseline == 26
    for model, bad in [
        (AcledSurgeParams, {"ratio": "0"}),
        (AcledSurgeParams, {"window": "0"}),
        (AcledSurgeParams, {"min_mean": "0"}),
        (AcledSurgeParams, {"minMean": "1"}),
        (AcledThreatParams, {"baseline": "2.5"}),
        (AcledThreatParams, {"ratio": "nan"}),
    ]:
        with pytest.raises(ValidationError):
            model.model_validate(bad)
    for model in (AcledSurgeParams, AcledThreatParams):
        assert all(f.description for f in model.model_fields.values())
