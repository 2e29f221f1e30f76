"""Detection groups as tasks on a Dask distributed cluster (`[detection] engine = "dask"`).

The one owner of `distributed`, imported only when the engine is used (so `monitor --help`
does not pay for it). With `[detection] scheduler` empty, a `distributed.LocalCluster` of
`[detection] workers` processes starts on 127.0.0.1 (no dashboard) and lives as long as this
process; with an address (tcp://10.0.0.5:8786), the job connects to that scheduler, whose
workers need this project installed at the same version (checked on connecting).

Why Dask distributed rather than Ray: it installs from pip as wheels (dask and distributed
themselves are pure Python; their dependencies are cloudpickle, msgpack, psutil, tornado,
about 25 MB), needs no service beyond `dask scheduler` and `dask worker ADDRESS` on the
machines, ships pandas and numpy objects (our series and result frames) with pickle 5, gives
a `LocalCluster` that tests start in about 3 s, and a client that connects to a scheduler
address with a timeout. Ray would bring a large binary wheel, its own object store and
daemons (raylet, GCS) on every machine, for features (actors, GPUs, autoscaling) a weekly
batch of independent chunks does not use.
"""

from __future__ import annotations

import atexit
import importlib.metadata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from monitor.errors import ConfigError

T = TypeVar("T")

#: Seconds to wait for the scheduler at `[detection] scheduler` before giving up.
CONNECT_TIMEOUT = 10.0

#: What to type when `distributed` is missing.
INSTALL = "pip install 'incident-monitor[scale]' (or pip install 'dask[distributed]')"

#: Open clients by (scheduler, workers): a local cluster costs seconds to start, so one serves the whole process.
_CLIENTS: dict[tuple[str, int], Any] = {}
_CLUSTERS: list[Any] = []


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError(f'[detection] engine = "dask" needs Dask distributed, which is not installed: {INSTALL}') from None
    return distributed


def client(*, scheduler: str, workers: int, setup: Callable[[], None] | None = None):
    """The Dask client for `scheduler` (empty: a local cluster of `workers` processes), opened once per process.

    setup: run once on each worker of a local cluster when it starts (its output goes to this terminal).
    """
    key = (scheduler, workers)
    open_client = _CLIENTS.get(key)
    if open_client is not None and open_client.status == "running":
        return open_client
    distributed = _distributed()
    if scheduler:
        try:
            opened = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"[detection] scheduler = {scheduler!r}: cannot reach the Dask scheduler there within {CONNECT_TIMEOUT:g} s "
                f"({exc}); start it (`dask scheduler`) or correct the address, or leave scheduler empty for a local cluster"
            ) from None
        _check_versions(opened, scheduler)
    else:
        cluster = local_cluster(workers=workers)
        _CLUSTERS.append(cluster)
        opened = distributed.Client(cluster, set_as_default=False)
        if setup is not None:
            opened.run(setup)
    _CLIENTS[key] = opened
    return opened


def local_cluster(*, workers: int):
    """A `distributed.LocalCluster` of `workers` single-threaded worker processes, listening on 127.0.0.1 only."""
    distributed = _distributed()
    # no dashboard (it needs bokeh); the scheduler's small HTTP server (health, metrics) on a free port of 127.0.0.1
    return distributed.LocalCluster(
        n_workers=max(1, workers), threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )  # fmt: skip


def _our_version() -> str:
    return importlib.metadata.version("incident-monitor")


def _check_versions(opened, scheduler: str) -> None:
    """Refuse a cluster whose workers run another version of this project (or none): their results could differ."""
    ours = _our_version()
    found = opened.run(importlib.metadata.version, "incident-monitor", on_error="return")
    wrong = {worker: v for worker, v in found.items() if v != ours}
    if wrong:
        worker, version = next(iter(wrong.items()))
        theirs = "not installed" if isinstance(version, Exception) else f"version {version}"
        opened.close()
        raise ConfigError(
            f"[detection] scheduler = {scheduler!r}: {len(wrong)} worker(s) (e.g. {worker}) have incident-monitor {theirs}, "
            f"this job {ours}: install the same version on every worker (pip install 'incident-monitor[scale]=={ours}')"
        )


def close_all() -> None:
    """Close the clients and local clusters this process opened."""
    for opened in _CLIENTS.values():
        opened.close()
    _CLIENTS.clear()
    for cluster in _CLUSTERS:
        cluster.close()
    _CLUSTERS.clear()


atexit.register(close_all)


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def worker_peaks(opened) -> dict[str, int]:
    """Each worker's peak resident memory so far, in bytes (Linux ru_maxrss), by worker address."""
    return opened.run(_peak_rss)


def dask_imap(
    fn: Callable[[Any], T], jobs: Iterable[Any], *, scheduler: str, workers: int, window: int = 0, setup: Callable[[], None] | None = None
) -> Iterator[T]:
    """fn(job) for every job as Dask tasks, results in order, at most `window` (0: twice the cluster's threads) in flight."""
    opened = client(scheduler=scheduler, workers=workers, setup=setup)
    window = window or max(2, 2 * sum(opened.nthreads().values()))
    todo = iter(jobs)
    pending: deque = deque()
    try:
        while True:
            for job in todo:
                pending.append(opened.submit(fn, job, pure=False))  # pure=False: no hashing of the (large) job
                if len(pending) >= window:
                    break
            if not pending:
                return
            result = pending[0].result()
            pending.popleft()
            yield result
    finally:
        if pending:  # stopped early (an error, Ctrl-C): the queued tasks are not wanted
            opened.cancel(list(pending))
