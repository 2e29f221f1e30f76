"""One run at a time: an exclusive lock on a file beside the database (`<db>.lock`).

The lock file sits beside the file the database path resolves to, so a symlinked
`database.path` takes the same lock as its target; a database file with other hard links is
refused, since a run through another name would take another lock (issue 12, item 4).

`monitor run`, `monitor ingest` and each job of `monitor schedule` hold it while they
write the database, so cron and the scheduler never run the weekly job twice at once.
The lock is `flock(2)`: the kernel drops it when the holder's file is closed, so an
exception, an exit or even SIGKILL releases it and a stale file never blocks. While
held, the file says who holds it (pid, host, start time, command) for the message a
second run prints; it is emptied on release. POSIX only (fcntl).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import faults
from monitor.errors import LockError, StoreError, disk_hint

if TYPE_CHECKING:
    from monitor.store import Store

#: Seconds between two attempts while waiting for the lock.
POLL_SECONDS = 0.1
#: What a command-line user can do about a held lock (without and with --wait).
CLI_HINT = "try again later or pass --wait 600"
CLI_HINT_WAITED = "try again later or pass a longer --wait"


def lock_path(db_path: Path) -> Path:
    """The lock file of a database: `monitor.db` → `monitor.db.lock`, beside the file the path resolves to.

    Symbolic links (of the file or of its folders) are followed (os.path.realpath), so every
    path that reaches one database takes one lock (issue 12, item 4).
    """
    real = Path(os.path.realpath(db_path))
    return real.with_name(real.name + ".lock")


def _identity(db_path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the database file, None while it does not exist yet; a file with other
    hard links is refused (StoreError): a lock beside one name cannot see a run through another."""
    try:
        st = os.stat(db_path)
    except FileNotFoundError:
        return None
    except OSError:
        return None  # not ours to judge here: the store names the problem when it opens the file
    if st.st_nlink > 1:
        raise StoreError(
            f"{db_path}: the database file has {st.st_nlink - 1} other hard link(s), so two runs could write it at "
            "once under different lock files; make a copy instead of a hard link"
        )
    return st.st_dev, st.st_ino


def holder(path: Path) -> dict:
    """What the lock file says about its holder ({} when empty or unreadable: released, or being written)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _describe(info: dict) -> str:
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('since', '?')}"


@contextmanager
def run_lock(
    db_path: Path,
    *,
    clock: Callable[[], datetime],
    wait: float = 0.0,
    command: str = "monitor",
    hint: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> Iterator[Path]:
    """Hold the database's run lock for the `with` block; released on any exit.

    clock: the time written as the holder's start (UTC).
    wait: seconds to wait for another holder to finish (0: give up at once).
    command: what holds the lock, written into the file for people reading it.
    hint: the end of the message when the lock stays held (what to do about it; default: the CLI's --wait advice).
    stop: polled while waiting; when it returns True, give up at once.
    Raises LockError (exit code 5) naming the path and the holder when the lock stays held,
    StoreError (one line, exit code 1) when the lock file cannot be created or opened: the database's
    folder is missing, not a folder, read-only or not writable by this user; or when the database file
    has other hard links (make a copy instead). The lock is keyed on the database's identity: its real
    path (symlinks followed), and its st_dev/st_ino checked again once the lock is held.
    """
    real = Path(os.path.realpath(db_path))
    identity = _identity(real)
    path = lock_path(real)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(_cannot_open(path, exc)) from None
    try:
        _acquire(fd, path, wait=wait, hint=hint, stop=stop)
        # the identity again, now that no other run can change it: a link made or a file swapped meanwhile
        now_id = _identity(real)
        if Path(os.path.realpath(db_path)) != real or None not in (identity, now_id) and now_id != identity:
            raise StoreError(f"{db_path}: the database file changed while its lock was taken ({real}); run the command again")
        since = clock().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": since, "command": command}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        except OSError as exc:  # a full disk (or quota): the database could not be written either
            raise StoreError(f"{path}: cannot write the lock file: {exc.strerror or exc}{disk_hint(path)}") from None
        faults.point("lock.acquired")  # the overlap tests hold a run here
        faults.point("lock.held")  # killed here, the file still names us: the next run must not be blocked
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # released: nothing for a later reader to mistake for a holder
    finally:
        os.close(fd)  # closing the descriptor drops the flock


@contextmanager
def locked_store(
    db_path: Path,
    *,
    clock: Callable[[], datetime],
    wait: float = 0.0,
    command: str = "monitor",
    hint: str | None = None,
    stop: Callable[[], bool] | None = None,
    open_store: Callable[[], "Store"] | None = None,
) -> Iterator["Store"]:
    """Take the database's run lock (`run_lock`, same arguments and errors), then open the database.

    Every command that writes the database does it this way round (`monitor run`, `ingest`, `alerts
    flush`, `demo` and the scheduler's job): the store is opened only by the lock's holder, and is closed
    before the lock is released, on any exit.
    open_store: opens the database once the lock is held (default `Store(db_path)`; the CLI passes its
    own, which refuses a database that does not exist where the command needs one).
    """
    with run_lock(db_path, clock=clock, wait=wait, command=command, hint=hint, stop=stop):
        if open_store is None:
            from monitor.store import Store

            store = Store(db_path)
        else:
            store = open_store()
        with store:
            yield store


def _cannot_open(path: Path, exc: OSError) -> str:
    """One line: why the lock file cannot be opened, and what to do."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{path}: cannot create the lock file: folder {path.parent} does not exist (create it or fix database.path)"
    if isinstance(exc, NotADirectoryError):
        return f"{path}: cannot create the lock file: {path.parent} is not a folder (fix database.path)"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: cannot open the lock file: it is a folder (remove it, or fix database.path)"
    if exc.errno == errno.EROFS:
        return f"{path}: cannot create the lock file: {reason} (put database.path on a writable disk)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"{path}: cannot open the lock file: {reason}; the user running monitor needs write access to "
                f"{path.parent} (the database's folder) and to the lock file")  # fmt: skip
    return f"{path}: cannot open the lock file: {reason}"


def _acquire(fd: int, path: Path, *, wait: float, hint: str | None, stop: Callable[[], bool] | None) -> None:
    if hint is None:
        hint = CLI_HINT_WAITED if wait > 0 else CLI_HINT
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            faults.point("lock.waiting")  # held by another process (overlap tests)
        if stop is not None and stop():
            raise LockError(f"stopped while waiting for {path} ({_describe(holder(path))})")
        if time.monotonic() >= deadline:
            waited = f"still held after waiting {wait:g} s; " if wait > 0 else ""
            raise LockError(f"another incident-monitor run holds {path} ({_describe(holder(path))}); {waited}{hint}")
        time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
