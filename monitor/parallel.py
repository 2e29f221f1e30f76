"""Spread independent work over processes: the detection of thousands of series, their charts.

A global weekly run (ACLED's whole export: about 3,000 admin1 x event-type series) spends
most of its time in per-series numerics and in matplotlib, both single-threaded; on a
machine with several cores the work is split into contiguous chunks, one per process.
Results come back in order and equal those of a single process. Processes are spawned,
not forked, because the scheduler calls this from a worker thread (forking a threaded
process can deadlock the child). Workers ignore SIGTERM and SIGINT: systemd signals every
process of the service and Ctrl-C the whole process group, and `monitor schedule` promises
to finish the week it is running, so only the parent decides when work stops. If a worker
dies anyway (the OOM killer), the work is done again in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")


#: Processes `workers = 0` starts at most: each imports pandas and numpy (about 150 MB).
AUTO_LIMIT = 8


def worker_count(setting: int) -> int:
    """Processes to use: the setting, or one per CPU core (at most AUTO_LIMIT) when it is 0."""
    if setting > 0:
        return setting
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, AUTO_LIMIT))


def _quiet_worker() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ.get("MONITOR_QUIET_WARNINGS") == "1":  # set by the CLI without --debug (see there)
        hide_library_warnings()


def hide_library_warnings() -> None:
    """Keep library warnings (statsmodels' perfect separation, numpy's log of 0) off the terminal.

    A filter is not enough: statsmodels puts "always" filters for its own warnings in front
    when it is imported, so the display itself is switched off.
    """
    import warnings

    warnings.showwarning = lambda *args, **kwargs: None


def chunks(items: Sequence[T], parts: int) -> list[list[T]]:
    """`items` cut into at most `parts` contiguous, nearly equal chunks (none empty)."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return [c for c in out if c]


def pmap(fn: Callable[[Any], T], jobs: Sequence[Any], *, workers: int) -> list[T]:
    """fn(job) for every job, in order; in up to `workers` spawned processes when more than one.

    fn must be a module-level function and the jobs picklable.
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context, initializer=_quiet_worker) as pool:
            return list(pool.map(fn, jobs))
    except BrokenProcessPool:  # a worker was killed (out of memory?): do the work here
        return [fn(job) for job in jobs]
