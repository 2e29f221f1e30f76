"""Bad input (issue 5): a corpus of malformed files, configs and databases, driven through the real CLI.

Every case states the command, the exit code, what its one error line must say (the file and
line, or the config key, and the fix) and what must have happened to the database: nothing
(same bytes, same rows) when the input was refused; the good rows kept and each bad row in
`rejects` with its line and reason when only rows were rejected. The corpus is
`tests/data/bad/` (see its README.md); inputs that are large, binary or machine-specific
(a 10 MB field, random bytes, a folder, a closed SMTP port) are generated into tmp_path.
Cases where a traceback could escape run as a real `python -m monitor` subprocess.

Set BAD_INPUTS_TABLE=path.md to write the table of cases and the messages they produced.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from tests.smtp_server import free_port

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
BAD = DATA / "bad"
#: The ingest time of the seed file (a fixed clock; the CLI cases run at the wall clock).
SEED_NOW = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)
#: A good file every case may ingest when the input is not the point (it must change the database if let through).
GOOD = "bad/crlf_line_endings.csv"
ANY_DAY = r"\d{4}-\d{2}-\d{2}"


@dataclass(frozen=True)
class Case:
    """One bad input: how it is given, what the CLI must answer, and what the database must look like after."""

    name: str
    what: str  # the kind of bad input (the closing note's first column)
    args: tuple[str, ...]  # command after the global options; {input} {db} {tmp} {config} are filled in
    exit: int
    says: tuple[str, ...] = ()  # fragments of the one error line ({input} etc. filled in)
    fix: str = ""  # the part that says what is accepted or how to fix it
    input: str = ""  # a corpus file under tests/data, or gen:<name> (made by GENERATORS)
    config: str = ""  # a corpus config under tests/data/bad/config ("" = an empty config: the defaults)
    db: str = "unchanged"  # unchanged | rows (good rows kept, bad rows in rejects) | accepted | usage
    rejects: tuple[tuple[int, str], ...] = ()  # (line, reason; a regex when it starts with ^)
    kept: tuple[str, ...] = ()  # event ids in the database afterwards
    subprocess: bool = False


# ---- inputs made at test time --------------------------------------------------------------


def _binary_junk(tmp: Path) -> Path:
    rng = random.Random(5)  # gzip magic, then bytes 0..255 with NULs: what a mis-saved .gz looks like
    path = tmp / "export.csv"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(rng.randrange(256) for _ in range(4096)))
    return path


def _utf16(tmp: Path) -> Path:
    path = tmp / "unicode_text_export.csv"
    path.write_bytes((BAD / "seed_acled.csv").read_text(encoding="utf-8").replace("SEED", "U16").encode("utf-16"))
    return path


def _ten_mb_field(tmp: Path) -> Path:
    lines = (BAD / "seed_acled.csv").read_text(encoding="utf-8").replace("SEED", "BIG").splitlines()
    header, rows = lines[0], lines[1:]
    huge = rows[1].replace("Clashes reported.", '"' + "x" * 10_000_000 + '"')
    path = tmp / "ten_mb_field.csv"
    path.write_text("\n".join([header, rows[0], huge, rows[2]]) + "\n", encoding="utf-8")
    return path


def _folder(tmp: Path) -> Path:
    path = tmp / "inbox"
    path.mkdir()
    (path / "acled.csv").write_bytes((BAD / "seed_acled.csv").read_bytes())
    return path


def _not_sqlite(tmp: Path) -> Path:
    path = tmp / "monitor.db"
    path.write_text("event_id_cnty,event_date\nSYR1,2023-02-06\n", encoding="utf-8")  # a CSV saved under the db's name
    return path


def _newer_schema(tmp: Path) -> Path:
    path = tmp / "monitor.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    return path


def _damaged(tmp: Path) -> Path:
    path = tmp / "monitor.db"
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xff" * (len(data) - 100))  # the SQLite header, then garbage
    return path


GENERATORS = {
    "binary_junk": _binary_junk,
    "utf16": _utf16,
    "ten_mb_field": _ten_mb_field,
    "folder": _folder,
    "missing": lambda tmp: tmp / "acled_2023-02.csv",
    "not_sqlite": _not_sqlite,
    "newer_schema": _newer_schema,
    "damaged": _damaged,
    "db_in_missing_folder": lambda tmp: tmp / "no_such_folder" / "monitor.db",
}

#: The seed database file is replaced by these (the input is the database).
DB_INPUTS = ("not_sqlite", "newer_schema", "damaged")

ACCEPTED_ACLED = "(expected YYYY-MM-DD or DD/MM/YYYY)"
WHOLE = "(expected a whole number >= 0)"
FUTURE = rf"is after the ingest time \({ANY_DAY}\): events cannot be in the future$"

CASES = [
    # ---- files refused whole: the database keeps its bytes --------------------------------------------
    Case("empty_file", "empty file", ("ingest", "{input}"), 1, ("{input}: line 1: the file is empty",),
         "(expected a CSV file with a header row)", input="empty.csv"),
    Case("whitespace_only", "only blank lines", ("ingest", "{input}"), 1, ("{input}: line 1: the file is empty",),
         "(expected a CSV file with a header row)", input="bad/whitespace_only.csv"),
    Case("header_only", "header only", ("ingest", "{input}"), 1, ("{input}: line 2: no data rows after the header",),
         "(expected at least one acled record)", input="acled_header_only.csv"),
    Case("binary_junk", "binary junk", ("ingest", "{input}"), 1, ("{input}: line 1: binary data (a NUL byte), not CSV text",),
         "(expected a UTF-8 CSV file with a header row)", input="gen:binary_junk", subprocess=True),
    Case("wrong_encoding", "wrong encoding (current ACLED in cp1252)", ("ingest", "{input}"), 1,
         ("{input}: line 2: byte 0x92 is not UTF-8 text",), "(save the file as UTF-8; only legacy ACLED files may be cp1252)",
         input="acled_cp1252.csv"),
    Case("utf16", "wrong encoding (UTF-16 'Unicode text' export)", ("ingest", "{input}"), 1,
         ("{input}: line 1: the file is UTF-16 text",), "save it as 'CSV UTF-8'", input="gen:utf16"),
    Case("semicolon", "semicolon separator", ("ingest", "{input}"), 1,
         ("{input}: line 1: header 'event_id_cnty;event_date;", "is separated by ';', not by commas"),
         "(save the file as comma-separated CSV)", input="bad/semicolon.csv"),
    Case("missing_column", "missing required column", ("ingest", "{input}"), 1,
         ("{input}: line 1: missing required column 'fatalities' for format acled",),
         "(a acled file needs: event_id_cnty, event_date, event_type, actor1, country, fatalities)",
         input="acled_missing_fatalities.csv"),
    Case("duplicate_columns", "duplicate columns", ("ingest", "{input}"), 1,
         ("{input}: line 1: column 'notes' appears more than once in the header",), "(column names must be unique)",
         input="bad/duplicate_columns.csv"),
    Case("unknown_header", "a CSV of no known format", ("ingest", "{input}"), 1,
         ("{input}: line 1: header 'Date,Region,Incidents' matches no known format",),
         "(accepted: acled (event_id_cnty, event_date, event_type, actor1, country, fatalities, ...); acled-legacy",
         input="bad/unknown_header.csv"),
    Case("counts_unknown_column", "counts file with an unknown column", ("ingest", "{input}"), 1,
         ("{input}: line 1: column 'province' is not allowed in a counts file",),
         "(allowed: week_start, country, admin1, admin2, event_type, sub_event_type, actor, count, fatalities, source)",
         input="bad/counts_unknown_column.csv"),
    Case("wrong_format_option", "--format that does not fit the file", ("ingest", "--format", "ucdp", "{input}"), 1,
         ("{input}: line 1: missing required columns 'id', 'date_start', 'type_of_violence', 'side_a', 'side_b', 'best' for format ucdp",),
         "(a ucdp file needs: id, date_start, type_of_violence, side_a, side_b, country, best)", input="bad/future_dates.csv"),
    Case("generic_without_mapping", "--format generic with no mapping configured", ("ingest", "--format", "generic", "{input}"), 1,
         ("{input}: line 1: format generic needs a column mapping",), "([[ingest.mappings]] in the config); none is configured",
         input="bad/future_dates.csv"),
    Case("folder_as_file", "a folder passed as a file", ("ingest", "{input}"), 1, ("{input}: is a folder, not a file",),
         "(name the files in it, e.g. {input}/*.csv)", input="gen:folder"),
    Case("missing_file", "a file that does not exist", ("ingest", "{input}"), 1, ("{input}: no such file",),
         "(check the path and the name)", input="gen:missing"),
    # ---- rows rejected: the good rows are kept, each bad row is in `rejects` ----------------------------
    Case("bad_dates", "unparseable and impossible dates", ("ingest", "{input}"), 1, db="rows", input="bad/bad_dates.csv",
         rejects=((2, f"event_date 'yesterday' is not a date {ACCEPTED_ACLED}"),
                  (3, f"event_date '31/02/2023' is not a date {ACCEPTED_ACLED}"),
                  (4, f"event_date '2023-02-30' is not a date {ACCEPTED_ACLED}"),
                  (5, f"event_date is empty {ACCEPTED_ACLED}")), kept=("BD5", "BD6")),
    Case("future_dates", "dates in the future", ("ingest", "{input}"), 1, db="rows", input="bad/future_dates.csv",
         rejects=((2, f"^event_date '2999-01-01' {FUTURE}"),), kept=("FD2",)),
    Case("bad_fatalities", "negative, non-numeric, fractional, 64-bit overflowing fatalities", ("ingest", "{input}"), 1,
         db="rows", input="bad/bad_fatalities.csv",
         rejects=((2, f"fatalities '-3' is negative {WHOLE}"), (3, f"fatalities 'many' is not a number {WHOLE}"),
                  (4, f"fatalities '2.5' is not a whole number {WHOLE}"),
                  (5, "fatalities '99999999999999999999' is not a whole number >= 0 (expected 0..9223372036854775807)")),
         kept=("BF5",)),
    Case("duplicate_ids", "duplicate event ids inside one file, an empty id", ("ingest", "{input}"), 1, db="rows",
         input="bad/duplicate_ids.csv",
         rejects=((4, "duplicate event_id_cnty 'DI1' (first seen on line 2; the first is kept)"),
                  (5, "event_id_cnty is empty (every row needs an event id)")), kept=("DI1", "DI2")),
    Case("truncated_last_line", "truncated last line", ("ingest", "{input}"), 1, db="rows", input="bad/truncated_last_line.csv",
         rejects=((3, "has 10 fields, expected 13 as in the header"),), kept=("TL1",)),
    Case("unbalanced_quote", "an unbalanced quote", ("ingest", "{input}"), 1, db="rows", input="bad/unbalanced_quote.csv",
         rejects=((3, "has 11 fields, expected 13 as in the header; the record runs from line 3 to 4: check for an unbalanced quote"),),
         kept=("UQ1",)),
    Case("ten_mb_field", "a 10 MB field", ("ingest", "{input}"), 1, db="rows", input="gen:ten_mb_field", subprocess=True,
         rejects=((3, "not valid CSV: field larger than field limit (131072)"),), kept=("BIG1", "BIG3")),
    Case("ucdp_bad_dates", "UCDP GED: impossible, DD/MM, future and reversed dates, bad type, negative deaths",
         ("ingest", "{input}"), 1, db="rows", input="bad/ucdp_bad_dates.csv",
         rejects=((3, "date_start '2019-02-30' is not a date (expected YYYY-MM-DD)"),
                  (4, "date_end '2019-01-01' is before date_start 2019-01-05 (expected an end on or after the start)"),
                  (5, "date_start '02/01/2019' is not a date (expected YYYY-MM-DD)"),
                  (6, f"^date_start '2999-01-01' {FUTURE}"),
                  (7, "type_of_violence '4' is not a UCDP violence type (expected 1, 2 or 3)"),
                  (8, f"best '-1' is negative {WHOLE}")), kept=("101",)),
    Case("counts_negative", "counts file: negative and non-numeric counts", ("ingest", "{input}"), 1, db="rows",
         input="bad/counts_negative.csv",
         rejects=((3, f"count '-2' is negative {WHOLE}"), (4, f"count 'lots' is not a number {WHOLE}")),
         kept=("2023-01-02|Homs", "2023-01-16|Homs", "2023-01-23|Homs")),
    # ---- accepted as they are --------------------------------------------------------------------------
    Case("crlf", "CRLF line endings (accepted)", ("ingest", "{input}"), 0, db="accepted", input="bad/crlf_line_endings.csv",
         kept=("CR1", "CR2")),
    Case("bom", "UTF-8 with a BOM (accepted)", ("ingest", "{input}"), 0, db="accepted", input="bad/utf8_bom.csv", kept=("BOM1",)),
    Case("legacy_cp1252", "legacy ACLED in cp1252 with CRLF (accepted)", ("ingest", "{input}"), 0, db="accepted",
         input="bad/acled_legacy_cp1252.csv", kept=("1SYR", "2SYR")),
    # ---- configs: refused before anything is read -------------------------------------------------------
    Case("config_unknown_key", "config: unknown key", ("ingest", "{input}"), 1,
         ("{config}: unknown key 'report.histroy_weeks'",), "(did you mean 'history_weeks'?)", input=GOOD,
         config="unknown_key.toml"),
    Case("config_unknown_table", "config: unknown table", ("ingest", "{input}"), 1, ("{config}: unknown key 'reprot'",),
         "(did you mean 'report'?)", input=GOOD, config="unknown_table.toml"),
    Case("config_wrong_type_integer", "config: wrong type (text for an integer)", ("ingest", "{input}"), 1,
         ("{config}: report.history_weeks: ",), "expected an integer (a whole number), got 'abc'", input=GOOD,
         config="wrong_type_integer.toml"),
    Case("config_wrong_type_boolean", "config: wrong type (text for a boolean)", ("ingest", "{input}"), 1,
         ("{config}: alerts.enabled: ",), "expected true or false, got 'yes'", input=GOOD, config="wrong_type_boolean.toml"),
    Case("config_wrong_type_list", "config: wrong type (text for a list)", ("ingest", "{input}"), 1,
         ("{config}: alerts.recipients: ",), "expected a list, e.g. [\"a\", \"b\"] (or [[...]] blocks), got 'desk@example.org'",
         input=GOOD, config="wrong_type_list.toml"),
    Case("config_out_of_range", "config: value out of range", ("ingest", "{input}"), 1, ("{config}: report.history_weeks = 52",),
         "must be at least 104", input=GOOD, config="out_of_range.toml"),
    Case("config_toml_syntax", "config: TOML syntax error", ("ingest", "{input}"), 1,
         ("{config}: line 4, column 8: not valid TOML: Expected ']' at the end of a table declaration",),
         "(TOML syntax: https://toml.io)", input=GOOD, config="toml_syntax.toml"),
    Case("config_unknown_detector", "config: unknown detector", ("ingest", "{input}"), 1,
         ("{config}: series 'violence': unknown detector 'farington'",), "(did you mean 'farrington'?); valid detectors: ",
         input=GOOD, config="unknown_detector.toml"),
    Case("config_unknown_parameter", "config: unknown detector parameter", ("ingest", "{input}"), 1,
         ("{config}: [detectors.farrington]: detector farrington: parameter 'alpah' is unknown",), "(did you mean 'alpha'?)",
         input=GOOD, config="unknown_parameter.toml"),
    Case("config_bad_cron", "config: bad cron expression", ("ingest", "{input}"), 1,
         ("{config}: schedule.cron = '0 25 * * mon': hour '25': the last value (25) is higher than the maximum value (23)",),
         "the fields are minute hour day month weekday, e.g. '0 6 * * mon'", input=GOOD, config="bad_cron.toml"),
    Case("config_cron_weekday_number", "config: cron weekday as a number", ("ingest", "{input}"), 1,
         ("{config}: schedule.cron = '0 6 * * 1'",), "write weekdays as names (mon..sun)", input=GOOD,
         config="cron_numeric_weekday.toml"),
    Case("config_bad_timezone", "config: bad time zone", ("ingest", "{input}"), 1,
         ("{config}: schedule.timezone = 'Middle East/Damascus': is not an IANA time zone",),
         "(e.g. UTC, Europe/Berlin, Asia/Damascus)", input=GOOD, config="bad_timezone.toml"),
    Case("config_password", "config: SMTP password in the file", ("ingest", "{input}"), 1,
         ("{config}: alerts.smtp.password: the password is never read from the config file",),
         "remove it and set the environment variable MONITOR_SMTP_PASSWORD (alerts.smtp.password_env) or name a file only you can read", input=GOOD, config="password_in_file.toml"),
    Case("config_smtp_without_recipients", "config: SMTP host without recipients", ("ingest", "{input}"), 1,
         ("{config}: alerts: recipients is empty but smtp.host is set",), "list at least one address (or add [[alerts.routes]])",
         input=GOOD, config="smtp_without_recipients.toml"),
    Case("config_bad_group_by", "config: unknown group_by dimension", ("ingest", "{input}"), 1,
         ("{config}: series[0].group_by[0] = 'province'",),
         "expected 'country', 'admin1', 'admin2', 'event_type', 'sub_event_type' or 'actor'", input=GOOD, config="bad_group_by.toml"),
    Case("config_missing", "config file that does not exist", ("--config", "{tmp}/monitor.toml", "ingest", "{input}"), 1,
         ("{tmp}/monitor.toml: config file not found",), "(give --config PATH or set $MONITOR_CONFIG)", input=GOOD),
    # ---- databases --------------------------------------------------------------------------------------
    Case("db_not_sqlite", "a database that is not SQLite", ("ingest", "{input}"), 1, ("{db}: not an SQLite database",),
         "(point database.path at a monitor database or a new file)", input=GOOD, config="", db="input:not_sqlite",
         subprocess=True),
    Case("db_newer_schema", "a database from a newer schema version", ("ingest", "{input}"), 1,
         ("{db}: database schema version 99 is newer than this program (knows up to ",), "upgrade incident-monitor",
         input=GOOD, db="input:newer_schema", subprocess=True),
    Case("db_damaged", "a damaged database (SQLite header, garbage pages)", ("check",), 1,
         ("{db}: cannot open the database: database disk image is malformed",),
         "(the file is damaged: restore it from a backup, or point --db / database.path at another file)",
         db="input:damaged", subprocess=True),
    Case("db_in_missing_folder", "a database in a folder that does not exist", ("--db", "{tmp}/no_such_folder/monitor.db", "ingest", "{input}"), 1,
         ("{tmp}/no_such_folder/monitor.db.lock: cannot create the lock file: folder {tmp}/no_such_folder does not exist",),
         "(create it or fix database.path)", input=GOOD),
    Case("db_missing_for_a_read", "a read-only command on a database that does not exist", ("--db", "{tmp}/nothere.db", "check"), 1,
         ("database {tmp}/nothere.db does not exist",), "ingest files first (`monitor ingest FILE...`)"),
    # ---- usage errors: exit 2, nothing done --------------------------------------------------------------
    Case("week_60", "--week 2023-W60", ("check", "--week", "2023-W60"), 2,
         ("Invalid value for --week: week '2023-W60' does not exist",), "(ISO years have 52 or 53 weeks)", db="usage"),
    Case("week_text", "--week that is not a week", ("report", "--week", "last week"), 2,
         ("Invalid value for --week: week 'last week' is not a week",), "write YYYY-Www (e.g. 2023-W08) or a date YYYY-MM-DD",
         db="usage"),
    Case("run_week_0", "monitor run --week 2023-W00", ("run", "--week", "2023-W00"), 2,
         ("Invalid value for --week: week '2023-W00' does not exist",), "(ISO years have 52 or 53 weeks)", db="usage"),
    Case("backtest_from", "backtest --from that is no week", ("backtest", "--from", "2023-13"), 2,
         ("Invalid value for --from: week '2023-13' is not a week",), "write YYYY-Www", db="usage"),
    Case("format_option", "ingest --format of no known format", ("ingest", "--format", "excel", "{input}"), 2,
         ("Invalid value for '--format': 'excel' is not one of",), "'auto', 'acled', 'acled-legacy', 'acled-deletions', 'acled-aggregated', 'ucdp', 'ucdp-replaced', 'generic', 'counts'",
         input=GOOD, db="usage"),
    Case("ingest_no_file", "ingest without a file", ("ingest",), 2, ("Missing argument 'FILES...'",), "Try 'monitor ingest --help'",
         db="usage"),
    Case("db_is_folder", "--db naming a folder", ("--db", "{tmp}", "ingest", "{input}"), 2,
         ("Invalid value for '--db': File '{tmp}' is a directory",), "Try 'monitor --help' for help", input=GOOD, db="usage"),
]


# ---- running the CLI -------------------------------------------------------------------------------


def run_cli(args: list[str], *, cwd: Path, real: bool) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `monitor ARGS`: a subprocess (`python -m monitor`) or click's CliRunner."""
    if real:
        env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
        done = subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True, cwd=cwd, env=env,
                              timeout=300)  # fmt: skip
        return done.returncode, done.stdout, done.stderr
    result = CliRunner().invoke(cli, args, env={"MONITOR_CONFIG": None}, prog_name="monitor")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


def seed_database(path: Path) -> None:
    """A database with three incidents, so 'unchanged' means something."""
    from monitor.config import config_from_dict
    from monitor.ingest import ingest_files
    from monitor.store import Store

    config = config_from_dict({}, base_dir=path.parent)
    with Store(path) as store:
        outcome = ingest_files(store, [BAD / "seed_acled.csv"], config=config, now=SEED_NOW)
    assert not outcome.refused and outcome.results[0].inserted == 3


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_rows(path: Path) -> dict[str, int]:
    """Rows in every table (read through SQLite, so a write left in the WAL counts too)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


def event_ids(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT source_id FROM incidents")} | {
            f"{r[0]}|{r[1]}" for r in conn.execute("SELECT week_start, admin1 FROM counts")}
    finally:
        conn.close()


RECORDED: list[tuple[str, str, int, str]] = []


@pytest.fixture(scope="module", autouse=True)
def closing_note_table():
    """With BAD_INPUTS_TABLE set, write every case's command, exit code and message as a Markdown table."""
    yield
    target = os.environ.get("BAD_INPUTS_TABLE")
    if target and RECORDED:
        lines = ["| case | command | exit | message |", "|---|---|---|---|"]
        for name, command, code, message in RECORDED:
            cell = message.replace("|", "\\|").replace("\n", "<br>")
            lines.append(f"| {name} | `{command}` | {code} | {cell} |")
        Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")


def record(name: str, args: list[str], tmp: Path, code: int, stderr: str) -> None:
    shown = " ".join(a.replace(str(tmp), "$TMP").replace(str(DATA), "tests/data") for a in args)
    message = "\n".join(line for line in stderr.splitlines() if line.strip())
    RECORDED.append((name, f"monitor {shown}", code, message.replace(str(tmp), "$TMP").replace(str(DATA), "tests/data")))


# ---- the table -------------------------------------------------------------------------------------


def _placeholders(case: Case, tmp: Path) -> dict[str, str]:
    values = {"tmp": str(tmp), "db": str(tmp / "monitor.db"), "config": str(tmp / "monitor.toml")}
    if case.config:
        values["config"] = str(BAD / "config" / case.config)
    if case.input.startswith("gen:"):
        values["input"] = str(GENERATORS[case.input[4:]](tmp))
    elif case.input:
        values["input"] = str(DATA / case.input)
    return values


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path):
    db = tmp_path / "monitor.db"
    seed_database(db)
    if case.db.startswith("input:"):
        GENERATORS[case.db.split(":", 1)[1]](tmp_path)
    values = _placeholders(case, tmp_path)
    if not case.config and "--config" not in case.args:  # an empty config: the defaults, not ./config/monitor.toml
        Path(values["config"]).write_text("", encoding="utf-8")
    head = [] if "--config" in case.args else ["--config", values["config"]]
    head += [] if "--db" in case.args else ["--db", values["db"]]
    args = head + [a.format(**values) for a in case.args]
    before_bytes = sha256(db)
    before_rows = table_rows(db) if not case.db.startswith("input:") else None

    code, stdout, stderr = run_cli(args, cwd=tmp_path, real=case.subprocess)
    record(case.name, args, tmp_path, code, stderr)

    assert code == case.exit, f"exit {code}\nstdout: {stdout}\nstderr: {stderr}"
    assert "Traceback" not in stdout + stderr and "unexpected" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    fragments = [s.format(**values) for s in case.says] + ([case.fix.format(**values)] if case.fix else [])
    if case.db == "usage":  # click's usage error: Usage / Try lines, and one 'Error:' line with the problem
        errors = [line for line in lines if line.startswith("Error: ")]
        assert len(errors) == 1 and all(line.startswith(("Usage: ", "Try ", "Error: ")) for line in lines), stderr
        for fragment in fragments:
            assert fragment in stderr, f"{fragment!r} not in {stderr!r}"
    elif case.db == "rows":
        expected = [(f"{values['input']}: line {n}: ", reason) for n, reason in case.rejects]
        assert len(lines) == len(expected), stderr
        for line, (prefix, reason) in zip(lines, expected):
            assert line.startswith(prefix), line
            rest = line[len(prefix):]
            assert re.search(reason, rest) if reason.startswith("^") else rest == reason, line
    elif case.db == "accepted":
        assert lines == [], stderr
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        for fragment in fragments:
            assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"

    if case.db in ("unchanged", "usage") or case.db.startswith("input:"):
        assert sha256(db) == before_bytes, "the database file changed"
        if before_rows is not None:
            assert table_rows(db) == before_rows
    elif case.db == "rows":
        after = table_rows(db)
        changed = {t for t in after if after[t] != before_rows.get(t)}
        assert changed <= {"incidents", "counts", "ingests", "rejects"}, changed
        assert after["rejects"] - before_rows["rejects"] == len(case.rejects)
        assert after["ingests"] == before_rows["ingests"] + 1
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        stored = conn.execute("SELECT file, line, reason, raw FROM rejects WHERE ingest_id = (SELECT max(id) FROM ingests)"
                              " ORDER BY id").fetchall()  # fmt: skip
        conn.close()
        assert [(f, n) for f, n, _, _ in stored] == [(values["input"], n) for n, _ in case.rejects]
        for (_, _, reason, raw), (_, expected_reason) in zip(stored, case.rejects):
            assert re.search(expected_reason, reason) if expected_reason.startswith("^") else reason == expected_reason
            assert len(raw) <= 2001  # the raw text kept with a reject is trimmed (a 10 MB field is not stored)
        assert set(case.kept) <= event_ids(db)
        assert after["incidents"] + after["counts"] - before_rows["incidents"] - before_rows["counts"] == len(case.kept)
    elif case.db == "accepted":
        after = table_rows(db)
        assert after["rejects"] == before_rows["rejects"] and set(case.kept) <= event_ids(db)
        assert after["incidents"] == before_rows["incidents"] + len(case.kept)


def test_the_corpus_covers_the_issue():
    """At least 30 cases, and every kind of bad input the issue names has one."""
    assert len(CASES) + len(RUN_CASES) >= 30
    names = {c.name for c in CASES} | set(RUN_CASES)
    for kind in ("empty_file", "header_only", "binary_junk", "truncated_last_line", "wrong_encoding", "bom", "semicolon",
                 "missing_column", "duplicate_columns", "bad_dates", "future_dates", "bad_fatalities", "duplicate_ids",
                 "ten_mb_field", "config_unknown_key", "config_wrong_type_integer", "smtp_unreachable",
                 "report_folder_unwritable", "db_not_sqlite", "db_newer_schema"):
        assert kind in names, kind
    corpus = {p.relative_to(DATA).as_posix() for p in BAD.rglob("*") if p.is_file() and p.suffix in (".csv", ".toml")}
    used = {c.input for c in CASES} | {f"bad/config/{c.config}" for c in CASES if c.config} | {"bad/seed_acled.csv"}
    assert corpus <= used, f"corpus files no case uses: {sorted(corpus - used)}"


# ---- more rejected rows than are printed ---------------------------------------------------------


def test_more_than_20_rejected_rows_are_capped_and_listed_by_monitor_rejects(tmp_path):
    header, *rows = (BAD / "seed_acled.csv").read_text(encoding="utf-8").splitlines()
    bad = [rows[0].replace("SEED1", f"NEG{i}").replace(",1,1676000000", f",-{i},1676000000") for i in range(1, 26)]
    path = tmp_path / "many_bad.csv"
    path.write_text("\n".join([header, rows[0].replace("SEED1", "OK1"), *bad]) + "\n", encoding="utf-8")
    db = tmp_path / "monitor.db"
    (tmp_path / "monitor.toml").write_text("", encoding="utf-8")
    base = ["--config", str(tmp_path / "monitor.toml"), "--db", str(db)]
    code, stdout, stderr = run_cli([*base, "ingest", str(path)], cwd=tmp_path, real=False)
    assert code == 1 and "26 rows read, 1 inserted" in stdout and "25 rejected" in stdout
    lines = stderr.splitlines()
    assert len(lines) == 21
    assert lines[:20] == [f"{path}: line {i + 2}: fatalities '-{i}' is negative {WHOLE}" for i in range(1, 21)]
    assert lines[20] == f"{path}: ... and 5 more rejected rows (monitor rejects --ingest 1)"
    code, stdout, stderr = run_cli([*base, "rejects"], cwd=tmp_path, real=False)
    assert code == 0 and stdout.splitlines()[1].split()[:2] == ["1", str(path)] and stdout.splitlines()[1].split()[-1] == "25"
    code, stdout, _ = run_cli([*base, "rejects", "--ingest", "1", "--format", "csv"], cwd=tmp_path, real=False)
    listed = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 0 and [int(r["line"]) for r in listed] == list(range(3, 28))
    assert listed[-1]["reason"] == f"fatalities '-25' is negative {WHOLE}" and listed[-1]["raw"].startswith("NEG25,")
    code, _, stderr = run_cli([*base, "rejects", "--ingest", "7"], cwd=tmp_path, real=False)
    assert code == 1 and stderr == f"error: no ingest #7 in {db} (`monitor rejects` lists the ingests that rejected rows)\n"


def test_debug_shows_the_traceback(tmp_path):
    db = _not_sqlite(tmp_path)
    args = ["--db", str(db), "--debug", "ingest", str(BAD / "seed_acled.csv")]
    code, _, stderr = run_cli(args, cwd=tmp_path, real=True)
    assert code == 1 and "Traceback" in stderr and "StoreError" in stderr and "not an SQLite database" in stderr


# ---- the weekly run: an unreachable mail server, a report folder that cannot be written ------------------------

WEEK = "2023-W14"  # the last of 170 weeks from 2020-01-06


def _history(tmp: Path, *, spike: int = 40) -> Path:
    rng = random.Random(1)
    path = tmp / "weekly_counts.csv"
    start = date(2020, 1, 6)
    rows = [[(start + timedelta(weeks=i)).isoformat(), "Aleppo", str(rng.randint(2, 6) if i < 169 else spike)] for i in range(170)]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["week_start", "admin1", "count"])
        writer.writerows(rows)
    return path


def _run_config(tmp: Path, *, report: str, smtp: str = "") -> Path:
    path = tmp / "monitor.toml"
    path.write_text(
        f'[database]\npath = "monitor.db"\n[ingest]\ninbox = ["inbox"]\n[report]\nfolder = "{report}"\n'
        f'[alerts]\nrecipients = ["desk@example.org"]\n{smtp}'
        '[[series]]\nname = "aleppo"\ngroup_by = ["admin1"]\ndetector = "ears"\nmin_events = 0\n',
        encoding="utf-8",
    )
    return path


def _ready(tmp: Path, config: Path) -> Path:
    code, _, stderr = run_cli(["--config", str(config), "ingest", str(_history(tmp))], cwd=tmp, real=False)
    assert code == 0, stderr
    return tmp / "monitor.db"


def test_smtp_unreachable(tmp_path):
    port = free_port()  # bound, then closed: nothing listens there
    smtp = f'[alerts.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n'
    config = _run_config(tmp_path, report="reports", smtp=smtp)
    db = _ready(tmp_path, config)
    args = ["--config", str(config), "run", "--week", WEEK]
    code, stdout, stderr = run_cli(args, cwd=tmp_path, real=True)
    record("smtp_unreachable", args, tmp_path, code, stderr)
    assert code == 4 and "Traceback" not in stdout + stderr
    assert stderr.splitlines() == [
        "error: 1 message(s) left in the outbox, to be sent by the next run or `monitor alerts flush`: #1 (default): "
        f"127.0.0.1:{port}: connection refused (is the server running, and are alerts.smtp.host and port right?)"
    ]
    assert (tmp_path / "reports" / WEEK / "report.md").is_file()
    conn = sqlite3.connect(db)
    outbox = conn.execute("SELECT sent_at, dead_at, attempts FROM outbox").fetchall()
    status = conn.execute("SELECT status FROM runs").fetchall()
    conn.close()
    assert outbox == [(None, None, 1)] and status == [("delivery-failed",)]  # kept for the next run, not lost


def test_report_folder_unwritable(tmp_path):
    (tmp_path / "reports").write_text("a file where the report folder should be", encoding="utf-8")
    config = _run_config(tmp_path, report="reports")
    db = _ready(tmp_path, config)
    before = table_rows(db)
    args = ["--config", str(config), "run", "--week", WEEK]
    code, stdout, stderr = run_cli(args, cwd=tmp_path, real=True)
    record("report_folder_unwritable", args, tmp_path, code, stderr)
    assert code == 1 and "Traceback" not in stdout + stderr and "unexpected" not in stderr
    [line] = stderr.splitlines()
    assert line.startswith(f"error: {tmp_path / 'reports'}: cannot write the report (")
    assert line.endswith("; set report.folder to a folder this user can write to, or fix its permissions")
    after = table_rows(db)
    assert {t for t in after if after[t] != before[t]} == {"runs"} and after["runs"] == before["runs"] + 1  # the failure, recorded
    assert (tmp_path / "reports").read_text(encoding="utf-8") == "a file where the report folder should be"


RUN_CASES = ("smtp_unreachable", "report_folder_unwritable")


# ---- the weekly run goes on past rejected rows and refused files, and says so ---------------------


def test_run_keeps_going_past_rejected_rows_and_the_report_lists_them(tmp_path):
    config = _run_config(tmp_path, report="reports")
    _ready(tmp_path, config)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "bad_fatalities.csv").write_bytes((BAD / "bad_fatalities.csv").read_bytes())
    args = ["--config", str(config), "run", "--week", WEEK, "--no-email"]
    code, stdout, stderr = run_cli(args, cwd=tmp_path, real=False)
    assert code == 0 and stderr == ""  # rows rejected: the weekly job goes on
    assert f"ingested {inbox / 'bad_fatalities.csv'}: 1 inserted, 0 updated, 4 rejected (monitor rejects --ingest 2)" in stdout
    report = (tmp_path / "reports" / WEEK / "report.md").read_text(encoding="utf-8")
    assert "- Input problems: 4 rows rejected in 1 file (see Input problems)." in report
    assert "| 2 | bad\\_fatalities.csv | 2 | fatalities '-3' is negative (expected a whole number &gt;= 0) |" in report
    assert "| 2 | bad\\_fatalities.csv | 5 | fatalities '99999999999999999999' is not a whole number &gt;= 0" in report
    again = run_cli(args, cwd=tmp_path, real=False)
    assert again[0] == 0 and (tmp_path / "reports" / WEEK / "report.md").read_text(encoding="utf-8") == report  # a re-run: same report


def test_run_with_a_refused_inbox_file_exits_1_and_the_report_says_so(tmp_path):
    config = _run_config(tmp_path, report="reports")
    _ready(tmp_path, config)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "semicolon.csv").write_bytes((BAD / "semicolon.csv").read_bytes())
    code, stdout, stderr = run_cli(["--config", str(config), "run", "--week", WEEK, "--no-email"], cwd=tmp_path, real=False)
    [line] = stderr.splitlines()
    assert code == 1 and line.startswith(f"error: {inbox / 'semicolon.csv'}: line 1: header 'event_id_cnty;")
    report = (tmp_path / "reports" / WEEK / "report.md").read_text(encoding="utf-8")
    assert "- Input problems: 1 input file refused (see Input problems)." in report
    assert "is separated by ';', not by commas (save the file as comma-separated CSV)" in report


# ---- notes, actors and places holding Markdown, HTML and spreadsheet formulas -------------------------------

ADMIN1 = 'Homs | *bold* [x](http://evil) <script>alert(1)</script>'
ACTOR = '=HYPERLINK("http://evil","click")'
NOTES = "# heading `code` <img src=x onerror=alert(1)> | cell ![](http://evil/p.png) _under_ ~strike~"
ADMIN2 = "@SUM(A1:A9)"
ACTOR2 = "+Civilians -2"


def _payload_file(tmp: Path) -> Path:
    header, *_ = (BAD / "seed_acled.csv").read_text(encoding="utf-8").splitlines()
    rng = random.Random(3)
    start = date(2020, 1, 6)
    rows, n = [], 0
    for week in range(170):
        for day in range(rng.randint(1, 4) if week < 169 else 25):
            n += 1
            rows.append({"event_id_cnty": f"INJ{n}", "event_date": (start + timedelta(weeks=week, days=day % 7)).isoformat(),
                         "event_type": "Battles", "sub_event_type": "Armed clash", "actor1": ACTOR, "actor2": ACTOR2,
                         "country": "Syria", "admin1": ADMIN1, "admin2": ADMIN2, "location": "-Palmyra", "notes": NOTES,
                         "fatalities": "1", "timestamp": "1676000000"})  # fmt: skip
    path = tmp / "inbox" / "payloads.csv"
    path.parent.mkdir()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header.split(","), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _cells(line: str) -> list[str]:
    """The cells of a GFM table row: split on pipes that are not backslash-escaped."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_markdown_html_and_formulas_in_the_data_are_escaped_everywhere(tmp_path):
    config = tmp_path / "monitor.toml"
    config.write_text(
        '[database]\npath = "monitor.db"\n[ingest]\ninbox = ["inbox"]\n[report]\nfolder = "reports"\n'
        '[alerts]\nrecipients = ["desk@example.org"]\n'  # no SMTP host: the digest is written as an .eml file
        '[[series]]\nname = "v"\ngroup_by = ["admin1", "actor"]\ndetector = "ears"\nmin_events = 0\n',
        encoding="utf-8",
    )
    _payload_file(tmp_path)
    code, stdout, stderr = run_cli(["--config", str(config), "run", "--week", WEEK], cwd=tmp_path, real=True)
    assert code == 0, stderr
    folder = tmp_path / "reports" / WEEK
    report = (folder / "report.md").read_text(encoding="utf-8")

    # Markdown: every payload escaped, no raw HTML, no link, no image, no heading, no formula at a cell start
    assert "<script>" not in report and "<img" not in report and "](http://evil" not in report.replace("\\](http://evil", "")
    assert "Homs \\| \\*bold\\* \\[x\\](http://evil) &lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "\\# heading \\`code\\` &lt;img src=x onerror=alert(1)&gt; \\| cell \\!\\[\\](http://evil/p.png) \\_under\\_ \\~strike\\~" in report
    assert "'=HYPERLINK(\"http://evil\",\"click\"); +Civilians -2" in report  # the Actors cell starts with '
    assert not re.search(r"^#+ .*heading", report, flags=re.M)
    # every table keeps its shape: each row has as many cells as its header
    table: list[str] = []
    for line in report.splitlines() + [""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            width = len(_cells(table[0]))
            assert all(len(_cells(row)) == width for row in table), table
            table = []
    incidents = [line for line in report.splitlines() if "acled INJ" in line]
    assert len(incidents) == 45  # 15 incidents behind each flagged series: the two actors in Homs and the total
    assert all(cell.strip().startswith("'") for line in incidents for cell in _cells(line)[3:4])

    # the digest: the HTML body escapes, the text body keeps the words on one line, the subject has no line break
    eml = message_from_bytes((folder / f"digest-{WEEK}.eml").read_bytes(), policy=email_policy)
    html_body = eml.get_body(("html",)).get_content()
    text_body = eml.get_body(("plain",)).get_content()
    assert "<script>" not in html_body and "&lt;script&gt;alert(1)&lt;/script&gt;" in html_body
    assert "=HYPERLINK(&quot;http://evil&quot;,&quot;click&quot;)" in html_body and '<a ' not in html_body
    assert ADMIN1 in text_body and "\n" not in eml["Subject"]

    # CSV the tool writes: formula-leading cells get a leading apostrophe; JSON stays raw
    base = ["--config", str(config)]
    code, out, _ = run_cli([*base, "check", "--week", WEEK, "--series", "actor=", "--format", "csv"], cwd=tmp_path, real=False)
    assert code == 3
    rows = list(csv.DictReader(io.StringIO(out)))
    from monitor.series import escape_label  # '|' and '=' in a label are escaped in its key (issue 12, item 7)

    place, actor, actor2 = escape_label(ADMIN1), escape_label(ACTOR), escape_label(ACTOR2)
    assert {r["series"] for r in rows} == {f"v/admin1={place}|actor={actor}", f"v/admin1={place}|actor={actor2}"}
    code, out, _ = run_cli([*base, "check", "--week", WEEK, "--format", "json"], cwd=tmp_path, real=False)
    assert f"v/admin1={place}|actor={actor}" in {r["series"] for r in json.loads(out)}
    counts = tmp_path / "by_series.csv"
    weeks = [date(2022, 1, 3) + timedelta(weeks=i) for i in range(12)]
    with open(counts, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows([["series", "week_start", "count"]] +
                                                         [[ACTOR, w.isoformat(), 3 + i % 2] for i, w in enumerate(weeks)])
    code, out, _ = run_cli(["detect", str(counts), "--detector", "ears", "--last", "2", "--format", "csv"], cwd=tmp_path, real=False)
    assert {r["series"] for r in csv.DictReader(io.StringIO(out))} == {"'" + ACTOR}
    code, out, _ = run_cli(["detect", str(counts), "--detector", "ears", "--last", "2", "--format", "json"], cwd=tmp_path, real=False)
    assert {r["series"] for r in json.loads(out)} == {ACTOR}
    code, out, _ = run_cli(["backtest", "--counts", str(counts), "--detector", "ears", "--out", str(tmp_path / "bt")], cwd=tmp_path, real=False)
    assert code == 0
    for name in ("backtest_detail.csv", "backtest_series.csv"):
        assert {r["series"] for r in csv.DictReader(open(tmp_path / "bt" / name, encoding="utf-8"))} == {"'" + ACTOR}


def test_rejected_rows_with_payloads_stay_raw_in_json_and_are_escaped_in_csv(tmp_path):
    header = (BAD / "seed_acled.csv").read_text(encoding="utf-8").splitlines()[0]
    path = tmp_path / "payload_rejects.csv"
    path.write_text(f"{header}\n=cmd|' /C calc'!A0,2023-02-06,Battles,,IS,,Syria,Homs,,,\x1b[31mred,-1,1\n", encoding="utf-8")
    (tmp_path / "monitor.toml").write_text("", encoding="utf-8")
    base = ["--config", str(tmp_path / "monitor.toml"), "--db", str(tmp_path / "monitor.db")]
    code, _, stderr = run_cli([*base, "ingest", str(path)], cwd=tmp_path, real=False)
    assert code == 1 and stderr == f"{path}: line 2: fatalities '-1' is negative {WHOLE}\n"
    code, out, _ = run_cli([*base, "rejects", "--ingest", "1", "--format", "csv"], cwd=tmp_path, real=False)
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["raw"].startswith("'=cmd|' /C calc'!A0,")
    code, out, _ = run_cli([*base, "rejects", "--ingest", "1", "--format", "json"], cwd=tmp_path, real=False)
    assert json.loads(out)[0]["raw"].startswith("=cmd|' /C calc'!A0,") and "\x1b[31m" in json.loads(out)[0]["raw"]
    code, out, _ = run_cli([*base, "rejects", "--ingest", "1"], cwd=tmp_path, real=False)
    assert "\x1b" not in out and "\\x1b[31mred" in out  # a terminal table shows the escape, it does not obey it


def test_a_config_with_several_problems_gets_one_error_line_each(tmp_path):
    config = tmp_path / "monitor.toml"
    config.write_text('[report]\nhistory_weeks = "200"\nnote_chars = 5\n\n[alerts]\nsend_resolved = 1\n', encoding="utf-8")
    code, stdout, stderr = run_cli(["--config", str(config), "--db", str(tmp_path / "m.db"), "check"], cwd=tmp_path, real=False)
    assert code == 1 and stdout == "" and not (tmp_path / "m.db").exists()
    assert sorted(stderr.splitlines()) == sorted([
        f"error: {config}: report.history_weeks: expected an integer (a whole number), got '200' (write it without quotes)",
        f"error: {config}: report.note_chars = 5: must be at least 20",
        f"error: {config}: alerts.send_resolved: expected true or false, got 1",
    ])
