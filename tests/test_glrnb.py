"""glrnb (negative-binomial GLR-CUSUM) against R surveillance 1.20.3 (`../shared/reference/*.glrnb.csv`).

Cases come from manifest.csv: one per glrnb file, with the parameters read from the exact R
call recorded there (so a new reference file is checked by adding nothing but the file).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import assert_close, load_reference, reference_cases
from pydantic import ValidationError

from monitor.detectors import run_detector
from monitor.detectors._common import CORE_COLUMNS
from monitor.detectors.glrnb import GlrnbParams, detect, glr_statistic, min_history

CASES = reference_cases("glrnb")


@pytest.fixture(scope="module")
def detected():
    """`detect` on a reference case, run once for both tests of the case (the R comparison, run_detector's rows)."""
    done: dict[str, pd.DataFrame] = {}

    def get(case) -> pd.DataFrame:
        if case.file not in done:
            done[case.file] = detect(case.counts, GlrnbParams(**case.params), weeks=case.weeks)
        return done[case.file].copy()

    return get


@pytest.mark.parametrize("row", CASES)
def test_matches_r_surveillance(row, shared_reference, detected):
    case = load_reference(row, shared_reference)
    assert case.detector == "glrnb"
    out = detected(case)
    golden = case.golden

    assert (out["week_start"] == golden["week_start"]).all()
    assert (out["count"] == golden["count"]).all()
    assert_close(out["expected"], golden["expected"], "expected")
    assert_close(out["upperbound"], golden["upperbound"], "upperbound")
    assert_close(out["nb_alpha"], golden["nb_alpha"], "nb_alpha")
    assert_close(out["glr_statistic"], golden["glr_statistic"], "glr_statistic")
    r = golden["alarm"].astype("boolean")
    assert out["alarm"].isna().tolist() == r.isna().tolist()
    assert (out["alarm"].astype(bool).to_numpy() == r.astype(bool).to_numpy()).all()
    assert int(out["alarm"].sum()) == int(row["n_alarms"])
    # the documented meaning of upperbound: alarm <=> count >= upperbound
    assert (out["alarm"].astype(bool) == (out["count"] >= out["upperbound"])).all()


@pytest.mark.parametrize("row", CASES)
def test_run_detector_gives_the_same_rows(row, shared_reference, detected):
    case = load_reference(row, shared_reference)
    params = GlrnbParams(**case.params)
    direct = detected(case)
    via = run_detector("glrnb", params, case.counts, weeks=case.weeks)
    assert (via["detector"] == "glrnb").all()
    pd.testing.assert_frame_equal(via[direct.columns], direct, check_dtype=False)


def _series(values) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2015-01-05", periods=len(values), freq="7D"), name="count")


def _seasonal(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(1, n + 1)
    mu = np.exp(1.5 + 0.5 * np.cos(2 * np.pi * t / 52))
    return rng.negative_binomial(5, 5 / (5 + mu)).astype(float)


def test_upperbound_is_the_smallest_alarming_count():
    values = _seasonal(130)
    counts = _series(values)
    weeks = list(range(104, 130))
    out = detect(counts, GlrnbParams(), weeks=weeks)
    alpha = float(out["nb_alpha"].iloc[0])
    mu = out["expected"].to_numpy()
    seg = 0
    for j, row in out.iterrows():
        ub = row["upperbound"]
        x = values[104 + seg : 104 + j + 1].copy()
        m = mu[seg : j + 1]
        starts = np.arange(len(x))
        x[-1] = ub
        assert glr_statistic(x, m, alpha, starts) >= 5
        x[-1] = ub - 1
        assert ub == 0 or glr_statistic(x, m, alpha, starts) < 5
        if row["alarm"]:
            seg = j + 1


def test_resets_after_an_alarm():
    values = _seasonal(120)
    values[110] = 60  # a one-week spike
    out = detect(_series(values), GlrnbParams(), weeks=range(104, 120))
    assert bool(out.loc[6, "alarm"])
    # the chart restarts: next week's statistic only sees next week
    nxt = detect(_series(values), GlrnbParams(), weeks=range(104, 120)).loc[7]
    alpha = float(out["nb_alpha"].iloc[0])
    alone = glr_statistic(values[111:112], out["expected"].to_numpy()[7:8], alpha, np.array([0]))
    assert nxt["glr_statistic"] == pytest.approx(alone)
    assert not out.loc[7:, "alarm"].any()


def test_column_contract_and_rows_asked_for():
    counts = _series(_seasonal(80))
    out = detect(counts, GlrnbParams(), weeks=[79, 60, 70])
    assert tuple(out.columns[:7]) == CORE_COLUMNS
    assert list(out.columns[7:]) == ["glr_statistic", "nb_alpha", "note"]
    assert str(out["alarm"].dtype) == "boolean"
    assert out["week_start"].tolist() == [counts.index[t] for t in (79, 60, 70)]
    full = detect(counts, GlrnbParams(), weeks=range(60, 80))
    assert out["glr_statistic"].tolist() == full.loc[[19, 0, 10], "glr_statistic"].tolist()


def test_short_history_and_missing_count_are_data():
    assert min_history(GlrnbParams()) == 52
    out = detect(_series(_seasonal(60)), GlrnbParams(), weeks=range(30, 60))
    assert out["alarm"].isna().all() and out["note"].str.startswith("too little history for glrnb").all()
    values = _seasonal(70)
    values[65] = np.nan
    out = detect(_series(values), GlrnbParams(), weeks=range(60, 70))
    assert pd.isna(out.loc[5, "alarm"]) and out.loc[5, "note"] == "the count of this week is missing"
    assert out.loc[[4, 6], "alarm"].notna().all()
    zeros = detect(_series([0.0] * 70), GlrnbParams(), weeks=range(60, 70))
    assert zeros["alarm"].isna().all() and "all zero" in zeros.loc[0, "note"]


def test_fixed_alpha_is_used():
    out = detect(_series(_seasonal(70)), GlrnbParams(alpha=0.5), weeks=range(60, 70))
    assert (out["nb_alpha"] == 0.5).all()


def test_params_from_strings_and_validation():
    p = GlrnbParams.model_validate({"c_arl": "3.5", "s": "2", "trend": "true", "alpha": "estimate", "m_tilde": "2", "m": "10"})
    assert (p.c_arl, p.s, p.trend, p.alpha, p.m_tilde, p.m) == (3.5, 2, True, None, 2, 10)
    assert GlrnbParams.model_validate({"alpha": "0.2"}).alpha == 0.2
    for bad in ({"c_arl": "0"}, {"alpha": "-1"}, {"m": "-2"}, {"m": "1", "m_tilde": "3"}, {"dir": "dec"}, {"c.ARL": "5"}):
        with pytest.raises(ValidationError):
            GlrnbParams.model_validate(bad)
    assert all(f.description for f in GlrnbParams.model_fields.values())


def test_a_level_reached_a_year_ago_is_the_in_control_level_not_the_first_year():
    # 3 years at 5 a week, 1 year at 20, then 26 monitored weeks at 20 (issue 11, item 5)
    rng = np.random.default_rng(7)
    counts = _series(np.concatenate([rng.poisson(5, 156), rng.poisson(20, 52 + 26)]).astype(float))
    out = detect(counts, GlrnbParams(), weeks=range(208, 234))
    assert out["alarm"].notna().all() and out["alarm"].sum() < 26 / 2
    assert out["expected"].mean() == pytest.approx(12.5, rel=0.05)  # the model saw weeks 104..207


def test_in_control_window_is_every_week_before_the_run_up_to_the_cap():
    values = _seasonal(320)
    values[:150] *= 4  # an old level the capped window no longer sees
    counts = _series(values)
    full = detect(counts, GlrnbParams(), weeks=range(260, 270))
    cut = detect(counts.iloc[156:], GlrnbParams(), weeks=range(104, 114))  # weeks 156..259: exactly the window
    assert full["expected"].tolist() == pytest.approx(cut["expected"].tolist(), rel=1e-9)
    assert full["nb_alpha"].tolist() == pytest.approx(cut["nb_alpha"].tolist(), rel=1e-9)
    r = detect(counts, GlrnbParams(in_control_weeks=0), weeks=range(260, 270))  # R: every week before the run
    assert r["expected"].iloc[0] > 1.5 * full["expected"].iloc[0]
    short = detect(counts, GlrnbParams(), weeks=range(60, 70))  # fewer than the cap: all there are
    assert short["expected"].tolist() == pytest.approx(detect(counts, GlrnbParams(in_control_weeks=0), weeks=range(60, 70))["expected"].tolist())
    with pytest.raises(ValidationError, match="in_control_weeks=40 is shorter than the 52 weeks"):
        GlrnbParams(in_control_weeks=40)
    assert GlrnbParams(s=0, in_control_weeks=10).in_control_weeks == 10
