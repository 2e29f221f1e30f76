"""Before and after an event: the rate ratio of a weekly series, from a negative-binomial regression.

The founding question of the project, for any dated event: did a series rise after it, and by how
much? The weeks of the `before` window and of the `after` window are fitted together (statsmodels'
maximum-likelihood negative binomial, NB2) as

    log E[y_t] = b0 + b1·t + a1·cos(2πt/52) + a2·sin(2πt/52) + g·after_t

so the rate ratio exp(g) compares the after weeks with what the before weeks' level, trend and
season project for them (an interrupted time series). Its 95 % interval is exp(g ± 1.96 se). The
terms are used only when the before window can carry them: the trend from 8 weeks before (and
projected at most a quarter of the before window ahead: a year's trend carried two years on would
decide the answer by itself), the
annual season from 104 (with a single year, a season cannot be told apart from a trend, and
projecting both six weeks ahead doubles the interval: on the demo's Islamic State series over 52
weeks, Deir ez-Zor read ×1.44, 95 % CI 0.42–4.92, with the season, ×3.31, 1.38–7.97, without).
When the negative binomial cannot be fitted (a series with almost no events,
no variation), a quasi-Poisson GLM (Poisson with its dispersion from Pearson's chi-square) is used
instead, and `model` says which. A before window without a single event has no rate to compare
with: the ratio is infinite (or undefined when the after window is empty too) and the interval NaN.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

#: Weeks before the event from which the trend, and the annual season (two years), enter the model.
TREND_WEEKS = 8
SEASON_WEEKS = 104
Z95 = 1.959963984540054


@dataclass(frozen=True)
class RateRatio:
    before_rate: float  # mean weekly count in the before window
    after_rate: float  # mean weekly count in the after window
    rate_ratio: float  # exp(g): after against the before window's projection
    ci_low: float
    ci_high: float
    model: str  # what was fitted, in words
    note: str = ""


def _design(t: np.ndarray, after: np.ndarray, *, trend: bool, season: bool) -> np.ndarray:
    cols = [np.ones_like(t)]
    if trend:
        cols.append((t - t.mean()) / max(t.std(), 1.0))  # centred and scaled: the fit converges the same on any dates
    if season:
        cols += [np.cos(2 * np.pi * t / 52), np.sin(2 * np.pi * t / 52)]
    cols.append(after)
    return np.column_stack(cols)


def rate_ratio(before: np.ndarray, after: np.ndarray, *, start_week: int = 0) -> RateRatio:
    """Compare the weekly counts `after` an event with those `before` it (consecutive weeks, oldest first).

    start_week: the week number (weeks since any fixed Monday) of before[0], so the season's phase is
    the calendar's, whatever the window.
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning, PerfectSeparationWarning

    y_before, y_after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if not len(y_before) or not len(y_after):
        raise ValueError("both windows need at least one week")
    before_rate, after_rate = float(y_before.mean()), float(y_after.mean())
    if y_before.sum() == 0:
        ratio = math.inf if y_after.sum() > 0 else math.nan
        return RateRatio(before_rate, after_rate, ratio, math.nan, math.nan, "none",
                         "no events before: no rate to compare with")  # fmt: skip
    if y_after.sum() == 0:  # the rate fell to nothing: the ratio is 0, its upper bound from a Poisson count of 0 (3 events)
        return RateRatio(before_rate, after_rate, 0.0, 0.0, _exp(math.log(3.0 / len(y_after)) - math.log(before_rate)),
                         "no events after", "its upper bound: a Poisson count of zero is at most 3 events at 95 %")  # fmt: skip
    y = np.concatenate([y_before, y_after])
    t = start_week + np.arange(len(y), dtype=float)
    flag = np.concatenate([np.zeros(len(y_before)), np.ones(len(y_after))])
    # a trend is projected at most a quarter of the before window ahead (longer, it dominates the answer)
    trend = len(y_before) >= TREND_WEEKS and 4 * len(y_after) <= len(y_before)
    season = len(y_before) >= SEASON_WEEKS
    terms = ", ".join(["level", *(["trend"] if trend else []), *(["annual season"] if season else [])])
    X = _design(t, flag, trend=trend, season=season)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        warnings.simplefilter("ignore", HessianInversionWarning)  # no standard errors: the quasi-Poisson below takes over
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            fit = sm.NegativeBinomial(y, X).fit(disp=0, maxiter=200)
            g, se = float(fit.params[X.shape[1] - 1]), float(fit.bse[X.shape[1] - 1])
            model = f"negative binomial ({terms})"
            usable = fit.mle_retvals.get("converged", True) and math.isfinite(g) and math.isfinite(se) and se > 0
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError):
            usable = False
        if not usable:
            fit = sm.GLM(y, X, family=sm.families.Poisson()).fit(scale="X2")
            if not fit.scale > 0:  # counts the model fits exactly: no overdispersion to measure, Poisson's own
                fit = sm.GLM(y, X, family=sm.families.Poisson()).fit()
            g, se = float(fit.params[-1]), float(fit.bse[-1])
            model = f"quasi-Poisson ({terms}; the negative binomial could not be fitted)"
    if not (math.isfinite(g) and math.isfinite(se)):
        return RateRatio(before_rate, after_rate, math.nan, math.nan, math.nan, model, "the model could not be fitted")
    return RateRatio(before_rate, after_rate, _exp(g), _exp(g - Z95 * se), _exp(g + Z95 * se), model)


def _exp(x: float) -> float:
    """exp(x), infinite instead of an overflow."""
    return math.exp(x) if x < 700 else math.inf
