"""Record-high and change-band rules, named after the systems they reproduce.

* `highest-in` — OCHA HDX Signals: the sum of the last `window` weeks (this week included)
  is strictly higher than every rolling `window`-week sum ending in the previous
  `years` × 52 weeks, and at least `floor`; `warning` at `warning_years`.
* `trendfinder` — ACLED Trendfinder: this week's % change against the mean of the previous
  `baseline` weeks, cut into large increase / moderate increase / limited change / large
  decrease, with ACLED's low-baseline guard.

Both add the boolean `warning` column (the looser level: HDX's 1-year high, Trendfinder's
moderate increase). Like the ACLED ratio rules they have no model, so `pvalue` is always
NaN. Counts are whole numbers (events or fatalities), so "the smallest count that would
alarm" (`upperbound`) is a whole number too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.detectors._common import check_positions, result_frame

HIGHEST_IN_SUMMARY = (
    "OCHA HDX Signals: alarm when the sum of the last window (4) weeks, this week included, is strictly "
    "higher than every such rolling sum ending in the previous years (3) x 52 weeks and is at least "
    "floor (10); warning when it is the highest in warning_years (1)."
)
TRENDFINDER_SUMMARY = (
    "ACLED Trendfinder: this week's % change against the mean of the previous baseline (4) weeks is a "
    "large increase (alarm) above large (25) %, a moderate increase (warning) above moderate (10) %, a "
    "large decrease below decrease (-25) % and otherwise limited change, as it always is when that mean "
    "is at most guard_mean (2) and this week's count at most guard_count (5)."
)

WEEKS_PER_YEAR = 52

#: The bands of `trendfinder`, from the top.
LARGE_INCREASE = "large increase"
MODERATE_INCREASE = "moderate increase"
LIMITED_CHANGE = "limited change"
LARGE_DECREASE = "large decrease"
BANDS: tuple[str, ...] = (LARGE_INCREASE, MODERATE_INCREASE, LIMITED_CHANGE, LARGE_DECREASE)

# Percent changes are quotients of whole numbers (100 x 1 / 10 may not be exactly 10): a
# change within this relative distance of a band edge is ON the edge, so "more than 10 %"
# does not hold for a change that is 10 % on paper.
_REL_TOL = 1e-9


def _above(value: float, edge: float) -> bool:
    return value > edge + _REL_TOL * abs(edge)


def _below(value: float, edge: float) -> bool:
    return value < edge - _REL_TOL * abs(edge)


def _rolling_sum(y: np.ndarray, length: int) -> np.ndarray:
    """Sum of y[t-length+1 .. t] for every t (NaN where too early or where a count is missing)."""
    out = np.full(len(y), np.nan)
    if len(y) >= length:
        out[length - 1 :] = sliding_window_view(y, length).sum(axis=1)
    return out


def _previous_max(sums: np.ndarray, lookback: int) -> np.ndarray:
    """max(sums[t-lookback .. t-1]) for every t (NaN where any of them is NaN or too early)."""
    out = np.full(len(sums), np.nan)
    if len(sums) > lookback:
        out[lookback:] = sliding_window_view(sums, lookback).max(axis=1)[: len(sums) - lookback]
    return out


def _years(n: int) -> str:
    return "1 year" if n == 1 else f"{n} years"


def _decided_column(values: Sequence[bool | None]) -> pd.arrays.BooleanArray:
    return pd.array(list(values), dtype="boolean")


def _insert_before_note(frame: pd.DataFrame, columns: dict[str, object]) -> pd.DataFrame:
    for name, values in columns.items():
        frame.insert(len(frame.columns) - 1, name, values)
    return frame


# highest-in (OCHA HDX Signals)
class HighestInParams(BaseModel):
    """Settings of the OCHA HDX Signals "highest in N years" rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(4, ge=1, description="Number of weeks summed, this week included (1: this week alone; HDX sums 30 days).")
    years: int = Field(
        3, ge=1,
        description="Alarm when the window sum is strictly higher than every rolling window sum ending in the previous years x 52 weeks.",
    )  # fmt: skip
    warning_years: int = Field(
        1, ge=1, description="The looser warning level: the window sum is the highest in this many years (at most years)."
    )
    floor: int = Field(
        10, ge=0, description="No alarm or warning unless the window sum is at least this (HDX: 100 fatalities over 30 days)."
    )

    @model_validator(mode="after")
    def _warning_not_stricter(self) -> HighestInParams:
        if self.warning_years > self.years:
            raise ValueError(
                f"warning_years ({self.warning_years}) must be at most years ({self.years}): the warning is the looser level"
            )
        return self


def highest_in_min_history(params: HighestInParams) -> int:
    """Weeks needed before a monitored week: `years` × 52 + `window` − 1 (the oldest compared window's first week)."""
    return params.years * WEEKS_PER_YEAR + params.window - 1


def detect_highest_in(counts: pd.Series, params: HighestInParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Alarm when the last `window` weeks' sum is strictly higher than every rolling
    `window`-week sum ending in the previous `years` × 52 weeks, and at least `floor`.

    Parameters:
        counts: weekly counts indexed by consecutive week starts (zero-filled).
        params: window, years, warning_years, floor.
        weeks: 0-based positions in `counts` to evaluate.

    With S(t) the sum of weeks t−window+1..t, week t alarms when S(t) > S(u) for every u in
    t − years×52 .. t − 1 (overlapping windows, as HDX Signals compares rolling 30-day
    sums) and S(t) ≥ floor. A tie with the previous highest is not a new high (no alarm, a
    note says so). `warning` is the same rule over the previous `warning_years` × 52 weeks
    (so it holds wherever `alarm` does).

    Columns: `count` this week's count; `expected` the mean weekly count of the previous
    years×52 weeks (a week's scale, to read next to `count`); `upperbound` the smallest
    count this week that would alarm: max(floor, previous_max + 1) minus the other
    window − 1 weeks of the window (at least 1, since the window that ended last week holds
    those weeks; alarm ⇔ count ≥ upperbound); `score` = window_sum / max(floor, previous_max + 1),
    the window sum over the smallest alarming window sum (alarm ⇔ score ≥ 1); `pvalue` NaN;
    then `window_sum` (S(t)), `previous_max` (the highest S(u) of the previous years×52
    weeks) and `warning`.
    """
    pos = check_positions(counts, weeks)
    y = counts.to_numpy(dtype=float, na_value=np.nan)
    lookback = params.years * WEEKS_PER_YEAR
    sums = _rolling_sum(y, params.window)
    previous = _previous_max(sums, lookback)
    previous_warn = _previous_max(sums, params.warning_years * WEEKS_PER_YEAR)
    expected = np.full(len(y), np.nan)
    expected[1:] = _rolling_sum(y, lookback)[:-1] / lookback
    with np.errstate(invalid="ignore"):
        smallest_sum = np.maximum(float(params.floor), np.floor(previous) + 1.0)  # smallest whole alarming sum
        upper = np.maximum(0.0, smallest_sum - (sums - y))
        score = sums / smallest_sum

    need = highest_in_min_history(params)
    alarm: list[bool | None] = [None] * len(y)
    warning: list[bool | None] = [None] * len(pos)
    notes: list[str] = []
    for k, t in enumerate(pos):
        if t < need:
            notes.append(f"too little history for highest-in (needs {need} weeks, has {t})")
            continue
        s, top = sums[t], previous[t]
        if np.isnan(s) or np.isnan(top):
            span = lookback + params.window - 1
            notes.append(f"a count is missing in this week's {params.window}-week window or in the {span} weeks before")
            continue
        above_floor = s >= params.floor
        alarm[t] = bool(s > top and above_floor)
        warning[k] = bool(s > previous_warn[t] and above_floor)
        if s == top and above_floor:
            notes.append(f"window sum {s:g} ties the highest of the previous {_years(params.years)}: a tie is not a new high")
        elif s > previous_warn[t] and not above_floor:
            level = params.years if s > top else params.warning_years
            notes.append(f"highest in {_years(level)} but below the floor ({s:g} < {params.floor})")
        else:
            notes.append("")
    out = result_frame(
        counts, pos, expected=expected, upperbound=upper, alarm=alarm, score=score,
        pvalue=np.full_like(y, np.nan), extra={"window_sum": sums, "previous_max": previous}, notes=notes,
    )
    return _insert_before_note(out, {"warning": _decided_column(warning)})


# trendfinder (ACLED Trendfinder change levels)
class TrendfinderParams(BaseModel):
    """Settings of the ACLED Trendfinder change levels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline: int = Field(
        4, ge=1, description="Number of weeks before this one whose mean is the comparison (ACLED: 4, or 52 for the previous year)."
    )
    large: float = Field(25.0, gt=0, allow_inf_nan=False, description="% change above this: large increase (the alarm).")
    moderate: float = Field(
        10.0, ge=0, allow_inf_nan=False, description="% change above this, up to large: moderate increase (the warning)."
    )
    decrease: float = Field(-25.0, ge=-100, lt=0, allow_inf_nan=False, description="% change below this: large decrease.")
    guard_mean: float = Field(
        2.0, ge=0, allow_inf_nan=False,
        description="Low-baseline guard: a baseline mean at most this, with this week at most guard_count, is limited change.",
    )  # fmt: skip
    guard_count: int = Field(
        5, ge=0, description="Low-baseline guard: this week's count at most this, with the baseline mean at most guard_mean, is limited change."
    )

    @model_validator(mode="after")
    def _bands_in_order(self) -> TrendfinderParams:
        if self.moderate > self.large:
            raise ValueError(
                f"moderate ({self.moderate:g}) must be at most large ({self.large:g}): the moderate band lies below the large one"
            )
        return self


def trendfinder_min_history(params: TrendfinderParams) -> int:
    """Weeks needed before a monitored week: `baseline`."""
    return params.baseline


def _band(count: float, base_sum: float, params: TrendfinderParams, *, guard: bool = True) -> tuple[float, str, bool]:
    """(% change, band, guarded) of `count` against a baseline summing to `base_sum` over `baseline` weeks.

    guard=False: the band the % change alone gives (to say what the guard overrode).
    """
    n = params.baseline
    if base_sum > 0:
        pct = 100.0 * (n * count - base_sum) / base_sum  # from the sum: exact numerator for whole counts
    else:
        pct = math.inf if count > 0 else 0.0  # 0 / 0: no events before, none now, no change
    guarded = guard and base_sum / n <= params.guard_mean + _REL_TOL * params.guard_mean and count <= params.guard_count
    if guarded:
        return pct, LIMITED_CHANGE, True
    if _above(pct, params.large):
        return pct, LARGE_INCREASE, False
    if _above(pct, params.moderate):
        return pct, MODERATE_INCREASE, False
    if _below(pct, params.decrease):
        return pct, LARGE_DECREASE, False
    return pct, LIMITED_CHANGE, False


def _smallest_large_increase(base_sum: float, params: TrendfinderParams) -> float:
    """The smallest whole count this week whose band is "large increase" (guard included)."""
    edge = base_sum * (100.0 + params.large) / (100.0 * params.baseline)  # count at exactly +large %
    count = max(0.0, math.floor(edge) - 1.0)
    while _band(count, base_sum, params)[1] != LARGE_INCREASE:
        count += 1.0
    return count


def detect_trendfinder(counts: pd.Series, params: TrendfinderParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Band this week's % change against the mean of the previous `baseline` weeks as ACLED
    Trendfinder does: alarm on a large increase (more than `large` %), warning on any increase
    of more than `moderate` %.

    Parameters:
        counts: weekly counts indexed by consecutive week starts (zero-filled).
        params: baseline, large, moderate, decrease, guard_mean, guard_count.
        weeks: 0-based positions in `counts` to evaluate.

    pct_change = 100 × (count − mean) / mean, mean = the mean of weeks t−baseline..t−1. The
    bands, with the default edges (an edge value always belongs to the band nearer 0):

    * "large increase": pct_change > 25 (exactly +25 % is a moderate increase);
    * "moderate increase": 10 < pct_change ≤ 25 (exactly +10 % is limited change);
    * "limited change": −25 ≤ pct_change ≤ 10 (exactly −25 % is limited change);
    * "large decrease": pct_change < −25.

    The low-baseline guard overrides them all: a mean ≤ guard_mean (2) with a count ≤
    guard_count (5) is "limited change" (both edges included, as ACLED's "two events or
    fewer on average ... and five events or fewer"); the note says when it held back an increase.
    A zero mean: pct_change is +inf when count > 0 (a large increase unless guarded) and 0
    (limited change) when count is 0 too.

    Columns: `expected` the baseline mean; `upperbound` the smallest whole count that would
    be a large increase, guard included (alarm ⇔ count ≥ upperbound); `score` =
    pct_change / large (alarm ⇔ score > 1 when unguarded; NaN when pct_change is infinite,
    since an infinite score would outrank every real surge); `pvalue` NaN; then
    `pct_change`, `band` (one of the four, None when undecided) and `warning` (band is a
    large or moderate increase).
    """
    pos = check_positions(counts, weeks)
    y = counts.to_numpy(dtype=float, na_value=np.nan)
    n = params.baseline
    base_sum = np.full(len(y), np.nan)
    base_sum[1:] = _rolling_sum(y, n)[:-1]
    expected = base_sum / n
    pct = np.full(len(y), np.nan)
    upper = np.full(len(y), np.nan)
    alarm: list[bool | None] = [None] * len(y)
    warning: list[bool | None] = [None] * len(pos)
    bands: list[str | None] = [None] * len(pos)
    notes: list[str] = []
    for k, t in enumerate(pos):
        if t < n:
            notes.append(f"too little history for trendfinder (needs {n} weeks, has {t})")
            continue
        if np.isnan(y[t]) or np.isnan(base_sum[t]):
            notes.append(f"count is missing in this week or the previous {n} weeks")
            continue
        pct[t], band, guarded = _band(y[t], base_sum[t], params)
        upper[t] = _smallest_large_increase(base_sum[t], params)
        bands[k] = band
        alarm[t] = band == LARGE_INCREASE
        warning[k] = band in (LARGE_INCREASE, MODERATE_INCREASE)
        note = ""
        if guarded:
            unguarded = _band(y[t], base_sum[t], params, guard=False)[1]
            if unguarded in (LARGE_INCREASE, MODERATE_INCREASE):  # a held-back decrease is not worth a note
                note = (
                    f"low baseline (mean {expected[t]:.3g} <= {params.guard_mean:g}, count {y[t]:g} <= {params.guard_count}): "
                    f"limited change, not {unguarded}"
                )
        elif math.isinf(pct[t]):
            note = f"no events in the {n} baseline weeks: the % change is infinite (score undefined)"
        notes.append(note)
    with np.errstate(invalid="ignore"):
        score = np.where(np.isinf(pct), np.nan, pct / params.large)
    out = result_frame(
        counts, pos, expected=expected, upperbound=upper, alarm=alarm, score=score,
        pvalue=np.full_like(y, np.nan), extra={"pct_change": pct}, notes=notes,
    )
    return _insert_before_note(out, {"band": pd.Series(bands, dtype=object), "warning": _decided_column(warning)})
