"""The disk under the database misbehaves (issue 12, item 10): full, or mounted read-only.

Each case mounts a real tmpfs in a private mount namespace (`unshare --user --map-root-user --mount`,
so no root is needed and nothing outside the test sees it), puts the database there and runs the real
`monitor` command in a child process. SQLite reports a full disk as "database or disk is full" or
"disk I/O error" and names no file: the monitor's message must name the database, say the disk is
full or read-only and what to do, and never be an "unexpected" error; nothing stored may be lost.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from helpers_incidents import write_incidents

NOW = "2023-03-06T06:00:00+00:00"
CONFIG = """
[database]
path = "disk/m.db"
[report]
folder = "reports"
[[series]]
name = "violence"
group_by = ["admin1"]
"""

# Runs inside the namespace: mounts the tmpfs on ./disk, then does what argv[1] (JSON) says, step by step:
# ["copy", SRC] copies a database in as disk/m.db, ["hold"] / ["release"] open and close a reader of it (which
# keeps its -shm and -wal files), ["fill", BYTES_LEFT] fills the disk up to that much free space, ["unfill"]
# removes the fillers, ["ro"] remounts read-only, ["monitor", ARGS...] runs the command; writes every
# command's exit code and output to ./outcome.json (outside the mount).
SCENARIO = textwrap.dedent(
    """
    import json, os, shutil, sqlite3, subprocess, sys
    steps, outcome, reader = json.loads(sys.argv[1]), [], None
    fillers = 0
    os.makedirs("disk", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", "disk"], check=True)
    for step in steps:
        if step[0] == "copy":
            shutil.copy(step[1], "disk/m.db")
        elif step[0] == "fill":
            info = os.statvfs("disk")
            fillers += 1
            with open(f"disk/filler{fillers}", "wb") as out:
                out.write(b"\\0" * max(info.f_bavail * info.f_frsize - step[1], 0))
        elif step[0] == "unfill":
            for name in os.listdir("disk"):
                if name.startswith("filler"):
                    os.remove(os.path.join("disk", name))
        elif step[0] == "hold":  # a reader keeps the WAL index (-shm) and -wal files in place
            reader = sqlite3.connect("disk/m.db")
            reader.execute("SELECT COUNT(*) FROM incidents").fetchone()
        elif step[0] == "release":
            reader.close()
        elif step[0] == "ro":
            subprocess.run(["mount", "-o", "remount,ro", "disk"], check=True)
        else:
            done = subprocess.run([sys.executable, "-m", "monitor", "--config", "monitor.toml", *step[1:]],
                                  capture_output=True, text=True, timeout=300)
            outcome.append({"args": step[1:], "rc": done.returncode, "out": done.stdout, "err": done.stderr})
    if os.path.exists("disk/m.db"):
        shutil.copy("disk/m.db", "after.db")  # what the database holds once the disk is gone
    with open("outcome.json", "w") as out:
        json.dump(outcome, out)
    """
)


def _namespaces_work() -> str:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"user and mount namespaces are not available here: {probe.stderr.strip()}"


pytestmark = pytest.mark.skipif(bool(_namespaces_work()), reason=_namespaces_work() or "namespaces work")


def _scenario(tmp_path, steps: list) -> list[dict]:
    (tmp_path / "scenario.py").write_text(SCENARIO, encoding="utf-8")
    env = {**os.environ, "MONITOR_NOW": NOW, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(["unshare", "-rm", sys.executable, "scenario.py", json.dumps(steps)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "outcome.json").read_text(encoding="utf-8"))


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """A database with 112 weeks of incidents in two governorates, made on the ordinary disk (by `monitor ingest`
    run in this process: the disk's misbehaviour is for the commands of the scenario)."""
    from click.testing import CliRunner

    from monitor.cli import cli

    (tmp_path / "monitor.toml").write_text(CONFIG, encoding="utf-8")
    write_incidents(tmp_path / "inbox" / "acled.csv", ["Homs", "Hama"], prefix="P", surge=("Homs",))
    (tmp_path / "disk").mkdir()
    monkeypatch.chdir(tmp_path)  # as the scenario's commands run: in the folder, with its relative paths
    done = CliRunner().invoke(cli, ["--config", "monitor.toml", "ingest", "inbox/acled.csv"], env={"MONITOR_NOW": NOW})
    monkeypatch.undo()
    assert done.exit_code == 0, done.output
    shutil.move(tmp_path / "disk" / "m.db", tmp_path / "made.db")
    for leftover in (tmp_path / "disk").iterdir():
        leftover.unlink()
    return tmp_path


def _incidents(db) -> int:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]


def test_a_full_disk_under_the_database_names_it_and_the_fix_and_loses_nothing(prepared):
    stored = _incidents(prepared / "made.db")
    steps = [
        ["copy", str(prepared / "made.db")],
        ["hold"],  # the database's WAL index and -wal file exist, as while another process reads it
        ["fill", 4096],  # one page of tmpfs left: the lock file's, none for the run's writes
        ["monitor", "run", "--week", "2023-W08", "--no-email"],
        ["release"],
        ["fill", 0],  # nothing left: not even the lock file or the WAL index can be written
        ["monitor", "check", "--week", "2023-W08"],
        ["monitor", "ingest", "--again", "inbox/acled.csv"],
        ["unfill"],
        ["monitor", "run", "--week", "2023-W08", "--no-email"],
    ]
    run_full, check_full, ingest_full, run_after = _scenario(prepared, steps)
    disk = prepared / "disk"
    full = f"(the disk holding {disk} is full: "
    # SQLite fails at the commit of the run's detections: the message names the database and the disk
    assert run_full["rc"] == 1, run_full
    assert run_full["err"].startswith(f"error: {disk / 'm.db'}: cannot write the database: database or disk is full {full}")
    assert "free some space there, or move the database" in run_full["err"] and "unexpected" not in run_full["err"]
    assert check_full["rc"] == 1 and f"{disk / 'm.db'}: cannot open the database: " in check_full["err"], check_full
    assert full in check_full["err"] and "unexpected" not in check_full["err"]
    assert ingest_full["rc"] == 1 and f"{disk / 'm.db.lock'}: cannot write the lock file: " in ingest_full["err"], ingest_full
    assert full in ingest_full["err"] and "unexpected" not in ingest_full["err"]
    # space freed, the same run goes through on the same database, and every stored incident is still there
    assert run_after["rc"] == 0 and "2 of 3 series flagged: violence Homs" in run_after["out"], run_after
    assert _incidents(prepared / "after.db") == stored
    with sqlite3.connect(prepared / "after.db") as conn:
        assert conn.execute("SELECT week, status FROM runs").fetchall() == [("2023-W08", "ok")]


def test_a_database_on_a_read_only_filesystem_can_still_be_read_and_writes_say_why_not(prepared):
    steps = [
        ["copy", str(prepared / "made.db")],
        ["ro"],
        ["monitor", "check", "--week", "2023-W08", "--format", "json"],
        ["monitor", "status", "--format", "json"],
        ["monitor", "rejects"],
        ["monitor", "alerts", "list"],
        ["monitor", "run", "--week", "2023-W08", "--no-email"],
        ["monitor", "ingest", "inbox/acled.csv"],
    ]
    check, status, rejects, alerts, run, ingest = _scenario(prepared, steps)
    assert check["rc"] == 3, check  # read where it is: Homs is flagged, as on a writable disk
    flagged = {row["series"] for row in json.loads(check["out"]) if row["alarm"]}
    assert flagged == {"violence/admin1=Homs", "violence/total"}
    assert status["rc"] == 0 and json.loads(status["out"])["sources"][0]["records"] == _incidents(prepared / "made.db")
    assert rejects["rc"] == 0 and alerts["rc"] == 0, (rejects, alerts)
    for writer in (run, ingest):
        assert writer["rc"] == 1, writer
        assert f"{prepared / 'disk' / 'm.db.lock'}: cannot create the lock file: Read-only file system" in writer["err"]
        assert "unexpected" not in writer["err"]
