"""`monitor backtest`: replay a detector over past weeks, each as if it were the current one.

For every series and every week in the replayed range, the detector sees only the weeks up
to that one, exactly as the weekly job would have on the day it ran, and the week's levels are
decided across all series of that week (so Benjamini–Hochberg control replays too):

* detectors without state (Farrington, EARS, the ACLED rules, highest-in, trendfinder) look
  only backwards from the week they judge, so one pass over the weeks they judge equals a
  week-by-week replay; the weeks their nb-recent fallback judges (too little history) carry
  its chart and are replayed one by one, as the weekly job runs them;
* stateful detectors (CUSUM, GLR) carry a chart from week to week that the weekly job
  starts a fixed number of weeks back (`detection.STATEFUL_RUN_WEEKS`): each replayed week is
  run on its own, on the counts up to it, so the answer is the one the job would have given.

The replay measures the false-alert burden the weekly report quotes (issue 11, item 4):
alerts per 100 series-weeks, in all and outside known surges (`monitor.surges`), and the
share of alerts per detector actually used (a fallback on short history counts under its
own name). `monitor backtest` stores it in the database under a fingerprint of the
detectors, their parameters and the alert levels; a report made with the same
fingerprint states it instead of the nominal rate derived from alpha.

What this replay cannot reproduce: the database holds today's version of every incident, so
late reports and revisions that arrived after a week are in its counts (`monitor backtest
--as-known`, monitor.asknown, replays each week as it was known at its run); and the series set
is the one of the last replayed week (a region that only later reached `min_events` is
replayed over its whole span).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from monitor.assemble import build_all_series
from monitor.config import Config
from monitor.coverage import choose_week
from monitor.detection import detect_counts_many, resolve_params
from monitor.detectors import FALLBACK, apply_min_count, get_detector, run_detector_many
from monitor.errors import MonitorError, NoDataError
from monitor.measured import fingerprint
from monitor.severity import SeveritySettings, assign_levels
from monitor.sources.counts import read_series_csv
from monitor.surges import RULE_TEXT, in_surge
from monitor.types import Progress
from monitor.weeks import week_label

if TYPE_CHECKING:
    from monitor.store_protocol import Storage

#: Columns of the detail table, one row per series and replayed week.
DETAIL_COLUMNS: tuple[str, ...] = (
    "series", "week", "week_start", "observed", "expected", "threshold", "pvalue", "qvalue", "alarm", "level",
    "detector", "note", "surge",
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
    burden: Burden
    fingerprint: str = ""  # see `fingerprint`: equal for a weekly run that decides its alerts the same way
    config: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the fingerprint was computed from

    @property
    def weeks(self) -> int:
        return len(self.per_week)


def _per100(alerts: int, series_weeks: int) -> float:
    return 100 * alerts / series_weeks if series_weeks else math.nan


@dataclass(frozen=True)
class Burden:
    """The alert burden a backtest measured: what the report quotes as the false-alert rate.

    Alerts are weeks at the alert level (emailed); warnings are counted apart and are not
    alerts. Series-weeks include undecided ones (the weekly job runs them too). "Outside
    surges" leaves out the series-weeks inside a known surge (`monitor.surges.RULE_TEXT`),
    so its alerts are false alerts by that rule.
    """

    first_week: str
    last_week: str
    weeks: int
    series: int
    series_weeks: int
    alerts: int
    warnings: int
    undecided: int
    outside_series_weeks: int  # series-weeks outside every known surge
    outside_alerts: int  # alerts in those weeks: false alerts by the surge rule
    by_detector: dict[str, dict[str, int]]  # detector actually used -> {"alerts", "warnings", "series_weeks"}

    @property
    def per100(self) -> float:
        """Alerts per 100 series-weeks, surges included."""
        return _per100(self.alerts, self.series_weeks)

    @property
    def outside_per100(self) -> float:
        """Alerts per 100 series-weeks outside known surges: the measured false-alert rate."""
        return _per100(self.outside_alerts, self.outside_series_weeks)

    @property
    def warnings_per100(self) -> float:
        return _per100(self.warnings, self.series_weeks)

    def shares(self) -> str:
        """Alerts per detector actually used, e.g. "farrington-cusum 22 (34%), nb-recent 42 (66%)"."""
        items = sorted(self.by_detector.items(), key=lambda kv: (-kv[1]["alerts"], kv[0]))
        return ", ".join(f"{d} {n['alerts']} ({n['alerts'] / self.alerts:.0%})" if self.alerts else f"{d} 0" for d, n in items)

    def as_dict(self) -> dict[str, Any]:
        """Every figure, for backtest_summary.json and the database."""
        return {
            **dataclasses.asdict(self),
            "alerts_per_100_series_weeks": _round(self.per100),
            "warnings_per_100_series_weeks": _round(self.warnings_per100),
            "alerts_per_100_series_weeks_outside_surges": _round(self.outside_per100),
            "surge_rule": RULE_TEXT,
        }


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def measure(detail: pd.DataFrame, *, first_week: date, last_week: date) -> Burden:
    """The alert burden of a backtest's detail rows (DETAIL_COLUMNS), in all, outside surges and per detector."""
    alert = detail["alarm"].fillna(False).to_numpy(dtype=bool)
    warning = (detail["level"] == "warning").to_numpy()
    outside = ~detail["surge"].to_numpy(dtype=bool)
    by_detector = {
        str(name): {
            "alerts": int(alert[idx].sum()),
            "warnings": int(warning[idx].sum()),
            "series_weeks": int(len(idx)),
        }
        for name, idx in detail.groupby("detector", sort=True).indices.items()
    }
    return Burden(
        first_week=week_label(first_week),
        last_week=week_label(last_week),
        weeks=int(detail["week"].nunique()),
        series=int(detail["series"].nunique()),
        series_weeks=len(detail),
        alerts=int(alert.sum()),
        warnings=int(warning.sum()),
        undecided=int(detail["alarm"].isna().sum()),
        outside_series_weeks=int(outside.sum()),
        outside_alerts=int((alert & outside).sum()),
        by_detector=by_detector,
    )


#: Weeks replayed one by one (truncated series) per batched call: bounds the memory of a large backtest.
REPLAY_CHUNK = 4000
#: Series per batched call of a detector that replays its charts (`detect_cuts_many`): bounds the memory of a
#: backtest of many series while series of one calendar share Farrington's templates.
CUTS_CHUNK = 200


def replay_many(
    jobs: Sequence[tuple[pd.Series, int, int]], *, detector: str, params: BaseModel, fallback_params: BaseModel | None,
    progress: Callable[[int], None] | None = None,
) -> list[pd.DataFrame]:
    """The detector's answer for positions `first`..end of each job's `counts` ((counts, first, min_count) jobs, one
    detector and parameters), each week as if it were the current one: the rows the weekly job would have written.

    Weeks judged by a chart (the detector's, or its fallback's on weeks with too little history) depend on where the
    series ended, so each is judged on the series cut at it; all those cut series, of every job, go to the detector in
    a few batched calls (`detect_counts_many`: Farrington's templates are shared by every week of the same date). The
    weeks a detector without a chart judges itself are judged in one pass per series. A chart detector whose every
    other figure of a week looks only backwards (`DetectorSpec.detect_cuts_many`: farrington-cusum, nb-recent) skips the
    cut series: `_replay_cuts` computes each week's baseline once and runs only each week's chart.

    progress: told the number of weeks replayed so far (of all jobs) as the replay goes.
    """
    spec = get_detector(detector)
    fallback = get_detector(FALLBACK)
    tell = progress or (lambda weeks: None)
    if spec.detect_cuts_many is not None and not spec.in_control_weeks and fallback.detect_cuts_many is not None:
        outs, done = [], 0
        for at in range(0, len(jobs), CUTS_CHUNK):
            part = jobs[at : at + CUTS_CHUNK]
            outs += _replay_cuts(part, spec=spec, params=params, fallback=fallback, fallback_params=fallback_params or fallback.params())
            done += sum(max(len(counts) - first, 0) for counts, first, _ in part)
            tell(done)
        return outs
    cuts: list[tuple[int, int]] = []  # (job, t) of the weeks replayed one by one
    whole: list[tuple[int, int]] = []  # (job, first position) of the weeks judged in one pass
    for i, (counts, first, _) in enumerate(jobs):
        n = len(counts)
        if first >= n:
            continue
        own = spec.series_min_history(params, counts) if spec.series_min_history else spec.min_history(params)
        one_by_one = n if spec.stateful else min(max(first, own), n)
        cuts += [(i, t) for t in range(first, one_by_one)]
        if one_by_one < n:
            whole.append((i, one_by_one))
    parts: list[list[pd.DataFrame]] = [[] for _ in jobs]
    for start in range(0, len(cuts), REPLAY_CHUNK):
        chunk = cuts[start : start + REPLAY_CHUNK]
        outs = detect_counts_many(
            [jobs[i][0].iloc[: t + 1] for i, t in chunk], lookback=0, detector=detector, params=params,
            fallback_params=fallback_params, min_counts=[jobs[i][2] for i, _ in chunk],
        )  # fmt: skip
        for (i, _), out in zip(chunk, outs):
            parts[i].append(out)
        tell(start + len(chunk))
    if whole:
        outs = run_detector_many(detector, params, [jobs[i][0] for i, _ in whole],
                                 weeks=[range(t, len(jobs[i][0])) for i, t in whole], fallback_params=fallback_params)  # fmt: skip
        for (i, _), out in zip(whole, outs):
            parts[i].append(apply_min_count(out, jobs[i][2]))
        tell(len(cuts) + sum(len(jobs[i][0]) - t for i, t in whole))
    return [pd.concat(p, ignore_index=True) if p else pd.DataFrame() for p in parts]


def _replay_cuts(jobs: Sequence[tuple[pd.Series, int, int]], *, spec, params: BaseModel, fallback,
                 fallback_params: BaseModel) -> list[pd.DataFrame]:  # fmt: skip
    """`replay_many` of (counts, first, min_count) jobs for a detector with `detect_cuts_many` (and no in-control
    window): the rows the weekly job would have written, each week judged on a chart started where
    `detection.detect_counts_many` starts it for the series cut at that week, but every week's baseline computed
    once (issue 17: a backtest of 151 weeks x 28 series in seconds), the series batched (Farrington's templates are
    shared by series of the same calendar).

    Which detector judges week t does not depend on where the series ends: the detector from its own history
    `own` on, the fallback from its `fb_need` until then, and before both the detector itself (undecided).
    """
    from monitor.detection import STATEFUL_RUN_WEEKS
    from monitor.detectors import _before, _join, _label

    plans = []  # per job: (own, fb_need, the detector's (chart start, t), the fallback's)
    for counts, first, _ in jobs:
        own = spec.series_min_history(params, counts) if spec.series_min_history else spec.min_history(params)
        fb_need = fallback.min_history(fallback_params) if fallback.name != spec.name else own
        mine, backup = [], []
        for t in range(first, len(counts)):
            if t >= own:
                mine.append((max(own, t + 1 - STATEFUL_RUN_WEEKS), t))
            elif t >= fb_need and fallback.name != spec.name:
                start = max(min(own, fb_need), t + 1 - STATEFUL_RUN_WEEKS)
                backup.append((max(start, fb_need), t))
            else:  # nothing can judge it: the detector says why (alarm NA)
                mine.append((t, t))
        plans.append((own, fb_need, mine, backup))

    def batched(detector, model, which: int) -> list[pd.DataFrame | None]:
        asked = [i for i, plan in enumerate(plans) if plan[which]]
        done = detector.detect_cuts_many([jobs[i][0] for i in asked], model, [plans[i][which] for i in asked]) if asked else []
        out: list[pd.DataFrame | None] = [None] * len(jobs)
        for i, frame in zip(asked, done):
            out[i] = frame
        return out

    mines = batched(spec, params, 2)
    backups = batched(fallback, fallback_params, 3) if fallback.name != spec.name else [None] * len(jobs)
    results = []
    for (counts, first, floor), (own, fb_need, mine, backup), out, extra_out in zip(jobs, plans, mines, backups):
        parts = []
        if out is not None:
            out["detector"] = spec.name
            out["fallback_from"] = ""
            if fallback.name != spec.name:
                extra = f"{_label(fallback.name, fallback_params)} fallback needs {fb_need} weeks"
                out["note"] = [_join(note, extra) if t < fb_need else note for (_, t), note in zip(mine, out["note"])]
            parts.append(out.set_axis([t for _, t in mine]))
        if extra_out is not None:
            out = extra_out
            out["detector"] = fallback.name
            out["fallback_from"] = spec.name
            out["note"] = [_join(_before(spec.name, own, 0, t) + f": {_label(fallback.name, fallback_params)} used", note)
                           for (_, t), note in zip(backup, out["note"])]  # fmt: skip
            parts.append(out.set_axis([t for _, t in backup]))
        if not parts:
            results.append(pd.DataFrame())
            continue
        columns: list[str] = []
        for part in parts:
            columns += [c for c in part.columns if c not in columns and c not in ("detector", "fallback_from", "note")]
        columns += ["detector", "fallback_from", "note"]
        result = pd.concat([p.reindex(columns=columns) for p in parts]).sort_index().reset_index(drop=True)
        result["alarm"] = result["alarm"].astype("boolean")
        results.append(apply_min_count(result, floor))
    return results


def replay_counts(
    counts: pd.Series, *, detector: str, params: BaseModel, fallback_params: BaseModel | None, first: int, min_count: int = 0
) -> pd.DataFrame:
    """The detector's answer for positions `first`..end of `counts`, each week as if it were the current one."""
    return replay_many([(counts, first, min_count)], detector=detector, params=params, fallback_params=fallback_params)[0]


def backtest(
    series: Sequence[ReplaySeries],
    *,
    first_week: date,
    last_week: date,
    settings: SeveritySettings,
    fallback_params: BaseModel | None = None,
    progress: Progress | None = None,
) -> Backtest:
    """Replay every series over the weeks `first_week`..`last_week` (week starts, inclusive).

    Parameters:
        series: the series to replay (counts zero-filled and consecutive, ending at or after
            `last_week`; later weeks are ignored).
        first_week, last_week: the replayed range.
        settings: alert/warning levels and multiple-testing control, applied per week
            across all series (as the weekly job does).
        fallback_params: the fallback's (nb-recent) parameters for weeks with too little history (None: defaults).
        progress: told ("series-weeks", replayed, total) as the replay goes.
    """
    if first_week > last_week:
        raise ValueError(f"the first week {week_label(first_week)} is after the last {week_label(last_week)}")
    cut, firsts = [], []
    for s in series:
        counts = s.counts[s.counts.index <= pd.Timestamp(last_week)]
        cut.append(counts)
        firsts.append(int(np.searchsorted(counts.index.to_numpy(), np.datetime64(pd.Timestamp(first_week)))))
    groups: dict[tuple[str, str], list[int]] = {}  # one batched replay per detector and parameters
    for i, s in enumerate(series):
        groups.setdefault((s.detector, s.params.model_dump_json()), []).append(i)
    outs: list[pd.DataFrame] = [pd.DataFrame()] * len(series)
    total = sum(max(len(c) - f, 0) for c, f in zip(cut, firsts))
    before = 0
    for members in groups.values():
        head = series[members[0]]
        told = None if progress is None else (lambda weeks, base=before: progress("series-weeks", base + weeks, total))
        replayed = replay_many([(cut[i], firsts[i], series[i].min_count) for i in members],
                               detector=head.detector, params=head.params, fallback_params=fallback_params, progress=told)  # fmt: skip
        before += sum(max(len(cut[i]) - firsts[i], 0) for i in members)
        for i, out in zip(members, replayed):
            outs[i] = out
    parts = []
    for s, counts, first, out in zip(series, cut, firsts, outs):
        if out.empty:
            continue
        # weeks inside a known surge, by the stated rule on the counts (not on the detector's answer)
        surge_weeks = counts.index[first:][in_surge(counts.to_numpy(dtype=float).tolist(), lo=first)]
        parts.append(out.assign(series=s.key, surge=pd.to_datetime(out["week_start"]).isin(surge_weeks)))
    if parts:
        frame = assign_levels(pd.concat(parts, ignore_index=True), settings, by="week_start")
    else:
        frame = pd.DataFrame(columns=["series", "week_start", "count", "expected", "upperbound", "pvalue", "qvalue", "alarm", "level", "detector", "note", "surge"])
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
            "surge": frame["surge"].astype(bool),
        },
        columns=list(DETAIL_COLUMNS),
    ).sort_values(["series", "week_start"], kind="stable", ignore_index=True)
    digest, used = fingerprint(
        ((s.detector, s.params) for s in series),
        fallback_params=fallback_params,
        settings=settings,
        min_counts=(s.min_count for s in series),
    )
    return Backtest(
        detail=detail,
        per_series=_per_series(detail),
        per_week=_per_week(detail),
        first_week=first_week,
        last_week=last_week,
        settings=settings,
        burden=measure(detail, first_week=first_week, last_week=last_week),
        fingerprint=digest,
        config=used,
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
    b = result.burden
    lines += [
        f"Alerts per 100 series-weeks: {b.per100:.2f} in all, {b.outside_per100:.2f} outside known surges "
        f"({b.outside_alerts} alerts in {b.outside_series_weeks:,} series-weeks: the false-alert rate reports quote). "
        f"Warnings are counted apart, not as alerts: {b.warnings} ({b.warnings_per100:.2f} per 100 series-weeks).",
        f"Alerts by detector used: {b.shares() or 'none'}.",
        f"Known surge: {RULE_TEXT} ({b.series_weeks - b.outside_series_weeks:,} series-weeks in-surge).",
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


def csv_text(frame: pd.DataFrame) -> str:
    """CSV of a table whose text cells cannot run as spreadsheet formulas (series names come from input files)."""
    from monitor.report.markdown import csv_safe

    safe = frame.apply(lambda col: col if pd.api.types.is_numeric_dtype(col) else col.map(csv_safe))
    return safe.to_csv(index=False)


def write_backtest(result: Backtest, out_dir: Path, *, title: str) -> Path:
    """Write backtest_detail.csv, backtest_series.csv, backtest_weeks.csv, backtest_summary.json and backtest.md.

    Returns the .md path.
    """
    from monitor.atomic import atomic_write

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    detail = result.detail.assign(
        alarm=result.detail["alarm"].map(lambda a: "" if pd.isna(a) else int(bool(a))), surge=result.detail["surge"].astype(int)
    )
    atomic_write(out_dir / "backtest_detail.csv", csv_text(detail))
    atomic_write(out_dir / "backtest_series.csv", csv_text(result.per_series))
    atomic_write(out_dir / "backtest_weeks.csv", csv_text(result.per_week))
    summary = {"title": title, "multiple_testing": result.settings.multiple_testing, **result.burden.as_dict()}
    atomic_write(out_dir / "backtest_summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
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


def backtest_store(
    config: Config,
    store: Storage,
    *,
    first_week: date | None,
    last_week: date | None,
    weeks: int,
    now: datetime,
    series_filter: str | None = None,
    detector: str | None = None,
    params: dict | None = None,
    progress: Progress | None = None,
):
    """`monitor backtest` on the database: replay the configured series (or one detector) week by week.

    last_week defaults to the latest week with data (`monitor.coverage.choose_week`); first_week to
    `weeks` - 1 weeks before it. NoDataError when no source's data reaches last_week.
    """
    coverage = choose_week(config, store, week=last_week, now=now)
    if not coverage.reached:
        raise NoDataError(coverage.no_data_message(option="--to"))
    last = coverage.week
    first = first_week if first_week is not None else last - timedelta(weeks=weeks - 1)
    if first > last:
        raise MonitorError(
            f"--from {week_label(first)} is after the last week to replay, {week_label(last)}"
            + ("" if coverage.asked else " (the latest week with data)") + ": pass an earlier --from"
        )
    series = build_all_series(config, store, week=last, series_filter=series_filter)
    if not series:
        raise MonitorError(
            "no series to backtest" + (f" matching '{series_filter}'" if series_filter else "")
            + " (ingest data first, or check the [[series]] definitions)"
        )
    replay = []
    for s in series:
        name, model = resolve_params(config, s, detector=detector, overrides=params)
        replay.append(ReplaySeries(key=s.key, counts=s.counts, detector=name, params=model, min_count=s.min_count))
    return backtest(
        replay, first_week=first, last_week=last, settings=config.detection.severity, fallback_params=config.fallback_params(),
        progress=progress,
    )


def run_backtest(
    config: Config,
    store: Storage,
    *,
    first_week: date | None,
    last_week: date | None,
    weeks: int,
    now: datetime,
    series_filter: str | None = None,
    detector: str | None = None,
    params: dict | None = None,
    progress: Progress | None = None,
):
    """`monitor backtest` on the database: `backtest_store`, then store the measured false-alert rate.

    The rate (`monitor.backtest.Burden`) is kept under the replay's fingerprint, so a weekly
    report whose detectors, parameters and levels are the same quotes it (issue 11, item 4).
    """
    result = backtest_store(
        config, store, first_week=first_week, last_week=last_week, weeks=weeks, now=now,
        series_filter=series_filter, detector=detector, params=params, progress=progress,
    )  # fmt: skip
    if result.burden.series_weeks:
        store.record_backtest(
            result.burden.as_dict(), detector=", ".join(result.config["detectors"]), fingerprint=result.fingerprint,
            config=result.config, series_filter=series_filter or "", ran_at=now,
        )  # fmt: skip
    return result


def backtest_csv(path: Path, *, config: Config, detector: str, params: dict | None, weeks: int | None,
                 progress: Progress | None = None):  # fmt: skip
    """`monitor backtest --counts FILE`: replay a detector over a CSV of week_start,count[,series].

    Replays the last `weeks` weeks of the file (None: every week).
    """
    frame = read_series_csv(path)
    model = config.params_for(detector, overrides=params)
    grouped = frame.groupby("series", sort=False) if "series" in frame.columns else [(path.stem, frame)]
    replay = [
        ReplaySeries(
            key=str(name),
            counts=pd.Series(sub["count"].to_numpy(dtype=float), index=pd.DatetimeIndex(sub["week_start"]), name="count"),
            detector=detector,
            params=model,
        )
        for name, sub in grouped
    ]
    last = max(s.counts.index[-1] for s in replay).date()
    first = min(s.counts.index[0] for s in replay).date()
    if weeks is not None:
        first = max(first, last - timedelta(weeks=weeks - 1))
    return backtest(replay, first_week=first, last_week=last, settings=config.detection.severity, fallback_params=config.fallback_params(),
                    progress=progress)  # fmt: skip
