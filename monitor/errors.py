"""Errors the command line turns into a one-line message and exit code 1 (or their own `exit_code`)."""


class MonitorError(Exception):
    """A failure the user can fix: bad input, bad config, unreachable server."""


class ConfigError(MonitorError):
    """The configuration file or a command-line setting is invalid."""


class IngestError(MonitorError):
    """An input file cannot be read at all; the database was left unchanged."""


class StoreError(MonitorError):
    """The database cannot be opened, migrated or written."""


class ReportError(MonitorError):
    """The report folder cannot be written."""


class DetectorError(MonitorError):
    """An unknown detector or an invalid detector parameter."""


class DeliveryError(MonitorError):
    """The mail server could not be reached or refused the message.

    permanent: the server refused this message for good (5xx on its sender, recipients or
    content); retrying it will not help, while other messages may still go through.
    unknown: the whole message was sent but no final answer came (timeout or disconnect after
    the end of DATA); the server may have accepted it, so it is not resent automatically.
    """

    def __init__(self, message: str, *, permanent: bool = False, unknown: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.unknown = unknown


class LockError(MonitorError):
    """Another run holds the database's run lock (exit code 5)."""

    exit_code = 5


class NoDataError(MonitorError):
    """No source's data reaches the week asked for: nothing in it can be judged (exit code 6)."""

    exit_code = 6


class UnknownSeriesError(MonitorError):
    """A --series that matches none of the series in the database (the message names the nearest keys)."""


#: Exit codes of the command line, documented in the README and in `monitor --help`.
EXIT_OK = 0
EXIT_ERROR = 1  # a MonitorError, a refused file or rejected rows, a failed scheduled week
EXIT_USAGE = 2  # click's: a bad option or argument
EXIT_FLAGGED = 3  # check / detect: something was flagged
EXIT_DELIVERY_FAILED = 4  # run / alerts flush: messages left in the outbox
EXIT_LOCKED = LockError.exit_code
EXIT_NO_DATA = NoDataError.exit_code


#: Below this much free space on the database's disk, a failed write is put down to a full disk.
NEARLY_FULL = 1 << 20


def disk_hint(path) -> str:
    """Why writing next to `path` (the database, its -wal/-shm files or its lock) may fail, as the
    end of an error message: " (the disk holding /data is full: ...)", or "" when its folder is on a
    writable filesystem with room. SQLite says only "disk I/O error" or "database or disk is full"
    and names no file; this says where, and what to do."""
    import os
    from pathlib import Path

    folder = Path(path).parent
    try:
        info = os.statvfs(folder)
    except OSError:
        return ""
    if info.f_flag & os.ST_RDONLY:
        return (f" ({folder} is on a read-only filesystem: remount it read-write, or copy the database to a "
                "writable disk and point --db / database.path there; check, status, rejects and the list commands "
                "can read it where it is)")  # fmt: skip
    free = info.f_bavail * info.f_frsize
    if free < NEARLY_FULL:
        return (f" (the disk holding {folder} is full: {free:,} bytes free; free some space there, or move the "
                "database to a disk with room and point --db / database.path at it; what the database "
                "holds is intact: SQLite rolls a failed write back)")  # fmt: skip
    return ""
