"""Farrington flexible: R `surveillance::farringtonFlexible` (surveillance 1.20.3), two engines.

Each monitored week t0 is compared with the same time of year in the past `b` years
(Farrington et al. 1996, "A statistical algorithm for the early detection of outbreaks of
infectious disease", JRSS A 159:547-563; Noufaily et al. 2013, "An improved algorithm for
outbreak detection in multiple surveillance systems", Stat Med 32:1206-1222):

1. Reference weeks: for j = 1..b the week nearest to t0 − j years *by date* (52 or 53
   rows back), each with `w` weeks either side; with `no_periods` > 1 the rest of each year
   is cut into `no_periods` − 1 periods that enter the model as a seasonal factor.
   The last `past_weeks_not_included` weeks (and t0) are left out.
2. Model: quasi-Poisson log-linear GLM with an optional linear trend, fitted by IRLS
   started and stopped as R's `glm()` does (statsmodels' or the batch engine's, below).
3. Reweighting: past weeks with a standardised Anscombe residual above
   `weights_threshold` get weight ∝ s⁻² and the model is refitted.
4. The trend is kept only if p < `p_threshold_trend`, b ≥ 3 and the prediction does not
   exceed every reference count.
5. Threshold: `delta` = Farrington's power-transformed normal limit; `nbPlugin` = the
   (1 − alpha) quantile of a negative binomial with the fitted mean and dispersion
   (Noufaily 2013); `muan` = the same at the (1 − alpha) quantile of the fitted mean.
6. Alarm when count > upperbound and count > 0, and only if at least limit54[0] cases fell
   in the last limit54[1] weeks (otherwise expected/upperbound are NaN and alarm False,
   exactly as R).

Where R's code differs from its papers, R wins (the parity tests compare with its output);
each such place has a comment citing the R function in R/farringtonFlexible.R or
R/algo_farrington.R. The algorithm itself, one week at a time, is in
`monitor.detectors.farrington_model`; this module is the detector's entry points.

Engines:

* `detect_statsmodels` is the **reference path**: one week at a time, one statsmodels GLM
  per fit (`farrington_model.evaluate_week`). It is the readable statement of the
  algorithm and what the batch engine is tested against (tests/test_farrington_batch.py),
  besides R.
* `detect` and `detect_many` run the **batch engine** (`monitor.detectors.farrington_batch`):
  the same algorithm, IRLS vectorised in numpy across many (series, week) fits: about
  0.06 ms per week on 1,000 series instead of 3-4 ms (scripts/bench_detect.py). Its
  results are the reference path's: alarms, trend decisions, notes and NA identical,
  numbers equal to rounding (1e-9 relative, or closer to the exact values where
  statsmodels' own solve is less accurate than that). The rare weeks whose outcome
  rounding could decide (degenerate fits, near-ties, statsmodels' clipping of tiny
  means) are handed to the reference path, so they match it by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitor.detectors._common import check_positions
from monitor.detectors.farrington_batch import detect_batch, detect_batch_table
from monitor.detectors.farrington_model import (
    COLUMNS,
    FarringtonParams,
    evaluate_week,
    min_history,
    series_min_history,
)

__all__ = [
    "COLUMNS", "SUMMARY", "FarringtonParams", "detect", "detect_many", "detect_statsmodels", "detect_table", "min_history",
    "series_min_history",
]  # fmt: skip

SUMMARY = (
    "Flags a week when its count exceeds the upper limit of a quasi-Poisson GLM fitted on the same "
    "weeks of the past b years, past outbreaks down-weighted (Farrington 1996; Noufaily 2013; "
    "R surveillance::farringtonFlexible)."
)


def detect(counts: pd.Series, params: FarringtonParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Run Farrington flexible on the weeks at positions `weeks` of `counts` (batch engine).

    Same arguments and result as `detect_statsmodels` (the reference path), computed by
    `monitor.detectors.farrington_batch`; see `detect_statsmodels` for the columns.
    """
    return detect_batch([counts], params, [weeks])[0]


def detect_many(series: Sequence[pd.Series], params: FarringtonParams, weeks: Sequence[Sequence[int]]) -> list[pd.DataFrame]:
    """Run Farrington flexible on several series at once: `weeks[i]` are the positions of `series[i]`.

    Returns one frame per series, each exactly what `detect(series[i], params,
    weeks=weeks[i])` returns; the fits of all series are batched together, which is
    where the batch engine is fastest (raises ValueError when the lengths differ).
    """
    return detect_batch(series, params, weeks)


def detect_table(series: Sequence[pd.Series], params: FarringtonParams, weeks: Sequence[Sequence[int]]) -> pd.DataFrame:
    """`detect_many`'s frames as one frame, series after series (`pd.concat(..., ignore_index=True)` of them),
    without cutting it into a frame per series first; at least one series."""
    return detect_batch_table(series, params, weeks)


def detect_statsmodels(counts: pd.Series, params: FarringtonParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Run Farrington flexible on the weeks at positions `weeks` of `counts`: the reference path.

    One statsmodels GLM per fit, one week at a time (about 3 ms per week); `detect` gives
    the same result faster.

    Parameters:
        counts: weekly counts indexed by consecutive week starts (DatetimeIndex, zero-filled).
        params: the Farrington settings.
        weeks: 0-based positions in `counts` to evaluate.

    Returns one row per position with `COLUMNS`: `expected` = fitted mean, `upperbound` =
    threshold (both NaN when the limit54 rule is not met), `alarm` (pandas "boolean", NA when
    no model could be fitted), `score` = (count − expected) / (upperbound − expected) (> 1
    exactly when count > upperbound; computed even when limit54 blanks the bounds),
    `pvalue` = P(Y ≥ count) under the predictive distribution, `mu0` = the mean plugged into
    the threshold (the (1 − alpha) quantile of the mean for muan), `phi` = dispersion (≥ 1),
    `trend_used`, `trend_coef` (log-scale change per week) and `note`.
    """
    pos = check_positions(counts, weeks)
    y = counts.to_numpy(dtype=float, na_value=np.nan)  # a copy: the input is never touched
    days = [ts.date() for ts in pd.DatetimeIndex(counts.index)]
    position_of = {d: i for i, d in enumerate(days)}
    rows = [evaluate_week(y, days, position_of, t, params) for t in pos]
    out = pd.DataFrame(rows, columns=list(COLUMNS), index=pd.RangeIndex(len(rows)))
    out["week_start"] = pd.DatetimeIndex(counts.index[np.asarray(pos, dtype=int)])
    for col in ("count", "expected", "upperbound", "score", "pvalue", "mu0", "phi", "trend_coef"):
        out[col] = out[col].astype(float)
    out["alarm"] = out["alarm"].astype("boolean")
    out["trend_used"] = out["trend_used"].astype("boolean")
    out["note"] = out["note"].astype(str)
    return out


