"""nb-recent: a negative-binomial bound on the recent level, for short and sparse history.

Made for the series Farrington cannot fit yet (it needs years of history) and for conflict
counts, which are overdispersed and often zero. For each week t:

1. **Level.** The expected count is the mean of the `window` weeks before t, leaving out
   the `gap` weeks just before it (so the first weeks of a surge do not raise their own
   baseline), plus half an event spread over the window: (Σ y + 0.5) / n. An empty window
   therefore expects 0.5 / n events, never 0, and a category that first appears in the data
   is judged from its first week on, not against an expected count of zero. At least
   `min_weeks` weeks must be in the window (`min_history` = gap + min_weeks).
2. **Dispersion.** phi = Σ (y_s − level_s)² / Σ level_s over the one-week-ahead errors of
   the `phi_weeks` weeks before t (its own track record), floored at `phi_min`, leaving out
   the weeks that were surges when they happened (P(count or more) ≤ `outlier_alpha` under
   that week's level and a first estimate of phi, as Farrington down-weights past
   outbreaks), so one offensive does not blunt the alarms of the following year; the
   week's count is NegBin(mean level, variance phi·level), Poisson when phi = 1.
3. **Single week.** The p-value is the real tail P(Y ≥ y); the week alarms when it is at
   most `alpha`. `upperbound` is the largest count that does not alarm (never below 0).
4. **Rise over weeks.** A CUSUM of the counts' normal scores (as in `farrington-cusum`,
   same k, h and hold) catches a rise that doubles over three or four weeks without one
   extreme week.

The series' `min_count` (default 3 events) applies on top, as for every detector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from monitor.detectors import _nb
from monitor.detectors._common import check_positions

SUMMARY = (
    "Negative-binomial bound on the recent level, for short or sparse history: expected = mean of the "
    "last `window` weeks (leaving out `gap`) plus half an event, dispersion from its own one-week-ahead "
    "errors (at least phi_min); alarm when P(count or more) <= alpha, or when a CUSUM of normal scores "
    "reaches cusum_h (a rise over several weeks)."
)


class NbRecentParams(BaseModel):
    """Settings of nb-recent (defaults: 8-week level leaving out 1 week, alpha = 0.002, CUSUM k = 1, h = 2.25)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(8, ge=2, le=104, description="Weeks whose mean is the expected level.")
    gap: int = Field(1, ge=0, le=26, description="Weeks just before the judged week left out of the level.")
    min_weeks: int = Field(4, ge=1, le=104, description="Weeks of the window that must exist before a week is judged.")
    phi_weeks: int = Field(52, ge=4, le=520, description="Weeks of one-week-ahead errors the dispersion is estimated on.")
    phi_min: float = Field(1.0, ge=1.0, allow_inf_nan=False, description="Floor of the dispersion (1: Poisson).")
    outlier_alpha: float = Field(
        0.002, gt=0, lt=1, allow_inf_nan=False,
        description="Weeks that were this improbable when they happened (P(count or more) at most this) are left out of the dispersion.",
    )
    alpha: float = Field(0.002, gt=0, lt=1, allow_inf_nan=False, description="One-sided level of the single-week test.")
    cusum_k: float = Field(1.0, ge=0, allow_inf_nan=False, description="Reference value subtracted from each week's normal score.")
    cusum_h: float = Field(2.25, gt=0, allow_inf_nan=False, description="Decision interval: alarm when the CUSUM reaches h.")
    hold: float = Field(
        0.5, ge=0, lt=1, allow_inf_nan=False, description="After an alarm the CUSUM restarts at hold·h (0: at 0), so a rise that goes on stays one alert."
    )


def min_history(params: NbRecentParams) -> int:
    """Weeks before the first week that can be judged: the gap plus `min_weeks` of window."""
    return params.gap + min(params.min_weeks, params.window)


def level_and_dispersion(y: np.ndarray, params: NbRecentParams) -> tuple[np.ndarray, np.ndarray]:
    """Expected level and dispersion for every position of `y` (NaN where the window is too short)."""
    n = len(y)
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(y))])
    t = np.arange(n)
    end = t - params.gap  # window is [end - window, end)
    begin = np.maximum(end - params.window, 0)
    width = np.maximum(end - begin, 0)
    ok = width >= min(params.min_weeks, params.window)
    level = np.full(n, np.nan)
    level[ok] = (csum[end[ok]] - csum[begin[ok]] + 0.5) / width[ok]
    # dispersion from the one-week-ahead errors of the phi_weeks weeks before t; weeks that were
    # surges when they happened (improbable under a first estimate) are left out
    has = np.isfinite(level)
    err = np.nan_to_num(y) - np.nan_to_num(level)
    den = np.where(has, np.nan_to_num(level), 0.0)
    lo = np.maximum(t - params.phi_weeks, 0)

    def rolling(keep: np.ndarray) -> np.ndarray:
        num = np.where(keep, err**2, 0.0)
        cnum = np.concatenate([[0.0], np.cumsum(num)])
        cden = np.concatenate([[0.0], np.cumsum(np.where(keep, den, 0.0))])
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = (cnum[t] - cnum[lo]) / (cden[t] - cden[lo])
        return np.where(np.isfinite(raw), np.maximum(raw, params.phi_min), params.phi_min)

    first = rolling(has)
    surge = has & (err > 0)
    surge[surge] = _nb.p_at_least(y[surge], level[surge], first[surge]) <= params.outlier_alpha
    phi = rolling(has & ~surge)
    phi[~ok] = np.nan
    return level, phi


def detect(counts: pd.Series, params: NbRecentParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Judge the weeks at positions `weeks` of `counts`; the CUSUM runs from the first to the last of them.

    Returns the detector column contract plus `phi`, `z`, `single_alarm`, `chart_alarm`,
    `chart_pvalue` (tail probability of the run behind a chart alarm) and `why`.
    """
    pos = check_positions(counts, weeks)
    return _detect_runs(counts, params, [(min(pos), max(pos), pos)] if pos else [])


def detect_cuts(counts: pd.Series, params: NbRecentParams, cuts: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """One row per (start, end) of `cuts`: `detect(counts.iloc[:end + 1], weeks=[start, end])`'s row for the week at
    `end`, whose chart runs from `start` (a replay: each week as the weekly job judged it). A week's level,
    dispersion and single-week test look only backwards, so they are computed once; only each chart is run."""
    for start, end in cuts:
        check_positions(counts, [start, end])
    return _detect_runs(counts, params, [(start, end, [end]) for start, end in cuts])


def detect_cuts_many(series: Sequence[pd.Series], params: NbRecentParams, cuts: Sequence[Sequence[tuple[int, int]]]) -> list[pd.DataFrame]:
    """`detect_cuts` of each series (`cuts[i]` of `series[i]`)."""
    if len(series) != len(cuts):
        raise ValueError(f"detect_cuts_many needs one list of cuts per series (got {len(series)} series and {len(cuts)} lists)")
    return [detect_cuts(counts, params, own) for counts, own in zip(series, cuts)]


def _detect_runs(counts: pd.Series, params: NbRecentParams, runs: Sequence[tuple[int, int, Sequence[int]]]) -> pd.DataFrame:
    """The rows `rows` of each chart run (start, end, rows), stacked in order."""
    y_all = counts.to_numpy(dtype=float, na_value=np.nan)
    level, phi = level_and_dispersion(y_all, params)
    lo = min((start for start, _, _ in runs), default=0)
    hi = max((end + 1 for _, end, _ in runs), default=0)
    decided_all = np.isfinite(level[lo:hi]) & np.isfinite(y_all[lo:hi])
    tests_all = _nb.single_tests(y_all[lo:hi], level[lo:hi], phi[lo:hi], decided_all, alpha=params.alpha)
    t, res = _nb.judge_runs(y_all[lo:hi], level[lo:hi], phi[lo:hi], tests_all, np.ones(hi - lo, dtype=bool),
                            [(start - lo, end - lo, np.asarray(rows, dtype=int) - lo) for start, end, rows in runs],
                            alpha=params.alpha, k=params.cusum_k, h=params.cusum_h, hold=params.hold)  # fmt: skip
    decided = decided_all[t]
    t = t + lo
    need = min_history(params)
    notes = ["" if d else f"too little history: needs {need} weeks before the week" if w < need else "count missing" for w, d in zip(t, decided)]

    def boolean(name: str) -> pd.arrays.BooleanArray:
        return pd.array([bool(a) if d else None for a, d in zip(res[name], decided)], dtype="boolean")

    return pd.DataFrame(
        {
            "week_start": pd.DatetimeIndex(counts.index)[t] if len(t) else pd.DatetimeIndex([]),
            "count": y_all[t],
            "expected": level[t],
            "upperbound": res["upperbound"],
            "alarm": boolean("alarm"),
            "score": res["stat"],
            "pvalue": res["pvalue"],
            "phi": phi[t],
            "z": res["z"],
            "single_alarm": boolean("single_alarm"),
            "chart_alarm": boolean("chart_alarm"),
            "chart_pvalue": res["chart_pvalue"],
            "why": res["why"],
            "note": notes,
        }
    )
