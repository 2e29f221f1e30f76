"""nb-recent, the fallback for short and sparse history, and the min_count floor every detector gets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitor.detectors import FALLBACK, _nb, apply_min_count, make_params, run_detector
from monitor.detectors.nb_recent import NbRecentParams, detect, level_and_dispersion, min_history
from monitor.severity import SeveritySettings, assign_levels

WEEKS = pd.date_range("2021-01-04", periods=120, freq="7D")


def _series(values) -> pd.Series:
    values = np.asarray(values, dtype=float)
    return pd.Series(values, index=WEEKS[: len(values)])


def _dist(mu: float, phi: float):
    return stats.nbinom(mu / (phi - 1), 1 / phi) if phi > 1 else stats.poisson(mu)


def test_level_and_dispersion_follow_their_definition():
    """Level = (sum of the 8 weeks before the gap week + 0.5) / 8; phi = sum of squared one-week-ahead
    errors over the sum of levels, 52 weeks back, past surge weeks left out, floored at 1: recomputed
    here with plain loops and scipy's distributions."""
    rng = np.random.default_rng(3)
    y = rng.negative_binomial(2, 2 / 7, 120).astype(float)
    p = NbRecentParams()
    level, phi = level_and_dispersion(y, p)

    def first_phi(s: int) -> float:
        past = [r for r in range(max(s - p.phi_weeks, 0), s) if np.isfinite(level[r])]
        den = sum(level[r] for r in past)
        return max(sum((y[r] - level[r]) ** 2 for r in past) / den, 1.0) if den > 0 else 1.0

    for t in range(120):
        end = t - p.gap
        window = y[max(end - p.window, 0) : max(end, 0)]
        if len(window) < p.min_weeks:
            assert np.isnan(level[t]) and np.isnan(phi[t])
            continue
        assert level[t] == pytest.approx((window.sum() + 0.5) / len(window))
        past = [s for s in range(max(t - p.phi_weeks, 0), t) if np.isfinite(level[s])]
        # weeks that were surges when they happened, under a first estimate from every week, are left out
        kept = [s for s in past if not (y[s] > level[s] and _dist(level[s], first_phi(s)).sf(y[s] - 1) <= p.outlier_alpha)]
        num = sum((y[s] - level[s]) ** 2 for s in kept)
        den = sum(level[s] for s in kept)
        want = max(num / den, 1.0) if den > 0 else 1.0
        assert phi[t] == pytest.approx(want)
    assert min_history(p) == 5


def test_pvalue_is_a_real_tail_and_the_threshold_is_never_below_one_event():
    rng = np.random.default_rng(4)
    y = np.concatenate([np.zeros(30), rng.poisson(6, 90)])
    out = detect(_series(y), NbRecentParams(), weeks=range(120))
    ok = out["alarm"].notna().to_numpy()
    assert ok[5:].all() and not ok[:5].any()
    for _, row in out[ok].iterrows():
        dist = _dist(row["expected"], row["phi"])
        assert row["pvalue"] == pytest.approx(dist.sf(row["count"] - 1), rel=1e-7, abs=1e-14)
        u = row["upperbound"]
        assert u >= 1 and dist.sf(u - 1) > 0.002 >= dist.sf(u)
        assert row["expected"] > 0  # an empty window still expects half an event over its weeks
    quiet = out.iloc[10]  # eight empty weeks before: 0.5 / 8 expected, one event is not a surge
    assert quiet["expected"] == pytest.approx(0.5 / 8)


def test_a_new_category_is_judged_from_its_first_weeks_not_against_zero():
    """A category that appears in the data: undecided for its first 5 weeks, then judged on its own level."""
    y = [3, 4, 2, 5, 3, 4, 3, 4, 5, 30]
    out = detect(_series(y), NbRecentParams(), weeks=range(len(y)))
    assert out["alarm"].iloc[:5].isna().all() and out["note"].iloc[0].startswith("too little history")
    assert not out["alarm"].iloc[5:9].any()
    last = out.iloc[-1]
    assert bool(last["alarm"]) and last["expected"] == pytest.approx((3 + 4 + 2 + 5 + 3 + 4 + 3 + 4 + 0.5) / 8)


def test_a_gradual_doubling_without_an_extreme_week_is_caught_by_the_chart():
    """4 a week, then 7, 8, 9, 11: no single week passes the threshold, the CUSUM alarms by the 4th and says why."""
    rng = np.random.default_rng(5)
    base = rng.poisson(4, 40).astype(float)
    y = np.concatenate([base, [7, 8, 9, 11]])
    out = detect(_series(y), NbRecentParams(), weeks=range(20, len(y)))
    tail = out.iloc[-4:]
    assert not tail["single_alarm"].any()
    assert tail["chart_alarm"].any()
    first = tail[tail["chart_alarm"].fillna(False)].iloc[0]
    assert first["why"].startswith(("2 weeks above expected", "3 weeks above expected", "4 weeks above expected"))
    assert 0 < first["chart_pvalue"] < 0.01


def test_in_control_alarm_rate_is_near_nominal_after_warm_up():
    """Simulated NB counts, sparse to busy, after 30 weeks: within twice the nominal 0.0042 a week, and
    under 0.015 where counts are sparse and overdispersed.

    A level estimated from 8 weeks runs above nominal where counts are sparse and overdispersed
    (measured 0.0125 at mean 2, phi 3 with this seed; 0.002-0.006 elsewhere): the plug-in bound
    does not carry the level's own uncertainty, and leaving past surge weeks out of the
    dispersion (what keeps one offensive from blunting a year of alarms) trims phi a little.
    The README states these figures; the Noufaily figures of the default detector are there too."""
    rng = np.random.default_rng(7)
    index = pd.date_range("2018-01-01", periods=160, freq="7D")
    nominal = 0.002 + 1 / _nb.arl0(1.0, 2.25)
    for mu, phi, bound in ((0.5, 1.0, 2 * nominal), (2.0, 3.0, 0.015), (8.0, 2.0, 2 * nominal), (30.0, 1.5, 2 * nominal)):
        alarms = weeks = 0
        for _ in range(60):
            y = rng.negative_binomial(mu / (phi - 1), 1 / phi, 160) if phi > 1 else rng.poisson(mu, 160)
            out = apply_min_count(detect(pd.Series(y.astype(float), index=index), NbRecentParams(), weeks=range(35, 160)), 3)
            alarms += int(out["alarm"].fillna(False).sum())
            weeks += len(out)
        assert alarms / weeks <= bound, (mu, phi, alarms / weeks)


def test_fallback_is_nb_recent_and_ears_stays_available():
    assert FALLBACK == "nb-recent"
    counts = _series([2, 3, 1, 4, 2, 3, 2, 3, 2, 4, 3, 2])
    out = run_detector("farrington", make_params("farrington", {}), counts, weeks=[11])
    assert out["detector"][0] == "nb-recent" and out["fallback_from"][0] == "farrington"
    assert out["expected"][0] > 0 and out["upperbound"][0] >= 1
    ears = run_detector("ears", make_params("ears", {}), counts, weeks=[11], fallback="")
    assert ears["detector"][0] == "ears"


def test_min_count_floor_silences_alerts_and_warnings_below_it():
    """1 event after eight empty weeks: nb-recent alarms (P = 0.06 is no alarm, but 2 events: P ~ 0.002);
    with min_count = 3 the week is neither an alert nor a warning, and the threshold reads 2."""
    counts = _series([0] * 12 + [2])
    raw = detect(counts, NbRecentParams(), weeks=[12])
    assert bool(raw["alarm"][0]) and raw["upperbound"][0] < 2
    floored = apply_min_count(raw, 3)
    assert not bool(floored["alarm"][0]) and floored["upperbound"][0] == 2
    assert "min_count = 3" in floored["note"][0]
    levels = assign_levels(floored.assign(detector="nb-recent"), SeveritySettings())
    assert levels["level"][0] == "" and not bool(levels["alarm"][0])
    same = apply_min_count(raw, 2)  # at the floor it still alerts
    assert bool(same["alarm"][0])
    undecided = apply_min_count(detect(counts, NbRecentParams(), weeks=[1]), 3)
    assert undecided["alarm"].isna().all()


def test_threshold_matches_scipy_quantile():
    rng = np.random.default_rng(9)
    mu = np.exp(rng.uniform(-3, 6, 200))
    phi = np.where(rng.random(200) < 0.3, 1.0, rng.uniform(1.01, 8, 200))
    for alpha in (0.002, 0.05):
        got = _nb.threshold(mu, phi, alpha)
        for g, m, f in zip(got, mu, phi):
            d = _dist(m, f)
            assert d.sf(g - 1) > alpha >= d.sf(g), (m, f, g)


def test_threshold_from_the_quantile_guess_equals_the_bisection_everywhere():
    """`threshold` starts from scipy's quantile (nbdtrik, pdtrik) and walks to the exact count; the bisection on the
    tail alone is the reference. Means from 1e-6 to 1e5, Poisson, phi just above 1 and up to 200, alpha down to 1e-12."""
    rng = np.random.default_rng(17)
    n = 20_000
    mu = np.exp(rng.uniform(np.log(1e-6), np.log(1e5), n))
    phi = np.where(rng.random(n) < 0.3, 1.0, np.exp(rng.uniform(0, np.log(200), n)))
    phi[:200] = rng.uniform(0.2, 1.0, 200)  # under-dispersed estimates: Poisson
    phi[200:400] = 1 + 1e-9  # a negative binomial next to the Poisson
    for alpha in (0.5, 0.05, 0.002, 1e-6, 1e-12):
        fast = _nb.threshold(mu, phi, alpha)
        assert np.array_equal(fast, _nb.threshold_bisect(mu, phi, alpha)), alpha
        assert (fast >= 0).all()
    unusable = _nb.threshold(np.array([np.nan, 0.0, 3.0]), np.array([2.0, 2.0, np.inf]), 0.05)
    assert np.isnan(unusable).all()
