"""Files written whole or not at all: reports, charts, summaries, digests, backtest tables.

`atomic_write` writes beside the target and renames over it, so a reader (or the next run after
a crash, even SIGKILL or a power cut) sees the old file or the new one, never a part; the
leftover temp files of dead writers are swept by `remove_stale_temps`. Files get the mode of a
normal file (0666 less the umask).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from monitor import faults

#: Temporary files: `.<name>.<pid>.<random>.tmp` beside their target, so a later run can tell a
#: file left by a dead writer (removed) from one being written right now by another process.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def atomic_write(path: Path, data: bytes | str) -> Path:
    """Write `data` to a temp file beside `path`, flush it to disk, then rename it over `path`.

    A reader sees the old file or the new one, never a part; after a crash (even SIGKILL or a
    power cut) the only leftover is the temp file, which `remove_stale_temps` clears.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; a report, chart or digest gets a normal file's mode (0666 less the
        # umask, e.g. 0644), so the rest of the team can read what the job writes
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())  # the content is on disk before the name points at it
        faults.point("run.report.temp-written")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def file_mode() -> int:
    """The mode `open()` would give a new file: 0666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX); a file system that cannot sync a folder is left as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():  # ours, yet not being written (we only sweep before writing): left by a crashed run with our pid
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temp files in `folder` left by writers that died before renaming them; returns them.

    A temp file of a process still running (another `monitor report` writing the same week) is kept.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(".*.tmp"):
        match = _TEMP.match(tmp.name)
        if match and _alive(int(match["pid"])):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
