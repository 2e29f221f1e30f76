"""Known surges: a stated rule on the weekly counts themselves (issue 11, items 4 and 9).

A false alert is an alert outside a real surge, but "real" needs a definition that does not
come from the detector being judged. This one reads only the counts:

* week t is a **surge week** when the 4-week sum S4 = y[t-3..t] is at least `SURGE_MIN` (10)
  and at least `SURGE_RATIO` (2) times the base of the 8 weeks before, S8 = y[t-11..t-4].
  The base is read one of two ways: "level" (the default), S8 / 2, the 8 weeks at their
  4-week level (the 4-week rate is at least twice the 8-week rate); or "sum", S8 itself;
* a week needs the 11 weeks before it to be judged (earlier weeks are never surge weeks);
  consecutive surge weeks are one surge (episode);
* an alert is **in a surge** from 3 weeks before the surge's onset (the first week of its
  first 4-week sum) through its last surge week ("window"; "surge": from the onset only).

`monitor backtest` measures its alerts outside these windows as the false-alert rate the
weekly report quotes; scripts/bench_alarms.py scores catch and burden with the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Surge definition: 4-week sum >= SURGE_MIN and >= SURGE_RATIO x the base of the 8 weeks before.
SURGE_MIN = 10.0
SURGE_RATIO = 2.0
SURGE_RULES: tuple[str, ...] = ("level", "sum")
CATCH_RULES: tuple[str, ...] = ("window", "surge")
WEEKS_PER_YEAR = 52
#: The default reading, in words, for tables and reports.
RULE_TEXT = (
    f"4-week sum ≥ {SURGE_MIN:g} and ≥ {SURGE_RATIO:g}× the 8 weeks before at their 4-week level; "
    "in-surge from 3 weeks before its onset through its last week"
)


def surge_flags(counts: Sequence[float], rule: str = "level", *, min_sum: float = SURGE_MIN, ratio: float = SURGE_RATIO) -> list[bool]:
    """Per week: is it a surge week? (4-week sum >= min_sum and >= ratio x the base of the 8 weeks before).

    rule "level": base = the 8-week sum's 4-week equivalent (S8 / 2); "sum": base = the 8-week sum.
    The first 11 weeks (no full 8 weeks before the 4-week window) are never surge weeks.
    """
    if rule not in SURGE_RULES:
        raise ValueError(f"surge rule {rule!r}: expected one of {', '.join(SURGE_RULES)}")
    flags = []
    for t in range(len(counts)):
        if t < 11:
            flags.append(False)
            continue
        s4 = sum(counts[t - 3 : t + 1])
        s8 = sum(counts[t - 11 : t - 3])
        base = s8 / 2 if rule == "level" else s8
        flags.append(bool(s4 >= min_sum and s4 >= ratio * base))
    return flags


def surge_episodes(flags: Sequence[bool], lo: int = 0, hi: int | None = None) -> list[tuple[int, int]]:
    """Runs of consecutive surge weeks within positions lo..hi (inclusive), as (onset, last) pairs."""
    hi = len(flags) - 1 if hi is None else hi
    episodes: list[tuple[int, int]] = []
    for t in range(max(lo, 0), min(hi, len(flags) - 1) + 1):
        if not flags[t]:
            continue
        if episodes and episodes[-1][1] == t - 1:
            episodes[-1] = (episodes[-1][0], t)
        else:
            episodes.append((t, t))
    return episodes


def episode_window(onset: int, last: int, catch: str = "window") -> tuple[int, int]:
    """Weeks (inclusive) in which an alert catches the surge: from onset - 3 ("window") or onset ("surge") to its last week."""
    if catch not in CATCH_RULES:
        raise ValueError(f"catch rule {catch!r}: expected one of {', '.join(CATCH_RULES)}")
    return (onset - 3 if catch == "window" else onset, last)


def in_surge(counts: Sequence[float], *, lo: int, hi: int | None = None, rule: str = "level", catch: str = "window") -> np.ndarray:
    """For positions lo..hi (inclusive) of `counts`: is the week inside a surge window?

    Only surges with a week in lo..hi count (one running into the range starts at lo), as
    `score_surges` counts them.
    """
    hi = len(counts) - 1 if hi is None else hi
    mask = np.zeros(max(hi - lo + 1, 0), dtype=bool)
    for onset, last in surge_episodes(surge_flags(counts, rule), lo, hi):
        a, b = episode_window(onset, last, catch)
        mask[max(a, lo) - lo : min(b, hi) - lo + 1] = True
    return mask


@dataclass
class SurgeScore:
    """Surges, surges caught, and the alerts, alert episodes and series-weeks outside every surge window."""

    surges: int = 0
    caught: int = 0
    outside_alerts: int = 0
    outside_weeks: int = 0
    #: alert episodes (runs of consecutive alerted weeks) whose first week is outside every window
    outside_onsets: int = 0

    def add(self, other: SurgeScore) -> None:
        self.surges += other.surges
        self.caught += other.caught
        self.outside_alerts += other.outside_alerts
        self.outside_weeks += other.outside_weeks
        self.outside_onsets += other.outside_onsets

    @property
    def per_series_year(self) -> float:
        return self.outside_alerts / (self.outside_weeks / WEEKS_PER_YEAR) if self.outside_weeks else float("nan")

    @property
    def onsets_per_series_year(self) -> float:
        return self.outside_onsets / (self.outside_weeks / WEEKS_PER_YEAR) if self.outside_weeks else float("nan")


def score_surges(alerts: dict[int, bool], windows: Sequence[tuple[int, int]], lo: int, hi: int) -> SurgeScore:
    """Catch and burden of one series: `alerts` maps replayed positions lo..hi to alerted or not.

    A surge is caught when some position of its window alerts; weeks of lo..hi outside every
    window count for the burden outside surges (alerts, and alert episodes by their first week).
    """
    inside: set[int] = set()
    caught = 0
    for a, b in windows:
        inside.update(range(a, b + 1))
        caught += any(alerts.get(t, False) for t in range(a, b + 1))
    outside = [t for t in range(lo, hi + 1) if t not in inside]
    onsets = [t for t in outside if alerts.get(t, False) and not alerts.get(t - 1, False)]
    return SurgeScore(
        surges=len(windows), caught=caught, outside_alerts=sum(bool(alerts.get(t, False)) for t in outside),
        outside_weeks=len(outside), outside_onsets=len(onsets),
    )  # fmt: skip
