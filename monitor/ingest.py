"""Ingest: files from the command line or the inbox into the store, each read once and hashed as read.

A file is copied to $TMPDIR while it is hashed and the copy is parsed, so the sha256 in the ingest
log is that of exactly the bytes stored (a file rewritten during an ingest, or a pipe, is read
once). A file seen before (by sha256) is skipped unless every row of it was rejected or `--again`
is given; a file that cannot be read or parsed is refused with one line and leaves the database as
it was; rejected rows are kept with their reason (`monitor rejects`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from monitor import faults
from monitor.config import Config
from monitor.errors import IngestError, StoreError
from monitor.types import (
    IngestResult,
    Progress,
    RejectedRows,
)

if TYPE_CHECKING:
    from monitor.store_protocol import Storage

#: Rejected rows kept per ingest for messages (the CLI prints at most this many in all).
REJECT_LINES = 20


@dataclass(frozen=True)
class IngestOutcome:
    """Files ingested (or skipped as already seen), files refused with their one-line reason,
    and, per ingest that rejected rows, the first REJECT_LINES of them."""

    results: tuple[IngestResult, ...]
    refused: tuple[str, ...]
    rejected: tuple[RejectedRows, ...] = ()


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
    store: Storage, paths: Iterable[Path], *, config: Config, now: datetime, format: str | None = None, again: bool = False,
    progress: Progress | None = None,
) -> IngestOutcome:
    """Ingest files one by one: each file is one transaction; a refused file changes nothing.

    A file whose exact content (sha256) was ingested before is skipped without parsing, unless
    `again` (`monitor ingest --again`: read it anyway, upserting as usual) or every row of that
    ingest was rejected (`Store.ingested`: after fixing the mapping or the clock, it is read again).
    The file is read once, into a temporary copy that is hashed as it is written and then parsed
    (`spooled`), so the sha256 logged is that of the rows stored and pipes such as /dev/stdin work.
    progress: told (file name, rows read, about how many rows the file has) after each batch written.
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
                                            results=results, progress=progress))  # fmt: skip
        except OSError as exc:
            refused.append(_unreadable(path, exc))
    for r in results:
        if r.rejected and not r.skipped:
            entry = store.ingest_entry(sha256=r.sha256)
            if entry is not None:
                rejected.append(rejected_rows(store, entry))
    return IngestOutcome(tuple(results), tuple(refused), tuple(rejected))


def _ingest_copy(store: Storage, path: Path, copy: Path, sha: str, *, config: Config, now: datetime, format: str | None,
                 again: bool, results: list, progress: Progress | None = None) -> list[str]:
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
        if progress is not None and hasattr(stream, "parts"):  # a FileStream (a whole ParsedFile is one batch)
            stream.parts = _told(stream.parts, progress, path.name, _rows_about(copy, stream.header_line))
        results.append(store.ingest(stream, sha256=sha, now=now))
        faults.point("ingest.committed")
    except (IngestError, StoreError) as exc:
        return [str(exc)]
    except Exception as exc:  # a defect must cost this file only, not the files after it or the report
        return [f"{path}: unexpected {type(exc).__name__} while ingesting: {exc} (file left out; please report)"]
    return []


def _told(parts, progress: Progress, label: str, total: int | None):
    """The batches of a FileStream, telling `progress` the rows read after each."""
    done = 0
    for items, rejects, rows in parts:
        yield items, rejects, rows
        done += rows
        progress(label, done, None if total is None else max(total, done))


def _rows_about(path: Path, header_line: int) -> int | None:
    """About how many rows a text file holds (its line breaks after the header; a note may hold one more),
    for a progress bar's estimate: a second of reading per gigabyte. None for a workbook (a zip)."""
    count = 0
    with open(path, "rb") as handle:
        if handle.read(4) == b"PK\x03\x04":
            return None
        handle.seek(0)
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return max(count - header_line, 0)


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


def rejected_rows(store: Storage, entry: dict, *, limit: int = REJECT_LINES) -> RejectedRows:
    """The rows an ingest (an entry of the ingest log) rejected: how many, and the first `limit`."""
    first = tuple((int(row["line"]), str(row["reason"])) for row in store.rejects(ingest_id=entry["id"], limit=limit))
    return RejectedRows(file=str(entry["file"]), ingest_id=int(entry["id"]), total=int(entry["rejected"]), first=first,
                        ingested_at=str(entry["ingested_at"]))  # fmt: skip


def rejected_since_last_week(store: Storage, *, week: str, limit: int = 5) -> tuple[RejectedRows, ...]:
    """Ingests that rejected rows since the latest run of an earlier week began (every ingest when
    there is none), oldest first: what the report of `week` lists. Read from the logs, so a re-run
    of the week lists the same rows."""
    earlier = [r.started_at for r in store.runs() if r.week < week]
    since = max(earlier) if earlier else ""
    return tuple(
        rejected_rows(store, entry, limit=limit)
        for entry in store.ingests()
        if entry["rejected"] and str(entry["ingested_at"]) >= since
    )


def inbox_files(config: Config) -> list[Path]:
    """Files matching the configured patterns in the inbox folders ([ingest] inbox and the folders of
    `inbox` [[sources]]), oldest name first."""
    found: set[Path] = set()
    folders = [*config.ingest.inbox, *(f for s in config.sources if s.kind == "inbox" for f in s.folders)]
    for folder in folders:
        folder = config.path(folder)
        if not folder.is_dir():
            continue
        for pattern in config.ingest.patterns:
            found.update(p for p in folder.glob(pattern) if p.is_file())
    return sorted(found)
