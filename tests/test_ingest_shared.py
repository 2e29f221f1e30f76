"""Ingest the real files of ../shared/data (see its README) into a temp-dir SQLite store."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from monitor.config import load_config
from monitor.errors import IngestError
from monitor.sources import read_file
from monitor.store import Store

NOW = datetime(2024, 1, 1)


#: How the Iraq SIGACTS file is read: the mapping shipped in the example config.
IRAQ = load_config(Path(__file__).resolve().parents[1] / "config" / "monitor.toml").ingest.mappings[0]
UCDP = "ucdp_ged_syria_2016-01-01_2019-11-30.csv"
ACLED = "acled_sample_9000_2022-01-01_2022-06-30.csv"
LEGACY = "acled_legacy_africa_2016-01-01_2016-05-28.csv"
IRAQ_FILE = "sigacts_iraq_2004-01-01_2007-07.csv"
CEP = "cep_central_syria_isis_monthly_2022-2023.csv"

#: file -> (format, source, encoding, rows read, kept, rejected)
EXPECTED = {
    UCDP: ("ucdp", "ucdp", "utf-8", 16_566, 16_566, 0),
    ACLED: ("acled", "acled", "utf-8", 9_000, 9_000, 0),
    LEGACY: ("acled-legacy", "acled", "cp1252", 6_831, 6_831, 0),
    # 4,826 rows are PDF page headers parsed as data (time empty, 'Attack Type', 'Target', ...)
    IRAQ_FILE: ("generic", "sigacts-iraq", "utf-8", 162_852, 158_026, 4_826),
}
IRAQ_REJECT = "time is empty (expected date format '%Y-%m-%d %H:%M:%S', e.g. 2023-01-31 13:45:00)"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def loaded(shared_data, tmp_path_factory):
    """Every event file ingested once: (database path, {file name: (ParsedFile, IngestResult)})."""
    db = tmp_path_factory.mktemp("shared") / "monitor.db"
    results = {}
    with Store(db) as store:
        for path in sorted(shared_data.glob("*.csv")):
            if path.name == CEP:  # monthly facts from reports, not event data
                continue
            parsed = read_file(path, mappings=[IRAQ], now=NOW)
            results[path.name] = (parsed, store.ingest(parsed, sha256=sha256(path), now=NOW))
    return db, results


def test_every_file_is_read_with_the_expected_counts(loaded):
    db, results = loaded
    assert set(EXPECTED) <= set(results)
    for name, (fmt, source, encoding, rows, kept, rejected) in EXPECTED.items():
        parsed, result = results[name]
        assert (parsed.format, parsed.source, parsed.encoding) == (fmt, source, encoding), name
        assert (parsed.rows_read, len(parsed.incidents), len(parsed.rejects)) == (rows, kept, rejected), name
        assert (result.rows_read, result.inserted, result.updated, result.rejected) == (rows, kept, 0, rejected), name
        assert result.inserted + result.rejected == result.rows_read


def test_iraq_rejects_are_the_pdf_page_headers(loaded, shared_data):
    parsed, _ = loaded[1][IRAQ_FILE]
    assert len(parsed.incidents) + len(parsed.rejects) == parsed.rows_read == 162_852
    assert Counter(r.reason for r in parsed.rejects) == {IRAQ_REJECT: 4_826}
    assert all(r.raw.startswith(",Attack Type,Target") for r in parsed.rejects)
    lines = (shared_data / IRAQ_FILE).read_text(encoding="utf-8").splitlines()
    header_rows = [n for n, line in enumerate(lines, 1) if line.startswith(",Attack Type,")]
    assert [r.line for r in parsed.rejects] == header_rows  # physical line numbers
    # what is left matches the data README: 186 weeks (ending Saturday), 106-1,771 a week, peak ending 2007-04-28
    weeks = pd.to_datetime(pd.Series([i.event_date for i in parsed.incidents])).dt.to_period("W-SAT").value_counts()
    assert (len(weeks), weeks.min(), weeks.max(), str(weeks.idxmax().end_time.date())) == (186, 106, 1771, "2007-04-28")


def test_database_holds_what_was_kept(loaded):
    db, _ = loaded
    with Store(db) as store:
        by_source = {r["source"]: r["n"] for r in store.db.query("SELECT source, count(*) AS n FROM incidents GROUP BY source")}
        assert by_source == {"acled": 9_000 + 6_831, "ucdp": 16_566, "sigacts-iraq": 158_026}
        iraq = next(i for i in store.ingests() if i["file"].endswith(IRAQ_FILE))
        rejects = store.rejects(ingest_id=iraq["id"])
        assert len(rejects) == 4_826 and rejects[0]["reason"] == IRAQ_REJECT
        assert store.stats(until=date(2019, 12, 31))["latest_event_date"] == date(2019, 11, 30)


def test_cep_monthly_facts_are_refused_with_a_clear_error(shared_data):
    with pytest.raises(IngestError) as exc:
        read_file(shared_data / CEP, mappings=[IRAQ], now=NOW)
    message = str(exc.value)
    assert message.startswith(f"{shared_data / CEP}: line 1: header 'period,scope,attacks_min,")
    assert "matches no known format (accepted: acled" in message and "\n" not in message


def test_reingest_changes_nothing_and_sha_is_known(loaded, shared_data):
    db, results = loaded
    with Store(db) as store:
        before = store.stats()["records_total"]
        for name, (first, _) in results.items():
            path = shared_data / name
            assert store.ingested(sha256(path)), name
            again = store.ingest(read_file(path, mappings=[IRAQ], now=NOW), sha256=sha256(path), now=NOW)
            assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(first.incidents)), name
        assert store.stats()["records_total"] == before


def test_revised_rows_update_in_place(loaded, shared_data, tmp_path):
    db = tmp_path / "copy.db"
    shutil.copy(loaded[0], db)
    with open(shared_data / ACLED, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, [row for _, row in zip(range(5), reader)]
    rows[1]["fatalities"] = str(int(rows[1]["fatalities"]) + 4)
    rows[1]["timestamp"] = "1700000000"
    rows[3]["notes"] = rows[3]["notes"] + " [revised]"
    rows[3]["timestamp"] = "1700000001"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    revised = tmp_path / "acled_revised.csv"
    revised.write_text(buffer.getvalue(), encoding="utf-8")

    with Store(db) as store:
        total = store.stats()["records_total"]
        result = store.ingest(read_file(revised, now=NOW), sha256=sha256(revised), now=NOW)
        assert (result.inserted, result.updated, result.unchanged) == (0, 2, 3)
        assert store.stats()["records_total"] == total
        frame = store.incidents_frame().set_index("source_id")
        assert frame.loc[rows[1]["event_id_cnty"], "fatalities"] == int(rows[1]["fatalities"])
        assert frame.loc[rows[1]["event_id_cnty"], "revision"] == "1700000000"
        assert frame.loc[rows[3]["event_id_cnty"], "notes"].endswith(" [revised]")


def test_legacy_acled_quirks(loaded):
    db, _ = loaded
    with Store(db) as store:
        legacy = next(i for i in store.ingests() if i["file"].endswith(LEGACY))
        assert (legacy["format"], legacy["encoding"]) == ("acled-legacy", "cp1252")
        frame = store.incidents_frame(end=date(2016, 5, 28))
        notes = frame.set_index("source_id")["notes"]
        dates = frame.set_index("source_id")["event_date"]
    # cp1252 0x92 is a right single quote; é and other accents decode too
    assert notes["2779RTA"].startswith("The People\u2019s National Army (ANP) discovered")
    assert "Yéléwa" in notes["5683RTA"]
    assert dates["2779RTA"] == pd.Timestamp("2016-02-27")  # written 27/02/2016
    # a bare LF inside a quoted NOTES field is kept; the record is still one event
    assert "teargas and stun grenades at protesting workers and students. \nSome protesters" in notes["1607RTA"]
    legacy_ids = notes.index[notes.index.str.endswith("RTA")]
    assert (dates[legacy_ids] < pd.Timestamp("2016-01-01")).sum() == 112  # back-filled events are kept


def test_ucdp_admin1_names_match_acled(loaded):
    db, _ = loaded
    with Store(db) as store:
        frame = store.incidents_frame()
    ucdp = frame[frame["source"] == "ucdp"]
    acled_syria = set(frame[(frame["source"] == "acled") & (frame["country"] == "Syria")]["admin1"])
    counts = ucdp["admin1"].value_counts().to_dict()
    assert not any("Governorate" in name for name in counts)
    assert acled_syria <= set(counts)  # every ACLED governorate spelling is used by UCDP rows too
    assert {k: counts[k] for k in ("Deir ez Zor", "Hama", "Rural Damascus", "Idleb", "Ar Raqqa", "Al Hasakeh", "")} == {
        "Deir ez Zor": 2115, "Hama": 1386, "Rural Damascus": 2118, "Idleb": 1863, "Ar Raqqa": 1424, "Al Hasakeh": 465, "": 339,
    }
    assert set(counts) == {
        "Aleppo", "Rural Damascus", "Deir ez Zor", "Idleb", "Ar Raqqa", "Hama", "Homs", "Dara", "Damascus",
        "Al Hasakeh", "Lattakia", "", "Quneitra", "As Sweida", "Tartous",
    }
    assert set(ucdp["event_type"]) == {"State-based conflict", "Non-state conflict", "One-sided violence"}
    assert (ucdp["date_end"] > ucdp["event_date"].dt.strftime("%Y-%m-%d")).sum() == 1_086  # multi-day events


def test_ucdp_2019_monthly_counts_match_the_data_readme(loaded):
    db, _ = loaded
    with Store(db) as store:
        frame = store.incidents_frame(start=date(2019, 1, 1), end=date(2019, 11, 30))
    ucdp = frame[frame["source"] == "ucdp"]
    by_month = ucdp.groupby(ucdp["event_date"].dt.month).agg(events=("source_id", "size"), deaths=("fatalities", "sum"))
    assert by_month["events"].tolist() == [170, 132, 162, 146, 254, 208, 225, 200, 96, 259, 192]
    assert by_month["deaths"].tolist() == [1035, 471, 885, 464, 1135, 1296, 963, 1441, 197, 1334, 839]
