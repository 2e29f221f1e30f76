"""Farrington + CUSUM: Farrington's single-week test, a CUSUM of its normal scores, and a baseline that learns a new level.

A surge in conflict data, like an outbreak, rarely lands in one week: in the Noufaily et al.
(2013) design about half an outbreak's cases fall in its first week and 42 % in the next, so a
single-week test sees half of it. And conflict escalates: a region whose violence has risen
for months and settled at a new level is no longer surging, though Farrington's model,
fitted on the same weeks of past years, keeps expecting the old level. This detector keeps
Farrington flexible (`monitor.detectors.farrington`, every parameter as there) and adds:

1. **Baseline.** Farrington fits its quasi-Poisson model for each week t and gives mu0(t)
   and phi(t). The baseline learns a new level: over the `recent_window` weeks before t
   (leaving out the `recent_gap` weeks just before it), compare what was observed with what
   Farrington expected for each of those weeks. When their total is significantly above
   (P(total or more) ≤ `shift_alpha` under the same negative binomial) and most of those
   weeks are above their own expectation (a new level, not one spike), the expected count
   is mu0(t) × observed / expected (column `model` = "recent", `recent_level`; seasonality
   is kept, and the chart draws it thicker), and phi is the larger of Farrington's and the
   recent weeks' own dispersion (as in `nb-recent`). In a settled escalation the new level
   becomes the baseline within `recent_window` weeks, so the series stops alarming; while
   the rise goes on, each week is still above the level of the weeks before it. For the
   first weeks Farrington fits, the recent weeks are compared with this week's mu0. The
   test is strict, so a series in control keeps Farrington's baseline.
2. **Single week.** p-value = P(Y ≥ y) under NegBin(mean = expected, variance = phi ·
   expected) (Poisson when phi = 1), alarm when it is at most `alpha`: Farrington's own
   nbPlugin rule on Farrington's baseline. `upperbound` is this single-week threshold.
3. **Rise over weeks.** z(t) = Φ⁻¹(1 − mid-p upper tail), C(t) = max(0, C(t−1) + z(t) −
   `cusum_k`); the week alarms when C(t) ≥ `cusum_h` (column `chart_alarm`; the why column
   says which weeks: "3 weeks above expected: 9, 12, 21 against 4", and `chart_pvalue` is the
   tail probability of their total). After an alarm the chart restarts at `hold`·h, not 0,
   so a rise that goes on keeps alarming as one continuing surge.
4. Both parts need Farrington's limit54 (enough cases in the last weeks). A week Farrington
   cannot decide leaves C unchanged and is undecided.

With k = 1 and h = 2.25 the chart signals on one week with z ≥ 3.25 (p ≈ 0.0006) or two
weeks whose scores add up to 4.25 or more. Its in-control false-alarm rate per week is about
1/ARL0 with Siegmund's approximation, ARL0 ≈ (e^(2kb) − 2kb − 1)/(2k²), b = h + 1.166: 0.0022
for these values; with alpha = 0.002 the nominal total is 0.0042 a week (`nominal_rate`).
Measured rates on the Noufaily design and on real data are in the README ("Choosing a
detector"); k, h and alpha were chosen on simulations with seed 2 and scored on seed 1.

A week with less than `b` years of history is fitted on as many whole years as it has, down
to `b_min` (column `b_used`); below that the series is judged by the `nb-recent` fallback.
Where every reference week was empty Farrington's mean collapses towards 0; the expected
count is never below half an event over the reference weeks, 0.5 / (b · (2w + 1)).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd
from pydantic import Field

from monitor.detectors import _nb, farrington, farrington_model
from monitor.detectors._common import check_positions
from monitor.detectors._nb import arl0

SUMMARY = (
    "Farrington + CUSUM: alarm when the week's count has P(count or more) <= alpha under Farrington's "
    "negative binomial (the threshold shown), or when a CUSUM of the weeks' normal scores reaches cusum_h "
    "(a rise over several weeks; restarts at hold*h after an alarm, so a rise that goes on stays one alert); "
    "the baseline rises to the level of the last recent_window weeks when they are significantly above "
    "Farrington's expectation, most of them above it (a settled escalation stops alarming); limit54 applies to both."
)


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
    hold: float = Field(
        0.5, ge=0, lt=1, allow_inf_nan=False, description="After an alarm the CUSUM restarts at hold·h (0: at 0), so a rise that goes on stays one alert."
    )
    recent_window: int = Field(
        8, ge=2, le=104, description="Recent weeks whose level (observed / Farrington's expected) becomes the baseline when significantly above 1."
    )
    recent_gap: int = Field(1, ge=0, le=26, description="Weeks just before the judged week left out of the recent level.")
    shift_alpha: float = Field(
        0.001, gt=0, lt=1, allow_inf_nan=False,
        description="The recent weeks' level replaces Farrington's baseline when their total has P(total or more) <= shift_alpha under it.",
    )


def min_history(params: FarringtonCusumParams, start: date | None = None) -> int:
    """Weeks of history before the first week that can be decided: Farrington's with b_min years (`start`: see there)."""
    return farrington.min_history(farrington_part(params, b=min(params.b, params.b_min)), start)


def series_min_history(params: FarringtonCusumParams, counts: pd.Series) -> int:
    """`min_history` for the calendar of `counts`: Farrington's with b_min years."""
    return farrington.series_min_history(farrington_part(params, b=min(params.b, params.b_min)), counts)


@lru_cache(maxsize=256)
def farrington_part(params: FarringtonCusumParams, *, b: int | None = None) -> farrington.FarringtonParams:
    """The Farrington parameters inside `params` (with `b` years instead of params.b if given). Cached: both are
    frozen, and a weekly run asks for them for every week of every series' chart."""
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


def nominal_rate(params: FarringtonCusumParams) -> float:
    """Nominal false alarms per week: Farrington's alpha plus the CUSUM's 1/ARL0 (an upper bound; limit54 lowers it)."""
    return float(params.alpha + 1 / arl0(params.cusum_k, params.cusum_h))


def detect(counts: pd.Series, params: FarringtonCusumParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Run Farrington + CUSUM over the run of weeks from min(weeks) to max(weeks).

    Parameters:
        counts: weekly counts indexed by consecutive week starts (zero-filled).
        params: Farrington's settings plus `cusum_k` and `cusum_h`.
        weeks: 0-based positions to return; the chart runs over every week from the first
            to the last of them (C = 0 before the first).

    Returns one row per position: `expected` (the baseline in use), `upperbound` (the
    single-week threshold), `alarm` (the combined rule), `score` (the CUSUM after the week,
    before a restart), `pvalue` (the single-week P(Y ≥ y)), Farrington's own columns (`mu0`,
    `phi`, `trend_used`, `trend_coef`), then `model` ("farrington" or "recent"),
    `recent_level`, `phi_used`, `b_used` (years of reference), `z` (the week's normal score),
    `farrington_alarm` (Farrington's own alarm), `single_alarm`, `chart_alarm` (the CUSUM
    alone alarmed), `chart_pvalue`, `why` and `note`.
    """
    return detect_many([counts], params, [weeks])[0]


def detect_many(series: Sequence[pd.Series], params: FarringtonCusumParams, weeks: Sequence[Sequence[int]]) -> list[pd.DataFrame]:
    """`detect` on several series at once (`weeks[i]` are the positions of `series[i]`): Farrington's fits are batched."""
    if len(series) != len(weeks):
        raise ValueError(f"detect_many needs one list of weeks per series (got {len(series)} series and {len(weeks)} lists of weeks)")
    positions = [check_positions(counts, w) for counts, w in zip(series, weeks)]
    return _detect_runs(series, params, [[(min(pos), max(pos), pos)] if pos else [] for pos in positions])


def detect_cuts(counts: pd.Series, params: FarringtonCusumParams, cuts: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """One row per (start, end) of `cuts`: `detect(counts.iloc[:end + 1], weeks=[start, end])`'s row for the week at
    `end`, whose chart runs from `start` (a replay: each week as the weekly job judged it). Farrington's fits and
    each week's single-week test look only backwards, so they are computed once; only each chart is run."""
    return detect_cuts_many([counts], params, [cuts])[0]


def detect_cuts_many(series: Sequence[pd.Series], params: FarringtonCusumParams, cuts: Sequence[Sequence[tuple[int, int]]]) -> list[pd.DataFrame]:
    """`detect_cuts` of several series at once (`cuts[i]` of `series[i]`): Farrington's fits of all of them are
    batched, so series of the same calendar share its templates."""
    if len(series) != len(cuts):
        raise ValueError(f"detect_cuts_many needs one list of cuts per series (got {len(series)} series and {len(cuts)} lists)")
    for counts, own in zip(series, cuts):
        for start, end in own:
            check_positions(counts, [start, end])
    return _detect_runs(series, params, [[(start, end, [end]) for start, end in own] for own in cuts])


def _detect_runs(series: Sequence[pd.Series], params: FarringtonCusumParams, runs: Sequence[Sequence[tuple[int, int, Sequence[int]]]]) -> list[pd.DataFrame]:
    """For each series, the rows `rows` of each of its chart runs (start, end, rows), stacked in order; Farrington's
    fits of all series batched, once per week of a series however many runs hold it."""
    spans = [list(range(min(r[0] for r in own), max(r[1] for r in own) + 1)) if own else [] for own in runs]
    # Farrington is also fitted on the recent weeks before the run: the learned level compares them with it
    pre = params.recent_gap + params.recent_window
    fits = [list(range(max(span[0] - pre, 0), span[-1] + 1)) if span else [] for span in spans]
    starts = [pd.DatetimeIndex(counts.index)[0].date() if len(counts) else None for counts in series]
    years = [np.array([years_for(params, t, start) for t in fit], dtype=int) for fit, start in zip(fits, starts)]
    frames: list[list[pd.DataFrame]] = [[] for _ in series]
    for b in sorted({int(v) for y in years for v in y}, reverse=True):  # one batch per number of years
        parts = farrington.detect_many(series, farrington_part(params, b=b), [np.asarray(fit)[y == b] for fit, y in zip(fits, years)])
        for i, part in enumerate(parts):
            if len(part):
                frames[i].append(part.assign(b_used=b))
    out = []
    for counts, parts, fit, span, own in zip(series, frames, fits, spans, runs):
        f = pd.concat(parts).sort_values("week_start", kind="stable").reset_index(drop=True) if parts else None
        if f is None:
            f = farrington.detect(counts, farrington_part(params), weeks=[]).assign(b_used=pd.Series(dtype=int))
        out.append(_chart(_weeks(counts, f, params, fit, span), params, [(start - span[0], end - span[0], [r - span[0] for r in rows])
                                                                        for start, end, rows in own]))  # fmt: skip
    return out


def _weeks(counts: pd.Series, fitted: pd.DataFrame, params: FarringtonCusumParams, fit: list[int], run: list[int]) -> dict:
    """Every week's baseline and single-week test for the consecutive positions `run`: what does not depend
    on where the chart starts.

    fitted: Farrington's result for the positions `fit` (the run and the recent weeks before it).
    """
    from monitor.detectors.nb_recent import NbRecentParams, level_and_dispersion

    values = counts.to_numpy(dtype=float, na_value=np.nan)
    idx = np.asarray(run, dtype=int)
    off = len(fit) - len(run)  # the run is the tail of the fitted weeks
    # Farrington's mean can collapse towards 0 where every reference week was empty (5e-10 for a
    # region with an event a quarter): never below half an event over its reference weeks
    floor = 0.5 / (fitted["b_used"].to_numpy(dtype=float) * (2 * params.w + 1))
    mu0_all = np.fmax(fitted["mu0"].to_numpy(dtype=float), floor)
    mu0_all[~np.isfinite(fitted["mu0"].to_numpy(dtype=float))] = np.nan
    y_all = fitted["count"].to_numpy(dtype=float)
    f = fitted.iloc[off:].reset_index(drop=True)
    y = f["count"].to_numpy(dtype=float)
    mu0 = mu0_all[off:]
    phi_f = np.maximum(f["phi"].to_numpy(dtype=float), 1.0)
    decided = ~f["alarm"].isna().to_numpy()
    # the recent weeks against Farrington's expectation for each of them (seasonality kept): their total
    # observed / expected is the level ratio; a significant ratio, with most of the weeks above their
    # expectation, makes mu0 x ratio the baseline (a new level, not one spike)
    width, gap = params.recent_window, params.recent_gap
    observed, expected_sum, above = np.full(len(run), np.nan), np.full(len(run), np.nan), np.zeros(len(run))
    for j in range(len(run)):
        lo, hi = off + j - gap - width, off + j - gap
        if lo < 0:
            continue
        m, o = mu0_all[lo:hi], y_all[lo:hi]
        if not np.isfinite(o).all():
            continue
        if not (np.isfinite(m).all() and (m > 0).all()):  # the first weeks Farrington fits: this week's mu0 for each
            m = np.full(width, mu0[j])
        observed[j], expected_sum[j], above[j] = o.sum(), m.sum(), np.sum(o > m)
    ok = decided & np.isfinite(expected_sum) & (observed > expected_sum)
    p_shift = np.ones(len(run))
    p_shift[ok] = _nb.p_at_least(observed[ok], expected_sum[ok], phi_f[ok])
    shifted = ok & (p_shift <= params.shift_alpha) & (2 * above > width)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = mu0 * observed / expected_sum
    phi_r = level_and_dispersion(values, NbRecentParams(window=width, gap=gap, min_weeks=width))[1][idx]
    expected = np.where(shifted, level, mu0)
    phi = np.where(shifted, np.fmax(phi_f, phi_r), phi_f)
    eligible = np.array([farrington_model.enough_cases(values, t, params.limit54) for t in run], dtype=bool)
    tests = _nb.single_tests(y, expected, phi, decided, alpha=params.alpha)
    return {"f": f, "y": y, "expected": expected, "phi": phi, "decided": decided, "eligible": eligible, "shifted": shifted,
            "level": level, "tests": tests}  # fmt: skip


def _chart(shared: dict, params: FarringtonCusumParams, runs: Sequence[tuple[int, int, Sequence[int]]]) -> pd.DataFrame:
    """Single-week test and CUSUM for each run (start, end, rows) of the weeks of `shared` (`_weeks`, positions
    counted from its first week); the rows `rows` of every run, stacked in order."""
    t, out = _nb.judge_runs(shared["y"], shared["expected"], shared["phi"], shared["tests"], shared["eligible"], runs,
                            alpha=params.alpha, k=params.cusum_k, h=params.cusum_h, hold=params.hold)  # fmt: skip
    f = shared["f"].iloc[t].reset_index(drop=True)
    y, expected, phi, shifted, level = (shared[name][t] for name in ("y", "expected", "phi", "shifted", "level"))
    decided = shared["decided"][t] & out["usable"].astype(bool)

    def boolean(values: np.ndarray) -> pd.arrays.BooleanArray:
        return pd.array([bool(v) if d else None for v, d in zip(values, decided)], dtype="boolean")

    # the columns built in one go (a weekly run makes one small frame per series: thousands of them)
    res = {c: f[c].array for c in f.columns if c not in ("note", "b_used")}
    res["expected"] = np.where(decided, expected, f["expected"].to_numpy(dtype=float))
    res["upperbound"] = np.where(decided, out["upperbound"], np.nan)
    res["alarm"] = boolean(out["alarm"])
    res["score"] = out["stat"]
    res["pvalue"] = np.where(decided, out["pvalue"], np.nan)
    res["model"] = np.where(shifted, "recent", np.where(decided, "farrington", ""))
    res["recent_level"] = level  # mu0 x the recent weeks' observed / expected
    res["phi_used"] = np.where(decided, phi, np.nan)
    res["b_used"] = f["b_used"].astype(int).to_numpy()
    res["z"] = out["z"]
    res["farrington_alarm"] = f["alarm"].astype("boolean").to_numpy()
    res["single_alarm"] = boolean(out["single_alarm"])
    res["chart_alarm"] = boolean(out["chart_alarm"])
    res["chart_pvalue"] = out["chart_pvalue"]
    res["why"] = [
        (w + f"; baseline raised to the level of the last {params.recent_window} weeks") if w and s else w
        for w, s in zip(out["why"], shifted)
    ]
    res["note"] = f["note"].astype(str).tolist()
    return pd.DataFrame(res)
