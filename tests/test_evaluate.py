"""The Noufaily 2013 simulator and the FPR / POD scoring in monitor.evaluate."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitor.evaluate import (
    COLUMNS,
    CURRENT_KS,
    EVAL_FIRST,
    EVAL_LAST,
    PAST_FIRST,
    PAST_KS,
    PAST_LAST,
    SCENARIOS,
    WEEKS,
    baseline_mean,
    evaluate,
    simulate_series,
    summarise,
    to_markdown,
)

BY_ID = {s.id: s for s in SCENARIOS}


def test_the_42_scenarios_cross_7_parameter_sets_with_trend_and_harmonics() -> None:
    assert len(SCENARIOS) == 42
    assert [s.id for s in SCENARIOS] == list(range(1, 43))
    assert len({(s.theta, s.phi, s.beta, s.gamma1, s.gamma2) for s in SCENARIOS}) == 7
    assert {(s.trend, s.m) for s in SCENARIOS} == {(t, m) for t in (False, True) for m in (0, 1, 2)}
    # Noufaily 2013's scenario 14: theta 1.5, Poisson, no trend, one harmonic
    s14 = BY_ID[14]
    assert (s14.theta, s14.phi, s14.trend, s14.m, s14.gamma1, s14.gamma2) == (1.5, 1.0, False, 1, 0.2, -0.4)


def test_baseline_mean_follows_the_formula() -> None:
    s = BY_ID[24]  # theta 0.5, phi 5, beta .002, gamma .5/.5, trend, m = 2
    t = np.arange(1, WEEKS + 1)
    season = sum(0.5 * np.cos(2 * np.pi * j * t / 52) + 0.5 * np.sin(2 * np.pi * j * t / 52) for j in (1, 2))
    np.testing.assert_allclose(baseline_mean(s), np.exp(0.5 + 0.002 * t + season), rtol=1e-12)
    flat = BY_ID[19]  # same set, no trend, m = 0
    np.testing.assert_allclose(baseline_mean(flat), np.full(WEEKS, math.exp(0.5)))


@pytest.mark.parametrize("scenario_id", [18, 24, 30])  # Poisson; phi = 5; phi = 3 (all trend + m = 2)
def test_baseline_mean_and_variance_match_the_design(scenario_id: int) -> None:
    s = BY_ID[scenario_id]
    n = 300
    rng = np.random.default_rng(2024)
    y = np.stack([simulate_series(s, k=2, rng=rng, current=False).baseline for _ in range(n)])
    mu = baseline_mean(s)
    # mean: each week's sample mean is ~ N(mu, phi mu / n); 624 weeks, so |z| < 4.5 everywhere
    z = (y.mean(axis=0) - mu) / np.sqrt(s.phi * mu / n)
    assert np.abs(z).max() < 4.5
    assert abs(z.mean()) < 4 / math.sqrt(WEEKS)
    # variance: the ratio sample variance / (phi mu) averages 1 over the weeks, within the
    # standard error estimated from the spread of the ratios themselves (weeks are independent)
    ratio = y.var(axis=0, ddof=1) / (s.phi * mu)
    se = ratio.std(ddof=1) / math.sqrt(WEEKS)
    assert abs(ratio.mean() - 1) < 4 * se
    # and phi is the variance/mean ratio, not a Poisson's 1 (the design's overdispersion)
    if s.phi > 1:
        assert ratio.mean() * s.phi > 1 + 8 * se * s.phi


def test_outbreak_starts_sizes_and_masks_follow_the_rule() -> None:
    s = BY_ID[37]  # theta 5: about 150 cases a week, so outbreaks are large and never empty
    rng = np.random.default_rng(7)
    z_sizes = []
    offsets = np.zeros(6, dtype=int)
    sd = np.sqrt(s.phi * baseline_mean(s))
    for _ in range(150):
        sim = simulate_series(s, k=3, rng=rng)
        assert all(PAST_FIRST <= st <= PAST_LAST for st in sim.past_starts) and len(sim.past_starts) == 4
        assert EVAL_FIRST <= sim.current_start <= EVAL_LAST
        np.testing.assert_array_equal(sim.counts.to_numpy(), sim.baseline + sim.past_cases + sim.current_cases)
        np.testing.assert_array_equal(sim.without_current().to_numpy(), sim.baseline + sim.past_cases)
        np.testing.assert_array_equal(sim.current, sim.current_cases > 0)
        # every past case lands at or after the earliest past start; none is lost before week 624
        assert sim.past_cases[: min(sim.past_starts) - 1].sum() == 0
        assert sim.past_cases.sum() == sum(sim.past_sizes)
        # the current outbreak starts at its start week; cases beyond week 624 are dropped
        assert sim.current_cases[: sim.current_start - 1].sum() == 0
        assert sim.current_cases.sum() <= sim.current_size
        # the past outbreaks have k = 2, 3, 5, 10, one each; the current one the k asked for
        assert sorted(sim.past_ks) == [2, 3, 5, 10] and sim.current_k == 3
        # size ~ Poisson(k * sd at the start week)
        starts = (*sim.past_starts, sim.current_start)
        for start, size, kk in zip(starts, (*sim.past_sizes, sim.current_size), (*sim.past_ks, sim.current_k)):
            lam = kk * sd[start - 1]
            z_sizes.append((size - lam) / math.sqrt(lam))
        if sim.current_start <= EVAL_LAST - 10:  # no truncation: the whole outbreak is inside
            assert sim.current_cases.sum() == sim.current_size
            c = sim.current_cases[sim.current_start - 1 : sim.current_start + 5]
            offsets[: len(c)] += c
    assert abs(np.mean(z_sizes)) < 4 / math.sqrt(len(z_sizes))
    assert 0.8 < np.var(z_sizes) < 1.2
    # placement: floor(LogNormal(0, 0.5)) weeks after the start
    cdf = stats.lognorm(s=0.5).cdf(np.arange(1, 4))
    expected_p = np.diff(np.concatenate(([0.0], cdf, [1.0])))  # lags 0, 1, 2, >= 3
    observed = np.array([offsets[0], offsets[1], offsets[2], offsets[3:].sum()])
    assert offsets.sum() > 3000
    assert stats.chisquare(observed, expected_p * observed.sum()).pvalue > 1e-3
    assert abs(observed[0] / observed.sum() - 0.5) < 0.03  # half the cases in the start week


def test_past_outbreaks_do_not_depend_on_the_current_k() -> None:
    # Noufaily 2013: the four past outbreaks have k = 2, 3, 5 and 10 in every series, whatever
    # the current outbreak's k; only the current outbreak changes with k.
    s = BY_ID[31]
    orders = set()
    for seed in range(40):
        a = simulate_series(s, k=1, rng=np.random.default_rng(seed))
        b = simulate_series(s, k=10, rng=np.random.default_rng(seed))
        c = simulate_series(s, k=10, rng=np.random.default_rng(seed), current=False)
        for other in (b, c):
            np.testing.assert_array_equal(a.baseline, other.baseline)
            np.testing.assert_array_equal(a.past_cases, other.past_cases)
            assert (a.past_starts, a.past_ks, a.past_sizes) == (other.past_starts, other.past_ks, other.past_sizes)
        assert a.current_start == b.current_start
        orders.add(a.past_ks)
    assert len(orders) > 5  # which start gets which k is random
    custom = simulate_series(s, k=5, rng=np.random.default_rng(0), past_ks=(4, 4))
    assert custom.past_ks == (4, 4) and len(custom.past_starts) == 2


def test_the_design_is_built_for_b_5_and_scores_k_1_to_10() -> None:
    # past outbreaks start within the reference weeks of Farrington b = 5 years, w = 3 weeks
    assert PAST_FIRST == EVAL_FIRST - 5 * 52 - 3 and PAST_LAST == EVAL_FIRST - 1
    assert PAST_KS == (2, 3, 5, 10) and CURRENT_KS == tuple(range(1, 11))
    assert inspect.signature(evaluate).parameters["ks"].default == CURRENT_KS


def test_a_series_without_current_outbreak_has_none() -> None:
    sim = simulate_series(BY_ID[5], k=5, rng=np.random.default_rng(1), current=False)
    assert sim.current_start is None and sim.current_size == 0 and not sim.current.any()
    assert math.isnan(sim.current_k) and sorted(sim.past_ks) == [2, 3, 5, 10]
    assert isinstance(sim.counts.index, pd.DatetimeIndex) and len(sim.counts) == WEEKS
    assert (sim.counts.index[1:] - sim.counts.index[:-1] == pd.Timedelta(days=7)).all()


def test_same_seed_same_series_other_seed_other_series() -> None:
    a = simulate_series(BY_ID[14], k=5, rng=np.random.default_rng(11))
    b = simulate_series(BY_ID[14], k=5, rng=np.random.default_rng(11))
    c = simulate_series(BY_ID[14], k=5, rng=np.random.default_rng(12))
    pd.testing.assert_series_equal(a.counts, b.counts)
    assert a.past_starts == b.past_starts and a.current_start == b.current_start
    assert not a.counts.equals(c.counts)


@pytest.mark.parametrize("bad", [{"k": 0}, {"k": -1}, {"k": 2, "weeks": 500}, {"k": 2, "past_ks": (2, 0)}])
def test_simulate_rejects_a_bad_k_or_length(bad: dict) -> None:
    with pytest.raises(ValueError):
        simulate_series(BY_ID[1], rng=np.random.default_rng(0), **bad)


def test_a_detector_that_never_alarms_has_fpr_0_and_pod_0() -> None:
    table = evaluate("acled-surge", {"ratio": 1e9}, scenarios=[BY_ID[14], BY_ID[37]], n_series=3, seed=1, ks=(2, 10))
    assert list(table.columns) == list(COLUMNS) and len(table) == 4
    assert (table["fpr"] == 0).all() and (table["pod"] == 0).all()
    assert (table["fpr_weeks"] > 0).all() and table["mean_weeks_to_alarm"].isna().all()


def test_a_detector_that_always_alarms_has_pod_1() -> None:
    # theta = 5: counts are never 0, so "count >= 1e-9 x the previous mean" holds every week
    table = evaluate("acled-surge", {"ratio": 1e-9, "min_mean": 1e-9}, scenarios=[BY_ID[37]], n_series=4, seed=3, ks=(2, 5))
    assert (table["pod"] == 1).all() and (table["fpr"] == 1).all()
    assert (table["mean_weeks_to_alarm"] == 0).all() and (table["empty_outbreaks"] == 0).all()
    summary = summarise(table)
    assert summary.loc[0, "group"] == "overall" and summary.loc[0, "pod"] == 1
    assert list(summary["group"]) == ["overall", "k=2", "k=5"]


def test_evaluate_is_seeded_and_a_subset_reproduces_the_full_run() -> None:
    kw = {"n_series": 3, "seed": 5, "ks": (3,)}
    both = evaluate("acled-surge", None, scenarios=[BY_ID[8], BY_ID[26]], **kw)
    one = evaluate("acled-surge", None, scenarios=[BY_ID[26]], **kw)
    pd.testing.assert_frame_equal(both.iloc[[1]].reset_index(drop=True), one)
    again = evaluate("acled-surge", None, scenarios=[BY_ID[8], BY_ID[26]], **kw)
    pd.testing.assert_frame_equal(both, again)


def test_farrington_on_two_scenarios_gives_finite_numbers() -> None:
    table = evaluate("farrington", {"alpha": 0.005}, scenarios=[BY_ID[14], BY_ID[40]], n_series=2, seed=1, ks=(10,))
    assert len(table) == 2 and (table["n_series"] == 2).all()
    assert table["fpr"].between(0, 1).all() and table["pod"].between(0, 1).all()
    assert (table["fpr_weeks"] > 0).all() and (table["undecided_weeks"] == 0).all()
    summary = summarise(table)
    assert np.isfinite(summary[["fpr", "pod"]].to_numpy()).all()
    text = to_markdown(summary)
    assert text.splitlines()[0].startswith("| group | cells |") and len(text.splitlines()) == 2 + 2


@pytest.mark.parametrize("detector", ["farrington", "farrington-cusum"])
def test_batched_scoring_equals_one_detector_call_per_series(detector):
    """The batch engine path of the simulation gives run_detector's alarms, series by series."""
    from monitor.detectors import make_params, run_detector
    from monitor.evaluate import _alarms_many, series_rng

    params = make_params(detector, {"b": 5})
    scenario = BY_ID[26]
    sims = [simulate_series(scenario, k=5, rng=series_rng(4, scenario, 5, i)) for i in range(6)]
    jobs = [(s.counts, EVAL_FIRST - 1, WEEKS - 1 - i) for i, s in enumerate(sims)]  # different lengths per job
    batched = _alarms_many(detector, params, jobs)
    flagged = 0
    for (counts, first, last), (alarm, na) in zip(jobs, batched):
        one = run_detector(detector, params, counts, weeks=range(first, last + 1), fallback="")
        assert alarm.tolist() == one["alarm"].fillna(False).tolist() and na == int(one["alarm"].isna().sum())
        flagged += int(alarm.sum())
    assert flagged > 0
