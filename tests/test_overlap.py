"""Overlapping runs on one database (issue 5): real `monitor` processes, a real SQLite file, a real SMTP server.

Two processes started together race for the run lock; a test-only pause point
(MONITOR_PAUSE_AT, monitor.faults) holds the winner right after it took the lock, or an
ingest right before its COMMIT, so the overlap is certain rather than likely. Every
process reads the same fixed time (MONITOR_NOW). The end state of each overlap is
compared with the same commands run one after the other.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers_incidents import write_incidents
from tests.smtp_server import SmtpServer

ROOT = Path(__file__).resolve().parents[1]
NOW = "2023-03-06T06:00:00+00:00"
SINCE = "2023-03-06T06:00:00Z"  # NOW as the lock file writes it
WEEK = "2023-W08"
HOST = socket.gethostname()
#: The digest of WEEK: Homs surges, and with it the total.
SUBJECT = f"[incident-monitor] {WEEK}: 2 new surges (violence — All (total), Homs)"
TABLES = ("ingests", "incidents", "counts", "rejects", "detections", "runs", "alert_states", "alert_events", "outbox")
#: Seconds any single command may take on a loaded machine before the test gives up on it.
LIMIT = 120

def write_config(folder: Path, *, smtp_port: int | None) -> Path:
    smtp = f'[alerts.smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\ntimeout = 10.0\n' if smtp_port else ""
    path = folder / "monitor.toml"
    path.write_text(
        '[database]\npath = "m.db"\n[ingest]\ninbox = ["inbox"]\n[report]\nfolder = "reports"\n'
        '[[series]]\nname = "violence"\ngroup_by = ["admin1"]\ndetector = "acled-surge"\n'
        '[alerts]\nrecipients = ["desk@example.org"]\nsender = "incident-monitor@example.org"\n' + smtp,
        encoding="utf-8",
    )
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}  # nothing from the caller's setup
    return {**env, "MONITOR_NOW": NOW, "PYTHONUNBUFFERED": "1", **extra}


class Monitor:
    """One `monitor` process started now; `finish()` waits for it and returns (exit code, stdout, stderr)."""

    def __init__(self, *args: str, config: Path, pause: str = "", pause_dir: Path | None = None, prefix=()) -> None:
        extra = {"MONITOR_PAUSE_AT": pause, "MONITOR_PAUSE_DIR": str(pause_dir)} if pause else {}
        self.args = args
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "monitor", "--config", str(config), *args], cwd=ROOT, env=_env(**extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self, seconds: float = 0.0) -> bool:
        """Still running after waiting up to `seconds` for it to end."""
        try:
            self.proc.wait(timeout=seconds or None) if seconds else None
        except subprocess.TimeoutExpired:
            return True
        return self.proc.poll() is None

    def finish(self) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=LIMIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"monitor {' '.join(self.args)} did not end within {LIMIT} s: {out}{err}")
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def monitor(*args: str, config: Path, **kwargs) -> tuple[int, str, str]:
    return Monitor(*args, config=config, **kwargs).finish()


def in_process(*args: str, config: Path) -> tuple[int, str, str]:
    """The same command run inside the test process (for setting up: no interpreter start-up to pay)."""
    from click.testing import CliRunner

    from monitor.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(config), *args], env={"MONITOR_NOW": NOW})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def procs():
    """Processes a test starts; any left running (a failed test) are killed."""
    started: list[Monitor] = []
    yield started
    for proc in started:
        proc.kill()


class Pause:
    """The pause folder of one test (monitor.faults): which process reached a point, and letting it go on."""

    def __init__(self, folder: Path, *, marks: tuple[str, ...] = ()) -> None:
        self.folder = folder
        folder.mkdir()
        for name in marks:  # points that are only marked: a process notes its passage and goes on
            self.release(name)

    def reached(self, name: str, *, by: list[Monitor], pid: int | None = None) -> int:
        """Wait until one of `by` (the one with `pid`, if given) has reached point `name`; its pid."""
        path = self.folder / f"{name}.paused"
        deadline = time.monotonic() + LIMIT
        while True:
            text = path.read_text() if path.exists() else ""
            arrived = [int(line) for line in text[: text.rfind("\n") + 1].split()]  # whole lines: one pid each
            found = [p for p in arrived if pid is None or p == pid]
            if found:
                assert found[0] in [p.pid for p in by]
                return found[0]
            ended = [p for p in by if p.proc.poll() is not None and (pid is None or p.pid == pid)]
            if ended or time.monotonic() > deadline:
                details = "; ".join(f"{p.args}: exit {p.proc.returncode}: {p.proc.communicate()}" for p in ended)
                pytest.fail(f"no process reached {name} ({details or 'timed out'})")
            time.sleep(0.02)

    def release(self, name: str) -> None:
        (self.folder / f"{name}.go").touch()


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # names from TABLES


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def held_message(folder: Path, pid: int, *, waited: float = 0) -> str:
    tail = (f"still held after waiting {waited:g} s; try again later or pass a longer --wait" if waited
            else "try again later or pass --wait 600")  # fmt: skip
    return f"error: another incident-monitor run holds {folder / 'm.db.lock'} (pid {pid} on {HOST}, since {SINCE}); {tail}\n"


PLACES = ["Homs", "Hama", "Raqqa"]


#: Events in the inbox file `setup` writes: 3 places x 3 a week x 112 weeks, and Homs' surge (14, not 3, in 2023-W08).
INBOX_ROWS = 3 * 3 * 112 + 11


def setup(folder: Path, *, smtp_port: int | None) -> Path:
    folder.mkdir(exist_ok=True)
    assert write_incidents(folder / "inbox" / "acled.csv", PLACES, prefix="SYR", surge=("Homs",)) == INBOX_ROWS
    return write_config(folder, smtp_port=smtp_port)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The reference: one `monitor run` of the week, then `monitor ingest` of the same file and of a second file."""
    folder = tmp_path_factory.mktemp("sequential")
    config = setup(folder, smtp_port=None)  # digest written as an .eml: the same tables, no server needed
    extra = folder / "extra.csv"
    write_incidents(extra, ["Idlib"], prefix="EXTRA")
    after_run = None
    for args in (["run", "--week", WEEK], ["ingest", str(folder / "inbox" / "acled.csv")], ["ingest", str(extra)]):
        code, out, err = in_process(*args, config=config)
        assert code == 0, out + err
        after_run = after_run or rows(folder / "m.db")
    return {"after_run": after_run, "after_ingests": rows(folder / "m.db")}


# ---- two runs of the same week ----------------------------------------------------------------------


def test_two_runs_started_together_one_works_the_other_exits_5(tmp_path, smtp, procs, sequential):
    config = setup(tmp_path, smtp_port=smtp.port)
    pause = Pause(tmp_path / "pause")
    procs += [Monitor("run", "--week", WEEK, config=config, pause="lock.acquired", pause_dir=pause.folder) for _ in range(2)]
    winner_pid = pause.reached("lock.acquired", by=procs)
    winner, loser = sorted(procs, key=lambda p: p.pid != winner_pid)
    code, out, err = loser.finish()  # at once: no --wait
    assert (code, out, err) == (5, "", held_message(tmp_path, winner_pid))
    assert not (tmp_path / "m.db").exists()  # the winner is paused right after taking the lock: nothing written yet
    pause.release("lock.acquired")
    code, out, err = winner.finish()
    assert code == 0, out + err
    assert f"alert digest (default, {WEEK}) delivered via SMTP: {SUBJECT}\n" in out

    db = tmp_path / "m.db"
    assert rows(db) == sequential["after_run"]  # one run, one set of detections, one message
    assert query(db, "SELECT week, status FROM runs") == [(WEEK, "ok")]
    assert query(db, "SELECT count(*), count(sent_at) FROM outbox") == [(1, 1)]
    assert [m["Subject"] for _, m in smtp.inbox.messages] == [SUBJECT]
    assert integrity(db) == "ok"
    assert (tmp_path / "m.db.lock").read_text() == ""  # released


def test_with_wait_the_second_run_waits_then_finds_the_week_done_and_sends_nothing(tmp_path, smtp, procs, sequential):
    config = setup(tmp_path, smtp_port=smtp.port)
    pause = Pause(tmp_path / "pause", marks=("lock.waiting",))
    procs += [Monitor("run", "--week", WEEK, "--wait", "300", config=config, pause="lock.acquired,lock.waiting",
                      pause_dir=pause.folder) for _ in range(2)]  # fmt: skip
    winner_pid = pause.reached("lock.acquired", by=procs)
    winner, waiter = sorted(procs, key=lambda p: p.pid != winner_pid)
    pause.reached("lock.waiting", by=procs, pid=waiter.pid)  # it found the lock held ...
    assert waiter.running(0.5)  # ... and waits, rather than exiting 5
    pause.release("lock.acquired")  # both pass the point from now on (the waiter once it has the lock)
    code, out, err = winner.finish()
    assert code == 0 and "delivered via SMTP" in out, out + err
    code, out, err = waiter.finish()
    assert code == 0, out + err
    assert "alert digest: nothing new to announce" in out and "delivered" not in out

    db = tmp_path / "m.db"
    assert query(db, "SELECT week, status FROM runs ORDER BY id") == [(WEEK, "ok"), (WEEK, "ok")]  # two real runs
    first, second = (json.loads(s) for (s,) in query(db, "SELECT summary FROM runs ORDER BY id"))
    assert (first["queued"], sorted(first["announced"])) == (1, ["violence/admin1=Homs", "violence/total"])
    assert (second["queued"], second["announced"], second["ingested_files"]) == (0, [], [])
    assert len(smtp.inbox.messages) == 1
    assert {k: v for k, v in rows(db).items() if k != "runs"} == {
        k: v for k, v in sequential["after_run"].items() if k != "runs"
    }  # the second run added its own runs row and nothing else
    assert integrity(db) == "ok"


# ---- monitor ingest during monitor run --------------------------------------------------------------


def test_ingest_during_a_run_exits_5_or_waits_and_counts_every_incident_once(tmp_path, smtp, procs, sequential):
    config = setup(tmp_path, smtp_port=smtp.port)
    extra = tmp_path / "extra.csv"
    extra_rows = write_incidents(extra, ["Idlib"], prefix="EXTRA")
    pause = Pause(tmp_path / "pause", marks=("lock.waiting",))
    run = Monitor("run", "--week", WEEK, config=config, pause="lock.acquired", pause_dir=pause.folder)
    procs.append(run)
    assert pause.reached("lock.acquired", by=procs) == run.pid

    assert monitor("ingest", str(extra), config=config) == (5, "", held_message(tmp_path, run.pid))
    waiting = {"pause": "lock.waiting", "pause_dir": pause.folder}
    same = Monitor("ingest", str(tmp_path / "inbox" / "acled.csv"), "--wait", "300", config=config, **waiting)
    other = Monitor("ingest", str(extra), "--wait", "300", config=config, **waiting)
    procs += [same, other]
    for proc in (same, other):  # both found the lock held and wait for the run
        pause.reached("lock.waiting", by=procs, pid=proc.pid)
    assert same.running() and other.running()
    pause.release("lock.acquired")
    assert run.finish()[0] == 0
    code, out, err = same.finish()
    assert (code, out) == (0, f"{tmp_path / 'inbox' / 'acled.csv'}: already ingested (same sha256), nothing to do\n"), err
    code, out, err = other.finish()
    assert code == 0 and f"{extra_rows} inserted" in out, out + err

    db = tmp_path / "m.db"
    assert rows(db) == sequential["after_ingests"]  # as if run one after the other
    assert query(db, "SELECT count(*), count(DISTINCT source_id) FROM incidents") == [(rows(db)["incidents"],) * 2]
    assert len(smtp.inbox.messages) == 1
    assert integrity(db) == "ok"


def test_the_same_file_ingested_by_two_processes_in_turn_is_read_once(tmp_path):
    config = setup(tmp_path, smtp_port=None)
    source = tmp_path / "inbox" / "acled.csv"
    copy = tmp_path / "copy-of-acled.csv"
    copy.write_bytes(source.read_bytes())
    code, out, err = monitor("ingest", str(source), config=config)
    assert code == 0 and f"{INBOX_ROWS} inserted, 0 updated, 0 unchanged, 0 rejected" in out, out + err
    before = rows(tmp_path / "m.db")
    # the same file again, and the same content under another name: the sha256 says it was read
    assert monitor("ingest", str(source), str(copy), config=config) == (
        0, f"{source}: already ingested (same sha256), nothing to do\n{copy}: already ingested (same sha256), nothing to do\n", ""
    )  # fmt: skip
    assert rows(tmp_path / "m.db") == before and before["ingests"] == 1 and before["incidents"] == INBOX_ROWS


# ---- readers while a writer holds the write transaction ------------------------------------------------


def homs_observed(check_json: str) -> float:
    return next(r["observed"] for r in json.loads(check_json) if r["series"] == "violence/admin1=Homs")


def test_check_and_status_answer_while_an_ingest_holds_the_write_transaction(tmp_path, procs):
    config = setup(tmp_path, smtp_port=None)
    db = tmp_path / "m.db"
    assert in_process("ingest", str(tmp_path / "inbox" / "acled.csv"), config=config)[0] == 0
    check = ("check", "--week", WEEK, "--format", "json")
    extra = tmp_path / "extra.csv"
    extra_rows = write_incidents(extra, ["Homs"], prefix="EXTRA", surge=("Homs",))  # doubles Homs: check's numbers change once it commits

    pause = Pause(tmp_path / "pause", marks=("store.begin",))
    writer = Monitor("ingest", str(extra), config=config, pause="store.commit", pause_dir=pause.folder)
    procs.append(writer)
    assert pause.reached("store.commit", by=procs) == writer.pid  # every row written, COMMIT not yet done

    # readers: answered from the last committed state (WAL), without waiting for the writer
    code, out, err = monitor(*check, config=config)
    assert (code, err) == (3, "")  # Homs surges
    assert homs_observed(out) == 14  # the first file's only
    code, out, err = monitor("status", "--format", "json", config=config)
    assert code == 0, err
    status = json.loads(out)
    assert [(s["source"], s["records"]) for s in status["sources"]] == [("acled", INBOX_ROWS)]
    # another writer without the run lock (a silence) waits for the transaction (busy_timeout), then goes ahead
    silence = Monitor("silence", "add", "--series", "Homs", "--until", "2999-12-31", "--comment", "known", "--author", "t",
                      config=config, pause="store.begin", pause_dir=pause.folder)  # fmt: skip
    procs.append(silence)
    pause.reached("store.begin", by=procs, pid=silence.pid)  # at its BEGIN IMMEDIATE ...
    assert silence.running(1.0) and writer.running()  # ... where it waits for the paused writer
    pause.release("store.commit")
    assert writer.finish()[0] == 0
    code, out, err = silence.finish()
    assert (code, err) == (0, "") and out.startswith("silence #1:")

    code, out, err = in_process(*check, config=config)
    assert code == 3 and homs_observed(out) == 28  # 14 from each file, both committed
    assert rows(db)["incidents"] == INBOX_ROWS + extra_rows and integrity(db) == "ok"


# ---- the demo takes the lock too ----------------------------------------------------------------------

#: A process holding the run lock of argv[1] until it is killed (it says "held" once it has it).
HOLDER = """
import sys, time
from datetime import datetime, timezone
from monitor.lock import run_lock
with run_lock(sys.argv[1], clock=lambda: datetime(2023, 3, 6, 6, 0, tzinfo=timezone.utc), command="test holder"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_demo_exits_5_while_another_run_holds_its_database(tmp_path):
    out_dir = tmp_path / "demo"
    out_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out_dir / "monitor.db")], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        done = subprocess.run([sys.executable, "-m", "monitor", "demo", "--out", str(out_dir)], cwd=ROOT, env=_env(),
                              capture_output=True, text=True, timeout=LIMIT)  # fmt: skip
    finally:
        holder.kill()
        holder.communicate()
    assert (done.returncode, done.stdout) == (5, "")
    assert done.stderr == (f"error: another incident-monitor run holds {out_dir / 'monitor.db.lock'} "
                           f"(pid {holder.pid} on {HOST}, since {SINCE}); try again later or pass --wait 600\n")  # fmt: skip
    # nothing touched but its own config: no inbox file, no database, no report
    assert sorted(p.name for p in out_dir.iterdir()) == ["inbox", "monitor.db.lock", "monitor.toml"]
    assert list((out_dir / "inbox").iterdir()) == []


# ---- a lock file that cannot be created ------------------------------------------------------------------


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions apply: for root, drop the capabilities that bypass them."""
    if os.geteuid() != 0:
        return []
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be made to apply")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def _one_line_error(result: tuple[int, str, str], *expected: str) -> None:
    code, out, err = result
    assert (code, out) == (1, ""), err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err


def test_a_read_only_database_folder_is_a_one_line_error(tmp_path):
    config = write_config(tmp_path, smtp_port=None)
    data = tmp_path / "acled.csv"
    write_incidents(data, ["Homs"], prefix="SYR", weeks=4)
    tmp_path.chmod(0o555)
    lock = tmp_path / "m.db.lock"
    try:
        for args in (["run", "--week", WEEK], ["ingest", str(data)], ["alerts", "flush"]):
            _one_line_error(
                monitor(*args, config=config, prefix=_without_root_powers()),
                f"error: {lock}: cannot open the lock file: Permission denied; the user running monitor needs write "
                f"access to {tmp_path} (the database's folder) and to the lock file\n",
            )
        demo = subprocess.run([*_without_root_powers(), sys.executable, "-m", "monitor", "demo", "--out", str(tmp_path)],
                              cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=LIMIT)  # fmt: skip
        _one_line_error((demo.returncode, demo.stdout, demo.stderr),
                        f"error: cannot write the demo into {tmp_path}: Permission denied\n")  # fmt: skip
    finally:
        tmp_path.chmod(0o755)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acled.csv", "monitor.toml"]  # nothing made


def test_a_lock_file_this_user_cannot_write_is_a_one_line_error(tmp_path):
    """E.g. made by root running `monitor run` by hand in the service user's folder."""
    config = write_config(tmp_path, smtp_port=None)
    lock = tmp_path / "m.db.lock"
    lock.write_text("")
    lock.chmod(0o444)
    _one_line_error(monitor("run", "--week", WEEK, config=config, prefix=_without_root_powers()),
                    f"error: {lock}: cannot open the lock file: Permission denied; ")  # fmt: skip
    assert not (tmp_path / "m.db").exists()


@pytest.mark.parametrize("case", ["parent is a file", "lock is a folder"])
def test_a_lock_path_that_cannot_exist_is_a_one_line_error(tmp_path, case):
    if case == "parent is a file":
        (tmp_path / "data").write_text("not a folder")
        db, expected = tmp_path / "data" / "m.db", f"{tmp_path / 'data'} is not a folder (fix database.path)\n"
    else:
        (tmp_path / "m.db.lock").mkdir()
        db, expected = tmp_path / "m.db", "cannot open the lock file: it is a folder (remove it, or fix database.path)\n"
    config = write_config(tmp_path, smtp_port=None)
    for args in (["run", "--week", WEEK], ["ingest", str(tmp_path / "monitor.toml")], ["alerts", "flush"]):
        _one_line_error(in_process("--db", str(db), *args, config=config), f"error: {db}.lock: ", expected)
