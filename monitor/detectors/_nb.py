"""Negative-binomial tails, thresholds and the CUSUM chart shared by `farrington-cusum` and `nb-recent`.

Conflict counts are overdispersed: a week's count is modelled as a negative binomial with
mean mu and variance phi·mu (phi ≤ 1: Poisson), the same model Farrington's threshold uses.
Everything here is vectorised over weeks and pure (arrays in, arrays out):

* `p_at_least` is the single-week p-value P(Y ≥ y): a real tail probability;
* `threshold` is the largest count that does not alarm at level alpha (never below 0);
* `normal_scores` turns counts into z-scores that are close to N(0, 1) under the model
  whatever the mean, so one CUSUM (k, h) fits sparse and busy series alike;
* `chart` runs the one-sided CUSUM with a partial restart after an alarm (`hold`), so a
  sustained rise stays one continuing alert instead of alarm, quiet, alarm;
* `run_pvalue` is the tail probability of a chart run's total, the evidence a chart alarm
  is ranked on, and `explain_run` says in words which weeks are behind it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from monitor.detectors._dist import norm_isf

#: Clipping of the normal scores: a count of 0 where thousands are expected, or a count far
#: beyond anything the model allows, would otherwise give ±inf.
Z_MIN, Z_MAX = -5.0, 8.0


def _arrays(*values):
    return np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values))


def p_at_least(y, mu, phi) -> np.ndarray:
    """P(Y ≥ y) for Y ~ NegBin(mean mu, variance phi·mu), Poisson where phi ≤ 1; 1 where y ≤ 0.

    The regularised incomplete beta / gamma functions give the tail directly (accurate far
    out, where 1 − cdf would round to 0). NaN where an input is NaN or mu is not positive.
    """
    y, mu, phi = _arrays(y, mu, phi)
    out = np.ones(y.shape)
    with np.errstate(all="ignore"):
        pos = y > 0
        nb = pos & (phi > 1)
        po = pos & ~(phi > 1)
        out[nb] = special.betaincc(mu[nb] / (phi[nb] - 1), y[nb], 1 / phi[nb])
        out[po] = special.gammainc(y[po], mu[po])
    bad = np.isnan(y) | np.isnan(mu) | np.isnan(phi) | ~(mu > 0)
    out[bad] = np.nan
    return out


def upper_tail_mid(y, mu, phi) -> np.ndarray:
    """Mid-p upper tail P(Y > y) + ½·P(Y = y) (what the normal scores are made from)."""
    y, mu, phi = _arrays(y, mu, phi)
    return 0.5 * (p_at_least(y, mu, phi) + p_at_least(y + 1, mu, phi))


def normal_scores(y, mu, phi) -> np.ndarray:
    """z = Φ⁻¹(1 − mid-p upper tail), clipped to [Z_MIN, Z_MAX]; NaN where an input is NaN."""
    z = norm_isf(upper_tail_mid(y, mu, phi))
    return np.where(np.isnan(z), np.nan, np.clip(z, Z_MIN, Z_MAX))


def threshold(mu, phi, alpha: float) -> np.ndarray:
    """The largest count u with P(Y ≥ u) > alpha: a count alarms at level alpha exactly when it is > u.

    Never below 0 (a count of 0 never alarms); NaN where mu or phi is not usable. The quantile
    functions of the negative binomial and the Poisson (scipy's nbdtrik, pdtrik) give a first
    guess; each guess is then checked on the tail itself and moved a count at a time until it
    is the exact answer (a few tail evaluations instead of a bisection's ten or more). Where
    that does not settle quickly, a bisection on the tail decides (`threshold_bisect`).
    """
    mu, phi = _arrays(mu, phi)
    out = np.full(mu.shape, np.nan)
    ok = np.isfinite(mu) & (mu > 0) & np.isfinite(phi)
    if not ok.any():
        return out
    m, f = mu[ok], phi[ok]
    nb = f > 1
    guess = np.empty(m.shape)
    with np.errstate(all="ignore"):
        # smallest y with P(Y >= y) <= alpha, i.e. P(Y <= y - 1) >= 1 - alpha: y - 1 = ceil(continuous quantile)
        guess[nb] = special.nbdtrik(1 - alpha, m[nb] / (f[nb] - 1), 1 / f[nb])
        guess[~nb] = special.pdtrik(1 - alpha, m[~nb])
    hi = np.where(np.isfinite(guess), np.ceil(guess) + 1, 1.0)
    hi = np.maximum(hi, 1.0)  # P(Y >= 0) = 1 > alpha: 0 never alarms
    todo = np.arange(len(m))
    for _ in range(6):
        sub = hi[todo]
        up = p_at_least(sub, m[todo], f[todo]) > alpha  # the guess does not alarm: the answer is higher
        down = np.zeros(len(todo), dtype=bool)
        check = ~up & (sub > 1)
        down[check] = p_at_least(sub[check] - 1, m[todo][check], f[todo][check]) <= alpha  # one lower alarms too
        hi[todo[up]] += 1
        hi[todo[down]] -= 1
        todo = todo[up | down]
        if not len(todo):
            break
    if len(todo):  # far from the guess (or no guess): bisection
        hi[todo] = threshold_bisect(m[todo], f[todo], alpha) + 1
    out[ok] = hi - 1
    return out


def threshold_bisect(mu: np.ndarray, phi: np.ndarray, alpha: float) -> np.ndarray:
    """`threshold` by doubling then bisection on the tail alone (usable mu and phi only): the reference."""
    m, f = np.asarray(mu, dtype=float), np.asarray(phi, dtype=float)
    # smallest y with P(Y >= y) <= alpha, by doubling then bisection (the tail falls as y rises)
    hi = np.ceil(m + 10 * np.sqrt(np.maximum(f, 1) * m) + 10)
    for _ in range(60):
        short = p_at_least(hi, m, f) > alpha
        if not short.any():
            break
        hi[short] *= 2
    lo = np.zeros(hi.shape)  # P(Y >= 0) = 1 > alpha: lo never alarms, hi does
    while True:
        gap = hi - lo > 1
        if not gap.any():
            break
        mid = np.floor((lo + hi) / 2)
        alarms = p_at_least(mid, m, f) <= alpha
        hi = np.where(gap & alarms, mid, hi)
        lo = np.where(gap & ~alarms, mid, lo)
    return hi - 1


def arl0(k: float, h: float) -> float:
    """In-control average run length of a one-sided CUSUM of N(0, 1) scores (Siegmund's approximation)."""
    b = h + 1.166
    if k == 0:
        return b * b
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


def chart(
    z: np.ndarray, single: np.ndarray, decided: np.ndarray, eligible: np.ndarray, *, k: float, h: float, hold: float
) -> dict[str, np.ndarray]:
    """The one-sided CUSUM C(t) = max(0, C(t−1) + z(t) − k) over consecutive weeks, with alarms.

    Parameters:
        z: each week's normal score (NaN: no score, the chart is unchanged).
        single: the single-week test alarmed this week.
        decided: the week can be judged (False: alarm NA, the chart is unchanged).
        eligible: the week may alarm at all (Farrington's limit54, enough events).
        k, h: reference value and decision interval.
        hold: after an alarm the chart restarts at hold·h, not 0, so a rise that goes on
            keeps alarming (one continuing alert) while a week back at the expected level
            (z ≤ k) lets it fall below h; 0 is the classic full restart.

    Returns arrays: `stat` (C after the week, before any restart), `before` (C before the
    week), `chart_alarm` (the chart alone alarmed), `alarm` (single or chart, False where
    not eligible; meaningful only where decided) and `run_start` (for a week whose chart is
    above 0: the index of the first week of the run that built it up).
    """
    n = len(z)
    stat, before = np.full(n, np.nan), np.full(n, np.nan)
    chart_alarm, alarm = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    run_start = np.full(n, -1, dtype=int)
    previous, start = 0.0, -1
    for i in range(n):
        before[i] = previous
        if not decided[i]:
            stat[i] = previous
            run_start[i] = start
            continue
        zi = z[i] if np.isfinite(z[i]) else 0.0
        value = max(0.0, previous + zi - k)
        if value > 0 and previous == 0:
            start = i
        elif value == 0:
            start = -1
        stat[i] = value
        run_start[i] = start if value > 0 else -1
        chart_alarm[i] = bool(eligible[i] and value >= h and not single[i])
        alarm[i] = bool(eligible[i] and (single[i] or value >= h))
        previous = min(value, hold * h) if alarm[i] else value
    return {"stat": stat, "before": before, "chart_alarm": chart_alarm, "alarm": alarm, "run_start": run_start}


def run_pvalue(y: np.ndarray, mu: np.ndarray, phi: np.ndarray, start: np.ndarray) -> np.ndarray:
    """P(total ≥ observed total) over each week's chart run (weeks start[i]..i), NaN without a run.

    The run's total is modelled as NegBin(Σ mu, phi·Σ mu) with this week's phi: the evidence
    that the weeks behind a chart alarm, taken together, are above what was expected.
    """
    out = np.full(len(y), np.nan)
    for i in np.flatnonzero(start >= 0):
        s = int(start[i])
        out[i] = float(p_at_least(np.nansum(y[s : i + 1]), np.nansum(mu[s : i + 1]), phi[i]))
    return out


def explain_run(y: np.ndarray, mu: np.ndarray, start: int, i: int) -> str:
    """'3 weeks above expected: 9, 12, 21 against 4' for the chart run start..i."""
    counts = ", ".join(f"{v:g}" for v in y[start : i + 1])
    expected = float(np.nanmean(mu[start : i + 1]))
    weeks = i - start + 1
    return f"{weeks} week{'s' if weeks != 1 else ''} above expected: {counts} against {_round(expected)}"


def _round(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}".rstrip("0").rstrip(".") if x >= 1 else f"{x:.2f}"


def judge(
    y: np.ndarray,
    mu: np.ndarray,
    phi: np.ndarray,
    decided: np.ndarray,
    eligible: np.ndarray,
    *,
    alpha: float,
    k: float,
    h: float,
    hold: float,
) -> dict[str, np.ndarray]:
    """The single-week test at `alpha` and the CUSUM (`chart`) on expected counts `mu`, consecutive weeks.

    Returns arrays: `pvalue` (P(Y ≥ y)), `upperbound` (the single-week threshold: the
    largest count that does not alarm on its own), `z`, `stat`, `single_alarm`,
    `chart_alarm`, `alarm`, `chart_pvalue` (`run_pvalue` of the run behind a chart alarm,
    NaN otherwise) and `why` (a sentence for chart alarms, '' otherwise).
    """
    y, mu, phi = (np.asarray(v, dtype=float) for v in (y, mu, phi))
    return judge_chart(y, mu, phi, single_tests(y, mu, phi, decided, alpha=alpha), eligible, alpha=alpha, k=k, h=h, hold=hold)


def single_tests(y: np.ndarray, mu: np.ndarray, phi: np.ndarray, decided: np.ndarray, *, alpha: float) -> dict[str, np.ndarray]:
    """What `judge` computes for each week on its own (`pvalue`, `upperbound`, `z`, `usable`): it depends
    on the week alone, not on where the chart starts, so a replay computes it once per series."""
    usable = decided & np.isfinite(mu) & (mu > 0) & np.isfinite(phi)
    return {
        "pvalue": np.where(usable, p_at_least(y, mu, phi), np.nan),
        "upperbound": np.where(usable, threshold(mu, phi, alpha), np.nan),
        "z": np.where(usable, normal_scores(y, mu, phi), np.nan),
        "usable": usable,
    }


def judge_chart(
    y: np.ndarray, mu: np.ndarray, phi: np.ndarray, tests: dict[str, np.ndarray], eligible: np.ndarray, *, alpha: float, k: float,
    h: float, hold: float,
) -> dict[str, np.ndarray]:  # fmt: skip
    """`judge` from the weeks' `single_tests` (of these same weeks): the single-week alarms and the chart."""
    usable, pvalue, z = tests["usable"], tests["pvalue"], tests["z"]
    single = usable & eligible & (pvalue <= alpha)
    c = chart(z, single, usable, eligible, k=k, h=h, hold=hold)
    chart_p = run_pvalue(y, mu, phi, np.where(c["chart_alarm"], c["run_start"], -1))
    why = np.array(
        [explain_run(y, mu, int(c["run_start"][i]), i) if c["chart_alarm"][i] else "" for i in range(len(y))], dtype=object
    )
    return {
        "pvalue": pvalue,
        "upperbound": tests["upperbound"],
        "z": z,
        "stat": c["stat"],
        "single_alarm": single,
        "chart_alarm": c["chart_alarm"],
        "alarm": c["alarm"] & usable,
        "usable": usable,
        "chart_pvalue": chart_p,
        "why": why,
    }


def judge_runs(
    y: np.ndarray, mu: np.ndarray, phi: np.ndarray, tests: dict[str, np.ndarray], eligible: np.ndarray,
    runs: Sequence[tuple[int, int, Sequence[int]]], *, alpha: float, k: float, h: float, hold: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """`judge_chart` of each run (start, end, rows) of consecutive weeks of these arrays (positions counted from
    their first), each chart from its own start: the rows `rows` of every run, stacked in order, as (positions,
    arrays). A replay asks for one row at the end of each of many overlapping runs.

    One run is `judge_chart` itself. Many runs (a backtest: one per replayed week, up to
    `detection.STATEFUL_RUN_WEEKS` long) are charted side by side, one numpy step per week of the longest,
    with the same arithmetic as `chart` (the same numbers exactly: tests/test_farrington_cusum.py holds the two
    to each other); a run's chart p-value and sentence are worked out only for the rows asked for.
    """
    def judged(cut: slice) -> dict[str, np.ndarray]:
        return judge_chart(y[cut], mu[cut], phi[cut], {name: values[cut] for name, values in tests.items()}, eligible[cut],
                           alpha=alpha, k=k, h=h, hold=hold)  # fmt: skip

    if not runs:  # typed empty arrays
        return np.zeros(0, dtype=int), judged(slice(0, 0))
    if len(runs) == 1:  # the weekly job: one chart per series, cheaper as a scalar loop
        ((start, end, rows),) = runs
        keep = np.asarray(rows, dtype=int)
        return keep, {name: values[keep - start] for name, values in judged(slice(start, end + 1)).items()}
    usable, pvalue, z = tests["usable"], tests["pvalue"], tests["z"]
    single = usable & eligible & (pvalue <= alpha)
    score = np.where(np.isfinite(z), z, 0.0)
    first = np.array([start for start, _, _ in runs], dtype=int)
    length = np.array([end - start + 1 for start, end, _ in runs], dtype=int)
    width = int(length.max())
    stat = np.full((len(runs), width), np.nan)
    chart_alarm = np.zeros((len(runs), width), dtype=bool)
    alarm = np.zeros((len(runs), width), dtype=bool)
    run_start = np.full((len(runs), width), -1, dtype=int)
    previous, begun, cap = np.zeros(len(runs)), np.full(len(runs), -1, dtype=int), hold * h
    for j in range(width):  # week j of every run at once (as `chart`, whose loop is over the weeks of one run)
        at = np.minimum(first + j, len(y) - 1)
        decided = usable[at] & (j < length)
        value = np.maximum(0.0, previous + score[at] - k)
        begun = np.where(decided, np.where(value > 0, np.where(previous == 0, at, begun), -1), begun)
        stat[:, j] = np.where(decided, value, previous)
        run_start[:, j] = begun
        high = value >= h
        chart_alarm[:, j] = decided & eligible[at] & high & ~single[at]
        alarm[:, j] = decided & eligible[at] & (single[at] | high)
        previous = np.where(decided, np.where(alarm[:, j], np.minimum(value, cap), value), previous)
    which = np.concatenate([np.full(len(rows), r, dtype=int) for r, (_, _, rows) in enumerate(runs)])
    t = np.concatenate([np.asarray(rows, dtype=int) for _, _, rows in runs])
    j = t - first[which]
    charted = chart_alarm[which, j]
    began = run_start[which, j]
    chart_p = np.full(len(t), np.nan)
    why = np.full(len(t), "", dtype=object)
    for n in np.flatnonzero(charted):
        s, i = int(began[n]), int(t[n])
        chart_p[n] = float(p_at_least(np.nansum(y[s : i + 1]), np.nansum(mu[s : i + 1]), phi[i]))
        why[n] = explain_run(y, mu, s, i)
    return t, {
        "pvalue": pvalue[t],
        "upperbound": tests["upperbound"][t],
        "z": z[t],
        "stat": stat[which, j],
        "single_alarm": single[t],
        "chart_alarm": charted,
        "alarm": alarm[which, j] & usable[t],
        "usable": usable[t],
        "chart_pvalue": chart_p,
        "why": why,
    }
