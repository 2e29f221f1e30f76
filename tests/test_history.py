"""History is kept (issue 14, item 1): first sight, revisions and deletions, over deliveries of the same export.

The same ACLED export is delivered several times, as a watch desk receives it: events back-filled,
revised and deleted between deliveries, and ACLED's deletion list (`event_id_cnty,deleted_timestamp`)
ingested beside it. Driven through `monitor ingest` on a real SQLite file, with the clock set per delivery.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_revisions import ACLED_HEADER, acled_row, write_csv

from monitor.cli import cli
from monitor.store import MIGRATIONS, SCHEMA_VERSION, Store

MONDAYS = ["2023-02-13T06:00:00+00:00", "2023-02-20T06:00:00+00:00", "2023-02-27T06:00:00+00:00", "2023-03-06T06:00:00+00:00"]
T1, T2, T3, T4 = "1676200000", "1676800000", "1677000000", "1677500000"  # Unix seconds, in this order


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text('[database]\npath = "m.db"\n', encoding="utf-8")
    return path


def deliver(config: Path, now: str, *files: Path, again: bool = False) -> str:
    args = ["--config", str(config), "ingest", *(["--again"] if again else []), *map(str, files)]
    result = CliRunner().invoke(cli, args, env={"MONITOR_NOW": now})
    assert result.exit_code == 0, result.output
    return result.stdout


def query(config: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(config.parent / "m.db") as conn:
        return conn.execute(sql).fetchall()


def test_deliveries_keep_first_sight_revisions_and_deletions(tmp_path, config):
    week_one = [acled_row("SYR1", event_date="2023-02-07", fatalities=1, timestamp=T1),
                acled_row("SYR2", event_date="2023-02-08", fatalities=0, timestamp=T1),
                acled_row("SYR3", event_date="2023-02-09", fatalities=2, timestamp=T1)]  # fmt: skip
    first = write_csv(tmp_path / "acled_1.csv", ACLED_HEADER, week_one)
    deliver(config, MONDAYS[0], first)

    # a week later: SYR1 revised (12 killed), SYR2 unchanged, SYR4 back-filled into the first week, SYR3 dropped
    second = write_csv(tmp_path / "acled_2.csv", ACLED_HEADER, [
        acled_row("SYR1", event_date="2023-02-07", fatalities=12, timestamp=T2, notes="12 killed (revised)"),
        week_one[1],
        acled_row("SYR4", event_date="2023-02-06", fatalities=3, timestamp=T2),
    ])  # fmt: skip
    assert deliver(config, MONDAYS[1], second) == (
        f"{second}: acled, 3 rows read, 1 inserted, 1 updated, 1 unchanged, 0 rejected\n"
    )
    # ACLED's deletion list: SYR3 (stored) and SYR9 (never delivered here)
    deleted = tmp_path / "deleted.csv"
    deleted.write_text(f"event_id_cnty,deleted_timestamp\nSYR3,{T3}\nSYR9,{T3}\n", encoding="utf-8")
    assert deliver(config, MONDAYS[2], deleted) == (
        f"{deleted}: acled-deletions, 2 rows read, 1 deleted, 1 not in the database (remembered), "
        "0 edited after their deletion (kept), 0 rejected\n"
    )
    # the first export delivered again: neither its older SYR1 nor the deleted SYR3 comes back
    assert deliver(config, MONDAYS[2], first, again=True) == (
        f"{first}: acled, 3 rows read, 0 inserted, 0 updated, 1 unchanged, 2 older (kept the stored revision), 0 rejected\n"
    )

    ingests = dict(query(config, "SELECT file, id FROM ingests WHERE file LIKE '%acled_2.csv'"))
    first_id = query(config, "SELECT min(id) FROM ingests")[0][0]
    assert query(config, "SELECT source_id, fatalities, first_ingest_id, first_seen, ingest_id FROM incidents ORDER BY source_id") == [
        ("SYR1", 12, first_id, MONDAYS[0], ingests[str(second)]),  # first seen in the first delivery, revised in the second
        ("SYR2", 0, first_id, MONDAYS[0], first_id),
        ("SYR4", 3, ingests[str(second)], MONDAYS[1], ingests[str(second)]),  # back-filled: seen a week after SYR1
    ]  # fmt: skip
    history = query(config, "SELECT source_id, change, changed_at, revision, old FROM incident_history ORDER BY id")
    assert [(sid, change, at, revision) for sid, change, at, revision, _ in history] == [
        ("SYR1", "revised", MONDAYS[1], T1),
        ("SYR3", "deleted", MONDAYS[2], T3),
        ("SYR9", "deleted", MONDAYS[2], T3),
    ]
    old_syr1, old_syr3 = json.loads(history[0][4]), json.loads(history[1][4])
    assert (old_syr1["fatalities"], old_syr1["notes"], old_syr1["revision"]) == (1, "clash reported", T1)
    assert (old_syr3["event_date"], old_syr3["fatalities"]) == ("2023-02-09", 2) and history[2][4] == "{}"

    # a revision made after the deletion brings SYR3 back, first seen now; SYR9's old row stays out
    later = write_csv(tmp_path / "acled_3.csv", ACLED_HEADER, [
        acled_row("SYR3", event_date="2023-02-09", fatalities=4, timestamp=T4),
        acled_row("SYR9", event_date="2023-02-10", fatalities=1, timestamp=T2),
    ])  # fmt: skip
    assert deliver(config, MONDAYS[3], later) == (
        f"{later}: acled, 2 rows read, 1 inserted, 0 updated, 0 unchanged, 1 older (kept the stored revision), 0 rejected\n"
    )
    assert query(config, "SELECT fatalities, first_seen FROM incidents WHERE source_id = 'SYR3'") == [(4, MONDAYS[3])]
    assert query(config, "SELECT count(*) FROM incidents WHERE source_id = 'SYR9'") == [(0,)]

    # every version, with when it was known: what `backtest --as-known` replays each week on
    with Store(config.parent / "m.db", read_only=True) as store:
        versions = store.incident_versions(end=date(2023, 3, 5))
    def known_at(moment: str) -> list[tuple[str, int]]:
        rows = versions[(versions["known_from"] <= moment) & ((versions["known_to"] == "") | (versions["known_to"] > moment))]
        return sorted(zip(rows["source_id"], rows["fatalities"].astype(int)))
    assert known_at(MONDAYS[0]) == [("SYR1", 1), ("SYR2", 0), ("SYR3", 2)]
    assert known_at(MONDAYS[1]) == [("SYR1", 12), ("SYR2", 0), ("SYR3", 2), ("SYR4", 3)]
    assert known_at(MONDAYS[2]) == [("SYR1", 12), ("SYR2", 0), ("SYR4", 3)]  # SYR3 deleted
    assert known_at(MONDAYS[3]) == [("SYR1", 12), ("SYR2", 0), ("SYR3", 4), ("SYR4", 3)]  # revived by a newer revision


def test_a_deletion_older_than_the_stored_revision_is_not_applied(tmp_path, config):
    deliver(config, MONDAYS[0], write_csv(tmp_path / "a.csv", ACLED_HEADER, [acled_row("SYR1", event_date="2023-02-07",
                                                                                       fatalities=1, timestamp=T2)]))  # fmt: skip
    deleted = tmp_path / "deleted.csv"
    deleted.write_text(f"event_id_cnty,deleted_timestamp\nSYR1,{T1}\n", encoding="utf-8")
    assert "0 deleted, 0 not in the database (remembered), 1 edited after their deletion (kept)" in deliver(config, MONDAYS[1], deleted)
    assert query(config, "SELECT count(*) FROM incidents") == [(1,)]
    assert query(config, "SELECT deleted, not_found, older FROM ingests ORDER BY id DESC LIMIT 1") == [(0, 0, 1)]


def test_a_bad_deletion_row_is_rejected_with_its_reason(tmp_path, config):
    deleted = tmp_path / "deleted.csv"
    deleted.write_text("event_id_cnty,deleted_timestamp\n,1677000000\nSYR2,yesterday\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(deleted)], env={"MONITOR_NOW": MONDAYS[0]})
    assert result.exit_code == 1
    assert "line 2: event_id_cnty is empty (expected the id of a deleted ACLED event)" in result.stderr
    assert "line 3: deleted_timestamp 'yesterday' is not a number" in result.stderr


def test_migration_0010_dates_first_sight_by_the_ingest_that_last_wrote_each_event(tmp_path):
    path = tmp_path / "m.db"
    conn = sqlite3.connect(path)
    for _, statements in MIGRATIONS[:9]:
        for sql in statements:
            sql(conn) if callable(sql) else conn.execute(sql)
    conn.execute("PRAGMA user_version = 9")
    for i, at in enumerate(["2023-02-13T06:00:00+00:00", "2023-02-20T06:00:00+00:00"], start=1):
        conn.execute("INSERT INTO ingests (id, file, sha256, format, source, encoding, rows_read, inserted, updated, unchanged,"
                     " rejected, ingested_at) VALUES (?, 'f.csv', ?, 'acled', 'acled', 'utf-8', 1, 1, 0, 0, 0, ?)",
                     [i, f"sha{i}", at])  # fmt: skip
        conn.execute("INSERT INTO incidents (source, source_id, event_date, date_end, ingest_id) VALUES"
                     " ('acled', ?, '2023-02-07', '2023-02-07', ?)", [f"SYR{i}", i])  # fmt: skip
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = store.db.execute("SELECT source_id, first_ingest_id, first_seen FROM incidents ORDER BY source_id").fetchall()
        assert rows == [("SYR1", 1, "2023-02-13T06:00:00+00:00"), ("SYR2", 2, "2023-02-20T06:00:00+00:00")]
        assert store.db.execute("SELECT count(*) FROM incident_history").fetchone()[0] == 0


#: Mondays from 2023-01-02 (week 0 of the weekly-delivery tests), at 06:00 UTC: delivery k is made on monday(k).
def monday(k: int) -> datetime:
    return datetime(2023, 1, 2, 6, tzinfo=timezone.utc) + timedelta(weeks=k)


def weekly_deliveries(tmp_path: Path, config: Path, *, weeks: int, deliveries: int, surge: int = 0, late: int = 0,
                      surge_week: int | None = None, first: int = 1) -> None:  # fmt: skip
    """Event weeks 0..weeks-1 of 4 events each: two reach the export the Monday after their week (delivery w + 1),
    one a week later, one two weeks later; `surge` more events in week `surge_week` (default: the last), all in
    its first delivery, and `late` more that reach the export a week after that.
    A cumulative export is ingested every Monday, deliveries `first`..`deliveries`."""
    events = []  # (event id, event date, delivery it first appears in)
    for w in range(weeks):
        day = (monday(w) + timedelta(days=2)).date().isoformat()
        events += [(f"W{w}a", day, w + 1), (f"W{w}b", day, w + 1), (f"W{w}c", day, w + 2), (f"W{w}d", day, w + 3)]
    at = weeks - 1 if surge_week is None else surge_week
    events += [(f"S{i}", (monday(at) + timedelta(days=3)).date().isoformat(), at + 1) for i in range(surge)]
    events += [(f"L{i}", (monday(at) + timedelta(days=4)).date().isoformat(), at + 2) for i in range(late)]
    for k in range(first, deliveries + 1):
        known = [acled_row(eid, event_date=day, fatalities=0, timestamp=str(int(monday(first).timestamp())))
                 for eid, day, first in events if first <= k]  # fmt: skip
        deliver(config, monday(k).isoformat(), write_csv(tmp_path / f"acled_{k:02d}.csv", ACLED_HEADER, known))


def test_delays_measured_over_weekly_deliveries(tmp_path, config):
    """Twelve event weeks of 4 events each: two reach the export the Monday after their week, one a week later,
    one two weeks later; a cumulative export is ingested every Monday for 13 weeks. By hand: the share known
    at delay 0 is 2/4, at delay 1 3/4, at delay 2 all; the step from delay 0 rests on the 11 event weeks whose
    delay 1 is over by the last delivery, the step from delay 1 on 10."""
    weekly_deliveries(tmp_path, config, weeks=12, deliveries=13)
    result = CliRunner().invoke(cli, ["--config", str(config), "delays", "--max-delay", "2", "--format", "json"],
                                env={"MONITOR_NOW": monday(13).isoformat()})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"delay": 0, "known": 0.5, "weeks": 11},
        {"delay": 1, "known": 0.75, "weeks": 10},
        {"delay": 2, "known": 1.0, "weeks": None},
    ]
    table = CliRunner().invoke(cli, ["--config", str(config), "delays", "--max-delay", "2"], env={"MONITOR_NOW": monday(13).isoformat()})
    assert table.stdout.splitlines()[0] == (
        "reporting delays of all sources: 47 incidents in 12 weeks, as of 2023-04-03 06:00 UTC (the latest ingest)"
    )
    # a fourth delay cannot be measured yet: 8 event weeks must have reached it
    short = CliRunner().invoke(cli, ["--config", str(config), "delays", "--max-delay", "6"], env={"MONITOR_NOW": monday(13).isoformat()})
    assert short.exit_code == 1
    assert "too little history: each delay up to 6 weeks needs 8 event weeks that have reached it, and 6 have reached 6" in short.stderr


def test_check_nowcasts_the_week_still_filling(tmp_path):
    """Twenty event weeks of 4 events (2 known the Monday after the week, 1 a week later, 1 two weeks later),
    delivered every Monday. On the Monday after week 19 its 2 known events are half its eventual count
    (F(0) = 2/4, measured); the prior mean is 4 a week (week 18's 3 known events at F(1) = 3/4 count as 4)
    and its shape 1 (PRIOR_SHAPE_MAX: the steady history alone would give infinity). The events still to come
    are NB(1 + 2, p = (1/4 + 1/2) / (1/4 + 1)) = NB(3, 0.6): mean 2, cumulative 0.216, 0.475, 0.683, 0.821,
    0.904, 0.950 at 0..5, so the nowcast is 2 + 2 = 4 and its 90 % interval 2 + [0, 5]."""
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\npath = "m.db"\n[[series]]\nname = "all"\n', encoding="utf-8")
    weekly_deliveries(tmp_path, config, weeks=20, deliveries=20)
    result = CliRunner().invoke(cli, ["--config", str(config), "check", "--week", "2023-W20", "--format", "json"],
                                env={"MONITOR_NOW": monday(20).isoformat()})  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    (row,) = json.loads(result.stdout)
    assert (row["series"], row["week"], row["observed"]) == ("all/total", "2023-W20", 2)
    assert (row["complete_share"], row["nowcast"], row["nowcast_low"], row["nowcast_high"]) == (0.5, 4.0, 2.0, 7.0)
    # a week whose reporting is complete gets none, and check shows no nowcast columns then
    later = CliRunner().invoke(cli, ["--config", str(config), "check", "--week", "2023-W10", "--format", "json"],
                               env={"MONITOR_NOW": monday(20).isoformat()})  # fmt: skip
    assert "nowcast" not in json.loads(later.stdout)[0]


def test_a_week_over_the_longest_delay_before_the_latest_ingest_is_complete_without_measuring(tmp_path):
    """Twelve event weeks delivered over 13 Mondays: too little history to measure delays up to MAX_DELAY (8)
    weeks, so a week still within 8 weeks of the latest ingest gets no nowcast and a note saying why. A week that
    ended 8 weeks or more before the latest ingest (2023-W05 ended 8 weeks and 6 hours before it) is complete
    whatever the delays: it is judged on its count, with no note and without reading every sighting."""
    from monitor.delays import MAX_DELAY

    assert MAX_DELAY == 8
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\npath = "m.db"\n[[series]]\nname = "all"\n', encoding="utf-8")
    weekly_deliveries(tmp_path, config, weeks=12, deliveries=13)

    def check(week: str):
        result = CliRunner().invoke(cli, ["--config", str(config), "check", "--week", week, "--format", "json"],
                                    env={"MONITOR_NOW": monday(14).isoformat()})  # fmt: skip
        assert result.exit_code in (0, 3), result.output
        (row,) = json.loads(result.stdout)
        assert "nowcast" not in row
        return result.stderr

    for week in ("2023-W06", "2023-W12"):
        assert "note: no nowcast for the latest week: too little history" in check(week), week
    for week in ("2023-W05", "2023-W01"):
        assert "nowcast" not in check(week), week


def test_the_report_shows_the_nowcast_of_a_flagged_week_still_filling(tmp_path):
    """The twenty deliveries again, with a surge of 12 more events in the last week, all known at once: the
    week is flagged on its 14 known events, and the report says where its count is heading and draws it."""
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\npath = "m.db"\n[report]\nfolder = "reports"\n[[series]]\nname = "all"\n', encoding="utf-8")
    weekly_deliveries(tmp_path, config, weeks=20, deliveries=20, surge=12)
    result = CliRunner().invoke(cli, ["--config", str(config), "report", "--week", "2023-W20"], env={"MONITOR_NOW": monday(20).isoformat()})
    assert result.exit_code == 0, result.output
    report = (tmp_path / "reports" / "2023-W20" / "report.md").read_text(encoding="utf-8")
    # 14 known at F(0) = 0.5 against a prior of 4 a week with shape 1: 14 + (1 + 14) · 0.5 / (1/4 + 0.5) = 24
    sentence = next(line for line in report.splitlines() if "Reporting of this week is still coming in" in line)
    assert "about 50% of a week's events are in the data by now, so its final count is nowcast at 24 (90 % interval" in sentence
    charts = list((tmp_path / "reports" / "2023-W20" / "charts").glob("*.png"))
    assert len(charts) == 1 and charts[0].stat().st_size > 10_000
