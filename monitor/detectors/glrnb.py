"""Negative-binomial GLR-CUSUM (Höhle & Paul 2008), as R `surveillance::glrnb`.

In-control model: a negative-binomial GLM ``log mu0(t) = b0 [+ b1 t] + Σ_{s=1..S} (γ_s cos(2πst/52) +
δ_s sin(2πst/52))`` fitted by maximum likelihood (the algorithm of R's ``MASS::glm.nb``, see
`monitor.detectors._glm`) on the in-control weeks; its dispersion gives ``alpha`` (variance mu + alpha·mu²) unless `alpha` is set.

In-control weeks: the last `in_control_weeks` weeks (104, two years) just BEFORE the first
monitored week, or all the weeks before it when there are fewer; at least `min_history` of them
(52 with harmonics or a trend, else 8), else the weeks are undecided. `in_control_weeks = 0`
takes every week before the run, as R does (its range fixes the fit on weeks 1..range[1]-1):
on a series that escalated years ago that compares today with its first years, so the default
caps the window (issue 11, item 5). The weekly job starts the chart late enough on a short
series to fill the window (`detection.chart_start`). Out of control the mean is ``mu0(t)·exp(kappa)`` from an unknown week on,
and the generalized likelihood ratio statistic of week n is

    GLR(n) = max_{k} sup_{kappa >= 0} Σ_{t=k..n} [kappa·y_t + (y_t + 1/alpha)·log((1 + alpha·mu0_t)/(1 + alpha·mu0_t·e^kappa))],

k running over the weeks since the last alarm (within `m` weeks of n unless m = -1, and at
least `m_tilde` weeks before the end). Alarm when GLR(n) >= `c_arl`; after an alarm the chart
restarts from the next week, as R does. `upperbound` is the smallest count in week n that
would give GLR(n) >= c_arl given the counts since the last alarm (alarm ⇔ count >= upperbound);
`score` is the GLR statistic.

glrnb monitors a run of consecutive weeks: `detect` evaluates every week from the first to the
last of `weeks` (which is how `run_detector` calls it, with the weeks of one series) and
returns the rows asked for. kappa is found by a safeguarded Newton iteration to machine
precision (R's C code stops at a step of 1e-6, which changes the statistic by far less
than 1e-9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.detectors._common import check_positions, result_frame
from monitor.detectors._glm import PERIOD, design, glm_nb

SUMMARY = (
    "Negative-binomial GLR-CUSUM (as R surveillance::glrnb): alarm when the likelihood ratio of "
    "a rise since some past week, against a seasonal NB model fitted on the (at most in_control_weeks) "
    "weeks before the monitored run, reaches c_arl; restarts after each alarm."
)


class GlrnbParams(BaseModel):
    """Control list of `surveillance::glrnb` (range aside; mu0 = list(S, trend, refit = FALSE))."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    c_arl: float = Field(5.0, gt=0, allow_inf_nan=False, description="Alarm threshold on the GLR statistic (R c.ARL).")
    s: int = Field(1, ge=0, le=10, description="Harmonics (sine/cosine pairs per 52 weeks) in the in-control NB model (R mu0$S).")
    trend: bool = Field(False, description="Add a linear time trend to the in-control NB model (R mu0$trend).")
    alpha: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="NB dispersion (variance mu + alpha mu^2); 'estimate' (or none): fitted with the in-control model (R alpha = NULL).",
    )  # fmt: skip
    m_tilde: int = Field(1, ge=1, description="Weeks needed to estimate a change: the change starts at least m_tilde - 1 weeks back (R Mtilde).")
    m: int = Field(-1, ge=-1, description="Look at most m weeks back for the start of the change; -1: all weeks since the last alarm (R M).")
    change: Literal["intercept"] = Field("intercept", description="Kind of change detected: a multiplicative rise of the mean (R change).")
    dir: Literal["inc"] = Field("inc", description="Direction of the change: inc (rises) only (R dir).")
    in_control_weeks: int = Field(
        104, ge=0,
        description="Fit the in-control NB model on the last in_control_weeks weeks before the monitored run (all of them "
        "if fewer, at least 52 with s > 0 or trend, else 8); 0: every week before the run, as R.",
    )  # fmt: skip

    @field_validator("alpha", mode="before")
    @classmethod
    def _none_alpha(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "null", "na", "estimate", "estimated"):
            return None
        return value

    @field_validator("change", "dir", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _window(self) -> GlrnbParams:
        if self.m != -1 and self.m < self.m_tilde:
            raise ValueError(f"m={self.m} must be -1 (no window) or at least m_tilde={self.m_tilde}")
        need = min_history(self)
        if 0 < self.in_control_weeks < need:
            raise ValueError(
                f"in_control_weeks={self.in_control_weeks} is shorter than the {need} weeks the in-control model needs: "
                f"use at least {need}, or 0 for every week before the run"
            )
        return self


def min_history(params: GlrnbParams) -> int:
    """Weeks before the monitored run needed to fit the in-control model: one year (52 weeks)."""
    return PERIOD if (params.s > 0 or params.trend) else 8


def in_control_weeks(params: GlrnbParams) -> int:
    """Most weeks the in-control model is fitted on, just before the monitored run (0: all of them)."""
    return params.in_control_weeks


def in_control(first: int, params: GlrnbParams) -> np.ndarray:
    """Positions the in-control model is fitted on when the monitored run starts at `first` (missing counts included)."""
    return np.arange(max(0, first - params.in_control_weeks) if params.in_control_weeks else 0, first)


# GLR statistic


def glr_statistic(x: np.ndarray, mu: np.ndarray, alpha: float, starts: np.ndarray) -> float:
    """max over k in `starts` of sup_{kappa>=0} Σ_{i=k..end} l_i(kappa) (0 when no k gives a rise)."""
    if len(starts) == 0:
        return -math.inf
    L = len(x)
    mask = np.arange(L)[None, :] >= starts[:, None]
    X = np.where(mask, x[None, :], 0.0)
    MU = np.where(mask, mu[None, :], 0.0)
    inv = 1.0 / alpha

    def score(kappa: np.ndarray) -> np.ndarray:
        e = np.exp(kappa)[:, None]
        return ((X - e * MU) / (1 + alpha * e * MU)).sum(axis=1)

    s0 = score(np.zeros(len(starts)))
    rising = s0 > 0
    if not rising.any():
        return 0.0
    X, MU = X[rising], MU[rising]
    sx, smu = X.sum(axis=1), MU.sum(axis=1)
    lo = np.zeros(len(sx))
    hi = np.full(len(sx), 60.0)
    kappa = np.clip(np.log(sx / smu), 1e-8, 59.0)
    for _ in range(200):
        e = np.exp(kappa)[:, None]
        denom = 1 + alpha * e * MU
        sc = ((X - e * MU) / denom).sum(axis=1)
        fi = (e[:, 0]) * (MU * (alpha * X + 1) / denom**2).sum(axis=1)
        lo = np.where(sc > 0, kappa, lo)
        hi = np.where(sc <= 0, kappa, hi)
        step = sc / fi
        new = kappa + step
        outside = ~((new > lo) & (new < hi))
        new = np.where(outside, 0.5 * (lo + hi), new)
        done = np.abs(new - kappa) <= 1e-14 * np.maximum(1.0, np.abs(kappa))
        kappa = new
        if done.all():
            break
    e = np.exp(kappa)[:, None]
    lnk = (kappa[:, None] * X + (X + inv) * (np.log1p(alpha * MU) - np.log1p(alpha * MU * e))).sum(axis=1)
    return float(max(0.0, lnk.max()))


def _smallest_alarming(x: np.ndarray, mu: np.ndarray, alpha: float, starts: np.ndarray, c_arl: float, current: float) -> float:
    """Smallest integer count in the last week giving GLR >= c_arl (the statistic grows with it)."""
    if len(starts) == 0:
        return math.inf
    trial = x.copy()

    def alarms(value: int) -> bool:
        trial[-1] = value
        return glr_statistic(trial, mu, alpha, starts) >= c_arl

    y = int(x[-1])
    if current >= c_arl:  # the answer is at most y
        if alarms(0):
            return 0.0
        lo, hi = 0, y
    else:  # the answer is above y: bracket it
        lo, step = y, max(1, int(math.ceil(mu[-1])))
        hi = y + step
        while not alarms(hi):
            lo, step = hi, step * 2
            hi = lo + step
    while hi - lo > 1:  # alarms(lo) False, alarms(hi) True
        mid = (lo + hi) // 2
        if alarms(mid):
            hi = mid
        else:
            lo = mid
    return float(hi)


def detect(counts: pd.Series, params: GlrnbParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Run the NB GLR-CUSUM over the run of weeks from min(weeks) to max(weeks).

    Parameters:
        counts: weekly counts indexed by consecutive week starts (zero-filled).
        params: the glrnb settings.
        weeks: 0-based positions to return; the chart runs over every week from the first
            to the last of them (a run of consecutive weeks), the in-control model being
            fitted on the (at most `in_control_weeks`) weeks just before the first.

    Returns one row per position: the core columns (`expected` = mu0, `upperbound` = the
    smallest count alarming this week given the weeks since the last alarm, `score` = the
    GLR statistic, `pvalue` NaN), then `glr_statistic`, `nb_alpha`, and `note`. A missing
    count leaves its week undecided and contributes nothing to the statistic.
    """
    pos = check_positions(counts, weeks)
    n_all = len(counts)
    y = counts.to_numpy(dtype=float, na_value=np.nan)
    nan = np.full(n_all, np.nan)
    if not pos:
        return result_frame(counts, pos, expected=nan, upperbound=nan, alarm=[None] * n_all, score=nan, pvalue=nan,
                            extra={"glr_statistic": nan, "nb_alpha": nan}, notes=[])  # fmt: skip
    first, last = min(pos), max(pos)
    need = min_history(params)
    problem = ""
    mu0 = nan.copy()
    alpha = params.alpha
    train = in_control(first, params)
    train = train[~np.isnan(y[train])]
    if first < need:
        problem = f"too little history for glrnb (needs {need} weeks before the monitored run, has {first})"
    elif len(train) <= params.s * 2 + int(params.trend) + 1 or not np.any(y[train] > 0):
        problem = "glrnb: the weeks before the monitored run are too few or all zero to fit the in-control model"
    else:
        X = design(train + 1, harmonics=params.s, trend=params.trend)
        try:
            with np.errstate(all="ignore"):
                coef, theta = glm_nb(X, y[train])
            run = np.arange(first, last + 1)
            mu0[run] = np.exp(design(run + 1, harmonics=params.s, trend=params.trend) @ coef)
            if alpha is None:
                alpha = 1.0 / theta if theta > 0 else math.inf
            if not (np.isfinite(mu0[run]).all() and math.isfinite(alpha) and alpha > 0):
                raise FloatingPointError("non-finite in-control model")
        except (FloatingPointError, np.linalg.LinAlgError, ValueError) as exc:
            problem = f"glrnb: fitting the in-control negative-binomial model failed ({exc})"
            mu0[:] = np.nan

    glr = nan.copy()
    upper = nan.copy()
    alarm: list[bool | None] = [None] * n_all
    notes_by_t: dict[int, str] = {}
    if problem:
        notes_by_t = {t: problem for t in range(first, last + 1)}
    else:
        x = np.where(np.isnan(y), 0.0, y)
        mu = np.where(np.isnan(y), 0.0, mu0)
        seg = first
        n0 = params.m_tilde - 1
        with np.errstate(all="ignore"):
            for t in range(first, last + 1):
                if t - seg < n0:
                    glr[t], upper[t], alarm[t] = 0.0, math.inf, False
                    continue
                low = seg if params.m == -1 else max(seg, t - params.m)
                up = t - (params.m_tilde - 1)
                starts = np.arange(low, up + 1) - low
                xs, ms = x[low : t + 1], mu[low : t + 1]
                glr[t] = glr_statistic(xs, ms, alpha, starts)
                if np.isnan(y[t]):
                    notes_by_t[t] = "the count of this week is missing"
                    continue
                upper[t] = _smallest_alarming(xs, ms, alpha, starts, params.c_arl, glr[t])
                alarm[t] = bool(glr[t] >= params.c_arl)
                if alarm[t]:
                    seg = t + 1
    notes = [notes_by_t.get(t, "") for t in pos]
    return result_frame(
        counts,
        pos,
        expected=mu0,
        upperbound=upper,
        alarm=alarm,
        score=glr,
        pvalue=nan,
        extra={"glr_statistic": glr, "nb_alpha": np.full(n_all, np.nan if alpha is None or problem else alpha)},
        notes=notes,
    )
