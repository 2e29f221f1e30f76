"""Farrington + CUSUM: Farrington's single-week test, and a CUSUM of its normal scores that resets.

A surge in conflict data, like an outbreak, rarely lands in one week: in the Noufaily et al.
(2013) design about half an outbreak's cases fall in its first week and 42 % in the next, so a
single-week test sees half of it. This detector keeps Farrington flexible (`monitor.detectors.
farrington`, every parameter as there) and adds a one-sided CUSUM on the same model:

1. Farrington fits its quasi-Poisson model for each week t and gives mu0(t) and phi(t).
2. The count is turned into a normal score with the mid-p upper tail of the negative
   binomial (Poisson when phi = 1) with mean mu0 and variance phi·mu0 that Farrington's
   threshold uses: z(t) = Φ⁻¹(1 − [P(Y > y) + ½·P(Y = y)]), clipped to [−5, 8]. Under the
   model z is close to N(0, 1) whatever the mean, so one `cusum_k` and `cusum_h` fit sparse
   and busy series alike (the standardisation (y − m)/√m of `cusum` does not, on
   overdispersed counts).
3. C(t) = max(0, C(t−1) + z(t) − `cusum_k`), C = 0 before the first monitored week.
4. Week t alarms when Farrington alarms at `alpha` or C(t) ≥ `cusum_h`; either way only if
   the limit54 rule holds (enough cases in the last weeks), and the chart restarts at 0
   after an alarm. A week Farrington cannot decide leaves C unchanged and is undecided.

With k = 1 and h = 2.25 the chart signals on one week with z ≥ 3.25 (p ≈ 0.0006) or two
weeks whose scores add up to 4.25 or more. Its in-control false-alarm rate per week is about
1/ARL0 with Siegmund's approximation, ARL0 ≈ (e^(2kb) − 2kb − 1)/(2k²), b = h + 1.166: 0.0022
for these values; with Farrington at alpha = 0.002 the nominal total is 0.0042 a week
(`nominal_rate`). On the Noufaily design (`monitor simulate --detector farrington-cusum`) with
b = 5 it measured FPR 0.0044 and POD 0.48 against Farrington's 0.0049 and 0.42 at
alpha = 0.005 (README, "Choosing a detector"). k, h and alpha were chosen on simulations with
seed 2 and scored on seed 1.

A week with less than `b` years of history is fitted on as many whole years as it has, down
to `b_min` (column `b_used`), so a series that is 3 or 4 years old is still watched by this
detector rather than by the EARS fallback; Farrington's false-positive rate is higher with
fewer years (0.0062 with b = 3 against 0.0050 with b = 5 on the Noufaily design).

`upperbound` is the smallest count above which this week would alarm (alarm ⇔ count >
upperbound, as for Farrington): the lower of Farrington's limit and the count the CUSUM needs.
`pvalue` is Farrington's (so warnings and Benjamini–Hochberg see the single-week test) and
`chart_alarm` marks alarms raised by the CUSUM alone, which false-discovery-rate control keeps
(a chart has no single-week p-value; see `monitor.severity`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
from pydantic import Field
from scipy import special


from monitor.detectors import farrington
from monitor.detectors._dist import norm_isf, norm_sf
from monitor.detectors.ears import check_positions

SUMMARY = (
    "Farrington + CUSUM: alarm when Farrington's single-week test fires at alpha, or when a CUSUM of "
    "Farrington's normal scores (reset after each alarm) reaches cusum_h, so a rise spread over two or "
    "three weeks is caught too; limit54 applies to both."
)

#: Clipping of the normal scores: a count of 0 where thousands are expected, or a count far
#: beyond anything the model allows, would otherwise give ±inf.
Z_MIN, Z_MAX = -5.0, 8.0


class FarringtonCusumParams(farrington.FarringtonParams):
    """Farrington's parameters (defaults: improved settings, b = 5, alpha = 0.002) plus the CUSUM's k and h."""

    b: int = Field(5, ge=1, description="Years of history: reference weeks come from each of the past b years.")
    alpha: float = Field(
        0.002, gt=0, lt=1, allow_inf_nan=False, description="One-sided level of Farrington's single-week test."
    )
    b_min: int = Field(
        3, ge=1, description="Weeks with less than b years of history use as many whole years as they have, down to b_min."
    )
    cusum_k: float = Field(1.0, ge=0, allow_inf_nan=False, description="Reference value subtracted from each week's normal score.")
    cusum_h: float = Field(2.25, gt=0, allow_inf_nan=False, description="Decision interval: alarm when the CUSUM of normal scores reaches h.")


def min_history(params: FarringtonCusumParams, start: date | None = None) -> int:
    """Weeks of history before the first week that can be decided: Farrington's with b_min years (`start`: see there)."""
    return farrington.min_history(farrington_part(params, b=min(params.b, params.b_min)), start)


def series_min_history(params: FarringtonCusumParams, counts: pd.Series) -> int:
    """`min_history` for the calendar of `counts`: Farrington's with b_min years."""
    return farrington.series_min_history(farrington_part(params, b=min(params.b, params.b_min)), counts)


def farrington_part(params: FarringtonCusumParams, *, b: int | None = None) -> farrington.FarringtonParams:
    """The Farrington parameters inside `params` (with `b` years instead of params.b if given)."""
    values = {name: getattr(params, name) for name in farrington.FarringtonParams.model_fields}
    if b is not None:
        values["b"] = b
    return farrington.FarringtonParams(**values)


def years_for(params: FarringtonCusumParams, t: int, start: date | None = None) -> int:
    """Years of reference used at position t: b if the history allows, else the most whole years down to b_min.

    start: the date of the series' first week (see `farrington.min_history`); None: any calendar.
    """
    for b in range(params.b, min(params.b, params.b_min) - 1, -1):
        if t >= farrington.min_history(farrington_part(params, b=b), start):
            return b
    return min(params.b, params.b_min)  # too short even for b_min: Farrington says so (alarm NA, note)


def arl0(k: float, h: float) -> float:
    """In-control average run length of a one-sided CUSUM of N(0, 1) scores (Siegmund's approximation)."""
    b = h + 1.166
    if k == 0:
        return b * b
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


def nominal_rate(params: FarringtonCusumParams) -> float:
    """Nominal false alarms per week: Farrington's alpha plus the CUSUM's 1/ARL0 (an upper bound; limit54 lowers it)."""
    return float(params.alpha + 1 / arl0(params.cusum_k, params.cusum_h))


def upper_tail_mid(y: np.ndarray, mu: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Mid-p upper tail P(Y > y) + ½·P(Y = y) of NegBin(mean mu, variance phi·mu) (Poisson where phi <= 1)."""
    y, mu, phi = np.broadcast_arrays(np.asarray(y, float), np.asarray(mu, float), np.asarray(phi, float))
    return 0.5 * (_at_least(y, mu, phi) + _at_least(y + 1, mu, phi))


def _at_least(y: np.ndarray, mu: np.ndarray, phi: np.ndarray) -> np.ndarray:
    # P(Y >= y) as in farrington._NegBin / _Poisson: regularised incomplete beta / gamma
    out = np.ones(y.shape)
    with np.errstate(all="ignore"):
        pos = y > 0
        nb = pos & (phi > 1)
        po = pos & ~(phi > 1)
        out[nb] = special.betaincc(mu[nb] / (phi[nb] - 1), y[nb], 1 / phi[nb])
        out[po] = special.gammainc(y[po], mu[po])
    return out


def normal_scores(y: np.ndarray, mu: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """z = Φ⁻¹(1 − mid-p upper tail), clipped to [Z_MIN, Z_MAX]; NaN where an input is NaN."""
    z = norm_isf(upper_tail_mid(y, mu, phi))
    bad = np.isnan(np.asarray(y, float)) | np.isnan(np.asarray(mu, float)) | np.isnan(np.asarray(phi, float))
    return np.where(bad, np.nan, np.clip(z, Z_MIN, Z_MAX))


def counts_to_signal(target_z: np.ndarray, mu: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Smallest integer count whose normal score is >= target_z (so the chart reaches h), element-wise.

    0 where any count will do (target at or below Z_MIN), inf where none can (above Z_MAX
    or beyond 2^60), NaN where mu or phi is not finite. The mid-p tail falls as the count
    rises, so a doubling search brackets the answer and bisection finds it.
    """
    target_z, mu, phi = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(target_z, mu, phi))
    out = np.full(target_z.shape, np.nan)
    ok = np.isfinite(mu) & np.isfinite(phi) & ~np.isnan(target_z)
    out[ok & (target_z <= Z_MIN)] = 0.0
    out[ok & (target_z > Z_MAX)] = np.inf
    todo = np.flatnonzero(ok & (target_z > Z_MIN) & (target_z <= Z_MAX))
    if todo.size == 0:
        return out
    tail, m, f = norm_sf(target_z[todo]), mu[todo], phi[todo]

    def signals(y: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        return upper_tail_mid(y, m[rows], f[rows]) <= tail[rows]

    hi = np.ceil(m + 8 * np.sqrt(np.maximum(f, 1) * m) + 8)
    for _ in range(60):  # double until the count signals
        short = np.flatnonzero(~signals(hi))
        if short.size == 0:
            break
        hi[short] *= 2
    else:
        hi[~signals(hi)] = np.inf
    lo = np.full(hi.shape, -1.0)  # invariant: lo does not signal (or is -1), hi does
    while True:
        gap = np.flatnonzero(np.isfinite(hi) & (hi - lo > 1))
        if gap.size == 0:
            break
        mid = np.floor((lo[gap] + hi[gap]) / 2)
        hit = signals(mid, gap)
        hi[gap[hit]] = mid[hit]
        lo[gap[~hit]] = mid[~hit]
    out[todo] = hi
    return out


def detect(counts: pd.Series, params: FarringtonCusumParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Run Farrington + CUSUM over the run of weeks from min(weeks) to max(weeks).

    Parameters:
        counts: weekly counts indexed by consecutive week starts (zero-filled).
        params: Farrington's settings plus `cusum_k` and `cusum_h`.
        weeks: 0-based positions to return; the chart runs over every week from the first
            to the last of them (C = 0 before the first).

    Returns one row per position: Farrington's columns (`expected`, `pvalue`, `mu0`, `phi`,
    `trend_used`, `trend_coef`) with `alarm` the combined rule, `upperbound` the smallest
    count above which the week alarms, `score` the CUSUM after the week (before a reset),
    then `b_used` (years of reference), `z` (the week's normal score), `farrington_alarm`,
    `chart_alarm` (the CUSUM alone alarmed) and `note`.
    """
    return detect_many([counts], params, [weeks])[0]


def detect_many(series: Sequence[pd.Series], params: FarringtonCusumParams, weeks: Sequence[Sequence[int]]) -> list[pd.DataFrame]:
    """`detect` on several series at once (`weeks[i]` are the positions of `series[i]`): Farrington's fits are batched."""
    if len(series) != len(weeks):
        raise ValueError(f"detect_many needs one list of weeks per series (got {len(series)} series and {len(weeks)} lists of weeks)")
    positions = [check_positions(counts, w) for counts, w in zip(series, weeks)]
    runs = [list(range(min(pos), max(pos) + 1)) if pos else [] for pos in positions]
    starts = [pd.DatetimeIndex(counts.index)[0].date() if len(counts) else None for counts in series]
    years = [np.array([years_for(params, t, start) for t in run], dtype=int) for run, start in zip(runs, starts)]
    frames: list[list[pd.DataFrame]] = [[] for _ in series]
    for b in sorted({int(v) for y in years for v in y}, reverse=True):  # one batch per number of years
        parts = farrington.detect_many(series, farrington_part(params, b=b), [np.asarray(run)[y == b] for run, y in zip(runs, years)])
        for i, part in enumerate(parts):
            if len(part):
                frames[i].append(part.assign(b_used=b))
    out = []
    for counts, parts, run, pos in zip(series, frames, runs, positions):
        f = pd.concat(parts).sort_values("week_start", kind="stable").reset_index(drop=True) if parts else None
        if f is None:
            f = farrington.detect(counts, farrington_part(params), weeks=[]).assign(b_used=pd.Series(dtype=int))
        out.append(_chart(counts, f, params, run, pos))
    return out


def _chart(counts: pd.Series, f: pd.DataFrame, params: FarringtonCusumParams, run: list[int], pos: list[int]) -> pd.DataFrame:
    """Add the CUSUM to Farrington's result `f` for the consecutive positions `run`; keep the rows of `pos`."""
    y = f["count"].to_numpy(dtype=float)
    mu0 = f["mu0"].to_numpy(dtype=float)
    phi = f["phi"].to_numpy(dtype=float)
    decided = ~f["alarm"].isna().to_numpy()
    farr_alarm = f["alarm"].fillna(False).to_numpy(dtype=bool)
    z = normal_scores(y, mu0, phi)
    values = counts.to_numpy(dtype=float, na_value=np.nan)
    k, h = params.cusum_k, params.cusum_h

    n = len(run)
    stat = np.full(n, np.nan)
    upper = f["upperbound"].to_numpy(dtype=float).copy()
    alarm: list[bool | None] = [None] * n
    chart = np.zeros(n, dtype=bool)
    notes = f["note"].astype(str).tolist()
    before = np.full(n, np.nan)  # the chart before each decided week with enough cases (for upperbound)
    previous = 0.0
    for i, t in enumerate(run):
        if not decided[i]:
            stat[i] = previous
            continue
        enough = farrington._enough_cases(values, t, params.limit54)
        if enough:
            before[i] = previous
        zi = z[i] if np.isfinite(z[i]) else 0.0
        stat[i] = max(0.0, previous + zi - k)
        chart[i] = bool(enough and stat[i] >= h and not farr_alarm[i])
        alarm[i] = bool(farr_alarm[i] or chart[i])
        previous = 0.0 if alarm[i] else stat[i]
        if not np.isfinite(z[i]):
            notes[i] = (notes[i] + "; " if notes[i] else "") + "no normal score (mu0 or phi undefined): the CUSUM is unchanged"

    keep = np.searchsorted(np.asarray(run), np.asarray(pos, dtype=int)) if pos else np.zeros(0, dtype=int)
    # the smallest count that alarms: Farrington's (count > U) or the CUSUM's (score >= h + k - C(t-1)),
    # searched only for the weeks returned (a weekly run keeps a few of the chart's 157)
    needed = counts_to_signal(h + k - before[keep], mu0[keep], phi[keep]) - 1
    upper[keep] = np.where(np.isnan(upper[keep]), needed, np.fmin(upper[keep], needed))
    out = f.copy()
    out["upperbound"] = upper
    out["alarm"] = pd.array(alarm, dtype="boolean")
    out["score"] = stat
    b_used = out.pop("b_used")
    out = out.drop(columns=["note"])
    out["b_used"] = b_used.astype(int)
    out["z"] = z
    out["farrington_alarm"] = f["alarm"].astype("boolean")
    out["chart_alarm"] = pd.array([c if a is not None else None for c, a in zip(chart, alarm)], dtype="boolean")
    out["note"] = notes
    return out.iloc[keep].reset_index(drop=True)
