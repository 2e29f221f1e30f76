"""Crashes (issue 5): `monitor ingest`, `monitor run` and `monitor alerts flush` killed with SIGKILL at named points.

Each case restores the folder of an uninterrupted reference (config, data, database, reports)
as it was before one command, runs that command as a new process with `MONITOR_KILL_AT` naming
a point of `monitor.faults`, checks it died of SIGKILL (a point never reached fails the case),
then runs what a user (or the scheduler's catch-up, which re-runs a week with no recorded run)
would run next: the same command again, or `monitor alerts flush` first. Then:

* `PRAGMA integrity_check` is ok;
* the database equals the reference's after the same command (`dump`, which says what it
  leaves out and why);
* the reports are byte for byte the reference's, and no temporary file is left;
* the real SMTP server (aiosmtpd on 127.0.0.1) received exactly the reference's messages,
  each once; the only duplicate allowed is the message the server had accepted when the
  process died before marking it sent (`outbox.accepted`): it arrives twice, with the same
  Message-ID.

The clock of every command is fixed with `MONITOR_NOW`, so a re-run is byte-comparable.
Commands are children forked by tests/fork_server.py, which has imported the monitor once
(`python -m monitor` spends ~3 s importing before it does anything, ~80 times here); one case
runs every command as `python -m monitor` and must end exactly as the forked reference did.
The data: weekly counts for four Syrian governorates over 2020-2022 (two files, one bad row),
then one file per week; 2023-W01 flags Homs and Idlib, 2023-W02 resolves Homs, keeps Idlib
and flags Hama. Two routes (the Syria desk, the duty officer) make two messages per run.
"""

from __future__ import annotations

import csv
import email
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from email.policy import default as default_policy
from pathlib import Path

import pytest

from tests.fork_server import SINGLE_THREAD, ForkServer
from tests.smtp_server import SmtpServer

DESK, DUTY = "syria-desk@example.org", "duty@example.org"
REGIONS = ("Aleppo", "Hama", "Homs", "Idlib")
HISTORY = [date(2020, 1, 6) + timedelta(weeks=i) for i in range(156)]  # 2020-W02 .. 2022-W52
W01, W02 = date(2023, 1, 2), date(2023, 1, 9)
#: this week's counts (the history hovers around 20)
WEEK_COUNTS = {
    W01: {"Aleppo": 20, "Hama": 21, "Homs": 60, "Idlib": 55},
    W02: {"Aleppo": 19, "Hama": 58, "Homs": 20, "Idlib": 62},
}


@dataclass(frozen=True)
class Step:
    """One command of the reference sequence, at a fixed time, after a file arrives in the inbox."""

    name: str
    argv: tuple[str, ...]
    now: str
    drop: str = ""  # a file of data/ copied into inbox/ just before the command
    exit: int = 0  # the uninterrupted command's exit code


STEPS = (
    # exit 1: the first file has a row with a negative count, rejected (the good rows are kept)
    Step("ingest", ("ingest", "data/history-2020-2021.csv", "data/history-2022.csv"), "2023-01-02T05:00:00+00:00", exit=1),
    Step("run W01", ("run", "--week", "2023-W01"), "2023-01-09T06:00:00+00:00", drop="2023-W01.csv"),
    Step("run W02", ("run", "--week", "2023-W02"), "2023-01-16T06:00:00+00:00", drop="2023-W02.csv"),
)
INGEST, RUN_W01, RUN_W02 = range(3)
FLUSH = ("alerts", "flush")


@dataclass(frozen=True)
class Case:
    """Kill `STEPS[step]` at `point`, then run `then` (argv, kill point or "") instead of just repeating the step."""

    point: str
    step: int
    then: tuple[tuple[tuple[str, ...], str], ...] = ()
    duplicates: int = 0  # messages the server may (and here must) receive twice: accepted, not marked sent
    id: str = field(default="")
    spawn: bool = False  # every command as `python -m monitor` rather than a child of the fork server
    leaves_temp: bool = False  # the killed command leaves a temporary file (which the re-run must remove)
    #: exit code of the re-run when it differs from the uninterrupted step's: an ingest killed after the
    #: file with a rejected row was committed skips that file when run again (same sha256), so it exits 0
    rerun_exit: int | None = None

    def commands(self) -> tuple[tuple[tuple[str, ...], str], ...]:
        argv = STEPS[self.step].argv
        return ((argv, self.point), *(self.then or ((argv, ""),)))


CASES = [
    # monitor ingest FILE FILE
    Case("lock.held", INGEST),
    Case("ingest.hashed", INGEST),
    Case("ingest.parsed", INGEST),
    Case("ingest.batch-written", INGEST),  # rows written inside the open transaction, the file not yet done
    Case("ingest.before-commit", INGEST),
    Case("ingest.committed", INGEST, rerun_exit=0),
    Case("ingest.between-files", INGEST, rerun_exit=0),
    Case("ingest.before-commit:2", INGEST, rerun_exit=0),
    # monitor run (2023-W01: two new alerts)
    Case("run.alerts.before-commit", RUN_W01),
    Case("outbox.accepted", RUN_W01, duplicates=1),
    # monitor run (2023-W02: a resolved alert, a new one, one continuing)
    Case("lock.held", RUN_W02),
    Case("ingest.before-commit", RUN_W02),
    Case("run.after-ingest", RUN_W02),
    Case("run.after-detect", RUN_W02),
    Case("run.report.chart", RUN_W02),  # the first chart written, not the second
    Case("run.report.temp-written", RUN_W02, leaves_temp=True),  # the first chart's temp file
    Case("run.report.temp-written:3", RUN_W02, leaves_temp=True),  # report.md's temp file
    Case("run.report.before-index", RUN_W02),
    Case("run.report.written", RUN_W02),
    Case("run.detections-saved", RUN_W02),
    Case("outbox.built", RUN_W02),
    Case("run.alerts.before-commit", RUN_W02),
    Case("run.alerts.committed", RUN_W02),
    Case("outbox.before-send:2", RUN_W02),
    Case("outbox.accepted", RUN_W02, duplicates=1),
    Case("outbox.accepted", RUN_W02, duplicates=1, spawn=True, id="run-W02-outbox.accepted-python-m-monitor"),
    Case("outbox.accepted:2", RUN_W02, duplicates=1),
    Case("outbox.marked", RUN_W02),
    Case("run.before-record", RUN_W02),
    Case("run.recorded", RUN_W02),
    # the outbox was filled, then the user flushes it (killed once, then again), then the week is run again
    Case("run.alerts.committed", RUN_W02, then=((FLUSH, "outbox.accepted"), (FLUSH, ""), (STEPS[RUN_W02].argv, "")),
         duplicates=1, id="flush-killed-at-outbox.accepted"),  # fmt: skip
    Case("outbox.marked", RUN_W02, then=((FLUSH, "lock.held"), (FLUSH, ""), (STEPS[RUN_W02].argv, "")),
         id="flush-killed-at-lock.held"),  # fmt: skip
]


def _case_id(case: Case) -> str:
    return case.id or f"{STEPS[case.step].name.replace(' ', '-')}-{case.point}"


# ---------------------------------------------------------------------------- the folder


def _write_counts(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["week_start", "country", "admin1", "count"])
        out.writerows(rows)


def _history(weeks) -> list[tuple]:
    # deterministic noise around 20 (no RNG: the same file on every machine)
    return [(w.isoformat(), "Syria", a, 20 + (w.toordinal() // 7 * (3 + i) + 5 * i) % 7 - 3)
            for w in weeks for i, a in enumerate(REGIONS)]  # fmt: skip


def make_folder(folder: Path, *, port: int) -> None:
    """The monitored folder: monitor.toml (paths relative to it), data/, an empty inbox/ and reports/."""
    (folder / "inbox").mkdir(parents=True)
    (folder / "reports").mkdir()
    first = _history(w for w in HISTORY if w.year < 2022)
    first.insert(10, ("2020-03-16", "Syria", "Homs", "-3"))  # a bad row: kept in `rejects`
    _write_counts(folder / "data" / "history-2020-2021.csv", first)
    _write_counts(folder / "data" / "history-2022.csv", _history(w for w in HISTORY if w.year == 2022))
    for week, counts in WEEK_COUNTS.items():
        label = f"{week.isocalendar()[0]}-W{week.isocalendar()[1]:02d}"
        _write_counts(folder / "data" / f"{label}.csv", [(week.isoformat(), "Syria", a, n) for a, n in counts.items()])
    (folder / "monitor.toml").write_text(
        f"""
[database]
path = "monitor.db"

[ingest]
inbox = ["inbox"]

[report]
folder = "reports"

[[series]]
name = "is"
title = "IS attacks"
group_by = ["country", "admin1"]
rollup = false
min_events = 0
detector = "trendfinder"

[alerts]
sender = "incident-monitor@example.org"
resolve_after_weeks = 1

[[alerts.routes]]
name = "syria-desk"
recipients = ["{DESK}"]
series = "Syria"
min_level = "warning"

[[alerts.routes]]
name = "duty-officer"
recipients = ["{DUTY}"]
min_level = "alert"

[alerts.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 10
""",
        encoding="utf-8",
    )


def monitor(folder: Path, argv, *, now: str, kill_at: str = "", server: ForkServer | None = None) -> subprocess.CompletedProcess:
    """Run `monitor --config monitor.toml ARGV` in `folder` as a new process, its clock fixed at `now`:
    `python -m monitor`, or a child forked by `server` (see tests/fork_server.py)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_KILL_AT", "MONITOR_CONFIG", "MONITOR_NOW")}
    env.update(SINGLE_THREAD, MONITOR_NOW=now)
    if kill_at:
        env["MONITOR_KILL_AT"] = kill_at
    argv = ["--config", "monitor.toml", *argv]
    if server is not None:
        return server.run(argv, cwd=folder, env=env)
    return subprocess.run([sys.executable, "-m", "monitor", *argv], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _drop(folder: Path, step: Step) -> None:
    if step.drop:
        shutil.copyfile(folder / "data" / step.drop, folder / "inbox" / step.drop)


# ---------------------------------------------------------------------------- what is compared


def dump(db: Path) -> dict[str, list[tuple]]:
    """Every table's rows, sorted, with two things left out:

    * `migrations.applied_at`: SQLite's own clock (`strftime('now')` when the schema was
      created), not the command's (MONITOR_NOW);
    * `runs.id` and `runs.summary`, and repeated rows: `runs` is the log of processes. A run
      killed after recording itself (`run.recorded`) and run again leaves two rows for one
      week; the summary says what that process did (files ingested, messages queued and
      announced), so the re-run of a killed run has less to say. What is compared is each
      distinct (week, started_at, finished_at, status).

    Ids are kept: an INTEGER PRIMARY KEY that a rolled-back insert took is given again, so a
    crash leaves no gap and every reference to an id (ingest_id, outbox ids) must match.
    """
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        out = {}
        for table in sorted(tables):
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            if table == "migrations":
                columns.remove("applied_at")
            if table == "runs":
                columns = ["week", "started_at", "finished_at", "status"]
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            if table == "runs":
                rows = list(set(rows))
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        conn.close()


def _difference(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> str:
    """The rows that differ, table by table (for the failure message)."""
    lines = []
    for table in sorted(set(got) | set(want)):
        a, b = Counter(got.get(table, [])), Counter(want.get(table, []))
        for row in (a - b).elements():
            lines.append(f"{table}: after the crash only: {row!r:.400}")
        for row in (b - a).elements():
            lines.append(f"{table}: uninterrupted only:  {row!r:.400}")
    return "database differs from the uninterrupted run's:\n" + "\n".join(lines)


def integrity(db: Path) -> str:
    conn = sqlite3.connect(str(db))
    try:
        return "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def report_files(folder: Path) -> dict[str, bytes]:
    root = folder / "reports"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def temp_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(".*.tmp"))


def received(server: SmtpServer, since: int) -> list[tuple[str, str, bytes]]:
    """(recipients, Message-ID, bytes) of each message the server accepted since message number `since`."""
    return [(",".join(rcpt), str(msg["Message-ID"]), msg.as_bytes()) for rcpt, msg in server.inbox.messages[since:]]


# ---------------------------------------------------------------------------- the reference


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fork_server():
    server = ForkServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, smtp, fork_server):
    """The uninterrupted sequence: the folder before and after each step, the messages and exit code of each.

    Every case runs in the same folder as the reference (the database and the digests hold
    absolute paths: the inbox files, the report), restored from the copy taken before its step.
    """
    base = tmp_path_factory.mktemp("crash")
    live = base / "folder"
    make_folder(live, port=smtp.port)
    snapshots, messages, codes = [], [], []
    for i, step in enumerate(STEPS):
        before = base / f"before-{i}"
        shutil.copytree(live, before)
        _drop(live, step)
        since = len(smtp.inbox.messages)
        done = monitor(live, step.argv, now=step.now, server=fork_server)
        assert done.returncode == step.exit, f"{step.name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        codes.append(done.returncode)
        messages.append(received(smtp, since))
        snapshots.append((before, dump(live / "monitor.db"), report_files(live)))
    shutil.rmtree(live)
    # the scenario is what the docstring says, or the cases test less than they claim
    assert [len(m) for m in messages] == [0, 2, 2]
    subjects = [str(email.message_from_bytes(b, policy=default_policy)["Subject"]) for _, _, b in messages[RUN_W02]]
    assert all("1 new surge (Hama)" in s and "1 resolved" in s for s in subjects), subjects
    assert {f for f in snapshots[RUN_W02][2] if f.startswith("2023-W02/charts/")} == {
        "2023-W02/charts/is-country-syria-admin1-hama.png", "2023-W02/charts/is-country-syria-admin1-idlib.png"}
    return live, snapshots, messages, codes


# ---------------------------------------------------------------------------- the cases


def test_every_named_point_is_covered():
    """At least 20 distinct points, each of them placed in the code (a point never reached fails its case)."""
    names = {c.point.partition(":")[0] for c in CASES}
    assert len(names) >= 20, sorted(names)
    source = "\n".join(p.read_text(encoding="utf-8") for p in (Path(__file__).parents[1] / "monitor").rglob("*.py"))
    assert not [n for n in names if f'faults.point("{n}")' not in source]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_killed_and_run_again_ends_as_an_uninterrupted_run(case, reference, smtp, fork_server):
    folder, snapshots, ref_messages, ref_codes = reference
    before, ref_dump, ref_reports = snapshots[case.step]
    step = STEPS[case.step]
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(before, folder)
    _drop(folder, step)
    since = len(smtp.inbox.messages)

    log = []  # what each command did, printed for `pytest -s` (the table of the crash cases)
    for argv, kill_at in case.commands():
        done = monitor(folder, argv, now=step.now, kill_at=kill_at, server=None if case.spawn else fork_server)
        what = f"{' '.join(argv)}{f' killed at {kill_at}' if kill_at else ''}"
        if kill_at:  # a point never reached would let the command finish: that must fail, not pass
            assert done.returncode == -signal.SIGKILL, f"{what}: exit {done.returncode}, not SIGKILL\n{done.stdout}\n{done.stderr}"
            if kill_at == case.point:
                assert bool(temp_files(folder)) == case.leaves_temp, temp_files(folder)
        else:
            expected = 0 if argv == FLUSH else case.rerun_exit if case.rerun_exit is not None else ref_codes[case.step]
            assert done.returncode == expected, f"{what}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        log.append(f"{what}: exit {done.returncode}" + "".join(f"; {line}" for line in done.stdout.splitlines()
                                                                if "delivered" in line or "nothing" in line))  # fmt: skip

    assert integrity(folder / "monitor.db") == "ok"
    got_dump = dump(folder / "monitor.db")
    assert got_dump == ref_dump, _difference(got_dump, ref_dump)
    assert temp_files(folder) == []
    reports = report_files(folder)
    assert sorted(reports) == sorted(ref_reports)
    assert [name for name in reports if reports[name] != ref_reports[name]] == []

    got, want = Counter(received(smtp, since)), Counter(ref_messages[case.step])
    assert not (want - got), "a message was lost"
    extra = got - want
    assert not (extra.keys() - want.keys()), "a message the uninterrupted run did not send"
    assert sum(extra.values()) == case.duplicates, f"duplicates: {[(m[0], m[1]) for m in extra.elements()]}"
    print(f"\n{_case_id(case)} | " + " → ".join(log) + f" | duplicates: {[(m[0], m[1]) for m in extra.elements()] or 'none'}")
