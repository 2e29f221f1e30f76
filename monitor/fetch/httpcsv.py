"""`http-csv` sources: one file at a URL (a resource of a public data portal, a mirror of an export).

Fetched whole, conditionally: the ETag and Last-Modified of the last fetch go out as If-None-Match
and If-Modified-Since, so an unchanged file costs one short answer (304: nothing new). A body that
is empty, or not the size the server announced, ends the fetch. The file is stored as it came
(.xlsx when it is a workbook, else .csv) and ingested with its format detected from its header.
"""

from __future__ import annotations

from typing import Any

from monitor.fetch.http import Fetched, FetchError, Http


def fetch(source, http: Http, *, cursor: dict[str, Any], secret=None, today=None) -> Fetched:
    """The file, or nothing when it has not changed since the last fetch."""
    headers = {}
    if cursor.get("etag"):
        headers["If-None-Match"] = cursor["etag"]
    if cursor.get("last_modified"):
        headers["If-Modified-Since"] = cursor["last_modified"]
    response = http.request("GET", source.address, headers=headers, ok=(200, 304))
    if response.status_code == 304:
        return Fetched((), cursor)
    body = response.content
    if not body.strip():
        raise FetchError(f"{source.name}: {source.address} sent an empty file: nothing stored; check the url")
    suffix = ".xlsx" if body[:4] == b"PK\x03\x04" else ".csv"
    following = {k: v for k, v in (("etag", response.headers.get("etag", "")),
                                   ("last_modified", response.headers.get("last-modified", ""))) if v}  # fmt: skip
    return Fetched((("file" + suffix, body),), following)
