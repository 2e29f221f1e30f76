"""The Farrington flexible model, one week at a time: what both Farrington engines share.

`monitor.detectors.farrington` is the detector (its docstring describes the algorithm, steps
1-6); this module holds the algorithm itself, numbered as there:

* the settings (`FarringtonParams`), the result columns (`COLUMNS`) and how much history a
  week needs (`min_history`, `series_min_history`);
* step 1, the reference weeks and the rows of the GLM (`reference_weeks`, `seasonal_blocks`,
  `glm_rows`; `TooLittleHistory` when the series is too short), and the limit54 rule
  (`enough_cases`);
* steps 2-5, the quasi-Poisson fit by statsmodels started and stopped as R's glm.fit
  (`MAXITER`, `ATOL`, `RTOL`), the reweighting, the trend rule and the thresholds;
* `evaluate_week`, one monitored week from counts to result row: the reference path.

Who uses it: `farrington.detect_statsmodels` runs `evaluate_week` on every week asked for;
the batch engine (`monitor.detectors.farrington_batch`) takes the reference weeks, rows and
IRLS control from here, computes the rest vectorised, and hands the weeks whose outcome
rounding could decide back to `evaluate_week`; `farrington_cusum` uses `enough_cases`.
The names without an underscore are the ones those modules use.

Where R's code differs from its papers, R wins (the parity tests compare with its output);
each such place has a comment citing the R function in R/farringtonFlexible.R or
R/algo_farrington.R.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import special

from monitor.detectors._dist import norm_ppf, norm_sf, t_sf

#: Result columns, in order.
COLUMNS: tuple[str, ...] = (
    "week_start", "count", "expected", "upperbound", "alarm", "score", "pvalue",
    "mu0", "phi", "trend_used", "trend_coef", "note",
)  # fmt: skip

_THRESHOLD_METHODS = {"delta": "delta", "nbplugin": "nbPlugin", "muan": "muan"}
_POWERTRANS = ("2/3", "1/2", "none")


class FarringtonParams(BaseModel):
    """Control list of `surveillance::farringtonFlexible`; defaults are Noufaily 2013's improved settings.

    R's package defaults differ: b=5, alpha=0.05, p_threshold_trend=0.05, no_periods=1,
    past_weeks_not_included=w, threshold_method="delta" (Farrington 1996 is additionally
    weights_threshold=1, past_weeks_not_included=3 with b=3, alpha=0.005).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    b: int = Field(3, ge=1, description="Years of history: reference weeks come from each of the past b years.")
    w: int = Field(3, ge=0, description="Half-window: weeks taken on each side of each reference week (2w+1 per year).")
    reweight: bool = Field(True, description="Down-weight past outbreaks (large Anscombe residuals) and refit the model.")
    weights_threshold: float = Field(
        2.58, gt=0, allow_inf_nan=False, description="Anscombe residual above which a past week is down-weighted (Farrington 1996 used 1)."
    )
    alpha: float = Field(
        0.005, gt=0, lt=1, allow_inf_nan=False, description="One-sided level: the upper limit is the (1 - alpha) predictive quantile."
    )
    trend: bool = Field(True, description="Allow a linear time trend (kept only when significant, b >= 3 and not extrapolating).")
    p_threshold_trend: float = Field(
        1.0, ge=0, le=1, allow_inf_nan=False, description="Keep the trend only if its p-value is below this (1 = whenever estimable)."
    )
    limit54: tuple[int, int] = Field(
        (5, 4), description="cases,weeks: no alarm unless at least `cases` events fell in the last `weeks` weeks (this one included)."
    )
    powertrans: Literal["2/3", "1/2", "none"] = Field(
        "2/3", description="delta threshold only: power transformation applied before the normal approximation."
    )
    no_periods: int = Field(
        10, ge=1, description="Seasonal factor levels per year: 1 = reference windows only; 10 = windows + 9 periods (Noufaily 2013)."
    )
    past_weeks_not_included: int = Field(
        26, ge=0, description="Recent weeks left out of the fit so an ongoing outbreak does not raise its own limit."
    )
    threshold_method: Literal["delta", "nbPlugin", "muan"] = Field(
        "nbPlugin", description="delta: Farrington 1996 normal approximation; nbPlugin/muan: negative binomial quantile (Noufaily 2013)."
    )

    @field_validator("limit54", mode="before")
    @classmethod
    def _parse_limit54(cls, value: Any) -> Any:
        # The command line gives "5,4"; R writes c(5, 4).
        if isinstance(value, str):
            parts = [p.strip() for p in value.strip().strip("()").split(",")]
            try:
                if len(parts) != 2:
                    raise ValueError
                return (int(parts[0]), int(parts[1]))
            except ValueError:
                raise ValueError(f"limit54 must be two whole numbers 'cases,weeks', e.g. 5,4 (got '{value}')") from None
        return value

    @field_validator("limit54")
    @classmethod
    def _check_limit54(cls, value: tuple[int, int]) -> tuple[int, int]:
        cases, weeks = value
        if cases < 0 or weeks < 1:
            raise ValueError(f"limit54 needs cases >= 0 and weeks >= 1, e.g. 5,4 (got {cases},{weeks})")
        return value

    @field_validator("powertrans", mode="before")
    @classmethod
    def _parse_powertrans(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            if text not in _POWERTRANS:
                raise ValueError(f"powertrans must be one of {', '.join(_POWERTRANS)} (got '{value}')")
            return text
        return value

    @field_validator("threshold_method", mode="before")
    @classmethod
    def _parse_threshold_method(cls, value: Any) -> Any:
        # Case-insensitive on input, R's spelling (nbPlugin) on output.
        if isinstance(value, str):
            key = value.strip().lower()
            if key not in _THRESHOLD_METHODS:
                raise ValueError(f"threshold_method must be one of delta, nbPlugin, muan (got '{value}')")
            return _THRESHOLD_METHODS[key]
        return value

    @model_validator(mode="after")
    def _periods_fit_between_windows(self) -> FarringtonParams:
        # Consecutive reference windows are 52 or 53 weeks apart, leaving at least 52 - (2w+1)
        # weeks for the no_periods - 1 periods; fewer and R's blocks() writes empty periods
        # over its neighbours (or stops with "Number of factors too big!").
        room = 52 - (2 * self.w + 1)
        if self.no_periods > 1 and self.no_periods - 1 > room:
            raise ValueError(
                f"no_periods={self.no_periods} is too large for w={self.w}: the {room} weeks between reference "
                f"windows hold at most {max(room, 0) + 1} periods (use no_periods <= {max(room, 0) + 1} or a smaller w)"
            )
        return self


def min_history(params: FarringtonParams, start: date | None = None) -> int:
    """Weeks of history before a monitored week from which R's farringtonFlexible fits it.

    R looks the reference weeks up by date: the oldest is the week nearest to t0 − b years,
    52·b + 0..2 rows back depending on the calendar, and its window of w weeks either side
    may reach one week before the series (R indexes from 1 and drops index 0 silently; see
    `seasonal_blocks`). So R fits position t exactly when t − (rows back to that week) ≥
    max(w − 1, 0).

    start: the date of the series' first week (weeks consecutive): the first position R fits
        in that series. None: the most any calendar needs, (365·b + ceil(b/4) + 3) // 7 rows
        back (the longest b years, rounded to whole weeks) + max(w − 1, 0).
    """
    if start is not None:
        return _first_fitted(params.b, params.w, start)
    leap_days = -(-params.b // 4)  # ceil(b / 4)
    return (365 * params.b + leap_days + 3) // 7 + max(params.w - 1, 0)


def series_min_history(params: FarringtonParams, counts: pd.Series) -> int:
    """`min_history` for the calendar of `counts` (consecutive weeks indexed by week start).

    Positions from this one on are exactly those R fits; an index that is not dates (or an
    empty series) gets the calendar-free `min_history(params)`.
    """
    index = counts.index
    if not isinstance(index, pd.DatetimeIndex) or len(index) == 0:
        return min_history(params)
    return min_history(params, index[0].date())  # local date, as the reference weeks use


@functools.lru_cache(maxsize=4096)
def _first_fitted(b: int, w: int, start: date) -> int:
    """The first position t of a series starting at `start` whose reference weeks R finds (see `min_history`).

    t − (rows back to the oldest reference week) never decreases with t (the b years change by
    at most a day from one week to the next), so the first t that passes is the answer. The
    search starts below it: b years are at least 365·b − 1 days (29 Feb → 1 Mar).
    """
    t = (365 * b - 4) // 7 + max(w - 1, 0)
    while True:
        t0 = start + timedelta(days=7 * t)
        back = (t0 - _reference_date(t0, b)).days // 7
        if t - back >= max(w - 1, 0):
            return t
        t += 1


class TooLittleHistory(Exception):
    """The series does not reach back far enough for this week."""


def evaluate_week(y: np.ndarray, days: list[date], position_of: dict[date, int], t: int, p: FarringtonParams) -> dict[str, Any]:
    """Week t of the counts `y` (week starts `days`, `position_of` their positions): one result row, `COLUMNS` as keys.

    Steps 1-6 of `monitor.detectors.farrington` for one week; a week that cannot be fitted gets
    its reason in `note` and NA elsewhere. `farrington.detect_statsmodels` returns these rows.
    """
    row: dict[str, Any] = dict.fromkeys(COLUMNS, np.nan)
    row.update(count=y[t], alarm=pd.NA, trend_used=pd.NA, note="")
    if np.isnan(y[t]):
        row["note"] = "count is missing"
        return row
    try:
        refs = reference_weeks(days, position_of, t, p.b)
        blocks = seasonal_blocks(len(y), refs, p.w, p.no_periods, days)
        data = _glm_data(y, blocks, t, p.past_weeks_not_included, p.no_periods)
    except TooLittleHistory as exc:
        row["note"] = str(exc)
        return row
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # R runs glm() under suppressWarnings (glmWarnings = FALSE): a boundary fit is data.
            warnings.simplefilter("ignore")
            model = _final_model(data, p)
            lim = _threshold(model, y[t], p) if model is not None else None
    except Exception as exc:  # noqa: BLE001 - one week that cannot be fitted is data, not a crash
        row["note"] = f"model failed: {type(exc).__name__}: {exc}"
        return row
    if model is None or lim is None:
        # farringtonFlexible: no convergence with nor without trend -> everything NA.
        row["note"] = "model failed: the GLM did not converge with or without trend"
        return row

    enough = enough_cases(y, t, p.limit54)
    upper = lim.upper if enough else math.nan
    expected = lim.mean if enough and not math.isnan(lim.upper) else math.nan
    # farringtonFlexible's alarm: !is.na(X) && X > 1 && y != 0, with X = (y - fit) / (U - fit)
    # and `fit` on the scale R predicted on (link scale for nbPlugin/muan). For U above the
    # fit this is y > U; R's own formula is kept so odd cases (U below the fit) match too.
    r_score = _ratio(y[t] - lim.r_fit, lim.upper - lim.r_fit)
    alarm = bool(enough and not math.isnan(r_score) and r_score > 1 and y[t] != 0)
    row.update(
        expected=expected,
        upperbound=upper,
        alarm=alarm,
        score=_exceedance_score(y[t], lim.mean, lim.upper),
        pvalue=lim.pvalue,
        mu0=lim.mu0,
        phi=model.phi,
        trend_used=model.do_trend,
        trend_coef=model.trend_coef,
    )
    if not enough:
        cases, length = p.limit54
        row["note"] = f"fewer than {cases} cases in the last {length} weeks (limit54)"
    elif math.isnan(lim.upper):
        row["note"] = f"upper limit undefined (mu0 = {lim.mu0:g})"
    return row


# 1. reference weeks and the data for the GLM


def reference_weeks(days: list[date], position_of: dict[date, int], t: int, b: int) -> list[int]:
    """Positions of t0 and of the week nearest to t0 − j years, j = 1..b (most recent first).

    algo.farrington.referencetimepoints: seq(t0, by = "-1 year") keeps month and day (29 Feb
    rolls over to 1 Mar, as R's as.Date(POSIXlt) does), then each date moves to the nearest
    day with t0's weekday; of the two candidates a week apart, ties go to the first.
    """
    t0 = days[t]
    out = []
    for j in range(b + 1):
        chosen = _reference_date(t0, j)
        if chosen not in position_of:
            # R stops: "Some reference time points did not exist; decrease 'b' or postpone 'range'."
            raise TooLittleHistory(
                f"too little history: needs the week of {chosen} ({j} year{'s' if j != 1 else ''} back, b={b}); "
                f"series starts {days[0]}"
            )
        out.append(position_of[chosen])
    return out


def _reference_date(t0: date, j: int) -> date:
    """The day with t0's weekday nearest to t0 − j years (see `reference_weeks`)."""
    ref = date(t0.year - j, t0.month, 1) + timedelta(days=t0.day - 1)
    a = ref - timedelta(days=(ref.isoweekday() - t0.isoweekday()))  # same weekday, same Sun-Sat week
    other = a + timedelta(days=-7 if a > ref else 7)
    return other if abs((a - ref).days) > abs((other - ref).days) else a


def _r_range(first: int, last: int) -> np.ndarray:
    """R's `first:last`, which counts down when last < first (blocks() relies on it)."""
    step = 1 if last >= first else -1
    return np.arange(first, last + step, step)


def seasonal_blocks(n: int, refs: list[int], w: int, no_periods: int, days: list[date]) -> np.ndarray:
    """Seasonal factor level of every row (NaN = not used): R's blocks().

    Windows t0−w..t0 and ref±w get level `no_periods`; with no_periods > 1 the weeks between
    consecutive windows are split into no_periods − 1 blocks, the first ones one week longer
    when the division leaves a remainder.
    """
    levels = np.full(n, np.nan)
    now = refs[0]
    levels[_r_range(now - w, now)] = no_periods
    for i in range(1, len(refs)):
        ref = refs[i]
        window = _r_range(ref - w, ref + w)
        if window[0] < -1:
            raise TooLittleHistory(
                f"too little history: the reference week {days[ref]} needs {w} weeks before it; series starts {days[0]}"
            )
        # R indexes from 1 and silently drops index 0, so a window one week short still runs.
        levels[window[window >= 0]] = no_periods
        if no_periods == 1:
            continue
        period = refs[i - 1] - 2 * w - 1 - ref
        if period < no_periods - (2 * w + 1):
            raise ValueError("Number of factors too big!")  # R's check, verbatim
        size, rest = divmod(period, no_periods - 1)
        lengths = np.full(no_periods - 1, size)
        lengths[:rest] += 1
        starts = np.concatenate(([0], np.cumsum(lengths)))
        for j in range(1, no_periods):
            first = ref + w + 1 + starts[j - 1]
            levels[_r_range(first, ref + w + 1 + starts[j] - 1)] = j
    return levels


@dataclass(frozen=True)
class _GLMData:
    response: np.ndarray
    wtime: np.ndarray
    groups: np.ndarray | None  # seasonal level of each row; None when no_periods == 1
    wtime_now: float  # wtime of the monitored week
    level_now: int  # seasonal level of the monitored week (= no_periods)


def _glm_data(y: np.ndarray, blocks: np.ndarray, t: int, past_weeks_not_included: int, no_periods: int) -> _GLMData:
    """Rows the GLM is fitted on: algo.farrington.data.glm.

    The monitored week and the `past_weeks_not_included` weeks before it are dropped so a
    current outbreak cannot inflate its own baseline. wtime counts weeks from the first row
    used; missing counts are dropped afterwards (the prediction's wtime then counts from the
    first non-missing row, as in R).
    """
    rows = glm_rows(blocks, t, past_weeks_not_included)
    wtime = (rows - rows[0]).astype(float)
    keep = ~np.isnan(y[rows])
    if not keep.any():
        raise TooLittleHistory("too little history: every reference week is missing")
    rows, wtime = rows[keep], wtime[keep]
    return _GLMData(
        response=y[rows],
        wtime=wtime,
        groups=blocks[rows].astype(int) if no_periods != 1 else None,
        wtime_now=float(t - rows[0]),
        level_now=no_periods,
    )


def glm_rows(blocks: np.ndarray, t: int, past_weeks_not_included: int) -> np.ndarray:
    """Positions (ascending) of the rows with a seasonal level, less t0 and the `past_weeks_not_included` weeks before it."""
    used = blocks.copy()
    used[max(t - past_weeks_not_included, 0) : t + 1] = np.nan
    rows = np.flatnonzero(~np.isnan(used))
    if len(rows) == 0:
        raise TooLittleHistory("too little history: no reference weeks left to fit")
    return rows


def enough_cases(y: np.ndarray, t: int, limit54: tuple[int, int]) -> bool:
    """limit54: at least `cases` events in the `weeks` weeks ending with this one (surveillance >= 0.9-7)."""
    cases, length = limit54
    total = y[max(t - length + 1, 0) : t + 1].sum()
    return bool(total >= cases)  # NaN (a missing count) -> not enough, like R's NA


# 2. quasi-Poisson fit (statsmodels, started and stopped like R's glm.fit)


#: IRLS control of R's glm.fit (glm.control()): at most 25 iterations; statsmodels' rule
#: |dev_old − dev| <= atol + rtol·|dev| with these values is R's |dev − dev_old| / (|dev| + 0.1) < 1e-8.
MAXITER, ATOL, RTOL = 25, 1e-9, 1e-8


_FAMILY: list = []


def _r_poisson():
    """statsmodels' GLM and a Poisson family whose IRLS starts where R's does: mustart = y + 0.1
    (poisson()$initialize).

    statsmodels is imported here, on the first fit of the reference path: the batch engine
    sends it only the rare near-tie weeks, and `monitor check` starts faster without it. Only
    the GLM and its families are imported (the objects `statsmodels.api` names GLM and
    families), not the whole of statsmodels.api: `monitor detect` on 500 series hands 4 weeks
    to this path, and statsmodels.api's other models took a quarter of a second to import.
    """
    if not _FAMILY:
        from statsmodels.genmod import families
        from statsmodels.genmod.generalized_linear_model import GLM

        class _RPoisson(families.Poisson):
            def starting_mu(self, y: np.ndarray) -> np.ndarray:
                return y + 0.1

        _FAMILY.append((GLM, _RPoisson))
    return _FAMILY[0]


@dataclass(frozen=True)
class _QuasiPoissonFit:
    X: np.ndarray
    params: np.ndarray
    cov_unscaled: np.ndarray  # (X' W X)^-1, W the IRLS weights of the last iteration
    irls_weights: np.ndarray
    mu: np.ndarray
    dispersion: float  # summary.glm(model)$dispersion: not floored
    df_resid: float
    converged: bool
    has_trend: bool


def _design(data: _GLMData, trend: bool) -> tuple[np.ndarray, np.ndarray]:
    """Model matrix and the monitored week's row: 1 [+ wtime] [+ treatment dummies of the seasonal factor]."""
    cols = [np.ones_like(data.wtime)]
    now = [1.0]
    if trend:
        cols.append(data.wtime)
        now.append(data.wtime_now)
    if data.groups is not None:
        for level in np.unique(data.groups)[1:]:  # first level is the baseline, as R's contr.treatment
            cols.append((data.groups == level).astype(float))
            now.append(float(level == data.level_now))
    return np.column_stack(cols), np.asarray(now)


def _quasi_poisson(data: _GLMData, trend: bool, weights: np.ndarray | None = None) -> _QuasiPoissonFit:
    """glm(response ~ 1 [+ wtime] [+ seasgroups], family = quasipoisson, weights = weights).

    statsmodels' IRLS is run as R's glm.fit: start at y + 0.1, stop when
    |dev − dev_old| ≤ 1e-8·|dev| + 1e-9 (R: |dev − dev_old| / (|dev| + 0.1) < 1e-8), at most
    25 iterations. The criterion uses the unscaled deviance, so the fit runs with scale 1
    and the quasi-Poisson dispersion is computed afterwards the way summary.glm does: with
    the IRLS weights of the last iteration, sum(w·((y − mu)/mu)²) / df_resid. Prior weights
    are `var_weights` (README: GLM(Poisson, var_weights=w) is R's quasipoisson with weights).
    """
    X, _ = _design(data, trend)
    glm, family = _r_poisson()
    model = glm(data.response, X, family=family(), var_weights=weights)
    res = model.fit(maxiter=MAXITER, atol=ATOL, rtol=RTOL)
    mu = np.asarray(res.fittedvalues, dtype=float)
    irls_weights = np.asarray(model.weights, dtype=float)  # var_weights · mu of the last iteration
    df_resid = float(res.df_resid)
    dispersion = _pearson_sum(irls_weights, data.response, mu) / df_resid if df_resid > 0 else math.nan
    return _QuasiPoissonFit(
        X=X,
        params=np.asarray(res.params, dtype=float),
        cov_unscaled=np.asarray(res.normalized_cov_params, dtype=float),
        irls_weights=irls_weights,
        mu=mu,
        dispersion=dispersion,
        df_resid=df_resid,
        converged=bool(res.converged),
        has_trend=trend,
    )


def _pearson_sum(weights: np.ndarray, y: np.ndarray, mu: np.ndarray) -> float:
    """sum(weights·((y − mu)/mu)²): summary.glm's sum(object$weights·object$residuals²)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(weights * ((y - mu) / mu) ** 2))


# 3. reweighting (Farrington 1996, section 3.3)


def _anscombe_residuals(fit: _QuasiPoissonFit, y: np.ndarray, phi: float) -> np.ndarray:
    """Standardised Anscombe residuals: anscombe.residuals() in R/algo_farrington.R.

    3/2·(y^(2/3)·mu^(−1/6) − mu^(1/2)) / sqrt(phi·(1 − h)), h the hat values of the
    weighted least-squares problem of the last IRLS iteration (R's hatvalues()).
    """
    hat = fit.irls_weights * np.einsum("ij,jk,ik->i", fit.X, fit.cov_unscaled, fit.X)
    raw = 1.5 * (y ** (2 / 3) * fit.mu ** (-1 / 6) - np.sqrt(fit.mu))
    return raw / np.sqrt(phi * (1 - hat))


def _farrington_weights(s: np.ndarray, threshold: float) -> np.ndarray:
    """algo.farrington.assign.weights: s⁻² above the threshold, 1 otherwise, scaled to sum to n."""
    high = s > threshold
    raw = np.where(high, s ** -2.0, 1.0)
    return raw * (len(s) / raw.sum())


def _fit_glm(data: _GLMData, p: FarringtonParams, trend: bool) -> _FinalFit | None:
    """algo.farrington.fitGLM.flexible: fit, fall back to no trend if needed, then reweight once."""
    fit = _quasi_poisson(data, trend)
    if not fit.converged and trend:
        fit = _quasi_poisson(data, False)
    if not fit.converged:
        return None
    phi = max(fit.dispersion, 1.0)
    se_dispersion = fit.dispersion
    if p.reweight:
        omega = _farrington_weights(_anscombe_residuals(fit, data.response, phi), p.weights_threshold)
        # R does not check convergence of the reweighted fit either.
        fit = _quasi_poisson(data, fit.has_trend, omega)
        phi = max(fit.dispersion, 1.0)  # the dispersion often drops below 1 after reweighting
        # fitGLM.flexible then sets `model$weights <- omega`, replacing the IRLS weights that
        # summary.glm() reads: the trend's t test and predict.glm()'s se.fit therefore use
        # sum(omega·((y − mu)/mu)²) / df_resid, not the Pearson dispersion behind phi.
        se_dispersion = _pearson_sum(omega, data.response, fit.mu) / fit.df_resid if fit.df_resid > 0 else math.nan
    _, x0 = _design(data, fit.has_trend)
    return _FinalFit(fit=fit, phi=phi, x0=x0, se_dispersion=se_dispersion)


@dataclass(frozen=True)
class _FinalFit:
    fit: _QuasiPoissonFit
    phi: float  # max(dispersion, 1): the overdispersion used by the threshold
    x0: np.ndarray  # model row of the monitored week
    se_dispersion: float  # dispersion R's summary.glm()/predict.glm() use (un-floored)
    do_trend: bool = False
    trend_coef: float = math.nan

    @property
    def eta0(self) -> float:
        return float(self.x0 @ self.fit.params)

    @property
    def se_eta0(self) -> float:
        """Standard error of the linear predictor (predict.glm, se.fit = TRUE, link scale)."""
        return math.sqrt(float(self.x0 @ self.fit.cov_unscaled @ self.x0) * self.se_dispersion)

    def trend_pvalue(self) -> float:
        """Two-sided p-value of wtime as summary.glm gives it: a t test for quasi families."""
        fit = self.fit
        if not fit.df_resid > 0:
            return math.nan
        t_value = fit.params[1] / math.sqrt(fit.cov_unscaled[1, 1] * self.se_dispersion)
        return float(2 * t_sf(abs(t_value), fit.df_resid))


def _final_model(data: _GLMData, p: FarringtonParams) -> _FinalFit | None:
    """algo.farrington.glm: keep the trend only if significant, b >= 3 and not extrapolating.

    Otherwise the whole fit (reweighting included) is redone without trend.
    """
    model = _fit_glm(data, p, p.trend)
    if model is None or not model.fit.has_trend:
        return model
    significant = model.trend_pvalue() < p.p_threshold_trend
    no_extrapolation = _exp(model.eta0) <= data.response.max()
    if significant and p.b >= 3 and no_extrapolation:
        return replace(model, do_trend=True, trend_coef=float(model.fit.params[1]))
    return _fit_glm(data, p, False)


# 4. threshold


@dataclass(frozen=True)
class _Limit:
    mean: float  # predicted mean on the count scale
    upper: float  # NaN when undefined
    pvalue: float  # P(Y >= y)
    mu0: float  # mean plugged into the threshold
    r_fit: float  # the `fit` R's score uses (response scale for delta, link scale otherwise)


def _threshold(model: _FinalFit, y: float, p: FarringtonParams) -> _Limit:
    eta0, se_eta0 = model.eta0, model.se_eta0
    if p.threshold_method == "delta":
        return _threshold_delta(_exp(eta0), se_eta0 * _exp(eta0), model.phi, y, p)
    return _threshold_noufaily(eta0, se_eta0, model.phi, y, p)


def _threshold_delta(mu0: float, se_mu0: float, phi: float, y: float, p: FarringtonParams) -> _Limit:
    """algo.farrington.threshold.farrington (Farrington 1996, eq. 4).

    Var(Y0 − mu0) ≈ mu0·tau with tau = phi + Var(mu0)/mu0; on the h(y) = y^e scale the
    delta method gives sd = sqrt(e²·mu0^(2e−1)·tau), and U = (mu0^e + z·sd)^(1/e).
    """
    mu0 = np.float64(mu0)  # IEEE arithmetic as in R: mu0 = 0 gives NaN, not ZeroDivisionError
    tau = phi + se_mu0**2 / mu0
    exponent, sd = {
        "none": (1.0, np.sqrt(mu0 * tau)),
        "1/2": (0.5, np.sqrt(0.25 * tau)),
        "2/3": (2 / 3, np.sqrt(4 / 9 * mu0 ** (1 / 3) * tau)),
    }[p.powertrans]
    z = norm_ppf(1 - p.alpha)
    # R: lu <- sort((mu0^e + c(-1, 1)·z·sd)^(1/e), na.last = FALSE); upper <- lu[2], i.e. the
    # larger finite bound (a negative base gives NaN in R, dropped first by sort()).
    bounds = [_power(mu0**exponent + sign * z * sd, 1 / exponent) for sign in (-1, 1)]
    finite = [v for v in bounds if not math.isnan(v)]
    upper = max(finite) if finite else math.nan
    pvalue = float(norm_sf(y**exponent, loc=mu0**exponent, scale=sd))
    return _Limit(mean=float(mu0), upper=float(upper), pvalue=pvalue, mu0=float(mu0), r_fit=float(mu0))


def _threshold_noufaily(eta0: float, se_eta0: float, phi: float, y: float, p: FarringtonParams) -> _Limit:
    """algo.farrington.threshold.noufaily (Noufaily 2013, section 3.3).

    Y0 ~ NegBin(mean mu0, variance phi·mu0) (Poisson when phi = 1); nbPlugin plugs in
    mu0 = exp(eta0), muan the (1 − alpha) quantile exp(eta0 + z·se(eta0)).
    """
    if p.threshold_method == "nbPlugin":
        mu0 = _exp(eta0)
    else:
        # qnorm(1 - alpha, eta0, se) written out, so that se = 0 (a perfect fit) works as in R
        mu0 = _exp(eta0 + norm_ppf(1 - p.alpha) * se_eta0)
    mean = _exp(eta0)
    if math.isinf(mu0):
        return _Limit(mean=mean, upper=math.nan, pvalue=math.nan, mu0=mu0, r_fit=eta0)
    dist = _NegBin(mu0, phi) if phi > 1 else _Poisson(mu0)
    upper = _discrete_quantile(dist, 1 - p.alpha)
    return _Limit(mean=mean, upper=upper, pvalue=dist.p_at_least(y), mu0=mu0, r_fit=eta0)


# scipy.stats.nbinom's ppf/cdf abort the whole process (an uncaught C++ exception in Boost)
# for huge sizes, which sparse series produce (size = mu0 / (phi - 1) with phi just above 1).
# These use the incomplete beta/gamma functions directly, as R's nmath does, and return NaN
# rather than crash.


@dataclass(frozen=True)
class _NegBin:
    """NegBin with mean mu and variance phi·mu: R's (size = mu/(phi − 1), prob = 1/phi)."""

    mu: float
    phi: float

    @property
    def size(self) -> float:
        return self.mu / (self.phi - 1)

    def cdf(self, k: float) -> float:
        # R pnbinom: pbeta(prob, size, k + 1)
        return float(special.betainc(self.size, k + 1, 1 / self.phi)) if k >= 0 else 0.0

    def p_at_least(self, y: float) -> float:
        return float(special.betaincc(self.size, y, 1 / self.phi)) if y > 0 else 1.0

    def moments(self) -> tuple[float, float, float]:
        prob = 1 / self.phi
        return self.mu, math.sqrt(self.mu * self.phi), (2 - prob) / math.sqrt(self.size * (1 - prob))


@dataclass(frozen=True)
class _Poisson:
    mu: float

    def cdf(self, k: float) -> float:
        return float(special.gammaincc(k + 1, self.mu)) if k >= 0 else 0.0

    def p_at_least(self, y: float) -> float:
        return float(special.gammainc(y, self.mu)) if y > 0 else 1.0

    def moments(self) -> tuple[float, float, float]:
        sd = math.sqrt(self.mu)
        return self.mu, sd, 1 / sd if sd > 0 else math.inf


def _discrete_quantile(dist: _NegBin | _Poisson, prob: float) -> float:
    """Smallest integer q >= 0 with P(Y <= q) >= prob: R's qnbinom / qpois.

    Like R, start from the Cornish-Fisher approximation, then search: doubling steps to
    bracket the answer and bisection inside the bracket. Where the cdf is not computable
    (NaN) or integers are no longer exact in floating point (> 2^53), the approximation
    is returned: its relative error is far below 1e-6 there.
    """
    mean, sd, skew = dist.moments()
    if not math.isfinite(mean) or mean <= 0:
        return 0.0 if mean == 0 else math.nan
    z = norm_ppf(prob)
    guess = max(0.0, math.floor(mean + sd * (z + skew * (z * z - 1) / 6) + 0.5)) if math.isfinite(skew) else 0.0
    c = dist.cdf(guess)
    if math.isnan(c) or guess > 2.0**53:
        return guess
    # bracket: cdf(lo) < prob <= cdf(hi), with lo = -1 standing for "below 0"
    step = 1.0
    if c >= prob:
        lo, hi = guess - 1, guess
        while lo >= 0 and dist.cdf(lo) >= prob:
            hi, lo, step = lo, max(lo - 2 * step, -1.0), 2 * step
    else:
        lo, hi = guess, guess + 1
        while dist.cdf(hi) < prob:
            if step > 2.0**53:
                return math.nan
            lo, hi, step = hi, hi + 2 * step, 2 * step
    while hi - lo > 1:
        mid = math.floor((lo + hi) / 2)
        if dist.cdf(mid) >= prob:
            hi = mid
        else:
            lo = mid
    return hi


def _power(base: float, exponent: float) -> float:
    """R's `^`: a negative base with a fractional exponent is NaN, not complex."""
    if base < 0 and exponent != int(exponent):
        return math.nan
    return base**exponent


def _exceedance_score(y: float, mean: float, upper: float) -> float:
    """Farrington's exceedance score (y − mean)/(U − mean): > 1 exactly when y > U.

    A discrete limit can sit at or below a tiny mean (U = 0 after an all-zero history);
    the ratio then has the wrong sign, so such a week scores +inf if y > U and 0 otherwise.
    """
    if upper > mean:
        return (y - mean) / (upper - mean)
    if math.isnan(upper) or math.isnan(mean):
        return math.nan
    return math.inf if y > upper else 0.0


def _exp(x: float) -> float:
    """exp() that overflows to inf as R's does, instead of raising."""
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def _ratio(num: float, den: float) -> float:
    """num / den with IEEE semantics (±inf, NaN) as in R."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(num) / np.float64(den))
