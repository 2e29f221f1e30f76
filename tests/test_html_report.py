"""The HTML report (issue 16, item 4): `reports/<week>/report.html`, one self-contained page beside the Markdown,
opened in a real headless Chromium (Debian's `chromium`, driven by Playwright): it renders without console
errors, its tables sort, it fits a phone's width, hostile text from the data stays text, and a screenshot is
taken. Also: the digest links to the page through `report.base_url`, and report files are readable by the team
(`report.file_mode`, 0644) whatever the job's umask.

The browser tests need Chromium: locally they skip without it (`apt-get install chromium`); under CI they fail.
"""

from __future__ import annotations

import csv
import email
import os
import shutil
import sqlite3
import stat
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import load_config
from monitor.errors import ConfigError
from tests.helpers_incidents import HEADER

NOW = "2026-11-24T09:00:00+00:00"
HOSTILE_NOTE = ('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> '
                '[click](javascript:window.__pwned=3) **bold** | pipe')  # fmt: skip
HOSTILE_ACTOR = '<b onmouseover="window.__pwned=4">Islamic State</b> & "friends"'


def _chromium() -> str | None:
    for name in (os.environ.get("MONITOR_CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        path = None
    if path is None:
        why = "needs Chromium (apt-get install chromium) and playwright (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(f"CI: the HTML report tests {why}")
        pytest.skip(f"the HTML report tests {why}")
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield chrome
        chrome.close()


def _open(browser, page_path: Path, *, width: int = 1200):
    """The page in a new tab, with every console message and page error it raised."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None)
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    return page, problems


def _column(page, table: int, col: int) -> list[str]:
    return page.evaluate(
        "([t, c]) => Array.from(document.querySelectorAll('table.sortable')[t].tBodies[0].rows).map(r => r.cells[c].textContent.trim())",
        [table, col],
    )


def test_the_demo_page_renders_with_its_charts_inline_and_no_console_errors(demo_dir, browser, tmp_path):
    folder = demo_dir / "reports" / "2023-W09"
    page, problems = _open(browser, folder / "report.html")
    assert page.title() == "Incident monitor — weekly report 2023-W09"
    assert page.locator("h1").inner_text() == "Incident monitor — weekly report 2023-W09"
    # the key messages, the flagged series, the incidents behind each alarm and the method are all on the page
    headings = page.locator("h2").all_inner_texts()
    for heading in ("Key messages", "Map", "Flagged series", "Flagged series in detail", "Method"):
        assert heading in headings
    assert page.locator("text=Incidents behind the alarm").count() == 6  # one per flagged series
    # every image is inline (data:) and decoded: the 6 charts (4 of events, 2 of fatalities: Hama and Deir ez Zor) and
    # the map; nothing was fetched from anywhere
    images = page.evaluate("Array.from(document.images).map(i => [i.src.slice(0, 22), i.naturalWidth, i.alt])")
    assert len(images) == 7, images
    assert all(src == "data:image/png;base64," and width >= 700 for src, width, _ in images), images
    assert sum(alt.startswith("Weekly events") for *_, alt in images) == 4
    assert sum(alt.startswith("Weekly fatalities") for *_, alt in images) == 2
    assert problems == []
    shot = tmp_path / "report-2023-W09.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 100_000
    print(f"screenshot: {shot}")
    page.close()


def test_the_tables_sort_numbers_as_numbers_both_ways(demo_dir, browser):
    """The flagged table (the first) sorted by Observed: the demo's 21, 26, 6, 7, 8, 17 (events, and the fatalities of
    Hama and Deir ez Zor) become 26, 21, 17, 8, 7, 6 (largest first), then the reverse; by Series, alphabetically. A
    text sort would put 21 and 17 between 8 and 6 the wrong way. "Events (fatalities)" cells ("21 (57)") sort by
    their events."""
    page, problems = _open(browser, demo_dir / "reports" / "2023-W09" / "report.html")
    headers = page.locator("table.sortable").first.locator("thead th")
    names = headers.all_inner_texts()
    observed, series, figures = names.index("Observed"), names.index("Series"), names.index("Events (fatalities)")
    assert _column(page, 0, observed) == ["21", "26", "6", "7", "8", "17"]  # as the report ranks them (evidence)
    headers.nth(observed).click()
    assert _column(page, 0, observed) == ["26", "21", "17", "8", "7", "6"]
    assert headers.nth(observed).get_attribute("aria-sort") == "descending"
    headers.nth(observed).click()
    assert _column(page, 0, observed) == ["6", "7", "8", "17", "21", "26"]
    assert headers.nth(observed).get_attribute("aria-sort") == "ascending"
    headers.nth(figures).click()
    assert [cell.split(" ")[0] for cell in _column(page, 0, figures)] == ["21", "8", "7", "7", "6", "6"]
    assert headers.nth(figures).get_attribute("aria-sort") == "descending"
    headers.nth(series).focus()
    page.keyboard.press("Enter")  # by keyboard too
    assert _column(page, 0, series) == sorted(_column(page, 0, series)) and _column(page, 0, series)[0].endswith("All (total)")
    assert headers.nth(observed).get_attribute("aria-sort") is None
    assert problems == []
    page.close()


def test_the_page_fits_a_phone_and_wide_tables_scroll_in_their_own_box(demo_dir, browser, tmp_path):
    page, problems = _open(browser, demo_dir / "reports" / "2023-W09" / "report.html", width=390)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    widths = page.evaluate("Array.from(document.querySelectorAll('div.table-wrap')).map(d => [d.clientWidth, d.scrollWidth])")
    assert widths and all(client <= 390 for client, _ in widths)
    assert any(scroll > client for client, scroll in widths)  # the at-a-glance table is wider than a phone: it scrolls
    assert page.evaluate("Math.max(...Array.from(document.images).map(i => i.getBoundingClientRect().width))") <= 390
    page.screenshot(path=str(tmp_path / "phone.png"))
    assert problems == []
    page.close()


def _hostile_copy(demo_dir: Path, tmp_path: Path, **report: str) -> Path:
    """The demo with one more Islamic State event in Homs in 2023-W09, ingested from an ACLED file: 99 killed, so
    the first of the incidents listed behind the Homs alarm; its note and actor are hostile HTML."""
    shutil.copy(demo_dir / "monitor.db", tmp_path / "monitor.db")
    text = (demo_dir / "monitor.toml").read_text(encoding="utf-8")
    extra = "".join(f'{k} = "{v}"\n' for k, v in report.items())
    config = tmp_path / "monitor.toml"
    config.write_text(text.replace("[report]\n", f"[report]\n{extra}", 1), encoding="utf-8")
    incident = tmp_path / "hostile.csv"
    with open(incident, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerow(["SYR99999", "2023-03-01", "Violence against civilians", "Attack", HOSTILE_ACTOR, "Civilians (Syria)",
                         "Syria", "Homs", "Tadmor", "Palmyra", HOSTILE_NOTE, "99"])  # fmt: skip
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(incident)], env={"MONITOR_NOW": NOW})
    assert result.exit_code == 0 and "1 inserted" in result.output, result.output
    return config


@pytest.fixture(scope="module")
def hostile_report(demo_dir, tmp_path_factory):
    """The hostile copy of the demo (`_hostile_copy`) and its 2023-W09 report, written once for the module by
    `monitor report` under a cron job's umask (077): (folder, the command's output). Read only: copy it to write."""
    folder = tmp_path_factory.mktemp("hostile")
    config = _hostile_copy(demo_dir, folder)
    old = os.umask(0o077)
    try:
        result = CliRunner().invoke(cli, ["--config", str(config), "report", "--week", "2023-W09"], env={"MONITOR_NOW": NOW})
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_hostile_text_from_the_data_is_shown_as_text_never_run(hostile_report, browser):
    folder, output = hostile_report
    assert "web page:" in output
    page, problems = _open(browser, folder / "reports" / "2023-W09" / "report.html")
    page.mouse.move(10, 10)
    body = page.locator("main").inner_text()
    assert "<script>window.__pwned = 1</script>" in body  # shown as written
    assert '<b onmouseover="window.__pwned=4">Islamic State</b>' in body
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 1  # the page's own sorting script only
    assert page.evaluate("document.querySelectorAll('main img:not([src^=\"data:\"]), main [onerror], main [onmouseover], main b').length") == 0
    assert page.evaluate("Array.from(document.links).filter(a => !/^(https?:|mailto:|file:|#)/.test(a.href)).length") == 0
    assert problems == []
    page.close()


def test_the_index_page_links_each_week_to_its_page(demo_dir, browser):
    page, problems = _open(browser, demo_dir / "reports" / "index.html")
    link = page.locator("a", has_text="2023-W09")
    assert link.get_attribute("href") == "2023-W09/report.html"
    link.click()
    page.wait_for_load_state("load")
    assert page.title() == "Incident monitor — weekly report 2023-W09"
    assert problems == []
    page.close()


def _digest(folder: Path) -> email.message.EmailMessage:
    [eml] = sorted(folder.glob("digest-*.eml"))
    return email.message_from_bytes(eml.read_bytes(), policy=policy.default)


def test_the_digest_links_to_the_page_through_base_url(demo_dir, tmp_path):
    """Without report.base_url the digest names the page's path; with it, <base_url>/<week>/report.html."""
    local = _digest(demo_dir / "reports" / "2023-W09")
    assert f"Report: {demo_dir / 'reports' / '2023-W09' / 'report.html'}" in local.get_body(("plain",)).get_content()

    config = _hostile_copy(demo_dir, tmp_path, base_url="https://watch.example.org/syria/reports/")
    with sqlite3.connect(tmp_path / "monitor.db") as conn:  # forget what the demo's run announced, to announce again
        for table in ("alert_states", "alert_events", "outbox"):
            conn.execute(f"DELETE FROM {table}")
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--week", "2023-W09"], env={"MONITOR_NOW": NOW})
    assert result.exit_code == 0, result.output
    message = _digest(tmp_path / "reports" / "2023-W09")
    url = "https://watch.example.org/syria/reports/2023-W09/report.html"
    assert f"Report: {url}" in message.get_body(("plain",)).get_content()
    assert f'<a href="{url}">{url}</a>' in message.get_body(("html",)).get_content()


def test_report_files_are_readable_by_the_team_whatever_the_umask(hostile_report, tmp_path):
    """A cron job's umask is often 077: the report's files still get 0644 and its folders 0755 (report.file_mode);
    configured 0640, the files get 0640 and the folders 0750."""
    written, _ = hostile_report  # the report written under umask 077
    folder = written / "reports" / "2023-W09"
    files = [folder / n for n in ("report.md", "report.html", "summary.json", "map.png")] + sorted((folder / "charts").glob("*.png"))
    files += [written / "reports" / "index.md", written / "reports" / "index.html"]
    # 8 charts: the demo's 6 flagged series, and the fatalities of Homs and of the total, which the 99 deaths of the
    # hostile event flag too
    assert len(files) == 14
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o644"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in (folder, folder / "charts")} == {"0o755"}
    assert stat.S_IMODE((written / "reports").stat().st_mode) & 0o055 == 0o055

    # written again in a copy (the config names its files relative to itself), with file_mode 0640
    shutil.copytree(written, tmp_path / "copy")
    config, folder = tmp_path / "copy" / "monitor.toml", tmp_path / "copy" / "reports" / "2023-W09"
    files = [tmp_path / "copy" / p.relative_to(written) for p in files]
    config.write_text(config.read_text(encoding="utf-8").replace("[report]\n", '[report]\nfile_mode = "0640"\n', 1), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "report", "--week", "2023-W09"], env={"MONITOR_NOW": NOW})
    assert result.exit_code == 0, result.output
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o640"}
    assert oct(stat.S_IMODE(folder.stat().st_mode)) == "0o750"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('base_url = "ftp://files.example.org/reports"', "is not a web address of a folder: write it as https://host/path"),
        ('base_url = "reports/"', "is not a web address of a folder"),
        ("file_mode = 644", "is a number: write the mode as a string of octal digits"),
        ('file_mode = "0844"', "is not an octal file mode"),
        ('file_mode = "0444"', "would not let the job read and write its own reports"),
    ],
)
def test_bad_report_settings_are_refused_naming_the_key_and_what_is_accepted(demo_dir, tmp_path, setting, message):
    config = tmp_path / "monitor.toml"
    config.write_text((demo_dir / "monitor.toml").read_text(encoding="utf-8").replace("[report]\n", f"[report]\n{setting}\n", 1),
                      encoding="utf-8")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert message in str(info.value) and f"report.{setting.split()[0]}" in str(info.value)
