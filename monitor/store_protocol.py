"""What the rest of the monitor asks of its database: the public methods of `monitor.store.Store`.

`Storage` is the interface a second backend would implement (a server database, an in-memory store
for tests); `Store` (SQLite) satisfies it. Functions that take a `store` argument are annotated with
it. Values come back typed (monitor.types: IngestResult, AlertState, RecordedRun with its RunSummary,
OutboxMessage, Silence) except the ingest log, rejects, detections, alert events, backtests and
`stats`, which are still dicts keyed by column name.

Writes are transactional: each write method commits all of its rows or none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from monitor.types import (
        AlertState,
        Detection,
        EmergenceState,
        FileStream,
        IngestResult,
        OutboxMessage,
        ParsedFile,
        RecordedRun,
        RunSummary,
        Silence,
    )


@runtime_checkable
class Storage(Protocol):
    """The monitor's database, as its callers use it."""

    path: Path  # where the database is (named in error messages)

    def close(self) -> None:
        """Release the database (a `with` block does it on exit)."""

    def __enter__(self) -> "Storage": ...

    def __exit__(self, *exc: object) -> None: ...

    # ingest
    def ingest(self, data: "ParsedFile | FileStream", *, sha256: str, now: datetime) -> "IngestResult":
        """Write one file's incidents, counts or deletions, its ingest log entry and its rejects, all or nothing;
        revisions and deletions leave the old values in the incident history."""

    def ingested(self, sha256: str) -> bool:
        """Whether a file with this content was ingested before and is done (not every row rejected)."""

    def last_ingest(self) -> "IngestResult | None":
        """The most recent ingest in the log."""

    def ingests(self) -> list[dict[str, Any]]:
        """Every ingest log entry, oldest first."""

    def rejects(self, *, ingest_id: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Rejected rows (of one ingest, or all), in file order."""

    def ingest_entry(self, *, sha256: str | None = None, ingest_id: int | None = None) -> dict[str, Any] | None:
        """The ingest log entry of a file's content or of an id; None if there is none."""

    # reading the data
    def incidents_frame(self, *, start: date | None = None, end: date | None = None) -> "pd.DataFrame":
        """Incidents with event_date in [start, end] (INCIDENT_FIELDS columns)."""

    def incident_cells(
        self, *, end: date, columns: Sequence[str], week_start: int = 0, equal: dict[str, str] | None = None
    ) -> "pd.DataFrame":
        """Incidents up to `end` counted per week and per value of `columns`: what weekly series need."""

    def record_fetch(self, *, source: str, kind: str, started_at: datetime, finished_at: datetime, status: str,
                     file: str = "", rows: int = 0, cursor: dict | None = None, message: str = "") -> int:  # fmt: skip
        """Log one fetch of a [[sources]] entry; its id."""

    def fetch_ingested(self, fetch_id: int, *, ingest_id: int | None) -> None:
        """Mark a fetched vintage as ingested."""

    def fetch_failed(self, fetch_id: int, *, message: str) -> None:
        """Mark a fetched vintage as failed."""

    def first_seen_by(self, ingest_ids: Iterable[int], *, source: str, start: date, end: date,
                      countries: Iterable[str] = ()) -> list[str]:  # fmt: skip
        """Ids of the stored events of `source` first seen by these ingests, dated start..end."""

    def fetches(self, source: str | None = None, *, status: Sequence[str] = (), limit: int | None = None) -> list[dict[str, Any]]:
        """Fetches, newest first."""

    def incident_versions(self, *, end: date) -> "pd.DataFrame":
        """Every version of every incident up to `end`, with when it was known (known_from, known_to)."""

    def sighting_times(self, *, since: date | None = None) -> list[str]:
        """The distinct first sights (ISO 8601) of the incidents dated on or after `since`."""

    def sightings(self, *, source: str | None = None, country: str | None = None,
                  since: date | None = None) -> list[tuple[str, str, str, str]]:  # fmt: skip
        """When each incident became known: (event date, first seen, earliest revision, "1" if seen by its
        source's first ingest), for the reporting delays and nowcasts."""

    def first_event_date(self, *, end: date, within: dict[str, Sequence[str]] | None = None) -> date | None:
        """The earliest event date up to `end` of the incidents whose columns hold one of the listed values."""

    def actor_first_dates(self, *, end: date, within: dict[str, Sequence[str]] | None = None) -> dict[str, date]:
        """The earliest event date up to `end` of each actor the incidents (filtered so) name."""

    def counts_frame(self, *, start: date | None = None, end: date | None = None) -> "pd.DataFrame":
        """Pre-aggregated count rows with week_start in [start, end] (CountRow columns)."""

    def stats(self, *, until: date | None = None) -> dict[str, Any]:
        """Totals and per-source freshness for reports and `monitor status`."""

    # detections and runs
    def save_detections(self, week: str, detections: Iterable["Detection"]) -> None:
        """Store a week's detections, replacing earlier ones of the same (week, series)."""

    def detections(self, week: str) -> list[dict[str, Any]]:
        """The stored detections of a week, by series key."""

    def record_run(
        self, *, week: str, started_at: datetime, finished_at: datetime, status: str, summary: "RunSummary | dict[str, Any]"
    ) -> None:
        """Log one weekly run, how it ended and what it did."""

    def runs(self) -> list["RecordedRun"]:
        """Every recorded run, oldest first."""

    # measured false-alert rates
    def record_backtest(
        self, burden: dict[str, Any], *, detector: str, fingerprint: str, config: dict, series_filter: str, ran_at: datetime
    ) -> int:
        """Store a backtest's measured burden; return its id."""

    def backtests(self, *, fingerprint: str | None = None) -> list[dict[str, Any]]:
        """Stored backtest burdens, newest first (of one configuration fingerprint when given)."""

    # alert lifecycle
    def alert_states(self) -> dict[str, "AlertState"]:
        """The lifecycle state of every series that has one, by series key."""

    def alert_events(self, week: str | None = None) -> list[dict[str, Any]]:
        """Lifecycle events (one per series and week), oldest first; only `week`'s if given."""

    def emergence_states(self) -> dict[str, "EmergenceState"]:
        """Every emergence alert (open or closed), by key."""

    def commit_alerts(
        self, week: str, states: Iterable["AlertState"], events: Iterable[tuple[str, str, str, str, str]],
        messages: Iterable[dict[str, Any]], *, now: datetime, emergences: Iterable["EmergenceState"] = (),
    ) -> list[int]:  # fmt: skip
        """Save new states (of series and of emergences), the week's events and the messages they call for
        together; return the outbox ids."""

    # the outbox
    def pending_outbox(self) -> list["OutboxMessage"]:
        """Messages still to send, oldest first."""

    def outbox(self, *, pending: bool = False) -> list["OutboxMessage"]:
        """Every outbox message (or only the pending ones), oldest first, without their bytes."""

    def outbox_message(self, outbox_id: int) -> bytes:
        """The stored RFC 5322 bytes of an outbox message."""

    def mark_sent(self, outbox_id: int, *, channel: str, now: datetime) -> None:
        """A server accepted the message (call right after it did)."""

    def mark_failed(self, outbox_id: int, *, error: str, now: datetime) -> None:
        """A delivery attempt failed; the message stays pending."""

    def mark_dead(self, outbox_id: int, *, error: str, now: datetime) -> None:
        """The server refused the message for good: it leaves the queue, kept with the reason."""

    def mark_unknown(self, outbox_id: int, *, error: str, now: datetime) -> None:
        """The message was sent whole without a final answer: it leaves the queue until `resend_unknown`."""

    def resend_unknown(self) -> int:
        """Put every message of unknown outcome back in the queue; return how many."""

    # silences
    def add_silence(self, *, filter: str, until: date, comment: str, author: str, now: datetime) -> int:
        """Store a silence (no email for matching series until `until`, inclusive); return its id."""

    def silences(self) -> list["Silence"]:
        """Every silence, newest first."""

    def active_silences(self, now: datetime | date) -> list["Silence"]:
        """The silences in force on `now`'s date, oldest first."""

    def expire_silence(self, silence_id: int, *, now: datetime) -> bool:
        """End a silence now; False if there is no such silence or it had already ended."""
