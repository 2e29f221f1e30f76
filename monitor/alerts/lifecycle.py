"""Alert lifecycle per series, as a production alert manager keeps it, at a weekly cadence.

Prometheus Alertmanager and Grafana alerting are the references: a condition must hold for
`for_weeks` before it fires (pending), a firing alert is announced once and reminded after
`repeat_weeks`, and it resolves only after `resolve_after_weeks` quiet weeks (recovering), so
a sparse series whose counts go 0/1/0 does not flap. A series that escalates (warning → alert,
or a higher exceedance band) is announced again.

States: "" (inactive) → pending → firing ⇄ recovering → resolved (then inactive again).

Each week a series is one of:

* flagged: level "warning" or "alert" (monitor.severity);
* quiet: decided and not flagged;
* held: undecided (the detector could not decide) or no data this week (nothing ingested
  for its source covers the week). A held week changes nothing, not even the last week
  processed, so a re-run once the data has arrived judges it: no data is not zero.

A series not judged for longer than `resolve_after_weeks` (out of the config, or without
data) ends its episode: when it flags again, that is a new alert, not a reminder.

`step` is a pure function from (previous state, this week's observation) to (new state,
event); the caller stores the state and turns events into notifications.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from monitor.types import (
    AlertState,  # the row of alert_states; callers name it from here too
)

#: Severities in increasing order.
SEVERITIES: tuple[str, ...] = ("warning", "alert")

#: Events a week can produce. Announced: new, escalated, reminder, resolved.
EVENTS: tuple[str, ...] = ("pending", "new", "continuing", "escalated", "reminder", "recovering", "resolved", "dropped", "held", "")
ANNOUNCED_EVENTS: tuple[str, ...] = ("new", "escalated", "reminder", "resolved")


@dataclass(frozen=True)
class LifecycleSettings:
    """The [alerts] settings the state machine uses."""

    for_weeks: int = 1
    resolve_after_weeks: int = 2
    repeat_weeks: int = 4


@dataclass(frozen=True)
class Observation:
    """One series in one week: its level ("alert", "warning", "") and exceedance score; held = undecided or no data."""

    week: str  # ISO label, e.g. "2023-W07"
    week_index: int  # weeks since an epoch (consecutive weeks differ by 1)
    level: str
    score: float = math.nan
    held: bool = False
    reason: str = ""  # why held ("no data this week", "undecided: ...")


def exceedance_band(score: float) -> int:
    """0 below the threshold; 1 for exceedance scores in [1, 2), 2 in [2, 4), 3 in [4, 8), ... (doubling)."""
    if not isinstance(score, (int, float)) or math.isnan(score) or score < 1:
        return 0
    if math.isinf(score):
        return 10
    return min(int(math.floor(math.log2(score))) + 1, 10)


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 0


def step(state: AlertState, obs: Observation, settings: LifecycleSettings) -> tuple[AlertState, str]:
    """Advance one series by one week; returns (new state, event).

    A week already processed (obs.week_index <= state.last_index) changes nothing and
    returns event "" (re-running a week never re-announces).
    """
    if obs.week_index <= state.last_index:
        return state, ""
    if obs.held:  # nothing is judged, and the week can still be judged when its data arrives (a re-run)
        return state, "held"
    s = replace(state, last_week=obs.week, last_index=obs.week_index)
    if s.state in ("pending", "firing", "recovering") and obs.week_index - state.last_index > settings.resolve_after_weeks:
        # weeks without a judgement (series out of the config, or no data) longer than it takes to resolve:
        # the old episode is over, and whatever comes now is a new one
        s = replace(s, state="", severity="", band=0, since_week="", flagged_weeks=0, quiet_weeks=0)
    flagged = obs.level in SEVERITIES
    band = exceedance_band(obs.score) if flagged else 0
    if flagged:
        if s.state in ("", "resolved"):
            s = replace(s, state="pending", severity=obs.level, band=band, since_week=obs.week, flagged_weeks=1, quiet_weeks=0,
                        announced_week="", announced_index=-1, announced_severity="", announced_band=0)  # fmt: skip
            if s.flagged_weeks >= settings.for_weeks:
                return _announce(replace(s, state="firing"), obs), "new"
            return s, "pending"
        severity = obs.level if _rank(obs.level) > _rank(s.severity) else s.severity
        s = replace(s, severity=severity, band=max(s.band, band), flagged_weeks=s.flagged_weeks + 1, quiet_weeks=0)
        if s.state == "pending":
            if s.flagged_weeks >= settings.for_weeks:
                return _announce(replace(s, state="firing"), obs), "new"
            return s, "pending"
        s = replace(s, state="firing")  # firing, or recovering that flags again
        if s.announced_index < 0:  # firing but never announced (silenced, or no route wanted it): announce as new
            return _announce(s, obs), "new"
        if _rank(obs.level) > _rank(s.announced_severity) or band > s.announced_band:
            return _announce(s, obs), "escalated"
        if obs.week_index - s.announced_index >= settings.repeat_weeks:
            return _announce(s, obs), "reminder"
        return s, "continuing"
    # quiet week
    if s.state == "pending":
        return replace(s, state="", severity="", band=0, since_week="", flagged_weeks=0), "dropped"
    if s.state in ("firing", "recovering"):
        s = replace(s, state="recovering", flagged_weeks=0, quiet_weeks=s.quiet_weeks + 1)
        if s.quiet_weeks >= settings.resolve_after_weeks:
            return replace(s, state="resolved"), "resolved"
        return s, "recovering"
    if s.state == "resolved":
        return replace(s, state="", severity="", band=0, since_week="", quiet_weeks=0), ""
    return s, ""


def unannounce(new: AlertState, old: AlertState) -> AlertState:
    """`new` with the announcement fields of `old`: the event was not sent to anyone (silenced, or no route
    wanted it), so the next week decides again whether to announce."""
    return replace(
        new,
        announced_week=old.announced_week if old.state not in ("", "resolved") else "",
        announced_index=old.announced_index if old.state not in ("", "resolved") else -1,
        announced_severity=old.announced_severity if old.state not in ("", "resolved") else "",
        announced_band=old.announced_band if old.state not in ("", "resolved") else 0,
    )


def _announce(s: AlertState, obs: Observation) -> AlertState:
    band = exceedance_band(obs.score)
    return replace(
        s,
        announced_week=obs.week,
        announced_index=obs.week_index,
        announced_severity=obs.level if _rank(obs.level) > _rank(s.announced_severity) else s.announced_severity,
        announced_band=max(s.announced_band, band),
    )
