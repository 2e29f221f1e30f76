"""Detection on a Dask cluster (`[detection] engine = "dask"`, issue 17 item 4): a real two-worker
LocalCluster on 127.0.0.1, shared by the module; the frames equal those of one process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor import cluster, detection
from monitor.config import config_from_dict
from monitor.detectors import make_params
from monitor.detectors.nb_recent import NbRecentParams
from monitor.errors import ConfigError
from monitor.parallel import Engine, imap
from monitor.types import WeeklySeries

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def address():
    """A two-worker local cluster (worker processes, as on a real cluster: jobs and results are pickled)."""
    with cluster.local_cluster(workers=2) as local:
        yield local.scheduler_address
        cluster.close_all()


def _weekly(values) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2020-01-06", periods=len(values), freq="7D"), name="count")


def _sparse_series(n: int, *, weeks: int = 160, seed: int = 5) -> list[WeeklySeries]:
    """Mostly-zero admin2 x actor style series (negative binomial with small means), a few dense ones."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mean = 8.0 if i % 50 == 0 else rng.gamma(0.5, 0.6)
        counts = rng.negative_binomial(1.0, 1.0 / (1.0 + mean), size=weeks).astype(float)
        if i % 37 == 0:
            counts[-1] += 6  # a surge in the last week, so some series alarm
        out.append(WeeklySeries(key=f"admin2={i}", definition="d", labels=(("admin2", str(i)),), metric="events",
                                detector="farrington-cusum", params={}, counts=_weekly(counts)))  # fmt: skip
    return out


def test_dask_engine_equals_one_process(address, monkeypatch):
    series = _sparse_series(300)
    models = [("ears", make_params("ears", {}))] * 250 + [("farrington", make_params("farrington", {}))] * 50
    monkeypatch.setattr(detection, "PARALLEL_MIN_SERIES", 50)
    monkeypatch.setattr(detection, "CLUSTER_CHUNK", 40)  # several tasks per group, on both workers
    here = detection._detect_grouped(series, models, lookback=2, fallback_params=NbRecentParams(), engine=Engine())
    there = detection._detect_grouped(
        series, models, lookback=2, fallback_params=NbRecentParams(), engine=Engine(name="dask", workers=2, scheduler=address)
    )
    assert len(here) == len(there) == 300
    for a, b in zip(here, there):
        pd.testing.assert_frame_equal(a, b)
    assert any(bool(f["alarm"].iloc[-1]) for f in here if not pd.isna(f["alarm"].iloc[-1]))
    used = cluster.client(scheduler=address, workers=2)
    assert len(used.nthreads()) == 2


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_imap_keeps_order_and_draws_jobs_only_as_results_are_taken(address, engine):
    drawn = []

    def jobs():
        for i in range(12):
            drawn.append(i)
            yield i

    chosen = Engine(name="dask", workers=2, scheduler=address) if engine == "dask" else Engine(workers=2)
    results = imap(_square, jobs(), engine=chosen, window=3)
    assert next(results) == 0
    assert len(drawn) <= 4  # the window, plus the one drawn after the first result was taken
    assert list(results) == [i * i for i in range(1, 12)]


def test_the_engine_follows_the_config(address):
    config = config_from_dict({"detection": {"engine": "dask", "scheduler": address, "workers": 2}}, base_dir=ROOT)
    assert detection.detection_engine(config) == Engine(name="dask", workers=2, scheduler=address)
    assert detection.detection_engine(config_from_dict({}, base_dir=ROOT)).name == "local"


def test_an_unreachable_scheduler_is_a_clear_error_not_a_hang(monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    start = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        list(imap(_square, [1, 2], engine=Engine(name="dask", scheduler=f"tcp://127.0.0.1:{port}")))
    assert time.monotonic() - start < 15
    message = str(caught.value)
    assert "[detection] scheduler" in message and f"tcp://127.0.0.1:{port}" in message and "within 1 s" in message


def test_missing_distributed_names_the_key_and_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.setattr(cluster, "_CLIENTS", {})
    with pytest.raises(ConfigError, match=r"\[detection\] engine = \"dask\".*pip install 'incident-monitor\[scale\]'"):
        cluster.client(scheduler="", workers=2)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    with pytest.raises(ConfigError, match=r"detection.*engine = \"dask\" needs Dask distributed.*pip install"):
        config_from_dict({"detection": {"engine": "dask"}}, base_dir=ROOT)


@pytest.mark.parametrize(
    "settings,expected",
    [
        ({"engine": "ray"}, r"detection\.engine = 'ray': expected 'local' or 'dask'"),
        ({"engine": "dask", "scheduler": "10.0.0.5"}, r"detection\.scheduler = '10\.0\.0\.5'.*tcp://HOST:PORT"),
        ({"scheduler": "tcp://10.0.0.5:8786"}, r"scheduler = 'tcp://10\.0\.0\.5:8786' is set but engine = 'local'"),
        ({"engine": "dask", "scheduler": 8786}, r"detection\.scheduler: expected"),
    ],
)
def test_bad_engine_settings_name_the_key_and_what_is_accepted(settings, expected):
    with pytest.raises(ConfigError, match=expected):
        config_from_dict({"detection": settings}, base_dir=ROOT)


def test_workers_of_another_version_are_refused(address, monkeypatch):
    monkeypatch.setattr(cluster, "_our_version", lambda: "0.0.0-other")
    opened = distributed.Client(address, set_as_default=False)
    with pytest.raises(ConfigError, match=r"2 worker\(s\).*incident-monitor version .* this job 0\.0\.0-other.*same version"):
        cluster._check_versions(opened, address)


def test_an_empty_scheduler_starts_a_local_cluster_of_workers_processes():
    try:
        results = list(imap(_square, range(6), engine=Engine(name="dask", workers=2)))
        assert results == [i * i for i in range(6)]
        opened = cluster.client(scheduler="", workers=2)
        assert len(opened.nthreads()) == 2
        assert all(a.startswith("tcp://127.0.0.1:") for a in opened.nthreads())  # nothing listens beyond this machine
        peaks = cluster.worker_peaks(opened)
        assert len(peaks) == 2 and all(p > 10_000_000 for p in peaks.values())
    finally:
        cluster.close_all()


def test_the_cli_and_config_do_not_import_dask():
    code = ("import sys, monitor.cli, monitor.detection, monitor.parallel; from pathlib import Path; from monitor.config import config_from_dict;"
            "config_from_dict({'detection': {'engine': 'dask'}}, base_dir=Path('.'));"
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
