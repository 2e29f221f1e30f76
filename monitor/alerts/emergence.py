"""Emergences as alerts (issue 16, item 2): a new actor, a new place or more armed actors than ever,
announced once, with a lifecycle of their own beside the surge alerts of monitor.alerts.lifecycle.

An emergence (monitor.emerging) is keyed by what it is about, never by its week:

* new actor: `emergence/kind=new-actor|country=Syria|admin1=Homs|actor=liwa fatemiyoun` (the actor's
  normalised name, so "Islamic State (Syria)" and "IS" are one actor);
* new place: `emergence/kind=new-place|country=Syria|admin1=Homs|admin2=Sukhnah`;
* more actors: `emergence/kind=more-actors|country=Syria|admin1=Homs`.

Label values are escaped as in series keys (monitor.series.escape_label).

Lifecycle, per key (`advance` is pure; the caller stores the states):

* flagged with no state, or a closed one: **new**; the alert opens and is announced;
* flagged while open: **again**, not announced (the rule itself cannot flag a new actor or place
  again within `[emerging] weeks` of its last appearance; a deleted event that reappears can, and the
  team was told already); more actors with a count above the one announced: **escalated**, announced
  (or **new** when it never reached anyone);
* a week already processed for the key (a re-run, or an older week run late): nothing;
* not flagged for more than `[emerging] weeks` weeks since it last was: **expired**, the alert closes
  (logged, not emailed); the rule can flag the key again only after such a gap, and that is a new alert.

An emergence is news of its week: one held back by a silence, or that no route takes, is not
announced later (unlike a surge, which is still going on when the silence ends).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from monitor.emerging import Emergence
from monitor.series import KEY_PREFIX, series_key
from monitor.types import EmergenceState

#: Emergence kinds as alert kinds (config `kinds`, keys), by monitor.emerging's kind.
ALERT_KINDS: dict[str, str] = {"new actor": "new-actor", "new place": "new-place", "more actors": "more-actors"}
#: The kind every emergence alert also is, for routes (`kinds = ["emergence"]`) and silences.
EMERGENCE = "emergence"
#: Events of an emergence alert. Announced: new, escalated.
EVENTS: tuple[str, ...] = ("new", "escalated", "again", "expired")
ANNOUNCED: tuple[str, ...] = ("new", "escalated")


def emergence_key(e: Emergence) -> str:
    """The stable key of an emergence: its kind, country, admin1 and the actor's normalised name or the admin2."""
    kind = ALERT_KINDS[e.kind]
    labels = [("kind", kind), ("country", e.country), ("admin1", e.admin1)]
    if kind == "new-actor":
        labels.append(("actor", e.key))
    elif kind == "new-place":
        labels.append(("admin2", e.key))
    return series_key(EMERGENCE, labels)


def emergence_name(kind: str, admin1: str, what: str) -> str:
    """'new actor — Homs — Liwa Fatemiyoun': how an emergence alert reads in lists, and what silences match besides its key."""
    return f"{kind.replace('-', ' ')} — {admin1} — {what}"


def matches(text: str, key: str, name: str) -> bool:
    """A series filter applied to an emergence alert: "key:<key>" matches that alert only; other text matches
    alerts whose key or name contains it (case-insensitive); empty matches all (as monitor.series.series_matches)."""
    if text.startswith(KEY_PREFIX):
        return key == text[len(KEY_PREFIX):]
    needle = text.strip().lower()
    return not needle or needle in key.lower() or needle in name.lower()


@dataclass(frozen=True)
class EmergenceChange:
    """One emergence alert's step this week: event new | escalated | again | expired."""

    key: str
    event: str
    before: EmergenceState | None
    after: EmergenceState
    emergence: Emergence | None = None  # None for an alert that expired

    @property
    def kind(self) -> str:
        return self.after.kind

    @property
    def name(self) -> str:
        return emergence_name(self.after.kind, self.after.admin1, self.after.what)


def advance(emergences: Sequence[Emergence], states: Mapping[str, EmergenceState], *, week: str, index: int,
            weeks: int) -> list[EmergenceChange]:  # fmt: skip
    """The lifecycle step of every emergence alert for the week `week` (its week index `index`), see the module
    docstring. weeks: `[emerging] weeks`, how long an alert stays open after it was last flagged."""
    out: list[EmergenceChange] = []
    flagged: set[str] = set()
    for e in emergences:
        key = emergence_key(e)
        if key in flagged:  # the rule gives each key once a week; a second would be the same news
            continue
        flagged.add(key)
        before = states.get(key)
        kind = ALERT_KINDS[e.kind]
        if before is not None and before.last_index >= index:  # this week (or a later one) was processed for it
            continue
        if before is None or before.state == "closed" or index - before.last_index > weeks:
            after = EmergenceState(key=key, kind=kind, country=e.country, admin1=e.admin1, what=e.what, state="open",
                                   first_week=week, last_week=week, last_index=index, announced_week=week,
                                   announced_index=index, announced_actors=e.actors)  # fmt: skip
            out.append(EmergenceChange(key, "new", before, after, e))
            continue
        after = replace(before, what=e.what, last_week=week, last_index=index)
        if kind == "more-actors" and e.actors > before.announced_actors:
            event = "escalated" if before.announced_index >= 0 else "new"
            after = replace(after, announced_week=week, announced_index=index, announced_actors=e.actors)
            out.append(EmergenceChange(key, event, before, after, e))
            continue
        out.append(EmergenceChange(key, "again", before, after, e))
    for key, st in sorted(states.items()):
        if key not in flagged and st.state == "open" and index - st.last_index > weeks:
            out.append(EmergenceChange(key, "expired", st, replace(st, state="closed")))
    return out


def unannounce(change: EmergenceChange) -> EmergenceState:
    """The state after `change` when its notice reached no route (silenced, or no route takes it): a new alert
    stays never announced, an escalation keeps what was announced before."""
    if change.event == "new" or change.before is None:
        return replace(change.after, announced_week="", announced_index=-1, announced_actors=0)
    return replace(change.after, announced_week=change.before.announced_week, announced_index=change.before.announced_index,
                   announced_actors=change.before.announced_actors)  # fmt: skip


def takes(kinds: Iterable[str], kind: str) -> bool:
    """Whether a route's `kinds` take an emergence alert of `kind` (new-actor, new-place, more-actors)."""
    kinds = set(kinds)
    return EMERGENCE in kinds or kind in kinds


def rule_text(weeks: int, aliases: Mapping[str, str] | None = None) -> str:
    """The rule, in one paragraph, as the digest states it."""
    from monitor.emerging import MIN_ACTORS

    extra = ", ".join(f"{k} = {v}" for k, v in sorted((aliases or {}).items()))
    return (
        f"New actor: an armed actor (not civilians, protesters, rioters or an unidentified group) violent in an admin1 "
        f"with no violent event there in the {weeks} weeks before. "
        f"New place: an admin2 with an event this week and none in the {weeks} weeks before. "
        f"More actors: an admin1 with more distinct armed actors violent this week than in any of the {weeks} weeks before "
        f"(at least {MIN_ACTORS}). Actor names are compared without case, spacing, accents or a bracketed qualifier "
        f"(\"Islamic State (Syria)\" is \"Islamic State\"), with aliases (IS, ISIS, ISIL, Daesh = Islamic State"
        f"{'; ' + extra if extra else ''}). Each is announced once: the same actor in the same admin1, or the same place, not "
        f"again until it has been absent {weeks} weeks; more actors again only when the count rises above the one announced."
    )
