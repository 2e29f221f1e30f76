"""The run lock beside the database: one run at a time, a clear message, freed on any exit (even SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import EXIT_LOCKED, cli
from monitor.errors import LockError, StoreError
from monitor.lock import lock_path, run_lock
from monitor.store import Store

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2023, 2, 27, 6, 0, 1, tzinfo=timezone.utc)
CLOCK = lambda: START  # noqa: E731

#: A separate process holding the lock of argv[1] for argv[2] seconds (it says "held" once it has it).
HOLDER = """
import sys, time
from datetime import datetime, timezone
from monitor.lock import run_lock
with run_lock(sys.argv[1], clock=lambda: datetime(2026, 11, 24, 6, 0, 1, tzinfo=timezone.utc), command="test holder"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the lock of tmp_path/m.db; returns a function taking the seconds to hold it."""
    procs: list[subprocess.Popen] = []

    def start(seconds: float = 60) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "m.db"), str(seconds)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        procs.append(proc)
        assert proc.stdout.readline() == "held\n"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def test_the_lock_file_names_its_holder_while_held_and_is_emptied_after(tmp_path):
    db = tmp_path / "m.db"
    assert lock_path(db) == tmp_path / "m.db.lock"
    with run_lock(db, clock=CLOCK, command="monitor run") as path:
        info = json.loads(path.read_text())
        assert info == {"pid": os.getpid(), "host": socket.gethostname(), "since": "2023-02-27T06:00:01Z",
                        "command": "monitor run"}  # fmt: skip
        with pytest.raises(LockError) as second:  # another open file description: flock refuses it, even in this process
            with run_lock(db, clock=CLOCK):
                pass
    assert second.value.exit_code == EXIT_LOCKED == 5
    assert str(second.value) == (
        f"another incident-monitor run holds {path} (pid {os.getpid()} on {socket.gethostname()}, "
        "since 2023-02-27T06:00:01Z); try again later or pass --wait 600"
    )
    assert path.read_text() == ""


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), run_lock(tmp_path / "m.db", clock=CLOCK):
        raise RuntimeError("boom")
    with run_lock(tmp_path / "m.db", clock=CLOCK):  # free again at once
        pass


def test_a_second_run_exits_5_naming_the_other_process(tmp_path, holder):
    proc = holder()
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\npath = "m.db"\n[report]\nfolder = "reports"\n[ingest]\ninbox = ["inbox"]\n')
    csv = tmp_path / "counts.csv"
    csv.write_text("week_start,count\n2023-01-02,3\n")
    for args in (["run", "--week", "2023-W08"], ["ingest", str(csv)]):
        result = CliRunner().invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 5, result.output
        assert result.output == (
            f"error: another incident-monitor run holds {tmp_path / 'm.db.lock'} (pid {proc.pid} on {socket.gethostname()}, "
            "since 2026-11-24T06:00:01Z); try again later or pass --wait 600\n"
        )
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "reports").exists()  # nothing was touched
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--week", "2023-W08", "--wait", "0.5"])
    assert result.exit_code == 5 and time.monotonic() - started >= 0.5
    assert "still held after waiting 0.5 s; try again later or pass a longer --wait" in result.output


def test_a_waiting_run_goes_ahead_once_the_other_finishes(tmp_path, holder):
    holder(seconds=0.5)
    started = time.monotonic()
    with run_lock(tmp_path / "m.db", clock=CLOCK, wait=30) as path:
        waited = time.monotonic() - started
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert 0.2 < waited < 10


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path, holder):
    proc = holder()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    path = tmp_path / "m.db.lock"
    assert json.loads(path.read_text())["pid"] == proc.pid  # the file still names the dead holder ...
    with run_lock(tmp_path / "m.db", clock=CLOCK):  # ... but the kernel dropped its flock: no wait, no error
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_stop_request_ends_the_wait(tmp_path, holder):
    holder()
    started = time.monotonic()
    with pytest.raises(LockError, match="stopped while waiting for .*m.db.lock"):
        with run_lock(tmp_path / "m.db", clock=CLOCK, wait=60, stop=lambda: time.monotonic() - started > 0.3):
            pass
    assert time.monotonic() - started < 5


def test_a_missing_database_folder_is_a_plain_error(tmp_path):
    with pytest.raises(StoreError, match=r"folder .*nowhere does not exist \(create it or fix database.path\)"):
        with run_lock(tmp_path / "nowhere" / "m.db", clock=CLOCK):
            pass
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "nowhere" / "m.db"), "ingest", str(tmp_path / "x.csv")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_the_scheduled_job_gives_way_to_a_running_monitor_run(tmp_path, holder):
    """The job waits for the lock (stop-aware); when told to stop meanwhile it gives up, runs nothing and says why."""
    from monitor.config import config_from_dict
    from monitor.schedule import weekly_job

    holder()
    config = config_from_dict({"database": {"path": str(tmp_path / "m.db")}}, base_dir=tmp_path)
    lines: list[str] = []
    started = time.monotonic()
    job = weekly_job(config, echo=lines.append, clock=CLOCK, stop=lambda: time.monotonic() - started > 0.3)
    assert job() == EXIT_LOCKED
    assert "weekly run skipped: stopped while waiting for" in lines[-1]
    with Store(tmp_path / "m.db") as store:
        assert store.runs() == []
