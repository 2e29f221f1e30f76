"""What every detector module uses to check its input and shape its result.

A detector (`monitor.detectors.ears`, `rules`, `cusum`, `glrnb`, `signals`, `nb_recent`,
`farrington`, `farrington_batch`, `farrington_cusum`) takes weekly counts and the positions of
the weeks to judge, and returns one row per position:

* `check_positions` validates the counts (consecutive weeks indexed by week start) and the
  positions, raising on a programming error;
* `result_frame` builds the result from whole-series arrays: the `CORE_COLUMNS` first, then
  the detector's extra columns, then `note`;
* `window_mean_sd` is the moving baseline (mean and sample sd of a window of past weeks) of
  EARS and the ratio rules.

The registry in `monitor.detectors` also checks positions with `check_positions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

#: Columns every detector returns first, in this order; extra columns follow, then `note`.
CORE_COLUMNS: tuple[str, ...] = ("week_start", "count", "expected", "upperbound", "alarm", "score", "pvalue")


def check_positions(counts: pd.Series, weeks: Sequence[int]) -> list[int]:
    """Validate the detector inputs and return the positions as ints.

    A bad argument is a programming error, so this raises (TypeError / IndexError).
    """
    if not isinstance(counts, pd.Series) or not isinstance(counts.index, pd.DatetimeIndex):
        raise TypeError("counts must be a pandas Series indexed by week start (DatetimeIndex)")
    steps = np.diff(counts.index.to_numpy()).astype("timedelta64[D]").astype(int)
    if len(steps) and not (steps == 7).all():
        raise ValueError("counts must hold consecutive weeks (index 7 days apart, zero-filled)")
    n = len(counts)
    pos = [int(t) for t in weeks]
    bad = [t for t in pos if not 0 <= t < n]
    if bad:
        raise IndexError(f"week positions {bad[:5]} are outside the series (0..{n - 1})")
    return pos


def result_frame(
    counts: pd.Series,
    pos: Sequence[int],
    *,
    expected: np.ndarray,
    upperbound: np.ndarray,
    alarm: Sequence[bool | None],
    score: np.ndarray,
    pvalue: np.ndarray,
    extra: dict[str, np.ndarray],
    notes: Sequence[str],
) -> pd.DataFrame:
    """Assemble the detector result for positions `pos` from whole-series arrays.

    Arrays (and `alarm`, None for undecided) are indexed by position in `counts`; `notes`
    has one entry per element of `pos`.
    """
    idx = np.asarray(pos, dtype=int)
    alarm_rows = [alarm[t] for t in pos]
    data: dict[str, Any] = {
        "week_start": pd.DatetimeIndex(counts.index[idx]),
        "count": counts.to_numpy(dtype=float, na_value=np.nan)[idx],
        "expected": np.asarray(expected, dtype=float)[idx],
        "upperbound": np.asarray(upperbound, dtype=float)[idx],
        "alarm": pd.array(alarm_rows, dtype="boolean"),
        "score": np.asarray(score, dtype=float)[idx],
        "pvalue": np.asarray(pvalue, dtype=float)[idx],
    }
    for name, values in extra.items():
        data[name] = np.asarray(values, dtype=float)[idx]
    data["note"] = [str(n) for n in notes]
    return pd.DataFrame(data, index=pd.RangeIndex(len(idx)))


def window_mean_sd(y: np.ndarray, *, lag: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample sd (n − 1) of y[t-lag-length+1 .. t-lag] for every t (NaN where too early)."""
    n = len(y)
    mean = np.full(n, np.nan)
    sd = np.full(n, np.nan)
    first = lag + length - 1
    if n > first:
        win = sliding_window_view(y, length)[: n - first]
        mean[first:] = win.mean(axis=1)
        sd[first:] = win.std(axis=1, ddof=1) if length > 1 else np.nan
    return mean, sd

