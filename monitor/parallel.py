"""Spread independent work over processes or a Dask cluster: the detection of thousands of series, their charts.

A global weekly run (ACLED's whole export: about 3,000 admin1 x event-type series; 100,000 at
admin2 x actor) spends most of its time in per-series numerics and in matplotlib, both
single-threaded. `Engine` says where the work goes (`[detection] engine`):

* `local`: the standard library's `concurrent.futures.ProcessPoolExecutor` on this machine,
  `workers` processes. Processes are spawned, not forked, because the scheduler calls this from
  a worker thread (forking a threaded process can deadlock the child). Workers ignore SIGTERM
  and SIGINT: systemd signals every process of the service and Ctrl-C the whole process group,
  and `monitor schedule` promises to finish the week it is running, so only the parent decides
  when work stops. If a worker dies anyway (the OOM killer), the work not yet returned is done
  again in this process.
* `dask`: tasks on a Dask distributed cluster (`monitor.cluster`, the one owner of `distributed`).

Results come back in order and equal those of a single process. `imap` keeps at most a window
of jobs in flight, so a caller that generates jobs lazily holds a bounded amount in memory.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: The values of `[detection] engine`.
ENGINES = ("local", "dask")

#: Processes `workers = 0` starts at most: each imports pandas and numpy (about 150 MB).
AUTO_LIMIT = 8


@dataclass(frozen=True)
class Engine:
    """Where independent jobs run.

    name: "local" (processes of this machine) or "dask" (a Dask cluster).
    workers: local processes (1: this process only); with dask and no scheduler, the local cluster's workers.
    scheduler: dask: the scheduler's address (tcp://host:8786); empty: start a local cluster.
    """

    name: str = "local"
    workers: int = 1
    scheduler: str = ""

    @property
    def parallel(self) -> bool:
        """Whether jobs leave this process at all."""
        return self.name == "dask" or self.workers > 1


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
    """fn(job) for every job, in order; in up to `workers` spawned processes of this machine when more than one.

    fn must be a module-level function and the jobs picklable.
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    return list(_local_imap(fn, jobs, workers=min(workers, len(jobs)), window=len(jobs)))


def imap(fn: Callable[[Any], T], jobs: Iterable[Any], *, engine: Engine, window: int = 0) -> Iterator[T]:
    """fn(job) for every job, in order, on `engine`, with at most `window` jobs submitted and not yet returned.

    window: 0 means twice the workers, enough to keep them busy while a result is taken; jobs
        are drawn from `jobs` only as results are taken, so a generator of jobs stays bounded.
    fn must be a module-level function and the jobs picklable (dask: also importable on the workers).
    """
    if engine.name == "dask":
        from monitor.cluster import dask_imap

        quiet = hide_library_warnings if os.environ.get("MONITOR_QUIET_WARNINGS") == "1" else None  # as _quiet_worker does
        yield from dask_imap(fn, jobs, scheduler=engine.scheduler, workers=engine.workers, window=window, setup=quiet)
    elif engine.workers <= 1:
        yield from map(fn, jobs)
    else:
        yield from _local_imap(fn, jobs, workers=engine.workers, window=window or 2 * engine.workers)


def _local_imap(fn: Callable[[Any], T], jobs: Iterable[Any], *, workers: int, window: int) -> Iterator[T]:
    """`imap` on a ProcessPoolExecutor; if a worker is killed, the jobs not yet returned run in this process."""
    import multiprocessing  # here: a run that stays in this process (a `check` of a few series) need not load them
    from concurrent.futures import Future, ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    todo = iter(jobs)
    pending: deque[tuple[Any, Future | None]] = deque()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_quiet_worker)
    broken = False
    try:
        while True:
            for job in todo:
                try:
                    pending.append((job, pool.submit(fn, job)))
                except BrokenProcessPool:
                    pending.append((job, None))
                    raise
                if len(pending) >= window:
                    break
            if not pending:
                return
            result = pending[0][1].result()  # type: ignore[union-attr]
            pending.popleft()
            yield result
    except BrokenProcessPool:  # a worker was killed (out of memory?): do the rest here
        broken = True
    finally:
        # on Ctrl-C in this process: drop the jobs not started; the running ones finish (workers ignore SIGINT)
        pool.shutdown(wait=True, cancel_futures=True)
    if broken:
        for job, _ in pending:
            yield fn(job)
        for job in todo:
            yield fn(job)
