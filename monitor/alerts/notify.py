"""From one week's detections to the digests to send: lifecycle, routing, silences, inhibition.

Order of decisions, as in Prometheus Alertmanager (scaled to a weekly cadence):

1. `advance`: every series takes one lifecycle step (`monitor.alerts.lifecycle`).
2. `plan`: each route (the default `recipients`, then `[[alerts.routes]]`) gets the
   announced events (new, escalated, reminder, resolved) of the series it follows at or
   above its minimum severity, minus silenced series; a region-level alert inhibits its
   own children (series with the same labels plus more, e.g. admin1 + actor), which are
   listed under it instead of as separate alerts. A route with something to announce gets
   one digest; the firing alerts it already knows about are listed as continuing.
3. An event that reached no route (silenced, or below every route's severity) is not
   recorded as announced, so it is announced when a silence expires or it escalates.

Emergence alerts (new actors, new places, more actors: monitor.alerts.emergence) are routed in the
same pass: a route takes them when its `kinds` name "emergence" or their own kind, and its series
filter and the silences are matched against their key and name. They have no severity (a route's
`min_level` does not apply), are never inhibited under a surge, and one that reaches no route is
not announced later: it is news of its week.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from monitor.alerts import emergence as em
from monitor.alerts.lifecycle import (
    SEVERITIES,
    AlertState,
    LifecycleSettings,
    Observation,
    Revision,
    rejudge,
    step,
    unannounce,
)
from monitor.series import KEY_PREFIX, series_matches, shell_quote
from monitor.types import EmergenceState, RunResult, SeriesResult, Silence
from monitor.weeks import week_label
from monitor.weeks import (
    week_number as week_index,  # weeks between events, for the lifecycle
)

#: Kinds of notice, in the order a digest lists them.
KINDS: tuple[str, ...] = ("new", "escalated", "reminder", "resolved")


def matches(text: str, r: SeriesResult) -> bool:
    """A series filter (monitor.series.series_matches): "key:<series key>" matches that series only; any other
    text matches series whose key or name contains it (case-insensitive); empty matches everything."""
    return series_matches(text, r.series)


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 0


@dataclass(frozen=True)
class Change:
    """One series' lifecycle step this week."""

    result: SeriesResult
    event: str
    before: AlertState
    after: AlertState
    #: earlier weeks judged on a partial count whose verdict changed with fuller data (lifecycle.rejudge)
    revisions: tuple[Revision, ...] = ()

    @property
    def key(self) -> str:
        return self.result.series.key


@dataclass(frozen=True)
class Route:
    """A recipient group: name, addresses, series filter, minimum severity and the kinds of alert it takes
    ("surge", "emergence", or one emergence kind: "new-actor", "new-place", "more-actors")."""

    name: str
    recipients: tuple[str, ...]
    series: str = ""
    min_level: str = "alert"
    kinds: tuple[str, ...] = ("surge",)

    @property
    def surges(self) -> bool:
        return "surge" in self.kinds


@dataclass
class Notice:
    """One alert in a digest: what happened (kind), the series, and inhibited children listed under it."""

    kind: str  # new | escalated | reminder | resolved | continuing
    change: Change
    silence_command: str = ""
    check_command: str = ""  # the `monitor check` of this series and week: its numbers again, from the database
    children: list["Notice"] = field(default_factory=list)

    @property
    def result(self) -> SeriesResult:
        return self.change.result


@dataclass
class EmergenceNotice:
    """One emergence alert in a digest: new (or escalated, for more actors), with the command that silences it."""

    kind: str  # new | escalated
    change: em.EmergenceChange
    silence_command: str = ""

    @property
    def key(self) -> str:
        return self.change.key


@dataclass
class Digest:
    """What one route is told this week."""

    route: Route
    notices: list[Notice]  # announced: new, escalated, reminder, resolved
    continuing: list[Notice]  # still firing, announced before (context, not news)
    emergences: list[EmergenceNotice] = field(default_factory=list)  # new actors, new places, more actors
    emergence_rule: str = ""  # the rule behind them, stated in the digest (monitor.alerts.emergence.rule_text)

    def count(self, kind: str) -> int:
        """Notices of this kind, children listed under a parent included."""
        return sum(1 for n in self.notices for m in (n, *n.children) if m.kind == kind)

    @property
    def series(self) -> list[str]:
        keys = [n.change.key for n in self.notices]
        keys += [c.change.key for n in self.notices for c in n.children]
        return keys + [e.key for e in self.emergences]


@dataclass(frozen=True)
class Plan:
    """The digests to queue, the states to store, the events to log, and what silences held back."""

    digests: list[Digest]
    states: dict[str, AlertState]
    events: list[tuple[str, str, str, str, str]]  # (series or emergence key, event, state, severity, detail)
    silenced: dict[str, Silence]  # series or emergence key -> the silence holding its notice back
    emergence_states: dict[str, EmergenceState] = field(default_factory=dict)  # emergence key -> its new state


def routes_of(settings: Any) -> list[Route]:
    """The default route (`recipients`, every series, `min_level`, `kinds`) and `[[alerts.routes]]`."""
    kinds = tuple(getattr(settings, "kinds", ("surge", "emergence")))
    out = []
    if settings.recipients:
        out.append(Route("default", tuple(settings.recipients), "", settings.min_level, kinds))
    out += [Route(r.name, tuple(r.recipients), r.series, r.min_level, tuple(getattr(r, "kinds", ("surge",))))
            for r in settings.routes]  # fmt: skip
    if not out:  # no addresses at all: one digest written as an .eml file
        out.append(Route("default", (), "", settings.min_level, kinds))
    return out


def observations(result: RunResult, no_data: Collection[str] | None = None) -> dict[str, Observation]:
    """This week's observation of every series: its level and score, or held (undecided / no data this week).

    no_data: keys of the series with no data this week: nothing ingested for their sources
    reaches the week (`monitor.coverage.series_without_data`), so a zero count would be a guess.
    None: judged for the whole run, by the latest data of any source.
    """
    index = week_index(result.week_start)
    if no_data is None:
        stale = result.latest_event_date is None or result.latest_event_date < result.week_start
        no_data = {r.series.key for r in result.results} if stale else set()
    out = {}
    for r in result.results:
        d = r.detection
        if r.series.key in no_data:
            obs = Observation(result.week, index, "", d.score, held=True, reason="no data this week")
        elif d.alarm is None:
            obs = Observation(result.week, index, "", d.score, held=True, reason=f"undecided: {d.note}".strip())
        else:
            obs = Observation(result.week, index, current_level(r), d.score, provisional=d.provisional)
        out[r.series.key] = obs
    return out


def observations_now(r: SeriesResult) -> dict[int, Observation]:
    """The weeks before this one of a series as its history re-checks them now, with the data the
    run has: week index -> observation (for `lifecycle.rejudge`)."""
    from monitor.detection import exceedance

    h = r.history
    if h is None or not len(h) or "alarm" not in h:
        return {}
    out = {}
    rows = h.iloc[:-1]  # the last row is this week, judged by `observations`

    def column(name: str, empty: object) -> pd.Series:
        return rows[name] if name in rows else pd.Series(empty, index=rows.index)

    for start, alarm, level, count, expected, upper, share in zip(
        pd.to_datetime(rows["week_start"]).dt.date, rows["alarm"], column("level", ""), rows["count"],
        column("expected", np.nan), column("upperbound", np.nan), column("complete_share", np.nan),
    ):  # fmt: skip
        label = week_label(start)
        if pd.isna(alarm):
            out[week_index(start)] = Observation(label, week_index(start), "", held=True, reason="undecided")
            continue
        lvl = level if isinstance(level, str) and level in SEVERITIES else ("alert" if bool(alarm) else "")
        score = exceedance(float(count), float(expected), float(upper)) if lvl else math.nan
        out[week_index(start)] = Observation(label, week_index(start), lvl, score, provisional=bool(share < 1),
                                             observed=float(count), threshold=float(upper))  # fmt: skip
    return out


def advance(
    result: RunResult, states: Mapping[str, AlertState], settings: Any, *, no_data: Collection[str] | None = None
) -> list[Change]:
    """One lifecycle step for every series of the run (states of series not in the run are left alone).

    no_data: series with no data this week (held), see `observations`.
    """
    lifecycle = LifecycleSettings(
        for_weeks=settings.for_weeks, resolve_after_weeks=settings.resolve_after_weeks, repeat_weeks=settings.repeat_weeks
    )
    obs = observations(result, no_data)
    changes = []
    for r in result.results:
        before = states.get(r.series.key) or AlertState(series=r.series.key)
        start, earlier, revisions = before, "", ()
        if before.provisional and before.last_index < obs[r.series.key].week_index:
            # weeks judged on a partial count are judged again with the data now in (issue 14, item 4)
            start, earlier, revisions = rejudge(before, observations_now(r), lifecycle)
        after, event = step(start, obs[r.series.key], lifecycle)
        changes.append(Change(r, _louder(earlier, event), before, after, revisions))
    return changes


def _louder(earlier: str, now: str) -> str:
    """The event a run reports for a series whose earlier weeks were re-judged (`earlier`) and whose
    week was then judged (`now`): the one the team most needs to hear."""
    if now == "resolved":  # the episode is over: that is the news (the re-judged week is named in the notice)
        return now
    rank = {"new": 5, "escalated": 4, "reminder": 3, "resolved": 2}
    return earlier if rank.get(earlier, 0) > rank.get(now, 0) or not now else now


def as_first_run(
    changes: Sequence[Change], *, index: int, events: Mapping[str, str], previous_week: Callable[[str], str]
) -> list[Change]:
    """The changes as the run that first processed this week saw them, for the report of a re-run.

    A week already processed is not processed again (`step` gives no event), so a re-run's report,
    after a crash once the states were committed or by hand, would otherwise lose what the week
    decided: a resolution, a silence holding back a new alert. Rebuilt: the series whose state was
    last advanced by this very week (`last_index == index`) and that have a stored event.
    events: series key -> its stored event this week (the alert_events table).
    previous_week(key): the week processed before this one for the series (a resolved note names it).
    """
    out = []
    for c in changes:
        event = events.get(c.key, "")
        if c.event or not event or c.before.last_index != index:
            out.append(c)
            continue
        # the stored state is what this week left: `after`; for the notes, `before` differs from it only in the
        # week processed before (the announcement fields do not change when an alert resolves)
        before = replace(c.before, last_week=previous_week(c.key)) if event == "resolved" else c.before
        out.append(replace(c, event=event, before=before))
    return out


def silence_for(r: SeriesResult, silences: Iterable[Silence]) -> Silence | None:
    """The first active silence whose filter matches the series, if any."""
    return next((s for s in silences if matches(str(s.filter), r)), None)


def silence_command(r: SeriesResult, week_end: date, *, today: date | None = None) -> str:
    """The command that silences this series, pasted into a shell as printed, for four weeks from the end
    of the reported week; when that week ended more than three weeks before `today` (a catch-up run, the
    demo), four weeks from `today` instead, so the date is never already past (`silence add` refuses it)."""
    start = week_end if today is None or (today - week_end).days <= 21 else today
    until = start + timedelta(days=28)
    return (f"monitor silence add --series {shell_quote(KEY_PREFIX + r.series.key)} --until {until.isoformat()} "
            "--comment 'reason'")


def emergence_silence_command(key: str, week_end: date, *, today: date | None = None) -> str:
    """The command that silences one emergence alert (its key), dated as `silence_command` dates it."""
    start = week_end if today is None or (today - week_end).days <= 21 else today
    until = start + timedelta(days=28)
    return f"monitor silence add --series {shell_quote(KEY_PREFIX + key)} --until {until.isoformat()} --comment 'reason'"


def check_command(r: SeriesResult, week: str) -> str:
    """The command that checks this one series for the reported week again, pasted into a shell as printed."""
    return f"monitor check --week {week} --series {shell_quote(KEY_PREFIX + r.series.key)}"


def _parent_of(child: SeriesResult, candidates: Sequence[Notice]) -> Notice | None:
    labels = set(child.series.labels)
    best = None
    for n in candidates:
        parent = set(n.result.series.labels)
        if parent and parent < labels and (best is None or len(parent) > len(best.result.series.labels)):
            best = n
    return best


#: How urgent each kind of notice is: a child is only listed under a parent at least as urgent,
#: so a new surge is never tucked under a resolved or reminded parent.
URGENCY = {"new": 3, "escalated": 3, "reminder": 2, "resolved": 1, "continuing": 0}


def _inhibit(notices: list[Notice]) -> list[Notice]:
    """Move children (same labels plus more) under their closest announced parent in the same digest."""
    top: list[Notice] = []
    for n in sorted(notices, key=lambda n: len(n.result.series.labels)):
        parent = _parent_of(n.result, [t for t in top if URGENCY[t.kind] >= URGENCY[n.kind]])
        if parent is not None:
            parent.children.append(n)
        else:
            top.append(n)
    return top


def plan(result: RunResult, changes: Sequence[Change], settings: Any, silences: Sequence[Silence | Mapping[str, Any]],
         emergences: Sequence[em.EmergenceChange] = (), rule: str = "") -> Plan:  # fmt: skip
    """Route this week's changes into digests and settle the states to store (see the module docstring).

    silences: those in force (`Store.active_silences`); a dict of a silence's columns is read as one.
    emergences: this week's steps of the emergence alerts (`monitor.alerts.emergence.advance`); rule: their rule
    in words, for the digest (`monitor.alerts.emergence.rule_text`)."""
    silences = [s if isinstance(s, Silence) else Silence.from_mapping(s) for s in silences]
    routes = routes_of(settings)
    per_route: dict[str, list[Notice]] = {r.name: [] for r in routes}
    continuing: dict[str, list[Notice]] = {r.name: [] for r in routes}
    reached: set[str] = set()
    silenced: dict[str, Silence] = {}
    for c in changes:
        silence = silence_for(c.result, silences)
        for route in routes:
            if not route.surges or not matches(route.series, c.result):
                continue
            kind = _kind_for(c, route, settings)
            if kind is None:
                continue
            if silence is not None:
                silenced[c.key] = silence
                continue
            notice = Notice(kind, c, silence_command(c.result, result.week_end, today=result.generated_at.date()),
                            check_command=check_command(c.result, result.week))
            (continuing if kind == "continuing" else per_route)[route.name].append(notice)
            if kind != "continuing":
                reached.add(c.key)

    per_route_em: dict[str, list[EmergenceNotice]] = {r.name: [] for r in routes}
    today = result.generated_at.date()
    for ec in emergences:
        if ec.event not in em.ANNOUNCED:
            continue
        silence = next((s for s in silences if em.matches(str(s.filter), ec.key, ec.name)), None)
        for route in routes:
            if not em.takes(route.kinds, ec.kind) or not em.matches(route.series, ec.key, ec.name):
                continue
            if silence is not None:
                silenced[ec.key] = silence
                continue
            per_route_em[route.name].append(EmergenceNotice(ec.event, ec, emergence_silence_command(ec.key, result.week_end, today=today)))
            reached.add(ec.key)

    states: dict[str, AlertState] = {}
    events = []
    em_states: dict[str, EmergenceState] = {}
    for ec in emergences:
        after, detail = ec.after, ""
        if ec.event in em.ANNOUNCED and ec.key not in reached:
            after = em.unannounce(ec)
            detail = f"not sent: silenced by #{silenced[ec.key].id}" if ec.key in silenced else "not sent: no route takes it"
        elif ec.event == "again":
            detail = f"flagged again while open (since {ec.after.first_week}, announced {ec.after.announced_week or 'never'})"
        elif ec.event == "expired":
            detail = f"closed: not flagged since {ec.after.last_week}"
        em_states[ec.key] = after
        events.append((ec.key, ec.event, after.state, "", detail))
    for c in changes:
        after, detail = c.after, ""
        if c.event in ("new", "escalated", "reminder") and c.key not in reached:
            after = unannounce(c.after, c.before)
            detail = f"not sent: silenced by #{silenced[c.key].id}" if c.key in silenced else "not sent: no route at this severity"
        elif c.event == "resolved" and c.key not in reached and c.before.announced_index >= 0:
            detail = f"not sent: silenced by #{silenced[c.key].id}" if c.key in silenced else "not sent"
        if after != c.before:
            states[c.key] = after
        if c.revisions:
            detail = "; ".join([*(v.text() for v in c.revisions), *([detail] if detail else [])])
        if c.event or c.revisions:
            events.append((c.key, c.event or "revised", after.state, after.severity, detail))

    digests = []
    for route in routes:
        notices, found = per_route[route.name], per_route_em[route.name]
        if not notices and not found:
            continue
        ordered = sorted(_inhibit(notices), key=lambda n: (KINDS.index(n.kind), _group(n.result, settings), n.result.series.key))
        found = sorted(found, key=lambda n: (list(em.ALERT_KINDS.values()).index(n.change.kind), n.change.after.country,
                                             n.change.after.admin1, n.key))  # fmt: skip
        digests.append(Digest(route, ordered, sorted(continuing[route.name], key=lambda n: n.result.series.key), found,
                              rule if found else ""))  # fmt: skip
    return Plan(digests, states, events, silenced, em_states)


def _kind_for(c: Change, route: Route, settings: Any) -> str | None:
    """How this change reads to `route`: a notice kind, "continuing" (context), or None (not for this route)."""
    need = _rank(route.min_level)
    if c.event in ("new", "escalated", "reminder"):
        # this week's level decides who is told now, or an earlier week's re-judged with fuller data
        if max([_rank(current_level(c.result)), *(_rank(v.now) for v in c.revisions)]) < need:
            return None
        if c.event == "escalated" and _rank(c.before.announced_severity) < need:
            return "new"  # the first this route hears of it
        if c.event == "reminder" and _rank(c.after.announced_severity) < need:
            return None
        return c.event
    if c.event == "resolved":
        ok = settings.send_resolved and c.before.announced_index >= 0 and _rank(c.before.announced_severity) >= need
        return "resolved" if ok else None
    if c.after.state in ("firing", "recovering") and c.after.announced_index >= 0 and _rank(c.after.announced_severity) >= need:
        return "continuing"
    return None


def current_level(r: SeriesResult) -> str:
    """This week's severity: the detection's level ("alert" for an alarm whose level was not assigned), or ""."""
    d = r.detection
    return d.level if d.level in SEVERITIES else ("alert" if d.alarm else "")


def _group(r: SeriesResult, settings: Any) -> str:
    return group_label(r, getattr(settings, "group_by", "admin1"))


def group_label(r: SeriesResult, group_by: str) -> str:
    """The digest group of a series: its `group_by` label value, the series key for "series", else "All"."""
    if group_by == "series":
        return r.series.key
    return dict(r.series.labels).get(group_by, "All")

