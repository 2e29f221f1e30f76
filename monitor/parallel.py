"""Spread independent work over processes: the detection of thousands of series, their charts.

A global weekly run (ACLED's whole export: about 3,000 admin1 x event-type series) spends
most of its time in per-series numerics and in matplotlib, both single-threaded; on a
machine with several cores the work is split into contiguous chunks, one per process.
Results come back in order and equal those of a single process. Processes are spawned,
not forked, because the scheduler calls this from a worker thread (forking a threaded
process can deadlock the child).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def worker_count(setting: int) -> int:
    """Processes to use: the setting, or one per CPU core when it is 0."""
    return setting if setting > 0 else max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


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
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        return list(pool.map(fn, jobs))
