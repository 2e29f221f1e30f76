"""The values that flow down the weekly line: incidents → series → detections → run result.

Every value type here is frozen: stages return new values and never mutate what they were
given. FileStream is the one reader among them: a file being read in batches. The store hands
out its rows typed too (monitor.store_protocol.Storage): AlertState, RecordedRun with its
RunSummary, OutboxMessage and Silence, which say themselves what their columns mean (a message
still pending, a silence in force on a day, a run that settles its alerts).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pandas is only needed for annotations here
    import pandas as pd

#: Told how far long work has gone: (what is counted, e.g. a file's name or "weeks", done, total or None when
#: unknown). The command line draws it as a progress bar on a terminal (`cli._progress`); the library never prints.
Progress = Callable[[str, int, "int | None"], None]

#: Columns of one normalised incident, in storage order.
INCIDENT_FIELDS: tuple[str, ...] = (
    "source",  # dataset family: "acled", "ucdp", or a generic mapping's source name
    "source_id",  # the dataset's own event id (ACLED event_id_cnty, UCDP id, ...)
    "event_date",  # ISO date the event started
    "date_end",  # ISO date the event ended (UCDP multi-day events), else = event_date
    "country",
    "admin1",
    "admin2",
    "location",
    "latitude",  # float or None
    "longitude",  # float or None
    "event_type",
    "sub_event_type",
    "actor1",
    "actor2",
    "fatalities",  # int >= 0
    "notes",
    "revision",  # the source's revision marker (ACLED `timestamp`, Unix seconds), or "": see store.newer_or_same
)

#: Dimensions a series definition may group by or filter on.
DIMENSIONS: tuple[str, ...] = ("country", "admin1", "admin2", "event_type", "sub_event_type", "actor")


@dataclass(frozen=True, slots=True)
class Incident:
    """One normalised event, whatever file it came from."""

    source: str
    source_id: str
    event_date: str
    date_end: str
    country: str
    admin1: str
    admin2: str
    location: str
    latitude: float | None
    longitude: float | None
    event_type: str
    sub_event_type: str
    actor1: str
    actor2: str
    fatalities: int
    notes: str
    revision: str = ""

    def __post_init__(self) -> None:
        # a point is both coordinates or none: half a coordinate (the other one unusable) places nothing
        if (self.latitude is None) != (self.longitude is None):
            object.__setattr__(self, "latitude", None)
            object.__setattr__(self, "longitude", None)


@dataclass(frozen=True, slots=True)
class Deletion:
    """One row of a deletion list (ACLED's deleted events: `event_id_cnty,deleted_timestamp`): the event
    `source_id` of `source` was withdrawn at `revision` (Unix seconds, comparable with ACLED `timestamp`)."""

    source: str
    source_id: str
    revision: str


@dataclass(frozen=True, slots=True)
class CountRow:
    """One row of a pre-aggregated counts file: `week_start,<keys...>,count`.

    Keys the file does not carry are empty strings; `fatalities` is 0 when absent.
    """

    source: str
    week_start: str  # ISO date
    country: str
    admin1: str
    admin2: str
    event_type: str
    sub_event_type: str
    actor: str
    count: int
    fatalities: int = 0


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that could not be used, kept with the physical line it started on and why."""

    line: int
    reason: str
    raw: str


@dataclass(frozen=True)
class ParsedFile:
    """Everything read from one input file, before it touches the database."""

    path: Path
    format: str  # acled | acled-legacy | acled-deletions | ucdp | generic | counts
    source: str
    encoding: str
    rows_read: int
    incidents: tuple[Incident, ...] = ()
    counts: tuple[CountRow, ...] = ()
    rejects: tuple[Reject, ...] = ()
    deletions: tuple[Deletion, ...] = ()


@dataclass
class FileStream:
    """One input file read in batches: the store writes each batch as it comes, all in one
    transaction, so a file of millions of rows never sits in memory whole.

    Iterating yields (items, rejects) per batch and counts `rows_read`; it raises
    IngestError at the end when the file had no data row, and closes the file.
    kind: "incidents", "counts" or "deletions" (what the items are). For counts, `source` becomes the
    sources named in the file's rows once it has been read.
    """

    path: Path
    format: str
    source: str
    encoding: str
    kind: str
    parts: Iterator[tuple[list, list[Reject], int]] = field(repr=False)
    header_line: int = 1
    require_rows: bool = True
    close: Callable[[], None] = field(default=lambda: None, repr=False)
    rows_read: int = 0
    rejected: int = 0

    @classmethod
    def of(cls, parsed: "ParsedFile") -> "FileStream":
        """A ParsedFile (read whole) as a one-batch stream."""
        kind = "counts" if parsed.counts else "deletions" if parsed.deletions else "incidents"
        items = list(parsed.counts or parsed.deletions or parsed.incidents)
        part = (items, list(parsed.rejects), parsed.rows_read)
        return cls(parsed.path, parsed.format, parsed.source, parsed.encoding, kind, iter([part]), require_rows=False)

    def __iter__(self) -> Iterator[tuple[list, list[Reject]]]:
        from monitor.errors import IngestError

        sources: set[str] = set()
        try:
            for items, rejects, rows in self.parts:
                self.rows_read += rows
                self.rejected += len(rejects)
                if self.kind == "counts":
                    sources.update(r.source for r in items)
                yield items, rejects
        finally:
            self.close()
        if sources:
            self.source = ",".join(sorted(sources))
        if self.require_rows and self.rows_read == 0:
            raise IngestError(
                f"{self.path}: line {self.header_line + 1}: no data rows after the header "
                f"(expected at least one {self.format} record)"
            )


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did to the database."""

    file: str
    sha256: str
    format: str
    source: str
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    #: rows older than the stored revision of their event (ACLED `timestamp`): the stored row was kept
    older: int = 0
    #: a deletion list: events deleted, and deletions of events the database does not hold
    deleted: int = 0
    not_found: int = 0
    skipped: bool = False  # the exact same file (sha256) had been ingested before
    ingested_at: str = ""  # ISO time the ingest was recorded (from the ingest log)


@dataclass(frozen=True)
class RejectedRows:
    """Rows one ingest rejected: its file, its id in the ingest log (`monitor rejects --ingest ID`),
    how many it rejected, and the first few as (line, reason)."""

    file: str
    ingest_id: int
    total: int
    first: tuple[tuple[int, str], ...] = ()
    ingested_at: str = ""


@dataclass(frozen=True)
class WeeklySeries:
    """A zero-filled weekly count series and how it was defined.

    `counts` is a pandas Series indexed by week start (DatetimeIndex, one entry per week,
    consecutive, no gaps) holding event or fatality counts.
    """

    key: str  # e.g. "is_attacks/admin1=Homs" or "is_attacks/total"
    definition: str  # name of the [[series]] block it came from
    labels: tuple[tuple[str, str], ...]  # (("admin1", "Homs"),); () for the roll-up total
    metric: str  # "events" | "fatalities"
    detector: str
    params: dict[str, Any]
    counts: "pd.Series"
    title: str = ""  # human title of the definition, e.g. "Islamic State attacks"
    min_count: int = 0  # no week with a smaller count alerts (the definition's min_count)
    #: the events and fatalities of each week of `counts` (same index; columns `events`, `fatalities`), whatever
    #: the metric: the figures a report shows beside the count judged ("8 events (14 fatalities)"); None for a
    #: series built by hand from counts alone (monitor.series.week_figures then knows only the metric's figure)
    figures: "pd.DataFrame | None" = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        """Short human label: 'Homs', 'Homs · Battles', or 'All (total)'."""
        return " · ".join(v for _, v in self.labels) or "All (total)"


@dataclass(frozen=True)
class WeekFigures:
    """A series' events and fatalities in one week (monitor.series.week_figures).

    None is "no data": the week is before the series starts (its first incident) or after its last week; a
    figure the series does not carry (fatalities of a series built from counts alone) is None too.
    """

    week: date
    events: float | None
    fatalities: float | None

    @property
    def known(self) -> bool:
        """Some figure of the week is known (False: no data)."""
        return self.events is not None or self.fatalities is not None


@dataclass(frozen=True)
class Detection:
    """One series in one week: what was seen, what was expected, and whether it is a surge.

    Numbers a detector could not compute are NaN; `alarm` is None when undecided (too
    little history, model failure), with the reason in `note`. Weeks below Farrington's
    limit54 rule are decided "no alarm" (as in R surveillance), also with a note.
    """

    series: str
    week_start: date
    observed: float
    expected: float
    threshold: float
    score: float
    pvalue: float
    alarm: bool | None
    detector: str
    note: str = ""
    fallback_from: str = ""  # set when the configured detector lacked history and the fallback (nb-recent) ran instead
    level: str = ""  # "alert" (alarm is True), "warning" (the looser level) or "" (see monitor.severity)
    qvalue: float = float("nan")  # Benjamini-Hochberg adjusted p-value under FDR control, else NaN
    #: why a week alarmed by a chart did, e.g. "3 weeks above expected: 9, 12, 21 against 4" ("" otherwise)
    why: str = ""
    #: the strongest evidence behind the week: the smaller of the single-week p-value and, for a chart
    #: alarm, the tail probability of the run's total (`chart_pvalue`); the scale flagged series rank on
    evidence_p: float = float("nan")
    #: while the week's reporting is still filling: its final count as nowcast (monitor.nowcast) with an
    #: interval, and the share of its eventual count known at its delay; NaN for a complete week or none
    nowcast: float = float("nan")
    nowcast_low: float = float("nan")
    nowcast_high: float = float("nan")
    complete_share: float = float("nan")
    #: for a week still filling: the chance its final count ends above the threshold (a warning,
    #: "likely surge once reporting completes", when at least `[detection] nowcast_likely`)
    chance_above: float = float("nan")

    @property
    def provisional(self) -> bool:
        """Judged on a count still filling (a share of its eventual count known below 1): the next run re-judges it."""
        return self.complete_share < 1  # NaN: complete, or no nowcast


@dataclass(frozen=True)
class SeriesResult:
    """A series, its detection this week and the context a report needs."""

    series: WeeklySeries
    detection: Detection
    #: detector output over the plotted window: week_start, count, expected, upperbound, alarm
    history: "pd.DataFrame"
    weeks_in_alert: int  # consecutive alarmed weeks ending this week (0 if not flagged)
    status: str  # "new" | "continuing" | "resolved" | "" (quiet)
    trend: str  # "↑" | "↓" | "→": last 4 weeks against the 4 before
    #: incidents behind the alarm (empty unless flagged): INCIDENT_FIELDS columns
    incidents: "pd.DataFrame | None" = None


@dataclass(frozen=True)
class SeriesProblem:
    """A [[series]] definition that yields no series: which one, the filter at fault (or "" for the
    definition as a whole), the values of it that match no incident, and the nearest values in the data."""

    definition: str
    filter: str
    values: tuple[str, ...]
    message: str
    nearest: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Annotation:
    """A dated event drawn on every chart, e.g. 2023-02-06 Turkey–Syria earthquake."""

    date: date
    label: str


@dataclass(frozen=True)
class RunResult:
    """Everything one weekly run produced; the report renders it and reads no database."""

    week: str  # ISO label, e.g. "2023-W09"
    week_start: date
    week_end: date  # last day of the week (inclusive)
    generated_at: datetime
    data_start: date | None  # first week used by any series
    records_total: int  # incidents and pre-aggregated count rows in the database
    last_ingest: IngestResult | None  # the most recent ingest in the log (data freshness)
    latest_event_date: date | None  # latest event on or before week_end
    detectors: dict[str, dict[str, Any]]  # detector name -> parameters in use
    results: tuple[SeriesResult, ...]
    ingests: tuple[IngestResult, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    synthetic: bool = False  # demo data: the report must say the data is synthetic
    notes: tuple[str, ...] = ()  # run-level remarks for the report
    #: what the severity setting means in false alarms a week (monitor.severity.FalseAlarmBudget)
    false_alarms: Any = None
    #: the false-alert rate a stored `monitor backtest` of the same configuration measured
    #: (monitor.backtest.MeasuredRate); None: none was run, and the report says the figure is nominal
    measured_rate: Any = None
    #: series key -> its alert lifecycle this week, e.g. "firing since 2023-W07", "silenced (#3 until 2023-03-20)"
    alert_notes: dict[str, str] = field(default_factory=dict)
    #: silences in force when the run was made
    silences: tuple["Silence", ...] = ()
    #: one-line reasons of the input files this run refused (nothing was read from them)
    refused: tuple[str, ...] = ()
    #: ingests since the previous week's run that rejected rows (the rest of each file was kept)
    rejected: tuple[RejectedRows, ...] = ()
    #: series key -> how far its sources' data goes, for each series no source of which reaches the week:
    #: missing, not zero (held, not judged quiet; monitor.coverage)
    no_data: dict[str, str] = field(default_factory=dict)
    #: when no source in use reaches the week: the line saying so and what to do (the report leads with it)
    no_data_line: str = ""
    #: why the week has no nowcast although data arrive in several deliveries ("" otherwise)
    nowcast_note: str = ""
    #: the incidents of the four weeks to the reported one in the countries monitored, for the map
    #: (monitor.report.maps; INCIDENT_FIELDS columns); None: no map (a run without context)
    map_events: "pd.DataFrame | None" = None
    #: new actors and places of the week (monitor.emerging.Emergence); () when not computed
    emerging: tuple = ()
    #: [[series]] definitions that yielded no series, and why (monitor.series.definition_problems)
    problems: tuple[SeriesProblem, ...] = ()

    @property
    def warnings(self) -> tuple[SeriesResult, ...]:
        """Series at the warning level this week (not alerts), strongest evidence first (`rank_key`)."""
        hits = [r for r in self.results if r.detection.level == "warning"]
        return tuple(sorted(hits, key=rank_key))

    @property
    def flagged(self) -> tuple[SeriesResult, ...]:
        """Series in alarm this week, strongest evidence first (`rank_key`)."""
        hits = [r for r in self.results if r.detection.alarm]
        return tuple(sorted(hits, key=rank_key))


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by the report step."""

    folder: Path
    markdown: Path
    charts: dict[str, Path] = field(default_factory=dict)  # series key -> PNG
    map: Path | None = None  # the map of the week (monitor.report.maps), when there were events to draw
    html: Path | None = None  # the report as one self-contained web page (monitor.report.html)


def _nan_low(x: float) -> float:
    return float("-inf") if x != x else x


def rank_key(r: SeriesResult) -> tuple[float, float, float]:
    """Sort key, strongest first: the evidence p-value (a probability, comparable across series and
    detectors, so 3 events against 0.7 expected, p = 0.077, never ranks above 24 against 0.3), then the
    exceedance score, then the count; detectors without p-values rank after those with one."""
    d = r.detection
    p = d.evidence_p if d.evidence_p == d.evidence_p else float("inf")
    return (p, -_nan_low(d.score), -d.observed if d.observed == d.observed else 0.0)


@dataclass(frozen=True)
class AlertState:
    """Where a series stands (a row of the alert_states table)."""

    series: str
    state: str = ""  # "" | pending | firing | recovering | resolved
    severity: str = ""  # highest severity seen in this episode
    band: int = 0  # highest exceedance band seen in this episode
    since_week: str = ""  # first flagged week of the episode
    flagged_weeks: int = 0  # consecutive flagged weeks (pending / firing)
    quiet_weeks: int = 0  # consecutive quiet weeks (recovering)
    announced_week: str = ""  # last week a notification about this episode was queued
    announced_index: int = -1  # its week index
    announced_severity: str = ""
    announced_band: int = 0
    last_week: str = ""  # last week processed
    last_index: int = -1
    #: weeks judged on a count still filling, open to re-judging (JSON list, oldest first: week, index,
    #: level, and the state before the week's step); "" when none (monitor.alerts.lifecycle.rejudge)
    provisional: str = ""


@dataclass(frozen=True)
class EmergenceState:
    """Where an emergence alert stands (a row of the emergence_alerts table; monitor.alerts.emergence).

    Open from the week it is first flagged until `[emerging] weeks` weeks after the last week it was
    flagged; while open, the same actor in the same admin1 (or the same place) is not announced again.
    """

    key: str  # emergence/kind=new-actor|country=Syria|admin1=Homs|actor=liwa fatemiyoun
    kind: str  # new-actor | new-place | more-actors
    country: str
    admin1: str
    what: str  # the actor's name as written, the admin2, or "N actors"
    state: str = "open"  # open | closed
    first_week: str = ""  # the week it was first flagged (this episode)
    last_week: str = ""  # the last week it was flagged
    last_index: int = -1
    announced_week: str = ""  # the week it was last emailed ("" when it never reached a route)
    announced_index: int = -1
    announced_actors: int = 0  # more-actors: the count last emailed (a higher one is an escalation)


MultipleTesting = Literal["per-series", "fdr"]


@dataclass(frozen=True)
class SeveritySettings:
    """How alerts and warnings are decided across a run (the config's [detection] table, whose
    defaults these are; `monitor.severity` applies them)."""

    multiple_testing: MultipleTesting = "per-series"
    warning_alpha: float = 0.05
    fdr: float = 0.05
    warning_fdr: float = 0.20


class _ReadsAsRow:
    """Read access by column name (`value["week"]`), as the store's rows were read before they were typed.

    `as_row()` is the row as the store used to hand it out (JSON-decoded lists, plain dicts); `value[key]`,
    `keys()` and `get` read it. Kept for readers of the old dict rows (tests, scripts); code in `monitor/`
    reads the attributes.
    """

    __slots__ = ()

    def as_row(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.as_row()[key]

    def keys(self) -> list[str]:
        return list(self.as_row())

    def get(self, key: str, default: Any = None) -> Any:
        return self.as_row().get(key, default)


#: The keys of a run's summary, in the order RunSummary declares them (the JSON text sorts them).
RUN_SUMMARY_KEYS: tuple[str, ...] = (
    "series", "flagged", "warnings", "queued", "announced", "outbox_pending", "outbox_unknown", "ingested_files",
    "refused", "error", "emailed",
)  # fmt: skip


@dataclass(frozen=True)
class RunSummary:
    """What one recorded run did: the `summary` JSON of a row of the runs table.

    A field is None when the run did not record it (a failed run records fewer keys; runs recorded by
    older versions, other keys): None fields are left out of the JSON, and keys this type does not
    know are kept in `extra`, so `from_json(text).to_json() == text` for every stored summary.
    """

    series: int | None = None  # how many series were judged
    flagged: tuple[str, ...] | None = None  # series keys in alarm
    warnings: tuple[str, ...] | None = None  # series keys at the warning level
    queued: int | None = None  # messages put in the outbox
    announced: tuple[str, ...] | None = None  # series keys in messages delivered
    outbox_pending: int | None = None  # messages left in the outbox
    outbox_unknown: int | None = None  # messages sent whole without a final answer
    ingested_files: tuple[str, ...] | None = None
    refused: tuple[str, ...] | None = None  # one-line reasons of the input files refused
    error: str | None = None  # the delivery error, or why the run failed
    emailed: bool | None = None  # False: a report-only run (--no-email, alerts off)
    extra: dict[str, Any] = field(default_factory=dict)  # keys not listed above, as recorded (or a listed key recorded as null)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "RunSummary":
        """A summary from its keys (lists become tuples); keys not among the fields go to `extra`."""
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in values.items():
            if key in RUN_SUMMARY_KEYS and value is not None:
                known[key] = tuple(value) if isinstance(value, list) else value
            else:
                extra[key] = value
        return cls(**known, extra=extra)

    @classmethod
    def from_json(cls, text: str) -> "RunSummary":
        """The summary stored as JSON text (a text that is not a JSON object reads as an empty summary)."""
        values = json.loads(text)
        return cls.from_mapping(values if isinstance(values, dict) else {})

    def as_dict(self) -> dict[str, Any]:
        """The recorded keys as plain JSON values (tuples as lists), None fields left out."""
        out: dict[str, Any] = {}
        for key in RUN_SUMMARY_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        """The JSON text stored in the runs table (keys sorted; dates and other values as text)."""
        return json.dumps(self.as_dict(), default=str, sort_keys=True)

    @property
    def problem(self) -> str:
        """The run's error, else the reasons of the files it refused ("" when neither)."""
        return self.error or "; ".join(self.refused or ())

    @property
    def settles_alerts(self) -> bool:
        """False only for a run recorded as report-only (emailed = false): its alerts were not processed."""
        return self.emailed is not False


@dataclass(frozen=True)
class RecordedRun(_ReadsAsRow):
    """One row of the runs table: a weekly run, when it ran, how it ended and what it did."""

    id: int
    week: str  # ISO week label, e.g. "2023-W09"
    started_at: str  # ISO time, as recorded
    finished_at: str
    status: str  # ok | ingest-refused | delivery-failed | no-data | failed
    summary: RunSummary

    def as_row(self) -> dict[str, Any]:
        return {"id": self.id, "week": self.week, "started_at": self.started_at, "finished_at": self.finished_at,
                "status": self.status, "summary": self.summary.as_dict()}  # fmt: skip


@dataclass(frozen=True)
class OutboxMessage(_ReadsAsRow):
    """A message of the outbox (without its bytes: `Store.outbox_message(id)`), and where its delivery stands."""

    id: int
    week: str
    route: str
    recipients: tuple[str, ...]
    subject: str
    message_id: str
    series: tuple[str, ...]  # series keys the message announces
    created_at: str
    attempts: int = 0
    last_error: str = ""
    last_attempt_at: str | None = None
    sent_at: str | None = None  # a server accepted it
    channel: str = ""  # smtp or eml, once sent
    dead_at: str | None = None  # refused for good: out of the queue, kept with the reason
    unknown_at: str | None = None  # sent whole, no final answer: out of the queue until resent by request

    @property
    def pending(self) -> bool:
        """Still to send: not sent, not refused for good, not of unknown outcome."""
        return self.sent_at is None and not self.dead_at and not self.unknown_at

    @property
    def refused(self) -> bool:
        """Refused for good by the server (`dead_at`)."""
        return bool(self.dead_at)

    @property
    def unknown(self) -> bool:
        """Sent whole with no final answer, not sent since nor refused: waits for `--resend-unknown`."""
        return bool(self.unknown_at) and self.sent_at is None and not self.dead_at

    def as_row(self) -> dict[str, Any]:
        row = {f: getattr(self, f) for f in self.__dataclass_fields__}
        row["recipients"], row["series"] = list(self.recipients), list(self.series)
        return row


@dataclass(frozen=True)
class Silence(_ReadsAsRow):
    """A silence: alerts of series matching `filter` are not emailed until `until` (inclusive)."""

    id: int
    filter: str  # text matched against series names and keys, or `key:<series key>`
    until: str  # ISO date, inclusive
    comment: str
    author: str
    created_at: str
    expired_at: str | None = None  # ended by hand (`monitor silence expire`)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Silence":
        """A silence from a dict of its columns (created_at and expired_at may be left out)."""
        return cls(id=values["id"], filter=values["filter"], until=values["until"], comment=values["comment"],
                   author=values["author"], created_at=values.get("created_at", ""), expired_at=values.get("expired_at"))  # fmt: skip

    def active_on(self, day: date) -> bool:
        """In force on `day`: not expired by hand and `until` not passed."""
        return self.expired_at is None and self.until >= day.isoformat()

    def as_row(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}
