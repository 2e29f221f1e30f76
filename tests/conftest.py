"""Fixtures shared by the test suite.

Tests that read real incident files or R reference outputs find them in `../shared`
beside the checkout (or in $MONITOR_SHARED). Under CI (`CI` set) a missing folder is
a failure, never a skip; on a user's machine the tests skip with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MONITOR_SHARED", ROOT.parent / "shared"))


#: The test files that take longest (each 8-65 s on two idle cores, measured), longest first. pytest-xdist sends
#: whole files to its workers (`--dist loadfile`) in the order collected (`--no-loadscope-reorder`, pyproject.toml):
#: a long file sent last keeps one worker busy after the other has run out of work; sent first, the short files fill
#: in around them. A file not named here keeps its place after them; a stale list costs balance, never a test.
LONGEST_FIRST = ("test_crash.py", "test_backtest.py", "test_pipeline.py", "test_overlap.py", "test_html_report.py",
                 "test_farrington_batch.py", "test_ingest_shared.py", "test_bad_inputs.py", "test_report.py",
                 "test_alert_timeline.py", "test_disk_edges.py", "test_map.py", "test_cluster.py", "test_progress.py",
                 "test_plots.py", "test_glrnb.py", "test_emergence_alerts.py", "test_schedule.py", "test_nb_recent.py",
                 "test_edges_ingest.py", "test_farrington_cusum.py")  # fmt: skip


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order within a file is kept


def _shared(sub: str) -> Path:
    path = SHARED / sub
    if not path.is_dir():
        message = f"{path} is missing: clone the shared data beside the project (../shared) or set MONITOR_SHARED"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`: real ACLED, UCDP and SIGACTS files."""
    return _shared("data")


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """`../shared/reference`: golden outputs of R surveillance 1.20.3."""
    return _shared("reference")


def reference_dir() -> Path:
    """The reference folder for table-driven parametrisation at collection time (may not exist)."""
    return SHARED / "reference"


def reference_cases(algorithm_prefix: str) -> list:
    """pytest params, one per manifest row of `../shared/reference` whose algorithm starts with the prefix.

    Collected without the folder, a single case asks the fixture: it fails under CI and
    skips locally, so a missing folder never passes silently.
    """
    from monitor.detectors.reference import manifest

    folder = reference_dir()
    if not (folder / "manifest.csv").is_file():
        return [pytest.param(None, id="reference-missing")]
    return [pytest.param(r, id=r["file"]) for r in manifest(folder) if r["algorithm"].startswith(algorithm_prefix)]


def load_reference(row, folder: Path):
    """The ReferenceCase of a manifest row, checked against the manifest's own counts."""
    from monitor.detectors.reference import load_case

    if row is None:
        pytest.fail(f"{folder / 'manifest.csv'} is missing")
    case = load_case(folder, row)
    assert len(case.counts) == int(row["n_weeks_series"])
    assert len(case.golden) == len(case.weeks) == int(row["n_weeks_monitored"])
    return case


def assert_close(ours, theirs, what: str, rel: float = 1e-6) -> None:
    """Same NA weeks, same infinities, finite values within `rel` relative difference."""
    import numpy as np

    from monitor.detectors.reference import relative_difference, same_missing

    assert same_missing(ours, theirs), f"{what}: NA in different weeks"
    a, b = ours.to_numpy(dtype=float), theirs.to_numpy(dtype=float)
    assert np.array_equal(a[np.isinf(a)], b[np.isinf(a)]) and np.isinf(b).sum() == np.isinf(a).sum(), f"{what}: infinities differ"
    worst = relative_difference(ours, theirs)
    assert worst <= rel, f"{what}: max relative difference {worst:.3g}"


def made_once(tmp_path_factory, name: str, make) -> Path:
    """The folder `name` in the run's shared temporary folder, made by `make(folder)` once per test run.

    Not once per pytest-xdist worker: the first worker to ask makes it under a lock, the others wait and
    read it (a file lock of the standard library; a folder left half made by a killed worker is made
    again: it counts as made once `make` has returned). Whatever `make` writes beside the folder (e.g.
    `<name>.pickle`) is made under the same lock.
    """
    import fcntl
    import shutil

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's folder is popen-gwN inside the run's
        base = base.parent
    out = base / name
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / ".made").exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            make(out)
            (out / ".made").write_text(f"{name}: made once for this test run\n", encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A folder where `monitor demo` ran once (2023-W09): config, database, report and digest.

    Made once per test run, not once per pytest-xdist worker (`made_once`). Tests may read it and run
    detection on it, not change it (copy the database, or the folder, to write). What the run returned
    is `demo_outcome`.
    """
    import pickle
    from datetime import datetime, timezone

    from monitor.demo import run_demo

    def make(out: Path) -> None:
        outcome = run_demo(out, now=datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc))
        out.with_name(f"{out.name}.pickle").write_bytes(pickle.dumps(outcome))

    return made_once(tmp_path_factory, "demo_shared", make)


@pytest.fixture(scope="session")
def demo_outcome(demo_dir):
    """What `run_demo` returned when it made `demo_dir` (a WeeklyOutcome: the result, the report's files, the
    digest's delivery), read back in each worker. Its paths are in `demo_dir`."""
    import pickle

    return pickle.loads(demo_dir.with_name(f"{demo_dir.name}.pickle").read_bytes())


@pytest.fixture(scope="session")
def shared_db(shared_data, tmp_path_factory):
    """A function: `shared_db(name, ...)` is an SQLite database holding those files of `../shared/data`.

    Each database is ingested once per test run, by whichever worker asks first (`made_once`): the files
    in the order given, streamed as the weekly job reads them, with the example config's mappings (for the
    Iraq SIGACTS columns, as tests/test_ingest_shared.py), their sha256, at 2024-01-01 00:00. Tests read it (Store(path,
    read_only=True)) and do not change it: to write, copy the file, which costs a fraction of an ingest.
    """
    import hashlib
    import re
    from datetime import datetime

    from monitor.config import load_config
    from monitor.sources import open_file
    from monitor.store import Store

    mappings = load_config(ROOT / "config" / "monitor.toml").ingest.mappings
    now = datetime(2024, 1, 1)

    def database(*names: str) -> Path:
        def make(out: Path) -> None:
            with Store(out / "monitor.db") as store:
                for name in names:
                    path = shared_data / name
                    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
                    store.ingest(open_file(path, mappings=mappings, now=now), sha256=sha256, now=now)

        key = "shared_db_" + "+".join(re.sub(r"[^A-Za-z0-9]+", "_", Path(n).stem) for n in names)
        return made_once(tmp_path_factory, key, make) / "monitor.db"

    return database


def demo_config(demo_dir: Path, **detection):
    """The demo's config with `[detection]` settings changed (e.g. multiple_testing="fdr")."""
    from monitor.config import load_config

    config = load_config(demo_dir / "monitor.toml")
    return config.model_copy(update={"detection": config.detection.model_copy(update=detection)})
