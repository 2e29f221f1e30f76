"""`monitor fetch` of `http-csv` sources against a real HTTP server on 127.0.0.1 (issue 15, items 1, 5 and 6).

Every failure of a remote service ends the source's fetch with one line naming the source and what to do,
keeps what other sources fetched and leaves the database as it was for the failed one; a fetch is stored as
a file (vintage) before it is ingested, so a run killed in between ingests it next time instead of fetching again.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from http_server import Reply, serve
from test_revisions import ACLED_HEADER, acled_row

from monitor.cli import cli

NOW = "2023-02-08T06:00:00+00:00"


def export(*rows: dict) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ACLED_HEADER, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


FIRST = export(acled_row("SYR1", event_date="2023-02-06", fatalities=1, timestamp="1675670000"),
               acled_row("SYR2", event_date="2023-02-07", fatalities=0, timestamp="1675670000"))  # fmt: skip


def _config(tmp_path: Path, *sources: str, retries: int = 2, max_wait: float = 5) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text('[database]\npath = "m.db"\n'
                    f"[fetch]\nbackoff = 0\nretries = {retries}\nmax_wait = {max_wait}\n" + "".join(sources), encoding="utf-8")  # fmt: skip
    return path


def _source(name: str, url: str, timeout: float = 5) -> str:
    return f'[[sources]]\nname = "{name}"\nkind = "http-csv"\nurl = "{url}"\ntimeout = {timeout}\n'


def _fetch(config: Path, *names: str):
    return CliRunner().invoke(cli, ["--config", str(config), "fetch", *names], env={"MONITOR_NOW": NOW})


def _incidents(config: Path) -> list[tuple]:
    with sqlite3.connect(config.parent / "m.db") as conn:
        return conn.execute("SELECT source_id, fatalities FROM incidents ORDER BY source_id").fetchall()


def _fetch_log(config: Path) -> list[tuple]:
    with sqlite3.connect(config.parent / "m.db") as conn:
        return conn.execute("SELECT source, status, message FROM fetches ORDER BY id").fetchall()


def test_a_file_is_fetched_stored_ingested_and_not_fetched_again_while_unchanged(tmp_path):
    body = {"text": FIRST, "etag": '"v1"'}

    def portal(request):
        if request.headers.get("if-none-match") == body["etag"]:
            return Reply(304)
        return Reply(200, body["text"], {"ETag": body["etag"], "Content-Type": "text/csv"})

    with serve(portal) as server:
        config = _config(tmp_path, _source("portal", f"{server.url}/acled.csv"))
        first = _fetch(config)
        assert first.exit_code == 0, first.output
        assert "portal: fetched " in first.stdout and ": 2 rows read, 2 inserted, 0 updated, 0 unchanged, 0 rejected" in first.stdout
        vintages = list((tmp_path / "vintages" / "portal").iterdir())
        assert [v.name for v in vintages] == ["20230208T060000Z-file.csv"] and vintages[0].read_text() == FIRST
        assert _fetch(config).stdout == "portal: nothing new since the last fetch\n"
        assert server.requests[-1].headers["if-none-match"] == '"v1"'
        # the export changes: SYR1 revised
        body.update(text=export(acled_row("SYR1", event_date="2023-02-06", fatalities=7, timestamp="1675750000")), etag='"v2"')
        third = _fetch(config)
        assert ": 1 rows read, 0 inserted, 1 updated, 0 unchanged, 0 rejected" in third.stdout
    assert _incidents(config) == [("SYR1", 7), ("SYR2", 0)]
    assert [s for _, s, _ in _fetch_log(config)] == ["ingested", "nothing-new", "ingested"]


def test_5xx_and_429_are_retried_within_bounds_and_a_long_retry_after_ends_the_fetch(tmp_path):
    answers = [Reply(503, "busy"), Reply(429, "", {"Retry-After": "0"}), Reply(200, FIRST)]
    with serve(lambda request: answers.pop(0) if answers else Reply(500, "still down")) as server:
        config = _config(tmp_path, _source("portal", f"{server.url}/acled.csv"), retries=2)
        result = _fetch(config)
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 3
        failing = _fetch(config)  # 500 three times: the retries are bounded
        assert failing.exit_code == 1
        assert failing.stderr == (f"fetch failed: portal: {server.url}/acled.csv failed (HTTP 500: still down) "
                                  "(after 3 attempts; nothing of it was stored: fetch again later)\n")  # fmt: skip
        assert len(server.requests) == 6
    with serve(lambda request: Reply(429, "slow down", {"Retry-After": "3600"})) as server:
        config = _config(tmp_path, _source("portal", f"{server.url}/acled.csv"))
        result = _fetch(config)
        assert "limits the rate of requests (HTTP 429); the service asks to wait 3600 s (more than fetch.max_wait = 5 s)" in result.stderr
        assert len(server.requests) == 1


@pytest.mark.parametrize("case,reply,expected", [
    ("not-found", Reply(404, "no such file"), "was not found (HTTP 404): check the source's url (and version)"),
    ("refused", Reply(403, '{"message": "Access denied"}'), "refused access (HTTP 403: Access denied)"),
    ("timeout", Reply(200, FIRST, delay=1.5), "no answer from"),
    ("cut-short", Reply(200, FIRST, cut=40), "broke off the response"),
    ("empty", Reply(200, ""), "sent an empty file: nothing stored; check the url"),
])  # fmt: skip
def test_each_failure_is_one_line_keeps_the_other_source_and_changes_nothing(tmp_path, case, reply, expected):
    def routes(request):
        return Reply(200, FIRST) if request.path == "/good.csv" else reply

    with serve(routes) as server:
        config = _config(tmp_path, _source("broken", f"{server.url}/bad.csv", timeout=0.5), _source("good", f"{server.url}/good.csv"),
                         retries=1)  # fmt: skip
        result = _fetch(config)
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line]
    assert line.startswith("fetch failed: broken: ") and expected in line
    assert "good: fetched " in result.stdout  # the source after it was fetched and ingested
    assert _incidents(config) == [("SYR1", 1), ("SYR2", 0)]
    assert [(s, st) for s, st, _ in _fetch_log(config)] == [("broken", "failed"), ("good", "ingested")]
    assert not (tmp_path / "vintages" / "broken").exists()


def test_an_error_page_served_as_the_file_is_refused_and_fetched_again_next_time(tmp_path):
    pages = [Reply(200, "<html><body>Service temporarily unavailable</body></html>"), Reply(200, FIRST)]
    with serve(lambda request: pages.pop(0)) as server:
        config = _config(tmp_path, _source("portal", f"{server.url}/acled.csv"))
        first = _fetch(config)
        assert first.exit_code == 1
        assert "its ingest was refused" in first.stderr and "matches no known format" in first.stderr
        second = _fetch(config)
        assert second.exit_code == 0, second.output
    assert _incidents(config) == [("SYR1", 1), ("SYR2", 0)]
    assert [s for _, s, _ in _fetch_log(config)] == ["failed", "ingested"]


def test_a_run_killed_between_fetch_and_ingest_ingests_the_stored_file_next_time(tmp_path):
    """SIGKILL right after the vintage is stored and logged: the next fetch ingests it (not fetched again: the
    conditional request carries the killed fetch's ETag and the server says nothing changed)."""
    def portal(request):
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(304)
        return Reply(200, FIRST, {"ETag": '"v1"'})

    with serve(portal) as server:
        config = _config(tmp_path, _source("portal", f"{server.url}/acled.csv"))
        env = {**os.environ, "MONITOR_NOW": NOW, "MONITOR_KILL_AT": "fetch.before-ingest"}
        killed = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "fetch"], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert killed.returncode == -9, killed.stderr
        assert _incidents(config) == []
        assert [s for _, s, _ in _fetch_log(config)] == ["fetched"]
        again = _fetch(config)
        assert again.exit_code == 0, again.output
        assert "(left by an interrupted run): 2 rows read, 2 inserted" in again.stdout
        assert "portal: nothing new since the last fetch" in again.stdout
        assert [r.headers.get("if-none-match") for r in server.requests] == [None, '"v1"']
    assert _incidents(config) == [("SYR1", 1), ("SYR2", 0)]
    assert len(list((tmp_path / "vintages" / "portal").iterdir())) == 1


def test_sources_are_checked_when_the_config_loads(tmp_path):
    config = tmp_path / "monitor.toml"
    config.write_text('[[sources]]\nname = "x"\nkind = "http-csv"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "fetch"])
    assert result.exit_code == 1 and "source 'x' (http-csv) needs a url" in result.output
    config.write_text(_source("x", "http://127.0.0.1:9/a.csv"), encoding="utf-8")
    unknown = CliRunner().invoke(cli, ["--config", str(config), "fetch", "y"])
    assert unknown.exit_code == 1 and "no [[sources]] entry is named 'y' (configured: x)" in unknown.output


def test_monitor_run_fetches_first_and_names_a_failed_source_in_the_report(tmp_path):
    """`monitor run` fetches its [[sources]] before it ingests; a source that fails is named on stderr and in the
    report's key messages, the week is judged on what the database holds, and the run exits 1."""
    with serve(lambda request: Reply(200, FIRST) if request.path == "/good.csv" else Reply(503, "maintenance")) as server:
        config = _config(tmp_path, _source("good", f"{server.url}/good.csv"), _source("down", f"{server.url}/down.csv"), retries=0)
        with open(config, "a", encoding="utf-8") as handle:
            handle.write('[report]\nfolder = "reports"\n[alerts]\nenabled = false\n[[series]]\nname = "all"\n')
        result = CliRunner().invoke(cli, ["--config", str(config), "run", "--week", "2023-W06"],
                                    env={"MONITOR_NOW": "2023-02-15T06:00:00+00:00"})  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "good: fetched " in result.stdout
    assert f"fetch failed: down: {server.url}/down.csv failed (HTTP 503: maintenance)" in result.stderr
    report = (tmp_path / "reports" / "2023-W06" / "report.md").read_text(encoding="utf-8")
    assert "Fetching failed: down: " in report and "The week is judged on the data the database held before." in report
    assert _incidents(config) == [("SYR1", 1), ("SYR2", 0)]


def test_status_shows_each_sources_last_fetch(tmp_path):
    with serve(lambda request: Reply(200, FIRST) if request.path == "/good.csv" else Reply(404, "")) as server:
        config = _config(tmp_path, _source("good", f"{server.url}/good.csv"), _source("gone", f"{server.url}/gone.csv"))
        _fetch(config)
    result = CliRunner().invoke(cli, ["--config", str(config), "status", "--format", "json"], env={"MONITOR_NOW": NOW})
    assert result.exit_code == 0, result.output
    import json

    rows = {r["source"]: r for r in json.loads(result.stdout)["fetches"]}
    assert (rows["good"]["status"], rows["good"]["last_success"]) == ("ingested", NOW)
    assert rows["gone"]["status"] == "failed" and rows["gone"]["last_success"] is None
    assert "was not found (HTTP 404)" in rows["gone"]["message"]
    table = CliRunner().invoke(cli, ["--config", str(config), "status"], env={"MONITOR_NOW": NOW})
    assert "fetches ([[sources]], the last of each)" in table.stdout


def test_messages_never_show_a_password_or_key_in_the_url(tmp_path):
    with serve(lambda request: Reply(500, "down")) as server:
        url = server.url.replace("http://", "http://user:pw@") + "/f.csv?api_key=SECRETKEY"
        config = _config(tmp_path, _source("portal", url), retries=0)
        result = _fetch(config)
    assert result.exit_code == 1
    assert "pw@" not in result.output and "SECRETKEY" not in result.output
    assert all("pw@" not in m and "SECRETKEY" not in m for _, _, m in _fetch_log(config))


def test_an_address_that_is_no_url_is_refused_when_the_config_loads(tmp_path):
    config = tmp_path / "monitor.toml"
    config.write_text(_source("x", "http://[::1/f.csv"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "fetch"])
    assert result.exit_code == 1 and "is not an http:// or https:// address with a host" in result.output
