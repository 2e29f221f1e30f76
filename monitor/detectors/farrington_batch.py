"""Farrington flexible on many (series, week) fits at once: a batched numpy engine.

`monitor.detectors.farrington.detect_statsmodels`, the reference path, fits one statsmodels
GLM per fit, one week at a time; statsmodels' per-call overhead makes that about 3 ms per
week. This engine computes the same results for all monitored weeks of many series
together, following the reference step by step (same rows, same IRLS iterates, same
reweighting, trend rule and thresholds); `detect` and `detect_many` in
`monitor.detectors.farrington` run it.

Design
------
*Closed-form IRLS steps.* Every fit has the same kind of design: a seasonal factor with
`no_periods` levels (one level = the intercept) plus an optional linear trend in R's
`wtime`. With one coefficient per level (cell means: the column space of R's treatment
contrasts, hence the same fitted values, trend coefficient, hat values and predictions),
eta_i = a_g(i) + beta·t_i and X'WX is an arrow matrix, diagonal over the levels and
bordered by the trend column. An IRLS step is solved exactly through per-level sums and
the Schur complement S of the trend column:

    W_g = Σ_g w,  T_g = Σ_g w·t,  tbar_g = T_g / W_g,  S = Σ w·t² − Σ_g T_g·tbar_g
    Δbeta = (Σ w·r·t − Σ_g tbar_g·Σ_g w·r) / S,   Δa_g = (Σ_g w·r − Δbeta·T_g) / W_g

with w = prior weight·mu and working residual r = (y − mu)/mu: coef + (X'WX)⁻¹X'Wr is the
iterate statsmodels and R get by regressing z = eta + r on X. The inverse is closed-form too
(Var(beta) = 1/S, x'(X'WX)⁻¹x = 1/W_g + (t − tbar_g)²/S): the trend's t test, the hat
values and se(eta0) need no matrix algebra.

*Layout.* A chunk of fits is a (fits × rows) array, each fit's rows sorted by level, then
padding; every sum over a fit's rows is one `np.add.reduceat` over its level segments (the
padding is a segment no sum reads, so a fit's numbers do not depend on its chunk:
`detect_many` gives exactly what `detect` gives). No per-fit Python loop and no
(fits × rows × parameters) tensor. After the first step mu_i = exp(a_g)·exp(beta·t_i): a
step needs exp(beta·t) and three per-level moments (Σ pw·e, Σ pw·e·t, Σ pw·e·t²), and the
deviance follows from per-level sums; without a trend a step costs O(levels). Fits leave the
working set once converged. Weeks are grouped by their row template (the reference weeks
depend only on the calendar) and processed in chunks of at most `chunk` fits, which bounds
memory.

*Identical to the reference.* Start at mu = y + 0.1, stop when |dev_old − dev| ≤ 1e-9 +
1e-8·|dev| after at most 25 steps, IRLS weights and (X'WX)⁻¹ of the last step (statsmodels'
`model.weights` / `normalized_cov_params`, R's `weights` / `summary.glm`), no convergence check
of the reweighted fit: all as in `farrington_model._quasi_poisson` and `_fit_glm`. The numbers then
differ from the reference's by rounding only — and the reference's are the less accurate
ones: against a 50-digit replay the batch engine is within ~1e-13, statsmodels' solve within
~1e-9 (up to ~1e-7 near a boundary). Weeks whose outcome rounding could decide are flagged
and recomputed by the reference path, so they match it by construction: degenerate fits
(non-finite values, a rank-deficient design, a hat value of 1 — a level with a single row,
where the Anscombe residual is 0/0 —, no residual degrees of freedom, a negative or
infinite count), fits in which statsmodels' clipping of mu at machine epsilon would change
an iterate, and near-ties of any decision: the IRLS stopping step, the Anscombe cut, the
trend rule, NegBin vs Poisson, the discrete quantile, a count on a continuous limit.
`BatchStats.fallback` counts these weeks: 11 of 52,000 in `scripts/bench_detect.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy import special

from monitor.detectors import farrington_model as F
from monitor.detectors._common import check_positions
from monitor.detectors._dist import norm_ppf, norm_sf, t_sf
from monitor.detectors.farrington_model import COLUMNS, FarringtonParams, min_history

#: Fits per chunk: bounds the (fits × rows) work arrays (about 30 of them, 8 bytes per cell: some
#: 60 MB at 1,024 fits of 240 rows). Larger chunks save Python overhead but
#: leave the caches (measured: 1,024 is fastest on a shared two-core machine).
DEFAULT_CHUNK = 1024

_EPOCH = date(1970, 1, 1)
# Guards of the degenerate-fit test (see _irls): a level weight this small relative to
# the total is where LAPACK's lstsq (rcond = machine epsilon) would start dropping the
# column; S this small relative to Σ w·t² means the trend is (nearly) collinear with the
# levels; a hat value this close to 1 is a row that determines its own fit.
_TINY_LEVEL_WEIGHT = 1e-20
_TINY_SCHUR = 1e-12
_HAT_ONE = 1e-10
# statsmodels' log link clips mu at machine epsilon in its derivative: a row with
# mu < eps gets IRLS weight eps²/mu and working residual (y − mu)/eps instead of mu and
# (y − mu)/mu (R clips mu itself at eps: a third behaviour). Fits that bring any fitted
# mean near eps (a steep trend on a sparse series) go to the reference path; the margin
# (a factor e) keeps rounding from deciding.
_LOG_CLIP = float(np.log(np.finfo(float).eps)) + 1.0
_LOG_HUGE = 700.0  # exp(709.8) overflows
# Near-ties. A decision that rounding could tip (the two engines round differently, and the
# reference's statsmodels solve is itself only good to ~1e-9 relative, ~1e-7 for muan's
# mu0: measured against a 50-digit replay) is left to the reference path when the margin
# is within these bands: relative to the convergence tolerance (where it matters, the two
# engines' deviance changes differ by at most 1.3e-5 of it over ~1,850 simulated fits);
# absolute on p-values; relative on counts, residuals and dispersion; relative noise
# assumed for the reference's mu0 when deciding a quantile.
_TIE_CONVERGENCE = 1e-4
_TIE = 1e-7
_MU0_NOISE = 1e-8


@dataclass
class BatchStats:
    """What one `detect_batch` call did: weeks asked for, weeks fitted, and weeks handed to the reference path."""

    weeks: int = 0
    fitted: int = 0
    fallback: int = 0
    chunks: int = 0


def detect_batch(
    series: Sequence[pd.Series],
    params: FarringtonParams,
    weeks: Sequence[Sequence[int]],
    *,
    chunk: int = DEFAULT_CHUNK,
    info: BatchStats | None = None,
) -> list[pd.DataFrame]:
    """Farrington flexible on the positions `weeks[i]` of each `series[i]`, all fits batched.

    Returns one frame per series, equal to `farrington.detect_statsmodels(series[i], params,
    weeks=weeks[i])` up to floating-point rounding (same columns, dtypes, notes, alarms and
    NA). `chunk` bounds the fits processed together (memory); `info`, if given, is filled in.
    Raises like the reference path on bad arguments (TypeError / ValueError / IndexError).
    """
    res, positions, bounds = _detect(series, params, weeks, chunk=chunk, info=info)
    return res.frames(series, positions, bounds)


def detect_batch_table(
    series: Sequence[pd.Series],
    params: FarringtonParams,
    weeks: Sequence[Sequence[int]],
    *,
    chunk: int = DEFAULT_CHUNK,
    info: BatchStats | None = None,
) -> pd.DataFrame:
    """`detect_batch`'s frames as one frame, series after series: `pd.concat(detect_batch(...), ignore_index=True)`.

    Built in one piece when the series' indexes share a dtype (the usual case): thousands of
    series are then not cut into frames only to be put together again (`monitor detect`).
    """
    res, positions, bounds = _detect(series, params, weeks, chunk=chunk, info=info)
    if len({str(counts.index.dtype) for counts in series}) == 1:
        return res.table(series, range(len(series)), positions, bounds)
    return pd.concat(res.frames(series, positions, bounds), ignore_index=True)


def _detect(
    series: Sequence[pd.Series], params: FarringtonParams, weeks: Sequence[Sequence[int]], *, chunk: int, info: BatchStats | None,
) -> tuple[_Results, list[np.ndarray], np.ndarray]:  # fmt: skip
    """The results of every monitored week (flat), the positions of each series and where its weeks are in them."""
    if len(series) != len(weeks):
        raise ValueError(f"detect_many needs one list of weeks per series (got {len(series)} series and {len(weeks)} lists of weeks)")
    if chunk < 1:
        raise ValueError(f"chunk={chunk} must be at least 1")
    p = params
    positions = [np.asarray(check_positions(counts, w), dtype=np.intp) for counts, w in zip(series, weeks)]
    ys = [counts.to_numpy(dtype=float, na_value=np.nan) for counts in series]  # copies: inputs untouched
    lengths = np.array([len(y) for y in ys], dtype=np.intp)
    y_flat = np.concatenate(ys) if ys else np.zeros(0)
    series_start = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.intp) if ys else np.zeros(0, np.intp)
    n_weeks = np.array([len(pos) for pos in positions], dtype=np.intp)
    week_series = np.repeat(np.arange(len(series), dtype=np.intp), n_weeks)
    week_t = np.concatenate(positions) if positions else np.zeros(0, np.intp)
    week_row = series_start[week_series] + week_t  # position of each monitored week in y_flat
    bounds = np.concatenate(([0], np.cumsum(n_weeks))).astype(np.intp)  # weeks of series i: bounds[i]:bounds[i+1]

    res = _Results.empty(len(week_t))
    res.count[:] = y_flat[week_row]
    res.note[np.isnan(res.count)] = "count is missing"

    # Reference weeks and seasonal blocks depend only on the calendar: one template per date.
    week_day = np.zeros(len(week_t), dtype=np.int64)
    days_of: dict[int, np.ndarray] = {}  # series often share one index object
    for i, counts in enumerate(series):
        if id(counts.index) not in days_of:
            days_of[id(counts.index)] = _day_numbers(counts.index)
        week_day[bounds[i] : bounds[i + 1]] = days_of[id(counts.index)][positions[i]]
    todo = np.flatnonzero(~np.isnan(res.count))
    templates, template_of = _templates(week_day[todo], week_t[todo], p)
    for k, tmpl in enumerate(templates):
        if tmpl.note:
            res.note[todo[template_of == k]] = tmpl.note
    has_rows = np.array([not tm.note for tm in templates], dtype=bool)[template_of] if len(todo) else np.zeros(0, bool)
    todo, template_of = todo[has_rows], template_of[has_rows]

    enough = _enough_cases(y_flat, series_start[week_series], week_t, p.limit54)
    order = np.argsort(template_of, kind="stable")  # fits of one template together: little padding
    todo, template_of = todo[order], template_of[order]
    fallback: list[int] = []
    n_chunks = 0
    with np.errstate(all="ignore"):
        values = _Values.of(y_flat)
        for first in range(0, len(todo), chunk):
            sel = slice(first, first + chunk)
            fallback += _run_chunk(todo[sel], template_of[sel], templates, values, series_start, week_series, week_t, enough, res, p)
            n_chunks += 1
    _run_reference(sorted(fallback), series, ys, week_series, week_t, res, p)
    if info is not None:
        info.weeks, info.fitted, info.fallback, info.chunks = len(week_t), len(todo), len(fallback), n_chunks
    return res, positions, bounds


# results


@dataclass
class _Results:
    """Per monitored week, the columns of the result frame (flat over all series)."""

    count: np.ndarray
    expected: np.ndarray
    upperbound: np.ndarray
    alarm: np.ndarray
    decided: np.ndarray  # False: alarm and trend_used are NA
    score: np.ndarray
    pvalue: np.ndarray
    mu0: np.ndarray
    phi: np.ndarray
    trend_used: np.ndarray
    trend_coef: np.ndarray
    note: np.ndarray  # object array of str

    @classmethod
    def empty(cls, n: int) -> _Results:
        def nan() -> np.ndarray:
            return np.full(n, np.nan)

        return cls(
            count=nan(), expected=nan(), upperbound=nan(), alarm=np.zeros(n, bool), decided=np.zeros(n, bool),
            score=nan(), pvalue=nan(), mu0=nan(), phi=nan(), trend_used=np.zeros(n, bool), trend_coef=nan(),
            note=np.full(n, "", dtype=object),
        )  # fmt: skip

    def frames(self, series: Sequence[pd.Series], positions: list[np.ndarray], bounds: np.ndarray) -> list[pd.DataFrame]:
        """The result frame of each series (its weeks are bounds[i]:bounds[i+1]), dtypes as `detect_statsmodels`'s.

        One frame is built per index dtype (all series, usually) and cut into one frame per
        series: building thousands of small frames column by column costs more than the fits.
        """
        out: list[pd.DataFrame] = [pd.DataFrame()] * len(series)
        groups: dict[str, list[int]] = {}
        for i, counts in enumerate(series):
            groups.setdefault(str(counts.index.dtype), []).append(i)
        for members in groups.values():
            whole = self.table(series, members, positions, bounds)
            first = 0
            for i in members:
                last = first + int(bounds[i + 1] - bounds[i])
                out[i] = whole.iloc[first:last].reset_index(drop=True)
                first = last
        return out

    def table(self, series: Sequence[pd.Series], members: Sequence[int], positions: list[np.ndarray], bounds: np.ndarray) -> pd.DataFrame:
        """One frame of the weeks of the series `members` (whose indexes share a dtype), series after series."""
        take = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in members])
        index = pd.DatetimeIndex(series[members[0]].index)
        stamps = np.concatenate([pd.DatetimeIndex(series[i].index).asi8[positions[i]] for i in members])
        week_start = pd.DatetimeIndex(stamps.view(f"M8[{index.unit}]"))
        if index.tz is not None:
            week_start = week_start.tz_localize("UTC").tz_convert(index.tz)
        undecided = ~self.decided[take]
        data = {
            "week_start": week_start,
            "count": self.count[take],
            "expected": self.expected[take],
            "upperbound": self.upperbound[take],
            "alarm": pd.arrays.BooleanArray(self.alarm[take], undecided),
            "score": self.score[take],
            "pvalue": self.pvalue[take],
            "mu0": self.mu0[take],
            "phi": self.phi[take],
            "trend_used": pd.arrays.BooleanArray(self.trend_used[take], undecided.copy()),
            "trend_coef": self.trend_coef[take],
            "note": pd.array(self.note[take], dtype="str"),
        }
        return pd.DataFrame(data, columns=list(COLUMNS))


def _run_reference(
    weeks: list[int], series: Sequence[pd.Series], ys: list[np.ndarray], week_series: np.ndarray, week_t: np.ndarray,
    res: _Results, p: FarringtonParams,
) -> None:  # fmt: skip
    """Recompute the given weeks with the reference path (`farrington_model.evaluate_week`)."""
    calendars: dict[int, tuple[list[date], dict[date, int]]] = {}
    for k in weeks:
        s = int(week_series[k])
        if s not in calendars:
            days = [ts.date() for ts in pd.DatetimeIndex(series[s].index)]
            calendars[s] = (days, {d: i for i, d in enumerate(days)})
        days, position_of = calendars[s]
        row = F.evaluate_week(ys[s], days, position_of, int(week_t[k]), p)
        for name in ("expected", "upperbound", "score", "pvalue", "mu0", "phi", "trend_coef"):
            getattr(res, name)[k] = row[name]
        res.decided[k] = row["alarm"] is not pd.NA
        res.alarm[k] = bool(row["alarm"]) if res.decided[k] else False
        res.trend_used[k] = bool(row["trend_used"]) if row["trend_used"] is not pd.NA else False
        res.note[k] = row["note"]


# 1. reference weeks: one row template per calendar date


@dataclass(frozen=True)
class _Template:
    """The GLM rows of a monitored week t, relative to t (before missing counts are dropped).

    `offsets` are row positions − t, sorted by (level, position); `level` is the 0-based
    seasonal level (the monitored week's level, no_periods, is the last); `wtime` is R's
    wtime (position − first position used); `starts[g]` is where level g's rows begin and
    `sizes[g]` how many there are. The engine works with t = wtime − `centre`.
    """

    note: str
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    level: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    wtime: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wtime_now: float = math.nan
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    centre: float = 0.0
    tmin: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per level, of wtime − centre (0: no rows)
    tmax: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n(self) -> int:
        return len(self.offsets)


def _day_numbers(index: pd.Index) -> np.ndarray:
    """Calendar day (days since 1970-01-01) of every week of a DatetimeIndex, as `Timestamp.date()` gives it."""
    index = pd.DatetimeIndex(index)
    wall = index.tz_localize(None) if index.tz is not None else index  # local dates, as .date()
    return wall.to_numpy().astype("datetime64[D]").astype(np.int64)


def _templates(day: np.ndarray, t: np.ndarray, p: FarringtonParams) -> tuple[list[_Template], np.ndarray]:
    """Row templates of the weeks (calendar day `day`, position `t`) and the template of each week.

    The reference weeks are found by date, and the series start matters only for weeks close
    to it (where windows are cut or missing): weeks at least `horizon` rows into their
    series share the template of their date.
    """
    horizon = max(min_history(p), p.past_weeks_not_included) + 60
    t_key = np.where(t < horizon, t, -1)
    uniq, inverse = np.unique(day * (horizon + 1) + (t_key + 1), return_inverse=True)
    inverse = np.asarray(inverse, dtype=np.intp).reshape(-1)
    templates = []
    exact: list[int] = []  # keys whose shared template turned out to depend on t after all
    for k, key in enumerate(uniq):
        d, tk = divmod(int(key), horizon + 1)
        tk -= 1
        t0 = _EPOCH + timedelta(days=d)
        tm = _build_template(t0, int(tk) if tk >= 0 else horizon, p)
        if tk < 0 and (tm.note or tm.offsets.min() + horizon < 1):
            exact.append(k)
        templates.append(tm)
    for k in exact:  # build per week (never expected: min_history says the windows fit)
        for i in np.flatnonzero(inverse == k):
            templates.append(_build_template(_EPOCH + timedelta(days=int(day[i])), int(t[i]), p))
            inverse[i] = len(templates) - 1
    return templates, inverse.astype(np.intp)


def _build_template(t0: date, t: int, p: FarringtonParams) -> _Template:
    """The template of week t (date t0) of a series of consecutive weeks: the reference path's own row selection."""
    first = t0 - timedelta(days=7 * t)
    days = [first + timedelta(days=7 * i) for i in range(t + 1)]
    position_of = {d: i for i, d in enumerate(days)}
    try:
        refs = F.reference_weeks(days, position_of, t, p.b)
        blocks = F.seasonal_blocks(t + 1, refs, p.w, p.no_periods, days)
        rows = F.glm_rows(blocks, t, p.past_weeks_not_included)
    except F.TooLittleHistory as exc:
        return _Template(note=str(exc))
    level = blocks[rows].astype(np.intp) - 1  # levels 1..no_periods -> 0..L-1
    wtime = (rows - rows[0]).astype(float)
    order = np.lexsort((rows, level))
    level = level[order]
    sizes = np.bincount(level, minlength=p.no_periods).astype(np.intp)
    centre = float(np.floor(wtime.max() / 2))
    t_rel = wtime - centre
    tmin, tmax = np.zeros(p.no_periods), np.zeros(p.no_periods)
    for g in np.flatnonzero(sizes):
        in_g = t_rel[order][level == g]
        tmin[g], tmax[g] = in_g.min(), in_g.max()
    return _Template(
        note="",
        offsets=(rows[order] - t).astype(np.intp),
        level=level,
        wtime=wtime[order],
        wtime_now=float(t - rows[0]),
        starts=np.searchsorted(level, np.arange(p.no_periods)).astype(np.intp),
        sizes=sizes,
        centre=centre,
        tmin=tmin,
        tmax=tmax,
    )


def _enough_cases(y: np.ndarray, series_start: np.ndarray, t: np.ndarray, limit54: tuple[int, int]) -> np.ndarray:
    """limit54 per week: at least `cases` events in the `weeks` weeks ending with it (NaN -> False, as R's NA)."""
    cases, length = limit54
    back = t[:, None] - np.arange(length - 1, -1, -1)[None, :]  # oldest first, as the reference's slice
    inside = back >= 0
    values = np.where(inside, y[series_start[:, None] + np.where(inside, back, 0)], 0.0)
    return values.sum(axis=1) >= cases


# 2. the fits of one chunk


@dataclass(frozen=True)
class _Values:
    """Every count of every series (flat) and what the fits need of it, computed once per count.

    A missing count is stored as 0 with `missing` set (its rows get prior weight 0); mu0 =
    y + 0.1 is the IRLS start (poisson()$initialize).
    """

    y: np.ndarray
    missing: np.ndarray
    z0: np.ndarray  # working response at the start: log(mu0) + (y − mu0)/mu0
    d0: np.ndarray  # unit deviance at the start: y·log(y/mu0) − (y − mu0)
    ylogy: np.ndarray  # y·log(y) − y: the part of the unit deviance that does not depend on mu
    y23: np.ndarray  # y^(2/3), for the Anscombe residuals
    unusual: np.ndarray  # negative or infinite counts (their fits go to the reference path)
    any_missing: bool
    any_unusual: bool

    @classmethod
    def of(cls, y_flat: np.ndarray) -> _Values:
        missing = np.isnan(y_flat)
        y = np.where(missing, 0.0, y_flat)
        mu0 = y + 0.1
        positive = y > 0
        safe = np.where(positive, y, 1.0)
        unusual = (y < 0) | np.isinf(y)
        return cls(
            y=y, missing=missing, z0=np.log(mu0) + (y - mu0) / mu0,
            # statsmodels' Poisson deviance: y·log(clip(y/mu, eps)) − (y − mu); 0·log(..) = 0 for y = 0
            d0=np.where(positive, y * np.log(safe / mu0), 0.0) - (y - mu0),
            ylogy=np.where(positive, y * np.log(safe), 0.0) - y, y23=y ** (2 / 3), unusual=unusual,
            any_missing=bool(missing.any()), any_unusual=bool(unusual.any()),
        )  # fmt: skip


@dataclass
class _Rows:
    """Row data of C fits (C × n, rows of a fit sorted by level, padding last) and per-fit facts.

    Padding rows form a segment of their own that no sum reads; rows of missing counts
    have `valid` 0, hence prior weight 0. Both carry finite placeholder values.
    """

    y: np.ndarray  # counts
    valid: np.ndarray  # 1.0 where the row is in the fit (in the template, count not missing)
    t: np.ndarray  # wtime − centre (0 on padding)
    lev: np.ndarray  # level of each row (padding: the last level)
    starts: np.ndarray  # (C, L + 1) first row of each level, then of the padding
    nonempty: np.ndarray  # (C, L) the template has rows of this level
    present: np.ndarray  # (C, L) the level has valid rows: a column of R's/statsmodels' design
    nvalid: np.ndarray  # (C,) rows in the fit
    complete: np.ndarray  # (C,) every row of the template has a count (prior weights all 1)
    tmin: np.ndarray  # (C, L) smallest t of the level's valid rows (the clip test)
    tmax: np.ndarray  # (C, L) largest
    t0: np.ndarray  # (C,) t of the monitored week
    ymax: np.ndarray  # (C,) largest count in the fit
    mu0: np.ndarray  # y + 0.1, the IRLS start
    z0: np.ndarray  # z0, d0, ylogy, y23: the `_Values` of each row
    d0: np.ndarray
    ylogy: np.ndarray
    y23: np.ndarray
    _codes: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(fits, rows, levels)."""
        return self.y.shape[0], self.y.shape[1], self.nonempty.shape[1]

    def take(self, idx: np.ndarray) -> _Rows:
        """The rows of fits `idx` (self when that is all of them, in order)."""
        if len(idx) == self.y.shape[0] and np.array_equal(idx, np.arange(len(idx))):
            return self
        return _Rows(**{f.name: getattr(self, f.name)[idx] for f in fields(self) if f.name != "_codes"})

    def codes(self) -> np.ndarray:
        """Index of each row's (fit, level) in a raveled (C, L) array, for gathering per-level values."""
        if self._codes is None:
            C, _, L = self.shape
            self._codes = np.arange(C, dtype=np.intp)[:, None] * L + self.lev
        return self._codes

    def fit_sums(self, x: np.ndarray) -> np.ndarray:
        """Per-fit sums of the (C × n) array x over the fit's rows (padding excluded)."""
        return _fit_sums(x, _flat_starts(self.starts, x.shape[1]), self.nonempty)


def _flat_starts(starts: np.ndarray, n: int) -> np.ndarray:
    return (np.arange(starts.shape[0], dtype=np.intp)[:, None] * n + starts).ravel()


def _level_sums(x: np.ndarray, flat_starts: np.ndarray, nonempty: np.ndarray) -> np.ndarray:
    """Sums of x over each (fit, level) segment; a level without rows sums to 0 (reduceat would repeat a value).

    Every sum over a fit's rows goes through here (a fit's total is the sum of its level
    sums): each segment holds exactly the fit's rows of that level, never padding, so a
    fit's numbers do not depend on which other fits share its chunk — `detect_many`
    returns exactly what `detect` returns series by series.
    """
    C, L = nonempty.shape
    out = np.add.reduceat(np.ascontiguousarray(x).ravel(), flat_starts).reshape(C, L + 1)[:, :L]
    return np.where(nonempty, out, 0.0)


def _fit_sums(x: np.ndarray, flat_starts: np.ndarray, nonempty: np.ndarray) -> np.ndarray:
    """Sum of x over each fit's rows (padding excluded): see `_level_sums`."""
    return _level_sums(x, flat_starts, nonempty).sum(axis=1)


def _run_chunk(
    weeks: np.ndarray, template_of: np.ndarray, templates: list[_Template], values: _Values, series_start: np.ndarray,
    week_series: np.ndarray, week_t: np.ndarray, enough: np.ndarray, res: _Results, p: FarringtonParams,
) -> list[int]:  # fmt: skip
    """Fit the weeks of one chunk and write their results; returns the weeks to hand to the reference path."""
    rows, input_bad, empty = _chunk_rows(weeks, template_of, templates, values, series_start[week_series[weeks]], week_t[weeks], p)
    # _glm_data: every row missing -> "too little history" (checked after the template's rows)
    res.note[weeks[empty]] = "too little history: every reference week is missing"
    keep = np.flatnonzero(~empty)
    weeks, rows, input_bad = weeks[keep], rows.take(keep), input_bad[keep]
    if len(weeks) == 0:
        return []
    model = _final_model(rows, p)
    y = res.count[weeks]
    lim = _threshold(model, y, p)
    bad = input_bad | model.bad | lim.bad
    _write(res, weeks, model, lim, y, enough[weeks], p)
    return weeks[bad].tolist()


def _chunk_rows(
    weeks: np.ndarray, template_of: np.ndarray, templates: list[_Template], values: _Values, start: np.ndarray,
    t: np.ndarray, p: FarringtonParams,
) -> tuple[_Rows, np.ndarray, np.ndarray]:  # fmt: skip
    """Gather the rows of the chunk's fits from their templates (_glm_data, vectorised).

    Returns the rows, fits with an input the engine does not handle (a negative or infinite
    count, no row at the monitored week's level) and fits without a single valid row.
    """
    L = p.no_periods
    uniq, inv = np.unique(template_of, return_inverse=True)
    n = max(templates[k].n for k in uniq) + 1  # at least one padding row: its segment is never empty
    U = len(uniq)
    offsets = np.zeros((U, n), np.intp)
    level = np.full((U, n), L - 1, np.intp)
    t_rel = np.zeros((U, n))
    wtime = np.full((U, n), np.inf)
    size = np.zeros(U, np.intp)
    starts = np.zeros((U, L), np.intp)
    nonempty = np.zeros((U, L), bool)
    tmin, tmax = np.zeros((U, L)), np.zeros((U, L))
    wtime_now = np.zeros(U)
    centre = np.zeros(U)
    for j, k in enumerate(uniq):
        tm = templates[k]
        m = size[j] = tm.n
        offsets[j, :m], level[j, :m], t_rel[j, :m], wtime[j, :m] = tm.offsets, tm.level, tm.wtime - tm.centre, tm.wtime
        starts[j], nonempty[j], tmin[j], tmax[j] = tm.starts, tm.sizes > 0, tm.tmin, tm.tmax
        wtime_now[j], centre[j] = tm.wtime_now, tm.centre
    at = offsets[inv] + (start + t)[:, None]  # padding points at t itself: a finite count
    valid = np.arange(n)[None, :] < size[inv][:, None]
    starts = np.concatenate([starts, size[:, None]], axis=1)[inv]  # the padding is a segment of its own
    nonempty, tmin, tmax = nonempty[inv], tmin[inv], tmax[inv]
    t_fit = t_rel[inv]
    first_valid = np.zeros(len(inv))
    missing = values.missing[at] & valid if values.any_missing else None
    if missing is not None and missing.any():
        valid &= ~missing
        flat = _flat_starts(starts, n)
        present = _level_sums(valid.astype(float), flat, nonempty) > 0
        tmin = np.minimum.reduceat(np.where(valid, t_fit, np.inf).ravel(), flat).reshape(starts.shape)[:, :L]
        tmax = np.maximum.reduceat(np.where(valid, t_fit, -np.inf).ravel(), flat).reshape(starts.shape)[:, :L]
        tmin, tmax = np.where(present, tmin, 0.0), np.where(present, tmax, 0.0)
        # _glm_data: wtime counts from the first row used, missing or not, but the monitored
        # week's wtime from the first row with a count (R: the dropped NA rows shift the
        # prediction's wtime; kept as the reference has it).
        first_valid = np.where(valid, wtime[inv], np.inf).min(axis=1)
    else:
        present = nonempty.copy()
    y = values.y[at]
    input_bad = values.unusual[at].any(axis=1, where=valid) if values.any_unusual else np.zeros(len(inv), bool)
    input_bad |= ~present[:, L - 1]  # the prediction's level is not in the design
    validf = valid.astype(float)
    nvalid = validf.sum(axis=1)
    rows = _Rows(
        y=y, valid=validf, t=t_fit, lev=level[inv], starts=starts, nonempty=nonempty, present=present,
        nvalid=nvalid, complete=nvalid == size[inv], tmin=tmin, tmax=tmax, t0=wtime_now[inv] - first_valid - centre[inv],
        ymax=np.max(y, axis=1, where=valid, initial=-np.inf),
        mu0=y + 0.1, z0=values.z0[at], d0=values.d0[at], ylogy=values.ylogy[at], y23=values.y23[at],
    )  # fmt: skip
    return rows, input_bad, rows.nvalid == 0


# 3. IRLS


@dataclass
class _Irls:
    """Per fit: the IRLS result in cell-means form, as `farrington_model._QuasiPoissonFit` holds it.

    `a`/`beta` are the final coefficients, `a_prev`/`beta_prev` those the last step started
    from (their mu are the IRLS weights; `first`: the last step started at y + 0.1), `W`,
    `tbar`, `inv_s` = 1/S the pieces of (X'WX)⁻¹ of the last step (inv_s = 0 without trend)
    and `s_ratio` = S / Σ w·t² (1 without trend); `suspect` flags fits the reference path
    would not reproduce to rounding (statsmodels' mu clipping changed an iterate, non-finite
    values, a level weight or Schur complement so small the design is numerically singular,
    a deviance change within rounding of the convergence tolerance).
    """

    a: np.ndarray
    beta: np.ndarray
    a_prev: np.ndarray
    beta_prev: np.ndarray
    first: np.ndarray
    W: np.ndarray
    tbar: np.ndarray
    inv_s: np.ndarray
    s_ratio: np.ndarray
    converged: np.ndarray
    steps: np.ndarray  # IRLS steps taken (statsmodels' fit_history["iteration"])
    has_trend: np.ndarray
    suspect: np.ndarray  # the reference would not reproduce this fit to rounding (see _irls)

    @classmethod
    def empty(cls, C: int, L: int) -> _Irls:
        return cls(
            a=np.zeros((C, L)), beta=np.zeros(C), a_prev=np.zeros((C, L)), beta_prev=np.zeros(C), first=np.zeros(C, bool),
            W=np.ones((C, L)), tbar=np.zeros((C, L)), inv_s=np.zeros(C), s_ratio=np.ones(C), converged=np.zeros(C, bool),
            steps=np.zeros(C, np.intp), has_trend=np.zeros(C, bool), suspect=np.zeros(C, bool),
        )  # fmt: skip

    def put(self, idx: np.ndarray, other: _Irls) -> None:
        """Overwrite fits `idx` with `other`'s."""
        for f in fields(self):
            getattr(self, f.name)[idx] = getattr(other, f.name)


def _irls(rows: _Rows, pw: np.ndarray | None, trend: bool | np.ndarray) -> _Irls:
    """glm(y ~ levels [+ wtime], family = quasipoisson, weights = pw) for every fit: `_quasi_poisson` vectorised.

    `pw` are the prior weights (None: 1 on every row of every fit); `trend` (one flag, or one
    per fit) says which fits have the wtime column. Same iterates
    as statsmodels' IRLS in the reference path: start at mu = y + 0.1, deviance D_k after
    step k, stop after step k when |D_(k−1) − D_k| ≤ atol + rtol·|D_k| (D_0 at the start),
    at most `MAXITER` steps; `converged` is False when the last step did not meet the rule
    (R: "glm.fit: algorithm did not converge"). Where statsmodels would raise (NaN/inf),
    its mu clipping would change an iterate or rounding could decide the stopping step, the
    fit is flagged `suspect`.
    """
    C, n, L = rows.shape
    out = _Irls.empty(C, L)
    has_trend = np.broadcast_to(np.asarray(trend, dtype=bool), (C,)).copy()
    out.has_trend[:] = has_trend
    if C == 0:
        return out
    any_trend = bool(has_trend.any())
    y, t, present = rows.y, rows.t, rows.present
    flat = _flat_starts(rows.starts, n)

    def sums(x: np.ndarray) -> np.ndarray:
        return _level_sums(x, flat, rows.nonempty)

    def total(x: np.ndarray) -> np.ndarray:
        return _fit_sums(x, flat, rows.nonempty)

    # Constants of the deviance 2·Σ pw·(y·log y − y − y·eta + mu) and of the steps.
    pwy = y if pw is None else pw * y
    Y = sums(pwy)
    YT = total(pwy * t)
    Dc = total(rows.ylogy if pw is None else pw * rows.ylogy)

    # Step 1 from mu = y + 0.1 (eta = log mu is not in the model space: solve for z itself).
    w = rows.mu0 if pw is None else pw * rows.mu0
    wz = w * rows.z0
    W = sums(w)
    Wd = np.where(present, W, 1.0)
    zbar = sums(wz) / Wd
    beta = np.zeros(C)
    tbar = np.zeros((C, L))
    inv_s, s_ratio = np.zeros(C), np.ones(C)
    if any_trend:
        wt = w * t
        T = sums(wt)
        tbar = T / Wd
        stt = total(wt * t)
        s = stt - (T * tbar).sum(axis=1)  # Schur complement of the trend column
        beta = np.where(has_trend, (total(wz * t) - (T * zbar).sum(axis=1)) / s, 0.0)
        inv_s, s_ratio = np.where(has_trend, 1.0 / s, 0.0), np.where(has_trend, s / stt, 1.0)
    a = np.where(present, zbar - beta[:, None] * tbar, 0.0)
    dev_prev = 2.0 * total(rows.d0 if pw is None else pw * rows.d0)  # unit deviances >= 0: also the scale of its rounding
    da, dbeta = np.zeros((C, L)), np.zeros(C)  # the last step

    # Working set: fits leave it when they stop; arrays are compacted when it shrinks enough.
    work = np.arange(C)
    live = np.ones(C, bool)
    a_prev, beta_prev = np.zeros((C, L)), np.zeros(C)
    pw_w, t_w, starts_w, nonempty_w = pw, t, rows.starts, rows.nonempty
    tmin, tmax = rows.tmin, rows.tmax
    clipped = np.zeros(C, bool)
    tie = np.zeros(C, bool)
    if not any_trend:
        M0 = sums(rows.valid if pw is None else pw)  # Σ pw per level: exp(beta·t) = 1 without trend
    buffer = np.empty((C, n)) if any_trend else None
    for k in range(2, F.MAXITER + 2):
        # Deviance (and the sums of the next step) at the coefficients of step k − 1.
        if buffer is not None:  # Σ_g pw·exp(beta·t); the moments in t are needed only if the fit goes on
            e = buffer[: len(work)]
            np.multiply(beta[:, None], t_w, out=e)
            np.exp(e, out=e)
            if pw_w is not None:
                e *= pw_w
            M0 = _level_sums(e, flat, nonempty_w)
        # eta's extremes in each level are at its first or last valid row: statsmodels' mu
        # clipping below, overflow (mu = inf: statsmodels raises) above
        lo_t, hi_t = beta[:, None] * tmin, beta[:, None] * tmax
        eta_min = np.where(present, a + np.minimum(lo_t, hi_t), np.inf).min(axis=1)
        eta_max = np.where(present, a + np.maximum(lo_t, hi_t), -np.inf).max(axis=1)
        clipped |= ~((eta_min >= _LOG_CLIP) & (eta_max <= _LOG_HUGE))
        A = np.exp(a)
        Wk = A * M0  # Σ_g pw·mu
        aY, bYT, sW = (a * Y).sum(axis=1), beta * YT, Wk.sum(axis=1)
        dev = 2.0 * (Dc - aY - bYT + sW)
        if k == 2:  # from the start, which is not in the model space
            change = np.abs(dev_prev - dev)
            noise = 1e-14 * (2.0 * (np.abs(Dc) + np.abs(aY) + np.abs(bYT) + sW) + dev_prev)
        else:
            # D_(k-2) − D_(k-1) written as the difference it is, 2·(Δa·Y + Δbeta·YT + ΣW_old − ΣW):
            # the large Σ y·log y terms cancel exactly instead of in rounding.
            change = np.abs(2.0 * ((da * Y).sum(axis=1) + dbeta * YT + (W.sum(axis=1) - sW)))
            noise = 1e-14 * (W.sum(axis=1) + sW)
        # statsmodels' np.allclose(dev_old, dev, atol, rtol); a NaN deviance never converges
        tolerance = F.ATOL + F.RTOL * np.abs(dev)
        conv = change <= tolerance
        tie |= np.abs(change - tolerance) <= _TIE_CONVERGENCE * tolerance + noise
        stop = live & (conv | (k == F.MAXITER + 1))
        if stop.any():
            dst = work[stop]
            out.a[dst], out.beta[dst], out.a_prev[dst], out.beta_prev[dst] = a[stop], beta[stop], a_prev[stop], beta_prev[stop]
            out.W[dst], out.tbar[dst], out.inv_s[dst], out.s_ratio[dst] = W[stop], tbar[stop], inv_s[stop], s_ratio[stop]
            out.first[dst], out.converged[dst], out.steps[dst] = k == 2, conv[stop], k - 1
            W_total = np.where(present[stop], W[stop], 0.0).sum(axis=1)
            out.suspect[dst] = (
                clipped[stop]
                | tie[stop]
                | ~np.isfinite(dev[stop])
                | ~np.isfinite(beta[stop])
                | (present[stop] & ~(np.isfinite(a[stop]) & (W[stop] > _TINY_LEVEL_WEIGHT * W_total[:, None]))).any(axis=1)
                | (has_trend[stop] & ~(s_ratio[stop] > _TINY_SCHUR))
            )
            live &= ~stop
        n_live = int(live.sum())
        if n_live == 0:
            break
        if n_live < 0.75 * len(live):
            keep = np.flatnonzero(live)
            work, live, has_trend = work[keep], live[keep], has_trend[keep]
            t_w, starts_w, nonempty_w, present = t_w[keep], starts_w[keep], nonempty_w[keep], present[keep]
            pw_w = None if pw_w is None else pw_w[keep]
            tmin, tmax, clipped, tie = tmin[keep], tmax[keep], clipped[keep], tie[keep]
            Y, YT, Dc, a, beta, a_prev, beta_prev = Y[keep], YT[keep], Dc[keep], a[keep], beta[keep], a_prev[keep], beta_prev[keep]
            A, M0, Wk, dev, da, dbeta = A[keep], M0[keep], Wk[keep], dev[keep], da[keep], dbeta[keep]
            W, tbar, inv_s, s_ratio = W[keep], tbar[keep], inv_s[keep], s_ratio[keep]
            if buffer is not None:
                buffer[: len(keep)] = e[keep]
                e = buffer[: len(keep)]
            flat = _flat_starts(starts_w, n)
        # Step k in delta form: coef += (X'WX)⁻¹ X'W r, W = pw·mu, r = (y − mu)/mu.
        R = Y - Wk  # Σ_g w·r = Σ_g pw·(y − mu)
        Wd = np.where(present, Wk, 1.0)
        if buffer is not None:
            e *= t_w
            M1 = _level_sums(e, flat, nonempty_w)
            e *= t_w
            M2 = _level_sums(e, flat, nonempty_w)
            T = A * M1
            tbar = T / Wd
            stt = (A * M2).sum(axis=1)
            s = stt - (T * tbar).sum(axis=1)
            dbeta = np.where(has_trend, ((YT - T.sum(axis=1)) - (tbar * R).sum(axis=1)) / s, 0.0)
            da = np.where(present, (R - dbeta[:, None] * T) / Wd, 0.0)
            inv_s, s_ratio = np.where(has_trend, 1.0 / s, 0.0), np.where(has_trend, s / stt, 1.0)
        else:
            da = np.where(present, R / Wd, 0.0)
        beta_prev, beta = beta, beta + dbeta
        W = Wk
        a_prev, a = a, a + da
        dev_prev = dev
    return out


@dataclass
class _Finished:
    """Row-level results of an IRLS fit: mu, IRLS weights, hat values, dispersion and the degenerate flag."""

    mu: np.ndarray
    resid2: np.ndarray  # ((y − mu)/mu)²
    q: np.ndarray | None  # mu^(1/6), for the Anscombe residuals (with the hat values)
    hat: np.ndarray | None
    dispersion: np.ndarray  # summary.glm's dispersion (not floored); NaN without residual df
    df: np.ndarray
    bad: np.ndarray


def _finish(rows: _Rows, pw: np.ndarray | None, fit: _Irls, with_hat: bool) -> _Finished:
    """mu, dispersion sum(w·((y − mu)/mu)²)/df (w = IRLS weights of the last step) and hat values of each fit.

    Also flags the fits the reference path would not reproduce to rounding (see module docstring).
    """
    codes = rows.codes()
    # mu of the final iterate, and (statsmodels' model.weights = var_weights · mu) of the one
    # the last step started from; without trend mu is constant within a level.
    q = None
    if fit.has_trend.any():
        eta = np.take(fit.a, codes) + fit.beta[:, None] * rows.t
        mu = np.exp(eta)
        mu_prev = np.exp(np.take(fit.a_prev, codes) + fit.beta_prev[:, None] * rows.t)
        if with_hat:
            q = np.exp(eta / 6)
    else:
        mu = np.take(np.exp(fit.a), codes)
        mu_prev = np.take(np.exp(fit.a_prev), codes)
        if with_hat:
            q = np.take(np.exp(fit.a / 6), codes)
    if fit.first.any():
        mu_prev[fit.first] = rows.mu0[fit.first]
    w = mu_prev if pw is None else pw * mu_prev
    resid = (rows.y - mu) / mu
    resid *= resid
    df = rows.nvalid - (rows.present.sum(axis=1) + fit.has_trend)
    dispersion = np.where(df > 0, rows.fit_sums(w * resid) / np.where(df > 0, df, 1.0), np.nan)
    # (mu is finite and positive on every valid row: _irls checked eta's range)
    bad = fit.suspect | (df <= 0) | ~np.isfinite(dispersion)
    hat = None
    if with_hat:
        inv_w = 1.0 / np.where(rows.present, fit.W, 1.0)
        dt = rows.t - np.take(fit.tbar, codes)
        dt *= dt
        dt *= fit.inv_s[:, None]
        dt += np.take(inv_w, codes)
        hat = w * dt
        bad |= ~(np.max(hat, axis=1, where=rows.valid > 0, initial=0.0) < 1.0 - _HAT_ONE)
    return _Finished(mu=mu, resid2=resid, q=q, hat=hat, dispersion=dispersion, df=df, bad=bad)


# 4. the model of each week: fit, reweight, trend rule


@dataclass
class _Model:
    """Per fit, what `farrington_model._FinalFit` holds (`ok` False: the reference returns None)."""

    ok: np.ndarray
    has_trend: np.ndarray
    phi: np.ndarray  # max(dispersion, 1)
    dispersion: np.ndarray  # of the final fit, un-floored
    se_dispersion: np.ndarray  # dispersion of summary.glm()/predict.glm() (un-floored)
    eta0: np.ndarray
    var0: np.ndarray  # x0'(X'WX)⁻¹x0
    beta: np.ndarray
    inv_s: np.ndarray  # (X'WX)⁻¹ of the trend coefficient
    df: np.ndarray
    bad: np.ndarray
    do_trend: np.ndarray
    trend_coef: np.ndarray

    def put(self, idx: np.ndarray, other: _Model) -> None:
        """Overwrite fits `idx` with `other`'s."""
        for f in fields(self):
            getattr(self, f.name)[idx] = getattr(other, f.name)


def _floor1(dispersion: np.ndarray) -> np.ndarray:
    """max(dispersion, 1.0) as Python evaluates it (a NaN dispersion stays NaN)."""
    return np.where(1.0 > dispersion, 1.0, dispersion)


def _fit_glm(rows: _Rows, p: FarringtonParams, trend: bool) -> _Model:
    """algo.farrington.fitGLM.flexible for every fit: `farrington_model._fit_glm` vectorised.

    Fit; where the fit with trend did not converge, fit without; give up where that did not
    converge either (ok False); then reweight once (Farrington 1996, section 3.3).
    """
    C, _, L = rows.shape
    pw = None if rows.complete.all() else rows.valid  # prior weights 1 (0 on missing counts)
    fit = _irls(rows, pw, trend)
    first_suspect = fit.suspect.copy()  # the reference runs this fit even where it is replaced
    if trend and not fit.converged.all():
        redo = np.flatnonzero(~fit.converged)
        fit.put(redo, _irls(rows.take(redo), None if pw is None else pw[redo], False))
    ok = fit.converged.copy()
    fin = _finish(rows, pw, fit, with_hat=p.reweight)
    bad, dispersion = fin.bad | first_suspect, fin.dispersion
    se_dispersion = dispersion.copy()
    if p.reweight:
        # Standardised Anscombe residuals (anscombe.residuals), phi floored at 1, then
        # algo.farrington.assign.weights: s⁻² above the threshold, 1 otherwise, scaled to sum to n.
        phi = _floor1(dispersion)
        assert fin.hat is not None and fin.q is not None
        # 3/2·(y^(2/3)·mu^(−1/6) − mu^(1/2)) / sqrt(phi·(1 − h)), with q = mu^(1/6)
        q = fin.q
        s = rows.y23 / q
        q *= q * q
        s -= q
        s *= 1.5
        den = 1 - fin.hat
        den *= phi[:, None]
        np.sqrt(den, out=den)
        s /= den
        raw = np.where(s > p.weights_threshold, 1.0 / (s * s), 1.0) * rows.valid
        bad |= ((rows.valid > 0) & (np.abs(s - p.weights_threshold) <= _TIE * p.weights_threshold)).any(axis=1)
        omega = raw * (rows.nvalid / rows.fit_sums(raw))[:, None]
        idx = np.flatnonzero(ok)
        sub, omega = rows.take(idx), omega[idx]
        # R does not check convergence of the reweighted fit either.
        refit = _irls(sub, omega, fit.has_trend[idx])
        fin2 = _finish(sub, omega, refit, with_hat=False)
        fit.put(idx, refit)
        bad[idx] |= fin2.bad
        dispersion[idx] = fin2.dispersion
        # fitGLM.flexible sets model$weights <- omega, so summary.glm()/predict.glm() use
        # sum(omega·((y − mu)/mu)²) / df_resid, not the Pearson dispersion behind phi.
        se_dispersion[idx] = np.where(fin2.df > 0, sub.fit_sums(omega * fin2.resid2) / np.where(fin2.df > 0, fin2.df, 1.0), np.nan)
    last = L - 1  # the monitored week's level (no_periods)
    return _Model(
        ok=ok, has_trend=fit.has_trend.copy(), phi=_floor1(dispersion), dispersion=dispersion, se_dispersion=se_dispersion,
        eta0=fit.a[:, last] + fit.beta * rows.t0,
        var0=1.0 / np.where(rows.present[:, last], fit.W[:, last], 1.0) + (rows.t0 - fit.tbar[:, last]) ** 2 * fit.inv_s,
        beta=fit.beta.copy(), inv_s=fit.inv_s.copy(), df=fin.df.astype(float), bad=bad,
        do_trend=np.zeros(C, bool), trend_coef=np.full(C, np.nan),
    )  # fmt: skip


def _final_model(rows: _Rows, p: FarringtonParams) -> _Model:
    """algo.farrington.glm for every fit: keep the trend only if significant, b >= 3 and not extrapolating.

    Otherwise the whole fit (reweighting included) is redone without trend.
    """
    model = _fit_glm(rows, p, p.trend)
    if not p.trend:
        return model
    candidate = model.ok & model.has_trend
    # summary.glm's two-sided t test of wtime (quasi family)
    t_value = model.beta / np.sqrt(model.inv_s * model.se_dispersion)
    df = np.where(model.df > 0, model.df, 1.0)
    pvalue = np.where(model.df > 0, 2 * t_sf(np.abs(t_value), df), np.nan)
    significant = pvalue < p.p_threshold_trend
    prediction = np.exp(model.eta0)
    no_extrapolation = prediction <= rows.ymax
    keep = candidate & significant & (p.b >= 3) & no_extrapolation
    # e.g. p_threshold_trend = 1 with an exactly flat trend (p = 1 up to rounding), or a
    # prediction equal to the largest count (a constant series)
    tie = (np.abs(pvalue - p.p_threshold_trend) <= _TIE) | (np.abs(prediction - rows.ymax) <= _TIE * rows.ymax)
    model.bad |= candidate & (p.b >= 3) & tie
    redo = np.flatnonzero(candidate & ~keep)
    if len(redo):
        again = _fit_glm(rows.take(redo), p, False)
        again.bad |= model.bad[redo]
        model.put(redo, again)
    model.do_trend = keep
    model.trend_coef = np.where(keep, model.beta, np.nan)
    return model


# 5. thresholds


@dataclass
class _Limits:
    """Per fit, `farrington_model._Limit`, plus weeks the engine hands to the reference path."""

    mean: np.ndarray
    upper: np.ndarray
    pvalue: np.ndarray
    mu0: np.ndarray
    r_fit: np.ndarray
    bad: np.ndarray


def _threshold(model: _Model, y: np.ndarray, p: FarringtonParams) -> _Limits:
    """`farrington_model._threshold` vectorised (only fits with model.ok are meaningful).

    Also flags near-ties: a count within rounding of a continuous (delta) limit, a
    dispersion within rounding of 1 (NegBin or Poisson), a quantile decided by a cdf
    within the reference's noise of 1 − alpha, and the printed mu0 of an undefined limit.
    """
    eta0 = model.eta0
    se_eta0 = np.sqrt(model.var0 * model.se_dispersion)  # predict.glm(se.fit = TRUE), link scale
    if p.threshold_method == "delta":
        lim = _threshold_delta(np.exp(eta0), se_eta0 * np.exp(eta0), model.phi, y, p)
        lim.bad |= np.abs(y - lim.upper) <= _TIE * np.abs(lim.upper)
    else:
        # relative noise of the reference's mu0: its solve (~1e-9), amplified by z·se for muan
        z_se = norm_ppf(1 - p.alpha) * se_eta0 if p.threshold_method == "muan" else 0.0
        lim = _threshold_noufaily(eta0, se_eta0, model.phi, y, p, noise=_MU0_NOISE * (1 + np.abs(z_se)))
        lim.bad |= np.abs(model.dispersion - 1) <= _TIE
    lim.bad |= np.isnan(lim.upper) & np.isfinite(lim.mu0)  # "upper limit undefined (mu0 = %g)"
    return lim


def _threshold_delta(mu0: np.ndarray, se_mu0: np.ndarray, phi: np.ndarray, y: np.ndarray, p: FarringtonParams) -> _Limits:
    """algo.farrington.threshold.farrington (Farrington 1996, eq. 4): `farrington_model._threshold_delta` vectorised."""
    tau = phi + se_mu0**2 / mu0  # IEEE arithmetic as in R: mu0 = 0 gives NaN
    if p.powertrans == "none":
        exponent, sd = 1.0, np.sqrt(mu0 * tau)
    elif p.powertrans == "1/2":
        exponent, sd = 0.5, np.sqrt(0.25 * tau)
    else:
        exponent, sd = 2 / 3, np.sqrt(4 / 9 * mu0 ** (1 / 3) * tau)
    z = norm_ppf(1 - p.alpha)
    # R: sort((mu0^e + c(-1, 1)·z·sd)^(1/e))[2]: the larger bound that is not NaN (numpy's
    # power gives NaN for a negative base with a fractional exponent, as R's `^`).
    lower = np.power(mu0**exponent + -1 * z * sd, 1 / exponent)
    upper = np.fmax(lower, np.power(mu0**exponent + 1 * z * sd, 1 / exponent))
    pvalue = norm_sf(y**exponent, loc=mu0**exponent, scale=sd)
    return _Limits(mean=mu0, upper=upper, pvalue=np.asarray(pvalue, float), mu0=mu0, r_fit=mu0, bad=np.zeros(len(mu0), bool))


def _threshold_noufaily(
    eta0: np.ndarray, se_eta0: np.ndarray, phi: np.ndarray, y: np.ndarray, p: FarringtonParams, noise: np.ndarray | float = 0.0
) -> _Limits:
    """algo.farrington.threshold.noufaily (Noufaily 2013, section 3.3): `farrington_model._threshold_noufaily` vectorised.

    `noise` is the relative error to allow for in mu0 when flagging quantiles decided by a near-tie.
    """
    mean = np.exp(eta0)
    if p.threshold_method == "nbPlugin":
        mu0 = mean
    else:  # muan: qnorm(1 - alpha, eta0, se) written out, so that se = 0 works as in R
        mu0 = np.exp(eta0 + norm_ppf(1 - p.alpha) * se_eta0)
    upper = np.full(len(mu0), np.nan)
    pvalue = np.full(len(mu0), np.nan)
    bad = np.zeros(len(mu0), bool)
    finite = ~np.isinf(mu0)
    noise = np.broadcast_to(noise, mu0.shape)
    for dist in (_NegBin.of(mu0, phi, finite & (phi > 1)), _Poisson.of(mu0, finite & ~(phi > 1))):
        if len(dist.idx):
            upper[dist.idx], bad[dist.idx] = _discrete_quantile(dist, 1 - p.alpha, noise[dist.idx])
            pvalue[dist.idx] = dist.p_at_least(y[dist.idx])
    return _Limits(mean=mean, upper=upper, pvalue=pvalue, mu0=mu0, r_fit=eta0, bad=bad)


@dataclass(frozen=True)
class _NegBin:
    """NegBin(mean mu, variance phi·mu) of fits `idx`: `farrington_model._NegBin` (R's size = mu/(phi − 1), prob = 1/phi)."""

    idx: np.ndarray
    mu: np.ndarray
    phi: np.ndarray

    @classmethod
    def of(cls, mu: np.ndarray, phi: np.ndarray, mask: np.ndarray) -> _NegBin:
        idx = np.flatnonzero(mask)
        return cls(idx, mu[idx], phi[idx])

    @property
    def size(self) -> np.ndarray:
        return self.mu / (self.phi - 1)

    def cdf(self, k: np.ndarray, at: np.ndarray) -> np.ndarray:
        """P(Y <= k) of members `at` (R pnbinom: pbeta(prob, size, k + 1); 0 below 0)."""
        out = np.zeros(len(at))
        ok = k >= 0
        out[ok] = special.betainc(self.size[at][ok], k[ok] + 1, 1 / self.phi[at][ok])
        return out

    def p_at_least(self, y: np.ndarray) -> np.ndarray:
        return np.where(y > 0, special.betaincc(self.size, y, 1 / self.phi), 1.0)

    def moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        prob = 1 / self.phi
        return self.mu, np.sqrt(self.mu * self.phi), (2 - prob) / np.sqrt(self.size * (1 - prob))


@dataclass(frozen=True)
class _Poisson:
    """Poisson(mu) of fits `idx`: `farrington_model._Poisson`."""

    idx: np.ndarray
    mu: np.ndarray

    @classmethod
    def of(cls, mu: np.ndarray, mask: np.ndarray) -> _Poisson:
        idx = np.flatnonzero(mask)
        return cls(idx, mu[idx])

    def cdf(self, k: np.ndarray, at: np.ndarray) -> np.ndarray:
        out = np.zeros(len(at))
        ok = k >= 0
        out[ok] = special.gammaincc(k[ok] + 1, self.mu[at][ok])
        return out

    def p_at_least(self, y: np.ndarray) -> np.ndarray:
        return np.where(y > 0, special.gammainc(y, self.mu), 1.0)

    def moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sd = np.sqrt(self.mu)
        return self.mu, sd, np.where(sd > 0, 1 / sd, np.inf)


def _discrete_quantile(dist: _NegBin | _Poisson, prob: float, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest integer q >= 0 with P(Y <= q) >= prob for every member: `farrington_model._discrete_quantile` vectorised.

    The same search, step for step (Cornish-Fisher start, doubling steps to bracket,
    bisection), so the same cdf evaluations decide. Returns the quantiles and a flag for
    members whose start is not finite (the reference's math.floor would raise there) or
    whose answer a relative change `noise` in the mean could move: the cdf at q or q − 1
    within noise·mean·P(Y = q) of prob (a shift of the mean moves the cdf by about the pmf).
    """
    mean, sd, skew = dist.moments()
    m = len(mean)
    out = np.where(mean == 0, 0.0, np.nan)
    z = norm_ppf(prob)
    go = np.isfinite(mean) & (mean > 0)
    guess = np.where(np.isfinite(skew), np.maximum(0.0, np.floor(mean + sd * (z + skew * (z * z - 1) / 6) + 0.5)), 0.0)
    bad = go & ~np.isfinite(guess)
    go &= ~bad
    c = np.full(m, np.nan)
    at = np.flatnonzero(go)
    c[at] = dist.cdf(guess[at], at)
    c_hi = np.where(c >= prob, c, np.nan)  # cdf at the final hi and lo (lo = -1: 0), for the tie test
    c_lo = np.where(c >= prob, np.nan, c)
    # where the cdf is not computable or integers are no longer exact, the approximation is the answer
    direct = go & (np.isnan(c) | (guess > 2.0**53))
    out[direct] = guess[direct]
    search = go & ~direct
    down = search & (c >= prob)
    lo = np.where(down, guess - 1, guess)
    hi = np.where(down, guess, guess + 1)
    step = np.ones(m)
    at = np.flatnonzero(down)
    while len(at):  # while lo >= 0 and cdf(lo) >= prob: hi, lo, step = lo, max(lo − 2·step, −1), 2·step
        at = at[lo[at] >= 0]
        cl = dist.cdf(lo[at], at)
        c_lo[at] = cl
        higher = cl >= prob
        at = at[higher]
        c_hi[at] = cl[higher]
        hi[at], lo[at], step[at] = lo[at], np.maximum(lo[at] - 2 * step[at], -1.0), 2 * step[at]
    overflow = np.zeros(m, bool)
    at = np.flatnonzero(search & ~down)
    while len(at):  # while cdf(hi) < prob: (NaN if step > 2^53) lo, hi, step = hi, hi + 2·step, 2·step
        ch = dist.cdf(hi[at], at)
        c_hi[at] = ch
        lower = ch < prob
        at = at[lower]
        c_lo[at] = ch[lower]
        over = step[at] > 2.0**53
        overflow[at[over]] = True
        at = at[~over]
        lo[at], hi[at], step[at] = hi[at], hi[at] + 2 * step[at], 2 * step[at]
    at = np.flatnonzero(search & ~overflow)
    while len(at):  # bisection: while hi − lo > 1
        at = at[hi[at] - lo[at] > 1]
        mid = np.floor((lo[at] + hi[at]) / 2)
        cm = dist.cdf(mid, at)
        upper_half = cm >= prob
        hi[at[upper_half]], c_hi[at[upper_half]] = mid[upper_half], cm[upper_half]
        lo[at[~upper_half]], c_lo[at[~upper_half]] = mid[~upper_half], cm[~upper_half]
    out[search] = hi[search]
    out[overflow] = np.nan
    c_lo = np.where(lo < 0, 0.0, c_lo)
    band = noise * mean * (c_hi - c_lo) + 1e-12
    bad |= search & ~overflow & ~((c_hi - prob > band) & (prob - c_lo > band))
    return out, bad


# 6. the result of each week


def _write(res: _Results, weeks: np.ndarray, model: _Model, lim: _Limits, y: np.ndarray, enough: np.ndarray, p: FarringtonParams) -> None:
    """`farrington_model.evaluate_week`'s last part for the chunk's weeks: bounds, alarm, score and notes."""
    failed = weeks[~model.ok]
    # farringtonFlexible: no convergence with nor without trend -> everything NA
    res.note[failed] = "model failed: the GLM did not converge with or without trend"
    ok = model.ok
    weeks, y, enough = weeks[ok], y[ok], enough[ok]
    mean, upper, r_fit = lim.mean[ok], lim.upper[ok], lim.r_fit[ok]
    res.upperbound[weeks] = np.where(enough, upper, np.nan)
    res.expected[weeks] = np.where(enough & ~np.isnan(upper), mean, np.nan)
    # farringtonFlexible's alarm: !is.na(X) && X > 1 && y != 0, X = (y − fit)/(U − fit) with
    # `fit` on the scale R predicted on (link scale for nbPlugin/muan).
    r_score = (y - r_fit) / (upper - r_fit)
    res.alarm[weeks] = enough & ~np.isnan(r_score) & (r_score > 1) & (y != 0)
    res.decided[weeks] = True
    res.score[weeks] = _exceedance_score(y, mean, upper)
    res.pvalue[weeks] = lim.pvalue[ok]
    res.mu0[weeks] = lim.mu0[ok]
    res.phi[weeks] = model.phi[ok]
    res.trend_used[weeks] = model.do_trend[ok]
    res.trend_coef[weeks] = model.trend_coef[ok]
    cases, length = p.limit54
    res.note[weeks[~enough]] = f"fewer than {cases} cases in the last {length} weeks (limit54)"
    for k, mu0 in zip(weeks[enough & np.isnan(upper)], lim.mu0[ok][enough & np.isnan(upper)]):
        res.note[k] = f"upper limit undefined (mu0 = {float(mu0):g})"


def _exceedance_score(y: np.ndarray, mean: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """`farrington_model._exceedance_score` vectorised: (y − mean)/(U − mean), +inf/0 when U is not above the mean."""
    ratio = (y - mean) / (upper - mean)
    undefined = np.isnan(upper) | np.isnan(mean)
    return np.where(upper > mean, ratio, np.where(undefined, np.nan, np.where(y > upper, np.inf, 0.0)))


