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

**Weeks still filling** (issue 14, item 4). Incident data arrive late, so the latest week is
judged on a partial count (`Observation.provisional`; a week whose only flag is its nowcast is a
warning, "likely surge once reporting completes"). Such a week stays open: the state keeps the
state it started from (`AlertState.provisional`), and the next run re-judges it with the data it
then has (`rejudge`). When a verdict changed, the lifecycle is replayed from the first changed
week, and what the team was already told stands: a surge confirmed above what was announced is
an escalation (or new, if nothing was announced), a warning that no longer holds once reporting
completed resolves what was announced. A week stays open for `REJUDGE_WEEKS` weeks at most.

`step` is a pure function from (previous state, this week's observation) to (new state,
event); the caller stores the state and turns events into notifications.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from monitor.types import (
    AlertState,  # the row of alert_states; callers name it from here too
)

#: Severities in increasing order.
SEVERITIES: tuple[str, ...] = ("warning", "alert")

#: Events a week can produce. Announced: new, escalated, reminder, resolved.
EVENTS: tuple[str, ...] = ("pending", "new", "continuing", "escalated", "reminder", "recovering", "resolved", "dropped", "held", "revised", "")
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
    provisional: bool = False  # judged on a count still filling: the next run re-judges the week
    observed: float = math.nan  # the count and threshold behind the level, for the words of a re-judged week
    threshold: float = math.nan


#: Weeks a week judged on a partial count stays open to re-judging (as `monitor.delays.MAX_DELAY`:
#: events known later than that count as known then).
REJUDGE_WEEKS = 8


@dataclass(frozen=True)
class Revision:
    """A week judged on a partial count, re-judged with fuller data: its level then and now."""

    week: str
    was: str  # "alert", "warning" or "" (quiet)
    now: str  # the same, or "undecided" (the detector cannot decide the week now)
    observed: float = math.nan  # the week's count now, and its threshold
    threshold: float = math.nan
    larger: bool = False  # the same level, but a larger surge (a higher exceedance band) once complete

    def text(self) -> str:
        def name(level: str) -> str:
            return level or "quiet"

        from monitor.numbers import fmt_num

        numbers = (f"{fmt_num(self.observed)} events against a threshold of {fmt_num(self.threshold)}, "
                   if math.isfinite(self.observed) and math.isfinite(self.threshold) else "")  # fmt: skip
        if self.larger:
            return f"{self.week} re-judged with fuller reporting: {numbers}a larger surge than first judged on a partial count"
        return f"{self.week} re-judged with fuller reporting: {numbers}{name(self.now)} (first judged {name(self.was)} on a partial count)"


def exceedance_band(score: float) -> int:
    """0 below the threshold; 1 for exceedance scores in [1, 2), 2 in [2, 4), 3 in [4, 8), ... (doubling)."""
    if not isinstance(score, (int, float)) or math.isnan(score) or score < 1:
        return 0
    if math.isinf(score):
        return 10
    return min(int(math.floor(math.log2(score))) + 1, 10)


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 0


def _open_weeks(state: AlertState) -> list[dict]:
    return json.loads(state.provisional) if state.provisional else []


def _dump(weeks: list[dict]) -> str:
    return json.dumps(weeks, sort_keys=True) if weeks else ""


def step(state: AlertState, obs: Observation, settings: LifecycleSettings) -> tuple[AlertState, str]:
    """Advance one series by one week; returns (new state, event).

    A week already processed (obs.week_index <= state.last_index) changes nothing and
    returns event "" (re-running a week never re-announces). A provisional week is kept open
    for `rejudge`, with the state it started from.
    """
    new, event = _step(state, obs, settings)
    if new is state or event == "held":
        return new, event
    weeks = [w for w in _open_weeks(state) if obs.week_index - w["index"] < REJUDGE_WEEKS]
    if obs.provisional:
        start = {k: v for k, v in asdict(state).items() if k not in ("series", "provisional")}
        band = exceedance_band(obs.score) if obs.level in SEVERITIES else 0
        weeks.append({"week": obs.week, "index": obs.week_index, "level": obs.level, "band": band, "state": start})
    return replace(new, provisional=_dump(weeks)), event


def rejudge(state: AlertState, now: Mapping[int, Observation], settings: LifecycleSettings) -> tuple[AlertState, str, tuple[Revision, ...]]:
    """Re-judge the weeks of `state` judged on a partial count, with their observations as known
    now (`now`: week index -> observation); returns (state, event, revisions).

    Unchanged weeks now complete are closed; weeks not in `now` (older than the run re-checks)
    stay as they were judged. When a verdict changed, the state is replayed from the state the
    first changed week started from, over the open weeks, and then reconciled with what was
    announced: event "new" or "escalated" when the replay flags above what the team was told,
    "resolved" when an announced alert no longer holds, else the replay's own last event
    (pending, dropped, ...) or "".
    """
    weeks = _open_weeks(state)
    if not weeks:
        return state, "", ()

    def known(w: dict) -> Observation | None:  # the week as re-checked now; None: not re-checked, or undecided now
        obs = now.get(w["index"])
        return None if obs is None or obs.held else obs  # an undecided re-check is no verdict: the first one stands

    def differs(w: dict) -> bool:
        obs = known(w)
        band = exceedance_band(obs.score) if obs is not None and obs.level in SEVERITIES else 0
        return obs is not None and (obs.level != w["level"] or band > w.get("band", 0))  # a larger surge confirmed too

    def still_open(w: dict) -> bool:
        obs = known(w)
        return obs is None or obs.provisional

    changed = [i for i, w in enumerate(weeks) if differs(w)]
    if not changed:  # every verdict stands: the weeks now complete are closed
        still = [w for w in weeks if still_open(w)]
        return (replace(state, provisional=_dump(still)) if len(still) < len(weeks) else state), "", ()
    first = changed[0]
    # the weeks before the first change keep their verdicts; those now complete are closed
    replayed = AlertState(series=state.series, **weeks[first]["state"], provisional=_dump([w for w in weeks[:first] if still_open(w)]))
    events, revisions = [], []
    for w in weeks[first:]:
        obs = known(w)
        if obs is None:  # not re-checked, or undecided now: replayed as first judged
            obs = Observation(w["week"], w["index"], w["level"], 2.0 ** (w.get("band", 0) - 1) if w.get("band") else math.nan,
                              provisional=True)  # fmt: skip
        elif obs.level != w["level"]:
            revisions.append(Revision(w["week"], w["level"], obs.level, obs.observed, obs.threshold))
        elif differs(w):
            revisions.append(Revision(w["week"], w["level"], obs.level, obs.observed, obs.threshold, larger=True))
        replayed, event = step(replayed, obs, settings)
        events.append(event)
    if state.last_index > replayed.last_index:  # a later week judged complete at the time: it stays processed
        replayed = replace(replayed, last_week=state.last_week, last_index=state.last_index)
    return (*_reconcile(state, replayed, events), tuple(revisions))


def _reconcile(told: AlertState, replayed: AlertState, events: list[str]) -> tuple[AlertState, str]:
    """The replayed state, with what the team was already told (`told`, the state before re-judging) standing."""
    active = ("pending", "firing", "recovering")
    fields = ("announced_week", "announced_index", "announced_severity", "announced_band")
    if told.announced_index < 0 or told.state not in active:  # nothing of this episode was announced: the replay stands
        announced = [e for e in events if e in ANNOUNCED_EVENTS]
        return replayed, (announced[-1] if announced else events[-1])
    if replayed.state not in active:  # the alert announced no longer holds once reporting completed
        ended = replace(replayed, state="resolved", severity=told.severity, since_week=told.since_week,
                        **{f: getattr(told, f) for f in fields})  # fmt: skip
        return ended, "resolved"
    # the team was told of this episode: it is firing (or recovering), never merely pending again
    kept = replace(replayed, state="firing" if replayed.state == "pending" else replayed.state, **{f: getattr(told, f) for f in fields})
    if _rank(replayed.severity) > _rank(told.announced_severity) or replayed.band > told.announced_band:
        louder = replace(kept, announced_week=replayed.last_week, announced_index=replayed.last_index,
                         announced_severity=max(replayed.severity, told.announced_severity, key=_rank),
                         announced_band=max(replayed.band, told.announced_band))  # fmt: skip
        return louder, "escalated"
    return kept, ""  # nothing the team has not been told


def _step(state: AlertState, obs: Observation, settings: LifecycleSettings) -> tuple[AlertState, str]:
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
