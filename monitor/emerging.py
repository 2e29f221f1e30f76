"""Emerging actors and new places (issue 16, item 2; the report section): who is new, where.

What watch teams act on besides a rising count (ACLED's Emerging Actor Tracker; "the first attack in
this district in a year"). For the reported week, from the incidents of the `weeks` weeks before it
(`[emerging] weeks`, 52 by default: twelve months):

* **new actor**: an armed actor violent in an admin1 this week that was not violent there in the
  weeks before (it may be active elsewhere);
* **new place**: an admin2 with an event this week and none in the weeks before;
* **more actors**: an admin1 where more distinct armed actors were violent this week than in any of
  the weeks before (and at least three).

Violent: any event type but ACLED's protests, riots and strategic developments (UCDP's events all
are). Armed actors: not civilians, protesters, rioters or unidentified groups. Names are compared
normalised: case, spacing and accents ignored, a trailing qualifier in brackets dropped ("Islamic
State (Syria)" is "islamic state"), and the aliases of `[emerging] aliases` applied ("IS", "ISIS",
"ISIL", "Daesh" are "islamic state" by default). Nothing is reported unless the data reaches back the
full `weeks` before the week: at the start of a series everything would be new.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

#: Event types that are not violence (ACLED's demonstrations and strategic developments).
NOT_VIOLENT = ("protests", "riots", "strategic developments")
#: Actor names (normalised) that start so are not armed actors.
NOT_ARMED = ("civilians", "protesters", "rioters", "unidentified")
#: Aliases applied after normalisation (more in `[emerging] aliases`).
ALIASES = {"is": "islamic state", "isis": "islamic state", "isil": "islamic state", "daesh": "islamic state",
           "islamic state of iraq and the levant": "islamic state", "islamic state of iraq and syria": "islamic state"}  # fmt: skip
#: At least this many distinct actors in a week for "more actors".
MIN_ACTORS = 3


@lru_cache(maxsize=65536)
def _plain(name: str) -> str:
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"\s*\([^)]*\)\s*$", "", text)  # a trailing qualifier: (Syria), (2000-)
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def actor_key(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """The name compared: 'Islamic State (Syria)', 'ISIS', ' islamic  state ' are all 'islamic state'."""
    text = _plain(name)
    table = {**ALIASES, **{_plain(k): _plain(v) for k, v in (aliases or {}).items()}}
    return table.get(text, text)


@dataclass(frozen=True)
class Emergence:
    kind: str  # "new actor" | "new place" | "more actors"
    admin1: str
    what: str  # the actor's name as written, the admin2, or "N actors"
    events: int  # its events this week
    detail: str  # the sentence for the report
    country: str = ""
    key: str = ""  # what is compared: the actor's normalised name (new actor), the admin2 (new place), "" (more actors)
    actors: int = 0  # distinct armed actors this week (more actors)


def emerging(incidents: pd.DataFrame, *, week: date, weeks: int = 52, data_start: date | Mapping[str, date] | None = None,
             aliases: Mapping[str, str] | None = None) -> list[Emergence]:  # fmt: skip
    """The emergences of the week starting `week` (see the module docstring), from `incidents` (INCIDENT_FIELDS
    columns, covering at least the `weeks` weeks before it).

    data_start: the first event date in the database, or per country ({country: date}): a country whose data does
    not reach the whole window back is left out (when it is added to the database, everything in it is new).
    """
    start = week - timedelta(weeks=weeks)
    if data_start is None or incidents.empty:
        return []
    firsts = data_start if isinstance(data_start, Mapping) else None
    if firsts is None and data_start > start:
        return []
    days = pd.to_datetime(incidents["event_date"]).dt.date
    frame = incidents.assign(day=days)
    frame = frame[(frame["day"] >= start) & (frame["day"] <= week + timedelta(days=6))]
    if firsts is not None:
        old = [c for c, first in firsts.items() if first is not None and first <= start]
        frame = frame[frame["country"].isin(old)]
    violent = frame[~frame["event_type"].str.strip().str.lower().isin(NOT_VIOLENT)]
    now, before = violent[violent["day"] >= week], violent[violent["day"] < week]
    out: list[Emergence] = []

    def actors(rows: pd.DataFrame) -> pd.DataFrame:
        long = pd.concat([rows[["country", "admin1", "actor1", "day"]].rename(columns={"actor1": "actor"}),
                          rows[["country", "admin1", "actor2", "day"]].rename(columns={"actor2": "actor"})])  # fmt: skip
        long = long[long["actor"].astype(str).str.strip() != ""]
        names = long["actor"].astype(str)
        keys = {n: actor_key(n, aliases) for n in names.unique()}  # a few hundred names among many rows
        long = long.assign(key=names.map(keys))
        return long[~long["key"].str.startswith(NOT_ARMED) & (long["key"] != "")]

    # an admin1 is its country and name (names repeat across countries: Northern, Central)
    seen = set(map(tuple, actors(before)[["country", "admin1", "key"]].drop_duplicates().to_numpy()))
    current = actors(now)
    for (country, admin1, key), rows in current.groupby(["country", "admin1", "key"], sort=True):
        if (country, admin1, key) not in seen and admin1:
            name = rows["actor"].mode().iat[0]
            out.append(Emergence("new actor", admin1, name, len(rows), f"{name}: {len(rows)} violent event(s) in {admin1} this week, "
                                 f"its first there in {weeks} weeks", country=country, key=key))  # fmt: skip
    # a place is its country, admin1 and admin2 (names repeat across states: Irepodun, Surulere)
    places_before = set(map(tuple, frame.loc[frame["day"] < week, ["country", "admin1", "admin2"]].to_numpy()))
    for (country, admin1, admin2), rows in frame[frame["day"] >= week].groupby(["country", "admin1", "admin2"], sort=True):
        if admin2 and (country, admin1, admin2) not in places_before:
            out.append(Emergence("new place", admin1, admin2, len(rows), f"{admin2} ({admin1}): {len(rows)} event(s) this week, "
                                 f"the first there in {weeks} weeks", country=country, key=admin2))  # fmt: skip
    history = actors(before)
    history = history.assign(w=[(d - start).days // 7 for d in history["day"]])
    # one pass, not one per admin1
    most_by_admin1 = history.groupby(["country", "admin1", "w"])["key"].nunique().groupby(level=[0, 1]).max()
    for (country, admin1), rows in current.groupby(["country", "admin1"], sort=True):
        n = rows["key"].nunique()
        most = int(most_by_admin1.get((country, admin1), 0))
        if admin1 and n >= MIN_ACTORS and n > most:
            out.append(Emergence("more actors", admin1, f"{n} actors", int(len(rows)), f"{admin1}: {n} distinct armed actors violent "
                                 f"this week, more than in any week of the {weeks} before (at most {most})", country=country,
                                 actors=n))  # fmt: skip
    return out
