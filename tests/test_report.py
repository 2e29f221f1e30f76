"""The weekly Markdown report: sections, numbers, escaping of data, files, index and re-runs."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from datetime import date, datetime, timezone

import pytest

from monitor.report import md_escape, render_markdown, write_report
from tests.helpers_result import INJECTION_LABEL, make_result, report_settings

CHARTS = {"is_attacks/admin1=Homs": "charts/is_attacks-admin1-homs.png"}


def _cells(line: str) -> list[str]:
    """Cells of a GFM table row: split on pipes not escaped by a backslash."""
    inner = line.strip()[1:-1]
    return re.split(r"(?<!\\)\|", inner)


def _tables(text: str) -> list[list[str]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


@pytest.fixture(scope="module")
def result():
    return make_result()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The report of `make_result()` written once for the module: (reports folder, ReportFiles). Read only:
    tests that write again work on a copy (`_copy_of`)."""
    folder = tmp_path_factory.mktemp("written") / "reports"
    return folder, write_report(make_result(), settings=report_settings(folder))


def _copy_of(written, tmp_path):
    """A copy of the written reports folder in tmp_path: (its settings, the ReportFiles' paths in the copy)."""
    folder, files = written
    copy = tmp_path / "reports"
    shutil.copytree(folder, copy)

    def moved(path):
        return None if path is None else copy / path.relative_to(folder)

    return report_settings(copy), replace(files, folder=moved(files.folder), markdown=moved(files.markdown), map=moved(files.map),
                                          html=moved(files.html), charts={k: moved(v) for k, v in files.charts.items()})  # fmt: skip


@pytest.fixture(scope="module")
def text(result, tmp_path_factory):
    return render_markdown(result, charts=CHARTS, settings=report_settings(tmp_path_factory.mktemp("r")))


def test_sections_in_order(text):
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == [
        "## Key messages", "## Flagged series", "## Alerts and silences", "## At a glance", "## Flagged series in detail", "## Method"
    ]
    assert text.startswith("# Incident monitor — weekly report 2023-W09\n")


def test_header_states_week_window_detectors_and_freshness(text):
    assert "(Mon 27 Feb 2023 – Sun 5 Mar 2023)" in text
    assert "weekly counts from 2020-03-02 to 2023-03-05" in text
    assert "farrington (alpha=0.005, b=3, threshold\\_method=nbPlugin, w=3)" in text
    assert "**Records in the database:** 4,213" in text
    assert "**Latest ingest:** acled\\_syria\\_2023-03-06.csv at 2023-03-06 05:58: 187 inserted" in text
    assert "**Latest event date:** 2023-03-04" in text
    assert "Generated" not in text and "2023-03-06T06:00" not in text  # no wall-clock time: a re-run is identical
    assert "SYNTHETIC" not in text


def test_synthetic_data_is_said_prominently(tmp_path):
    text = render_markdown(make_result(synthetic=True), charts={}, settings=report_settings(tmp_path))
    first = text.split("## Key messages")[0]
    assert "**⚠ SYNTHETIC DEMO DATA.**" in first


def test_key_messages_are_sentences_with_the_numbers(text):
    # the fixture's series have two deaths an event; Homs had 8 events the week before and 1 in 2022-W09
    assert (
        "- Islamic State events in Homs rose to 9 events (18 fatalities) this week against 1.8 expected (threshold 6.8); "
        "in alert for 3 weeks. Last week: 8 events (16 fatalities); the same week a year earlier (2022-W09): "
        "1 event (2 fatalities)." in text
    )
    assert ("- Islamic State events in Hama rose to 6 events (12 fatalities) this week against 1.0 expected (threshold 4.9); "
            "new this week. Last week: 1 event (2 fatalities); the same week a year earlier (2022-W09): 0 events (0 fatalities)."
            in text)  # fmt: skip
    assert "8 series checked: 4 flagged (1 new, 3 continuing), 1 undecided, 1 checked with the nb-recent fallback" in text


def test_flagged_table_is_ranked_with_every_column(text, result):
    table = next(t for t in _tables(text) if t[0].startswith("| # | Series"))
    assert _cells(table[0])[1:] == [
        " Series ", " Observed ", " Expected ", " Threshold ", " Exceedance score ", " p-value ", " Events (fatalities) ",
        " Last week ", " Year ago ", " Weeks in alert ", " Status ", " Trend ",
    ]
    rows = [[c.strip() for c in _cells(line)] for line in table[2:]]
    assert [r[1] for r in rows] == [f"Islamic State events — {r.series.label}" for r in result.flagged]
    homs = next(r for r in rows if r[1].endswith("Homs"))
    assert homs == ["2", "Islamic State events — Homs", "9", "1.8", "6.8", "1.43", "<0.001", "9 (18)", "8 (16)", "1 (2)", "3",
                    "continuing", "↑"]  # fmt: skip
    hama = next(r for r in rows if r[1].endswith("Hama"))
    assert hama[11] == "new"


def test_at_a_glance_lists_every_series_and_marks_fallback_and_undecided(text, result):
    table = next(t for t in _tables(text) if t[0].startswith("| Series | This week"))
    assert len(table) - 2 == len(result.results)
    quneitra = next(line for line in table if "Quneitra" in line)
    assert "ears † (fallback from farrington)" in quneitra
    assert "† The configured detector needs more history" in text
    daraa = next(line for line in table if "Daraa" in line)
    assert "undecided: too little history" in daraa and "| NA |" in daraa
    homs = next(line for line in table if "— Homs" in line)
    assert "×5.0 (above)" in homs and "**ALARM** (continuing, 3 weeks)" in homs


def test_every_table_row_has_the_header_column_count(text):
    for table in _tables(text):
        width = len(_cells(table[0]))
        for line in table:
            assert line.endswith("|"), line
            assert len(_cells(line)) == width, f"row breaks the table: {line}"


def test_injection_in_notes_actors_and_labels_is_neutralised(text):
    assert "<script" not in text and "<b>" not in text
    assert not re.search(r"(?<!\\)\]\((javascript|http)", text), "a data value opened a link"
    assert "&lt;script&gt;" in text
    assert "\\*\\*x\\*\\*" in text and "\\[link\\]" in text and "\\`code\\`" in text
    assert md_escape(INJECTION_LABEL) in text
    assert "second line with" in text  # the note's newline became a space inside its row
    note_row = next(line for line in text.splitlines() if "second line" in line)
    assert note_row.startswith("| ") and note_row.endswith("… |")


def test_notes_are_trimmed_to_note_chars(result, tmp_path):
    text = render_markdown(result, charts={}, settings=report_settings(tmp_path, note_chars=40))
    note_row = next(line for line in text.splitlines() if "Attack \\|" in line)
    note = _cells(note_row)[-1].strip()
    assert note.endswith("…")
    assert len(note.replace("\\", "").replace("&lt;", "<").replace("&gt;", ">")) <= 40


def test_incidents_and_chart_behind_each_flagged_series(text):
    homs = text.split("### 2. Islamic State events — Homs")[1].split("### 3.")[0]
    assert "![Weekly events: Islamic State events — Homs](charts/is_attacks-admin1-homs.png)" in homs
    assert "| Date | Location | Type | Actors | Fatalities | Source | Note |" in homs
    assert "Homs / Tadmor / Al-Sukhnah" in homs and "| 68 |" in homs
    total = text.split("### 1. Islamic State events — All (total)")[1].split("### 2.")[0]
    assert "Showing the 15 deadliest of 24 events." in total


@pytest.mark.parametrize("incidents", ["empty", None])
def test_flagged_series_without_incident_records_says_why(result, tmp_path, incidents):
    homs = next(r for r in result.flagged if r.series.key == "is_attacks/admin1=Homs")
    bare = replace(homs, incidents=homs.incidents.iloc[0:0] if incidents == "empty" else None)
    changed = replace(result, results=tuple(bare if r is homs else r for r in result.results))
    text = render_markdown(changed, charts={}, settings=report_settings(tmp_path))
    section = text.split("### 2. Islamic State events — Homs")[1].split("### 3.")[0]
    assert ("No incident records were found behind this week's count (a count from a pre-aggregated counts file has none)."
            in section)
    assert "| Date | Location |" not in section


def test_method_in_plain_words(text):
    method = text.split("## Method")[1]
    for words in ("Farrington flexible", "EARS", "**Alarm**", "**NA / undecided**", "**Fallback**", "**Trend**"):
        assert words in method


def test_quiet_week_says_so(tmp_path):
    quiet = make_result(week_start=date(2022, 6, 6))
    quiet = replace(quiet, results=tuple(r for r in quiet.results if not r.detection.alarm))
    text = render_markdown(quiet, charts={}, settings=report_settings(tmp_path))
    assert "No monitored series rose above its threshold this week." in text
    assert "No series flagged this week." in text and "## Flagged series in detail" not in text


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a | b", "a \\| b"),
        ("line1\nline2\r\nline3\tend", "line1 line2 line3 end"),
        ("<script>x</script>", "&lt;script&gt;x&lt;/script&gt;"),
        ("**bold** _it_ `code`", "\\*\\*bold\\*\\* \\_it\\_ \\`code\\`"),
        ("[x](http://e)", "\\[x\\](http://e)"),
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+33 1 23", "'+33 1 23"),
        ("-cmd", "'-cmd"),
        ("@foo", "'@foo"),
        ("back\\slash", "back\\\\slash"),
        ("AT&T", "AT&amp;T"),
        ("# not a heading", "\\# not a heading"),
        ("bell\x07char", "bell char"),
        (None, ""),
        (float("nan"), ""),
        ("Deir ez-Zor", "Deir ez-Zor"),
    ],
)
def test_md_escape(raw, escaped):
    assert md_escape(raw) == escaped


def test_md_escape_trims_before_escaping():
    assert md_escape("abcdefghij", limit=5) == "abcd…"
    assert md_escape("abc", limit=5) == "abc"


def test_write_report_files_index_and_identical_rerun(tmp_path):
    settings = report_settings(tmp_path / "reports")
    earlier = write_report(make_result(week_start=date(2023, 2, 20)), settings=settings)
    files = write_report(make_result(), settings=settings)
    assert files.folder == tmp_path / "reports" / "2023-W09"
    assert files.markdown == files.folder / "report.md"
    assert set(files.charts) == {r.series.key for r in make_result().flagged}
    for key, png in files.charts.items():
        assert png.parent == files.folder / "charts" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](charts/{png.name})" in files.markdown.read_text(encoding="utf-8")
    summary = json.loads((files.folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["week"] == "2023-W09" and len(summary["flagged"]) == 4 and summary["series_checked"] == 8

    index = (tmp_path / "reports" / "index.md").read_text(encoding="utf-8")
    rows = [line for line in index.splitlines() if line.startswith("| [")]
    assert rows[0].startswith("| [2023-W09](2023-W09/report.md) |") and rows[1].startswith("| [2023-W08](2023-W08/report.md) |")
    assert _cells(rows[0])[3].strip() == "4"
    assert _cells(rows[1])[3].strip() == str(len(make_result(week_start=date(2023, 2, 20)).flagged))
    assert earlier.markdown.exists()

    before = {p: p.read_bytes() for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    again = write_report(make_result(), settings=settings)
    after = {p: p.read_bytes() for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    assert again == files
    assert before.keys() == after.keys() and before[files.markdown] == after[files.markdown]
    assert not [p for p in after if p.name.endswith(".tmp")]


def test_rerunning_the_same_week_later_rewrites_the_same_files(written, tmp_path):
    settings, files = _copy_of(written, tmp_path)
    before = {p: p.read_bytes() for p in files.folder.rglob("*") if p.is_file()}
    later = make_result(generated_at=datetime(2023, 3, 9, 17, 45, tzinfo=timezone.utc))
    write_report(later, settings=settings)
    after = {p: p.read_bytes() for p in files.folder.rglob("*") if p.is_file()}
    assert after == before  # report.md, summary.json and the charts, byte for byte
    summary = json.loads((files.folder / "summary.json").read_text(encoding="utf-8"))
    assert "generated_at" not in summary


def test_freshness_line_shows_the_latest_ingest_from_the_log(written, tmp_path):
    text = written[1].markdown.read_text(encoding="utf-8")
    assert "- **Latest ingest:** acled\\_syria\\_2023-03-06.csv at 2023-03-06 05:58: 187 inserted, 3 updated, 0 rejected" in text
    empty = write_report(replace(make_result(), last_ingest=None), settings=report_settings(tmp_path / "b"))
    assert "- **Latest ingest:** none yet" in empty.markdown.read_text(encoding="utf-8")


def test_charts_of_series_no_longer_flagged_are_removed(written, tmp_path):
    settings, files = _copy_of(written, tmp_path)
    assert files.charts["is_attacks/admin1=Hama"].exists()
    full = make_result()
    fewer = replace(full, results=tuple(r for r in full.results if r.series.key != "is_attacks/admin1=Hama"))
    again = write_report(fewer, settings=settings)
    assert not files.charts["is_attacks/admin1=Hama"].exists()
    assert len(list((again.folder / "charts").glob("*.png"))) == 3


def test_temp_files_of_dead_writers_are_removed_and_a_live_writers_kept(written, tmp_path):
    """A run killed between writing a temp file and renaming it leaves `.<name>.<pid>.<random>.tmp`; the next
    report of the folder removes it, unless its writer is still running (another `monitor report`)."""
    import os
    import subprocess
    import sys

    settings, files = _copy_of(written, tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has ended
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        leftovers = {
            files.folder / f".report.md.{dead_pid}.k2j4h5.tmp": True,
            files.folder / "charts" / f".is_attacks-admin1-homs.png.{dead_pid}.x8q1w0.tmp": True,
            tmp_path / "reports" / f".index.md.{dead_pid}.abc123.tmp": True,
            files.folder / f".summary.json.{os.getpid()}.zz9y8x.tmp": True,  # our own pid, yet we are not writing it
            files.folder / ".report.md.nopid.tmp": True,  # not our naming: nobody is writing it
            files.folder / f".report.md.{live.pid}.q7w6e5.tmp": False,  # being written by a live process
        }
        for path in leftovers:
            path.write_bytes(b"half a rep")
        write_report(make_result(), settings=settings)
        assert {p: p.exists() for p in leftovers} == {p: not removed for p, removed in leftovers.items()}
    finally:
        live.kill()
        live.wait()
    assert files.markdown.read_bytes().startswith(b"# Incident monitor")


def test_atomic_write_names_its_temp_file_by_pid_and_leaves_nothing_behind(tmp_path, monkeypatch):
    """The temp file carries the writer's pid (so `remove_stale_temps` keeps a live writer's file)."""
    import os

    from monitor.atomic import _TEMP, atomic_write

    seen = []
    real_replace = os.replace

    def watch(src, dst):  # note the temp file's name as it is renamed, then rename it for real
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watch)
    atomic_write(tmp_path / "a" / "report.md", "text")
    monkeypatch.undo()
    (name,) = seen
    match = _TEMP.match(name)
    assert match and match["name"] == "report.md" and int(match["pid"]) == os.getpid()
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["report.md"] and (tmp_path / "a" / "report.md").read_text() == "text"
