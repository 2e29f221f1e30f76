"""Named crash points, for the crash tests of issue 5: `point("ingest.before-commit")`.

When the environment variable MONITOR_KILL_AT names a point (`NAME` or `NAME:N`, the
N-th time the point is reached, counting from 1), the process sends itself SIGKILL there:
no exception handler, `finally` or atexit hook runs, exactly as when the machine loses
power or the OOM killer strikes. Unset (always, outside the tests) a point costs one
dictionary lookup. `monitor` never sets the variable itself. The points and what a re-run
after each must do: tests/test_crash.py.
"""

from __future__ import annotations

import os
import signal

ENV = "MONITOR_KILL_AT"
_seen: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    raw = os.environ.get(ENV, "")
    if not raw:
        return None
    name, _, nth = raw.partition(":")
    return name, int(nth) if nth.isdigit() else 1


def point(name: str) -> None:
    """A place where a crash test may kill the process (see the module docstring)."""
    target = _target()
    if target is None or target[0] != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
