"""`acled-api` sources: ACLED's API (OAuth since September 2025), events and deletions.

Request and response shapes follow ACLED's API documentation and its official R client
(dtacled/acledR: `acled_auth`, `acled_api`, `acled_deletions_api`):

* **Login**: `POST <url>/oauth/token`, form `username` (the `email`), `password`,
  `grant_type=password`, `client_id=acled`; the answer's `access_token` is sent as
  `Authorization: Bearer ...` until it expires (`expires_in`), then renewed with its
  `refresh_token` (`grant_type=refresh_token`), or by logging in again. Tokens are kept in this
  process only (a scheduler running for weeks renews them); never on disk.
* **Events**: `GET <url>/api/acled/read?_format=json` with `country=A|B`, `region=11|12`,
  `event_type=...`, `limit` and `page=1, 2, ...` until a page has fewer rows than `limit`. The first
  fetch asks for `event_date` from `start` to today (`event_date_where=BETWEEN`); each later one
  for rows whose `timestamp` (their last edit, Unix seconds) is at least the newest seen before
  (`timestamp_where=>=`), so edits of old events come too. The answer's `data` rows are written as
  an ACLED export (the 31-column layout) and ingested by the ACLED reader: revisions by `timestamp`.
* **Deletions**: `GET <url>/api/deleted/read?_format=json` with `deleted_timestamp` at least the
  previous fetch's start (`deleted_timestamp_where=>=`), paged the same way, written as ACLED's
  deletion list (`event_id_cnty,deleted_timestamp`) and ingested after the events. The first fetch
  asks for none: nothing is stored yet that could have been deleted.

An account whose access level hides the API (ACLED's Open tier answers 403 "Access denied") or its
recent events (the newest event returned is more than ~11 months old) is told so, and pointed to
ACLED's aggregated weekly files (format `acled-aggregated`).
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from datetime import date, datetime, timezone
from typing import Any

from monitor.fetch.http import Fetched, FetchError, Http

#: The 31 columns of ACLED's current export, in order (`monitor.sources.acled` reads them).
COLUMNS = (
    "event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "event_type", "sub_event_type", "actor1",
    "assoc_actor_1", "inter1", "actor2", "assoc_actor_2", "inter2", "interaction", "civilian_targeting", "iso", "region",
    "country", "admin1", "admin2", "admin3", "location", "latitude", "longitude", "geo_precision", "source",
    "source_scale", "notes", "fatalities", "tags", "timestamp",
)  # fmt: skip
#: Rows asked for per page (ACLED's default and usual maximum).
PAGE = 5000
#: Pages at most in one fetch (a service whose paging never ends is stopped).
MAX_PAGES = 2000
#: An account whose newest event is older than this many days probably cannot see recent events.
RECENT_DAYS = 330
CREDENTIALS = "check email in the config and the password in ${env} or password_file (log in at acleddata.com to see the account works)"

_tokens: dict[tuple[str, str], dict[str, Any]] = {}  # (url, email) -> access_token, refresh_token, expires (monotonic)


def _login(source, http: Http, secret, *, refresh: str = "") -> str:
    hint = CREDENTIALS.replace("{env}", source.password_env)
    if refresh:
        form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "acled"}
    else:
        if secret is None:
            raise FetchError(f"{source.name}: no ACLED password: set ${source.password_env} or password_file (the account of {source.email})")
        form = {"username": source.email, "password": secret.get_secret_value(), "grant_type": "password", "client_id": "acled"}
    response = http.request("POST", f"{source.address}/oauth/token", data=form, ok=(200, 400, 401, 403), auth_hint=hint)
    if response.status_code != 200:
        if refresh:  # an expired refresh token: log in again with the password
            return _login(source, http, secret)
        said = response.content[:200].decode("utf-8", "replace")
        raise FetchError(f"{source.name}: ACLED refused the login of {source.email} (HTTP {response.status_code}: "
                         f"{' '.join(said.split())[:160]}): {hint}")  # fmt: skip
    body = http.json(response)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not token:
        raise FetchError(f"{source.name}: ACLED's login answer has no access_token: fetch again later")
    expires = _unix(body.get("expires_in")) or 3600
    _tokens[(source.address, source.email)] = {"access": token, "refresh": body.get("refresh_token", ""),
                                               "expires": time.monotonic() + expires - 60}  # fmt: skip
    return token


def _token(source, http: Http, secret) -> str:
    held = _tokens.get((source.address, source.email))
    if held and held["expires"] > time.monotonic():
        return held["access"]
    return _login(source, http, secret, refresh=held["refresh"] if held else "")


def _pages(source, http: Http, secret, path: str, params: dict[str, str], what: str) -> list[dict]:
    """Every row of a paged ACLED endpoint."""
    rows: list[dict] = []
    previous: list[str] | None = None
    hint = CREDENTIALS.replace("{env}", source.password_env)
    for page in range(1, MAX_PAGES + 1):
        query = {"_format": "json", **params, "limit": str(PAGE), "page": str(page)}
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {_token(source, http, secret)}"}
            response = http.request("GET", f"{source.address}{path}", params=query, headers=headers, ok=(200, 401, 403),
                                    auth_hint=hint)  # fmt: skip
            if response.status_code == 401 and attempt == 1:  # the token expired early: log in again, once
                _tokens.pop((source.address, source.email), None)
                continue
            break
        if response.status_code == 403:
            raise FetchError(
                f"{source.name}: ACLED denied {what} to {source.email} (HTTP 403): this account's access level does not "
                "include the API (ACLED's Open tier cannot read events); use ACLED's aggregated weekly files instead (an "
                "http-csv source or the inbox; format acled-aggregated), or ask ACLED for a higher access level"
            )
        if response.status_code == 401:
            raise FetchError(f"{source.name}: ACLED did not accept the login token (HTTP 401): {hint}")
        body = http.json(response)
        if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
            raise FetchError(f"{source.name}: ACLED's answer for {what} has no list of rows ('data'): fetch again later")
        if body.get("success") is False or (isinstance(body.get("status"), int) and body["status"] >= 400):
            said = body.get("messages") or body.get("error") or body.get("message") or ""
            raise FetchError(f"{source.name}: ACLED answered with an error for {what}: {' '.join(str(said).split())[:200]}")
        data = [r for r in body.get("data", []) if isinstance(r, dict)]
        ids = [str(r.get("event_id_cnty", "")) for r in data]
        if data and ids == previous:
            raise FetchError(f"{source.name}: ACLED sent page {page} of {what} again, the same as page {page - 1}: its paging "
                             "is broken; nothing was stored: fetch again later")  # fmt: skip
        rows += data
        previous = ids
        http.fetched(len(rows))
        if len(data) < PAGE:
            return rows
    raise FetchError(f"{source.name}: ACLED's {what} did not end after {MAX_PAGES} pages of {PAGE}: narrow the source "
                     "(countries, event_types, start) and fetch again")  # fmt: skip


def _csv(header: tuple[str, ...], rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row.get(c)) for c in header])
    return buffer.getvalue().encode("utf-8")


def _unix(value: Any) -> int | None:
    """Whole Unix seconds, or None for anything else (a service's odd value never stops the fetch)."""
    try:
        number = float(str(value))
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and 0 <= number < 1e12 else None


def fetch(source, http: Http, *, cursor: dict[str, Any], secret=None, today: date | None = None) -> Fetched:
    today = today or datetime.now(timezone.utc).date()
    params: dict[str, str] = {}
    if source.countries:
        params["country"] = "|".join(source.countries)
    if source.regions:
        params["region"] = "|".join(source.regions)
    if source.event_types:
        params["event_type"] = "|".join(source.event_types)
    since = cursor.get("timestamp")
    if since is not None:
        params.update(timestamp=str(since), timestamp_where=">=")
    elif source.start:
        params.update(event_date=f"{source.start}|{today.isoformat()}", event_date_where="BETWEEN")
    fetched_at = int(time.time())
    events = _pages(source, http, secret, "/api/acled/read", params, "events")
    deletions: list[dict] = []
    if cursor.get("fetched_at") is not None:  # deletions since the last fetch began
        deletions = _pages(source, http, secret, "/api/deleted/read",
                           {"deleted_timestamp": str(cursor["fetched_at"]), "deleted_timestamp_where": ">="}, "deletions")  # fmt: skip
    stamps = [s for s in (_unix(r.get("timestamp")) for r in events) if s is not None]
    following = {"timestamp": max([*stamps, *([since] if since is not None else [])]) if stamps or since is not None else None,
                 "fetched_at": fetched_at}  # fmt: skip
    if following["timestamp"] is None:
        following.pop("timestamp")
    note = ""
    dates = [d for d in (str(r.get("event_date") or "")[:10] for r in events) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", d)]
    if since is None and dates and (today - date.fromisoformat(max(dates))).days > RECENT_DAYS:
        note = (f"the newest event ACLED returned is from {max(dates)}: this account's access level may hide recent events; "
                "for recent data use ACLED's aggregated weekly files (format acled-aggregated)")  # fmt: skip
    files: list[tuple[str, bytes]] = []
    if events:
        files.append(("events.csv", _csv(COLUMNS, events)))
    if deletions:
        files.append(("deletions.csv", _csv(("event_id_cnty", "deleted_timestamp"), deletions)))
    return Fetched(tuple(files), following, note)
