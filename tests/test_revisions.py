"""Older revisions never win (issue 12, item 8), driven through `monitor ingest` on a real SQLite file.

ACLED's current export carries `timestamp`, the Unix seconds of an event's last edit. The issue's
case: the newer revision of SYR1 (2023-02-14, 12 killed) is stored, then a file holding the older
revision (2023-02-07, 1 killed) arrives; before the fix it overwrote the newer one.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.store import newer_or_same

NOW = "2023-03-06T06:00:00+00:00"

#: ACLED's current 31-column export layout (../shared/data/README.md, "Columns", 2).
ACLED_HEADER = (
    "event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,assoc_actor_1,inter1,"
    "actor2,assoc_actor_2,inter2,interaction,civilian_targeting,iso,region,country,admin1,admin2,admin3,location,"
    "latitude,longitude,geo_precision,source,source_scale,notes,fatalities,tags,timestamp"
).split(",")
UCDP_HEADER = (
    "id,year,active_year,type_of_violence,conflict_new_id,conflict_name,dyad_new_id,dyad_name,side_a_new_id,side_a,"
    "side_b_new_id,gwnob,side_b,number_of_sources,source_article,source_office,source_date,source_headline,"
    "source_original,where_prec,where_coordinates,adm_1,adm_2,latitude,longitude,geom_wkt,priogrid_gid,country,"
    "country_id,region,event_clarity,date_prec,date_start,date_end,deaths_a,deaths_b,deaths_civilians,deaths_unknown,"
    "low,best,high"
).split(",")

OLD, NEW = "1676300000", "1676900000"  # 2023-02-13 and 2023-02-20 (UTC), Unix seconds


def acled_row(event_id: str, *, event_date: str, fatalities: int, timestamp: str, notes: str = "clash reported") -> dict:
    return {
        "event_id_cnty": event_id, "event_date": event_date, "year": event_date[:4], "time_precision": "1",
        "disorder_type": "Political violence", "event_type": "Battles", "sub_event_type": "Armed clash",
        "actor1": "Islamic State (Syria)", "inter1": "2", "actor2": "Military Forces of Syria (2000-)", "inter2": "1",
        "interaction": "12", "iso": "760", "region": "Middle East", "country": "Syria", "admin1": "Homs",
        "admin2": "Tadmor", "location": "Palmyra", "latitude": "34.5574", "longitude": "38.2752",
        "geo_precision": "1", "source": "SOHR", "source_scale": "National", "notes": notes,
        "fatalities": str(fatalities), "timestamp": timestamp,
    }  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([row.get(h, "") for h in header] for row in rows)
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text('[database]\npath = "m.db"\n', encoding="utf-8")
    return path


def ingest(config: Path, *files: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", *map(str, files)], env={"MONITOR_NOW": NOW})
    return result.exit_code, result.stdout, result.stderr


def stored(config: Path, event_id: str) -> tuple:
    with sqlite3.connect(config.parent / "m.db") as conn:
        return conn.execute(
            "SELECT event_date, fatalities, notes, revision FROM incidents WHERE source_id = ?", [event_id]
        ).fetchone()


def ingest_log(config: Path) -> list[tuple]:
    with sqlite3.connect(config.parent / "m.db") as conn:
        return conn.execute("SELECT inserted, updated, unchanged, older, rejected FROM ingests ORDER BY id").fetchall()


NEWER = {"event_date": "2023-02-14", "fatalities": 12, "timestamp": NEW, "notes": "12 soldiers killed (revised)"}
OLDER = {"event_date": "2023-02-07", "fatalities": 1, "timestamp": OLD, "notes": "1 soldier killed"}


def test_an_older_revision_ingested_after_a_newer_one_is_kept_out(tmp_path, config):
    newer = write_csv(tmp_path / "acled_new.csv", ACLED_HEADER, [acled_row("SYR1", **NEWER)])
    older = write_csv(tmp_path / "acled_old.csv", ACLED_HEADER, [acled_row("SYR1", **OLDER)])
    assert ingest(config, newer) == (0, f"{newer}: acled, 1 rows read, 1 inserted, 0 updated, 0 unchanged, 0 rejected\n", "")

    code, out, err = ingest(config, older)
    assert (code, err) == (0, "")
    assert out == f"{older}: acled, 1 rows read, 0 inserted, 0 updated, 0 unchanged, 1 older (kept the stored revision), 0 rejected\n"
    assert stored(config, "SYR1") == ("2023-02-14", 12, "12 soldiers killed (revised)", NEW)
    assert ingest_log(config) == [(1, 0, 0, 0, 0), (0, 0, 0, 1, 0)]


def test_a_newer_revision_ingested_after_an_older_one_updates_it(tmp_path, config):
    older = write_csv(tmp_path / "acled_old.csv", ACLED_HEADER, [acled_row("SYR1", **OLDER)])
    newer = write_csv(tmp_path / "acled_new.csv", ACLED_HEADER, [acled_row("SYR1", **NEWER)])
    assert ingest(config, older)[0] == 0
    assert stored(config, "SYR1") == ("2023-02-07", 1, "1 soldier killed", OLD)
    assert ingest(config, newer) == (0, f"{newer}: acled, 1 rows read, 0 inserted, 1 updated, 0 unchanged, 0 rejected\n", "")
    assert stored(config, "SYR1") == ("2023-02-14", 12, "12 soldiers killed (revised)", NEW)
    assert ingest_log(config) == [(1, 0, 0, 0, 0), (0, 1, 0, 0, 0)]


def test_the_same_revision_again_is_unchanged(tmp_path, config):
    first = write_csv(tmp_path / "acled_1.csv", ACLED_HEADER, [acled_row("SYR1", **NEWER)])
    # another file (another sha256, so it is read): the same revision of SYR1 and a new event
    second = write_csv(tmp_path / "acled_2.csv", ACLED_HEADER,
                       [acled_row("SYR1", **NEWER), acled_row("SYR2", event_date="2023-02-15", fatalities=3, timestamp=NEW)])  # fmt: skip
    assert ingest(config, first)[0] == 0
    assert ingest(config, second) == (0, f"{second}: acled, 2 rows read, 1 inserted, 0 updated, 1 unchanged, 0 rejected\n", "")
    assert stored(config, "SYR1") == ("2023-02-14", 12, "12 soldiers killed (revised)", NEW)


def test_the_same_revision_read_differently_is_updated(tmp_path, config):
    """Equal revisions are the same ACLED edit: a difference comes from how it was read (this program's
    normalisation, a fixed file), so the latest reading replaces the stored one."""
    first = write_csv(tmp_path / "acled_1.csv", ACLED_HEADER, [acled_row("SYR1", **NEWER)])
    again = write_csv(tmp_path / "acled_2.csv", ACLED_HEADER, [acled_row("SYR1", **{**NEWER, "notes": "12 killed"})])
    assert ingest(config, first)[0] == 0
    assert ingest(config, again) == (0, f"{again}: acled, 1 rows read, 0 inserted, 1 updated, 0 unchanged, 0 rejected\n", "")
    assert stored(config, "SYR1") == ("2023-02-14", 12, "12 killed", NEW)


def test_a_file_mixing_older_newer_and_new_rows_is_judged_row_by_row(tmp_path, config):
    first = write_csv(tmp_path / "acled_1.csv", ACLED_HEADER, [
        acled_row("SYR1", **NEWER), acled_row("SYR2", event_date="2023-02-08", fatalities=2, timestamp=OLD),
        acled_row("SYR3", event_date="2023-02-09", fatalities=4, timestamp=OLD),
    ])  # fmt: skip
    second = write_csv(tmp_path / "acled_2.csv", ACLED_HEADER, [
        acled_row("SYR1", **OLDER),  # older than stored: kept out
        acled_row("SYR2", event_date="2023-02-08", fatalities=5, timestamp=NEW),  # newer: updated
        acled_row("SYR3", event_date="2023-02-09", fatalities=4, timestamp=OLD),  # same: unchanged
        acled_row("SYR4", event_date="2023-02-10", fatalities=0, timestamp=OLD),  # new: inserted, whatever its age
    ])  # fmt: skip
    assert ingest(config, first)[0] == 0
    code, out, _ = ingest(config, second)
    line = f"{second}: acled, 4 rows read, 1 inserted, 1 updated, 1 unchanged, 1 older (kept the stored revision), 0 rejected\n"
    assert (code, out) == (0, line)
    assert [stored(config, f"SYR{i}")[:2] for i in range(1, 5)] == [
        ("2023-02-14", 12), ("2023-02-08", 5), ("2023-02-09", 4), ("2023-02-10", 0)]  # fmt: skip


def test_revisions_are_compared_as_numbers_not_text(tmp_path, config):
    # as text "999999999" > "1676900000"; as seconds it is 2001, far older
    newer = write_csv(tmp_path / "acled_new.csv", ACLED_HEADER, [acled_row("SYR1", **NEWER)])
    ancient = write_csv(tmp_path / "acled_2001.csv", ACLED_HEADER, [acled_row("SYR1", **{**OLDER, "timestamp": "999999999"})])
    assert ingest(config, newer)[0] == 0
    assert "1 older (kept the stored revision)" in ingest(config, ancient)[1]
    assert stored(config, "SYR1")[:2] == ("2023-02-14", 12)


def test_rows_without_a_revision_keep_the_latest_ingest_winning(tmp_path, config):
    """No timestamp on either side: nothing says which row is older, so the latest ingest wins, as before."""
    newer = write_csv(tmp_path / "acled_new.csv", ACLED_HEADER, [acled_row("SYR1", **NEWER)])
    undated = write_csv(tmp_path / "acled_undated.csv", ACLED_HEADER, [acled_row("SYR1", **{**OLDER, "timestamp": ""})])
    assert ingest(config, newer)[0] == 0
    assert ingest(config, undated) == (0, f"{undated}: acled, 1 rows read, 0 inserted, 1 updated, 0 unchanged, 0 rejected\n", "")
    assert stored(config, "SYR1") == ("2023-02-07", 1, "1 soldier killed", "")
    # and a dated row replaces an undated one, whatever its timestamp
    assert ingest(config, write_csv(tmp_path / "acled_old.csv", ACLED_HEADER, [acled_row("SYR1", **OLDER)]))[0] == 0
    assert stored(config, "SYR1")[3] == OLD


def test_ucdp_has_no_revision_so_the_latest_ingest_wins(tmp_path, config):
    """UCDP GED rows carry no version (neither the 19.1 nor the 20.1+ layout has a column for it)."""
    def ucdp(best: str, day: str) -> dict:
        return {"id": "244657", "type_of_violence": "1", "side_a": "Government of Syria", "side_b": "IS",
                "country": "Syria", "adm_1": "Homs governorate", "date_start": day, "date_end": day, "best": best}  # fmt: skip

    first = write_csv(tmp_path / "ged_a.csv", UCDP_HEADER, [ucdp("12", "2019-02-14")])
    second = write_csv(tmp_path / "ged_b.csv", UCDP_HEADER, [ucdp("1", "2019-02-07")])
    assert ingest(config, first)[0] == 0
    assert ingest(config, second) == (0, f"{second}: ucdp, 1 rows read, 0 inserted, 1 updated, 0 unchanged, 0 rejected\n", "")
    assert stored(config, "244657")[:2] == ("2019-02-07", 1)


def test_a_timestamp_that_is_not_unix_seconds_rejects_its_row(tmp_path, config):
    data = write_csv(tmp_path / "acled.csv", ACLED_HEADER, [
        acled_row("SYR1", **{**NEWER, "timestamp": "2023-02-20 10:00"}),
        acled_row("SYR2", **{**NEWER, "timestamp": "1.6769E+09"}),  # a spreadsheet's number format: still seconds
    ])  # fmt: skip
    code, out, err = ingest(config, data)
    assert code == 1 and f"{data}: acled, 2 rows read, 1 inserted, 0 updated, 0 unchanged, 1 rejected\n" == out
    assert f"{data}: line 2: timestamp '2023-02-20 10:00' is not a number (expected a whole number >= 0)" in err
    assert stored(config, "SYR2")[3] == "1676900000"


@pytest.mark.parametrize(
    ("incoming", "stored_revision", "replaces"),
    [
        ("1676900000", "1676300000", True),  # newer
        ("1676300000", "1676300000", True),  # the same: replaced only if the content differs
        ("1676300000", "1676900000", False),  # older: never
        ("999999999", "1676900000", False),  # compared as numbers
        ("", "1676900000", True),  # no revision coming in: the latest ingest wins
        ("1676300000", "", True),  # none stored (legacy ACLED, UCDP, mapped CSV, or stored before): same
        ("", "", True),
    ],
)
def test_newer_or_same(incoming, stored_revision, replaces):
    assert newer_or_same(incoming, stored_revision) is replaces


def test_the_report_and_the_ingest_log_carry_the_older_count(tmp_path, config):
    from monitor.report.markdown import latest_ingest_text
    from monitor.store import Store

    newer = write_csv(tmp_path / "acled_new.csv", ACLED_HEADER, [acled_row("SYR1", **NEWER)])
    older = write_csv(tmp_path / "acled_old.csv", ACLED_HEADER, [acled_row("SYR1", **OLDER)])
    assert ingest(config, newer)[0] == 0
    with Store(config.parent / "m.db") as store:
        assert latest_ingest_text(store.last_ingest()).endswith(": 1 inserted, 0 updated, 0 rejected")
    assert ingest(config, older)[0] == 0
    with Store(config.parent / "m.db") as store:
        last = store.last_ingest()
        assert (last.updated, last.unchanged, last.older) == (0, 0, 1)
        assert latest_ingest_text(last).endswith(": 0 inserted, 0 updated, 1 older (kept the stored revision), 0 rejected")
