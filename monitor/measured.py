"""The measured false-alert rate of a configuration (issue 11, item 4).

`monitor backtest` stores the rate it measured (alerts per 100 series-weeks outside known surges)
under a fingerprint of what decides the alerts: each detector with its parameters, the fallback,
the levels and the `min_count` floors. A weekly run computes the same fingerprint and, when a
backtest of that configuration was stored, its report quotes the measured rate instead of the
nominal one derived from alpha.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from monitor.severity import SeveritySettings

if TYPE_CHECKING:
    from monitor.store_protocol import Storage


def fingerprint(
    models: Iterable[tuple[str, BaseModel]],
    *,
    fallback_params: BaseModel | None,
    settings: SeveritySettings,
    min_counts: Iterable[int] = (),
) -> tuple[str, dict[str, Any]]:
    """A short hash of what decides the alerts: each detector with its parameters, the fallback, the levels.

    Parameters:
        models: (detector name, parameters) of every series, as the run resolves them.
        fallback_params: the short-history fallback's parameters (its class names the detector).
        settings: the alert/warning levels and multiple-testing control.
        min_counts: the series' `min_count` floors (a different floor alerts differently).

    Returns the hash and the configuration it was computed from. A backtest and a weekly
    run with the same hash judged their weeks the same way.
    """
    detectors: dict[str, set[str]] = {}
    for name, params in models:
        detectors.setdefault(name, set()).add(json.dumps(params.model_dump(mode="json"), sort_keys=True))
    config = {
        "detectors": {name: [json.loads(p) for p in sorted(ps)] for name, ps in sorted(detectors.items())},
        "fallback": None
        if fallback_params is None
        else {"model": type(fallback_params).__name__, "params": fallback_params.model_dump(mode="json")},
        "severity": dataclasses.asdict(settings),
        "min_count": sorted({int(m) for m in min_counts}),
    }
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], config


@dataclass(frozen=True)
class MeasuredRate:
    """A stored backtest's false-alert rate, as the weekly report states it."""

    first_week: str
    last_week: str
    weeks: int
    series: int
    series_weeks: int
    alerts_per100: float
    outside_per100: float  # alerts per 100 series-weeks outside known surges
    ran_at: datetime | None

    def per_week(self, series: int) -> float:
        """False alerts a week expected for `series` series at the measured rate."""
        return self.outside_per100 / 100 * series


def measured_rate(store: Storage, digest: str):
    """The latest stored backtest rate with fingerprint `digest` over all series (no --series), or None."""
    for row in store.backtests(fingerprint=digest):
        if row["series_filter"] or row["outside_per_100"] is None:
            continue
        return MeasuredRate(
            first_week=row["first_week"], last_week=row["last_week"], weeks=int(row["weeks"]), series=int(row["series"]),
            series_weeks=int(row["series_weeks"]), alerts_per100=float(row["alerts_per_100"]),
            outside_per100=float(row["outside_per_100"]), ran_at=row["ran_at"],
        )  # fmt: skip
    return None
