"""The SQLite store: migrations, one-transaction ingest, upserts, rollbacks, alert log."""

from __future__ import annotations

import hashlib
import math
import sqlite3
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from monitor.errors import IngestError, StoreError
from monitor.sources import read_file
from monitor.store import MIGRATIONS, SCHEMA_VERSION, Store
from monitor.types import INCIDENT_FIELDS, CountRow, Detection, Incident, ParsedFile, Reject

DATA = Path(__file__).parent / "data"
NOW = datetime(2024, 1, 1, 12, 0)


def incident(source_id: str, day: str = "2023-02-17", **changes) -> Incident:
    base = Incident(
        source="acled", source_id=source_id, event_date=day, date_end=day, country="Syria", admin1="Homs",
        admin2="Palmyra", location="Palmyra", latitude=34.55, longitude=38.27, event_type="Battles",
        sub_event_type="Armed clash", actor1="Islamic State (Syria)", actor2="Military Forces of Syria (2000-)",
        fatalities=3, notes="note", revision="1676000000",
    )
    return replace(base, **changes)


def parsed(*incidents: Incident, counts: tuple[CountRow, ...] = (), rejects: tuple[Reject, ...] = (), name: str = "f.csv") -> ParsedFile:
    return ParsedFile(
        path=Path(name), format="counts" if counts else "acled", source="acled", encoding="utf-8",
        rows_read=len(incidents) + len(counts) + len(rejects), incidents=incidents, counts=counts, rejects=rejects,
    )


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "monitor.db") as s:
        yield s


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- opening and migrations ---------------------------------------------------------------------------


def test_new_database_is_migrated_and_in_wal_mode(tmp_path):
    path = tmp_path / "monitor.db"
    with Store(path) as s:
        assert s.path == path
        assert [r["name"] for r in s.db.query("SELECT name FROM migrations ORDER BY version")] == [
            "0001_initial", "0002_detection_levels", "0003_alert_lifecycle", "0004_outbox_dead_letters",
            "0005_incident_cells_index", "0006_backtest_burden", "0007_outbox_unknown_outcome",
            "0008_escaped_series_keys", "0009_ingest_older", "0010_incident_history", "0011_provisional_alert_weeks", "0012_fetches",
            "0013_emergence_alerts",
        ]
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
        assert {"incidents", "counts", "ingests", "rejects", "detections", "announcements", "runs", "migrations"} <= set(s.db.table_names())
        indexes = {i.name: (i.columns, i.unique) for i in s.db["incidents"].indexes}
        assert indexes["idx_incidents_source_id"] == (["source", "source_id"], 1)
        assert indexes["idx_incidents_event_date"] == (["event_date"], 0)
    with Store(path) as s:  # reopening applies nothing twice
        assert s.db.execute("SELECT count(*) FROM migrations").fetchone()[0] == SCHEMA_VERSION


def test_a_version_1_database_is_upgraded_and_keeps_its_detections(tmp_path):
    # A database written before detections had levels: only the first migration applied.
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, version INTEGER NOT NULL, applied_at TEXT NOT NULL)")
    for sql in MIGRATIONS[0][1]:
        conn.execute(sql)
    conn.execute("INSERT INTO migrations VALUES ('0001_initial', 1, '2026-01-05T06:00:00')")
    conn.execute(
        "INSERT INTO detections (week, series, week_start, observed, alarm, detector) "
        "VALUES ('2023-W09', 'is_attacks/admin1=Homs', '2023-02-27', 8, 1, 'farrington')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Store(path) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        (row,) = s.detections("2023-W09")
        assert row["series"] == "is_attacks/admin1=Homs" and row["alarm"] is True and row["observed"] == 8
        assert row["level"] == "" and row["qvalue"] is None


def test_non_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("this is a text file, not a database\n")
    with pytest.raises(StoreError) as exc:
        Store(path)
    message = str(exc.value)
    assert message == f"{path}: not an SQLite database (point database.path at a monitor database or a new file)"
    assert path.read_text() == "this is a text file, not a database\n"


def test_folder_and_missing_parent_are_refused(tmp_path):
    with pytest.raises(StoreError, match="is a folder, not a database file"):
        Store(tmp_path)
    with pytest.raises(StoreError, match=r"folder .*nope does not exist"):
        Store(tmp_path / "nope" / "monitor.db")


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "monitor.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as exc:
        Store(path)
    assert str(exc.value) == (
        f"{path}: database schema version {SCHEMA_VERSION + 1} is newer than this program "
        f"(knows up to {SCHEMA_VERSION}); upgrade incident-monitor"
    )


# ---- ingest -------------------------------------------------------------------------------------------------


def test_ingest_inserts_then_recognises_then_updates_in_place(store):
    first = parsed(incident("A"), incident("B"), rejects=(Reject(7, "fatalities '-3' is negative", "raw row"),))
    result = store.ingest(first, sha256="s1", now=NOW)
    assert (result.inserted, result.updated, result.unchanged, result.rejected, result.rows_read) == (2, 0, 0, 1, 3)
    assert store.ingested("s1") and not store.ingested("s2")

    again = store.ingest(first, sha256="s1", now=NOW)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)

    revised = parsed(incident("A", fatalities=9, revision="1677000000"), incident("B"), incident("C"))
    result = store.ingest(revised, sha256="s2", now=NOW)
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)
    frame = store.incidents_frame()
    assert len(frame) == 3
    assert frame.set_index("source_id").loc["A", "fatalities"] == 9
    assert store.db.execute("SELECT id FROM incidents WHERE source_id = 'A'").fetchone()[0] == 1  # same row, updated

    log = store.ingests()
    assert [(i["sha256"], i["inserted"], i["updated"], i["unchanged"], i["rejected"]) for i in log] == [
        ("s1", 2, 0, 0, 1), ("s1", 0, 0, 2, 1), ("s2", 1, 1, 1, 0)]
    assert set(log[0]) >= {"file", "sha256", "format", "source", "encoding", "rows_read", "ingested_at"}
    assert log[0]["ingested_at"] == NOW.isoformat()
    rejects = store.rejects(ingest_id=log[0]["id"])
    assert [(r["file"], r["line"], r["reason"], r["raw"]) for r in rejects] == [("f.csv", 7, "fatalities '-3' is negative", "raw row")]
    assert store.rejects(ingest_id=log[2]["id"]) == [] and len(store.rejects()) == 2  # each ingest keeps its own


def test_unparseable_file_leaves_database_byte_for_byte_unchanged(tmp_path):
    path = tmp_path / "monitor.db"
    with Store(path) as s:
        s.ingest(read_file(DATA / "acled_malformed.csv", now=NOW), sha256="x", now=NOW)
    before = path.read_bytes()
    with Store(path) as s:
        for bad in ("empty.csv", "binary_junk.csv", "acled_header_only.csv", "acled_missing_fatalities.csv", "acled_cp1252.csv"):
            with pytest.raises(IngestError):
                s.ingest(read_file(DATA / bad, now=NOW), sha256=bad, now=NOW)
    assert path.read_bytes() == before


def test_failure_mid_transaction_rolls_everything_back(store):
    store.ingest(parsed(incident("A")), sha256="ok", now=NOW)
    # B is written, then C violates CHECK (fatalities >= 0) inside the same INSERT batch
    bad = parsed(incident("A", fatalities=5), incident("B"), incident("C", fatalities=-1), rejects=(Reject(2, "r", "x"),))
    with pytest.raises(StoreError) as exc:
        store.ingest(bad, sha256="bad", now=NOW)
    assert "failed and was rolled back" in str(exc.value) and "\n" not in str(exc.value)
    frame = store.incidents_frame()
    assert list(frame["source_id"]) == ["A"] and frame["fatalities"].tolist() == [3]
    assert [i["sha256"] for i in store.ingests()] == ["ok"] and store.rejects() == []
    assert not store.ingested("bad")


def test_failure_after_rows_written_rolls_back(store, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "_insert_rejects", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.ingest(parsed(incident("A"), incident("B")), sha256="s", now=NOW)
    assert store.incidents_frame().empty and store.ingests() == []
    monkeypatch.undo()
    assert store.ingest(parsed(incident("A")), sha256="s", now=NOW).inserted == 1  # the store still works


def test_counts_upsert(store):
    row = CountRow(source="counts:w", week_start="2023-02-06", country="Syria", admin1="Homs", admin2="", event_type="",
                   sub_event_type="", actor="Islamic State", count=12, fatalities=30)
    other = replace(row, admin1="Hama", count=4, fatalities=0)
    first = store.ingest(parsed(counts=(row, other)), sha256="c1", now=NOW)
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    second = store.ingest(parsed(counts=(replace(row, count=13), other)), sha256="c2", now=NOW)
    assert (second.inserted, second.updated, second.unchanged) == (0, 1, 1)
    frame = store.counts_frame(start=date(2023, 2, 6), end=date(2023, 2, 6))
    assert list(frame.columns) == ["source", "week_start", "country", "admin1", "admin2", "event_type", "sub_event_type", "actor", "count", "fatalities"]
    assert str(frame["week_start"].dtype).startswith("datetime64")
    assert sorted(frame["count"].tolist()) == [4, 13]
    assert store.counts_frame(start=date(2023, 2, 7)).empty


def test_counts_upsert_looks_rows_up_in_chunks_not_one_select_per_row(store):
    rows = tuple(
        CountRow(source="counts", week_start=date.fromordinal(date(2000, 1, 3).toordinal() + 7 * w).isoformat(), country="Syria",
                 admin1=admin1, admin2="", event_type="", sub_event_type="", actor="", count=w, fatalities=0)
        for w in range(300) for admin1 in ("Homs", "Hama", "Idleb", "Aleppo")
    )
    selects: list[str] = []
    store.db.conn.set_trace_callback(lambda sql: selects.append(sql) if sql.lstrip().upper().startswith("SELECT") else None)
    first = store.ingest(parsed(counts=rows), sha256="c1", now=NOW)
    changed = rows[:1] + tuple(replace(r, count=r.count + 1) for r in rows[1:3]) + rows[3:]
    second = store.ingest(parsed(counts=changed), sha256="c2", now=NOW)
    store.db.conn.set_trace_callback(None)
    assert (first.inserted, first.updated, first.unchanged) == (1200, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 2, 1198)
    lookups = [sql for sql in selects if "FROM counts" in sql]
    assert 0 < len(lookups) <= 2 * 2  # 300 weeks in chunks of 500, per ingest; not 1,200 per ingest
    assert store.counts_frame()["count"].sum() == sum(range(300)) * 4 + 2


def test_same_counts_delivered_under_another_name_are_not_added_twice(store, tmp_path):
    header = "week_start,admin1,count\n2023-02-06,Homs,12\n2023-02-13,Homs,7\n"
    (tmp_path / "is_weekly.csv").write_text(header)
    (tmp_path / "is_weekly (copy).csv").write_text(header)
    first = store.ingest(read_file(tmp_path / "is_weekly.csv", now=NOW), sha256="a", now=NOW)
    again = store.ingest(read_file(tmp_path / "is_weekly (copy).csv", now=NOW), sha256="b", now=NOW)
    assert (first.inserted, again.inserted, again.unchanged) == (2, 0, 2)
    assert store.counts_frame()["count"].sum() == 19


def test_integer_too_big_for_sqlite_is_a_store_error_and_rolls_back(store):
    with pytest.raises(StoreError, match="failed and was rolled back"):
        store.ingest(parsed(incident("A"), incident("B", fatalities=2**63)), sha256="big", now=NOW)
    assert store.incidents_frame().empty and store.ingests() == []


def test_incidents_frame_bounds_are_inclusive(store):
    store.ingest(parsed(*(incident(f"E{d}", f"2023-02-{d:02d}") for d in range(1, 11))), sha256="s", now=NOW)
    frame = store.incidents_frame(start=date(2023, 2, 3), end=date(2023, 2, 5))
    assert list(frame.columns) == list(INCIDENT_FIELDS)
    assert str(frame["event_date"].dtype).startswith("datetime64")
    assert frame["event_date"].dt.strftime("%Y-%m-%d").tolist() == ["2023-02-03", "2023-02-04", "2023-02-05"]
    assert len(store.incidents_frame(end=date(2023, 2, 1))) == 1 and len(store.incidents_frame(start=date(2023, 2, 10))) == 1
    empty = store.incidents_frame(start=date(2030, 1, 1))
    assert empty.empty and list(empty.columns) == list(INCIDENT_FIELDS)
    assert str(empty["event_date"].dtype).startswith("datetime64")
    lat = store.incidents_frame()["latitude"]
    assert lat.dtype == "float64" and lat.iloc[0] == pytest.approx(34.55)


def test_stats(store):
    assert store.stats()["records_total"] == 0 and store.stats()["latest_event_date"] is None
    store.ingest(parsed(incident("A", "2023-02-01"), incident("B", "2023-03-01")), sha256="a", now=NOW)
    ucdp = ParsedFile(Path("u.csv"), "ucdp", "ucdp", "utf-8", 1, (incident("U1", "2019-11-30", source="ucdp"),))
    store.ingest(ucdp, sha256="u", now=datetime(2024, 2, 1))
    stats = store.stats(until=date(2023, 2, 15))
    assert stats["records_total"] == 3
    assert stats["latest_event_date"] == date(2023, 2, 1)
    assert stats["sources"]["acled"] == {"records": 2, "latest_event_date": date(2023, 2, 1), "last_ingest": NOW,
                                         "latest_incident_date": date(2023, 2, 1), "latest_count_week": None}  # fmt: skip
    assert stats["sources"]["ucdp"]["latest_event_date"] == date(2019, 11, 30)
    assert stats["sources"]["ucdp"]["last_ingest"] == datetime(2024, 2, 1)
    assert store.stats()["latest_event_date"] == date(2023, 3, 1)


# ---- detections, announcements, runs ---------------------------------------------------------------------------


def detection(series: str, observed: float, alarm: bool | None) -> Detection:
    return Detection(series=series, week_start=date(2023, 2, 13), observed=observed, expected=4.0, threshold=9.5,
                     score=2.1, pvalue=math.nan, alarm=alarm, detector="farrington", note="" if alarm is not None else "too little history")


def test_detections_upsert_on_week_and_series(store):
    store.save_detections("2023-W07", [detection("is/total", 12, True), detection("is/admin1=Homs", 3, None)])
    store.save_detections("2023-W07", [detection("is/total", 14, True)])
    store.save_detections("2023-W08", [detection("is/total", 1, False)])
    rows = {r["series"]: r for r in store.detections("2023-W07")}
    assert set(rows) == {"is/total", "is/admin1=Homs"}
    assert rows["is/total"]["observed"] == 14 and rows["is/total"]["alarm"] is True
    assert rows["is/total"]["pvalue"] is None  # NaN is stored as NULL
    assert rows["is/admin1=Homs"]["alarm"] is None and rows["is/admin1=Homs"]["note"] == "too little history"
    assert rows["is/total"]["week_start"] == "2023-02-13"
    assert [r["alarm"] for r in store.detections("2023-W08")] == [False]
    assert store.detections("2023-W09") == []


def test_alert_states_and_outbox_commit_together_and_leave_only_once_sent(store):
    from monitor.alerts.lifecycle import AlertState

    now = datetime(2023, 2, 20, 6, 0)
    firing = AlertState(series="is/admin1=Homs", state="firing", severity="alert", band=1, since_week="2023-W07",
                        flagged_weeks=1, announced_week="2023-W07", announced_index=2723, announced_severity="alert",
                        announced_band=1, last_week="2023-W07", last_index=2723)  # fmt: skip
    message = {"route": "default", "recipients": ["a@example.org"], "subject": "s", "message_id": "<m@x>",
               "message": b"Subject: s\r\n\r\nbody\r\n", "series": ["is/admin1=Homs"]}  # fmt: skip
    ids = store.commit_alerts("2023-W07", [firing], [("is/admin1=Homs", "new", "firing", "alert", "")], [message], now=now)
    assert store.alert_states() == {"is/admin1=Homs": firing}
    assert [e["event"] for e in store.alert_events("2023-W07")] == ["new"]
    assert [p["id"] for p in store.pending_outbox()] == ids
    assert store.outbox_message(ids[0]) == message["message"]
    store.mark_failed(ids[0], error="127.0.0.1:25: connection refused", now=now)
    (row,) = store.pending_outbox()
    assert row["attempts"] == 1 and "refused" in row["last_error"] and row["recipients"] == ["a@example.org"]
    store.mark_sent(ids[0], channel="smtp", now=now)
    store.mark_sent(ids[0], channel="smtp", now=datetime(2023, 2, 21))  # a second mark changes nothing
    assert store.pending_outbox() == []
    (sent,) = store.outbox()
    assert sent["sent_at"] == now.isoformat() and sent["attempts"] == 2
    # a failure inside the transaction keeps neither the states nor the messages
    with pytest.raises(Exception):
        store.commit_alerts("2023-W08", [firing], [("x", "new", "firing", "alert", "")], [{**message, "series": None}], now=now)
    assert store.alert_events("2023-W08") == [] and len(store.outbox()) == 1


def test_silences_are_active_until_their_day_or_expiry(store):
    now = datetime(2023, 2, 20, 6, 0)
    first = store.add_silence(filter="Homs", until=date(2023, 3, 5), comment="known offensive", author="ana", now=now)
    second = store.add_silence(filter="Hama", until=date(2023, 2, 20), comment="x", author="bo", now=now)
    assert [s["id"] for s in store.active_silences(now)] == [first, second]
    assert [s["id"] for s in store.active_silences(date(2023, 2, 21))] == [first]  # until is inclusive
    assert store.expire_silence(first, now=now) and not store.expire_silence(first, now=now)
    assert store.active_silences(now) == [store.silences()[0]] and store.silences()[0]["id"] == second
    assert not store.expire_silence(999, now=now)


def test_record_run(store):
    store.record_run(week="2023-W07", started_at=datetime(2023, 2, 20, 6), finished_at=datetime(2023, 2, 20, 6, 1),
                     status="ok", summary={"flagged": ["is/total"], "day": date(2023, 2, 20)})
    (run,) = store.runs()
    assert (run["week"], run["status"], run["started_at"]) == ("2023-W07", "ok", "2023-02-20T06:00:00")
    assert run["summary"] == {"flagged": ["is/total"], "day": "2023-02-20"}


def test_frames_feed_pandas(store):
    store.ingest(parsed(incident("A")), sha256="a", now=NOW)
    frame = store.incidents_frame()
    assert isinstance(frame, pd.DataFrame) and frame.loc[0, "event_date"] == pd.Timestamp("2023-02-17")


# ---- streamed ingest: files read in batches, one transaction ------------------------------------------

ACLED_COLUMNS = "event_id_cnty,event_date,event_type,actor1,country,admin1,fatalities,notes,timestamp"


def _acled_file(path: Path, rows: list[str]) -> Path:
    path.write_text(ACLED_COLUMNS + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def _table_counts(s: Store) -> dict[str, int]:
    return {t: s.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("ingests", "incidents", "counts", "rejects")}


def test_a_file_is_written_in_batches_and_duplicates_are_found_across_batches(store, tmp_path, monkeypatch):
    from monitor.sources import _csv, open_file

    monkeypatch.setattr(_csv, "BATCH", 3)
    rows = [f"SYR{i},2023-02-{10 + i % 7:02d},Battles,IS,Syria,Homs,{i},n{i},1" for i in range(10)]
    rows.insert(8, "SYR1,2023-02-12,Battles,IS,Syria,Homs,5,again,1")  # line 10: a duplicate of line 3, two batches later
    rows.insert(2, "SYR99,2023-13-01,Battles,IS,Syria,Homs,1,bad date,1")  # line 4
    path = _acled_file(tmp_path / "a.csv", rows)
    stream = open_file(path, now=NOW)
    sizes = []
    for items, rejects in stream:
        sizes.append(len(items) + len(rejects))
    assert sizes == [3, 3, 3, 3]  # 12 records in batches of 3
    result = store.ingest(open_file(path, now=NOW), sha256="x", now=NOW)
    assert (result.rows_read, result.inserted, result.rejected) == (12, 10, 2)
    reasons = {r["line"]: r["reason"] for r in store.rejects()}
    assert set(reasons) == {4, 11}
    assert "duplicate event_id_cnty 'SYR1' (first seen on line 3" in reasons[11]
    assert "event_date '2023-13-01' is not a date" in reasons[4]
    assert store.db.execute("SELECT notes FROM incidents WHERE source_id = 'SYR1'").fetchone()[0] == "n1"


def test_a_stream_that_fails_after_batches_were_written_leaves_the_database_as_it_was(store, tmp_path, monkeypatch):
    from monitor.sources import _csv, open_file
    from monitor.types import FileStream

    store.ingest(parsed(incident("A1")), sha256="first", now=NOW)
    before = _table_counts(store)
    monkeypatch.setattr(_csv, "BATCH", 2)
    path = _acled_file(tmp_path / "b.csv", [f"SYR{i},2023-02-10,Battles,IS,Syria,Homs,1,n,1" for i in range(7)])
    stream = open_file(path, now=NOW)

    def failing():
        for n, part in enumerate(stream.parts):
            if n == 2:  # two batches (4 rows) are already in the open transaction
                raise IngestError(f"{path}: line 6: the disk holding the file went away")
            yield part

    broken = FileStream(stream.path, stream.format, stream.source, stream.encoding, stream.kind, failing(), close=stream.close)
    with pytest.raises(IngestError, match="went away"):
        store.ingest(broken, sha256="second", now=NOW)
    assert _table_counts(store) == before
    assert not store.ingested("second")
    assert not store.db.conn.in_transaction


def test_header_only_file_is_refused_inside_the_transaction(store, tmp_path):
    from monitor.sources import open_file

    path = _acled_file(tmp_path / "h.csv", ["", "  "])
    before = _table_counts(store)
    with pytest.raises(IngestError, match=r"h\.csv: line 2: no data rows after the header"):
        store.ingest(open_file(path, now=NOW), sha256="h", now=NOW)
    assert _table_counts(store) == before


def test_bad_bytes_far_into_a_large_file_are_found_with_their_line(tmp_path):
    from monitor.sources import _csv, open_file

    row = "SYR{},2023-02-10,Battles,IS,Syria,Homs,1," + "x" * 200 + ",1"
    n = (_csv._BLOCK // 220) + 500  # past the first block of the byte check
    body = (ACLED_COLUMNS + "\n" + "".join(row.format(i) + "\n" for i in range(n))).encode()
    for bad, needle in ((b"\x00", "binary data (a NUL byte)"), (b"\xff", "byte 0xFF is not UTF-8 text")):
        lines = body.split(b"\n")
        lines[n - 2] = lines[n - 2].replace(b"xxxx", b"xx" + bad + b"x", 1)
        path = tmp_path / "big.csv"
        path.write_bytes(b"\n".join(lines))
        with pytest.raises(IngestError) as err:
            open_file(path, now=NOW)
        assert str(err.value).startswith(f"{path}: line {n - 1}: ") and needle in str(err.value)


def test_batch_size_does_not_change_what_is_stored(shared_data, tmp_path, monkeypatch):
    from monitor.sources import _csv, open_file

    path = shared_data / "acled_sample_9000_2022-01-01_2022-06-30.csv"
    tables = []
    for batch in (_csv.BATCH, 701):
        monkeypatch.setattr(_csv, "BATCH", batch)
        with Store(tmp_path / f"b{batch}.db") as s:
            result = s.ingest(open_file(path, now=NOW), sha256="x", now=NOW)
            assert (result.rows_read, result.inserted) == (9000, 9000)
            tables.append(s.db.execute("SELECT * FROM incidents ORDER BY source_id").fetchall())
    assert tables[0] == tables[1]


@pytest.mark.parametrize("ending", ["\r", "\r\n", "\n"])
def test_line_endings_and_block_cuts_do_not_change_what_is_read(tmp_path, monkeypatch, ending):
    """Blocks of the byte check are cut at any line break (CR-only files have no \\n), and a
    line longer than 16 blocks is cut at a character boundary: valid UTF-8 is never refused,
    and a bad byte is reported on the line the csv reader numbers."""
    from monitor.sources import _csv, open_file

    monkeypatch.setattr(_csv, "_BLOCK", 16)
    rows = [f"SYR{i},2023-02-10,Battles,IS,Syria,Homs,1,Déir éz-Zôr {'é' * (i % 40)},1" for i in range(40)]
    rows.append("SYR99,2023-02-10,Battles,IS,Syria,Homs,1," + "é" * 300 + ",1")  # longer than 16 blocks
    path = tmp_path / "e.csv"
    path.write_bytes((ending.join([ACLED_COLUMNS, *rows]) + ending).encode("utf-8"))
    got = read_file(path, now=NOW)
    assert (got.encoding, got.rows_read, len(got.incidents)) == ("utf-8", 41, 41)
    assert got.incidents[5].notes == "Déir éz-Zôr " + "é" * 5
    bad = path.read_bytes().replace("SYR30,".encode(), b"SYR30\xe9,")  # line 32 (header is line 1)
    path.write_bytes(bad)
    with pytest.raises(IngestError, match=r"e\.csv: line 32: byte 0xE9 is not UTF-8 text"):
        open_file(path, now=NOW)


def test_legacy_acled_in_cp1252_behind_a_utf8_byte_order_mark(tmp_path):
    header = "EVENT_ID_CNTY,GWNO,EVENT_DATE,YEAR,EVENT_TYPE,ACTOR1,COUNTRY,ADMIN1,FATALITIES,NOTES"
    row = "MLI1,432,12/03/2016,2016,Battles,JNIM,Mali,Mopti,2,attaque à Sévaré"
    path = tmp_path / "legacy.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{header}\r\n{row}\r\n".encode("cp1252"))
    got = read_file(path, now=NOW)
    assert (got.format, got.encoding, len(got.incidents)) == ("acled-legacy", "cp1252", 1)
    assert got.incidents[0].source_id == "MLI1" and got.incidents[0].notes == "attaque à Sévaré"


def test_weekly_cells_do_not_overflow_on_huge_fatalities(store):
    """Ingest accepts fatalities up to 2**63 - 1; two of them in one cell must not stop every run."""
    big = 2**62
    store.ingest(parsed(incident("A1", fatalities=big), incident("A2", fatalities=big), incident("A3", fatalities=1)),
                 sha256="big", now=NOW)  # fmt: skip
    cells = store.incident_cells(end=date(2023, 2, 19), columns=["admin1"])
    assert list(cells["events"]) == [3] and cells["fatalities"].iloc[0] == pytest.approx(2.0 * big)
