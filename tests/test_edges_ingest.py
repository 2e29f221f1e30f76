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

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli
from tests.helpers_incidents import write_incidents

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
