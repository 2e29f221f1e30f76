"""`monitor backtest`: replay a detector over past weeks, each as if it were the current one.

For every series and every week in the replayed range, the detector sees only the weeks up
to that one, exactly as the weekly job would have on that Monday, and the week's levels are
decided across all series of that week (so Benjamini–Hochberg control replays too):

* detectors without state (Farrington, EARS, the ACLED rules, highest-in, trendfinder) look
  only backwards from the week they judge, so one pass over all positions equals a
  week-by-week replay (the nb-recent fallback is decided per week, as in the weekly job);
* stateful detectors (CUSUM, GLR) carry a chart from week to week that the weekly job
  starts a fixed number of weeks back (`pipeline.STATEFUL_RUN_WEEKS`): each replayed week is
  run on its own, on the counts up to it, so the answer is the one the job would have given.

What a replay cannot reproduce: the database holds today's version of every incident, so
late reports and revisions that arrived after a week are in its counts; and the series set
is the one of the last replayed week (a region that only later reached `min_events` is
replayed over its whole span).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from monitor.detectors import apply_min_count, get_detector, run_detector
from monitor.series import week_label
from monitor.severity import SeveritySettings, assign_levels

#: Columns of the detail table, one row per series and replayed week.
DETAIL_COLUMNS: tuple[str, ...] = (
    "series", "week", "week_start", "observed", "expected", "threshold", "pvalue", "qvalue", "alarm", "level",
    "detector", "note",
)  # fmt: skip


@dataclass(frozen=True)
class ReplaySeries:
    """One series to replay: its key, weekly counts and detector."""

    key: str
    counts: pd.Series
    detector: str
    params: BaseModel
    min_count: int = 0  # no week with a smaller count alerts (the series' min_count)


@dataclass(frozen=True)
class Backtest:
    """The replay: every (series, week) row, and summaries per series and per week."""

    detail: pd.DataFrame
    per_series: pd.DataFrame
    per_week: pd.DataFrame
    first_week: date
    last_week: date
    settings: SeveritySettings

    @property
    def weeks(self) -> int:
        return len(self.per_week)


def replay_counts(
    counts: pd.Series, *, detector: str, params: BaseModel, fallback_params: BaseModel | None, first: int, min_count: int = 0
) -> pd.DataFrame:
    """The detector's answer for positions `first`..end of `counts`, each week as if it were the current one."""
    from monitor.pipeline import detect_counts

    n = len(counts)
    if first >= n:
        return pd.DataFrame()
    if not get_detector(detector).stateful:
        out = run_detector(detector, params, counts, weeks=range(first, n), fallback_params=fallback_params)
        return apply_min_count(out, min_count)
    rows = [
        detect_counts(
            counts.iloc[: t + 1], lookback=0, detector=detector, params=params, fallback_params=fallback_params, min_count=min_count
        )
        for t in range(first, n)
    ]
    return pd.concat(rows, ignore_index=True)


def backtest(
    series: Sequence[ReplaySeries],
    *,
    first_week: date,
    last_week: date,
    settings: SeveritySettings,
    fallback_params: BaseModel | None = None,
) -> Backtest:
    """Replay every series over the weeks `first_week`..`last_week` (week starts, inclusive).

    Parameters:
        series: the series to replay (counts zero-filled and consecutive, ending at or after
            `last_week`; later weeks are ignored).
        first_week, last_week: the replayed range.
        settings: alert/warning levels and multiple-testing control, applied per week
            across all series (as the weekly job does).
        fallback_params: the fallback's (nb-recent) parameters for weeks with too little history (None: defaults).
    """
    if first_week > last_week:
        raise ValueError(f"the first week {week_label(first_week)} is after the last {week_label(last_week)}")
    parts = []
    for s in series:
        counts = s.counts[s.counts.index <= pd.Timestamp(last_week)]
        first = int(np.searchsorted(counts.index.to_numpy(), np.datetime64(pd.Timestamp(first_week))))
        out = replay_counts(
            counts, detector=s.detector, params=s.params, fallback_params=fallback_params, first=first, min_count=s.min_count
        )
        if out.empty:
            continue
        parts.append(out.assign(series=s.key))
    if parts:
        frame = assign_levels(pd.concat(parts, ignore_index=True), settings, by="week_start")
    else:
        frame = pd.DataFrame(columns=["series", "week_start", "count", "expected", "upperbound", "pvalue", "qvalue", "alarm", "level", "detector", "note"])
    detail = pd.DataFrame(
        {
            "series": frame["series"].astype(str),
            "week": [week_label(pd.Timestamp(d).date()) for d in frame["week_start"]],
            "week_start": pd.to_datetime(frame["week_start"]).dt.date,
            "observed": frame["count"].astype(float),
            "expected": frame["expected"].astype(float),
            "threshold": frame["upperbound"].astype(float),
            "pvalue": pd.to_numeric(frame["pvalue"], errors="coerce").astype(float),
            "qvalue": pd.to_numeric(frame["qvalue"], errors="coerce").astype(float),
            "alarm": frame["alarm"].astype("boolean"),
            "level": frame["level"].astype(str),
            "detector": frame["detector"].astype(str),
            "note": frame["note"].astype(str),
        },
        columns=list(DETAIL_COLUMNS),
    ).sort_values(["series", "week_start"], kind="stable", ignore_index=True)
    return Backtest(
        detail=detail,
        per_series=_per_series(detail),
        per_week=_per_week(detail),
        first_week=first_week,
        last_week=last_week,
        settings=settings,
    )


def _episodes(alarms: pd.Series) -> int:
    """Runs of consecutive alerted weeks (a surge alerted 3 weeks running is one episode)."""
    flags = alarms.fillna(False).to_numpy(dtype=bool)
    return int(np.sum(flags & ~np.concatenate([[False], flags[:-1]])))


def _per_series(detail: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for key, sub in detail.groupby("series", sort=True):
        alerted = sub.loc[sub["alarm"].fillna(False).to_numpy(dtype=bool), "week"]
        rows.append(
            {
                "series": key,
                "weeks": len(sub),
                "alerts": int(len(alerted)),
                "episodes": _episodes(sub["alarm"]),
                "warnings": int((sub["level"] == "warning").sum()),
                "undecided": int(sub["alarm"].isna().sum()),
                "first_alert": alerted.iloc[0] if len(alerted) else "",
                "last_alert": alerted.iloc[-1] if len(alerted) else "",
                "detectors": ", ".join(sorted(sub["detector"].unique())),
            }
        )
    table = pd.DataFrame(rows, columns=["series", "weeks", "alerts", "episodes", "warnings", "undecided", "first_alert", "last_alert", "detectors"])
    return table.sort_values(["alerts", "series"], ascending=[False, True], kind="stable", ignore_index=True)


def _per_week(detail: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for week, sub in detail.groupby("week", sort=True):
        alarm = sub["alarm"].fillna(False).to_numpy(dtype=bool)
        rows.append(
            {
                "week": week,
                "series": len(sub),
                "alerts": int(alarm.sum()),
                "warnings": int((sub["level"] == "warning").sum()),
                "undecided": int(sub["alarm"].isna().sum()),
                "alerted": "; ".join(sub.loc[alarm, "series"]),
            }
        )
    return pd.DataFrame(rows, columns=["week", "series", "alerts", "warnings", "undecided", "alerted"])


def summary_lines(result: Backtest) -> list[str]:
    """A few sentences: range, series, alerts a week, busiest weeks and series."""
    weeks = result.weeks
    if not weeks:
        return [f"No series had weeks to replay between {week_label(result.first_week)} and {week_label(result.last_week)}."]
    alerts = int(result.per_week["alerts"].sum())
    quiet = int((result.per_week["alerts"] == 0).sum())
    series = len(result.per_series)
    lines = [
        f"Replayed {weeks} weeks ({week_label(result.first_week)} to {week_label(result.last_week)}) of {series} series "
        f"({len(result.detail):,} series-weeks) under {result.settings.multiple_testing} control.",
        f"{alerts} alerts in all ({alerts / weeks:.2f} a week; {quiet} of {weeks} weeks had none), "
        f"{int(result.per_week['warnings'].sum())} warnings, {int(result.per_week['undecided'].sum())} undecided series-weeks.",
    ]
    busiest = result.per_week.sort_values(["alerts", "week"], ascending=[False, True], kind="stable").head(3)
    busiest = busiest[busiest["alerts"] > 0]
    if len(busiest):
        lines.append("Busiest weeks: " + ", ".join(f"{r.week} ({r.alerts})" for r in busiest.itertuples()) + ".")
    return lines


def markdown_table(frame: pd.DataFrame) -> list[str]:
    from monitor.report.markdown import md_escape, md_table

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return md_escape(value)

    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return md_table([str(c) for c in frame.columns], rows, "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns))


def _csv_text(frame: pd.DataFrame) -> str:
    """CSV of a table whose text cells cannot run as spreadsheet formulas (series names come from input files)."""
    from monitor.report.markdown import csv_safe

    safe = frame.apply(lambda col: col if pd.api.types.is_numeric_dtype(col) else col.map(csv_safe))
    return safe.to_csv(index=False)


def write_backtest(result: Backtest, out_dir: Path, *, title: str) -> Path:
    """Write backtest_detail.csv, backtest_series.csv, backtest_weeks.csv and backtest.md; return the .md path."""
    from monitor.report.files import atomic_write

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    detail = result.detail.assign(alarm=result.detail["alarm"].map(lambda a: "" if pd.isna(a) else int(bool(a))))
    atomic_write(out_dir / "backtest_detail.csv", _csv_text(detail))
    atomic_write(out_dir / "backtest_series.csv", _csv_text(result.per_series))
    atomic_write(out_dir / "backtest_weeks.csv", _csv_text(result.per_week))
    lines = [f"# Backtest: {title}", "", *summary_lines(result), "", "## Alerts per series", ""]
    lines += markdown_table(result.per_series)
    lines += ["", "## Alerts per week", ""]
    lines += markdown_table(result.per_week)
    lines += [
        "",
        "Each week is judged on the data up to it, as the weekly job would have judged it, but with today's "
        "version of the data: late reports and revisions are included.",
    ]
    return atomic_write(out_dir / "backtest.md", "\n".join(lines) + "\n")
