"""The configured series of one week, assembled from the store.

Reads the weekly incident cells and count rows the [[series]] definitions need (only one series'
incidents for `--series key:...`), builds every series with `monitor.series.build_series`, and
says why each definition that yields no series yields none. Also the series a silence or a
`--series` filter names, and the nearest keys when it names none.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Sequence

import pandas as pd

from monitor.config import Config
from monitor.coverage import choose_week
from monitor.errors import UnknownSeriesError
from monitor.series import (
    KEY_PREFIX,
    build_series,
    cells_frame,
    definition_problems,
    nearest_keys,
    series_matches,
    shell_quote,
    unescape_label,
    week_label,
)
from monitor.types import (
    SeriesProblem,
    WeeklySeries,
)

if TYPE_CHECKING:
    from monitor.store_protocol import Storage


def definition_of(config: Config, name: str):
    """The [[series]] definition named `name`."""
    return next(d for d in config.series if d.name == name)


def build_all_series(config: Config, store: Storage, *, week: date, series_filter: str | None = None) -> list[WeeklySeries]:
    """Every configured series up to `week`, optionally only those `series_filter` matches
    (monitor.series.series_matches: `key:<series key>` exactly, else text in the key or name).

    UnknownSeriesError (exit 1) when the filter matches none of the series there are, naming the nearest keys.
    """
    return series_and_problems(config, store, week=week, series_filter=series_filter)[0]


def series_and_problems(
    config: Config, store: Storage, *, week: date, series_filter: str | None = None
) -> tuple[list[WeeklySeries], list[SeriesProblem]]:
    """`build_all_series` and the [[series]] definitions that yielded no series, with why
    (monitor.series.definition_problems). The fast path of one spelled-out key reads only that
    series' incidents and questions no definition."""
    from monitor.series import WEEKDAYS, week_start_of

    week_end = week + timedelta(days=6)
    start_day = WEEKDAYS.index(config.week.start)
    counts = store.counts_frame(end=week_end)
    narrowed = _exact_labels(config, series_filter)
    if narrowed is not None:  # one spelled-out series key: read only its incidents
        definition, equal = narrowed
        cells = store.incident_cells(end=week_end, columns=_cell_columns(config), week_start=start_day, equal=equal)
        # its weeks start where the definition's start in a full run, not at this group's first incident
        first = _definition_start(store, definition, end=week_end)
        starts = {definition.name: week_start_of(first, start=config.week.start)} if first else {}
        series = build_series(cells_frame(cells, counts), [definition], week=week, week_start=config.week.start,
                              detector_of=config.detector_params, starts=starts)  # fmt: skip
        series = _matching(series, series_filter)
        if series:
            return series, []
        # nothing as typed (e.g. in another letter case, which the filter ignores): read everything
    cells = store.incident_cells(end=week_end, columns=_cell_columns(config), week_start=start_day)
    records = cells_frame(cells, counts)
    series = build_series(records, config.series, week=week, week_start=config.week.start,
                          detector_of=config.detector_params)  # fmt: skip
    problems = definition_problems(records[records["date"] <= pd.Timestamp(week_end)], config.series, series,
                                   week=week_label(week))  # fmt: skip
    if not series_filter:
        return series, problems
    chosen = _matching(series, series_filter)
    if series and not chosen:
        raise UnknownSeriesError(unknown_series_message(series_filter, series))
    return chosen, problems


def silence_targets(config: Config, store: Storage, *, series_filter: str, now: datetime) -> list[str]:
    """The keys of the series and emergence alerts `series_filter` matches, for `monitor silence add`: the
    series as of the latest week with data, and the emergence alerts stored (monitor.alerts.emergence).
    UnknownSeriesError (exit 1) when it matches none of them; [] when there are none yet (nothing
    ingested, or no [[series]] yields any)."""
    from monitor.alerts.emergence import emergence_name, matches

    emerged = [k for k, st in store.emergence_states().items() if matches(series_filter, k, emergence_name(st.kind, st.admin1, st.what))]
    week = choose_week(config, store, week=None, now=now).week
    try:
        keys = [s.key for s in build_all_series(config, store, week=week, series_filter=series_filter)]
    except UnknownSeriesError:
        if not emerged:
            raise
        keys = []
    return keys + emerged


def unknown_series_message(series_filter: str, series: Sequence[WeeklySeries]) -> str:
    """`no series matches --series 'X' (of N); nearest: ...` and how to name one exactly."""
    near = nearest_keys(series_filter, series)
    text = f"no series matches --series {shell_quote(series_filter)} (of {len(series):,} series)"
    if near:
        text += "; nearest: " + ", ".join(shell_quote(KEY_PREFIX + k) for k in near)
    else:
        sample = [shell_quote(KEY_PREFIX + s.key) for s in series[:5]]
        text += f" (e.g. {', '.join(sample)}{', ...' if len(series) > 5 else ''})"
    return (text + ". Name one series exactly as 'key:<series key>' (the keys `monitor check --format csv` lists), "
            "or give any text of the keys or names")


def _matching(series: list[WeeklySeries], series_filter: str | None) -> list[WeeklySeries]:
    return [s for s in series if series_matches(series_filter or "", s)]


def _definition_start(store: Storage, definition, *, end: date) -> date | None:
    """The first event date of a definition's incidents (its series' weeks start there in a full run);
    actor names are matched as the series do (`monitor.series`), over the distinct actors."""
    f = definition.filters
    if not (f.actor or f.actor_contains):
        return store.first_event_date(end=end, within=_filter_values(definition))
    from monitor.series import _actor_named

    firsts = [day for name, day in store.actor_first_dates(end=end, within=_filter_values(definition)).items() if _actor_named(name, f)]
    return min(firsts, default=None)


def _filter_values(definition) -> dict[str, list[str]]:
    """A definition's filters on incident columns (those `Store.first_event_date` can apply)."""
    f = definition.filters
    return {c: list(getattr(f, c)) for c in ("source", "country", "admin1", "admin2", "event_type", "sub_event_type") if getattr(f, c)}


def _cell_columns(config: Config) -> set[str]:
    """Incident columns the configured series are cut or filtered by."""
    columns: set[str] = set()
    for d in config.series:
        for dim in d.group_by:
            columns |= {"actor1", "actor2"} if dim == "actor" else {dim}
        f = d.filters
        columns |= {c for c in ("country", "admin1", "admin2", "event_type", "sub_event_type") if getattr(f, c)}
        if f.actor or f.actor_contains:
            columns |= {"actor1", "actor2"}
    return columns


def _exact_labels(config: Config, series_filter: str | None):
    """(definition, {column: value}) that every series matching `series_filter` must have, when
    the filter spells out a series key (`admin1_type/country=Syria|admin1=Aleppo|...`): `check`
    of one series then reads only its own incidents. None otherwise. The last label is left
    out (the filter may stop inside its value), and so is any filter that another
    definition's title could match."""
    if series_filter and series_filter.startswith(KEY_PREFIX):  # exactly one key: its last label is whole too
        series_filter = series_filter[len(KEY_PREFIX):] + "|"
    if not series_filter or "/" not in series_filter:
        return None
    name, _, rest = series_filter.partition("/")
    definition = next((d for d in config.series if d.name == name), None)
    needle = series_filter.rstrip("|").lower()
    if definition is None or any(needle in (d.title or d.name).lower() for d in config.series):
        return None
    labels = rest.split("|")[:-1]
    equal: dict[str, str] = {}
    for dim, label in zip(definition.group_by, labels):
        column, sep, value = label.partition("=")
        if not sep or column != dim or dim == "actor":
            break
        value = unescape_label(value)  # `|`, `=` and `%` in a label are percent-encoded in its key
        equal[dim] = "" if value == "(unknown)" else value
    return (definition, equal) if equal else None
