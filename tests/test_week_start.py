"""Counts rows dated off the configured week start (issue 12, item 9).

A counts file whose weeks start on Sunday, read into Monday weeks, used to be moved silently six days
back: the surge week's count landed in the week before it. Now such rows are rejected, each with the
week it would have fallen in and the two ways out, and kept with that reason; the file is not marked
done, so once `week.start` matches it is read again and every row counts in its own week.
"""

from __future__ import annotations

import csv
import sqlite3
from datetime import date, timedelta

from click.testing import CliRunner

from monitor.cli import cli

NOW = "2023-03-06T06:00:00+00:00"
CONFIG = """
[database]
path = "m.db"
[week]
start = "{start}"
[[series]]
name = "violence"
group_by = ["admin1"]
"""


def _write_counts(path, first: date, counts: list[int]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["week_start", "admin1", "count"])
        out.writerows([(first + timedelta(weeks=i)).isoformat(), "Homs", n] for i, n in enumerate(counts))


def _ingest(tmp_path, start: str, *files):
    (tmp_path / "monitor.toml").write_text(CONFIG.format(start=start), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(tmp_path / "monitor.toml"), "ingest", *map(str, files)],
                              env={"MONITOR_NOW": NOW})  # fmt: skip


def test_sunday_weeks_read_as_monday_weeks_are_refused_row_by_row_and_kept_with_the_reason(tmp_path):
    sundays = tmp_path / "sunday_weeks.csv"
    _write_counts(sundays, date(2023, 1, 1), [2, 3, 2, 14])  # Sundays 2023-01-01 .. 2023-01-22
    result = _ingest(tmp_path, "monday", sundays)
    assert result.exit_code == 1, result.output  # rows were rejected
    assert "week_start 2023-01-22 is a Sunday, but weeks start on Monday" in result.output, result.output
    db = sqlite3.connect(tmp_path / "m.db")
    assert db.execute("SELECT COUNT(*) FROM counts").fetchone()[0] == 0  # nothing moved into the week before
    reasons = [r for (r,) in db.execute("SELECT reason FROM rejects ORDER BY line")]
    assert len(reasons) == 4
    # the surge row names the week it would have been counted in, and both ways out
    assert reasons[3] == (
        "week_start 2023-01-22 is a Sunday, but weeks start on Monday (week.start in the config): the row would be "
        "counted in the week of 2023-01-16 (2023-W03); date each row by the first day of its week, or set "
        'week.start = "sunday" if the file\'s weeks are the ones to report'
    )
    # every row was rejected, so the file is not done: with week.start = "sunday" the same file is read again
    again = _ingest(tmp_path, "sunday", sundays)
    assert again.exit_code == 0, again.output
    stored = db.execute("SELECT week_start, count FROM counts ORDER BY week_start").fetchall()
    assert stored == [("2023-01-01", 2), ("2023-01-08", 3), ("2023-01-15", 2), ("2023-01-22", 14)]


def test_rows_on_the_week_start_are_kept_beside_the_rejected_ones(tmp_path):
    mixed = tmp_path / "mixed.csv"
    _write_counts(mixed, date(2023, 1, 2), [2, 3, 2])  # Mondays
    with open(mixed, "a", encoding="utf-8") as handle:
        handle.write("2023-01-25,Homs,9\n")  # a Wednesday among Mondays
    result = _ingest(tmp_path, "monday", mixed)
    assert result.exit_code == 1, result.output
    assert "2023-01-25 is a Wednesday" in result.output, result.output
    db = sqlite3.connect(tmp_path / "m.db")
    assert db.execute("SELECT week_start, count FROM counts ORDER BY week_start").fetchall() == [
        ("2023-01-02", 2), ("2023-01-09", 3), ("2023-01-16", 2)]  # fmt: skip
    assert db.execute("SELECT line FROM rejects").fetchall() == [(5,)]
