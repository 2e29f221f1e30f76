"""Nowcasts of the weeks still filling: how many events a week will have once reporting completes.

Incident data arrive late: a week's count keeps growing for weeks after it ends. This module
is the arithmetic of issue 14, item 3, on plain arrays (the store supplies the reporting triangle).

**Reporting delays** (`estimate_delays`). The reporting triangle has one row per event week and
one column per delay d = 0, 1, ..., D: the events of that week first seen d weeks after the week
ended (NaN where that delay lies in the future). The chain-ladder factor f(d) is the growth of the
cumulative count from delay d to d + 1, summed over the event weeks that have reached d + 1; the
share of the eventual count known by delay d is F(d) = 1 / (f(d) · f(d+1) ··· f(D-1)), F(D) = 1.
Delays beyond D are taken as none (choose D where the counts have stopped growing).

**The nowcast of one week** (`nowcast_week`). With y events known at a delay whose share is F,
the final count N = y + U. The week's rate is given a gamma prior from the series' own history
(mean `prior_mean`, shape `size`: the negative-binomial dispersion of its weekly counts); each
event is known by now with probability F. Then the events still to come are negative binomial:
U | y ~ NB(size + y, p) with p = (size / prior_mean + F) / (size / prior_mean + 1), the
gamma-Poisson thinning behind R `surveillance::nowcast`'s "bayes.trunc" (Höhle & an der Heiden
2014). A week with a large count dominates its prior; with no events known yet, the prior does.
As `size` → 0 (no trust in the history) the mean tends to the chain-ladder estimate y / F; with F
= 1 the week is complete and the nowcast is y itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Event weeks that must have reached a delay before its factor is estimated (fewer: no nowcast).
MIN_WEEKS = 8
#: Smallest prior mean used: a series with no events lately still may have some (never a prior of 0).
PRIOR_FLOOR = 0.1
#: Largest prior shape used by the weekly nowcast: the prior weighs at most as much as 1/mean weeks of
#: data. A week in surge is exactly one whose rate departs from its history, so a steady history
#: (shape → ∞, a fixed rate) must not outweigh the events already reported: with 14 known at half
#: reported against a history of 4 a week, a fixed rate would nowcast 16, this prior 24, chain ladder 28.
PRIOR_SHAPE_MAX = 1.0


@dataclass(frozen=True)
class Delays:
    """The share of a week's eventual count known d weeks after the week ended, d = 0..max_delay."""

    share: np.ndarray  # F(d), non-decreasing, F(max_delay) = 1
    factors: np.ndarray  # chain-ladder growth f(d) from delay d to d + 1, d = 0..max_delay - 1
    weeks: np.ndarray  # event weeks behind each factor

    @property
    def max_delay(self) -> int:
        return len(self.share) - 1


def estimate_delays(triangle: np.ndarray | Sequence[Sequence[float]], *, min_weeks: int = MIN_WEEKS) -> Delays | None:
    """Chain-ladder delays from a reporting triangle (rows: event weeks, oldest first; columns: delays
    0..D; NaN where the delay lies in the future). None when a factor rests on fewer than `min_weeks`
    event weeks, or when no event was seen at all: too little history to say how late data come."""
    tri = np.asarray(triangle, dtype=float)
    if tri.ndim != 2 or tri.shape[1] < 1:
        raise ValueError(f"a reporting triangle needs rows of event weeks and columns of delays (got shape {tri.shape})")
    known = ~np.isnan(tri)
    if np.any(tri[known] < 0):
        raise ValueError("a reporting triangle holds counts: none may be negative")
    cumulative = np.cumsum(np.where(known, tri, 0.0), axis=1)
    depth = tri.shape[1] - 1
    factors = np.ones(depth)
    weeks = np.zeros(depth, dtype=int)
    for d in range(depth):
        rows = known[:, d + 1]  # event weeks that have reached delay d + 1 (and so delay d)
        weeks[d] = int(rows.sum())
        if weeks[d] < min_weeks:
            return None
        before, after = cumulative[rows, d].sum(), cumulative[rows, d + 1].sum()
        if before == 0:
            if after == 0:
                continue  # nothing seen by then: no growth to measure
            return None  # events appear only late: no share of them is known early
        factors[d] = after / before
    if depth == 0 and int(known[:, 0].sum()) < min_weeks:
        return None
    share = np.ones(depth + 1)
    for d in range(depth - 1, -1, -1):
        share[d] = share[d + 1] / factors[d]
    return Delays(share=share, factors=factors, weeks=weeks)


@dataclass(frozen=True)
class Nowcast:
    """A week's final count as expected once reporting completes, with an interval."""

    observed: int  # events known now
    complete_share: float  # F: the share of the eventual count known at this delay
    expected: float  # mean of the final count
    low: float  # interval of the final count at `level`
    high: float
    level: float
    #: the events still to come: negative binomial (size, p), or Poisson with mean `size` when p is NaN;
    #: (0, 1) for a complete week
    still_size: float = 0.0
    still_p: float = 1.0

    def _still(self):
        from scipy import stats  # here, not at the top: scipy.stats costs half a second of start-up

        if math.isnan(self.still_p):
            return stats.poisson(self.still_size)
        return stats.nbinom(self.still_size, self.still_p)

    def prob_above(self, threshold: float) -> float:
        """P(final count > threshold): the chance the week ends above a detector's threshold
        (a detector alarms when the count exceeds it); NaN for a threshold that is not a number."""
        if not math.isfinite(threshold):
            return math.nan
        gap = threshold - self.observed  # the final count exceeds the threshold when U > gap
        if gap < 0:
            return 1.0
        if self.complete_share >= 1:
            return 0.0
        return float(self._still().sf(math.floor(gap)))


def nowcast_week(observed: int, share: float, *, prior_mean: float, size: float, level: float = 0.9) -> Nowcast:
    """The final count of a week with `observed` events known when a share `share` of its events is.

    prior_mean, size: the gamma prior of the week's rate from the series' history (mean, and shape:
    the negative-binomial dispersion of its weekly counts; math.inf for Poisson counts).
    level: the central probability of the interval (0.9: from the 5th to the 95th percentile).
    """
    if observed < 0 or not float(observed).is_integer():
        raise ValueError(f"observed = {observed}: a count of events")
    if not 0 < share <= 1:
        raise ValueError(f"share = {share}: the share of events known must be in (0, 1]")
    if not 0 < level < 1:
        raise ValueError(f"level = {level} must be in (0, 1)")
    if not size > 0:
        raise ValueError(f"size = {size} must be positive (math.inf for Poisson counts)")
    y = int(observed)
    if share >= 1:
        return Nowcast(y, 1.0, float(y), float(y), float(y), level, 0.0, 1.0)
    mean = max(float(prior_mean), PRIOR_FLOOR)
    tail = (1 - level) / 2
    from scipy import stats  # here, not at the top: scipy.stats costs half a second of start-up

    if math.isinf(size):  # a fixed rate: the events still to come are Poisson, whatever was seen
        still = stats.poisson(mean * (1 - share))
        expected = mean * (1 - share)
        params = (mean * (1 - share), math.nan)
    else:
        rate = size / mean  # the gamma prior's rate
        p = (rate + share) / (rate + 1)
        still = stats.nbinom(size + y, p)
        expected = (size + y) * (1 - share) / (rate + share)
        params = (size + y, p)
    low, high = still.ppf(tail), still.ppf(1 - tail)
    return Nowcast(y, float(share), y + float(expected), y + float(low), y + float(high), level, *params)


def prior_from_history(counts: Sequence[float] | np.ndarray, *, window: int = 8) -> tuple[float, float]:
    """(mean, size) of the gamma prior of a week's rate from the last `window` complete weeks: their
    mean (at least PRIOR_FLOOR) and the method-of-moments dispersion size = mean² / (variance − mean),
    math.inf when the counts vary no more than Poisson counts would."""
    recent = np.asarray(counts, dtype=float)[-window:]
    recent = recent[~np.isnan(recent)]
    if recent.size == 0:
        return PRIOR_FLOOR, math.inf
    mean = max(float(recent.mean()), PRIOR_FLOOR)
    variance = float(recent.var(ddof=1)) if recent.size > 1 else 0.0
    return mean, (mean * mean / (variance - mean) if variance > mean else math.inf)


def nowcast_series(counts: np.ndarray, shares: np.ndarray, *, delay: int) -> list[tuple[int, Nowcast]]:
    """The nowcasts of a series' weeks still filling: [(position, Nowcast)], latest first.

    counts: the series' weekly counts as known now, oldest first; its last week is `delay` weeks
    after its end (0: the week just ended), the one before `delay` + 1, and so on.
    shares: F(d), the share known at each delay d (`Delays.share`; beyond it, complete).
    Each week still filling gets the prior of the weeks before it, each of those scaled up to its
    eventual count by the share known at its own delay, its shape at most PRIOR_SHAPE_MAX (so the
    events a surge has already reported outweigh a steady history).
    """
    counts = np.asarray(counts, dtype=float)
    n = len(counts)
    lags = delay + np.arange(n - 1, -1, -1)  # the delay of each week at the latest ingest
    known = np.where(lags < len(shares), shares[np.minimum(lags, len(shares) - 1)], 1.0)
    out = []
    for at in range(n - 1, -1, -1):
        if known[at] >= 1:
            break  # this week and every earlier one are complete
        mean, size = prior_from_history(counts[:at] / known[:at])
        out.append((at, nowcast_week(int(counts[at]), float(known[at]), prior_mean=mean, size=min(size, PRIOR_SHAPE_MAX))))
    return out
