"""ACLED's aggregated weekly files (issue 15, item 3): recognised by their header, as CSV or .xlsx, and stored as
weekly counts in the monitor's weeks without hand conversion.

ACLED's aggregated weeks run Saturday to Friday (`WEEK` is the Saturday); each is counted in the monitor's week
holding its Tuesday: with Monday weeks, the ACLED week of Saturday 2023-02-04 counts in the week of Monday
2023-02-06 (2023-W06).
"""

from __future__ import annotations

import csv
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli

HEADER = ["WEEK", "REGION", "COUNTRY", "ADMIN1", "EVENT_TYPE", "SUB_EVENT_TYPE", "EVENTS", "FATALITIES",
          "POPULATION_EXPOSURE", "DISORDER_TYPE", "ID", "CENTROID_LATITUDE", "CENTROID_LONGITUDE"]  # fmt: skip


def _rows(weeks: int = 30) -> list[list]:
    """Homs: 3 attacks a week by an armed group, 10 in the last week; Hama: 1 battle a week, and in the last
    week one more row of the same keys under another disorder type (ACLED splits some rows so)."""
    rows = []
    for k in range(weeks):
        week = date(2022, 7, 9) + timedelta(weeks=k)  # Saturdays
        attacks = 10 if k == weeks - 1 else 3
        rows.append([week, "Middle East", "Syria", "Homs", "Violence against civilians", "Attack", attacks, attacks,
                     None, "Political violence", 76015, 34.73, 36.71])  # fmt: skip
        rows.append([week, "Middle East", "Syria", "Hama", "Battles", "Armed clash", 1, 0, 1200, "Political violence",
                     76005, 35.13, 36.75])  # fmt: skip
    rows.append([rows[-1][0], "Middle East", "Syria", "Hama", "Battles", "Armed clash", 2, 1, None,
                 "Political violence; Demonstrations", 76005, 35.13, 36.75])  # fmt: skip
    return rows


def _write_csv(path: Path, rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for row in rows:
            writer.writerow([v.isoformat() if isinstance(v, date) else ("" if v is None else v) for v in row])
    return path


def _write_xlsx(path: Path, rows: list[list]) -> Path:
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in rows:  # dates as spreadsheet dates, counts as numbers, as ACLED's workbooks hold them
        sheet.append([datetime.combine(v, datetime.min.time()) if isinstance(v, date) else v for v in row])
    book.save(path)
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text('[database]\npath = "m.db"\n[[series]]\nname = "agg"\ngroup_by = ["admin1"]\nmin_events = 5\n'
                    '[series.filters]\nsource = ["acled-aggregated"]\n', encoding="utf-8")  # fmt: skip
    return path


def _counts(config: Path) -> list[tuple]:
    with sqlite3.connect(config.parent / "m.db") as conn:
        return conn.execute("SELECT week_start, admin1, event_type, sub_event_type, count, fatalities FROM counts "
                            "WHERE source = 'acled-aggregated' ORDER BY week_start DESC, admin1 LIMIT 2").fetchall()  # fmt: skip


@pytest.mark.parametrize("writer", [_write_csv, _write_xlsx], ids=["csv", "xlsx"])
def test_an_aggregated_file_is_stored_in_the_monitors_weeks(tmp_path, config, writer):
    name = "Middle-East_aggregated_data_up_to_week_of-2023-01-28" + (".csv" if writer is _write_csv else ".xlsx")
    path = writer(tmp_path / name, _rows())
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(path)], env={"MONITOR_NOW": "2023-02-01T06:00:00+00:00"})
    assert result.exit_code == 0, result.output
    # 61 rows read; the two Hama rows of the last week are one count
    assert f"{path}: acled-aggregated, 61 rows read, 60 inserted, 0 updated, 0 unchanged, 0 rejected" in result.stdout
    # the last ACLED week, Saturday 2023-01-28 to Friday 2023-02-03, counts in the week of Monday 2023-01-30
    assert _counts(config) == [("2023-01-30", "Hama", "Battles", "Armed clash", 3, 1),
                               ("2023-01-30", "Homs", "Violence against civilians", "Attack", 10, 10)]  # fmt: skip
    check = CliRunner().invoke(cli, ["--config", str(config), "check", "--week", "2023-W05", "--series", "Homs", "--format", "csv"],
                               env={"MONITOR_NOW": "2023-02-08T06:00:00+00:00"})  # fmt: skip
    assert check.exit_code == 3, check.output  # flagged: 10 against 3 a week
    assert check.stdout.splitlines()[1].startswith("agg/admin1=Homs,2023-W05,10.0,3.0625,") and ",1,alert," in check.stdout


def test_a_week_that_is_not_a_saturday_is_rejected_with_its_reason(tmp_path, config):
    rows = _rows(10)
    rows[4][0] = rows[4][0] + timedelta(days=2)  # the third week's Homs row, dated on a Monday
    path = _write_csv(tmp_path / "agg.csv", rows)
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(path)], env={"MONITOR_NOW": "2023-02-01T06:00:00+00:00"})
    assert "1 rejected" in result.stdout
    with sqlite3.connect(config.parent / "m.db") as conn:
        (reason,) = conn.execute("SELECT reason FROM rejects").fetchone()
    assert reason.startswith("WEEK 2022-07-25 is a Monday: ACLED's aggregated weeks start on a Saturday")


def test_a_broken_workbook_is_refused_with_the_file_named(tmp_path, config):
    path = tmp_path / "agg.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(path)], env={"MONITOR_NOW": "2023-02-01T06:00:00+00:00"})
    assert result.exit_code == 1
    assert f"{path}: line 1: not a readable .xlsx workbook" in result.output


def test_a_workbook_whose_first_sheet_is_empty_is_read_from_its_first_filled_sheet(tmp_path, config):
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Notes"
    data = book.create_sheet("Data")
    data.append(HEADER)
    for row in _rows(10):
        data.append([datetime.combine(v, datetime.min.time()) if isinstance(v, date) else v for v in row])
    path = tmp_path / "agg.xlsx"
    book.save(path)
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(path)], env={"MONITOR_NOW": "2023-02-01T06:00:00+00:00"})
    assert result.exit_code == 0, result.output
    assert "acled-aggregated, 21 rows read, 20 inserted" in result.stdout
