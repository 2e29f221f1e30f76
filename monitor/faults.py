"""Named crash and pause points, for the crash and overlap tests of issue 5: `point("ingest.before-commit")`.

When the environment variable MONITOR_KILL_AT names a point (`NAME` or `NAME:N`, the
N-th time the point is reached, counting from 1), the process sends itself SIGKILL there:
no exception handler, `finally` or atexit hook runs, exactly as when the machine loses
power or the OOM killer strikes.

When MONITOR_PAUSE_AT names points (comma-separated, each `NAME` or `NAME:N`), the process
stops at each until a test lets it go: it adds its pid as a line to `<MONITOR_PAUSE_DIR>/<NAME>.paused`,
then waits until `<MONITOR_PAUSE_DIR>/<NAME>.go` exists (at most PAUSE_LIMIT_SECONDS; a
`.go` file made beforehand only marks the passage). The overlap tests use it to hold one
process at a known place (the run lock taken, a write transaction not yet committed) while
they start another, and to know that the other reached its own (waiting for the lock).

Test-only: unset (always, outside the tests) a point costs two dictionary lookups.
`monitor` never sets these variables itself. The crash points and what a re-run after each
must do: tests/test_crash.py; the pause points: tests/test_overlap.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "MONITOR_KILL_AT"
PAUSE_ENV = "MONITOR_PAUSE_AT"
PAUSE_DIR_ENV = "MONITOR_PAUSE_DIR"
#: A paused process goes on by itself after this long, so a test that died never leaves it hanging.
PAUSE_LIMIT_SECONDS = 300.0
_seen: dict[str, int] = {}
_paused: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    raw = os.environ.get(ENV, "")
    if not raw:
        return None
    name, _, nth = raw.partition(":")
    return name, int(nth) if nth.isdigit() else 1


def point(name: str) -> None:
    """A place where a crash test may kill the process, or an overlap test pause it (see the module docstring)."""
    _pause(name)
    target = _target()
    if target is None or target[0] != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def _pause(name: str) -> None:
    raw = os.environ.get(PAUSE_ENV, "")
    if not raw:
        return
    targets = {n.strip(): int(nth) if nth.isdigit() else 1 for n, _, nth in (t.partition(":") for t in raw.split(","))}
    if name not in targets:
        return
    _paused[name] = _paused.get(name, 0) + 1
    if _paused[name] != targets[name]:
        return
    folder = Path(os.environ.get(PAUSE_DIR_ENV) or ".")
    # one line per process that got here; O_APPEND: lines of processes arriving together never mix
    fd = os.open(folder / f"{name}.paused", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    finally:
        os.close(fd)
    go = folder / f"{name}.go"
    deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
