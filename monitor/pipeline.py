"""The weekly run, one straight line: ingest → aggregate → detect → report → alert → record.

Every function takes `now` and `week` as arguments; only cli.py and schedule.py read the clock.

A crash anywhere (power cut, OOM killer, SIGKILL; tests/test_crash.py kills `monitor ingest`,
`monitor run` and `monitor alerts flush` at the named points of monitor.faults) loses nothing,
and running the same command again ends as an uninterrupted run would have:

* every database write is one transaction; each ingested file commits on its own, and the re-run
  skips the files already in (by sha256);
* report files are written to a temporary file, flushed to disk and renamed; the next report of
  the folder removes the temporary files a killed writer left;
* a week's alert states and the messages they call for commit together (the outbox): a run
  killed before that commit is decided afresh by the re-run; one killed after it is not decided
  again: the re-run sends what the outbox still holds, and its report shows what the first run
  decided (`as_first_run`);
* a killed run records no `runs` row, so its week stays owed: the scheduler's catch-up runs it
  again; with cron, `monitor status` lists it;
* the one duplicate: a message the server accepted whose "sent" mark was not written is sent
  again by the next run or `monitor alerts flush`, with the same Message-ID (monitor.alerts.outbox).
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from monitor import faults
from monitor.config import Config
from monitor.coverage import choose_week, series_without_data
from monitor.errors import IngestError, MonitorError, NoDataError, StoreError, UnknownSeriesError
from monitor.series import (
    KEY_PREFIX,
    build_series,
    cells_frame,
    definition_problems,
    incidents_behind,
    last_complete_week,
    nearest_keys,
    series_matches,
    shell_quote,
    trend_arrow,
    unescape_label,
    week_label,
)
from monitor.backtest import fingerprint
from monitor.severity import assign_levels, false_alarm_budget
from monitor.types import (
    Detection,
    IngestResult,
    RejectedRows,
    ReportFiles,
    RunResult,
    SeriesProblem,
    SeriesResult,
    WeeklySeries,
)

#: Exit codes of `monitor run` (documented in the README).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DELIVERY_FAILED = 4
#: No source's data reaches the week: nothing was judged (`monitor.coverage`).
EXIT_NO_DATA = NoDataError.exit_code


#: Rejected rows kept per ingest for messages (the CLI prints at most this many in all).
REJECT_LINES = 20


@dataclass(frozen=True)
class IngestOutcome:
    """Files ingested (or skipped as already seen), files refused with their one-line reason,
    and, per ingest that rejected rows, the first REJECT_LINES of them."""

    results: tuple[IngestResult, ...]
    refused: tuple[str, ...]
    rejected: tuple[RejectedRows, ...] = ()


@dataclass(frozen=True)
class WeeklyOutcome:
    """What `run_weekly` did: the run result, the report files and the alert notifications."""

    result: RunResult
    files: ReportFiles
    ingest: IngestOutcome
    announced: tuple[str, ...]  # series keys in messages delivered by this run (any week's)
    delivery: object | None  # monitor.alerts.email.Delivery of the last message delivered, or None
    delivery_error: str = ""
    pending: tuple[str, ...] = ()  # series keys in messages still in the outbox (not sent, or failed)
    queued: int = 0  # messages this run put in the outbox
    delivered: tuple[dict, ...] = ()  # every message delivered by this run (outbox id, route, channel, path, series)
    outbox_pending: int = 0  # messages left in the outbox
    unknown: int = 0  # messages this run sent whole without a final answer (kept, not resent: issue 12)
    emailed: bool = True  # False with --no-email or alerts.enabled = false: the alert lifecycle was not advanced

    @property
    def exit_code(self) -> int:
        if self.result.no_data_line:  # nothing was judged: the worst news a run can give, ahead of a digest left waiting
            return EXIT_NO_DATA
        if self.delivery_error or self.outbox_pending:
            return EXIT_DELIVERY_FAILED
        return EXIT_ERROR if self.ingest.refused else EXIT_OK


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def spooled(path: Path) -> Iterator[tuple[Path, str]]:
    """(copy, sha256): `path` read once, copied block by block to a temporary file ($TMPDIR) while hashed.

    The parser reads the copy, so the sha256 logged is that of exactly the bytes parsed, however
    the file changes meanwhile (issue 12, item 6: a file rewritten in place while it was read had
    60,017 of 300,000 rows stored under the whole file's hash), and a pipe (/dev/stdin) is read
    only once. Memory stays one block; the copy is removed on leaving. OSError when `path`
    cannot be read or the copy cannot be written.
    """
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(prefix="monitor-ingest-", suffix=".spool")
    try:
        with os.fdopen(fd, "wb") as copy, open(path, "rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
                copy.write(block)
        yield Path(name), digest.hexdigest()
    finally:
        os.unlink(name)


def ingest_files(
    store, paths: Iterable[Path], *, config: Config, now: datetime, format: str | None = None, again: bool = False
) -> IngestOutcome:
    """Ingest files one by one: each file is one transaction; a refused file changes nothing.

    A file whose exact content (sha256) was ingested before is skipped without parsing, unless
    `again` (`monitor ingest --again`: read it anyway, upserting as usual) or every row of that
    ingest was rejected (`Store.ingested`: after fixing the mapping or the clock, it is read again).
    The file is read once, into a temporary copy that is hashed as it is written and then parsed
    (`spooled`), so the sha256 logged is that of the rows stored and pipes such as /dev/stdin work.
    """
    results, refused, rejected = [], [], []
    for i, path in enumerate(paths):
        if i:
            faults.point("ingest.between-files")
        path = Path(path)
        if not again and _regular(path):
            # a cheap first look: a file seen before is skipped without being copied
            try:
                sha = file_sha256(path)
            except OSError as exc:
                refused.append(_unreadable(path, exc))
                continue
            if store.ingested(sha):
                faults.point("ingest.hashed")
                results.append(IngestResult(str(path), sha, "", "", 0, 0, 0, 0, 0, skipped=True))
                continue
        try:
            with spooled(path) as (copy, sha):  # _ingest_copy lets no error out: an OSError here is the copy's
                refused.extend(_ingest_copy(store, path, copy, sha, config=config, now=now, format=format, again=again,
                                            results=results))  # fmt: skip
        except OSError as exc:
            refused.append(_unreadable(path, exc))
    for r in results:
        if r.rejected and not r.skipped:
            entry = store.ingest_entry(sha256=r.sha256)
            if entry is not None:
                rejected.append(rejected_rows(store, entry))
    return IngestOutcome(tuple(results), tuple(refused), tuple(rejected))


def _ingest_copy(store, path: Path, copy: Path, sha: str, *, config: Config, now: datetime, format: str | None,
                 again: bool, results: list) -> list[str]:
    """Ingest the spooled copy of `path` (its sha256: `sha`), appending to `results`; the refusals (0 or 1 line)."""
    from monitor.sources import open_file

    faults.point("ingest.hashed")
    if not again and store.ingested(sha):  # the file became one seen before, or a pipe repeats one
        results.append(IngestResult(str(path), sha, "", "", 0, 0, 0, 0, 0, skipped=True))
        return []
    try:
        stream = open_file(path, format=format or config.ingest.format, mappings=config.ingest.mappings, now=now,
                           read_from=copy, week_start=config.week.start)  # fmt: skip
        faults.point("ingest.parsed")  # the file is checked and its header read; rows are parsed as they are written
        results.append(store.ingest(stream, sha256=sha, now=now))
        faults.point("ingest.committed")
    except (IngestError, StoreError) as exc:
        return [str(exc)]
    except Exception as exc:  # a defect must cost this file only, not the files after it or the report
        return [f"{path}: unexpected {type(exc).__name__} while ingesting: {exc} (file left out; please report)"]
    return []


def _regular(path: Path) -> bool:
    """A regular file (not a pipe, /dev/stdin or a device), which can be read twice."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _unreadable(path: Path, exc: OSError) -> str:
    """Why a named input file cannot be opened, and what to do about it."""
    if path.is_dir():
        return f"{path}: is a folder, not a file (name the files in it, e.g. {path / '*.csv'})"
    if exc.errno == errno.ENOSPC:
        return (f"{path}: cannot copy it for reading: {exc.strerror} in {tempfile.gettempdir()} "
                "(free some space there, or set TMPDIR to a folder with room for the file)")  # fmt: skip
    if not path.exists():
        return f"{path}: no such file (check the path and the name)"
    return f"{path}: cannot read: {exc.strerror or exc} (check the file's permissions)"


def rejected_rows(store, entry: dict, *, limit: int = REJECT_LINES) -> RejectedRows:
    """The rows an ingest (an entry of the ingest log) rejected: how many, and the first `limit`."""
    first = tuple((int(row["line"]), str(row["reason"])) for row in store.rejects(ingest_id=entry["id"], limit=limit))
    return RejectedRows(file=str(entry["file"]), ingest_id=int(entry["id"]), total=int(entry["rejected"]), first=first,
                        ingested_at=str(entry["ingested_at"]))  # fmt: skip


def rejected_since_last_week(store, *, week: str, limit: int = 5) -> tuple[RejectedRows, ...]:
    """Ingests that rejected rows since the latest run of an earlier week began (every ingest when
    there is none), oldest first: what the report of `week` lists. Read from the logs, so a re-run
    of the week lists the same rows."""
    earlier = [r["started_at"] for r in store.runs() if r["week"] < week]
    since = max(earlier) if earlier else ""
    return tuple(
        rejected_rows(store, entry, limit=limit)
        for entry in store.ingests()
        if entry["rejected"] and str(entry["ingested_at"]) >= since
    )


def inbox_files(config: Config) -> list[Path]:
    """Files matching the configured patterns in the inbox folders, oldest name first."""
    found: set[Path] = set()
    for folder in config.ingest.inbox:
        folder = config.path(folder)
        if not folder.is_dir():
            continue
        for pattern in config.ingest.patterns:
            found.update(p for p in folder.glob(pattern) if p.is_file())
    return sorted(found)


def select_week(config: Config, *, week: date | None, now: datetime) -> date:
    """The week to report on: the given one, else the last week that has ended at `now`.

    `now` is read in the schedule's time zone, so a Monday-morning run in Tokyo reports on
    the week that has just ended there. A week that has not ended yet is refused: its
    counts would be partial and every series would look quiet.
    """
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(config.schedule.timezone)) if now.tzinfo else now
    last = last_complete_week(local, start=config.week.start)
    if week is None:
        return last
    if week > last:
        raise MonitorError(
            f"week {week_label(week)} has not ended yet ({local:%Y-%m-%d %H:%M} {config.schedule.timezone}); "
            f"the last complete week is {week_label(last)}"
        )
    return week


def _definition(config: Config, name: str):
    return next(d for d in config.series if d.name == name)


def build_all_series(config: Config, store, *, week: date, series_filter: str | None = None) -> list[WeeklySeries]:
    """Every configured series up to `week`, optionally only those `series_filter` matches
    (monitor.series.series_matches: `key:<series key>` exactly, else text in the key or name).

    UnknownSeriesError (exit 1) when the filter matches none of the series there are, naming the nearest keys.
    """
    return series_and_problems(config, store, week=week, series_filter=series_filter)[0]


def series_and_problems(
    config: Config, store, *, week: date, series_filter: str | None = None
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
        first = store.first_event_date(end=week_end, within=_filter_values(definition))
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


def silence_targets(config: Config, store, *, series_filter: str, now: datetime) -> list[str]:
    """The keys of the series `series_filter` matches, for `monitor silence add`: the series as of the
    latest week with data. UnknownSeriesError (exit 1) when it matches none of the series there are;
    [] when there are none yet (nothing ingested, or no [[series]] yields any)."""
    week = choose_week(config, store, week=None, now=now).week
    return [s.key for s in build_all_series(config, store, week=week, series_filter=series_filter)]


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
    definition's title could match or whose definition filters on actors."""
    if series_filter and series_filter.startswith(KEY_PREFIX):  # exactly one key: its last label is whole too
        series_filter = series_filter[len(KEY_PREFIX):] + "|"
    if not series_filter or "/" not in series_filter:
        return None
    name, _, rest = series_filter.partition("/")
    definition = next((d for d in config.series if d.name == name), None)
    needle = series_filter.rstrip("|").lower()
    if definition is None or any(needle in (d.title or d.name).lower() for d in config.series):
        return None
    if definition.filters.actor or definition.filters.actor_contains:
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


def resolve_params(config: Config, series: WeeklySeries, *, detector: str | None = None, overrides: dict | None = None):
    """(detector name, parameters) for a series: its own detector and parameters, or another
    detector (`check --detector`) with the config's defaults for it; `--param` overrides on top."""
    name = detector or series.detector
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
    from monitor.detectors import FALLBACK, apply_min_count, get_detector, run_detector_many

    spec = get_detector(detector)
    fb = get_detector(FALLBACK)
    firsts, weeks, charts = [], [], []
    for counts in series:
        n = len(counts)
        first = max(0, n - lookback - 1)
        if spec.in_control_weeks:  # weeks shown before the chart go to the fallback
            chart = chart_start(spec, params, n)
            start = min(first, chart)
        else:
            chart = 0
            own = spec.series_min_history(params, counts) if spec.series_min_history else spec.min_history(params)
            fb_need = fb.min_history(fallback_params or fb.params()) if fb.name != spec.name else own
            if spec.stateful:  # its chart, or its fallback's, from where either can first judge a week
                start = min(first, max(min(own, fb_need), n - STATEFUL_RUN_WEEKS))
            elif fb.stateful and first < own:  # shown weeks judged by the fallback: its chart from a fixed start
                start = min(first, max(fb_need, n - STATEFUL_RUN_WEEKS))
            else:  # a detector without a chart on weeks it judges itself: only the shown weeks
                start = first
        firsts.append(first - start)
        weeks.append(list(range(start, n)))
        charts.append(chart)
    outs = run_detector_many(detector, params, series, weeks=weeks, fallback_params=fallback_params, chart_starts=charts)
    floors = list(min_counts) if min_counts is not None else [0] * len(outs)
    return [apply_min_count(out.iloc[skip:].reset_index(drop=True), m) for out, skip, m in zip(outs, firsts, floors)]


#: Series of one (detector, parameters) group below which a run does not start extra processes
#: (spawning one costs about two seconds of imports).
PARALLEL_MIN_SERIES = 400


def _workers(config: Config) -> int:
    from monitor.parallel import worker_count

    return worker_count(config.detection.workers)


def _detect_chunk(job: tuple) -> list[pd.DataFrame]:
    """One process's share of `_detect_grouped` (module level, so it can be sent to a worker)."""
    counts, lookback, name, model, fallback_params, floors = job
    return detect_counts_many(counts, lookback=lookback, detector=name, params=model, fallback_params=fallback_params, min_counts=floors)


def _detect_grouped(
    series: Sequence[WeeklySeries], models: Sequence[tuple[str, Any]], *, lookback: int, fallback_params, workers: int = 1
) -> list[pd.DataFrame]:
    """`detect_counts` for every series, one batched call per (detector, parameters) group;
    a large group is split over `workers` processes (the frames do not depend on the split)."""
    from monitor.parallel import chunks, pmap

    groups: dict[tuple[str, str], list[int]] = {}
    for i, (name, model) in enumerate(models):
        groups.setdefault((name, model.model_dump_json()), []).append(i)
    frames: list[pd.DataFrame | None] = [None] * len(series)
    for members in groups.values():
        name, model = models[members[0]]
        parts = chunks(members, workers if len(members) >= PARALLEL_MIN_SERIES else 1)
        jobs = [([series[i].counts for i in part], lookback, name, model, fallback_params, [series[i].min_count for i in part]) for part in parts]
        for part, outs in zip(parts, pmap(_detect_chunk, jobs, workers=len(parts))):
            for i, out in zip(part, outs):
                frames[i] = out
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
_THRESHOLD_SCORES = ("highest-in", "trendfinder")


def _score(observed: float, expected: float, threshold: float, detector: str, own: object) -> float:
    """`exceedance`, or, for detectors whose score is on the same scale, their own score where the
    threshold is not above the expected count (highest-in a few weeks into a surge)."""
    value = exceedance(observed, expected, threshold)
    return _float(own) if not math.isfinite(value) and detector in _THRESHOLD_SCORES else value


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
    store,
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
    no_data = series_without_data(config, [(s.key, _definition(config, s.definition)) for s in series], coverage)
    lookback = config.report.lookback_weeks if with_context else 0
    incidents = store.incidents_frame(start=week, end=week + timedelta(days=6)) if with_context else None
    fallback_params = config.params_for(FALLBACK)
    severity = config.detection.severity
    models, used = [], {}
    for s in series:
        name, model = resolve_params(config, s, detector=detector, overrides=params)
        used.setdefault(name, model.model_dump())
        models.append((name, model))
    workers = _workers(config)
    frames = _detect_grouped(series, models, lookback=lookback, fallback_params=fallback_params, workers=workers)
    # Levels are decided across series, week by week (Benjamini-Hochberg needs every series of a week).
    frames = _levels_across_series(frames, severity)
    last = [frame["alarm"].iloc[-1] for frame in frames]
    flagged = [i for i, a in enumerate(last) if with_context and not pd.isna(a) and bool(a)]
    histories = dict(zip(flagged, _detect_grouped(
        [series[i] for i in flagged], [models[i] for i in flagged],
        lookback=config.report.history_weeks - 1, fallback_params=fallback_params, workers=workers,
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
            behind = incidents_behind(incidents, s, _definition(config, s.definition), week=week, limit=config.report.max_incidents)
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
    )


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
    cols = [c for c in ("alarm", "level", "qvalue", "tested") if c in recent]
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


def run_weekly(
    config: Config, store, *, week: date | None, now: datetime, send: bool = True, clock: Callable[[], datetime] | None = None
) -> WeeklyOutcome:
    """The weekly job: ingest new inbox files → detect → alert lifecycle → report → outbox → send → record.

    Each series takes one step of its alert lifecycle (monitor.alerts.lifecycle); the
    notices are routed, silenced and grouped (monitor.alerts.notify) into one digest per
    recipient group, committed to the outbox together with the new states, then sent
    (monitor.alerts.outbox): a message leaves the outbox only once a server accepted it,
    so a failed send is delivered by the next run or `monitor alerts flush`, exactly once.
    Re-running a week changes no state and queues nothing; it still flushes the outbox.
    send=False (--no-email) or alerts.enabled = false: report only, the lifecycle is not advanced.
    clock: gives the finishing time recorded for the run (default: `now`).
    """
    from monitor.alerts.notify import advance, as_first_run, plan, week_index
    from monitor.report import write_report

    started = now
    week = select_week(config, week=week, now=now)
    ingest = ingest_files(store, inbox_files(config), config=config, now=now)
    faults.point("run.after-ingest")
    result = detect_week(config, store, week=week, now=now, ingests=ingest.results)
    emailing = send and config.alerts.enabled
    silences = store.active_silences(now)
    states = store.alert_states()
    no_data = set(result.no_data)
    changes = advance(result, states, config.alerts, no_data=no_data)
    decided = plan(result, changes, config.alerts, silences)
    notes = list(result.notes)
    ahead = max((st.last_week for st in states.values() if st.last_index > week_index(result.week_start)), default="")
    if ahead:
        notes.append(
            f"Alerts were not evaluated for {result.week}: the alert states already cover {ahead}, a later week. "
            "Surges of this week are in this report only (no email)."
        )
    shown, shown_plan = changes, decided
    index = week_index(result.week_start)
    if any(not c.event and c.before.last_index == index for c in changes):  # this week's alerts were decided before
        shown = as_first_run(changes, index=index, events={e["series"]: e["event"] for e in store.alert_events(result.week)},
                             previous_week=_previous_weeks(store, result.week))  # fmt: skip
        shown_plan = plan(result, shown, config.alerts, silences)  # for the report only: nothing is queued again
    result = replace(result, alert_notes=alert_notes(shown, shown_plan), silences=tuple(silences), notes=tuple(notes),
                     refused=ingest.refused, rejected=rejected_since_last_week(store, week=result.week))  # fmt: skip
    faults.point("run.after-detect")
    files = write_report(result, settings=config.report_settings, workers=_workers(config))
    faults.point("run.report.written")
    store.save_detections(result.week, [r.detection for r in result.results])
    faults.point("run.detections-saved")

    queued, flushed = 0, None
    if emailing:
        from monitor.alerts.outbox import flush, queue

        queued = len(queue(store, result, files, decided, settings=config.alerts, now=now))
        faults.point("run.alerts.committed")
        # the password is read (from its file or the environment) only when a login needs it
        flushed = flush(store, settings=config.alerts, password=config.smtp_password, now=now,
                        eml_dir_for=lambda w: config.report_settings.folder / w)  # fmt: skip
    pending_rows = store.pending_outbox()
    delivered = tuple(flushed.delivered) if flushed else ()
    outcome = WeeklyOutcome(
        result=result,
        files=files,
        ingest=ingest,
        announced=tuple(dict.fromkeys(k for d in delivered for k in d["series"])),
        delivery=_last_delivery(delivered),
        delivery_error=flushed.error if flushed else "",
        pending=tuple(dict.fromkeys(k for row in pending_rows for k in row["series"])),
        queued=queued,
        delivered=delivered,
        outbox_pending=len(pending_rows) if emailing else 0,
        unknown=flushed.unknown if flushed else 0,
        emailed=emailing,
    )
    faults.point("run.before-record")
    store.record_run(
        week=result.week,
        started_at=started,
        finished_at=clock() if clock else now,
        status=_run_status(outcome, all_held=bool(result.no_data_line) or (bool(result.results) and no_data >= {r.series.key for r in result.results})),
        summary={
            "series": len(result.results),
            "flagged": [r.series.key for r in result.flagged],
            "warnings": [r.series.key for r in result.warnings],
            "queued": queued,
            "announced": list(outcome.announced),
            "outbox_pending": outcome.outbox_pending,
            "outbox_unknown": outcome.unknown,
            "ingested_files": [i.file for i in ingest.results if not i.skipped],
            "refused": list(ingest.refused),
            "error": outcome.delivery_error,
            "emailed": emailing,  # False: a report-only run; the scheduler's catch-up still owes this week
        },
    )
    faults.point("run.recorded")
    return outcome


def _previous_weeks(store, week: str) -> Callable[[str], str]:
    """previous(series key): the last week before `week` whose alerts were judged for the series (its
    latest event other than "held"); the event log is read once, on the first call."""
    latest: dict[str, str] | None = None

    def previous(key: str) -> str:
        nonlocal latest
        if latest is None:
            latest = {}
            for e in store.alert_events():
                if e["week"] < week and e["event"] != "held":
                    latest[e["series"]] = max(latest.get(e["series"], ""), e["week"])
        return latest.get(key, "")

    return previous


def _run_status(outcome: WeeklyOutcome, *, all_held: bool) -> str:
    """ok, ingest-refused, delivery-failed (messages wait in the outbox, or one's outcome is unknown), or no-data: nothing reached the week, so
    nothing was judged; the scheduler's catch-up runs the week again (a re-run judges it once its data is in).
    A report-only run (--no-email, alerts off) of such a week is no-data too: recorded `ok`, it would settle the
    week with every series read as quiet (issue 11)."""
    if all_held:
        return "no-data"
    if outcome.outbox_pending or outcome.unknown:  # unknown: the digest may not have arrived, and is not resent
        return "delivery-failed"
    return "ingest-refused" if outcome.ingest.refused else "ok"


def _last_delivery(delivered: Sequence[dict]):
    from monitor.alerts.email import Delivery

    if not delivered:
        return None
    d = delivered[-1]
    return Delivery(d["channel"], "", Path(d["path"]) if d["path"] else None)


def alert_notes(changes, decided) -> dict[str, str]:
    """Series key -> how its alert stands this week, for the report (firing, pending, silenced, resolved...)."""
    states = {c.key: decided.states.get(c.key, c.after) for c in changes}
    out = {}
    for c in changes:
        st = states[c.key]
        if st.state == "pending":
            text = f"pending since {st.since_week} ({st.flagged_weeks} week(s) flagged)"
        elif st.state == "firing":
            text = f"firing ({st.severity}) since {st.since_week}"
        elif st.state == "recovering":
            text = f"recovering (quiet {st.quiet_weeks} week(s)); firing since {st.since_week}"
        elif c.event == "resolved":
            text = f"resolved (flagged {st.since_week} to {c.before.last_week})"
        else:
            text = ""
        if c.event == "held" and st.state:
            text += "; held this week (no data or undecided)"
        silence = decided.silenced.get(c.key)
        if silence:
            text = (text + "; " if text else "") + f"silenced (#{silence['id']} until {silence['until']}: {silence['comment']})"
        if text:
            out[c.key] = text
    return out


def report_week(config: Config, store, *, week: date | None, now: datetime) -> tuple[RunResult, ReportFiles]:
    """Detect and write the report for a week, without ingesting or emailing."""
    from monitor.report import write_report

    week = choose_week(config, store, week=week, now=now).week  # None: the latest week with data
    result = detect_week(config, store, week=week, now=now)
    result = replace(result, silences=tuple(store.active_silences(now)), rejected=rejected_since_last_week(store, week=result.week))
    return result, write_report(result, settings=config.report_settings, workers=_workers(config))


def backtest_store(
    config: Config,
    store,
    *,
    first_week: date | None,
    last_week: date | None,
    weeks: int,
    now: datetime,
    series_filter: str | None = None,
    detector: str | None = None,
    params: dict | None = None,
):
    """`monitor backtest` on the database: replay the configured series (or one detector) week by week.

    last_week defaults to the latest week with data (`monitor.coverage.choose_week`); first_week to
    `weeks` - 1 weeks before it. NoDataError when no source's data reaches last_week.
    """
    from monitor.backtest import ReplaySeries, backtest
    from monitor.detectors import FALLBACK

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
        replay, first_week=first, last_week=last, settings=config.detection.severity, fallback_params=config.params_for(FALLBACK)
    )


def run_backtest(
    config: Config,
    store,
    *,
    first_week: date | None,
    last_week: date | None,
    weeks: int,
    now: datetime,
    series_filter: str | None = None,
    detector: str | None = None,
    params: dict | None = None,
):
    """`monitor backtest` on the database: `backtest_store`, then store the measured false-alert rate.

    The rate (`monitor.backtest.Burden`) is kept under the replay's fingerprint, so a weekly
    report whose detectors, parameters and levels are the same quotes it (issue 11, item 4).
    """
    result = backtest_store(
        config, store, first_week=first_week, last_week=last_week, weeks=weeks, now=now,
        series_filter=series_filter, detector=detector, params=params,
    )  # fmt: skip
    if result.burden.series_weeks:
        store.record_backtest(
            result.burden.as_dict(), detector=", ".join(result.config["detectors"]), fingerprint=result.fingerprint,
            config=result.config, series_filter=series_filter or "", ran_at=now,
        )  # fmt: skip
    return result


def measured_rate(store, digest: str):
    """The latest stored backtest rate with fingerprint `digest` over all series (no --series), or None."""
    from monitor.backtest import MeasuredRate

    for row in store.backtests(fingerprint=digest):
        if row["series_filter"] or row["outside_per_100"] is None:
            continue
        return MeasuredRate(
            first_week=row["first_week"], last_week=row["last_week"], weeks=int(row["weeks"]), series=int(row["series"]),
            series_weeks=int(row["series_weeks"]), alerts_per100=float(row["alerts_per_100"]),
            outside_per100=float(row["outside_per_100"]), ran_at=row["ran_at"],
        )  # fmt: skip
    return None


def backtest_csv(path: Path, *, config: Config, detector: str, params: dict | None, weeks: int | None):
    """`monitor backtest --counts FILE`: replay a detector over a CSV of week_start,count[,series].

    Replays the last `weeks` weeks of the file (None: every week).
    """
    from monitor.backtest import ReplaySeries, backtest
    from monitor.detectors import FALLBACK

    frame = _read_counts_csv(path)
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
    return backtest(replay, first_week=first, last_week=last, settings=config.detection.severity, fallback_params=config.params_for(FALLBACK))


def detect_csv(path: Path, *, config: Config, detector: str, params: dict, last: int | None) -> pd.DataFrame:
    """The file-based check: run a detector on a CSV of `week_start,count` (optionally with `series`).

    Parameters are the config's [detectors.<name>] with `params` (--param) on top; short
    series fall back to the config's nb-recent. Each series is checked on its own; with a
    `series` column every output row starts with it.
    """
    from monitor.detectors import FALLBACK, run_detector

    frame = _read_counts_csv(path)
    model = config.params_for(detector, overrides=params)
    fallback_params = config.params_for(FALLBACK)
    outputs = []
    grouped = frame.groupby("series", sort=False) if "series" in frame.columns else [(None, frame)]
    for name, sub in grouped:
        counts = pd.Series(sub["count"].to_numpy(dtype=float), index=pd.DatetimeIndex(sub["week_start"]), name="count")
        n = len(counts)
        first = 0 if last is None else max(0, n - last)
        out = run_detector(detector, model, counts, weeks=list(range(first, n)), fallback_params=fallback_params)
        if name is not None:
            out.insert(0, "series", name)
        outputs.append(out)
    return pd.concat(outputs, ignore_index=True)


def _read_counts_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"series": str, "week_start": str, "count": str}, keep_default_na=False)
    except FileNotFoundError:
        raise MonitorError(f"{path}: file not found") from None
    except OSError as exc:
        raise MonitorError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MonitorError(f"{path}: not a readable CSV ({exc}); expected columns week_start,count[,series]") from None
    missing = [c for c in ("week_start", "count") if c not in frame.columns]
    if missing:
        raise MonitorError(
            f"{path}: line 1: missing column(s) {', '.join(missing)}; header is {','.join(map(str, frame.columns))} "
            "(expected week_start,count and optionally series)"
        )
    dates = pd.to_datetime(frame["week_start"], format="%Y-%m-%d", errors="coerce")
    counts = pd.to_numeric(frame["count"], errors="coerce")
    checks = [
        ("week_start", dates.isna(), "a date YYYY-MM-DD"),
        ("count", counts.isna() | ~counts.abs().lt(float("inf")) | (counts < 0), "a finite number >= 0"),
    ]
    if "series" in frame.columns:
        checks.append(("series", frame["series"].str.strip() == "", "a series name (empty cell)"))
    for column, bad, expected in checks:
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise MonitorError(f"{path}: line {i + 2}: {column} '{frame[column].iloc[i]}' is not {expected}")
    frame = frame.assign(week_start=dates, count=counts)
    for name, sub in frame.groupby("series", sort=False) if "series" in frame.columns else [(None, frame)]:
        gaps = sub["week_start"].diff().dropna()
        if (gaps != pd.Timedelta(days=7)).any():
            i = int((gaps != pd.Timedelta(days=7)).to_numpy().nonzero()[0][0]) + 1
            where = f" (series {name})" if name is not None else ""
            raise MonitorError(
                f"{path}: line {sub.index[i] + 2}: week_start {sub['week_start'].iloc[i].date()}{where} does not follow "
                f"{sub['week_start'].iloc[i - 1].date()} by 7 days; rows must be consecutive weeks in order, zeros included"
            )
    return frame



#: The demo reports on the week after the 2023-02-27 landmine killings in Hama.
DEMO_WEEK = "2023-W09"
DEMO_FILE = "syria_demo_acled_2020-01-01_2023-03-31.csv"


def run_demo(out_dir: Path, *, now: datetime, wait: float = 0.0) -> WeeklyOutcome:
    """Generate the synthetic Syria dataset under `out_dir`, then run the weekly job for 2023-W09.

    Everything it makes (inbox CSV, monitor.toml, monitor.db, reports/, the .eml) stays in
    `out_dir`. An existing monitor.toml there is kept, so a user can edit and re-run it.
    Like `monitor run`, it holds the database's run lock (monitor.lock) while it writes the
    inbox file and the database: `wait` seconds for another holder, then LockError (exit 5).
    """
    from importlib import resources

    from monitor import demo
    from monitor.config import load_config
    from monitor.lock import run_lock
    from monitor.series import parse_week
    from monitor.store import Store

    out_dir = Path(out_dir)
    inbox = out_dir / "inbox"
    config_path = out_dir / "monitor.toml"
    try:
        inbox.mkdir(parents=True, exist_ok=True)
        if not config_path.exists():
            _write_new(config_path, resources.files("monitor").joinpath("data/demo.toml").read_text(encoding="utf-8"))
    except OSError as exc:
        raise MonitorError(f"cannot write the demo into {out_dir}: {exc.strerror or exc}") from None
    config = load_config(config_path)
    with run_lock(config.db_path, clock=lambda: now, wait=wait, command="monitor demo"), Store(config.db_path) as store:
        demo.write_demo_csv(inbox / DEMO_FILE)
        return run_weekly(config, store, week=parse_week(DEMO_WEEK, start=config.week.start), now=now)


def _write_new(path: Path, text: str) -> None:
    """Create `path` with `text` in one step, keeping a file that exists already (e.g. written by a demo started
    at the same moment): never a half-written file, never an overwritten one."""
    import os
    import tempfile

    from monitor.report.files import file_mode

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # a normal file's mode, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            os.link(tmp, path)  # fails if the file exists: link, unlike rename, never replaces
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
