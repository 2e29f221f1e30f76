"""The SQLite file: named migrations, every SQL statement, transactions.

This is the only module that speaks SQL. Dates are ISO text. Every multi-table write
runs in one `BEGIN IMMEDIATE` transaction, so a crash or an error leaves either the old
or the new state. Schema changes are new entries at the end of MIGRATIONS, never edits.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlite_utils

from monitor import faults
from monitor.errors import StoreError, disk_hint
from monitor.types import (
    INCIDENT_FIELDS,
    AlertState,
    CountRow,
    Deletion,
    Detection,
    EmergenceState,
    FileStream,
    Incident,
    IngestResult,
    OutboxMessage,
    ParsedFile,
    RecordedRun,
    Reject,
    RunSummary,
    Silence,
)

if TYPE_CHECKING:
    from monitor.store_protocol import Storage

SQLITE_MAGIC = b"SQLite format 3\x00"
COUNT_KEYS: tuple[str, ...] = ("source", "week_start", "country", "admin1", "admin2", "event_type", "sub_event_type", "actor")
COUNT_FIELDS: tuple[str, ...] = (*COUNT_KEYS, "count", "fatalities")
_NUMERIC = ("latitude", "longitude", "fatalities")
#: Incident columns a weekly series may be cut or filtered by (see `incident_cells`).
CELL_COLUMNS: tuple[str, ...] = ("country", "admin1", "admin2", "event_type", "sub_event_type", "actor1", "actor2")
#: Rows per `IN (...)` lookup when matching incoming ids against stored ones.
_CHUNK = 500

#: (name, statements). Append only: the position + 1 is the PRAGMA user_version it leads to.
#: A statement is SQL, or a function of the database for a change SQL alone cannot make (0008).
MIGRATIONS: tuple[tuple[str, tuple[str | Callable[[sqlite_utils.Database], None], ...]], ...] = (
    (
        "0001_initial",
        (
            """CREATE TABLE ingests (
                id INTEGER PRIMARY KEY,
                file TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                format TEXT NOT NULL,
                source TEXT NOT NULL,
                encoding TEXT NOT NULL,
                rows_read INTEGER NOT NULL,
                inserted INTEGER NOT NULL,
                updated INTEGER NOT NULL,
                unchanged INTEGER NOT NULL,
                rejected INTEGER NOT NULL,
                ingested_at TEXT NOT NULL
            )""",
            "CREATE INDEX idx_ingests_sha256 ON ingests (sha256)",
            """CREATE TABLE incidents (
                id INTEGER PRIMARY KEY,
                source TEXT NOT NULL,
                source_id TEXT NOT NULL,
                event_date TEXT NOT NULL,
                date_end TEXT NOT NULL,
                country TEXT NOT NULL DEFAULT '',
                admin1 TEXT NOT NULL DEFAULT '',
                admin2 TEXT NOT NULL DEFAULT '',
                location TEXT NOT NULL DEFAULT '',
                latitude REAL,
                longitude REAL,
                event_type TEXT NOT NULL DEFAULT '',
                sub_event_type TEXT NOT NULL DEFAULT '',
                actor1 TEXT NOT NULL DEFAULT '',
                actor2 TEXT NOT NULL DEFAULT '',
                fatalities INTEGER NOT NULL DEFAULT 0 CHECK (fatalities >= 0),
                notes TEXT NOT NULL DEFAULT '',
                revision TEXT NOT NULL DEFAULT '',
                ingest_id INTEGER REFERENCES ingests (id)
            )""",
            "CREATE UNIQUE INDEX idx_incidents_source_id ON incidents (source, source_id)",
            "CREATE INDEX idx_incidents_event_date ON incidents (event_date)",
            """CREATE TABLE counts (
                id INTEGER PRIMARY KEY,
                source TEXT NOT NULL,
                week_start TEXT NOT NULL,
                country TEXT NOT NULL DEFAULT '',
                admin1 TEXT NOT NULL DEFAULT '',
                admin2 TEXT NOT NULL DEFAULT '',
                event_type TEXT NOT NULL DEFAULT '',
                sub_event_type TEXT NOT NULL DEFAULT '',
                actor TEXT NOT NULL DEFAULT '',
                count INTEGER NOT NULL CHECK (count >= 0),
                fatalities INTEGER NOT NULL DEFAULT 0 CHECK (fatalities >= 0),
                ingest_id INTEGER REFERENCES ingests (id)
            )""",
            "CREATE UNIQUE INDEX idx_counts_key ON counts (source, week_start, country, admin1, admin2, event_type, sub_event_type, actor)",
            "CREATE INDEX idx_counts_week_start ON counts (week_start)",
            """CREATE TABLE rejects (
                id INTEGER PRIMARY KEY,
                ingest_id INTEGER NOT NULL REFERENCES ingests (id),
                file TEXT NOT NULL,
                line INTEGER NOT NULL,
                reason TEXT NOT NULL,
                raw TEXT NOT NULL
            )""",
            "CREATE INDEX idx_rejects_ingest ON rejects (ingest_id)",
            """CREATE TABLE detections (
                week TEXT NOT NULL,
                series TEXT NOT NULL,
                week_start TEXT NOT NULL,
                observed REAL,
                expected REAL,
                threshold REAL,
                score REAL,
                pvalue REAL,
                alarm INTEGER,
                detector TEXT NOT NULL,
                note TEXT NOT NULL DEFAULT '',
                fallback_from TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (week, series)
            )""",
            """CREATE TABLE announcements (
                week TEXT NOT NULL,
                series TEXT NOT NULL,
                channel TEXT NOT NULL,
                message_id TEXT NOT NULL,
                sent_at TEXT NOT NULL,
                PRIMARY KEY (week, series, channel)
            )""",
            """CREATE TABLE runs (
                id INTEGER PRIMARY KEY,
                week TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT NOT NULL,
                status TEXT NOT NULL,
                summary TEXT NOT NULL
            )""",
        ),
    ),
    (
        "0002_detection_levels",  # alert/warning level and Benjamini-Hochberg q-value of each detection
        (
            "ALTER TABLE detections ADD COLUMN level TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE detections ADD COLUMN qvalue REAL",
        ),
    ),
    (
        "0003_alert_lifecycle",  # alert states per series, their history, the outbox and silences
        (
            """CREATE TABLE alert_states (
                series TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                severity TEXT NOT NULL,
                band INTEGER NOT NULL,
                since_week TEXT NOT NULL,
                flagged_weeks INTEGER NOT NULL,
                quiet_weeks INTEGER NOT NULL,
                announced_week TEXT NOT NULL,
                announced_index INTEGER NOT NULL,
                announced_severity TEXT NOT NULL,
                announced_band INTEGER NOT NULL,
                last_week TEXT NOT NULL,
                last_index INTEGER NOT NULL
            )""",
            """CREATE TABLE alert_events (
                week TEXT NOT NULL,
                series TEXT NOT NULL,
                event TEXT NOT NULL,
                state TEXT NOT NULL,
                severity TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (week, series)
            )""",
            """CREATE TABLE outbox (
                id INTEGER PRIMARY KEY,
                week TEXT NOT NULL,
                route TEXT NOT NULL,
                recipients TEXT NOT NULL,
                subject TEXT NOT NULL,
                message_id TEXT NOT NULL,
                message BLOB NOT NULL,
                series TEXT NOT NULL,
                created_at TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                last_error TEXT NOT NULL DEFAULT '',
                last_attempt_at TEXT,
                sent_at TEXT,
                channel TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX idx_outbox_pending ON outbox (sent_at, id)",
            """CREATE TABLE silences (
                id INTEGER PRIMARY KEY,
                filter TEXT NOT NULL,
                until TEXT NOT NULL,
                comment TEXT NOT NULL,
                author TEXT NOT NULL,
                created_at TEXT NOT NULL,
                expired_at TEXT
            )""",
        ),
    ),
    (
        "0004_outbox_dead_letters",  # messages the server refused for good leave the queue instead of blocking it
        ("ALTER TABLE outbox ADD COLUMN dead_at TEXT",),
    ),
    (
        # Weekly series are counted from this index alone (it holds every column they need), so a
        # run over 2 million incidents never reads their notes; `check` of one admin1 seeks into it.
        "0005_incident_cells_index",
        (
            "CREATE INDEX idx_incidents_cells ON incidents (country, admin1, event_type, event_date, admin2,"
            " sub_event_type, source, actor1, actor2, fatalities)",
        ),
    ),
    (
        # The false-alert rate `monitor backtest` measured (issue 11, item 4): the weekly report
        # quotes the latest one whose fingerprint matches its own detectors and levels.
        "0006_backtest_burden",
        (
            """CREATE TABLE backtests (
                id INTEGER PRIMARY KEY,
                ran_at TEXT NOT NULL,
                first_week TEXT NOT NULL,
                last_week TEXT NOT NULL,
                weeks INTEGER NOT NULL,
                series_filter TEXT NOT NULL DEFAULT '',
                detector TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                config TEXT NOT NULL,
                series INTEGER NOT NULL,
                series_weeks INTEGER NOT NULL,
                alerts INTEGER NOT NULL,
                alerts_per_100 REAL,
                warnings INTEGER NOT NULL,
                undecided INTEGER NOT NULL,
                outside_series_weeks INTEGER NOT NULL,
                outside_alerts INTEGER NOT NULL,
                outside_per_100 REAL,
                surge_rule TEXT NOT NULL,
                by_detector TEXT NOT NULL
            )""",
            "CREATE INDEX idx_backtests_fingerprint ON backtests (fingerprint, id)",
        ),
    ),
    (
        # A message whose whole content reached the server but whose final answer never came
        # (timeout or disconnect after the end of DATA) may have been accepted: it waits for the
        # user's word (`monitor alerts flush --resend-unknown`) instead of being resent (issue 12, item 3).
        "0007_outbox_unknown_outcome",
        ("ALTER TABLE outbox ADD COLUMN unknown_at TEXT",),
    ),
    (
        # Label values are escaped in series keys (`A|admin2=B` → `A%7Cadmin2%3DB`, issue 12, item 7):
        # stored keys whose labels hold `|`, `=` or `%` are rewritten where they read one way only.
        "0008_escaped_series_keys",
        (lambda db: _rekey_series(db),),
    ),
    (
        # Rows older than the stored revision of their event are kept out (issue 12, item 8):
        # the ingest log counts them beside inserted, updated and unchanged.
        "0009_ingest_older",
        ("ALTER TABLE ingests ADD COLUMN older INTEGER NOT NULL DEFAULT 0",),
    ),
    (
        # History is kept (issue 14, item 1): when each incident was first seen (never overwritten),
        # every revision's old values and every deletion, with the ingest that made it. Databases from
        # before know only the ingest that last wrote an event: for an event revised before this
        # migration, that ingest is what it records as first seen (a time after the true first sight).
        "0010_incident_history",
        (
            "ALTER TABLE incidents ADD COLUMN first_ingest_id INTEGER REFERENCES ingests (id)",
            "ALTER TABLE incidents ADD COLUMN first_seen TEXT NOT NULL DEFAULT ''",
            "UPDATE incidents SET first_ingest_id = ingest_id,"
            " first_seen = COALESCE((SELECT ingested_at FROM ingests WHERE ingests.id = incidents.ingest_id), '')",
            """CREATE TABLE incident_history (
                id INTEGER PRIMARY KEY,
                source TEXT NOT NULL,
                source_id TEXT NOT NULL,
                change TEXT NOT NULL CHECK (change IN ('revised', 'deleted')),
                ingest_id INTEGER NOT NULL REFERENCES ingests (id),
                changed_at TEXT NOT NULL,
                revision TEXT NOT NULL DEFAULT '',
                old TEXT NOT NULL
            )""",
            "CREATE INDEX idx_incident_history_event ON incident_history (source, source_id, id)",
            "ALTER TABLE ingests ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE ingests ADD COLUMN not_found INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    (
        # Alarms that account for late reporting (issue 14, item 4): a week judged on a count still
        # filling is re-judged by the next run, from the state it started from.
        "0011_provisional_alert_weeks",
        ("ALTER TABLE alert_states ADD COLUMN provisional TEXT NOT NULL DEFAULT ''",),
    ),
    (
        # Data that arrives by itself (issue 15): each fetch of a [[sources]] entry, the file (vintage)
        # it was stored as before being ingested, and where the next fetch starts (cursor).
        "0012_fetches",
        (
            """CREATE TABLE fetches (
                id INTEGER PRIMARY KEY,
                source TEXT NOT NULL,
                kind TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('fetched', 'ingested', 'nothing-new', 'failed')),
                file TEXT NOT NULL DEFAULT '',
                rows INTEGER NOT NULL DEFAULT 0,
                cursor TEXT NOT NULL DEFAULT '{}',
                message TEXT NOT NULL DEFAULT '',
                ingest_id INTEGER REFERENCES ingests (id)
            )""",
            "CREATE INDEX idx_fetches_source ON fetches (source, id)",
        ),
    ),
    (
        # Emergences as alerts (issue 16, item 2): a new actor, a new place or more actors than ever is
        # announced once and remembered while open, so neither a re-run nor the following weeks repeat it.
        "0013_emergence_alerts",
        (
            """CREATE TABLE emergence_alerts (
                key TEXT PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('new-actor', 'new-place', 'more-actors')),
                country TEXT NOT NULL,
                admin1 TEXT NOT NULL,
                what TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
                first_week TEXT NOT NULL,
                last_week TEXT NOT NULL,
                last_index INTEGER NOT NULL,
                announced_week TEXT NOT NULL DEFAULT '',
                announced_index INTEGER NOT NULL DEFAULT -1,
                announced_actors INTEGER NOT NULL DEFAULT 0
            )""",
        ),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

#: Tables holding series keys in a `series` column (migration 0008).
_KEYED_TABLES = ("detections", "announcements", "alert_states", "alert_events")


def _rekey_series(db: sqlite_utils.Database) -> None:
    """Migration 0008: rewrite series keys stored before label values were escaped in them.

    A key whose labels hold no `|`, `=` or `%` is unchanged. Any other is rewritten to the escaped key
    of the labels it reads as (monitor.series.legacy_key_readings); when it reads several ways
    (`d/admin1=A|admin2=B`: admin1 `A` and admin2 `B`, or admin1 `A|admin2=B`), the reading whose
    values all occur in the stored incidents or counts is taken; if that still leaves several, or
    none, the rows stay under their old key, which now names the reading of ordinary labels (the
    series whose rows they most likely are: before 0008 the two shared these rows anyway).
    Covers detections, announcements, alert states and events, outbox series lists and `key:` silences.
    """
    from monitor.series import KEY_PREFIX, legacy_key_readings, series_key
    from monitor.types import DIMENSIONS

    keys: set[str] = set()
    for table in _KEYED_TABLES:
        keys |= {k for (k,) in db.execute(f"SELECT DISTINCT series FROM {table}")}
    outbox = [(i, json.loads(text)) for i, text in db.execute("SELECT id, series FROM outbox")]
    keys |= {k for _, listed in outbox for k in listed}
    silences = [(i, f) for i, f in db.execute("SELECT id, filter FROM silences") if f.startswith(KEY_PREFIX)]
    keys |= {f[len(KEY_PREFIX):] for _, f in silences}

    stored: dict[str, set[str]] = {}  # the distinct values of a dimension in the data, read when first needed

    def occurs(dim: str, value: str) -> bool:
        if dim not in stored:
            columns = [("incidents", "actor1"), ("incidents", "actor2"), ("counts", "actor")] if dim == "actor" else [
                ("incidents", dim), ("counts", dim)]  # fmt: skip
            stored[dim] = {v for table, column in columns for (v,) in db.execute(f"SELECT DISTINCT {column} FROM {table}")}
        return ("" if value == "(unknown)" else value) in stored[dim]

    renamed: dict[str, str] = {}
    for key in keys:
        readings = legacy_key_readings(key, DIMENSIONS)
        if len(readings) > 1:
            readings = [r for r in readings if all(occurs(dim, value) for dim, value in r)]
        if len(readings) == 1:
            new = series_key(key.partition("/")[0], readings[0])
            if new != key:
                renamed[key] = new
    if not renamed:
        return
    for table in _KEYED_TABLES:
        # OR IGNORE: a row already under the new key (only possible for contrived old keys) is kept as it is
        db.conn.executemany(f"UPDATE OR IGNORE {table} SET series = ? WHERE series = ?", [(n, o) for o, n in renamed.items()])
    db.conn.executemany("UPDATE outbox SET series = ? WHERE id = ?",
                        [(json.dumps([renamed.get(k, k) for k in listed]), i) for i, listed in outbox
                         if any(k in renamed for k in listed)])  # fmt: skip
    db.conn.executemany("UPDATE silences SET filter = ? WHERE id = ?",
                        [(KEY_PREFIX + renamed[f[len(KEY_PREFIX):]], i) for i, f in silences if f[len(KEY_PREFIX):] in renamed])  # fmt: skip


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _within(end: date, within: dict[str, Sequence[str]] | None, caller: str) -> tuple[str, list]:
    """WHERE clause and parameters: incidents up to `end` whose columns hold one of the listed values."""
    clauses, params = ["event_date <= ?"], [end.isoformat()]
    for column, values in (within or {}).items():
        if column not in (*CELL_COLUMNS, "source"):
            raise ValueError(f"{caller}: cannot select on {column!r}")
        clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
        params.extend(values)
    return " AND ".join(clauses), params


def _date(value: str | None) -> date | None:
    return None if not value else date.fromisoformat(value[:10])


def _revision(value: str) -> int | None:
    """A revision as a number (ACLED `timestamp`: Unix seconds of the event's last edit); None: no revision."""
    v = value.strip() if value else ""
    return int(v) if v.isascii() and v.isdigit() else None


def newer_or_same(incoming: str, stored: str) -> bool:
    """Whether a row of revision `incoming` may replace the stored row of revision `stored`.

    Only when both carry a revision are they compared (as whole numbers): an older incoming
    row never replaces a newer stored one (issue 12, item 8). A row without a revision (legacy
    ACLED, UCDP GED, mapped CSV), or a stored row without one, is replaced as before: the
    latest ingest wins, since nothing says which of the two is older.
    """
    new, old = _revision(incoming), _revision(stored)
    return new is None or old is None or new >= old


def _newer(incoming: str, than: str) -> bool:
    """Whether revision `incoming` is strictly newer than `than` (both whole Unix seconds); a row without
    a revision is never newer than a deletion, which always carries one."""
    new, old = _revision(incoming), _revision(than)
    return new is not None and old is not None and new > old


def _num(value: float) -> float | None:
    """NaN (a detector's 'could not compute') is stored as NULL."""
    return None if value is None or value != value else float(value)


def _storage_failure(exc: BaseException) -> bool:
    """An SQLite error from the disk under the database (full, read-only, failing), not from the program."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return isinstance(exc, sqlite3.OperationalError) and name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY"))


def _read_only_filesystem(path: Path) -> bool:
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _read_only_uri(path: Path) -> str:
    """An SQLite URI that reads `path` on a read-only filesystem. A WAL database needs its -shm file,
    which cannot be made there; with nothing in its -wal file the database is whole and `immutable`
    reads it without one. With a -wal file left behind (a writer stopped before checkpointing), its
    pages matter: plain `mode=ro` reads them if the -shm file is there too, else fails with a hint."""
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    return path.resolve().as_uri() + ("?mode=ro" if pending else "?mode=ro&immutable=1")


class Store:
    """The monitor's SQLite database; opening it applies pending migrations.

    path: the database file (created when missing; its folder must exist).
    read_only: the caller only reads. On a read-only filesystem (a mounted backup, a read-only
        volume) the file is then opened read-only instead of failing on the -shm file WAL mode
        needs; without it, such a filesystem gives an error that says what to do.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._check_file()
        #: opened read-only because its filesystem is (only with read_only=True); writes then fail
        self.read_only = read_only and _read_only_filesystem(self.path)
        try:
            if self.read_only:
                conn = sqlite3.connect(_read_only_uri(self.path), uri=True, timeout=30)
            else:
                conn = sqlite3.connect(str(self.path), timeout=30)
            self.db = sqlite_utils.Database(conn, execute_plugins=False)
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA foreign_keys = ON")
            if not self.read_only and self.db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self.db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            damaged = "malformed" in str(exc) or "not a database" in str(exc)
            hint = " (the file is damaged: restore it from a backup, or point --db / database.path at another file)" if damaged else disk_hint(self.path)
            raise StoreError(f"{self.path}: cannot open the database: {exc}{hint}") from None
        except StoreError:
            self._close_quietly()
            raise

    def _check_file(self) -> None:
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a database file (set database.path to a file)")
        if not self.path.parent.is_dir():
            raise StoreError(f"{self.path}: folder {self.path.parent} does not exist (create it or fix database.path)")
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as handle:
                head = handle.read(len(SQLITE_MAGIC))
            if head != SQLITE_MAGIC:
                raise StoreError(f"{self.path}: not an SQLite database (point database.path at a monitor database or a new file)")

    def _close_quietly(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass

    def _version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: database schema version {version} is newer than this program "
                f"(knows up to {SCHEMA_VERSION}); upgrade incident-monitor"
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise StoreError(
                f"{self.path}: the database is at schema version {version} and this program needs {SCHEMA_VERSION}, "
                f"which cannot be written on a read-only filesystem: run any monitor command once where the file is "
                f"writable, or use the incident-monitor version that wrote it"
            )
        with self._transaction():
            version = self._version()  # another process may have migrated while we waited
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, version INTEGER NOT NULL, applied_at TEXT NOT NULL)"
            )
            for number, (name, statements) in enumerate(MIGRATIONS, start=1):
                if number <= version:
                    continue
                for sql in statements:
                    sql(self.db) if callable(sql) else self.db.execute(sql)
                self.db.execute(
                    "INSERT INTO migrations (name, version, applied_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%S', 'now'))",
                    [name, number],
                )
                self.db.execute(f"PRAGMA user_version = {int(number)}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: everything inside commits together or not at all."""
        conn = self.db.conn
        if conn.in_transaction:
            raise StoreError(f"{self.path}: a transaction is already open")
        faults.point("store.begin")
        conn.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for another process's write transaction
        try:
            yield
            faults.point("store.commit")  # the writes are done, not yet committed (overlap and crash tests)
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _storage_failure(exc):
                raise StoreError(f"{self.path}: cannot write the database: {exc}{disk_hint(self.path)}") from None
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if _storage_failure(exc):
                    raise StoreError(f"{self.path}: cannot write the database: {exc}{disk_hint(self.path)}") from None
                raise

    def close(self) -> None:
        """Close the connection (WAL content is checkpointed into the file)."""
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ingest
    def ingest(self, data: ParsedFile | FileStream, *, sha256: str, now: datetime) -> IngestResult:
        """Write one file in one transaction: upsert incidents and counts, log the ingest and its rejects.

        data: a stream from `sources.open_file` (written batch by batch as it is parsed) or
        a whole ParsedFile. Re-ingesting the same rows inserts and updates nothing; a row
        whose content changed is updated in place, unless its revision is older than the stored
        one (`newer_or_same`): then the stored row stays and the row counts as `older`. Any error, including a problem found
        late in the file, rolls the whole file back (StoreError for SQLite errors).
        """
        stream = data if isinstance(data, FileStream) else FileStream.of(data)
        inserted = updated = unchanged = older = deleted = not_found = 0
        try:
            with self._transaction():
                cursor = self.db.execute(
                    "INSERT INTO ingests (file, sha256, format, source, encoding, rows_read, inserted, updated, unchanged,"
                    " rejected, ingested_at) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, ?)",
                    [str(stream.path), sha256, stream.format, stream.source, stream.encoding, _iso(now)],
                )
                ingest_id = cursor.lastrowid
                for items, rejects in stream:
                    if stream.kind == "deletions":
                        gone, missing, old = self._apply_deletions(items, ingest_id, now=now)
                        deleted, not_found, older = deleted + gone, not_found + missing, older + old
                    else:
                        upsert = self._upsert_counts if stream.kind == "counts" else self._upsert_incidents
                        ins, upd, same, old = upsert(items, ingest_id, now=now)
                        inserted, updated, unchanged, older = inserted + ins, updated + upd, unchanged + same, older + old
                    self._insert_rejects(stream.path, rejects, ingest_id)
                    faults.point("ingest.batch-written")
                self.db.execute(
                    "UPDATE ingests SET source = ?, rows_read = ?, inserted = ?, updated = ?, unchanged = ?, older = ?,"
                    " deleted = ?, not_found = ?, rejected = ? WHERE id = ?",
                    [stream.source, stream.rows_read, inserted, updated, unchanged, older, deleted, not_found, stream.rejected,
                     ingest_id],
                )  # fmt: skip
                faults.point("ingest.before-commit")
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an int beyond SQLite's 64-bit INTEGER
            raise StoreError(f"{self.path}: ingest of {stream.path} failed and was rolled back: {exc}{disk_hint(self.path)}") from None
        finally:
            stream.close()
        return IngestResult(
            file=str(stream.path), sha256=sha256, format=stream.format, source=stream.source,
            rows_read=stream.rows_read, inserted=inserted, updated=updated, unchanged=unchanged,
            rejected=stream.rejected, older=older, deleted=deleted, not_found=not_found,
        )

    def _upsert_incidents(self, incidents: Iterable[Incident], ingest_id: int, *, now: datetime) -> tuple[int, int, int, int]:
        """Insert new events, update changed ones; (inserted, updated, unchanged, older).

        A new event records this ingest as when it was first seen; a changed one keeps that and
        leaves its old values in the incident history. An event deleted before (a deletion list)
        comes back only as a revision newer than its deletion; otherwise it counts as `older`."""
        content = INCIDENT_FIELDS[2:]  # everything but the key (source, source_id)
        rev = content.index("revision")
        by_source: dict[str, dict[str, tuple]] = {}
        for inc in incidents:
            by_source.setdefault(inc.source, {})[inc.source_id] = tuple(getattr(inc, f) for f in content)
        inserted = updated = unchanged = older = 0
        cols = ", ".join(content)
        for source, rows in by_source.items():
            stored: dict[str, tuple] = {}
            ids = list(rows)
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                for found in self.db.execute(
                    f"SELECT source_id, {cols} FROM incidents WHERE source = ? AND source_id IN ({marks})", [source, *chunk]
                ):
                    stored[found[0]] = tuple(found[1:])
            gone = self._deletions(source, [sid for sid in rows if sid not in stored])
            # a deleted event returns only as a revision newer than its deletion (a stale export cannot revive it)
            buried = {sid for sid, when in gone.items() if not _newer(rows[sid][rev], when)}
            seen = _iso(now)
            new = [(source, sid, *values, ingest_id, ingest_id, seen) for sid, values in rows.items()
                   if sid not in stored and sid not in buried]  # fmt: skip
            # an older revision never replaces a newer one: the stored row stays as it is
            kept = {sid for sid, values in rows.items() if sid in stored and not newer_or_same(values[rev], stored[sid][rev])}
            changed = [(*values, ingest_id, source, sid) for sid, values in rows.items()
                       if sid in stored and sid not in kept and stored[sid] != values]  # fmt: skip
            if new:
                self.db.conn.executemany(
                    f"INSERT INTO incidents (source, source_id, {cols}, ingest_id, first_ingest_id, first_seen)"
                    f" VALUES ({', '.join('?' * (len(content) + 5))})",
                    new,
                )
            if changed:
                self._remember(source, [(sid, stored[sid]) for *_, sid in changed], "revised", ingest_id, seen)
                assignments = ", ".join(f"{c} = ?" for c in content)
                self.db.conn.executemany(
                    f"UPDATE incidents SET {assignments}, ingest_id = ? WHERE source = ? AND source_id = ?", changed
                )
            kept |= buried
            inserted += len(new)
            updated += len(changed)
            older += len(kept)
            unchanged += len(rows) - len(new) - len(changed) - len(kept)
        return inserted, updated, unchanged, older

    def _remember(self, source: str, old: Sequence[tuple[str, tuple]], change: str, ingest_id: int, when: str,
                  revisions: Sequence[str] | None = None) -> None:  # fmt: skip
        """Keep the stored values of events about to be revised or deleted in the incident history."""
        content = INCIDENT_FIELDS[2:]
        rev = content.index("revision")
        self.db.conn.executemany(
            "INSERT INTO incident_history (source, source_id, change, ingest_id, changed_at, revision, old)"
            " VALUES (?, ?, ?, ?, ?, ?, json_set(?, '$.first_seen',"
            " (SELECT first_seen FROM incidents WHERE source = ? AND source_id = ?)))",
            [(source, sid, change, ingest_id, when, revisions[i] if revisions else values[rev],
              json.dumps(dict(zip(content, values)), ensure_ascii=False), source, sid)
             for i, (sid, values) in enumerate(old)],
        )  # fmt: skip

    def _deletions(self, source: str, ids: Sequence[str]) -> dict[str, str]:
        """The latest deletion revision of each of these events that was deleted (none: not in the result)."""
        found: dict[str, str] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            for sid, revision in self.db.execute(
                f"SELECT source_id, revision FROM incident_history WHERE change = 'deleted' AND source = ?"
                f" AND source_id IN ({', '.join('?' * len(chunk))}) ORDER BY id",
                [source, *chunk],
            ):
                found[sid] = revision
        return found

    def _apply_deletions(self, deletions: Iterable[Deletion], ingest_id: int, *, now: datetime) -> tuple[int, int, int]:
        """Delete the listed events, remembering them in the history; (deleted, not found, older).

        A deletion older than the stored revision of its event (the event was edited after it) is not
        applied (`older`). One of an event the database does not hold is still remembered, so the
        event cannot arrive later from an export made before the deletion."""
        content = INCIDENT_FIELDS[2:]
        rev = content.index("revision")
        cols = ", ".join(content)
        deleted = not_found = older = 0
        by_source: dict[str, dict[str, str]] = {}
        for d in deletions:
            by_source.setdefault(d.source, {})[d.source_id] = d.revision
        seen = _iso(now)
        for source, rows in by_source.items():
            stored: dict[str, tuple] = {}
            ids = list(rows)
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                for found in self.db.execute(
                    f"SELECT source_id, {cols} FROM incidents WHERE source = ? AND source_id IN ({', '.join('?' * len(chunk))})",
                    [source, *chunk],
                ):
                    stored[found[0]] = tuple(found[1:])
            edited = {sid for sid in stored if _newer(stored[sid][rev], rows[sid])}
            gone = [(sid, stored[sid]) for sid in ids if sid in stored and sid not in edited]
            self._remember(source, gone, "deleted", ingest_id, seen, revisions=[rows[sid] for sid, _ in gone])
            absent = [(sid, ()) for sid in ids if sid not in stored]
            self.db.conn.executemany(
                "INSERT INTO incident_history (source, source_id, change, ingest_id, changed_at, revision, old)"
                " VALUES (?, ?, 'deleted', ?, ?, ?, '{}')",
                [(source, sid, ingest_id, seen, rows[sid]) for sid, _ in absent],
            )
            self.db.conn.executemany(
                "DELETE FROM incidents WHERE source = ? AND source_id = ?", [(source, sid) for sid, _ in gone]
            )
            deleted, not_found, older = deleted + len(gone), not_found + len(absent), older + len(edited)
        return deleted, not_found, older

    def _upsert_counts(self, rows: Iterable[CountRow], ingest_id: int, *, now: datetime) -> tuple[int, int, int, int]:
        """As `_upsert_incidents`; counts carry no revision, so none is ever `older` (the latest ingest wins)."""
        incoming = {tuple(getattr(r, k) for k in COUNT_KEYS): (r.count, r.fatalities) for r in rows}
        by_source: dict[str, set[str]] = {}
        for key in incoming:
            by_source.setdefault(key[0], set()).add(key[1])
        # as for incidents: one IN lookup per chunk of weeks (the key index leads with source,
        # week_start), then match the full key here
        stored: dict[tuple, tuple] = {}
        for source, weeks in by_source.items():
            ordered = sorted(weeks)
            for i in range(0, len(ordered), _CHUNK):
                chunk = ordered[i : i + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                for found in self.db.execute(
                    f"SELECT {', '.join(COUNT_FIELDS)} FROM counts WHERE source = ? AND week_start IN ({marks})", [source, *chunk]
                ):
                    stored[tuple(found[: len(COUNT_KEYS)])] = tuple(found[len(COUNT_KEYS) :])
        new = [(*key, *values, ingest_id) for key, values in incoming.items() if key not in stored]
        changed = [(*values, ingest_id, *key) for key, values in incoming.items() if key in stored and stored[key] != values]
        if new:
            self.db.conn.executemany(
                f"INSERT INTO counts ({', '.join(COUNT_FIELDS)}, ingest_id) VALUES ({', '.join('?' * (len(COUNT_FIELDS) + 1))})",
                new,
            )
        if changed:
            where = " AND ".join(f"{k} = ?" for k in COUNT_KEYS)
            self.db.conn.executemany(f"UPDATE counts SET count = ?, fatalities = ?, ingest_id = ? WHERE {where}", changed)
        return len(new), len(changed), len(incoming) - len(new) - len(changed), 0

    def _insert_rejects(self, path: Path, rejects: Iterable[Reject], ingest_id: int) -> None:
        rows = [(ingest_id, str(path), r.line, r.reason, r.raw) for r in rejects]
        if rows:
            self.db.conn.executemany("INSERT INTO rejects (ingest_id, file, line, reason, raw) VALUES (?, ?, ?, ?, ?)", rows)

    def ingested(self, sha256: str) -> bool:
        """Whether a file with exactly this content (sha256) was ingested before and is done.

        An ingest that rejected every row it read is not done (issue 12, item 5): the rows were
        refused by a mapping's date_format or a wrong clock, so once that is fixed the same file
        must be read again. Its log entry and rejects stay.
        """
        return self.db.execute(
            "SELECT 1 FROM ingests WHERE sha256 = ? AND NOT (rejected > 0 AND rejected >= rows_read) LIMIT 1", [sha256]
        ).fetchone() is not None

    # reading
    @staticmethod
    def _bounds(column: str, start: date | None, end: date | None) -> tuple[str, list[str]]:
        clauses, params = [], []
        if start is not None:
            clauses.append(f"{column} >= ?")
            params.append(start.isoformat())
        if end is not None:
            clauses.append(f"{column} <= ?")
            params.append(end.isoformat())
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def incidents_frame(self, *, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Incidents with event_date in [start, end] (inclusive; None = open): INCIDENT_FIELDS columns."""
        where, params = self._bounds("event_date", start, end)
        rows = self.db.execute(
            f"SELECT {', '.join(INCIDENT_FIELDS)} FROM incidents{where} ORDER BY event_date, source, source_id", params
        ).fetchall()
        frame = pd.DataFrame.from_records(rows, columns=list(INCIDENT_FIELDS))
        frame = frame.astype({c: "str" for c in INCIDENT_FIELDS if c not in _NUMERIC})
        frame["event_date"] = pd.to_datetime(frame["event_date"], format="%Y-%m-%d")
        frame["fatalities"] = frame["fatalities"].astype("int64")
        for col in ("latitude", "longitude"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        return frame

    def incident_cells(
        self, *, end: date, columns: Sequence[str], week_start: int = 0, equal: dict[str, str] | None = None
    ) -> pd.DataFrame:
        """Incidents up to `end` counted per week and per value of `columns`: what weekly series need.

        columns: incident columns to keep (of CELL_COLUMNS); the others come back as "".
        week_start: first day of the week, 0 = Monday ... 6 = Sunday.
        equal: only incidents whose column equals the value (one series for `check`).
        Returns source, date (week start, datetime64), the CELL_COLUMNS, events, fatalities.
        Read from the covering index idx_incidents_cells alone (SQLite would rather walk the
        event_date index and fetch every row: half as fast again on 2 million incidents).
        """
        wanted = [c for c in CELL_COLUMNS if c in columns]
        clauses, params = ["event_date <= ?"], [end.isoformat()]
        for column, value in (equal or {}).items():
            if column not in CELL_COLUMNS:
                raise ValueError(f"incident_cells: cannot select on {column!r}")
            clauses.append(f"{column} = ?")  # as stored, so the index is used
            params.append(value)
        # grouped in the covering index's order (country, admin1, event_type lead it): the sort is shorter
        lead = [c for c in ("country", "admin1", "event_type") if c in wanted]
        keys = ", ".join([*lead, "week", "source", *(c for c in wanted if c not in lead)])
        # SQLite's %w: 0 = Sunday; (w + 6 - start) % 7 days back is the week's first day
        week = f"date(event_date, '-' || ((CAST(strftime('%w', event_date) AS INTEGER) + 6 - {int(week_start) % 7}) % 7) || ' days')"
        rows = self.db.execute(
            f"SELECT {week} AS week, source{''.join(', ' + c for c in wanted)}, count(*), total(fatalities)"
            f" FROM incidents INDEXED BY idx_incidents_cells WHERE {' AND '.join(clauses)} GROUP BY {keys}",
            params,
        ).fetchall()
        frame = pd.DataFrame.from_records(rows, columns=["date", "source", *wanted, "events", "fatalities"])
        frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d")
        for column in CELL_COLUMNS:
            if column not in wanted:
                frame[column] = ""
            else:
                frame[column] = frame[column].astype(str)
        frame["source"] = frame["source"].astype(str)
        frame["events"] = frame["events"].astype("int64")
        # total(): a float sum, which cannot overflow as sum() of 64-bit integers can
        frame["fatalities"] = frame["fatalities"].fillna(0.0).astype("float64")
        return frame[["source", "date", *CELL_COLUMNS, "events", "fatalities"]]

    def sighting_times(self, *, since: date | None = None) -> list[str]:
        """The distinct first sights (`first_seen`, ISO 8601) of the incidents dated on or after `since`: the
        ingests that brought them (a handful of values, where `sightings` has a row per incident)."""
        where, params = (" AND event_date >= ?", [since.isoformat()]) if since else ("", [])
        return [str(row[0]) for row in self.db.execute(f"SELECT DISTINCT first_seen FROM incidents WHERE first_seen != ''{where}", params)]

    def sightings(self, *, source: str | None = None, country: str | None = None, since: date | None = None) -> list[tuple[str, str, str, str]]:
        """When each stored incident became known: (event_date, first_seen, earliest revision, first_of_source).

        earliest revision: the oldest revision the database saw of the event (the one of its first
        ingest, from the history when it was revised since; "" when it has none): for ACLED, the Unix
        time of the edit its first-seen row carried. first_of_source: "1" when the event was first seen
        by the first ingest of its source (nothing earlier could have seen it), else "".
        """
        clauses, params = [], []
        if source:
            clauses.append("i.source = ?")
            params.append(source)
        if country:
            clauses.append("i.country = ?")
            params.append(country)
        if since:
            clauses.append("i.event_date >= ?")
            params.append(since.isoformat())
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [tuple(map(str, row)) for row in self.db.execute(
            "WITH firsts AS (SELECT source, min(first_ingest_id) AS first FROM incidents GROUP BY source)"
            " SELECT i.event_date, i.first_seen,"
            " COALESCE((SELECT h.revision FROM incident_history h WHERE h.source = i.source AND h.source_id = i.source_id"
            "           AND h.change = 'revised' ORDER BY h.id LIMIT 1), i.revision),"
            " CASE WHEN i.first_ingest_id = f.first THEN '1' ELSE '' END"
            f" FROM incidents i JOIN firsts f ON f.source = i.source{where} ORDER BY i.event_date",
            params,
        )]  # fmt: skip

    def incident_versions(self, *, end: date) -> pd.DataFrame:
        """Every version of every incident up to `end` the database has held, with when it was known:
        source, source_id, event_date, the CELL_COLUMNS, fatalities, known_from and known_to (ISO times;
        known_to "" while it is the stored version). From the incidents and their history: an event's
        first version was known from its first sight, each revision from the ingest that made it, and
        a deleted event until its deletion. For `monitor backtest --as-known`.
        History rows written before they kept the event's first sight (`first_seen` in `old`) carry
        none: the first version of an event deleted then counts as known from the start."""
        cols = ("event_date", *CELL_COLUMNS, "fatalities")
        current = {(r[0], r[1]): r[2:] for r in self.db.execute(
            f"SELECT source, source_id, {', '.join(cols)}, first_seen FROM incidents WHERE event_date <= ?", [end.isoformat()]
        )}  # fmt: skip
        rows = []
        history: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for source, sid, change, changed_at, old in self.db.execute(
            "SELECT source, source_id, change, changed_at, old FROM incident_history ORDER BY id"
        ):
            history.setdefault((source, sid), []).append((change, changed_at, old))
        for key, changes in history.items():
            since = ""
            for change, changed_at, old in changes:
                values = json.loads(old)
                if values and values.get("event_date", "") <= end.isoformat():  # '{}': a deletion of an event never held
                    start = since or values.get("first_seen") or ""
                    rows.append((*key, *(values.get(c, "") for c in cols), start, changed_at))
                since = changed_at
            if key in current:  # the stored version: known since its latest change, or its first sight after a deletion
                *values, first_seen = current.pop(key)
                rows.append((*key, *values, max(since, first_seen), ""))
        rows += [(*key, *values[:-1], values[-1], "") for key, values in current.items()]
        frame = pd.DataFrame.from_records(rows, columns=["source", "source_id", *cols, "known_from", "known_to"])
        frame["fatalities"] = pd.to_numeric(frame["fatalities"], errors="coerce").fillna(0.0)
        return frame

    def first_event_date(self, *, end: date, within: dict[str, Sequence[str]] | None = None) -> date | None:
        """The earliest event date up to `end` of the incidents whose columns hold one of the listed values."""
        where, params = _within(end, within, "first_event_date")
        return _date(self.db.execute(f"SELECT min(event_date) FROM incidents WHERE {where}", params).fetchone()[0])

    def actor_first_dates(self, *, end: date, within: dict[str, Sequence[str]] | None = None) -> dict[str, date]:
        """The earliest event date up to `end` of each actor named (as actor1 or actor2) by the incidents
        whose columns hold one of the listed values: where a series filtered on actor names starts."""
        where, params = _within(end, within, "actor_first_dates")
        out: dict[str, date] = {}
        for column in ("actor1", "actor2"):
            for name, first in self.db.execute(f"SELECT {column}, min(event_date) FROM incidents WHERE {where} GROUP BY {column}", params):
                day = _date(first)
                if name and day and (name not in out or day < out[name]):
                    out[str(name)] = day
        return out

    def counts_frame(self, *, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Pre-aggregated count rows with week_start in [start, end]: CountRow columns."""
        where, params = self._bounds("week_start", start, end)
        rows = self.db.execute(
            f"SELECT {', '.join(COUNT_FIELDS)} FROM counts{where} ORDER BY week_start, {', '.join(COUNT_KEYS)}", params
        ).fetchall()
        frame = pd.DataFrame.from_records(rows, columns=list(COUNT_FIELDS))
        frame = frame.astype({c: "str" for c in COUNT_KEYS})
        frame["week_start"] = pd.to_datetime(frame["week_start"], format="%Y-%m-%d")
        frame["count"] = frame["count"].astype("int64")
        frame["fatalities"] = frame["fatalities"].astype("int64")
        return frame

    def stats(self, *, until: date | None = None) -> dict[str, Any]:
        """Totals for the report: records_total, latest_event_date (<= until) and per-source freshness.

        Returns {"records_total": int, "counts_total": int, "latest_event_date": date | None,
        "sources": {source: {"records": int, "latest_event_date": date | None, "last_ingest": datetime | None,
        "latest_incident_date": date | None, "latest_count_week": date | None}}}: per source, latest_event_date
        is the later of its latest incident date and the week start of its latest weekly count row.
        """
        where, params = self._bounds("event_date", None, until)
        total = self.db.execute("SELECT count(*) FROM incidents").fetchone()[0]
        counts_total = self.db.execute("SELECT count(*) FROM counts").fetchone()[0]
        latest = self.db.execute(f"SELECT max(event_date) FROM incidents{where}", params).fetchone()[0]
        sources: dict[str, dict[str, Any]] = {}
        # per source through the indexes (a GROUP BY reads every row: a second on 2 million incidents)
        for (source,) in self.db.execute("SELECT DISTINCT source FROM incidents").fetchall():
            n = self.db.execute("SELECT count(*) FROM incidents WHERE source = ?", [source]).fetchone()[0]
            last = self.db.execute(
                f"SELECT event_date FROM incidents INDEXED BY idx_incidents_event_date{where}"
                f" {'AND' if where else 'WHERE'} source = ? ORDER BY event_date DESC LIMIT 1",
                [*params, source],
            ).fetchone()
            day = _date(last[0] if last else None)
            sources[source] = {"records": n, "latest_event_date": day, "last_ingest": None, "latest_incident_date": day,
                               "latest_count_week": None}  # fmt: skip
        week_where, week_params = self._bounds("week_start", None, until)
        for source, n, last in self.db.execute(
            f"SELECT source, count(*), max(CASE WHEN {'1' if until is None else 'week_start <= ?'} THEN week_start END)"
            " FROM counts GROUP BY source",
            week_params,
        ):
            entry = sources.setdefault(source, {"records": 0, "latest_event_date": None, "last_ingest": None,
                                                "latest_incident_date": None, "latest_count_week": None})  # fmt: skip
            entry["records"] += n
            entry["latest_count_week"] = _date(last)
            if last and (entry["latest_event_date"] is None or _date(last) > entry["latest_event_date"]):
                entry["latest_event_date"] = _date(last)
        # ingests name the file's source; an incident source shares it (one source per file)
        for source, last in self.db.execute("SELECT source, max(ingested_at) FROM ingests GROUP BY source"):
            for name in source.split(","):
                if name in sources:
                    sources[name]["last_ingest"] = datetime.fromisoformat(last)
        return {
            "records_total": int(total),
            "counts_total": int(counts_total),
            "latest_event_date": _date(latest),
            "sources": sources,
        }

    def last_ingest(self) -> IngestResult | None:
        """The most recent ingest in the log (what the report shows as data freshness)."""
        rows = list(self.db.query("SELECT * FROM ingests ORDER BY id DESC LIMIT 1"))
        if not rows:
            return None
        row = rows[0]
        return IngestResult(
            file=row["file"], sha256=row["sha256"], format=row["format"], source=row["source"],
            rows_read=row["rows_read"], inserted=row["inserted"], updated=row["updated"],
            unchanged=row["unchanged"], rejected=row["rejected"], ingested_at=row["ingested_at"], older=row["older"],
        )

    def ingests(self) -> list[dict[str, Any]]:
        """Every ingest, oldest first."""
        return list(self.db.query("SELECT * FROM ingests ORDER BY id"))

    def rejects(self, *, ingest_id: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Rejected rows (of one ingest, or all), in file order; at most `limit` of them."""
        sql, args = "SELECT * FROM rejects", []
        if ingest_id is not None:
            sql, args = sql + " WHERE ingest_id = ?", [ingest_id]
        sql += " ORDER BY id"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, int(limit)]
        return list(self.db.query(sql, args))

    def ingest_entry(self, *, sha256: str | None = None, ingest_id: int | None = None) -> dict[str, Any] | None:
        """The ingest log entry of the file with this content (sha256), or with this id; None if there is none."""
        column, value = ("sha256", sha256) if sha256 is not None else ("id", ingest_id)
        rows = list(self.db.query(f"SELECT * FROM ingests WHERE {column} = ? ORDER BY id DESC LIMIT 1", [value]))
        return rows[0] if rows else None

    # detections, alerts, runs
    def save_detections(self, week: str, detections: Iterable[Detection]) -> None:
        """Store this week's detections, replacing earlier ones of the same (week, series)."""
        rows = [
            (week, d.series, _iso(d.week_start), _num(d.observed), _num(d.expected), _num(d.threshold), _num(d.score),
             _num(d.pvalue), None if d.alarm is None else int(bool(d.alarm)), d.detector, d.note, d.fallback_from,
             d.level, _num(d.qvalue))
            for d in detections
        ]
        with self._transaction():
            self.db.conn.executemany(
                "INSERT INTO detections (week, series, week_start, observed, expected, threshold, score, pvalue, alarm,"
                " detector, note, fallback_from, level, qvalue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (week, series) DO UPDATE SET week_start = excluded.week_start, observed = excluded.observed,"
                " expected = excluded.expected, threshold = excluded.threshold, score = excluded.score,"
                " pvalue = excluded.pvalue, alarm = excluded.alarm, detector = excluded.detector, note = excluded.note,"
                " fallback_from = excluded.fallback_from, level = excluded.level, qvalue = excluded.qvalue",
                rows,
            )

    def detections(self, week: str) -> list[dict[str, Any]]:
        """Stored detections of a week, by series key; alarm is True/False/None."""
        out = []
        for row in self.db.query("SELECT * FROM detections WHERE week = ? ORDER BY series", [week]):
            row["alarm"] = None if row["alarm"] is None else bool(row["alarm"])
            out.append(row)
        return out

    def record_run(
        self, *, week: str, started_at: datetime, finished_at: datetime, status: str, summary: RunSummary | dict[str, Any]
    ) -> None:
        """Log one weekly run and what it did (a dict summary is read as `RunSummary.from_mapping`)."""
        if not isinstance(summary, RunSummary):
            summary = RunSummary.from_mapping(summary)
        with self._transaction():
            self.db.execute(
                "INSERT INTO runs (week, started_at, finished_at, status, summary) VALUES (?, ?, ?, ?, ?)",
                [week, _iso(started_at), _iso(finished_at), status, summary.to_json()],
            )

    def runs(self) -> list[RecordedRun]:
        """Every recorded run, oldest first."""
        return [
            RecordedRun(id=row["id"], week=row["week"], started_at=row["started_at"], finished_at=row["finished_at"],
                        status=row["status"], summary=RunSummary.from_json(row["summary"]))
            for row in self.db.query("SELECT * FROM runs ORDER BY id")
        ]  # fmt: skip

    # fetches of [[sources]] (issue 15)
    def record_fetch(self, *, source: str, kind: str, started_at: datetime, finished_at: datetime, status: str,
                     file: str = "", rows: int = 0, cursor: dict | None = None, message: str = "") -> int:  # fmt: skip
        """Log one fetch (one transaction); its id."""
        with self._transaction():
            cur = self.db.conn.execute(
                "INSERT INTO fetches (source, kind, started_at, finished_at, status, file, rows, cursor, message)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [source, kind, _iso(started_at), _iso(finished_at), status, file, rows, json.dumps(cursor or {}), message],
            )
            return int(cur.lastrowid)

    def fetch_ingested(self, fetch_id: int, *, ingest_id: int | None) -> None:
        """Mark a fetched vintage as ingested (by that ingest; None: its content was ingested before)."""
        with self._transaction():
            self.db.conn.execute("UPDATE fetches SET status = 'ingested', ingest_id = ? WHERE id = ?", [ingest_id, fetch_id])

    def first_seen_by(self, ingest_ids: Iterable[int], *, source: str, start: date, end: date,
                      countries: Iterable[str] = ()) -> list[str]:  # fmt: skip
        """Ids of the stored events of `source` first seen by one of these ingests, dated start..end (and in one of
        these countries, when given): e.g. the UCDP Candidate events a GED release covers."""
        ids = sorted(set(ingest_ids))
        if not ids:
            return []
        places = sorted(set(countries))
        sql = (f"SELECT source_id FROM incidents WHERE source = ? AND event_date BETWEEN ? AND ?"
               f" AND first_ingest_id IN ({', '.join('?' * len(ids))})"
               + (f" AND country IN ({', '.join('?' * len(places))})" if places else "") + " ORDER BY source_id")  # fmt: skip
        return [r[0] for r in self.db.execute(sql, [source, start.isoformat(), end.isoformat(), *ids, *places])]

    def fetch_failed(self, fetch_id: int, *, message: str) -> None:
        """Mark a fetched vintage, and the other files of the same fetch, as failed: its ingest was refused, or the
        file is gone (the next fetch starts again from the fetch before it; files already ingested stay ingested)."""
        with self._transaction():  # and every file of the same fetch: none of them may move the next fetch's start on
            self.db.conn.execute(
                "UPDATE fetches SET status = 'failed', message = ? WHERE id = ? OR (status IN ('fetched', 'ingested')"
                " AND (source, started_at) = (SELECT source, started_at FROM fetches WHERE id = ?))",
                [message, fetch_id, fetch_id],
            )

    def fetches(self, source: str | None = None, *, status: Sequence[str] = (), limit: int | None = None) -> list[dict[str, Any]]:
        """Fetches, newest first (of one source; with one of these statuses), cursor decoded."""
        clauses, params = [], []
        if source is not None:
            clauses.append("source = ?")
            params.append(source)
        if status:
            clauses.append(f"status IN ({', '.join('?' * len(status))})")
            params.extend(status)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM fetches{where} ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        if not self.db["fetches"].exists():  # a database from before schema 12, opened read-only: none made yet
            return []
        rows = [dict(r) for r in self.db.query(sql, params)]
        for r in rows:
            r["cursor"] = json.loads(r["cursor"] or "{}")
        return rows

    # measured false-alert rates
    def record_backtest(
        self, burden: dict[str, Any], *, detector: str, fingerprint: str, config: dict, series_filter: str, ran_at: datetime
    ) -> int:
        """Store a backtest's measured burden (`monitor.backtest.Burden.as_dict()`); return its id."""
        with self._transaction():
            cursor = self.db.execute(
                """INSERT INTO backtests (ran_at, first_week, last_week, weeks, series_filter, detector, fingerprint, config,
                       series, series_weeks, alerts, alerts_per_100, warnings, undecided, outside_series_weeks,
                       outside_alerts, outside_per_100, surge_rule, by_detector)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    _iso(ran_at), burden["first_week"], burden["last_week"], burden["weeks"], series_filter, detector,
                    fingerprint, json.dumps(config, sort_keys=True, default=str), burden["series"], burden["series_weeks"],
                    burden["alerts"], burden["alerts_per_100_series_weeks"], burden["warnings"], burden["undecided"],
                    burden["outside_series_weeks"], burden["outside_alerts"],
                    burden["alerts_per_100_series_weeks_outside_surges"], burden["surge_rule"],
                    json.dumps(burden["by_detector"], sort_keys=True),
                ],
            )  # fmt: skip
            return int(cursor.lastrowid)

    def backtests(self, *, fingerprint: str | None = None) -> list[dict[str, Any]]:
        """Stored backtest burdens, newest first (only those of `fingerprint` when given); JSON columns decoded."""
        where, args = ("WHERE fingerprint = ?", [fingerprint]) if fingerprint else ("", [])
        rows = list(self.db.query(f"SELECT * FROM backtests {where} ORDER BY ran_at DESC, id DESC", args))
        for row in rows:
            row["config"] = json.loads(row["config"])
            row["by_detector"] = json.loads(row["by_detector"])
            row["ran_at"] = datetime.fromisoformat(row["ran_at"])
        return rows

    # alert lifecycle, outbox, silences
    def alert_states(self) -> dict[str, AlertState]:
        """The lifecycle state of every series that has one, by series key."""

        return {row["series"]: AlertState(**row) for row in self.db.query("SELECT * FROM alert_states")}

    def alert_events(self, week: str | None = None) -> list[dict[str, Any]]:
        """Lifecycle events (one per series and week), oldest first; only `week` if given."""
        sql, args = "SELECT * FROM alert_events", []
        if week:
            sql, args = sql + " WHERE week = ?", [week]
        return list(self.db.query(sql + " ORDER BY week, series", args))

    def emergence_states(self) -> dict[str, EmergenceState]:
        """Every emergence alert (open or closed), by key."""
        return {row["key"]: EmergenceState(**row) for row in self.db.query("SELECT * FROM emergence_alerts ORDER BY key")}

    def commit_alerts(
        self, week: str, states: Iterable[AlertState], events: Iterable[tuple[str, str, str, str, str]],
        messages: Iterable[dict[str, Any]], *, now: datetime, emergences: Iterable[EmergenceState] = (),
    ) -> list[int]:  # fmt: skip
        """In one transaction: save the new states, this week's events and the messages to send (the outbox).

        events: (series or emergence key, event, state, severity, detail). emergences: the emergence
        alerts' new states (monitor.alerts.emergence). messages: dicts with route,
        recipients (list), subject, message_id, message (bytes) and series (list).
        Returns the outbox ids of the messages. Deciding to notify and queueing the
        notification commit together, so a crash never loses or repeats a decision.
        """
        ids: list[int] = []
        with self._transaction():
            for st in states:
                row = {f: getattr(st, f) for f in st.__dataclass_fields__}
                cols = ", ".join(row)
                self.db.conn.execute(
                    f"INSERT OR REPLACE INTO alert_states ({cols}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
                )
            for em in emergences:
                row = {f: getattr(em, f) for f in em.__dataclass_fields__}
                self.db.conn.execute(
                    f"INSERT OR REPLACE INTO emergence_alerts ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                    list(row.values()),
                )
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO alert_events (week, series, event, state, severity, detail) VALUES (?, ?, ?, ?, ?, ?)",
                [(week, *e) for e in events],
            )
            for m in messages:
                cur = self.db.conn.execute(
                    "INSERT INTO outbox (week, route, recipients, subject, message_id, message, series, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [week, m["route"], json.dumps(list(m["recipients"])), m["subject"], m["message_id"], m["message"],
                     json.dumps(list(m["series"])), _iso(now)],
                )  # fmt: skip
                ids.append(int(cur.lastrowid))
            faults.point("run.alerts.before-commit")
        return ids

    def pending_outbox(self) -> list[OutboxMessage]:
        """Messages still to send, oldest first (`OutboxMessage.pending`)."""
        return self.outbox(pending=True)

    def outbox(self, *, pending: bool = False) -> list[OutboxMessage]:
        """Outbox messages, oldest first, without the message bytes; if `pending`, only those still to send
        (not sent, not refused for good: `dead_at` is set on those, and not of unknown outcome: `unknown_at`)."""
        where = " WHERE sent_at IS NULL AND dead_at IS NULL AND unknown_at IS NULL" if pending else ""
        rows = list(self.db.query(
            "SELECT id, week, route, recipients, subject, message_id, series, created_at, attempts, last_error,"
            f" last_attempt_at, sent_at, channel, dead_at, unknown_at FROM outbox{where} ORDER BY id"
        ))  # fmt: skip
        for row in rows:
            row["recipients"] = tuple(json.loads(row["recipients"]))
            row["series"] = tuple(json.loads(row["series"]))
        return [OutboxMessage(**row) for row in rows]

    def outbox_message(self, outbox_id: int) -> bytes:
        """The stored RFC 5322 bytes of an outbox message."""
        row = self.db.execute("SELECT message FROM outbox WHERE id = ?", [outbox_id]).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no outbox message {outbox_id}")
        return bytes(row[0])

    def mark_sent(self, outbox_id: int, *, channel: str, now: datetime) -> None:
        """Record that the mail server accepted message `outbox_id` (call right after it did)."""
        with self._transaction():
            self.db.execute(
                "UPDATE outbox SET sent_at = ?, channel = ?, attempts = attempts + 1, last_attempt_at = ?, last_error = ''"
                " WHERE id = ? AND sent_at IS NULL",
                [_iso(now), channel, _iso(now), outbox_id],
            )

    def mark_failed(self, outbox_id: int, *, error: str, now: datetime) -> None:
        """Record a failed delivery attempt; the message stays pending."""
        with self._transaction():
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, last_attempt_at = ? WHERE id = ? AND sent_at IS NULL",
                [error, _iso(now), outbox_id],
            )

    def mark_dead(self, outbox_id: int, *, error: str, now: datetime) -> None:
        """The server refused message `outbox_id` for good: it leaves the queue, kept with the reason."""
        with self._transaction():
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, last_attempt_at = ?, dead_at = ?"
                " WHERE id = ? AND sent_at IS NULL",
                [error, _iso(now), _iso(now), outbox_id],
            )

    def mark_unknown(self, outbox_id: int, *, error: str, now: datetime) -> None:
        """Message `outbox_id` was sent whole but its final answer never came: it leaves the queue until
        `resend_unknown`, kept with the reason (the server may have accepted it)."""
        with self._transaction():
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, last_attempt_at = ?, unknown_at = ?"
                " WHERE id = ? AND sent_at IS NULL",
                [error, _iso(now), _iso(now), outbox_id],
            )

    def resend_unknown(self) -> int:
        """Put every message of unknown outcome back in the queue (the user asked); returns how many."""
        with self._transaction():
            cur = self.db.execute(
                "UPDATE outbox SET unknown_at = NULL WHERE unknown_at IS NOT NULL AND sent_at IS NULL AND dead_at IS NULL"
            )
        return int(cur.rowcount)

    def add_silence(self, *, filter: str, until: date, comment: str, author: str, now: datetime) -> int:
        """Store a silence: alerts of series matching `filter` are not emailed until `until` (inclusive)."""
        with self._transaction():
            cur = self.db.conn.execute(
                "INSERT INTO silences (filter, until, comment, author, created_at) VALUES (?, ?, ?, ?, ?)",
                [filter, _iso(until), comment, author, _iso(now)],
            )
            return int(cur.lastrowid)

    def silences(self) -> list[Silence]:
        """Every silence, newest first."""
        return [Silence(**row) for row in self.db.query("SELECT * FROM silences ORDER BY id DESC")]

    def active_silences(self, now: datetime | date) -> list[Silence]:
        """Silences in force on `now`'s date (`Silence.active_on`): not expired by hand and `until` not passed."""
        day = (now.date() if isinstance(now, datetime) else now).isoformat()
        rows = self.db.query("SELECT * FROM silences WHERE expired_at IS NULL AND until >= ? ORDER BY id", [day])
        return [Silence(**row) for row in rows]

    def expire_silence(self, silence_id: int, *, now: datetime) -> bool:
        """End a silence now; False if there is no such silence or it had already ended."""
        with self._transaction():
            cur = self.db.conn.execute(
                "UPDATE silences SET expired_at = ? WHERE id = ? AND expired_at IS NULL AND until >= ?",
                [_iso(now), silence_id, now.date().isoformat()],
            )
            return cur.rowcount > 0



if TYPE_CHECKING:  # Store is the SQLite backend of the interface the rest of the monitor uses
    _backend: type[Storage] = Store
