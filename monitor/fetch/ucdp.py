"""`ucdp-api` sources: UCDP GED releases and Candidate events through the UCDP API.

`GET <url>/api/gedevents/<version>?pagesize=1000&page=0` (with `Country=<Gleditsch-Ward codes>`
and `StartDate=<start>` when set), the access token in the `x-ucdp-access-token` header (the API
asks for one since 2026: `token_env`, default UCDP_TOKEN, or `token_file`); each answer's `Result`
rows are kept and its `NextPageUrl` followed until it is empty (UCDP's own paging; a link that
repeats, or pages that never end, stop the fetch). GED releases (`dataset = "gedevents"`, version
e.g. 25.1) and monthly Candidate events (`dataset = "candidate"`, e.g. 25.0.9) have the same rows.
The rows are written as a UCDP GED CSV and ingested by the UCDP reader.

A release does not change, so a version fetched whole is not fetched again (nothing new) until the
source's `version` is changed to the next one. UCDP event ids stay the same from Candidate to GED,
so a GED release ingested after the Candidate events it covers replaces them row for row (UCDP rows
carry no revision: the latest ingest wins), and `monitor.fetch` then deletes the Candidate events
of the period and countries it covers that it left out (a `ucdp-replaced` list): nothing is counted
twice. Fetching an older Candidate version after the GED release would overwrite the release's rows
(the latest ingest wins): move `version` forward only.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from monitor.fetch.http import Fetched, FetchError, Http

#: Columns written (those `monitor.sources.ucdp` reads, and a few more of the GED layout for the record).
COLUMNS = (
    "id", "relid", "year", "type_of_violence", "conflict_name", "dyad_name", "side_a", "side_b", "country", "country_id",
    "adm_1", "adm_2", "where_coordinates", "latitude", "longitude", "date_start", "date_end", "best", "low", "high",
    "source_headline",
)  # fmt: skip
PAGE_SIZE = 1000  # the API's largest page
MAX_PAGES = 2000
TOKEN_HINT = "set the UCDP API access token in ${env} or token_file (tokens are free: ask UCDP, see ucdp.uu.se/apidocs)"


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return text[:10] if column in ("date_start", "date_end") else text  # "2010-05-13T00:00:00" -> the date


def fetch(source, http: Http, *, cursor: dict[str, Any], secret=None, today: date | None = None) -> Fetched:
    if cursor.get("version") == source.version and cursor.get("complete"):
        return Fetched((), cursor, f"version {source.version} was fetched whole before: set the next version to fetch more")
    hint = TOKEN_HINT.replace("{env}", source.token_env)
    headers = {"x-ucdp-access-token": secret.get_secret_value()} if secret is not None else {}
    params = {"pagesize": str(PAGE_SIZE), "page": "0"}
    if source.countries:
        params["Country"] = ",".join(source.countries)
    if source.start:
        params["StartDate"] = source.start
    url: str | None = f"{source.address}/api/gedevents/{source.version}"
    seen: set[str] = set()
    rows: list[dict] = []
    for _ in range(MAX_PAGES):
        response = http.request("GET", url, params=params, headers=headers, auth_hint=hint)
        body = http.json(response)
        if not isinstance(body, dict) or not isinstance(body.get("Result"), list):
            raise FetchError(f"{source.name}: UCDP's answer has no list of events ('Result'): check the version "
                             f"({source.version}) and fetch again later")  # fmt: skip
        rows += [r for r in body["Result"] if isinstance(r, dict)]
        http.fetched(len(rows))
        following = body.get("NextPageUrl") or ""
        if not isinstance(following, str):
            raise FetchError(f"{source.name}: UCDP's next page link is not a link ({following!r}): fetch again later")
        if not following:
            break
        if following in seen:
            raise FetchError(f"{source.name}: UCDP's next page link repeats ({following}): its paging is broken; nothing "
                             "was stored: fetch again later")  # fmt: skip
        seen.add(following)
        # the link names the service's public address; keep the configured one (a mirror, a test server), whose
        # own path prefix the link may or may not carry
        parts, base = urlsplit(following), urlsplit(source.address)
        path = parts.path if parts.path.startswith(base.path + "/") else base.path + parts.path
        url, params = f"{base.scheme}://{base.netloc}{path}?{parts.query}", None
    else:
        raise FetchError(f"{source.name}: UCDP's pages did not end after {MAX_PAGES}: narrow the source (countries, start)")
    next_cursor = {"version": source.version, "complete": True, "dataset": source.dataset}
    if not rows:
        return Fetched((), next_cursor, f"UCDP returned no events for version {source.version} with these filters")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(c, row.get(c)) for c in COLUMNS])
    return Fetched(((f"{source.dataset}-{source.version}.csv", buffer.getvalue().encode("utf-8")),), next_cursor)
