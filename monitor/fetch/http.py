"""HTTP for `monitor fetch`: timeouts, bounded retries with backoff, and one-line errors that say what to do.

Built on httpx. A request is retried after a timeout, a dropped or refused connection, HTTP 429 or
a 5xx answer, at most `retries` times, waiting `backoff` seconds and twice as long each time (a
429's or 503's Retry-After is honoured when it asks for no more than `max_wait`; a longer wait
ends the fetch and says when to try again). Everything else ends the fetch at once with a
`FetchError` naming the source, what happened and the fix: 401/403 (with the caller's words on
credentials), 404, other 4xx, a body cut short, or JSON that does not parse.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from monitor.errors import MonitorError
from monitor.types import Progress

#: The User-Agent every request sends (services ask clients to name themselves).
USER_AGENT = "incident-monitor (+https://github.com/incident-monitor)"


class FetchError(MonitorError):
    """A source could not be fetched; the message is one line naming the source and what to do."""


@dataclass(frozen=True)
class Fetched:
    """What one fetch brought: files to store and ingest in order (name part, bytes), where the next fetch
    starts (cursor), and a note for the user (e.g. an access level that hides recent events)."""

    files: tuple[tuple[str, bytes], ...]  # (e.g. "events.csv", body); empty: nothing new
    cursor: dict[str, Any]
    note: str = ""


def _retry_after(response: httpx.Response, now: Callable[[], float]) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now())


class Http:
    """One source's HTTP session."""

    def __init__(self, source: str, *, timeout: float, retries: int, backoff: float, max_wait: float,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 progress: Progress | None = None) -> None:  # fmt: skip
        self.source = source
        self.progress = progress
        self.retries, self.backoff, self.max_wait = retries, backoff, max_wait
        self.sleep, self.clock = sleep, clock
        # redirects are followed by `request`, which never carries credentials to another host
        self.client = httpx.Client(timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT})
        self.requests = 0


    def fetched(self, rows: int) -> None:
        """Say how many rows of the source have come in so far (a paged API, page by page): a progress bar on a terminal."""
        if self.progress is not None:
            self.progress(f"{self.source}: rows fetched", rows, None)
    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "Http":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, auth_hint: str = "", ok: tuple[int, ...] = (200,)) -> httpx.Response:  # fmt: skip
        """The response, once its status is one of `ok` and its whole body has arrived; FetchError otherwise."""
        wait = self.backoff
        shown = shown_url(url)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            self.requests += 1
            try:
                response = self._follow(method, url, params=params, data=data, headers=headers)
            except httpx.TimeoutException:
                problem = f"no answer from {shown} within {self.client.timeout.read:g} s"
            except httpx.RemoteProtocolError as exc:
                problem = f"{shown} broke off the response ({exc}): the data arrived cut short"
            except (httpx.ConnectError, httpx.NetworkError) as exc:
                problem = f"cannot reach {shown} ({exc})"
            except httpx.InvalidURL as exc:
                raise FetchError(f"{self.source}: {shown} is not a usable address ({exc}): check the source's url") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"{self.source}: request to {shown} failed: {exc}") from None
            else:
                if response.status_code in ok:
                    return response
                problem = self._problem(response, shown, auth_hint)
                retry = response.status_code == 429 or response.status_code >= 500
                if not retry:
                    raise FetchError(problem)
                asked = _retry_after(response, self.clock)
                if asked is not None:
                    if asked > self.max_wait:
                        raise FetchError(f"{problem}; the service asks to wait {asked:.0f} s (more than fetch.max_wait = "
                                         f"{self.max_wait:g} s): fetch again later")  # fmt: skip
                    wait = max(wait, asked)
            if last:
                break
            self.sleep(wait)
            wait *= 2
        raise FetchError(f"{problem if problem.startswith(self.source + ':') else self.source + ': ' + problem} "
                         f"(after {self.retries + 1} attempts; nothing of it was stored: fetch again later)")  # fmt: skip

    def _follow(self, method: str, url: str, *, params, data, headers) -> httpx.Response:
        """The request, following up to 5 redirects; one to another host is followed only by a plain GET without
        credentials (a password, a token) and without a body: those never leave for a host not configured."""
        origin = httpx.URL(url)
        for _ in range(6):
            response = self.client.request(method, url, params=params, data=data, headers=headers)
            response.read()
            if not response.is_redirect:
                return response
            target = response.next_request.url if response.next_request is not None else None
            if target is None:
                return response
            if (target.scheme, target.host, target.port) != (origin.scheme, origin.host, origin.port):
                if data is not None or any(k.lower() in ("authorization", "x-ucdp-access-token") for k in (headers or {})):
                    raise FetchError(f"{self.source}: {shown_url(url)} redirects to another host ({target.host}): credentials "
                                     "are not sent there; if the service moved, set the source's url to its new address")  # fmt: skip
            if response.status_code in (301, 302, 303) and method == "POST":
                raise FetchError(f"{self.source}: {shown_url(url)} answered a login with a redirect ({response.status_code}): "
                                 "check the source's url")  # fmt: skip
            url, params = str(target), None
        raise FetchError(f"{self.source}: {shown_url(url)} redirects more than 5 times: check the source's url")

    def _problem(self, response: httpx.Response, shown: str, auth_hint: str) -> str:
        code = response.status_code
        said = _said(response)
        if code in (401, 403):
            return f"{self.source}: {shown} refused access (HTTP {code}{': ' + said if said else ''}){': ' + auth_hint if auth_hint else ''}"
        if code == 404:
            return f"{self.source}: {shown} was not found (HTTP 404): check the source's url (and version)"
        if code == 429:
            return f"{self.source}: {shown} limits the rate of requests (HTTP 429)"
        if code >= 500:
            return f"{self.source}: {shown} failed (HTTP {code}{': ' + said if said else ''})"
        return f"{self.source}: {shown} answered HTTP {code}{': ' + said if said else ''}: check the source's settings"

    def json(self, response: httpx.Response) -> Any:
        """The response's JSON; FetchError when it does not parse (a body cut short, or an error page)."""
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            start = response.content[:80].decode("utf-8", "replace").replace("\n", " ")
            raise FetchError(f"{self.source}: {shown_url(str(response.url))} sent something that is not JSON ({exc}; it begins "
                             f"{start!r}): the answer was cut short or is an error page; fetch again later") from None  # fmt: skip


def _said(response: httpx.Response) -> str:
    """A short, one-line summary of an error body (a JSON message, or the start of the text)."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        text = response.content[:160].decode("utf-8", "replace")
        return " ".join(text.split())[:160]
    if isinstance(body, dict):
        for key in ("message", "messages", "error_description", "error", "detail"):
            if body.get(key):
                value = body[key]
                return " ".join(str(value if not isinstance(value, list) else "; ".join(map(str, value))).split())[:200]
    return ""


def shown_url(url: str) -> str:
    """A URL as messages show it: without its query (api keys) and without user:password@."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return url.split("?")[0].split("@")[-1]
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def utc_stamp(moment: datetime) -> str:
    """A file-name-safe UTC time, e.g. 20230206T060000Z."""
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
