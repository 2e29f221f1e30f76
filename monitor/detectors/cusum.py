"""Poisson CUSUM on standardized counts, as R `surveillance::cusum` (trans = "standard").

The expected count m(t) is the prediction of a Poisson GLM ``log m(t) = b0 + b1 cos(2πt/52) +
b2 sin(2πt/52)`` fitted (R's glm IRLS, `monitor.detectors._glm`) on the in-control weeks (`m = "glm"`), or the mean of
those weeks (`m = "mean"`, R's m = NULL). With
z(t) = (y(t) − m(t))/√m(t), the chart is ``C(t) = max(0, C(t−1) + z(t) − k)``, C = 0 before
the first monitored week, and week t alarms when C(t) >= h. `upperbound` is the number of
cases needed to signal, ``ceiling(m + √m·(h + k − C(t−1)))`` floored at 0 (alarm ⇔
count >= upperbound); `score` is C(t).

In-control weeks: the last `in_control_weeks` weeks (104, two years) just BEFORE the first
monitored week, or all the weeks before it when there are fewer; at least `min_history` of them
(52 for the GLM, 4 for the mean), else the weeks are undecided. `in_control_weeks = 0` takes
every week before the run, as R does (its range fixes the fit on weeks 1..range[1]-1): on a
series that escalated years ago that compares today with its first years, so the default caps
the window (issue 11, item 5). The weekly job starts the chart late enough on a short series
to fill the window (`detection.chart_start`).

`reset = True` (the default, the textbook CUSUM) restarts the chart at 0 after an alarm,
so a one-week spike raises one alarm and a sustained rise raises an alarm every few weeks.
surveillance 1.20.3 never resets: on a long rise it alarms every week after the first;
`reset = False` reproduces R exactly.

cusum monitors a run of consecutive weeks: `detect` evaluates every week from the first to
the last of `weeks` (which is how `run_detector` calls it) and returns the rows asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.detectors._common import check_positions, result_frame
from monitor.detectors._glm import design, irls

SUMMARY = (
    "CUSUM of standardized counts (as R surveillance::cusum): alarm when the running sum of "
    "(count - m)/sqrt(m) - k reaches h, m from a seasonal Poisson GLM fitted on the (at most "
    "in_control_weeks) weeks before the monitored run; restarts after an alarm unless reset=false (R)."
)


class CusumParams(BaseModel):
    """Control list of `surveillance::cusum` (range aside), plus `reset`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: float = Field(1.04, ge=0, allow_inf_nan=False, description="Reference value subtracted from each standardized count (R k).")
    h: float = Field(2.26, gt=0, allow_inf_nan=False, description="Decision interval: alarm when the CUSUM reaches h (R h).")
    m: Literal["glm", "mean"] = Field(
        "glm", description="Expected count: glm (seasonal Poisson GLM on the weeks before) or mean of those weeks (R m = NULL)."
    )
    trans: Literal["standard"] = Field("standard", description="Standardization of the counts: standard, (y - m)/sqrt(m) (R trans).")
    reset: bool = Field(True, description="Restart the CUSUM at 0 after an alarm (textbook); false reproduces R, which never resets.")
    in_control_weeks: int = Field(
        104, ge=0,
        description="Fit m on the last in_control_weeks weeks before the monitored run (all of them if fewer, at least 52 "
        "for glm / 4 for mean); 0: every week before the run, as R.",
    )  # fmt: skip

    @field_validator("m", "trans", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _window(self) -> CusumParams:
        need = min_history(self)
        if 0 < self.in_control_weeks < need:
            raise ValueError(
                f"in_control_weeks={self.in_control_weeks} is shorter than the {need} weeks m={self.m} needs: "
                f"use at least {need}, or 0 for every week before the run"
            )
        return self


def min_history(params: CusumParams) -> int:
    """Weeks before the monitored run needed for m: one year (52) for the GLM, 4 for the mean."""
    return 52 if params.m == "glm" else 4


def in_control_weeks(params: CusumParams) -> int:
    """Most weeks m is fitted on, just before the monitored run (0: all of them)."""
    return params.in_control_weeks


def in_control(first: int, params: CusumParams) -> np.ndarray:
    """Positions m is fitted on when the monitored run starts at `first` (missing counts included)."""
    return np.arange(max(0, first - params.in_control_weeks) if params.in_control_weeks else 0, first)


def detect(counts: pd.Series, params: CusumParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Run the CUSUM over the run of weeks from min(weeks) to max(weeks).

    Parameters:
        counts: weekly counts indexed by consecutive week starts (zero-filled).
        params: the cusum settings.
        weeks: 0-based positions to return; the chart runs over every week from the first
            to the last of them, m being fitted on the (at most `in_control_weeks`) weeks
            just before the first.

    Returns one row per position: the core columns (`expected` = m, `upperbound` = cases
    needed to signal, `score` = the CUSUM, `pvalue` NaN), then `cusum_statistic`, and
    `note`. A missing count leaves its week undecided and the CUSUM unchanged.
    """
    pos = check_positions(counts, weeks)
    n_all = len(counts)
    y = counts.to_numpy(dtype=float, na_value=np.nan)
    nan = np.full(n_all, np.nan)
    if not pos:
        return result_frame(counts, pos, expected=nan, upperbound=nan, alarm=[None] * n_all, score=nan, pvalue=nan,
                            extra={"cusum_statistic": nan}, notes=[])  # fmt: skip
    first, last = min(pos), max(pos)
    run = np.arange(first, last + 1)
    need = min_history(params)
    train = in_control(first, params)
    train = train[~np.isnan(y[train])]
    m = nan.copy()
    problem = ""
    if first < need:
        problem = f"too little history for cusum (needs {need} weeks before the monitored run, has {first})"
    elif len(train) < 4 or not np.any(y[train] > 0):
        problem = "cusum: the weeks before the monitored run are too few or all zero to estimate m"
    elif params.m == "mean":
        m[run] = y[train].mean()
    else:
        try:
            with np.errstate(all="ignore"):
                coef, _ = irls(design(train + 1, harmonics=1, trend=False), y[train], np.log(y[train] + 0.1), None)
                m[run] = np.exp(design(run + 1, harmonics=1, trend=False) @ coef)
            if not np.isfinite(m[run]).all():
                raise FloatingPointError("non-finite prediction")
        except (FloatingPointError, np.linalg.LinAlgError, ValueError) as exc:
            problem = f"cusum: fitting the Poisson GLM failed ({exc})"
            m[:] = np.nan

    stat = nan.copy()
    upper = nan.copy()
    alarm: list[bool | None] = [None] * n_all
    notes_by_t: dict[int, str] = {}
    if problem:
        notes_by_t = {t: problem for t in run}
    else:
        h, k = params.h, params.k
        previous = 0.0
        for t in run:
            bound = math.ceil(math.sqrt(m[t]) * (h + k - previous) + m[t])
            upper[t] = max(0.0, float(bound))
            if np.isnan(y[t]):
                stat[t] = previous
                notes_by_t[t] = "the count of this week is missing"
                continue
            z = (y[t] - m[t]) / math.sqrt(m[t])
            stat[t] = max(0.0, previous + (z - k))
            alarm[t] = bool(stat[t] >= h)
            previous = 0.0 if (alarm[t] and params.reset) else stat[t]
    notes = [notes_by_t.get(t, "") for t in pos]
    return result_frame(
        counts, pos, expected=m, upperbound=upper, alarm=alarm, score=stat, pvalue=nan,
        extra={"cusum_statistic": stat}, notes=notes,
    )  # fmt: skip
