"""`monitor fetch` of ACLED's API and UCDP's API, against real HTTP servers on 127.0.0.1 that behave as the
services do (issue 15, items 2, 4, 5 and 6): ACLED's OAuth password grant and token, its paged `read` and
`deleted` endpoints, its access levels; UCDP's paged gedevents with its `NextPageUrl` and access token header.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from http_server import Reply, serve
from test_revisions import acled_row

from monitor.cli import cli

NOW = "2023-02-13T06:00:00+00:00"


def _config(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text('[database]\npath = "m.db"\n[fetch]\nbackoff = 0\nretries = 1\n' + source, encoding="utf-8")
    return path


def _fetch(config: Path, env: dict | None = None):
    return CliRunner().invoke(cli, ["--config", str(config), "fetch"], env={"MONITOR_NOW": NOW, **(env or {})})


def _incidents(config: Path) -> list[tuple]:
    with sqlite3.connect(config.parent / "m.db") as conn:
        return conn.execute("SELECT source, source_id, fatalities FROM incidents ORDER BY source_id").fetchall()


class Acled:
    """ACLED's API as documented: OAuth password grant, Bearer tokens, pages of `limit` rows, string numbers."""

    def __init__(self, events: list[dict], *, password: str = "s3cret", page: int = 5000, deleted: list[dict] | None = None,
                 access: int = 200) -> None:  # fmt: skip
        self.events, self.password, self.page, self.deleted, self.access = events, password, page, deleted or [], access
        self.tokens: set[str] = set()
        self.logins = 0

    def __call__(self, request):
        if request.path == "/oauth/token":
            form = request.form
            if form.get("client_id") != "acled" or form.get("grant_type") not in ("password", "refresh_token"):
                return Reply(400, json.dumps({"error": "invalid_request"}))
            if form.get("grant_type") == "password" and (form.get("username") != "ana@example.org" or form.get("password") != self.password):
                return Reply(400, json.dumps({"error": "invalid_grant", "error_description": "The user credentials were incorrect."}))
            self.logins += 1
            token = f"tok{self.logins}"
            self.tokens.add(token)
            return Reply(200, json.dumps({"token_type": "Bearer", "expires_in": 86400, "access_token": token, "refresh_token": "r1"}))
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
            return Reply(401, json.dumps({"message": "Invalid or expired token"}))
        if request.path == "/api/acled/read":
            if self.access != 200:
                return Reply(self.access, json.dumps({"message": "Access denied"}))
            rows = self.events
            if "timestamp" in request.query:
                rows = [r for r in rows if int(r["timestamp"]) >= int(request.query["timestamp"])]
            if "country" in request.query:
                rows = [r for r in rows if r["country"] in request.query["country"].split("|")]
            return self._page(request, rows)
        if request.path == "/api/deleted/read":
            return self._page(request, [d for d in self.deleted if int(d["deleted_timestamp"]) >= int(request.query["deleted_timestamp"])])
        return Reply(404, "")

    def _page(self, request, rows: list[dict]) -> Reply:
        limit, page = min(int(request.query.get("limit", 5000)), self.page), int(request.query.get("page", 1))
        chunk = rows[(page - 1) * limit : page * limit]
        return Reply(200, json.dumps({"status": 200, "success": True, "data": chunk}))  # no count: ACLED dropped it in 2026


def _acled_source(url: str, *, password_file: str = "") -> str:
    extra = f'password_file = "{password_file}"\n' if password_file else ""
    return (f'[[sources]]\nname = "acled-syria"\nkind = "acled-api"\nurl = "{url}"\nemail = "ana@example.org"\n'
            f'countries = ["Syria"]\nstart = "2023-01-01"\n{extra}')  # fmt: skip


def test_acled_login_paging_incremental_fetch_and_deletions(tmp_path, monkeypatch):
    import monitor.fetch.acled as acled

    monkeypatch.setattr(acled, "PAGE", 2)  # three pages of two rows
    rows = [acled_row(f"SYR{i}", event_date="2023-02-0" + str(i), fatalities=i, timestamp=str(1675000000 + i)) for i in range(1, 6)]
    service = Acled(rows)
    with serve(service) as server:
        config = _config(tmp_path, _acled_source(server.url))
        first = _fetch(config, {"ACLED_PASSWORD": "s3cret"})
        assert first.exit_code == 0, first.output
        assert ": 5 rows read, 5 inserted, 0 updated, 0 unchanged, 0 rejected" in first.stdout
        reads = [r for r in server.requests if r.path == "/api/acled/read"]
        assert [r.query["page"] for r in reads] == ["1", "2", "3"]
        assert reads[0].query["event_date"] == "2023-01-01|2023-02-13" and reads[0].query["event_date_where"] == "BETWEEN"
        assert reads[0].query["country"] == "Syria" and reads[0].headers["authorization"] == "Bearer tok1"
        # a week later: SYR2 revised, SYR3 deleted; only what changed since the newest timestamp is asked for
        service.events = [*rows[:1], acled_row("SYR2", event_date="2023-02-02", fatalities=9, timestamp="1675100000"), *rows[2:]]
        service.deleted = [{"event_id_cnty": "SYR3", "deleted_timestamp": "9999999999"}]
        second = _fetch(config, {"ACLED_PASSWORD": "s3cret"})
        assert second.exit_code == 0, second.output
        later = [r for r in server.requests if r.path == "/api/acled/read"][3:]
        assert later[0].query["timestamp"] == "1675000005" and later[0].query["timestamp_where"] == ">="
        assert "2 rows read, 0 inserted, 1 updated, 1 unchanged, 0 rejected" in second.stdout  # SYR5 again: its timestamp is the newest seen
        assert "1 deletions read, 1 deleted, 0 not in the database (remembered), 0 rejected" in second.stdout
        assert service.logins == 1  # the token is kept until it expires
    assert _incidents(config) == [("acled", "SYR1", 1), ("acled", "SYR2", 9), ("acled", "SYR4", 4), ("acled", "SYR5", 5)]


def test_acled_wrong_password_and_open_tier_say_what_to_do(tmp_path):
    with serve(Acled([])) as server:
        config = _config(tmp_path, _acled_source(server.url))
        wrong = _fetch(config, {"ACLED_PASSWORD": "nope"})
        assert wrong.exit_code == 1
        assert "ACLED refused the login of ana@example.org (HTTP 400:" in wrong.stderr
        assert "check email in the config and the password in $ACLED_PASSWORD or password_file" in wrong.stderr
        missing = _fetch(config, {"ACLED_PASSWORD": ""})
        assert "no ACLED password: set $ACLED_PASSWORD or password_file" in missing.stderr
    with serve(Acled([], access=403)) as server:
        config = _config(tmp_path, _acled_source(server.url))
        open_tier = _fetch(config, {"ACLED_PASSWORD": "s3cret"})
        assert "this account's access level does not include the API" in open_tier.stderr
        assert "use ACLED's aggregated weekly files instead" in open_tier.stderr and "format acled-aggregated" in open_tier.stderr


def test_acled_password_file_must_be_owner_only(tmp_path):
    secret = tmp_path / "acled.pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    secret.chmod(0o644)
    with serve(Acled([acled_row("SYR1", event_date="2023-02-01", fatalities=1, timestamp="1675000001")])) as server:
        config = _config(tmp_path, _acled_source(server.url, password_file=str(secret)))
        loose = _fetch(config)
        assert loose.exit_code == 1 and "chmod 600" in loose.output
        secret.chmod(0o600)
        ok = _fetch(config)
        assert ok.exit_code == 0, ok.output


def test_acled_page_that_repeats_ends_the_fetch_and_stores_nothing(tmp_path, monkeypatch):
    import monitor.fetch.acled as acled

    monkeypatch.setattr(acled, "PAGE", 2)
    rows = [acled_row(f"SYR{i}", event_date="2023-02-01", fatalities=0, timestamp="1675000000") for i in range(1, 5)]
    service = Acled(rows)
    service._page = lambda request, rows: Reply(200, json.dumps({"status": 200, "success": True, "data": rows[:2]}))
    with serve(service) as server:
        config = _config(tmp_path, _acled_source(server.url))
        result = _fetch(config, {"ACLED_PASSWORD": "s3cret"})
    assert result.exit_code == 1
    assert "ACLED sent page 2 of events again, the same as page 1: its paging is broken; nothing was stored" in result.stderr
    assert _incidents(config) == [] and not (tmp_path / "vintages").exists()


class Ucdp:
    """UCDP's API: the access token header, pages of `pagesize` rows (0-based), NextPageUrl to the public address."""

    def __init__(self, events: list[dict], *, token: str = "tok") -> None:
        self.events, self.token = events, token

    def __call__(self, request):
        if request.headers.get("x-ucdp-access-token") != self.token:
            return Reply(401, "API token required. Add header: x-ucdp-access-token")
        size, page = int(request.query.get("pagesize", 100)), int(request.query.get("page", 0))
        rows = [e for e in self.events if not request.query.get("Country") or str(e["country_id"]) in request.query["Country"].split(",")]
        pages = max(1, -(-len(rows) // size))
        following = (f"https://ucdpapi.pcr.uu.se{request.path}?pagesize={size}&page={page + 1}"
                     + (f"&Country={request.query['Country']}" if request.query.get("Country") else "")) if page + 1 < pages else ""  # fmt: skip
        return Reply(200, json.dumps({"TotalCount": len(rows), "TotalPages": pages, "PreviousPageUrl": "",
                                      "NextPageUrl": following, "Result": rows[page * size : (page + 1) * size]}))  # fmt: skip


def _ged(i: int, *, best: int = 1) -> dict:
    return {"id": 400000 + i, "relid": f"SYR-2023-1-{i}", "year": 2023, "type_of_violence": 1, "conflict_name": "Syria: Government",
            "dyad_name": "Government of Syria - IS", "side_a": "Government of Syria", "side_b": "IS", "country": "Syria",
            "country_id": 652, "adm_1": "Homs governorate", "adm_2": "Tadmur district", "where_coordinates": "Palmyra town",
            "latitude": 34.56, "longitude": 38.28, "date_start": f"2023-01-{i:02d}T00:00:00.000", "date_end": f"2023-01-{i:02d}T00:00:00",
            "best": best, "low": best, "high": best, "source_headline": "clash"}  # fmt: skip


def test_ucdp_pages_by_next_link_with_the_token_and_a_release_is_fetched_once(tmp_path, monkeypatch):
    import monitor.fetch.ucdp as ucdp

    monkeypatch.setattr(ucdp, "PAGE_SIZE", 2)
    service = Ucdp([_ged(i) for i in range(1, 6)])
    with serve(service) as server:
        config = _config(tmp_path, f'[[sources]]\nname = "ged"\nkind = "ucdp-api"\nurl = "{server.url}"\nversion = "25.0.1"\n'
                                   'dataset = "candidate"\ncountries = ["652"]\n')  # fmt: skip
        no_token = _fetch(config)
        assert no_token.exit_code == 1
        assert "refused access (HTTP 401: API token required. Add header: x-ucdp-access-token): set the UCDP API access token in $UCDP_TOKEN" in no_token.stderr
        first = _fetch(config, {"UCDP_TOKEN": "tok"})
        assert first.exit_code == 0, first.output
        assert "5 rows read, 5 inserted" in first.stdout
        pages = [r.query.get("page") for r in server.requests if r.headers.get("x-ucdp-access-token") == "tok"]
        assert pages == ["0", "1", "2"]  # the next links, followed on the configured address
        again = _fetch(config, {"UCDP_TOKEN": "tok"})
        assert "version 25.0.1 was fetched whole before: set the next version to fetch more" in again.stdout
        # the GED release that covers these Candidate events replaces them row for row (same ids), and the
        # Candidate event it left out (400005) is deleted: nothing is counted twice
        service.events = [_ged(i, best=3) for i in range(1, 5)]
        config.write_text(config.read_text().replace('version = "25.0.1"\ndataset = "candidate"', 'version = "25.1"\ndataset = "gedevents"'))
        ged = _fetch(config, {"UCDP_TOKEN": "tok"})
        assert ged.exit_code == 0, ged.output
        assert "4 rows read, 0 inserted, 4 updated" in ged.stdout
        assert "replaced-candidates.csv: 1 deletions read, 1 deleted, 0 not in the database (remembered), 0 rejected" in ged.stdout
    assert [(s, i, f) for s, i, f in _incidents(config)] == [("ucdp", str(400000 + i), 3) for i in range(1, 5)]


@pytest.mark.parametrize("broken,expected", [
    (Reply(200, '{"status": 200, "success": true, "data": [{"event_id_cnty": "SY'), "sent something that is not JSON"),
    (Reply(200, json.dumps({"status": 200, "success": True, "data": []}) * 2, cut=30), "broke off the response"),
    (Reply(200, json.dumps({"status": 500, "success": False, "messages": ["You have exceeded your API calls"]})),
     "ACLED answered with an error for events: ['You have exceeded your API calls']"),
])  # fmt: skip
def test_acled_answers_cut_short_or_not_json_end_the_fetch_with_one_line(tmp_path, broken, expected):
    service = Acled([acled_row("SYR1", event_date="2023-02-01", fatalities=1, timestamp="1675000001")])
    plain = service.__call__

    def handler(request):
        return broken if request.path == "/api/acled/read" else plain(request)

    with serve(handler) as server:
        config = _config(tmp_path, _acled_source(server.url))
        result = _fetch(config, {"ACLED_PASSWORD": "s3cret"})
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("fetch failed: acled-syria: ") and expected in line
    assert _incidents(config) == []


def test_a_ged_release_resumed_after_a_kill_still_replaces_the_candidate_events(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    service = Ucdp([_ged(i) for i in range(1, 6)])
    with serve(service) as server:
        source = f'[[sources]]\nname = "ged"\nkind = "ucdp-api"\nurl = "{server.url}"\nversion = "25.0.1"\ndataset = "candidate"\n'
        config = _config(tmp_path, source)
        assert _fetch(config, {"UCDP_TOKEN": "tok"}).exit_code == 0
        service.events = [_ged(i, best=3) for i in range(1, 5)]
        config.write_text(config.read_text().replace('version = "25.0.1"\ndataset = "candidate"', 'version = "25.1"\ndataset = "gedevents"'))
        env = {**os.environ, "MONITOR_NOW": NOW, "UCDP_TOKEN": "tok", "MONITOR_KILL_AT": "fetch.before-ingest"}
        killed = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "fetch"], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert killed.returncode == -9, killed.stderr
        again = _fetch(config, {"UCDP_TOKEN": "tok"})
        assert again.exit_code == 0, again.output
        assert "(left by an interrupted run): 4 rows read" in again.stdout
        assert "replaced-candidates.csv: 1 deletions read, 1 deleted" in again.stdout
        assert "replaced-candidates" not in _fetch(config, {"UCDP_TOKEN": "tok"}).stdout  # done once
    assert [i for _, i, _ in _incidents(config)] == [str(400000 + i) for i in range(1, 5)]


def test_vintages_are_read_by_their_own_format_whatever_ingest_format_says(tmp_path):
    rows = [acled_row("SYR1", event_date="2023-02-01", fatalities=1, timestamp="1675000001"),
            acled_row("SYR2", event_date="2023-02-02", fatalities=1, timestamp="1675000002")]  # fmt: skip
    service = Acled(rows)
    with serve(service) as server:
        config = _config(tmp_path, '[ingest]\nformat = "acled"\n' + _acled_source(server.url))
        assert _fetch(config, {"ACLED_PASSWORD": "s3cret"}).exit_code == 0
        service.deleted = [{"event_id_cnty": "SYR2", "deleted_timestamp": "9999999999"}]
        second = _fetch(config, {"ACLED_PASSWORD": "s3cret"})
        assert second.exit_code == 0, second.output
    assert [i for _, i, _ in _incidents(config)] == ["SYR1"]


def test_odd_values_from_the_service_never_stop_the_fetch_with_a_traceback(tmp_path):
    rows = [acled_row("SYR1", event_date="2023/02/01", fatalities=1, timestamp="1e999"),
            acled_row("SYR2", event_date="2023-02-02", fatalities=1, timestamp="1675000002")]  # fmt: skip
    service = Acled(rows)
    plain = service.__call__

    def handler(request):
        reply = plain(request)
        if request.path == "/oauth/token" and reply.status == 200:
            body = json.loads(reply.body)
            reply.body = json.dumps({**body, "expires_in": "soon"})
        return reply

    with serve(handler) as server:
        config = _config(tmp_path, _acled_source(server.url))
        result = _fetch(config, {"ACLED_PASSWORD": "s3cret"})
    assert "Traceback" not in result.output and "please report" not in result.output
    assert result.exit_code == 0, result.output
    # the row dated 2023/02/01 is rejected with its reason (`monitor rejects`); the other is stored, and the
    # next fetch starts from the newest timestamp that is a number
    assert "2 rows read, 1 inserted, 0 updated, 0 unchanged, 1 rejected" in result.stdout
    assert [i for _, i, _ in _incidents(config)] == ["SYR2"]


def test_credentials_never_follow_a_redirect_to_another_host(tmp_path):
    with serve(lambda request: Reply(200, json.dumps({"Result": [_ged(1)], "NextPageUrl": ""}))) as elsewhere:
        with serve(lambda request: Reply(302, "", {"Location": f"{elsewhere.url}/api/gedevents/25.1"})) as server:
            config = _config(tmp_path, f'[[sources]]\nname = "ged"\nkind = "ucdp-api"\nurl = "{server.url}"\nversion = "25.1"\n')
            result = _fetch(config, {"UCDP_TOKEN": "tok-secret"})
        assert result.exit_code == 1
        assert "redirects to another host (127.0.0.1): credentials are not sent there" in result.stderr
        assert elsewhere.requests == []


def test_a_ucdp_mirror_under_a_path_is_paged_on_its_own_path(tmp_path, monkeypatch):
    import monitor.fetch.ucdp as ucdp

    monkeypatch.setattr(ucdp, "PAGE_SIZE", 2)
    service = Ucdp([_ged(i) for i in range(1, 4)])

    def mirror(request):
        if not request.path.startswith("/mirror/api/"):
            return Reply(404, "")
        request.path = request.path.removeprefix("/mirror")
        reply = service(request)
        body = json.loads(reply.body)
        if body["NextPageUrl"]:  # a mirror's own links carry its prefix
            body["NextPageUrl"] = body["NextPageUrl"].replace("https://ucdpapi.pcr.uu.se/", "https://mirror.example/mirror/")
        reply.body = json.dumps(body)
        return reply

    with serve(mirror) as server:
        config = _config(tmp_path, f'[[sources]]\nname = "ged"\nkind = "ucdp-api"\nurl = "{server.url}/mirror"\nversion = "25.1"\n')
        result = _fetch(config, {"UCDP_TOKEN": "tok"})
    assert result.exit_code == 0, result.output
    assert "3 rows read, 3 inserted" in result.stdout


def test_a_paged_fetch_tells_its_progress_page_by_page_then_the_ingest_row_by_row(tmp_path, monkeypatch):
    """What `monitor fetch` draws as progress bars on a terminal: the rows fetched of the paged API as each page comes
    in, then the rows of the stored vintage as it is ingested (about as many as its lines)."""
    from datetime import datetime

    import monitor.fetch.ucdp as ucdp
    from monitor.config import load_config
    from monitor.fetch import fetch_sources
    from monitor.store import Store

    monkeypatch.setattr(ucdp, "PAGE_SIZE", 2)
    monkeypatch.setenv("UCDP_TOKEN", "tok")
    told: list[tuple[str, int, int | None]] = []
    with serve(Ucdp([_ged(i) for i in range(1, 6)])) as server:
        config = load_config(_config(tmp_path, f'[[sources]]\nname = "ged"\nkind = "ucdp-api"\nurl = "{server.url}"\nversion = "25.0.1"\n'
                                                'dataset = "candidate"\ncountries = ["652"]\n'))  # fmt: skip
        with Store(config.db_path) as store:
            outcomes = fetch_sources(config, store, now=datetime.fromisoformat(NOW), progress=lambda *a: told.append(a))
    assert [o.status for o in outcomes] == ["ingested"]
    fetched = [(done, total) for label, done, total in told if label == "ged: rows fetched"]
    assert fetched == [(2, None), (4, None), (5, None)]
    ingested = [(label, done, total) for label, done, total in told if label != "ged: rows fetched"]
    assert ingested and ingested[-1][0] == Path(outcomes[0].file).name and ingested[-1][1:] == (5, 5)
