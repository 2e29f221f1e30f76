"""The detection stage: each series' detector (or its fallback) on the week asked for, levels across series.

`detect_week` judges every series of a week as `check`, `run` and `report` do: the detector's
parameters resolved from the config, stateful charts started at the same week every time
(`chart_start`), the `min_count` floor, levels (alert / warning) decided across the week's series,
and the context a report shows (weeks in alert, incidents behind a flagged week). Large groups of
series go to worker processes or a Dask cluster (`monitor.parallel`, `[detection] engine`). `detect_csv` runs one detector on a
`week_start,count[,series]` CSV (`monitor detect`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from monitor.assemble import definition_of, series_and_problems
from monitor.config import Config
from monitor.coverage import choose_week, series_without_data
from monitor.measured import fingerprint, measured_rate
from monitor.numbers import fmt_num
from monitor.series import (
    incidents_behind,
    trend_arrow,
    week_label,
)
from monitor.severity import assign_levels, false_alarm_budget
from monitor.types import (
    Detection,
    IngestResult,
    RunResult,
    SeriesResult,
    WeeklySeries,
)

if TYPE_CHECKING:
    from monitor.store_protocol import Storage


def resolve_params(config: Config, series: WeeklySeries, *, detector: str | None = None, overrides: dict | None = None):
    """(detector name, parameters) for a series: its own detector and parameters, or another
    detector (`check --detector`) with the config's defaults for it; `--param` overrides on top."""
    name = detector or series.detector
    definition = next((d for d in config.series if d.name == series.definition), None)
    if name == series.detector and not overrides and definition is not None and definition.detector == name:
        return config.detector_params(definition)  # resolved when the config loaded
    if name == series.detector:  # series.params already merges [detectors.<name>] and the series' params
        from monitor.detectors import make_params

        return name, make_params(name, {**series.params, **(overrides or {})})
    return name, config.params_for(name, overrides=overrides)


#: Weeks a stateful detector's chart (CUSUM, GLR) runs over before the reported week, so
#: `check`, `run` and the chart all see the same chart whatever they display.
STATEFUL_RUN_WEEKS = 156


#: Shortest chart of a stateful detector with an in-control window (cusum, glrnb) on a series
#: too short for the window and a full chart: the weeks before it go to the in-control model.
#: A year, so the weeks `run` re-checks (`report.lookback_weeks` <= 52) all lie on the chart.
STATEFUL_MIN_RUN_WEEKS = 52


def chart_start(spec, params, n: int) -> int:
    """First position of a stateful detector's chart on a series of `n` weeks (the reported week is n - 1).

    The chart runs over the last `STATEFUL_RUN_WEEKS` weeks, never before `min_history`. A
    detector that fits an in-control model on the weeks before its chart (cusum, glrnb:
    `in_control_weeks`, W) starts later on a short series, so the model gets the history that
    exists rather than its first year: at week W, or `STATEFUL_MIN_RUN_WEEKS` before the end
    if that is earlier. E.g. with W = 104 a 185-week series charts weeks 104..184 against a
    model of weeks 0..103, a 130-week one weeks 78..129 against weeks 0..77, and from 260 weeks
    on the chart is the last 156 weeks and the model the 104 weeks before them (issue 11, item 5).
    """
    start = max(spec.min_history(params), n - STATEFUL_RUN_WEEKS)
    window = spec.in_control_weeks(params) if spec.in_control_weeks else 0
    if window:
        start = max(start, min(window, n - STATEFUL_MIN_RUN_WEEKS))
    return start


def detect_counts(counts: pd.Series, *, lookback: int, detector: str, params, fallback_params, min_count: int = 0) -> pd.DataFrame:
    """Run a detector (with the nb-recent fallback) on weekly counts and return the last `lookback` + 1 weeks.

    A stateful detector runs its chart from a fixed start (`chart_start`, or as soon as it or
    its fallback can judge a week), not from the first displayed week; displayed weeks before
    the chart of a detector with an in-control window (cusum, glrnb) are judged by the
    fallback. No week with a count below `min_count` alerts (`apply_min_count`).
    """
    return detect_counts_many(
        [counts], lookback=lookback, detector=detector, params=params, fallback_params=fallback_params, min_counts=[min_count]
    )[0]


def detect_counts_many(
    series: Sequence[pd.Series], *, lookback: int, detector: str, params, fallback_params, min_counts: Sequence[int] | None = None
) -> list[pd.DataFrame]:
    """`detect_counts` on many series with one detector and parameters, batched where the detector can."""
    from monitor.detectors import (
        FALLBACK,
        apply_min_count,
        get_detector,
        run_detector_many,
    )

    spec = get_detector(detector)
    fb = get_detector(FALLBACK)
    firsts, weeks, charts = [], [], []
    for counts in series:
        n = len(counts)
        first = max(0, n - lookback - 1)
        own = spec.series_min_history(params, counts) if spec.series_min_history else spec.min_history(params)
        fb_need = fb.min_history(fallback_params or fb.params()) if fb.name != spec.name else own
        if spec.in_control_weeks:  # weeks shown before the chart go to the fallback
            chart = chart_start(spec, params, n)
            start = min(first, chart)
        else:
            chart = 0
            if spec.stateful and first >= own:  # every shown week on its own chart: the fallback's is not needed
                start = min(first, max(own, n - STATEFUL_RUN_WEEKS))
            elif spec.stateful:  # its chart, or its fallback's, from where either can first judge a week
                start = min(first, max(min(own, fb_need), n - STATEFUL_RUN_WEEKS))
            elif fb.stateful and first < own:  # shown weeks judged by the fallback: its chart from a fixed start
                start = min(first, max(fb_need, n - STATEFUL_RUN_WEEKS))
            else:  # a detector without a chart on weeks it judges itself: only the shown weeks
                start = first
        # a chart runs from the first to the last of the weeks it is given, and rows come back for those weeks
        # only: the weeks before the shown ones are given only where a chart (the detector's or its
        # fallback's) starts, so a replay of 150 weeks does not build 150 rows to keep one
        marks = {start, max(own, chart), max(start, fb_need)}
        hidden = sorted(t for t in marks if start <= t < first)
        firsts.append(len(hidden))
        weeks.append(hidden + list(range(first, n)))
        charts.append(chart)
    outs = run_detector_many(detector, params, series, weeks=weeks, fallback_params=fallback_params, chart_starts=charts)
    floors = list(min_counts) if min_counts is not None else [0] * len(outs)
    return [apply_min_count(out.iloc[skip:].reset_index(drop=True), m) for out, skip, m in zip(outs, firsts, floors)]


#: Series of one (detector, parameters) group below which a run does not start extra processes
#: (spawning one costs about two seconds of imports; a local Dask cluster about three).
PARALLEL_MIN_SERIES = 400

#: Series per Dask task: a few tenths of a second of work each, well above the scheduler's ~1 ms per
#: task, and a few MB to ship (a 520-week series is about 8 kB with its dates).
CLUSTER_CHUNK = 250


def worker_processes(config: Config) -> int:
    """Worker processes for detection and report charts (`[detection] workers`, 0 = one per core)."""
    from monitor.parallel import worker_count

    return worker_count(config.detection.workers)


def detection_engine(config: Config):
    """Where detection groups run (`[detection] engine`, `scheduler`, `workers`), as a `monitor.parallel.Engine`."""
    from monitor.parallel import Engine

    return Engine(name=config.detection.engine, workers=worker_processes(config), scheduler=config.detection.scheduler)


def detect_chunk(job: tuple) -> list[pd.DataFrame]:
    """One task of `_detect_grouped`: (counts, lookback, detector, params, fallback params, min counts) -> frames.

    Module level, so that a worker process or a Dask worker can import it.
    """
    counts, lookback, name, model, fallback_params, floors = job
    return detect_counts_many(counts, lookback=lookback, detector=name, params=model, fallback_params=fallback_params, min_counts=floors)


def _detect_grouped(
    series: Sequence[WeeklySeries], models: Sequence[tuple[str, Any]], *, lookback: int, fallback_params, engine=None
) -> list[pd.DataFrame]:
    """`detect_counts` for every series, one batched call per (detector, parameters) group; a large group
    is split over `engine` (local: one chunk per process; dask: tasks of CLUSTER_CHUNK series); the frames
    do not depend on the split."""
    from monitor.parallel import Engine, chunks, imap

    engine = engine or Engine()
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (name, model) in enumerate(models):
        groups.setdefault((name, model.model_dump_json()), []).append(i)
    frames: list[pd.DataFrame | None] = [None] * len(series)
    for members in groups.values():
        name, model = models[members[0]]
        here = not engine.parallel or len(members) < PARALLEL_MIN_SERIES
        if here:
            parts = [members]
        elif engine.name == "dask":
            parts = chunks(members, -(-len(members) // CLUSTER_CHUNK))
        else:
            parts = chunks(members, engine.workers)
        jobs = (([series[i].counts for i in part], lookback, name, model, fallback_params, [series[i].min_count for i in part])
                for part in parts)  # fmt: skip
        outs = map(detect_chunk, jobs) if here else imap(detect_chunk, jobs, engine=engine)
        for part, out in zip(parts, outs):
            for i, frame in zip(part, out):
                frames[i] = frame
    return frames  # type: ignore[return-value]


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def exceedance(observed: float, expected: float, threshold: float) -> float:
    """(observed − expected) / (threshold − expected): above 1 means above the threshold.

    The same scale for every detector, so flagged series of different detectors rank
    fairly (Farrington's own score with the delta threshold, as in R surveillance).
    """
    if not (math.isfinite(expected) and math.isfinite(threshold)) or threshold <= expected:
        return math.nan
    return (observed - expected) / (threshold - expected)


#: Detectors whose own `score` is on the exceedance scale (at least 1 exactly when alarming).
def _score(observed: float, expected: float, threshold: float, detector: str, own: object) -> float:
    """`exceedance`, or, for detectors whose score is on the same scale, their own score where the
    threshold is not above the expected count (highest-in a few weeks into a surge)."""
    value = exceedance(observed, expected, threshold)
    from monitor.detectors import DETECTORS

    spec = DETECTORS.get(detector)
    return _float(own) if not math.isfinite(value) and spec is not None and spec.own_score else value


def evidence_p(row: pd.Series) -> float:
    """The smaller of the week's p-value and, when its chart alarmed, the p-value of the run behind it."""
    p = _float(row.get("pvalue"))
    chart = row.get("chart_alarm")
    if chart is not None and not pd.isna(chart) and bool(chart):
        run = _float(row.get("chart_pvalue"))
        p = run if not math.isfinite(p) else (min(p, run) if math.isfinite(run) else p)
    return p


def _detection(series: WeeklySeries, row: pd.Series) -> Detection:
    alarm = row["alarm"]
    observed, expected, threshold = _float(row["count"]), _float(row["expected"]), _float(row["upperbound"])
    why = row.get("why")
    why = str(why) if isinstance(why, str) and not pd.isna(alarm) and bool(alarm) else ""
    return Detection(
        series=series.key,
        week_start=pd.Timestamp(row["week_start"]).date(),
        observed=observed,
        expected=expected,
        threshold=threshold,
        score=_score(observed, expected, threshold, str(row.get("detector", series.detector)), row.get("score")),
        pvalue=_float(row.get("pvalue")),
        alarm=None if pd.isna(alarm) else bool(alarm),
        detector=str(row.get("detector", series.detector)),
        note=str(row.get("note", "") or ""),
        fallback_from=str(row.get("fallback_from", "") or ""),
        level=str(row.get("level", "") or ""),
        qvalue=_float(row.get("qvalue")),
        why=why,
        evidence_p=evidence_p(row),
        nowcast=_float(row.get("nowcast")),
        nowcast_low=_float(row.get("nowcast_low")),
        nowcast_high=_float(row.get("nowcast_high")),
        complete_share=_float(row.get("complete_share")),
        chance_above=_float(row.get("chance_above")),
    )


def _latest_data(stats: dict) -> date | None:
    """The latest event date, or week start of pre-aggregated counts, of any source (up to the week's end)."""
    days = [stats.get("latest_event_date")] + [s.get("latest_event_date") for s in stats.get("sources", {}).values()]
    days = [d for d in days if d is not None]
    return max(days) if days else None


def alert_status(alarms: Sequence[object]) -> tuple[int, str]:
    """Weeks in alert (consecutive alarms ending this week) and new/continuing/resolved."""
    flags = [bool(a) if not pd.isna(a) else False for a in alarms]
    run = 0
    for flag in reversed(flags):
        if not flag:
            break
        run += 1
    previous = flags[-2] if len(flags) > 1 else False
    if flags and flags[-1]:
        return run, "continuing" if previous else "new"
    return 0, "resolved" if previous else ""


def detect_week(
    config: Config,
    store: Storage,
    *,
    week: date,
    now: datetime,
    series_filter: str | None = None,
    detector: str | None = None,
    params: dict | None = None,
    with_context: bool = True,
    ingests: Sequence[IngestResult] = (),
) -> RunResult:
    """Detect every series for `week` and gather what the report needs.

    with_context: re-check the last `report.lookback_weeks` weeks (weeks in alert, status),
        compute the plotted history of flagged series and fetch the incidents behind them;
        False checks only `week` (the fast path for `monitor check`).
    """
    from monitor.detectors import FALLBACK

    series, problems = series_and_problems(config, store, week=week, series_filter=series_filter)
    coverage = choose_week(config, store, week=week, now=now)
    no_data = series_without_data(config, [(s.key, definition_of(config, s.definition)) for s in series], coverage)
    lookback = config.report.lookback_weeks if with_context else 0
    # one read of the recent incidents: the week's (behind each alarm), four weeks (the map), the new-actors window
    recent = (store.incidents_frame(start=week - timedelta(weeks=max(config.emerging.weeks, 4)), end=week + timedelta(days=6))
              if with_context else None)  # fmt: skip
    incidents = recent[recent["event_date"] >= pd.Timestamp(week)] if recent is not None else None
    fallback_params = config.fallback_params()
    severity = config.detection.severity
    models, used = [], {}
    for s in series:
        name, model = resolve_params(config, s, detector=detector, overrides=params)
        used.setdefault(name, model.model_dump())
        models.append((name, model))
    engine = detection_engine(config)
    frames = _detect_grouped(series, models, lookback=lookback, fallback_params=fallback_params, engine=engine)
    # Levels are decided across series, week by week (Benjamini-Hochberg needs every series of a week).
    frames = _levels_across_series(frames, severity)
    from monitor.delays import nowcasts

    # the weeks still filling: their nowcasts, and a warning where only the nowcast crosses the threshold
    casts, nowcast_note = nowcasts(store, series, week=week, week_start=config.week.start)
    frames = [nowcast_levels(f, casts.get(s.key, {}), likely=config.detection.nowcast_likely) for s, f in zip(series, frames)]
    last = [frame["alarm"].iloc[-1] for frame in frames]
    flagged = [i for i, a in enumerate(last) if with_context and not pd.isna(a) and bool(a)]
    histories = dict(zip(flagged, _detect_grouped(
        [series[i] for i in flagged], [models[i] for i in flagged],
        lookback=config.report.history_weeks - 1, fallback_params=fallback_params, engine=engine,
    )))  # fmt: skip
    results = []
    for i, (s, frame) in enumerate(zip(series, frames)):
        current = _detection(s, frame.iloc[-1])
        if s.key in no_data:  # its count is missing, not zero: undecided, never quiet (issue 11)
            current = replace(current, alarm=None, level="", note=f"no data this week ({no_data[s.key]})")
        weeks_in_alert, status = alert_status(list(frame["alarm"])) if with_context else (int(bool(current.alarm)), "")
        if s.key in no_data:
            weeks_in_alert, status = 0, ""
        history, behind = frame, None
        if with_context and current.alarm:
            history = _with_recent_levels(assign_levels(histories[i], severity), frame)
            weeks_in_alert = alert_status(list(history["alarm"]))[0]  # the whole charted run, not only the lookback
            behind = incidents_behind(incidents, s, definition_of(config, s.definition), week=week, limit=config.report.max_incidents)
        results.append(
            SeriesResult(
                series=s,
                detection=current,
                history=history,
                weeks_in_alert=weeks_in_alert,
                status=status,
                trend=trend_arrow(s.counts),
                incidents=behind,
            )
        )
    if any(r.detection.fallback_from for r in results):
        used.setdefault(FALLBACK, fallback_params.model_dump())
    week_rows = pd.DataFrame([f.iloc[-1] for f in frames]) if frames else pd.DataFrame(columns=["alarm", "detector"])
    budget = false_alarm_budget(week_rows, severity, params_of=used)
    measured = measured_rate(
        store, fingerprint(models, fallback_params=fallback_params, settings=severity, min_counts=(s.min_count for s in series))[0]
    )
    stats = store.stats(until=week + timedelta(days=6))
    starts = [s.counts.index[0].date() for s in series if len(s.counts)]
    return RunResult(
        week=week_label(week),
        week_start=week,
        week_end=week + timedelta(days=6),
        generated_at=now,
        data_start=min(starts) if starts else None,
        records_total=int(stats.get("records_total", 0)) + int(stats.get("counts_total", 0)),  # incidents + weekly count rows
        last_ingest=store.last_ingest(),
        latest_event_date=_latest_data(stats),
        detectors=used,
        results=tuple(results),
        ingests=tuple(ingests),
        annotations=tuple(config.report.annotations),
        synthetic=config.report.synthetic_data,
        notes=tuple(_run_notes(results, coverage=coverage)),
        false_alarms=budget,
        measured_rate=measured,
        no_data=no_data,
        no_data_line="" if coverage.reached else coverage.no_data_message(),
        problems=tuple(problems),
        nowcast_note=nowcast_note,
        map_events=_map_events(recent, results, week=week) if recent is not None else None,
        emerging=_emerging(config, store, recent, week=week) if recent is not None else (),
    )


def _emerging(config: Config, store: Storage, recent: pd.DataFrame, *, week: date) -> tuple:
    """New actors and places of `week` (monitor.emerging), from `recent` (at least `[emerging] weeks` before it)."""
    from monitor.emerging import emerging

    settings = config.emerging
    incidents = recent[recent["event_date"] >= pd.Timestamp(week - timedelta(weeks=settings.weeks))]
    countries = set(incidents.loc[incidents["event_date"] >= pd.Timestamp(week), "country"])
    firsts = {c: store.first_event_date(end=week + timedelta(days=6), within={"country": [c]}) for c in sorted(countries)}
    return tuple(emerging(incidents, week=week, weeks=settings.weeks, data_start=firsts, aliases=settings.aliases))


def _map_events(recent: pd.DataFrame, results, *, week: date) -> pd.DataFrame:
    """The incidents of the four weeks to `week` (from `recent`) in the countries of the admin1 series (all, when
    none is by admin1)."""
    events = recent[recent["event_date"] >= pd.Timestamp(week - timedelta(days=21))]
    places = {dict(r.series.labels)["admin1"] for r in results if "admin1" in dict(r.series.labels)}
    if places:
        countries = set(events.loc[events["admin1"].isin(places), "country"])
        events = events[events["country"].isin(countries)]
    return events[["event_date", "country", "admin1", "latitude", "longitude", "fatalities"]].reset_index(drop=True)


#: Columns a nowcast adds to a detector's frame (`nowcast_levels`).
NOWCAST_COLUMNS = ("nowcast", "nowcast_low", "nowcast_high", "complete_share", "chance_above")


def nowcast_levels(frame: pd.DataFrame, casts: Mapping[date, Any], *, likely: float) -> pd.DataFrame:
    """A detector frame with the nowcasts of its weeks still filling (`monitor.delays.nowcasts`: week
    start -> `monitor.nowcast.Nowcast`) and their verdicts as reporting completes (issue 14, item 4).

    A week still filling is judged on the count reported so far: when that already crosses the
    threshold it alarms as any week does. When it does not, but the chance that the final count
    ends above the threshold (`chance_above`) is at least `likely`, the week is a warning with the
    note "likely surge once reporting completes"; the next run re-judges it with the data it then
    has (monitor.alerts.lifecycle). Returns the frame itself when no week is filling, else a copy.
    """
    if not casts:
        return frame
    out = frame.copy()
    for col in NOWCAST_COLUMNS:
        out[col] = np.nan
    starts = pd.to_datetime(out["week_start"]).dt.date
    for i, start in enumerate(starts):
        cast = casts.get(start)
        if cast is None:
            continue
        threshold = _float(out["upperbound"].iat[i]) if "upperbound" in out else math.nan
        chance = cast.prob_above(threshold)
        values = (cast.expected, cast.low, cast.high, cast.complete_share, chance)
        for col, value in zip(NOWCAST_COLUMNS, values):
            out.iloc[i, out.columns.get_loc(col)] = value
        alarm = out["alarm"].iat[i]
        quiet = not pd.isna(alarm) and not bool(alarm) and str(out["level"].iat[i] if "level" in out else "") == ""
        if quiet and math.isfinite(chance) and chance >= likely:
            out.iloc[i, out.columns.get_loc("level")] = "warning"
            said = (f"likely surge once reporting completes: {fmt_num(cast.observed)} reported ({cast.complete_share:.0%} of "
                    f"a week's events are in by now), nowcast {fmt_num(cast.expected)} (90% {fmt_num(cast.low)} to "
                    f"{fmt_num(cast.high)}) against a threshold of {fmt_num(threshold)}: {chance:.0%} chance to end above it")  # fmt: skip
            note = str(out["note"].iat[i]) if "note" in out and not pd.isna(out["note"].iat[i]) else ""
            if "note" not in out:
                out["note"] = ""
            out.iloc[i, out.columns.get_loc("note")] = f"{note}; {said}" if note else said
    return out


def _levels_across_series(frames: list[pd.DataFrame], severity) -> list[pd.DataFrame]:
    """Alert/warning levels of every series' re-checked weeks, each week decided across all series."""
    if not frames:
        return frames
    levelled = assign_levels(pd.concat(frames, ignore_index=True), severity, by="week_start")  # keeps the row order
    bounds = np.cumsum([0] + [len(f) for f in frames])
    return [levelled.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:])]


def _with_recent_levels(history: pd.DataFrame, recent: pd.DataFrame) -> pd.DataFrame:
    """The charted history with the re-checked weeks' levels decided across series (FDR) put back.

    Under per-series control both agree already; under FDR control only the re-checked
    weeks were decided across series, earlier chart weeks keep the per-series decision.
    """
    out = history.copy()
    cols = [c for c in ("alarm", "level", "qvalue", "tested", "note", *NOWCAST_COLUMNS) if c in recent]
    where = out.index[out["week_start"].isin(recent["week_start"])]
    by_week = recent.set_index("week_start")
    for col in cols:
        out.loc[where, col] = by_week.loc[out.loc[where, "week_start"], col].to_numpy()
    out["alarm"] = out["alarm"].astype("boolean")
    return out


def _run_notes(results: Sequence[SeriesResult], *, coverage) -> list[str]:
    from monitor.detectors import FALLBACK

    notes = []
    week_end = coverage.week + timedelta(days=6)
    if coverage.reached and coverage.monitored and not any(s.last_day and s.last_day >= week_end for s in coverage.sources):
        notes.append(
            f"The data ends before this week does ({coverage.describe()}; the week ends {week_end.isoformat()}): "
            "its counts may be incomplete."
        )
    fallbacks = [r for r in results if r.detection.fallback_from]
    if fallbacks:
        notes.append(
            f"{len(fallbacks)} series had too little history for their detector and were checked with {FALLBACK} instead "
            "(a negative-binomial bound on the recent weeks' level; see the method section)."
        )
    undecided = [r for r in results if r.detection.alarm is None]
    if undecided:
        notes.append(f"{len(undecided)} series could not be decided this week (see the note column).")
    return notes


def detect_csv(path: Path, *, config: Config, detector: str, params: dict, last: int | None) -> pd.DataFrame:
    """The file-based check: run a detector on a CSV of `week_start,count` (optionally with `series`).

    Parameters are the config's [detectors.<name>] with `params` (--param) on top; short
    series fall back to the config's nb-recent. Each series is judged on its own history (the
    same frames as one `run_detector` call each), all in one batched call; with a `series`
    column every output row starts with it.
    """
    from monitor.detectors import run_detector_table
    from monitor.sources.counts import read_series_csv  # here: the weekly job and `check` read no files

    frame = read_series_csv(path)
    model = config.params_for(detector, overrides=params)
    fallback_params = config.fallback_params()
    if "series" in frame.columns:  # series in order of first appearance, each in the file's order
        codes, names = pd.factorize(frame["series"])
        order = np.argsort(codes, kind="stable")
        lengths = np.bincount(codes, minlength=len(names))
    else:
        names, order, lengths = [None], np.arange(len(frame)), np.array([len(frame)])
    stamps = frame["week_start"].to_numpy()[order]
    values = frame["count"].to_numpy(dtype=float)[order]
    # consecutive weeks (read_series_csv checked them): the first week and the length make the index, and
    # series with the same weeks share one (the batch engine then reads that calendar once)
    indexes: dict[tuple, pd.DatetimeIndex] = {}
    series, weeks = [], []
    for first, n in zip(np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths):
        key = (stamps[first] if n else None, n)
        if key not in indexes:
            indexes[key] = pd.DatetimeIndex(stamps[first : first + n], name="week_start")
        series.append(pd.Series(values[first : first + n], index=indexes[key], name="count"))
        weeks.append(list(range(0 if last is None else max(0, n - last), n)))
    out = run_detector_table(detector, model, series, weeks=weeks, fallback_params=fallback_params)
    if names[0] is not None:
        out.insert(0, "series", pd.Series(np.repeat(np.asarray(names, dtype=object), [len(w) for w in weeks]), dtype="str"))
    return out
