"""`monitor compare`: each series before and after a dated event (issue 16, item 3).

The founding question: did Islamic State attacks in central Syria rise after the 6 February 2023
earthquake, and by how much? For every configured series (or those `--series` names), the weeks
before the event's week and the weeks from it on are compared by `monitor.detectors.rate_ratio`:
the weekly rates, the rate ratio from a negative-binomial regression with trend and season, and
its 95 % interval; one sentence per series says it in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Sequence

from monitor.assemble import build_all_series
from monitor.config import Config
from monitor.coverage import choose_week
from monitor.errors import MonitorError
from monitor.weeks import week_label, week_number, week_start_of

if TYPE_CHECKING:
    from monitor.store_protocol import Storage

#: The columns of `--format json|csv` (the JSON keys the issue names first).
COLUMNS = ("series", "before_rate", "after_rate", "rate_ratio", "ci_low", "ci_high", "before_weeks", "after_weeks",
           "before_events", "after_events", "model", "note")  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    series: str  # the series key
    name: str  # its name in words
    unit: str  # events or fatalities
    before_rate: float
    after_rate: float
    rate_ratio: float
    ci_low: float
    ci_high: float
    before_weeks: int
    after_weeks: int
    before_events: float
    after_events: float
    model: str
    note: str
    first_before: date
    event_week: date

    def row(self) -> dict:
        """The JSON/CSV row; a ratio or bound that is not a number (no events before) is null."""
        values = {c: getattr(self, c) for c in COLUMNS}
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def compare_counts(counts, *, event_week: date, before: int, after: int, key: str = "", name: str = "", unit: str = "events",
                   data_start: date | None = None) -> Comparison | None:  # fmt: skip
    """The comparison of one weekly series (a pandas Series indexed by week start); None when it has no week before.

    data_start: the first week of the data (a series starts at its own first event: the weeks from the data's
    start to it are zeros, not missing)."""
    import pandas as pd

    from monitor.detectors.rate_ratio import rate_ratio

    start = pd.Timestamp(event_week)
    if data_start is not None and len(counts) and pd.Timestamp(data_start) < counts.index[0]:
        lead = pd.date_range(pd.Timestamp(data_start), counts.index[0] - pd.Timedelta(weeks=1), freq="7D")
        counts = pd.concat([pd.Series(0.0, index=lead), counts.astype(float)])
    window = counts[(counts.index >= start - pd.Timedelta(weeks=before)) & (counts.index < start + pd.Timedelta(weeks=after))]
    pre, post = window[window.index < start], window[window.index >= start]
    if not len(pre) or not len(post):
        return None
    fit = rate_ratio(pre.to_numpy(dtype=float), post.to_numpy(dtype=float), start_week=week_number(pre.index[0].date()))
    notes = [fit.note] if fit.note else []
    if len(pre) < before:
        notes.append(f"only {len(pre)} weeks before (the data starts {pre.index[0].date()})")
    if len(post) < after:
        notes.append(f"only {len(post)} weeks after so far")
    return Comparison(key, name, unit, fit.before_rate, fit.after_rate, fit.rate_ratio, fit.ci_low, fit.ci_high, len(pre),
                      len(post), float(pre.sum()), float(post.sum()), fit.model, "; ".join(notes), pre.index[0].date(),
                      event_week)  # fmt: skip


def compare(config: Config, store: "Storage", *, event: date, before: int, after: int, now: datetime,
            series_filter: str | None = None) -> list[Comparison]:  # fmt: skip
    """Every configured series (or those the filter names) before and after `event`; the weeks after run to the
    last complete week with data when the `after` window is not over yet."""
    if before < 1 or after < 1:
        raise MonitorError("--before and --after need at least one week each")
    event_week = week_start_of(event, start=config.week.start)
    last = choose_week(config, store, week=None, now=now).week
    if last < event_week:
        raise MonitorError(f"the event's week ({week_label(event_week)}) has no data yet: the latest week with data is "
                           f"{week_label(last)}")  # fmt: skip
    end = min(last, event_week + timedelta(weeks=after - 1))
    first = store.first_event_date(end=end)
    data_start = week_start_of(first, start=config.week.start) if first else None
    out = []
    for s in build_all_series(config, store, week=end, series_filter=series_filter):
        c = compare_counts(s.counts, event_week=event_week, before=before, after=after, key=s.key,
                           name=f"{s.title or s.definition} — {s.label}", unit=s.metric, data_start=data_start)  # fmt: skip
        if c is not None:
            out.append(c)
    return out


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "∞" if x == math.inf else "n/a"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def sentence(c: Comparison, *, event: str = "") -> str:
    """One sentence: the rates before and after and their plain ratio, then the model's ratio against what the
    weeks before project (their level, and trend or season where the model has them), its interval and verdict."""
    when = event or f"the week of {c.event_week.isoformat()}"
    plain = c.after_rate / c.before_rate if c.before_rate > 0 else math.inf
    head = (f"{c.name}: {_num(c.after_rate)} {c.unit} a week in the {c.after_weeks} weeks from {when}, against "
            f"{_num(c.before_rate)} in the {c.before_weeks} weeks before (×{_num(plain)})")  # fmt: skip
    if not math.isfinite(c.rate_ratio) or not math.isfinite(c.ci_low):
        return f"{head}; {c.note or 'no ratio'}."
    verdict = ("a clear rise" if c.ci_low > 1 else "a clear fall" if c.ci_high < 1 else "no clear change")
    against = "what the weeks before project" if "trend" in c.model or "season" in c.model else "the weeks before"
    return (f"{head}; against {against}, ×{_num(c.rate_ratio)} (95 % CI {_num(c.ci_low)} to {_num(c.ci_high)}; {c.model}), "
            f"{verdict}" + (f" ({c.note})" if c.note else "") + ".")


def ranked(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Largest rate ratio first; those without one last."""
    return sorted(comparisons, key=lambda c: (not math.isfinite(c.rate_ratio), -c.rate_ratio if math.isfinite(c.rate_ratio) else 0))
