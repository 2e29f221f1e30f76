"""ACLED's ratio rules, named after the ACLED tools they reproduce.

* `acled-surge` — ACLED Subnational Surge Tracker: this week's count ≥ `ratio` × the mean
  of the previous `window` weeks, only where that mean is ≥ `min_mean` events a week.
* `acled-threat` — ACLED Threat Tracker: the mean of the last `window` weeks (this week
  included) ≥ `ratio` × the weekly mean of the `baseline` weeks before them.

These are what analysts already know; they have no model, so `pvalue` is always NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from monitor.detectors._common import check_positions, result_frame, window_mean_sd

SURGE_SUMMARY = (
    "ACLED Subnational Surge Tracker: alarm when this week's count is at least ratio (2) x the mean "
    "of the previous window (4) weeks, where that mean is at least min_mean (1) event a week."
)
THREAT_SUMMARY = (
    "ACLED Threat Tracker: alarm when the mean of the last window (4) weeks, this week included, is at "
    "least ratio (2) x the weekly mean of the baseline (52) weeks before them."
)

# Counts are integers but thresholds are products of decimals (1.1 * 10 = 11.000000000000002):
# compare with a relative tolerance so "count >= ratio x mean" holds when it holds on paper.
_REL_TOL = 1e-9


def _at_least(value: np.ndarray, bound: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return value >= bound - _REL_TOL * np.abs(bound)


class AcledSurgeParams(BaseModel):
    """Settings of the ACLED Subnational Surge Tracker rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ratio: float = Field(2.0, gt=0, allow_inf_nan=False, description="Alarm when this week's count >= ratio x the mean of the previous weeks.")
    window: int = Field(4, ge=1, description="Number of weeks before this one whose mean is the baseline.")
    min_mean: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="Only series whose previous-weeks mean is at least this many events a week can alarm."
    )


class AcledThreatParams(BaseModel):
    """Settings of the ACLED Threat Tracker rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ratio: float = Field(2.0, gt=0, allow_inf_nan=False, description="Alarm when the recent mean >= ratio x the baseline weekly mean.")
    window: int = Field(4, ge=1, description="Number of recent weeks, this week included, averaged into recent_mean.")
    baseline: int = Field(52, ge=1, description="Number of weeks before the recent window whose weekly mean is the baseline.")


def surge_min_history(params: AcledSurgeParams) -> int:
    """Weeks needed before a monitored week: `window`."""
    return params.window


def threat_min_history(params: AcledThreatParams) -> int:
    """Weeks needed before a monitored week: `baseline + window - 1` (the window includes this week)."""
    return params.baseline + params.window - 1


def detect_surge(counts: pd.Series, params: AcledSurgeParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """ACLED Subnational Surge Tracker rule on the weeks at positions `weeks`.

    Parameters:
        counts: weekly counts indexed by consecutive week starts (zero-filled).
        params: ratio, window, min_mean.
        weeks: 0-based positions in `counts` to evaluate.

    `expected` = mean of the previous `window` weeks, `upperbound` = ratio × that mean,
    `score` = count / mean (NaN when the mean is 0). A week whose mean is below `min_mean`
    is decided as no alarm (the tracker does not follow such series), with a note.
    """
    pos = check_positions(counts, weeks)
    y = counts.to_numpy(dtype=float, na_value=np.nan)
    mean, _ = window_mean_sd(y, lag=1, length=params.window)
    upper = params.ratio * mean
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(mean > 0, y / mean, np.nan)
    hit = _at_least(y, upper)
    alarm: list[bool | None] = [None] * len(y)
    notes: list[str] = []
    for t in pos:
        if t < params.window:
            notes.append(f"too little history for acled-surge (needs {params.window} weeks, has {t})")
        elif np.isnan(y[t]) or np.isnan(mean[t]):
            notes.append("count is missing in this week or the previous weeks")
        elif mean[t] < params.min_mean:
            alarm[t] = False
            notes.append(f"previous {params.window}-week mean {mean[t]:.3g} is below min_mean {params.min_mean:g}: not tracked")
        else:
            alarm[t] = bool(hit[t])
            notes.append("")
    return result_frame(
        counts, pos, expected=mean, upperbound=upper, alarm=alarm, score=score,
        pvalue=np.full_like(y, np.nan), extra={}, notes=notes,
    )


def detect_threat(counts: pd.Series, params: AcledThreatParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """ACLED Threat Tracker rule on the weeks at positions `weeks`.

    Parameters:
        counts: weekly counts indexed by consecutive week starts (zero-filled).
        params: ratio, window, baseline.
        weeks: 0-based positions in `counts` to evaluate.

    `expected` = weekly mean of the `baseline` weeks before the recent window,
    `upperbound` = ratio × that mean, extra column `recent_mean` (the value compared with
    `upperbound`), `score` = recent_mean / baseline mean.

    A zero baseline mean: read literally, "recent mean ≥ ratio × 0" holds for every week,
    so an all-zero series would alarm forever. The rule also requires a positive recent
    mean, so with a zero baseline it alarms exactly when violence appears after `baseline`
    quiet weeks; `score` is then NaN (the ratio is infinite, and an infinite score would
    outrank every real surge) and the note says why.
    """
    pos = check_positions(counts, weeks)
    y = counts.to_numpy(dtype=float, na_value=np.nan)
    recent, _ = window_mean_sd(y, lag=0, length=params.window)
    base, _ = window_mean_sd(y, lag=params.window, length=params.baseline)
    upper = params.ratio * base
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(base > 0, recent / base, np.nan)
    hit = _at_least(recent, upper) & (recent > 0)
    need = threat_min_history(params)
    alarm: list[bool | None] = [None] * len(y)
    notes: list[str] = []
    for t in pos:
        if t < need:
            notes.append(f"too little history for acled-threat (needs {need} weeks, has {t})")
        elif np.isnan(recent[t]) or np.isnan(base[t]):
            notes.append("count is missing in the recent or baseline weeks")
        else:
            alarm[t] = bool(hit[t])
            if base[t] == 0 and recent[t] > 0:
                notes.append(f"no events in the {params.baseline} baseline weeks: any activity is a surge (score undefined)")
            else:
                notes.append("")
    return result_frame(
        counts, pos, expected=base, upperbound=upper, alarm=alarm, score=score,
        pvalue=np.full_like(y, np.nan), extra={"recent_mean": recent}, notes=notes,
    )
