"""Reading incident files: format detection, normalisation, rejects with physical line numbers."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pytest

from monitor.config import GenericMapping, load_config
from monitor.errors import IngestError
from monitor.sources import FORMATS, detect_format, read_file
from monitor.types import CountRow, Incident

DATA = Path(__file__).parent / "data"
NOW = datetime(2024, 1, 1, 12, 0)


#: How the Iraq SIGACTS file is read: the mapping shipped in the example config.
IRAQ = load_config(Path(__file__).resolve().parents[1] / "config" / "monitor.toml").ingest.mappings[0]

ACLED_HEADER = (
    "event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,assoc_actor_1,inter1,"
    "actor2,assoc_actor_2,inter2,interaction,civilian_targeting,iso,region,country,admin1,admin2,admin3,location,"
    "latitude,longitude,geo_precision,source,source_scale,notes,fatalities,tags,timestamp"
).split(",")
LEGACY_HEADER = (
    "GWNO,EVENT_ID_CNTY,EVENT_ID_NO_CNTY,EVENT_DATE,YEAR,TIME_PRECISION,EVENT_TYPE,ACTOR1,ALLY_ACTOR_1,INTER1,ACTOR2,"
    "ALLY_ACTOR_2,INTER2,INTERACTION,COUNTRY,ADMIN1,ADMIN2,ADMIN3,LOCATION,LATITUDE,LONGITUDE,GEO_PRECISION,SOURCE,"
    "NOTES,FATALITIES,,,,,,,"
).split(",")
UCDP_19 = (
    "id,year,active_year,type_of_violence,conflict_new_id,conflict_name,dyad_new_id,dyad_name,side_a_new_id,side_a,"
    "side_b_new_id,gwnob,side_b,number_of_sources,source_article,source_office,source_date,source_headline,"
    "source_original,where_prec,where_coordinates,adm_1,adm_2,latitude,longitude,geom_wkt,priogrid_gid,country,"
    "country_id,region,event_clarity,date_prec,date_start,date_end,deaths_a,deaths_b,deaths_civilians,deaths_unknown,"
    "low,best,high"
).split(",")
#: GED 20.1+ order: eight more columns, and best,high,low instead of low,best,high.
UCDP_20 = (
    "id,relid,year,active_year,code_status,type_of_violence,conflict_dset_id,conflict_new_id,conflict_name,"
    "dyad_dset_id,dyad_new_id,dyad_name,side_a_dset_id,side_a_new_id,side_a,side_b_dset_id,side_b_new_id,side_b,"
    "number_of_sources,source_article,source_office,source_date,source_headline,source_original,where_prec,"
    "where_coordinates,where_description,adm_1,adm_2,latitude,longitude,geom_wkt,priogrid_gid,country,country_id,"
    "region,event_clarity,date_prec,date_start,date_end,deaths_a,deaths_b,deaths_civilians,deaths_unknown,best,high,"
    "low,gwnoa,gwnob"
).split(",")
NEW_IN_20 = {"relid", "code_status", "conflict_dset_id", "dyad_dset_id", "side_a_dset_id", "side_b_dset_id", "where_description", "gwnoa"}


def write_csv(path: Path, header: list[str], rows: list[dict | list], *, newline: str = "\n", encoding: str = "utf-8") -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header] if isinstance(row, dict) else row)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---- format detection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (ACLED_HEADER, "acled"),
        ([h.upper() for h in ACLED_HEADER], "acled-legacy"),  # upper-case names = legacy export
        (LEGACY_HEADER, "acled-legacy"),
        (UCDP_19, "ucdp"),
        (UCDP_20, "ucdp"),
        (["week_start", "admin1", "count"], "counts"),
        (["week_start", "country", "event_type", "actor", "count", "fatalities", "source"], "counts"),
        (["time", "event_type", "target", "city"], "generic"),
        (["TIME", "Event_Type", "target", "city"], "generic"),  # match_header is case-insensitive
        (["\ufeffevent_id_cnty", *ACLED_HEADER[1:]], "acled"),  # BOM on the first name
    ],
)
def test_detect_format(header, expected):
    assert detect_format(header, [IRAQ]) == expected


def test_detect_format_unknown_header_names_header_and_formats():
    with pytest.raises(IngestError) as exc:
        detect_format(["period", "scope", "attacks_min"], [IRAQ])
    message = one_line(exc)
    assert "period,scope,attacks_min" in message
    for fmt in ("acled", "acled-legacy", "ucdp", "counts", "'sigacts-iraq'"):
        assert fmt in message


def test_generic_needs_its_mapping_to_be_detected(tmp_path):
    path = write_csv(tmp_path / "iraq.csv", IRAQ.match_header, [["2004-01-01 00:20:00", "IED", "Coalition Forces", "Baghdad"]])
    with pytest.raises(IngestError) as exc:
        read_file(path, now=NOW)
    message = one_line(exc)
    assert message.startswith(f"{path}: line 1: header 'time,event_type,target,city' matches no known format")
    assert read_file(path, mappings=[IRAQ], now=NOW).format == "generic"


def test_formats_constant_matches_config_choices():
    assert FORMATS == ("auto", "acled", "acled-legacy", "acled-deletions", "acled-aggregated", "ucdp", "ucdp-replaced", "generic", "counts")
    config = pytest.importorskip("monitor.config")
    assert tuple(config.FORMATS) == FORMATS


# ---- UCDP ----------------------------------------------------------------------------------


def _ucdp_events() -> list[dict]:
    base = dict(
        year="2019", active_year="1", conflict_new_id="299", conflict_name="Syria: Government", dyad_new_id="11973",
        dyad_name="Government of Syria - IS", side_a_new_id="118", side_b_new_id="234", gwnob="", number_of_sources="1",
        source_article="x", source_office="SOHR", source_date="2019-01-02", source_original="SOHR", where_prec="1",
        geom_wkt="POINT (38.27 34.55)", priogrid_gid="179714", country="Syria", country_id="652", region="Middle East",
        event_clarity="1", date_prec="1", deaths_a="1", deaths_b="2", deaths_civilians="0", deaths_unknown="0",
        relid="SYR-2019-1-1", code_status="Clear", conflict_dset_id="299", dyad_dset_id="11973", side_a_dset_id="118",
        side_b_dset_id="234", where_description="near Palmyra", gwnoa="652",
    )
    return [
        {**base, "id": "1001", "type_of_violence": "1", "side_a": "Government of Syria", "side_b": "IS",
         "source_headline": "Clashes near Palmyra", "where_coordinates": "Palmyra town", "adm_1": "Hamah Governorate",
         "adm_2": "Salamiyah district", "latitude": "34.55", "longitude": "38.27", "date_start": "2019-01-02",
         "date_end": "2019-01-04", "low": "3", "best": "5", "high": "9"},
        {**base, "id": "1002", "type_of_violence": "2", "side_a": "IS", "side_b": "SDF",
         "source_headline": "IS attack", "where_coordinates": "Hajin", "adm_1": "Deir ez Zor Governorate",
         "adm_2": "", "latitude": "34.69", "longitude": "40.83", "date_start": "2019-01-05", "date_end": "",
         "low": "0", "best": "2", "high": "4"},
        {**base, "id": "1003", "type_of_violence": "3", "side_a": "IS", "side_b": "Civilians",
         "source_headline": "Executions", "where_coordinates": "Syria", "adm_1": "", "adm_2": "",
         "latitude": "35.0", "longitude": "38.5", "date_start": "2019-01-06", "date_end": "2019-01-06",
         "low": "7", "best": "8", "high": "8"},
    ]


def test_ucdp_maps_by_name_in_both_layouts(tmp_path):
    old = read_file(write_csv(tmp_path / "ged191.csv", UCDP_19, _ucdp_events()), now=NOW)
    new = read_file(write_csv(tmp_path / "ged201.csv", UCDP_20, _ucdp_events()), now=NOW)
    assert len(UCDP_19) == 41 and len(UCDP_20) == 49 and set(UCDP_20) - set(UCDP_19) == NEW_IN_20
    assert old.format == new.format == "ucdp" and old.source == "ucdp"
    assert old.incidents == new.incidents and not old.rejects and not new.rejects
    first, second, third = old.incidents
    assert first == Incident(
        source="ucdp", source_id="1001", event_date="2019-01-02", date_end="2019-01-04", country="Syria",
        admin1="Hama", admin2="Salamiyah district", location="Palmyra town", latitude=34.55, longitude=38.27,
        event_type="State-based conflict", sub_event_type="", actor1="Government of Syria", actor2="IS",
        fatalities=5, notes="Clashes near Palmyra", revision="",
    )
    assert (second.event_type, second.admin1, second.date_end, second.fatalities) == ("Non-state conflict", "Deir ez Zor", "2019-01-05", 2)
    assert (third.event_type, third.admin1, third.fatalities) == ("One-sided violence", "", 8)


def test_ucdp_20_layout_built_from_the_shared_file(shared_data, tmp_path):
    """Reorder the first 300 real GED 19.1 rows into the 49-column 20.1 layout: same incidents."""
    with open(shared_data / "ucdp_ged_syria_2016-01-01_2019-11-30.csv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == UCDP_19
        rows = [row for _, row in zip(range(300), reader)]
    extra = {c: f"x-{c}" for c in NEW_IN_20}
    old = read_file(write_csv(tmp_path / "ged191.csv", UCDP_19, rows), now=NOW)
    new = read_file(write_csv(tmp_path / "ged201.csv", UCDP_20, [{**r, **extra} for r in rows]), now=NOW)
    assert len(old.incidents) == 300 and old.incidents == new.incidents
    assert [i.fatalities for i in new.incidents] == [int(r["best"]) for r in rows]


def test_ucdp_bad_values_are_rejected(tmp_path):
    events = _ucdp_events()
    events[0]["type_of_violence"] = "4"
    events[1]["date_end"] = "2019-01-01"  # before date_start
    events[2]["best"] = "-1"
    parsed = read_file(write_csv(tmp_path / "ged.csv", UCDP_19, events), now=NOW)
    assert [r.line for r in parsed.rejects] == [2, 3, 4]
    assert parsed.rejects[0].reason == "type_of_violence '4' is not a UCDP violence type (expected 1, 2 or 3)"
    assert parsed.rejects[1].reason == "date_end '2019-01-01' is before date_start 2019-01-05 (expected an end on or after the start)"
    assert parsed.rejects[2].reason == "best '-1' is negative (expected a whole number >= 0)"


# ---- files that cannot be read at all ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("empty.csv", ["empty.csv: line 1: the file is empty (expected a CSV file with a header row)"]),
        ("binary_junk.csv", ["binary_junk.csv: line 1: binary data (a NUL byte), not CSV text"]),
        ("acled_header_only.csv", ["acled_header_only.csv: line 2: no data rows after the header (expected at least one acled record)"]),
        (
            "acled_missing_fatalities.csv",
            ["acled_missing_fatalities.csv: line 1: missing required column 'fatalities' for format acled",
             "(a acled file needs: event_id_cnty, event_date, event_type, actor1, country, fatalities)"],
        ),
        (
            "acled_cp1252.csv",
            ["acled_cp1252.csv: line 2: byte 0x92 is not UTF-8 text (save the file as UTF-8; only legacy ACLED files may be cp1252)"],
        ),
    ],
)
def test_unreadable_files_raise_one_line(name, parts):
    with pytest.raises(IngestError) as exc:
        read_file(DATA / name, now=NOW)
    message = one_line(exc)
    assert message.startswith(str(DATA / name) + ": line ")
    for part in parts:
        assert part in message


def test_whitespace_only_and_missing_files(tmp_path):
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n  \n")
    with pytest.raises(IngestError, match=r"blank.csv: line 1: the file is empty"):
        read_file(blank, now=NOW)
    with pytest.raises(IngestError, match=r"nothere.csv: cannot read the file"):
        read_file(tmp_path / "nothere.csv", now=NOW)


def test_explicit_format_checks_required_columns(tmp_path):
    with pytest.raises(IngestError) as exc:
        read_file(DATA / "acled_malformed.csv", format="ucdp", now=NOW)
    assert "line 1: missing required columns 'id', 'date_start', 'type_of_violence', 'side_a', 'side_b', 'best' for format ucdp" in one_line(exc)
    with pytest.raises(IngestError, match=r"format 'acledd' is unknown \(expected one of: auto, acled, acled-legacy"):
        read_file(DATA / "acled_malformed.csv", format="acledd", now=NOW)


def test_duplicate_column_names_are_refused(tmp_path):
    path = write_csv(tmp_path / "dup.csv", [*ACLED_HEADER, "notes"], [])
    with pytest.raises(IngestError, match=r"dup.csv: line 1: column 'notes' appears more than once"):
        read_file(path, now=NOW)


# ---- rows that cannot be used ------------------------------------------------------------------


def test_acled_malformed_rows_are_rejected_with_physical_lines():
    parsed = read_file(DATA / "acled_malformed.csv", now=NOW)
    assert (parsed.format, parsed.source, parsed.encoding) == ("acled", "acled", "utf-8")
    assert parsed.rows_read == 10
    assert [i.source_id for i in parsed.incidents] == ["SYR1", "SYR5"]
    syr1, syr5 = parsed.incidents
    assert syr1.notes == 'First line of a long note,\nsecond line "quoted",\nthird line.'
    assert (syr1.event_date, syr1.revision, syr1.fatalities, syr1.latitude) == ("2023-02-17", "1676000000", 1, 34.73)
    assert syr5.event_date == "2023-01-15"  # DD/MM/YYYY accepted
    reasons = {r.line: r.reason for r in parsed.rejects}
    assert reasons == {
        # line 5, not 3: the note of the row before spans lines 2-4
        5: "event_date '31/02/2023' is not a date (expected YYYY-MM-DD or DD/MM/YYYY)",
        6: "fatalities '-3' is negative (expected a whole number >= 0)",
        7: "fatalities 'many' is not a number (expected a whole number >= 0)",
        9: "duplicate event_id_cnty 'SYR1' (first seen on line 2; the first is kept)",
        10: "event_id_cnty is empty (every row needs an event id)",
        11: "event_date '2030-01-01' is after the ingest time (2024-01-01): events cannot be in the future",
        12: "has 28 fields, expected 31 as in the header",
        14: "latitude 'north' is not a number (expected decimal degrees between -90 and 90)",
    }
    raw = {r.line: r.raw for r in parsed.rejects}
    assert raw[7].startswith("SYR4,2023-02-18") and raw[7].endswith('lines",many,,1676000000') and "\n" in raw[7]


def test_unbalanced_quote_names_the_span(tmp_path):
    good = dict.fromkeys(ACLED_HEADER, "") | {"event_id_cnty": "SYR1", "event_date": "2023-02-17", "fatalities": "0"}
    text = ",".join(ACLED_HEADER) + "\n" + ",".join(good.values()) + "\n" + 'SYR2,2023-02-18,"oops\nSYR3,2023-02-19\nSYR4,2023-02-20\n'
    path = tmp_path / "quote.csv"
    path.write_text(text)
    parsed = read_file(path, now=NOW)
    assert len(parsed.rejects) == 1
    reject = parsed.rejects[0]
    assert reject.line == 3
    assert reject.reason == "has 3 fields, expected 31 as in the header; the record runs from line 3 to 5: check for an unbalanced quote"


def test_legacy_acled_cp1252_crlf_and_bare_lf():
    parsed = read_file(DATA / "acled_legacy_cp1252.csv", now=NOW)
    assert (parsed.format, parsed.source, parsed.encoding, parsed.rows_read) == ("acled-legacy", "acled", "cp1252", 4)
    first, second, fourth = parsed.incidents
    assert first.notes == "The People\u2019s National Army (ANP) met in Yéléwa."
    assert (first.event_date, first.sub_event_type, first.revision) == ("2015-12-29", "", "")
    assert second.notes == "Workers protested.\nPolice dispersed them."
    assert (fourth.source_id, fourth.event_date, fourth.fatalities) == ("4RTA", "2016-01-06", 2)
    assert [(r.line, r.reason) for r in parsed.rejects] == [
        (5, "EVENT_DATE '31/02/2016' is not a date (expected YYYY-MM-DD or DD/MM/YYYY)")
    ]


def test_trailing_fields_may_be_missing_or_empty(tmp_path):
    """Legacy rows may stop before the unnamed trailing columns; extra empty fields are ignored."""
    row = "615,9RTA,,05/01/2016,2016,1,Riots/Protests,Protesters (Algeria),,6,,,0,60,Algeria,Batna,Batna,,Batna,35.5,6.1,1,El Watan,Note,0"
    text = ",".join(LEGACY_HEADER) + "\r\n" + row + "\r\n" + row.replace("9RTA", "10RTA") + ",,,,,,,,,\r\n" + row[:-2] + "\r\n"
    path = tmp_path / "legacy.csv"
    path.write_text(text, encoding="cp1252", newline="")
    parsed = read_file(path, now=NOW)
    assert [i.source_id for i in parsed.incidents] == ["9RTA", "10RTA"]
    assert [(r.line, r.reason) for r in parsed.rejects] == [(4, "has 24 fields, expected 32 as in the header")]


def test_utf8_bom_and_crlf_are_tolerated(tmp_path):
    rows = [dict(zip(ACLED_HEADER, ["SYR1", "2023-02-17"])) | {"country": "Syria", "fatalities": "0", "event_type": "Battles", "actor1": "IS"}]
    path = write_csv(tmp_path / "bom.csv", ACLED_HEADER, rows, newline="\r\n", encoding="utf-8-sig")
    parsed = read_file(path, now=NOW)
    assert parsed.encoding == "utf-8-sig" and parsed.format == "acled"
    assert parsed.incidents[0].source_id == "SYR1" and parsed.incidents[0].country == "Syria"


# ---- counts -------------------------------------------------------------------------------------


def test_counts_file(tmp_path):
    path = write_csv(
        tmp_path / "is_weekly.csv",
        ["week_start", "admin1", "actor", "count", "fatalities"],
        [["2023-02-06", "Homs", "Islamic State", "12", "30"], ["2023-02-13", "Homs", "Islamic State", "7", ""],
         ["2023-02-13", "Homs", "Islamic State", "9", "1"], ["2023-02-20", "Hama", "", "-2", "0"]],
    )
    parsed = read_file(path, now=NOW)
    assert (parsed.format, parsed.source, parsed.rows_read) == ("counts", "counts", 4)
    assert parsed.counts[0] == CountRow(
        source="counts", week_start="2023-02-06", country="", admin1="Homs", admin2="", event_type="",
        sub_event_type="", actor="Islamic State", count=12, fatalities=30,
    )
    assert parsed.counts[1].fatalities == 0
    assert [(r.line, r.reason) for r in parsed.rejects] == [
        (4, "duplicate row for week_start 2023-02-13, admin1='Homs', actor='Islamic State' (first seen on line 3; the first is kept)"),
        (5, "count '-2' is negative (expected a whole number >= 0)"),
    ]


def test_counts_source_column_and_unknown_column(tmp_path):
    path = write_csv(tmp_path / "c.csv", ["week_start", "country", "count", "source"], [["2023-02-06", "Syria", "3", "cep"]])
    parsed = read_file(path, now=NOW)
    assert parsed.source == "cep" and parsed.counts[0].source == "cep"
    bad = write_csv(tmp_path / "bad.csv", ["week_start", "province", "count"], [["2023-02-06", "Homs", "3"]])
    with pytest.raises(IngestError) as exc:
        read_file(bad, now=NOW)
    assert "bad.csv: line 1: column 'province' is not allowed in a counts file (allowed: week_start, country, admin1" in one_line(exc)


# ---- generic mappings ------------------------------------------------------------------------------


def test_generic_mapping_hash_ids_are_stable_and_numbered(tmp_path):
    rows = [
        ["2004-01-01 00:20:00", "IED", "Coalition Forces", "Baghdad"],
        ["2004-01-01 00:20:00", "IED", "Coalition Forces", "Baghdad"],  # identical: a second event, #2
        ["", "Attack Type", "Target", "City"],  # a PDF page header parsed as a row
        ["2004-13-01 00:20:00", "IED", "", ""],
        ["2004-01-02 10:00:00", "Mortar", "Iraqi Security Forces", ""],
    ]
    path = write_csv(tmp_path / "sig.csv", IRAQ.match_header, rows)
    first = read_file(path, mappings=[IRAQ], now=NOW)
    again = read_file(path, mappings=[IRAQ], now=NOW)
    assert first.incidents == again.incidents
    a, b, c = first.incidents
    assert a.source_id.endswith("#1") and b.source_id == a.source_id[:-1] + "2" and len(a.source_id) == 42
    assert (a.source, a.country, a.event_type, a.actor2, a.location, a.admin2, a.event_date) == (
        "sigacts-iraq", "Iraq", "IED", "Coalition Forces", "Baghdad", "Baghdad", "2004-01-01")
    assert (c.location, c.fatalities, c.latitude) == ("", 0, None)
    expected = "expected date format '%Y-%m-%d %H:%M:%S', e.g. 2023-01-31 13:45:00"
    assert [(r.line, r.reason) for r in first.rejects] == [
        (4, f"time is empty ({expected})"),
        (5, f"time '2004-13-01 00:20:00' is not a date ({expected})"),
    ]


def test_generic_mapping_with_id_column_and_strptime_format(tmp_path):
    mapping = GenericMapping(
        name="ngo", source="ngo-reports", match_header=["ref", "day", "province", "killed", "lat", "lon"],
        id_column="ref", date_column="day", date_format="%d.%m.%Y",
        columns={"admin1": "province", "fatalities": "killed", "latitude": "lat", "longitude": "lon"},
        constants={"country": "Syria", "event_type": "Battles"},
    )
    rows = [["R1", "17.02.2023", "Homs", "4", "34.5", "38.2"], ["R1", "18.02.2023", "Hama", "1", "", ""],
            ["R2", "2023-02-18", "Hama", "1", "", ""], ["R3", "18.02.2023", "Hama", "-1", "", ""]]
    parsed = read_file(write_csv(tmp_path / "ngo.csv", mapping.match_header, rows), mappings=[mapping], now=NOW)
    assert [i.source_id for i in parsed.incidents] == ["R1"]
    inc = parsed.incidents[0]
    assert (inc.event_date, inc.admin1, inc.fatalities, inc.latitude, inc.country, inc.event_type) == (
        "2023-02-17", "Homs", 4, 34.5, "Syria", "Battles")
    assert [(r.line, r.reason) for r in parsed.rejects] == [
        (3, "duplicate ref 'R1' (first seen on line 2; the first is kept)"),
        (4, "day '2023-02-18' is not a date (expected date format '%d.%m.%Y', e.g. 31.01.2023)"),
        (5, "killed '-1' is negative (expected a whole number >= 0)"),
    ]


def test_generic_mapping_missing_column_and_explicit_name(tmp_path):
    mapping = GenericMapping(name="m", source="s", match_header=["when", "what"], date_column="when", columns={"notes": "why"})
    path = write_csv(tmp_path / "m.csv", ["when", "what"], [["2023-01-01", "x"]])
    with pytest.raises(IngestError) as exc:
        read_file(path, mappings=[mapping], now=NOW)
    assert "m.csv: line 1: missing required column 'why' for format generic mapping 'm'" in one_line(exc)
    ok = GenericMapping(name="m2", source="s2", match_header=["other"], date_column="when", columns={"notes": "what"})
    parsed = read_file(path, format="m2", mappings=[mapping, ok], now=NOW)
    assert parsed.source == "s2" and parsed.incidents[0].notes == "x"


def test_the_example_configs_iraq_mapping_reads_a_sigacts_row(tmp_path):
    path = write_csv(tmp_path / "sig.csv", IRAQ.match_header, [["2004-01-01 00:20:00", "IED", "Coalition Forces", "Baghdad"]])
    [incident] = read_file(path, mappings=[IRAQ], now=NOW).incidents
    assert (incident.country, incident.event_date, incident.actor2, incident.admin2) == ("Iraq", "2004-01-01", "Coalition Forces", "Baghdad")


# ---- numbers that SQLite cannot hold, coordinates that are no place -------------------------------

WHOLE_MAX = "(expected 0..9223372036854775807)"


def _acled_row(event_id: str, **changes) -> dict:
    row = {h: "" for h in ACLED_HEADER}
    row.update(event_id_cnty=event_id, event_date="2023-02-17", event_type="Battles", actor1="IS", country="Syria",
               admin1="Homs", latitude="34.55", longitude="38.27", fatalities="1", timestamp="1676000000")
    row.update(changes)
    return row


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "99999999999999999999", "9223372036854775808", "1e19"])
def test_fatalities_beyond_a_64_bit_whole_number_reject_the_row(tmp_path, value):
    path = write_csv(tmp_path / "acled.csv", ACLED_HEADER, [_acled_row("SYR1", fatalities=value), _acled_row("SYR2")])
    parsed = read_file(path, now=NOW)
    assert [i.source_id for i in parsed.incidents] == ["SYR2"]
    assert [(r.line, r.reason) for r in parsed.rejects] == [(2, f"fatalities {value!r} is not a whole number >= 0 {WHOLE_MAX}")]


def test_largest_64_bit_whole_number_is_kept(tmp_path):
    path = write_csv(tmp_path / "acled.csv", ACLED_HEADER, [_acled_row("SYR1", fatalities="9223372036854775807"),
                                                            _acled_row("SYR2", fatalities="1e18")])
    parsed = read_file(path, now=NOW)
    assert [i.fatalities for i in parsed.incidents] == [9223372036854775807, 10**18] and not parsed.rejects


@pytest.mark.parametrize("column", ["count", "fatalities"])
@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "99999999999999999999"])
def test_counts_numbers_beyond_64_bits_reject_the_row(tmp_path, column, value):
    cells = {"count": "3", "fatalities": "0", column: value}
    path = write_csv(tmp_path / "weekly.csv", ["week_start", "admin1", "count", "fatalities"],
                     [["2023-02-06", "Homs", cells["count"], cells["fatalities"]], ["2023-02-13", "Homs", "4", "1"]])
    parsed = read_file(path, now=NOW)
    assert [c.week_start for c in parsed.counts] == ["2023-02-13"]
    assert [(r.line, r.reason) for r in parsed.rejects] == [(2, f"{column} {value!r} is not a whole number >= 0 {WHOLE_MAX}")]


@pytest.mark.parametrize(
    ("latitude", "longitude"),
    [("nan", "38.27"), ("inf", "38.27"), ("90.5", "38.27"), ("-91", "38.27"), ("34.55", "180.01"), ("34.55", "-inf"),
     ("1e400", "nan")],
)
def test_unusable_coordinates_keep_the_event_without_them(tmp_path, latitude, longitude):
    path = write_csv(tmp_path / "acled.csv", ACLED_HEADER, [_acled_row("SYR1", latitude=latitude, longitude=longitude)])
    parsed = read_file(path, now=NOW)
    assert not parsed.rejects
    (event,) = parsed.incidents
    assert (event.latitude, event.longitude) == (None, None)  # one unusable value places nothing
    assert event.fatalities == 1


def test_ucdp_coordinates_out_of_range_are_dropped_not_rejected(tmp_path):
    events = _ucdp_events()
    events[0]["latitude"] = "340.55"
    parsed = read_file(write_csv(tmp_path / "ged.csv", UCDP_19, events), now=NOW)
    assert not parsed.rejects and (parsed.incidents[0].latitude, parsed.incidents[0].longitude) == (None, None)
    assert parsed.incidents[1].latitude is not None  # the other events keep theirs


def test_counts_without_source_column_keep_one_source_across_file_names(tmp_path):
    rows = [["2023-02-06", "Homs", "12"], ["2023-02-13", "Homs", "7"]]
    first = read_file(write_csv(tmp_path / "is_weekly_2023-02.csv", ["week_start", "admin1", "count"], rows), now=NOW)
    again = read_file(write_csv(tmp_path / "is_weekly (1).csv", ["week_start", "admin1", "count"], rows), now=NOW)
    assert first.source == again.source == "counts"
    assert first.counts == again.counts and {c.source for c in first.counts} == {"counts"}


def test_half_a_coordinate_is_no_coordinate(tmp_path):
    """An out-of-range latitude drops the longitude too; the event is kept for its admin areas."""
    header = ["event_id_cnty", "event_date", "event_type", "actor1", "country", "admin1", "latitude", "longitude", "fatalities"]
    path = write_csv(tmp_path / "acled.csv", header, [["SYR1", "2023-02-17", "Battles", "Islamic State (Syria)", "Syria", "Homs", "91.5", "38.4", "3"]])
    [incident] = read_file(path, format="acled", now=NOW).incidents
    assert (incident.latitude, incident.longitude, incident.admin1) == (None, None, "Homs")
