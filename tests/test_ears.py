"""EARS C1/C2/C3 against R surveillance 1.20.3 (`../shared/reference/*.ears_*.csv`).

Cases come from manifest.csv: one per ears_* file, with the method, baseline, minSigma,
alpha and range read from the exact R call recorded there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import assert_close, load_reference, reference_cases
from pydantic import ValidationError
from scipy.stats import norm

from monitor.detectors._common import CORE_COLUMNS
from monitor.detectors.ears import EarsParams, detect, min_history

CASES = reference_cases("ears_")


def _load(row, shared_reference):
    case = load_reference(row, shared_reference)
    return case.counts, case.golden, case.weeks, case.params  # strings, as from the command line


def _assert_alarms(ours: pd.Series, theirs: pd.Series, what: str) -> None:
    r = theirs.astype("boolean")
    assert ours.isna().tolist() == r.isna().tolist(), f"{what}: NA in different weeks"
    decided = ~r.isna()
    mismatch = ours[decided].astype(bool).to_numpy() != r[decided].astype(bool).to_numpy()
    assert not mismatch.any(), f"{what}: alarms differ in {mismatch.sum()} weeks"


@pytest.mark.parametrize("row", CASES)
def test_matches_r_surveillance(row, shared_reference):
    counts, golden, weeks, control = _load(row, shared_reference)
    out = detect(counts, EarsParams(**control), weeks=weeks)

    assert (out["week_start"] == golden["week_start"]).all()
    assert (out["count"] == golden["count"]).all()
    assert_close(out["expected"], golden["expected"], "expected")
    assert_close(out["baseline_sd"], golden["baseline_sd"], "baseline_sd")
    assert_close(out["stat"], golden["stat"], "stat")
    if control["method"] == "C3":
        # The project's C3 is the textbook rule; R 1.20.3's alarm ignores this week (README).
        _assert_alarms(out["alarm"], golden["alarm_documented"], "alarm vs alarm_documented")
        assert_close(out["score"], golden["c3_stat"], "score vs c3_stat")
        assert out["pvalue"].isna().all()
    else:
        assert_close(out["upperbound"], golden["upperbound"], "upperbound")
        _assert_alarms(out["alarm"], golden["alarm"], "alarm")
        assert_close(out["score"], golden["stat"], "score vs stat")
        assert_close(out["pvalue"], pd.Series(norm.sf(golden["stat"])), "pvalue")
    assert int(out["alarm"].sum()) == (int(row["n_alarms"]) if control["method"] != "C3" else int(golden["alarm_documented"].sum()))


@pytest.mark.parametrize("row", [c for c in CASES if c.values[0] is None or "_c3" in c.values[0]["algorithm"]])
def test_r_c3_reproduces_r_bound_and_alarm(row, shared_reference):
    counts, golden, weeks, control = _load(row, shared_reference)
    out = detect(counts, EarsParams(**control, r_c3=True), weeks=weeks)

    assert_close(out["upperbound"], golden["upperbound"], "upperbound")
    _assert_alarms(out["alarm"], golden["alarm"], "alarm")
    assert int(out["alarm"].sum()) == int(row["n_alarms"])


@pytest.mark.parametrize("row", [c for c in CASES if c.values[0] is None or "_c3" in c.values[0]["algorithm"]])
def test_textbook_c3_upperbound_is_the_smallest_alarming_count(row, shared_reference):
    counts, _, weeks, control = _load(row, shared_reference)
    out = detect(counts, EarsParams(**control), weeks=weeks)
    decided = out[out["alarm"].notna()]
    at_least = decided["count"] >= decided["upperbound"] * (1 - 1e-12)
    assert (decided["alarm"].astype(bool) == at_least).all()
    # And R's bound is not that: it contains this week's count (README).
    r_bound = detect(counts, EarsParams(**control, r_c3=True), weeks=weeks)["upperbound"]
    assert not np.allclose(r_bound.fillna(-1), out["upperbound"].fillna(-1))


def _series(values) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2023-01-02", periods=len(values), freq="7D"), name="count")


@pytest.mark.parametrize(
    ("method", "baseline", "need"),
    [("C1", 7, 7), ("C2", 7, 9), ("C3", 7, 11), ("C1", 3, 3), ("C3", 10, 14)],
)
def test_min_history_and_short_history_rows(method, baseline, need):
    params = EarsParams(method=method, baseline=baseline)
    assert min_history(params) == need
    counts = _series(np.arange(need + 3) % 4)
    out = detect(counts, params, weeks=range(len(counts)))
    assert out["alarm"].isna().tolist() == [t < need for t in range(len(counts))]
    assert out.loc[need - 1, "note"] == f"too little history for EARS {method} (needs {need} weeks, has {need - 1})"
    assert (out.loc[need:, "note"] == "").all()
    assert out.loc[: need - 1, "score"].isna().all()


def test_column_contract_and_order_of_weeks():
    counts = _series([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4])
    for method in ("C1", "C2", "C3"):
        out = detect(counts, EarsParams(method=method), weeks=[19, 12, 15])
        assert tuple(out.columns[:7]) == CORE_COLUMNS
        assert out.columns[-1] == "note"
        assert list(out.columns[7:-1]) == ["baseline_sd", "stat"]
        assert str(out["alarm"].dtype) == "boolean"
        assert out["week_start"].tolist() == [counts.index[t] for t in (19, 12, 15)]


def test_c1_by_hand():
    values = [2, 4, 3, 5, 2, 3, 4, 12]
    out = detect(_series(values), EarsParams(alpha=0.05), weeks=[7])
    base = np.array(values[:7], dtype=float)
    mean, sd = base.mean(), base.std(ddof=1)
    assert out.loc[0, "expected"] == pytest.approx(mean)
    assert out.loc[0, "upperbound"] == pytest.approx(mean + norm.ppf(0.95) * sd)
    assert out.loc[0, "score"] == pytest.approx((12 - mean) / sd)
    assert out.loc[0, "pvalue"] == pytest.approx(norm.sf((12 - mean) / sd))
    assert bool(out.loc[0, "alarm"]) is True


def test_min_sigma_stops_a_single_event_after_quiet_weeks():
    counts = _series([0] * 7 + [1])
    assert bool(detect(counts, EarsParams(), weeks=[7]).loc[0, "alarm"]) is True  # R: sd 0 -> bound 0
    out = detect(counts, EarsParams(min_sigma=0.5), weeks=[7])
    assert out.loc[0, "upperbound"] == pytest.approx(0.5 * norm.ppf(0.999))
    assert bool(out.loc[0, "alarm"]) is False


def test_all_zero_series_never_alarms():
    counts = _series([0] * 30)
    for method in ("C1", "C2", "C3"):
        out = detect(counts, EarsParams(method=method), weeks=range(30))
        assert not out["alarm"].fillna(False).any()


def test_undefined_c3_week_is_data_not_an_exception():
    counts = _series([0] * 14 + [1])  # every C2 baseline sd is 0: 0/0 at t-1, t-2
    out = detect(counts, EarsParams(method="C3"), weeks=[13, 14])
    assert out["alarm"].isna().all()
    assert all("undefined" in n for n in out["note"])


def test_inputs_are_not_mutated():
    counts = _series([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    before = counts.copy()
    weeks = [11, 10]
    detect(counts, EarsParams(method="C2"), weeks=weeks)
    pd.testing.assert_series_equal(counts, before)
    assert weeks == [11, 10]


def test_params_from_strings_and_validation():
    p = EarsParams.model_validate({"method": "c3", "baseline": "10", "alpha": "0.025", "min_sigma": "0.5", "r_c3": "true"})
    assert (p.method, p.baseline, p.alpha, p.min_sigma, p.r_c3) == ("C3", 10, 0.025, 0.5, True)
    for bad in ({"baseline": "2"}, {"alpha": "1.5"}, {"method": "C4"}, {"min_sigma": "-1"}, {"r_c3": "true"}, {"minSigma": "1"}):
        with pytest.raises(ValidationError):
            EarsParams.model_validate(bad)
    with pytest.raises(ValidationError):
        EarsParams().alpha = 0.5  # frozen
    assert all(f.description for f in EarsParams.model_fields.values())


def test_bad_positions_raise():
    with pytest.raises(IndexError):
        detect(_series([1, 2, 3]), EarsParams(), weeks=[3])
    with pytest.raises(TypeError):
        detect(pd.Series([1, 2, 3]), EarsParams(), weeks=[2])


def test_missing_count_is_data_not_an_exception():
    counts = _series([1.0, 2, 3, 2, np.nan, 1, 2, 3, 2, 1])
    out = detect(counts, EarsParams(), weeks=[8, 9])
    assert out["alarm"].isna().all()
    assert (out["note"] == "a count is missing in this week or its baseline weeks").all()
    counts = _series(pd.array([1, 2, 3, 2, 1, 1, 2, 30], dtype="Int64"))
    assert bool(detect(counts, EarsParams(), weeks=[7]).loc[0, "alarm"]) is True
