"""farrington-cusum: Farrington's single-week test, a CUSUM of its normal scores with a partial restart, and a baseline that learns a new level."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitor.detectors import farrington as farr
from monitor.detectors import make_params, run_detector
from monitor.detectors._nb import normal_scores, upper_tail_mid
from monitor.detectors.farrington_cusum import (
    FarringtonCusumParams,
    arl0,
    detect,
    farrington_part,
    nominal_rate,
)
from monitor.evaluate import SCENARIOS, series_rng, simulate_series
from monitor.severity import SeveritySettings, assign_levels, false_alarm_budget

#: Scenario 26: theta 2.5, phi 3, trend and one harmonic: about 12 events a week, overdispersed.
SCENARIO = next(s for s in SCENARIOS if s.theta == 2.5 and s.trend and s.m == 1)
WEEKS = list(range(520, 624))


@pytest.fixture(scope="module")
def series() -> pd.Series:
    return simulate_series(SCENARIO, k=8, rng=series_rng(1, SCENARIO, 8, 0)).counts


@pytest.fixture(scope="module")
def result(series) -> pd.DataFrame:
    return detect(series, FarringtonCusumParams(), weeks=WEEKS)


def _scipy_midp_z(y: float, mu: float, phi: float) -> float:
    # written independently of the module: scipy's distributions instead of incomplete beta/gamma
    dist = stats.nbinom(mu / (phi - 1), 1 / phi) if phi > 1 else stats.poisson(mu)
    return float(np.clip(stats.norm.isf(dist.sf(y) + 0.5 * dist.pmf(y)), -5, 8))


def _scipy_dist(mu: float, phi: float):
    return stats.nbinom(mu / (phi - 1), 1 / phi) if phi > 1 else stats.poisson(mu)


def test_rule_matches_its_definition_week_by_week(series, result):
    """Baseline: Farrington's mu0, or mu0 x (observed / expected over the 8 weeks before the gap week) when
    that total is significantly above Farrington's expectation and most of those weeks are above theirs;
    alarm = P(Y >= y) <= alpha, or CUSUM of mid-p normal scores >= h (limit54 holds); after an
    alarm the chart restarts at hold * h. Recomputed here from scipy's distributions."""
    p = FarringtonCusumParams()
    pre = p.recent_gap + p.recent_window
    f_all = farr.detect(series, farrington_part(p), weeks=list(range(WEEKS[0] - pre, WEEKS[-1] + 1)))
    mu0_of = dict(zip(range(WEEKS[0] - pre, WEEKS[-1] + 1), f_all["mu0"]))
    f = f_all.iloc[pre:].reset_index(drop=True)
    y = series.to_numpy(dtype=float)
    c, expected_alarm, expected_score, shifts = 0.0, [], [], 0
    for i, t in enumerate(WEEKS):
        mu0, phi = f["mu0"][i], max(f["phi"][i], 1.0)
        weeks = range(t - p.recent_gap - p.recent_window, t - p.recent_gap)
        observed = sum(y[s] for s in weeks)
        expected = sum(mu0_of[s] for s in weeks)  # Farrington's expectation for each recent week
        above = sum(y[s] > mu0_of[s] for s in weeks)
        level = mu0 * observed / expected
        shifted = (
            observed > expected
            and _scipy_dist(expected, phi).sf(observed - 1) <= p.shift_alpha
            and 2 * above > p.recent_window
        )
        shifts += shifted
        assert result["model"][i] == ("recent" if shifted else "farrington"), t
        mu = level if shifted else mu0
        assert result["expected"][i] == pytest.approx(mu, rel=1e-12)
        used = result["phi_used"][i]
        assert used == pytest.approx(phi) if not shifted else used >= phi - 1e-12
        dist = _scipy_dist(mu, used)
        assert result["pvalue"][i] == pytest.approx(dist.sf(y[t] - 1), rel=1e-7, abs=1e-12)
        # the threshold shown is the single-week one: the largest count with P(Y >= count) > alpha
        u = result["upperbound"][i]
        assert dist.sf(u - 1) > p.alpha >= dist.sf(u), (t, u)
        z = _scipy_midp_z(y[t], mu, used)
        assert result["z"][i] == pytest.approx(z, rel=1e-9, abs=1e-9)
        c = max(0.0, c + z - p.cusum_k)
        enough = y[max(t - 3, 0) : t + 1].sum() >= 5
        alarm = enough and (dist.sf(y[t] - 1) <= p.alpha or c >= p.cusum_h)
        expected_alarm.append(alarm)
        expected_score.append(c)
        if alarm:
            c = min(c, p.hold * p.cusum_h)
    assert result["alarm"].tolist() == expected_alarm
    np.testing.assert_allclose(result["score"], expected_score, rtol=1e-9, atol=1e-12)
    assert result["farrington_alarm"].tolist() == f["alarm"].tolist()
    assert (result["chart_alarm"] == (result["alarm"] & ~result["single_alarm"])).all()
    for col in ("mu0", "phi", "trend_coef"):  # Farrington's own columns pass through unchanged
        np.testing.assert_array_equal(result[col].to_numpy(), f[col].to_numpy())
    assert result["single_alarm"].sum() >= 1 and result["chart_alarm"].sum() >= 1  # the series exercises both arms
    assert shifts >= 1  # and the learned baseline (this scenario has a trend)
    chart = result[result["chart_alarm"].fillna(False)]
    assert chart["why"].str.match(r"\d+ weeks? above expected: [\d, ]+ against [\d.]+").all()
    assert (chart["chart_pvalue"] > 0).all() and (chart["chart_pvalue"] < 0.05).all()


def test_upperbound_is_the_single_week_threshold(series, result):
    """Setting week t's count to upperbound + 1 alarms by the single-week test; to upperbound it does not."""
    p = FarringtonCusumParams()
    checked = 0
    for i, t in enumerate(WEEKS[:36]):
        u = result["upperbound"][i]
        if not math.isfinite(u) or u < 5:
            continue
        for value, alarms in ((u, False), (u + 1, True)):
            edited = series.copy()
            edited.iloc[t] = value
            out = detect(edited, p, weeks=list(range(WEEKS[0], t + 1)))
            assert bool(out["single_alarm"].iloc[-1]) is alarms, (t, value)
            if alarms:
                assert bool(out["alarm"].iloc[-1])
        checked += 1
    assert checked >= 20
    assert (result["upperbound"].dropna() >= 0).all()


def test_a_sustained_rise_is_one_continuing_alert_and_a_settled_level_stops_alarming():
    """Counts triple for 30 weeks: the alert runs without gaps while the rise is new, then the
    baseline learns the new level (model 'recent') and the alarms stop."""
    base = simulate_series(SCENARIO, k=1, rng=series_rng(3, SCENARIO, 1, 0), current=False).counts
    p = FarringtonCusumParams()
    t0 = 580
    counts = base.copy()
    counts.iloc[t0 : t0 + 30] = np.round(counts.iloc[t0 : t0 + 30] * 3)
    out = detect(counts, p, weeks=list(range(t0 - 30, t0 + 30)))
    alarm = out["alarm"].fillna(False).to_numpy(dtype=bool)[30:]
    first = int(np.argmax(alarm))
    assert alarm.any() and first <= 1
    run = first + int(np.argmin(alarm[first:])) if not alarm[first:].all() else len(alarm)
    assert run - first >= 2  # the first weeks of the rise alarm in a row, not alarm / quiet / alarm
    assert (out["model"].iloc[30 + 10 :] == "recent").all()  # the new level is the baseline
    assert alarm[15:].sum() <= 2  # and once it has settled, it no longer alarms week after week
    assert not alarm[: first].any()


def test_undecided_weeks_leave_the_chart_alone(series):
    p = FarringtonCusumParams()
    gap = series.copy().astype(float)
    gap.iloc[560] = np.nan
    out = detect(gap, p, weeks=WEEKS)
    i = WEEKS.index(560)
    before = out["score"][i - 1] if not out["alarm"][i - 1] else min(out["score"][i - 1], p.hold * p.cusum_h)
    assert pd.isna(out["alarm"][i]) and out["score"][i] == before
    short = detect(series, p, weeks=[10, 11])  # five years are needed before the first week
    assert short["alarm"].isna().all() and short["note"].str.contains("too little history").all()


def test_two_moderate_weeks_alarm_where_farrington_alone_does_not():
    """A rise spread over two weeks, each below Farrington's limit, is caught by the chart."""
    base = simulate_series(SCENARIO, k=1, rng=series_rng(3, SCENARIO, 1, 0), current=False).counts
    p = FarringtonCusumParams()
    t = 600
    f = farr.detect(base, farrington_part(p), weeks=[t, t + 1])
    counts = base.copy()
    for i in range(2):  # a count with normal score between 2.2 and Farrington's limit (z = 2.88)
        mu, phi = f["mu0"][i], f["phi"][i]
        y = next(v for v in range(200) if _scipy_midp_z(v, mu, phi) >= 2.2)
        assert _scipy_midp_z(y, mu, phi) < stats.norm.isf(p.alpha)
        counts.iloc[t + i] = y
    out = detect(counts, p, weeks=list(range(t - 20, t + 2)))
    last = out.iloc[-2:]
    assert not last["farrington_alarm"].any()
    assert bool(last["chart_alarm"].iloc[-1]) and bool(last["alarm"].iloc[-1])
    assert not bool(out["alarm"].iloc[-2])


def test_normal_scores_are_close_to_standard_normal_under_the_model():
    """Mid-p tails average 1/2 and the scores' upper tail is at most ~N(0, 1)'s, sparse or busy.

    Discreteness shrinks the spread of sparse series (sd 0.81 at mean 0.8), which makes the
    chart conservative there; it never makes the tail beyond z = 2 much heavier than normal.
    """
    rng = np.random.default_rng(1)
    for mu, phi in ((0.8, 2.0), (3.0, 1.5), (12.0, 3.0), (40.0, 1.0)):
        draws = rng.negative_binomial(mu / (phi - 1), 1 / phi, 400_000) if phi > 1 else rng.poisson(mu, 400_000)
        y, m, f = draws.astype(float), np.full(draws.size, mu), np.full(draws.size, phi)
        assert upper_tail_mid(y, m, f).mean() == pytest.approx(0.5, abs=0.002)
        z = normal_scores(y, m, f)
        assert abs(z.mean()) < 0.08 and 0.78 < z.std() < 1.02, (mu, phi, z.mean(), z.std())
        for c in (2.0, 2.5, 3.0):
            assert (z >= c).mean() <= 1.15 * stats.norm.sf(c), (mu, phi, c)
    assert np.isnan(normal_scores(np.array([np.nan]), np.array([1.0]), np.array([1.0]))[0])


def test_arl0_agrees_with_a_simulated_chart():
    """Siegmund's ARL0 for k = 1, h = 2.25 within 10 % of a Monte Carlo CUSUM of N(0, 1) scores."""
    k, h = 1.0, 2.25
    rng = np.random.default_rng(5)
    z = rng.standard_normal(2_000_000)
    c, alarms = 0.0, 0
    for v in z:
        c = max(0.0, c + v - k)
        if c >= h:
            alarms += 1
            c = 0.0
    simulated = len(z) / alarms
    assert arl0(k, h) == pytest.approx(simulated, rel=0.10)
    assert nominal_rate(FarringtonCusumParams()) == pytest.approx(0.002 + 1 / arl0(k, h))


def test_fdr_keeps_chart_alarms_and_the_budget_counts_the_nominal_rate(result):
    rows = result.assign(detector="farrington-cusum").copy()
    rows["week_start"] = pd.Timestamp("2023-01-02")  # one BH group
    levels = assign_levels(rows, SeveritySettings(multiple_testing="fdr", fdr=0.05))
    chart = rows["chart_alarm"].fillna(False).to_numpy(dtype=bool)
    assert chart.any()
    assert levels["alarm"].fillna(False).to_numpy(dtype=bool)[chart].all()
    params = FarringtonCusumParams().model_dump()
    one_week = levels.iloc[[0, 1, 2]]
    budget = false_alarm_budget(one_week, SeveritySettings(), params_of={"farrington-cusum": params})
    assert budget.expected_alerts == pytest.approx(3 * nominal_rate(FarringtonCusumParams()))
    assert budget.uncalibrated == ()


def test_params_and_registry():
    p = make_params("farrington-cusum", {"cusum_h": "3", "b": "3", "alpha": "0.001"})
    assert (p.cusum_h, p.b, p.alpha, p.cusum_k) == (3.0, 3, 0.001, 1.0)
    assert farrington_part(p) == farr.FarringtonParams(b=3, alpha=0.001)
    with pytest.raises(Exception, match="cusum_h"):
        make_params("farrington-cusum", {"cusum_h": "0"})
    # short histories fall back to nb-recent
    counts = pd.Series([3.0] * 100, index=pd.date_range("2021-01-04", periods=100, freq="7D"))
    out = run_detector("farrington-cusum", FarringtonCusumParams(), counts, weeks=[99])
    assert out["fallback_from"][0] == "farrington-cusum" and out["detector"][0] == "nb-recent"


def test_short_histories_use_as_many_years_as_they_have(series):
    """A 4.5-year series: weeks with 3 or 4 years of history are fitted on 3 or 4 years, as Farrington would."""
    p = FarringtonCusumParams()
    short = series.iloc[-240:]  # 240 weeks: the last weeks have 4 years of history, not 5
    weeks = list(range(farr.min_history(farr.FarringtonParams(b=3)), 240))
    out = detect(short, p, weeks=weeks)
    used = out["b_used"].to_numpy()
    assert set(used) == {3, 4} and (np.diff(used) >= 0).all()
    for b in (3, 4):
        rows = np.flatnonzero(used == b)
        f = farr.detect(short, farrington_part(p, b=b), weeks=[weeks[i] for i in rows])
        np.testing.assert_array_equal(out["mu0"].to_numpy()[rows], f["mu0"].to_numpy())
        assert out["farrington_alarm"].to_numpy()[rows].tolist() == f["alarm"].tolist()
    assert not out["alarm"].isna().any()
    # with b_min = 5 the same weeks are too short: undecided, as plain Farrington with b = 5
    strict = detect(short, FarringtonCusumParams(b_min=5), weeks=weeks)
    assert strict["alarm"].isna().all()


@pytest.mark.parametrize("seed", range(6))
def test_many_charts_side_by_side_are_each_chart_on_its_own(seed):
    """`_nb.judge_runs` charts a backtest's runs (one per replayed week) side by side, one numpy step per week;
    each must be exactly `_nb.judge_chart` of its own weeks (the scalar loop the weekly job runs): the same
    scores, alarms, run p-values and sentences, on weeks that cannot be judged, are not eligible, or surge."""
    from monitor.detectors import _nb

    rng = np.random.default_rng(seed)
    n = 400
    mu = rng.gamma(2.0, 2.0, n)
    mu[rng.random(n) < 0.05] = np.nan  # no baseline
    phi = rng.choice([1.0, 1.5, 3.0], n)
    y = rng.negative_binomial(2, 2 / (2 + np.nan_to_num(mu, nan=1.0))).astype(float)
    y[150:230] = rng.poisson(2.2 * np.nan_to_num(mu[150:230], nan=1.0))  # a rise: charts that alarm, restart at hold x h and alarm on
    y[rng.random(n) < 0.03] = np.nan  # counts missing
    decided = np.isfinite(mu) & np.isfinite(y)
    tests = _nb.single_tests(y, mu, phi, decided, alpha=0.01)
    eligible = rng.random(n) > 0.1
    width = int(rng.choice([20, 156]))
    runs = [(max(0, t + 1 - width), t, [t]) for t in range(60, n)]  # a replay: each week at the end of its own run
    runs.append((10, 300, list(range(10, 301, 7))))  # and one run asked for many rows
    params = {"alpha": 0.01, "k": float(rng.choice([0.5, 1.0])), "h": 4.0, "hold": float(rng.choice([0.0, 0.5]))}
    t, side_by_side = _nb.judge_runs(y, mu, phi, tests, eligible, runs, **params)
    expected_t, one_by_one = [], {}
    for start, end, rows in runs:
        cut = slice(start, end + 1)
        alone = _nb.judge_chart(y[cut], mu[cut], phi[cut], {name: v[cut] for name, v in tests.items()}, eligible[cut], **params)
        expected_t += list(rows)
        for name, values in alone.items():
            one_by_one.setdefault(name, []).extend(values[np.asarray(rows) - start])
    assert list(t) == expected_t
    assert set(side_by_side) == set(one_by_one)
    assert side_by_side["chart_alarm"].any() and side_by_side["alarm"].sum() > side_by_side["chart_alarm"].sum()
    for name, values in one_by_one.items():
        ours = side_by_side[name]
        assert ours.dtype == np.asarray(values).dtype or name == "why", name
        if ours.dtype.kind == "f":
            np.testing.assert_array_equal(ours, np.asarray(values, dtype=float), err_msg=name)
        else:
            assert list(ours) == list(values), name
