"""Edges of ingest and the run lock (issue 12, items 4, 5 and 6), driven through the real thing.

Real SQLite files and `monitor` commands: in this process through click's CliRunner where one
command at a time is enough, as separate `python -m monitor` processes where two must overlap
(tests/test_overlap.py's harness: a pause point of monitor.faults holds one at a known place).

* item 5: a file whose rows were all rejected is not "done": after fixing the mapping it is read
  again; `monitor ingest --again` re-reads a file already ingested.
* item 4: the run lock is that of the database's real path, so a symlinked database path contends
  with its target; a database with other hard links is refused with the fix.
* item 6: the sha256 logged is that of the bytes parsed, read in one pass: a file rewritten while
  it is ingested is not recorded as the whole file, and a pipe (/dev/stdin) can be ingested.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.errors import LockError, StoreError
from monitor.lock import lock_path, run_lock
from tests.helpers_incidents import write_incidents
from tests.test_overlap import Monitor, Pause, held_message, procs  # noqa: F401 (procs: the fixture)

NOW = "2023-03-06T06:00:00+00:00"


def cli_run(*args: str, config: Path, now: str = NOW) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], env={"MONITOR_NOW": now})
    return result.exit_code, result.stdout, result.stderr


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


MAPPING_HEADER = ["ref", "day", "province", "killed"]


def mapping_config(folder: Path, *, date_format: str, db: str = "m.db") -> Path:
    path = folder / "monitor.toml"
    path.write_text(
        f'[database]\npath = "{db}"\n'
        '[[ingest.mappings]]\nname = "ngo"\nsource = "ngo-reports"\nmatch_header = ["ref", "day", "province", "killed"]\n'
        f'id_column = "ref"\ndate_column = "day"\ndate_format = "{date_format}"\n'
        'columns = { admin1 = "province", fatalities = "killed" }\nconstants = { country = "Syria", event_type = "Battles" }\n',
        encoding="utf-8",
    )
    return path


def write_mapped(path: Path, rows: int) -> Path:
    lines = [",".join(MAPPING_HEADER)] + [f"R{i},2023-02-{1 + i % 28:02d},Homs,{i % 3}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- item 5: fixable rejects can be fixed -------------------------------------------------------------------


def test_a_file_whose_rows_were_all_rejected_is_read_again_after_the_mapping_is_fixed(tmp_path):
    data = write_mapped(tmp_path / "ngo.csv", 40)
    config = mapping_config(tmp_path, date_format="%d/%m/%Y")  # the file says 2023-02-01: every row rejected
    code, out, err = cli_run("ingest", str(data), config=config)
    assert code == 1 and f"{data}: generic, 40 rows read, 0 inserted, 0 updated, 0 unchanged, 40 rejected" in out
    assert f"{data}: line 2: day '2023-02-01' is not a date (expected date format '%d/%m/%Y'" in err

    config = mapping_config(tmp_path, date_format="%Y-%m-%d")  # the fix
    code, out, err = cli_run("ingest", str(data), config=config)
    assert (code, err) == (0, ""), out + err
    assert out == f"{data}: generic, 40 rows read, 40 inserted, 0 updated, 0 unchanged, 0 rejected\n"
    db = tmp_path / "m.db"
    assert query(db, "SELECT count(*) FROM incidents") == [(40,)]
    # the first ingest's rejects are kept with their reason; both ingests are in the log
    assert query(db, "SELECT rows_read, inserted, rejected FROM ingests ORDER BY id") == [(40, 0, 40), (40, 40, 0)]
    reasons = query(db, "SELECT line, reason FROM rejects ORDER BY id LIMIT 1")
    assert reasons == [(2, "day '2023-02-01' is not a date (expected date format '%d/%m/%Y', e.g. 31/01/2023)")]

    code, out, _ = cli_run("ingest", str(data), config=config)  # now it is done
    assert (code, out) == (0, f"{data}: already ingested (same sha256), nothing to do\n")


def test_again_reads_a_file_already_ingested_and_upserts_its_rows(tmp_path):
    """The wrong-clock case: rows "in the future" at the first ingest are taken by --again once the clock is right."""
    data = tmp_path / "acled.csv"
    rows = write_incidents(data, ["Homs"], prefix="SYR", weeks=10)  # 2021-01-04 .. 2021-03-14
    config = mapping_config(tmp_path, date_format="%Y-%m-%d")
    wrong_clock = "2021-02-28T12:00:00+00:00"  # two weeks of the file are after it
    code, out, err = cli_run("ingest", str(data), config=config, now=wrong_clock)
    assert code == 1 and f"{data}: acled, {rows} rows read, 24 inserted, 0 updated, 0 unchanged, 6 rejected" in out
    assert "events cannot be in the future" in err

    code, out, _ = cli_run("ingest", str(data), config=config)  # some rows were taken: plain ingest skips it
    assert (code, out) == (0, f"{data}: already ingested (same sha256), nothing to do\n")

    code, out, err = cli_run("ingest", "--again", str(data), config=config)
    assert (code, err) == (0, ""), out + err
    assert out == f"{data}: acled, {rows} rows read, 6 inserted, 0 updated, 24 unchanged, 0 rejected\n"
    db = tmp_path / "m.db"
    assert query(db, "SELECT count(*) FROM incidents") == [(rows,)]
    assert query(db, "SELECT count(*) FROM rejects") == [(6,)]  # the first ingest's rejects stay

    # --again upserts: a revised row is updated in place
    text = data.read_text(encoding="utf-8").replace("SYR1,2021-01-04,Battles,Armed clash", "SYR1,2021-01-05,Battles,Armed clash")
    data.write_text(text, encoding="utf-8")
    code, out, _ = cli_run("ingest", "--again", str(data), config=config)
    assert (code, out) == (0, f"{data}: acled, {rows} rows read, 0 inserted, 1 updated, {rows - 1} unchanged, 0 rejected\n")
    assert query(db, "SELECT event_date FROM incidents WHERE source_id = 'SYR1'") == [("2021-01-05",)]


# ---- item 4: links do not defeat the run lock ---------------------------------------------------------------


def plain_config(folder: Path, db: str) -> Path:
    path = folder / "monitor.toml"
    path.write_text(f'[database]\npath = "{db}"\n', encoding="utf-8")
    return path


def clock() -> datetime:
    return datetime(2023, 3, 6, 6, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_symlinked_database_path_takes_the_lock_of_its_target(tmp_path, link):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "m.db"
    sqlite3.connect(target).close()
    if link == "file":
        os.symlink(target, tmp_path / "link.db")
        via = tmp_path / "link.db"
    else:
        os.symlink(tmp_path / "data", tmp_path / "linked")
        via = tmp_path / "linked" / "m.db"
    assert lock_path(via) == lock_path(target) == tmp_path / "data" / "m.db.lock"
    with run_lock(target, clock=clock):
        with pytest.raises(LockError, match="another incident-monitor run holds"):
            with run_lock(via, clock=clock):
                pass


def test_an_ingest_through_a_symlink_waits_for_a_run_on_the_target(tmp_path, procs):
    """Two real processes, one naming the database by its path, one through a symlink: the second exits 5."""
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "data" / "m.db", tmp_path / "link.db")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    direct, linked = plain_config(tmp_path / "a", "../data/m.db"), plain_config(tmp_path / "b", "../link.db")
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    rows = write_incidents(first, ["Homs"], prefix="A", weeks=20) + write_incidents(second, ["Hama"], prefix="B", weeks=20)
    pause = Pause(tmp_path / "pause")
    holder = Monitor("ingest", str(first), config=direct, pause="lock.acquired", pause_dir=pause.folder)
    procs.append(holder)
    assert pause.reached("lock.acquired", by=procs) == holder.pid
    intruder = Monitor("ingest", str(second), config=linked)
    procs.append(intruder)
    assert intruder.finish() == (5, "", held_message(tmp_path / "data", holder.pid))
    pause.release("lock.acquired")
    assert holder.finish()[0] == 0
    code, out, err = Monitor("ingest", str(second), config=linked).finish()  # now it is free: through the link
    assert code == 0 and "60 inserted" in out, out + err
    assert query(tmp_path / "data" / "m.db", "SELECT count(*) FROM incidents") == [(rows,)]
    assert not (tmp_path / "link.db.lock").exists()


def test_a_hard_linked_database_is_refused_with_the_fix(tmp_path, procs):
    """A run holds the lock of data/m.db; a hard link to it would have its own lock: the run through it is refused."""
    (tmp_path / "data").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    write_incidents(first, ["Homs"], prefix="A", weeks=20)
    write_incidents(second, ["Hama"], prefix="B", weeks=20)
    direct, linked = plain_config(tmp_path / "a", "../data/m.db"), plain_config(tmp_path / "b", "../other.db")
    assert cli_run("ingest", str(first), config=direct)[0] == 0  # the database exists
    pause = Pause(tmp_path / "pause")
    holder = Monitor("ingest", "--again", str(first), config=direct, pause="lock.acquired", pause_dir=pause.folder)
    procs.append(holder)
    assert pause.reached("lock.acquired", by=procs) == holder.pid
    os.link(tmp_path / "data" / "m.db", tmp_path / "other.db")
    before = query(tmp_path / "data" / "m.db", "SELECT count(*) FROM ingests")
    intruder = Monitor("ingest", str(second), config=linked)
    procs.append(intruder)
    code, out, err = intruder.finish()
    assert (code, out) == (1, ""), err
    assert err == (f"error: {tmp_path / 'other.db'}: the database file has 1 other hard link(s), so two runs could "
                   "write it at once under different lock files; make a copy instead of a hard link\n")  # fmt: skip
    assert query(tmp_path / "data" / "m.db", "SELECT count(*) FROM ingests") == before  # nothing written through the link
    pause.release("lock.acquired")
    assert holder.finish()[0] == 0
    # while the link exists, no run takes the database by either name
    with pytest.raises(StoreError, match="make a copy instead of a hard link"):
        with run_lock(tmp_path / "data" / "m.db", clock=clock):
            pass
    os.unlink(tmp_path / "other.db")
    with run_lock(tmp_path / "data" / "m.db", clock=clock):
        pass


# ---- item 6: the hash is that of the bytes parsed --------------------------------------------------------------


REWRITE = """import sys
path, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(sys.argv[4], "rb").read()
with open(path, "r+b") as f:  # in place, as a sync tool or an exporter rewriting its output does
    if start == 0:
        f.truncate(0)
    f.seek(start)
    f.write(data[start:end])
"""


def rewrite(path: Path, original: Path, start: int, end: int) -> None:
    """Another process writes bytes start..end of `original` into `path` (truncating it first when start is 0)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", REWRITE, str(path), str(start), str(end), str(original)], check=True, timeout=60)


def test_a_file_rewritten_in_place_during_an_ingest_is_not_recorded_as_whole(tmp_path, procs, monkeypatch):
    """Held between reading the file and parsing it, `monitor ingest` sees another process truncate the file and
    write its first half back; the rest follows later. What was stored must be what the logged sha256 says."""
    import hashlib

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))  # the ingest process's temporary copy goes here
    config = plain_config(tmp_path, "m.db")
    data, original = tmp_path / "acled.csv", tmp_path / "original.csv"
    rows = write_incidents(original, ["Homs", "Hama"], prefix="SYR", weeks=60)
    data.write_bytes(original.read_bytes())
    size = original.stat().st_size
    pause = Pause(tmp_path / "pause")
    ingest = Monitor("ingest", str(data), config=config, pause="ingest.hashed", pause_dir=pause.folder)
    procs.append(ingest)
    assert pause.reached("ingest.hashed", by=procs) == ingest.pid
    rewrite(data, original, 0, size // 2)  # the rewrite begins while the ingest is under way
    pause.release("ingest.hashed")
    code, out, err = ingest.finish()
    rewrite(data, original, size // 2, size)  # ... and ends: the same file as before
    assert data.read_bytes() == original.read_bytes()

    db = tmp_path / "m.db"
    stored = query(db, "SELECT count(*) FROM incidents")[0][0]
    [(logged, rows_read)] = query(db, "SELECT sha256, rows_read FROM ingests")
    assert (code, err) == (0, ""), out + err
    assert (stored, rows_read) == (rows, rows)  # the bytes read once, before the rewrite
    assert logged == hashlib.sha256(original.read_bytes()).hexdigest()
    assert list(spool.iterdir()) == []  # the temporary copy is gone

    code, out, _ = cli_run("ingest", str(data), config=config)
    assert (code, out) == (0, f"{data}: already ingested (same sha256), nothing to do\n")
    assert query(db, "SELECT count(*) FROM incidents") == [(rows,)]


def test_a_pipe_can_be_ingested(tmp_path):
    """`cat FILE | monitor ingest /dev/stdin`: the stream is read once, hashed and parsed; the same bytes again are skipped."""
    import subprocess
    import sys

    from tests.test_overlap import ROOT, _env

    config = plain_config(tmp_path, "m.db")
    data = tmp_path / "acled.csv"
    rows = write_incidents(data, ["Homs"], prefix="SYR", weeks=30)
    command = f"cat {data} | {sys.executable} -m monitor --config {config} ingest /dev/stdin"
    done = subprocess.run(command, shell=True, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    assert done.stdout == f"/dev/stdin: acled, {rows} rows read, {rows} inserted, 0 updated, 0 unchanged, 0 rejected\n"
    assert query(tmp_path / "m.db", "SELECT file, rows_read FROM ingests") == [("/dev/stdin", rows)]

    again = subprocess.run(command, shell=True, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert (again.returncode, again.stdout) == (0, "/dev/stdin: already ingested (same sha256), nothing to do\n")
    code, out, _ = cli_run("ingest", str(data), config=config)  # the file itself: the same bytes
    assert (code, out) == (0, f"{data}: already ingested (same sha256), nothing to do\n")

    # an empty pipe is refused as empty, as an empty file is
    command = f"printf '' | {sys.executable} -m monitor --config {config} ingest /dev/stdin"
    done = subprocess.run(command, shell=True, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: /dev/stdin: line 1: the file is empty (expected a CSV file with a header row)\n"
