"""`monitor fetch`: data that arrives by itself (issue 15).

Each `[[sources]]` entry of a remote kind (`http-csv`, `acled-api`, `ucdp-api`) is fetched from
where its last successful fetch left off (its cursor), and what comes back is stored as a file,
a *vintage* (`<fetch.folder>/<source>/<UTC time>.<csv|xlsx>`), before it is ingested. The order
of events, and what a crash at each point leaves:

1. the vintage is written whole (temp file, flushed, renamed): killed before, nothing is left;
2. the fetch is logged `fetched`, with the file and the cursor the next fetch starts from;
3. the vintage is ingested as any file is (one transaction; `monitor.ingest.ingest_files`), and
   the fetch is marked `ingested`.

A run killed between 2 and 3 left a vintage that was fetched but not ingested: the next `monitor
fetch` or `monitor run` ingests it first instead of fetching it again. A source that fails (see
`monitor.fetch.http`) is logged `failed` with its one-line reason, changes nothing in the database
and does not stop the sources after it; what they fetched is kept. `inbox` sources have nothing
to fetch: `monitor run` scans their folders as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from monitor import faults
from monitor.config import Config, SourceSettings
from monitor.errors import ConfigError
from monitor.fetch.http import FetchError, Http, utc_stamp
from monitor.types import Progress

if TYPE_CHECKING:
    from monitor.store_protocol import Storage
    from monitor.types import IngestResult

#: Kinds of `[[sources]]` that are fetched (an inbox is scanned, not fetched).
REMOTE_KINDS = ("http-csv", "acled-api", "ucdp-api")


@dataclass(frozen=True)
class FetchOutcome:
    """What fetching one source did."""

    source: str
    status: str  # ingested | nothing-new | failed | resumed (a vintage left by a killed run, ingested now)
    file: str = ""
    message: str = ""  # the failure's one line, or what was ingested
    ingest: "IngestResult | None" = None
    refused: str = ""  # the ingest refused the vintage (its line)

    @property
    def failed(self) -> bool:
        return self.status == "failed" or bool(self.refused)


def remote_sources(config: Config, names: Sequence[str] = ()) -> list[SourceSettings]:
    """The sources to fetch: those named (ConfigError for a name that is not a remote source), else every remote one."""
    remote = [s for s in config.sources if s.kind in REMOTE_KINDS]
    if not names:
        return remote
    known = {s.name: s for s in config.sources}
    out = []
    for name in names:
        if name not in known:
            listed = ", ".join(s.name for s in config.sources) or "none"
            raise ConfigError(f"no [[sources]] entry is named {name!r} (configured: {listed})")
        if known[name].kind not in REMOTE_KINDS:
            raise ConfigError(f"source {name!r} is an inbox: there is nothing to fetch (monitor run scans its folders)")
        out.append(known[name])
    return out


def vintage_folder(config: Config, source: SourceSettings) -> Path:
    return config.path(config.fetch.folder) / source.name


def _fetcher(kind: str):
    if kind == "http-csv":
        from monitor.fetch import httpcsv

        return httpcsv.fetch
    if kind == "acled-api":
        from monitor.fetch import acled

        return acled.fetch
    from monitor.fetch import ucdp

    return ucdp.fetch


def fetch_sources(config: Config, store: "Storage", *, names: Sequence[str] = (), now: datetime,
                  clock: Callable[[], datetime] | None = None, sleep: Callable[[float], None] | None = None,
                  progress: Progress | None = None) -> list[FetchOutcome]:  # fmt: skip
    """Fetch and ingest every remote source (or those named), one after the other (see the module docstring).

    progress: told the rows fetched of a paged API as they come, then the rows of each vintage ingested."""
    out = []
    for source in remote_sources(config, names):
        out.extend(_resume(config, store, source, now=now, progress=progress))
        out.extend(_fetch_one(config, store, source, now=now, clock=clock or (lambda: now), sleep=sleep, progress=progress))
        if source.kind == "ucdp-api" and source.dataset == "gedevents":
            # after the release is in, however it got there (this fetch, a resumed one, a run killed before this step)
            out.extend(_replace_candidates(config, store, source, now=now, clock=clock or (lambda: now)))
    return out


def _resume(config: Config, store: "Storage", source: SourceSettings, *, now: datetime, progress: Progress | None = None) -> list[FetchOutcome]:
    """Ingest the vintages of this source that were fetched but not ingested (a run killed in between)."""
    out = []
    while True:  # oldest first; asked again each time: a refused file marks the other files of its fetch failed
        waiting = store.fetches(source.name, status=("fetched",))
        if not waiting:
            break
        row = waiting[-1]
        outcome = _ingest(config, store, source, row["id"], Path(row["file"]), now=now, progress=progress)
        out.append(FetchOutcome(source.name, "resumed", row["file"], f"fetched {row['finished_at']}, ingested now",
                                outcome[0], outcome[1]))  # fmt: skip
    return out


def _ingest(config: Config, store: "Storage", source: SourceSettings, fetch_id: int, path: Path, *, now: datetime,
            progress: Progress | None = None):  # fmt: skip
    from monitor.ingest import ingest_files

    if not path.exists():
        message = f"{source.name}: the fetched file {path} is gone before it was ingested: the next fetch fetches it again"
        store.fetch_failed(fetch_id, message=message)
        return None, message
    # what the fetcher wrote, not [ingest] format
    outcome = ingest_files(store, [path], config=config, now=now, format="auto", progress=progress)
    result = outcome.results[0] if outcome.results else None
    if outcome.refused:  # e.g. an error page served as the file: the next fetch starts again from the fetch before
        store.fetch_failed(fetch_id, message=outcome.refused[0])
        return result, outcome.refused[0]
    entry = store.ingest_entry(sha256=result.sha256) if result is not None else None
    store.fetch_ingested(fetch_id, ingest_id=entry["id"] if entry and not result.skipped else None)
    return result, ""


def _fetch_one(config: Config, store: "Storage", source: SourceSettings, *, now: datetime, clock: Callable[[], datetime],
               sleep: Callable[[float], None] | None, progress: Progress | None = None) -> list[FetchOutcome]:  # fmt: skip
    from monitor.atomic import atomic_write

    started = clock()
    last = store.fetches(source.name, status=("ingested", "nothing-new", "fetched"), limit=1)
    cursor = last[0]["cursor"] if last else {}
    try:
        secret = config.secret(source) if source.kind != "http-csv" else None
        kwargs = {"sleep": sleep} if sleep is not None else {}
        with Http(source.name, timeout=source.timeout, retries=config.fetch.retries, backoff=config.fetch.backoff,
                  max_wait=config.fetch.max_wait, progress=progress, **kwargs) as http:  # fmt: skip
            fetched = _fetcher(source.kind)(source, http, cursor=cursor, secret=secret, today=now.date())
    except Exception as exc:  # noqa: BLE001  a defect in a fetcher must cost this source only, never the others or the run
        if isinstance(exc, (FetchError, ConfigError)):
            message = str(exc) if str(exc).startswith(f"{source.name}:") else f"{source.name}: {exc}"
        else:
            message = f"{source.name}: the fetch failed on what the service sent ({type(exc).__name__}: {exc}); nothing was stored; please report"
        store.record_fetch(source=source.name, kind=source.kind, started_at=started, finished_at=clock(), status="failed",
                           cursor=cursor, message=message)  # fmt: skip
        return [FetchOutcome(source.name, "failed", message=message)]
    if not fetched.files:
        store.record_fetch(source=source.name, kind=source.kind, started_at=started, finished_at=clock(), status="nothing-new",
                           cursor=fetched.cursor, message=fetched.note)  # fmt: skip
        return [FetchOutcome(source.name, "nothing-new", message=fetched.note or "nothing new since the last fetch")]
    folder = vintage_folder(config, source)
    stored = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for part, body in fetched.files:
            path, n = folder / f"{utc_stamp(started)}-{part}", 1
            while path.exists():  # two fetches within a second (or a clock set back): never overwrite a vintage
                n += 1
                path = folder / f"{utc_stamp(started)}-{n}-{part}"
            stored.append(atomic_write(path, body))
    except OSError as exc:
        for path in stored:
            path.unlink(missing_ok=True)
        message = f"{source.name}: cannot store the fetched data in {folder}: {exc.strerror or exc} (nothing was ingested)"
        store.record_fetch(source=source.name, kind=source.kind, started_at=started, finished_at=clock(), status="failed",
                           cursor=cursor, message=message)  # fmt: skip
        return [FetchOutcome(source.name, "failed", message=message)]
    faults.point("fetch.stored")
    ids = [store.record_fetch(source=source.name, kind=source.kind, started_at=started, finished_at=clock(), status="fetched",
                              file=str(path), cursor=fetched.cursor, message=fetched.note) for path in stored]  # fmt: skip
    faults.point("fetch.before-ingest")
    out = []
    for fetch_id, path in zip(ids, stored):
        result, refused = _ingest(config, store, source, fetch_id, path, now=now, progress=progress)
        out.append(FetchOutcome(source.name, "ingested", str(path), fetched.note, result, refused))
        if refused:  # the whole fetch is failed (Store.fetch_failed): the next one starts where this one did
            break
    return out


def _replace_candidates(config: Config, store: "Storage", source: SourceSettings, *, now: datetime,
                        clock: Callable[[], datetime]) -> list[FetchOutcome]:  # fmt: skip
    """Once a GED release is ingested: the Candidate events of the period and countries it covers that it left
    out are written as a `ucdp-replaced` list (a vintage like any other) and ingested, which deletes them.
    The period runs from its first event to the end of its last year (a yearly release covers whole years).
    Idempotent: events deleted before are no longer stored, so a second call finds none left out."""
    import csv
    from datetime import date

    from monitor.atomic import atomic_write

    suffix = f"gedevents-{source.version}.csv"
    releases = [f for f in store.fetches(source.name, status=("ingested",)) if f["file"].endswith(suffix)]
    if not releases or not Path(releases[0]["file"]).exists():
        return []
    with open(releases[0]["file"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    days = sorted(r["date_start"][:10] for r in rows if r.get("date_start"))
    if not days:
        return []
    kept = {r["id"] for r in rows}
    candidates = [f["ingest_id"] for f in store.fetches(status=("ingested",)) if f["cursor"].get("dataset") == "candidate"
                  and f["ingest_id"] is not None]  # fmt: skip
    start, end = date.fromisoformat(days[0]), date(int(days[-1][:4]), 12, 31)
    countries = {r["country"] for r in rows if r.get("country")} if source.countries else set()
    left_out = [i for i in store.first_seen_by(candidates, source="ucdp", start=start, end=end, countries=countries) if i not in kept]
    if not left_out:
        return []
    started = clock()
    stamp = str(int(started.timestamp()))
    body = "ucdp_candidate_id,replaced_by_version,replaced_at\n" + "".join(f"{i},{source.version},{stamp}\n" for i in left_out)
    path = vintage_folder(config, source) / f"{utc_stamp(started)}-replaced-candidates.csv"
    n = 1
    while path.exists():
        n += 1
        path = vintage_folder(config, source) / f"{utc_stamp(started)}-{n}-replaced-candidates.csv"
    path = atomic_write(path, body)
    fetch_id = store.record_fetch(source=source.name, kind=source.kind, started_at=started, finished_at=clock(), status="fetched",
                                  file=str(path), cursor={"version": source.version, "complete": True, "dataset": source.dataset},
                                  message=f"Candidate events of {start}..{end} that GED {source.version} left out")  # fmt: skip
    result, refused = _ingest(config, store, source, fetch_id, path, now=now)
    return [FetchOutcome(source.name, "ingested", str(path), "", result, refused)]


def describe(outcome: FetchOutcome) -> str:
    """One line per fetch for the terminal and the run's log."""
    if outcome.status == "failed":
        return f"fetch failed: {outcome.message}"
    if outcome.status == "nothing-new":
        return f"{outcome.source}: {outcome.message or 'nothing new since the last fetch'}"
    r = outcome.ingest
    if r is None:
        what = ""
    elif r.skipped:
        what = "already ingested (same content)"
    elif r.format in ("acled-deletions", "ucdp-replaced"):
        what = f"{r.rows_read} deletions read, {r.deleted} deleted, {r.not_found} not in the database (remembered), {r.rejected} rejected"
    else:
        what = f"{r.rows_read} rows read, {r.inserted} inserted, {r.updated} updated, {r.unchanged} unchanged, {r.rejected} rejected"
    lead = f"{outcome.source}: fetched {outcome.file}" + (" (left by an interrupted run)" if outcome.status == "resumed" else "")
    if outcome.refused:
        return f"{lead}; its ingest was refused: {outcome.refused}"
    line = f"{lead}: {what}" if what else lead
    return f"{line} (note: {outcome.message})" if outcome.message and outcome.status == "ingested" else line


def last_fetches(store: "Storage", config: Config) -> list[dict]:
    """Each configured remote source's last fetch (for `monitor status`): source, kind, status, when, file, message,
    and the last successful one. The status is "never fetched" when there was none (or the database predates them)."""
    out = []
    for source in remote_sources(config):
        rows = store.fetches(source.name, limit=1)
        last = rows[0] if rows else None
        good = store.fetches(source.name, status=("ingested", "nothing-new"), limit=1) if rows else []
        out.append({
            "source": source.name, "kind": source.kind,
            "last_fetch": last["finished_at"] if last else None, "status": last["status"] if last else "never fetched",
            "file": last["file"] if last else "", "message": last["message"] if last else "",
            "last_success": good[0]["finished_at"] if good else None,
            "cursor": json.dumps(last["cursor"]) if last else "",
        })  # fmt: skip
    return out
