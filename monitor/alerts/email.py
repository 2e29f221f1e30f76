"""The email digest: build one message per run and route for the surges and emergences to announce, and deliver it.

The only module that uses smtplib and the email package. `deliver` either hands the
message to an SMTP server or, with no server configured, writes it as an .eml file. The
message is recorded before it is sent: the weekly run commits it to the outbox together
with the alert states that call for it (monitor.alerts.outbox.queue), and `flush` marks it
sent only once `deliver` returned, so a failed send stays in the outbox and is retried by
the next run or `monitor alerts flush`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import html
import io
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timezone
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from monitor.alerts.notify import KINDS, Digest, EmergenceNotice, Notice, group_label
from monitor.atomic import atomic_write, remove_stale_temps
from monitor.errors import DeliveryError, MonitorError
from monitor.numbers import fmt_num, fmt_p, fmt_score
from monitor.series import YEAR_AGO_WEEKS, figures_cell, figures_text, metric_unit, observed_text, result_figures, series_name
from monitor.types import ReportFiles, RunResult, SeriesResult

WEEK_HEADER = "X-Incident-Monitor-Week"
ROUTE_HEADER = "X-Incident-Monitor-Route"
MAX_SUBJECT_NAMES = 4


#: Longest reply line kept (the rest of a longer line is read and dropped). smtplib turns a
#: line over 8,192 bytes into "500 Line too long", which after DATA would set an accepted
#: message aside as refused (issue 12, item 3).
MAX_REPLY_KEPT = 512


@dataclass(frozen=True)
class Delivery:
    """Where a digest went: channel "smtp" or "file", its Message-ID, and the .eml path for "file"."""

    channel: str
    message_id: str
    path: Path | None = None


# building


def _clean(text: Any) -> str:
    """One line of plain text (no CR/LF/control characters) for headers and the text part."""
    return re.sub(r"\s+", " ", "".join(c if c.isprintable() or c.isspace() else " " for c in str(text))).strip()


def _name(r: SeriesResult) -> str:
    return _clean(series_name(r))


def _before(r: SeriesResult, result: RunResult) -> str:
    """'last week 3 events (0 fatalities), a year earlier 1 event (0 fatalities)'."""
    unit = metric_unit(r)
    last = figures_text(result_figures(r, result, weeks_back=1), metric=unit)
    ago = figures_text(result_figures(r, result, weeks_back=YEAR_AGO_WEEKS), metric=unit)
    return f"last week {last}, a year earlier {ago}"


def _weeks(n: int) -> str:
    return f"{n} week" + ("" if n == 1 else "s")


def _domain(sender: str) -> str:
    domain = sender.rpartition("@")[2].strip(" >")
    return domain if re.fullmatch(r"[A-Za-z0-9.-]+", domain or "") else "incident-monitor.local"


def _cid_token(key: str) -> str:
    # short on purpose: a Content-ID longer than a header line gets folded, and some clients then miss it
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


#: Section titles of the digest, by notice kind.
TITLES = {
    "new": "New",
    "escalated": "Escalated",
    "reminder": "Still firing (reminder)",
    "resolved": "Resolved",
    "continuing": "Continuing (announced before)",
}


def _short(n: Notice, group_by: str) -> str:
    """The place of a series for the subject line: its `group_by` label (e.g. Homs), its label, or its name for totals."""
    r = n.result
    labels = dict(r.series.labels)
    return _clean(labels.get(group_by) or (r.series.label if labels else _name(r)))


def _subject(prefix: str, week: str, digest: Digest, group_by: str = "admin1") -> str:
    """`[incident-monitor] 2023-W07: 3 new surges (Homs, Hama, Deir ez Zor), 1 resolved`."""
    parts = []
    for kind, one, many in (("new", "new surge", "new surges"), ("escalated", "escalated", "escalated"),
                            ("reminder", "reminder", "reminders"), ("resolved", "resolved", "resolved")):  # fmt: skip
        chosen = [m for n in digest.notices for m in (n, *n.children) if m.kind == kind]
        if not chosen:
            continue
        text = f"{len(chosen)} {one if len(chosen) == 1 else many}"
        if kind in ("new", "escalated"):
            names = list(dict.fromkeys(_short(n, group_by) for n in chosen))
            shown = ", ".join(names[:MAX_SUBJECT_NAMES]) + (f" +{len(names) - MAX_SUBJECT_NAMES} more" if len(names) > MAX_SUBJECT_NAMES else "")
            text += f" ({shown})"
        parts.append(text)
    for kind, one, many in (("new-actor", "new actor", "new actors"), ("new-place", "new place", "new places"),
                            ("more-actors", "more actors in 1 admin1", "more actors in {n} admin1s")):  # fmt: skip
        chosen = [n for n in digest.emergences if n.change.kind == kind]
        if chosen:
            names = list(dict.fromkeys(_clean(n.change.after.admin1) for n in chosen))
            shown = ", ".join(names[:MAX_SUBJECT_NAMES]) + (f" +{len(names) - MAX_SUBJECT_NAMES} more" if len(names) > MAX_SUBJECT_NAMES else "")
            words = one if len(chosen) == 1 else many.format(n=len(chosen))
            parts.append(f"{words} ({shown})" if kind == "more-actors" else f"{len(chosen)} {words} ({shown})")
    return _clean(f"{prefix} {week}: " + ", ".join(parts))


#: Sub-sections of the digest's emergence section, by emergence kind.
EMERGENCE_TITLES = {"new-actor": "New actors", "new-place": "New places", "more-actors": "More armed actors than ever"}


def _emergence_text(n: EmergenceNotice) -> str:
    """The sentence of an emergence alert (as the report words it), and what was announced before for an escalation."""
    e, before = n.change.emergence, n.change.before
    text = e.detail if e is not None else n.change.name
    if n.kind == "escalated" and before is not None:
        text += f"; up from {before.announced_actors} announced in {before.announced_week}"
    return text


def _emergence_groups(digest: Digest) -> list[tuple[str, list[EmergenceNotice]]]:
    return [(kind, [n for n in digest.emergences if n.change.kind == kind]) for kind in EMERGENCE_TITLES
            if any(n.change.kind == kind for n in digest.emergences)]  # fmt: skip


#: The key of the map among the digest's inline images (no series key is empty).
MAP_KEY = ""


def _level(n: Notice) -> str:
    """This week's severity of the series: its level, "alert" for an alarm without one, else "-"."""
    d = n.result.detection
    return d.level or ("alert" if d.alarm else "-")


def _filling(n: Notice) -> str:
    """What late reporting changed (issue 14, item 4): earlier weeks re-judged with fuller data, and this
    week's nowcast when it is still filling ("" for a complete week with nothing re-judged)."""
    d = n.result.detection
    parts = []
    if d.provisional and "likely surge once reporting completes" in d.note:
        parts.append(d.note[d.note.index("likely surge once reporting completes"):])
    elif d.provisional:
        parts.append(f"this week is still filling ({d.complete_share:.0%} of a week's events are in by now): nowcast "
                     f"{fmt_num(d.nowcast)} (90% {fmt_num(d.nowcast_low)} to {fmt_num(d.nowcast_high)})")  # fmt: skip
    return "; ".join(parts)


def _facts(n: Notice, result: RunResult) -> str:
    """One line of numbers for a notice, as in the report: earlier weeks re-judged with fuller data
    first (they may be what the notice is about), then this week's numbers and its nowcast."""
    return "; ".join(part for part in (*(v.text() for v in n.change.revisions), _numbers(n, result), _filling(n)) if part)


def _numbers(n: Notice, result: RunResult) -> str:
    r, d = n.result, n.result.detection
    if n.kind == "resolved":
        st = n.change.before
        if not n.change.after.quiet_weeks and n.change.revisions:  # withdrawn: the surge announced did not hold up
            return (f"the week flagged as a surge fell below its threshold with the data now in (late reports, revisions or "
                    f"deletions); flagged since "
                    f"{st.since_week}, last announced {st.announced_week}")  # fmt: skip
        return (f"quiet for {_weeks(n.change.after.quiet_weeks)} ({observed_text(r, result)} this week, "
                f"{fmt_num(d.expected)} expected); flagged since {st.since_week}, last announced {st.announced_week}")  # fmt: skip
    detector = d.detector + (f", fallback from {d.fallback_from}" if d.fallback_from else "")
    level = _level(n)
    return (
        f"{observed_text(r, result)} this week against {fmt_num(d.expected)} expected (threshold {fmt_num(d.threshold)}); "
        f"{_before(r, result)}; "
        f"{level}, exceedance score {fmt_score(d.score)}, p-value {fmt_p(d.pvalue)}, {detector}; "
        f"in alert for {_weeks(max(r.weeks_in_alert, 1))}; trend {r.trend}"
        + (f"; {d.why}" if d.why else "")
    )


def _groups(notices: Sequence[Notice], group_by: str) -> list[tuple[str, list[Notice]]]:
    out: dict[str, list[Notice]] = {}
    for n in notices:
        out.setdefault(group_label(n.result, group_by), []).append(n)
    return list(out.items())


def _text_body(result: RunResult, digest: Digest, *, report: str, group_by: str) -> str:
    dates = f"{result.week_start:%a %d %b %Y} – {result.week_end:%a %d %b %Y}"
    out = [f"incident-monitor — {result.week} ({dates})"]
    if digest.route.name != "default":
        out.append(f"Route: {digest.route.name} (series: {digest.route.series or 'all'}; {digest.route.min_level} and above)")
    out.append("")
    if result.synthetic:
        out += ["*** SYNTHETIC DEMO DATA: these are generated events, not real ones. ***", ""]
    for kind in (*KINDS, "continuing"):
        chosen = digest.continuing if kind == "continuing" else [n for n in digest.notices if n.kind == kind]
        if not chosen:
            continue
        out.append(f"{TITLES[kind].upper()} ({len(chosen)})")
        for group, notices in _groups(chosen, group_by):
            out.append(f"  {_clean(group)}")
            for n in notices:
                out.append(f"  - {_name(n.result)}")
                if kind != "continuing":
                    out.append(f"    {_clean(_facts(n, result))}")
                elif n.change.after.state == "recovering":
                    out.append(f"    recovering: below its threshold for {_weeks(n.change.after.quiet_weeks)}, not yet resolved")
                for c in n.children:
                    out.append(f"    also ({c.kind}): {_name(c.result)}: {_clean(_facts(c, result))}")
                if kind in ("new", "escalated", "reminder"):
                    out.append(f"    silence: {n.silence_command}")
                    if n.check_command:
                        out.append(f"    check:   {n.check_command}")
        out.append("")
    if digest.emergences:
        out.append(f"NEW ACTORS AND PLACES ({len(digest.emergences)})")
        if digest.emergence_rule:
            out.append(f"  {_clean(digest.emergence_rule)}")
        for kind, notices in _emergence_groups(digest):
            out.append(f"  {EMERGENCE_TITLES[kind]} ({len(notices)})")
            for n in notices:
                out.append(f"  - {_clean(_emergence_text(n))}" + (" [escalated]" if n.kind == "escalated" else ""))
                out.append(f"    silence: {n.silence_command}")
        out.append("")
    out += [
        f"Report: {report}",
        f"Checked {len(result.results)} series; {len(result.flagged)} at the alert level, {len(result.warnings)} at the "
        f"warning level. Data up to {result.latest_event_date or 'unknown'}; {result.records_total:,} records.",
        "An alert means this week's count is above what the series' own history makes normal (see Method in the report).",
    ]
    return "\n".join(out) + "\n"


def _html_body(result: RunResult, digest: Digest, *, report: str, group_by: str, cids: dict[str, str]) -> str:
    e = html.escape
    dates = f"{result.week_start:%a %d %b %Y} – {result.week_end:%a %d %b %Y}"
    cell = 'style="padding:4px 8px;border-bottom:1px solid #ddd;text-align:{}"'
    colours = {"new": "#d62728", "escalated": "#9467bd", "reminder": "#e69f00", "resolved": "#2ca02c", "continuing": "#7f7f7f"}
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>' + e(f"incident-monitor {result.week}") + "</title></head>",
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222">',
        f"<h2>incident-monitor — {e(result.week)}</h2>",
        f"<p>{e(dates)}</p>",
    ]
    if digest.route.name != "default":
        out.append(f"<p>Route: <b>{e(digest.route.name)}</b> (series: {e(digest.route.series or 'all')}; "
                   f"{e(digest.route.min_level)} and above)</p>")
    if result.synthetic:
        out.append('<p style="background:#fff3b0;padding:8px;font-weight:bold">'
                   "SYNTHETIC DEMO DATA: these are generated events, not real ones.</p>")
    headers = ["Status", "Group", "Series", "Observed", "Events (fatalities)", "Last week", "Year ago", "Expected", "Threshold",
               "Level", "Exceedance score", "Weeks in alert"]  # fmt: skip
    aligns = ["left", "left", "left", "right", "right", "right", "right", "right", "right", "left", "right", "left"]
    rows = [(n, False) for n in digest.notices] + [(n, False) for n in digest.continuing]
    if rows:  # a digest of emergences only has no surge table
        out.append('<table style="border-collapse:collapse">')
        out.append("<tr>" + "".join(f"<th {cell.format(a)}>{e(h)}</th>" for h, a in zip(headers, aligns)) + "</tr>")
    for n, _ in rows:
        for item, child in [(n, False)] + [(c, True) for c in n.children]:
            d = item.result.detection
            badge = f'<span style="color:#fff;background:{colours[item.kind]};padding:1px 6px;border-radius:3px">{e(item.kind.upper())}</span>'
            name = ("&#8627; " if child else "") + e(_name(item.result))
            figures = [e(figures_cell(result_figures(item.result, result, weeks_back=back))) for back in (0, 1, YEAR_AGO_WEEKS)]
            values = [badge, e(group_label(item.result, group_by)), name, e(fmt_num(d.observed)), *figures, e(fmt_num(d.expected)),
                      e(fmt_num(d.threshold)), e(_level(item)), e(fmt_score(d.score)), str(max(int(item.result.weeks_in_alert), 0))]  # fmt: skip
            out.append("<tr>" + "".join(f"<td {cell.format(a)}>{v}</td>" for v, a in zip(values, aligns)) + "</tr>")
    if rows:
        out.append("</table>")
        out.append(f'<p style="color:#666">Events (fatalities) of the week, of the week before (Last week) and of the week '
                   f"{YEAR_AGO_WEEKS} weeks earlier (Year ago); no data: before the series' first incident.</p>")
    for n in digest.notices:
        out.append(f"<h3>{e(TITLES[n.kind])}: {e(_name(n.result))}</h3>")
        out.append(f"<p>{e(_clean(_facts(n, result)))}</p>")
        for c in n.children:
            out.append(f"<p>Also ({e(c.kind)}): {e(_name(c.result))}: {e(_clean(_facts(c, result)))}</p>")
        cid = cids.get(n.change.key)
        if cid:
            out.append(f'<p><img src="cid:{e(cid)}" alt="{e("Weekly chart: " + _name(n.result))}" width="900" '
                       'style="max-width:100%;height:auto"></p>')
        if n.silence_command:
            out.append(f"<p>Silence: <code>{e(n.silence_command)}</code></p>")
        if n.check_command:
            out.append(f"<p>Check: <code>{e(n.check_command)}</code></p>")
    if digest.emergences:
        out.append(f"<h3>New actors and places ({len(digest.emergences)})</h3>")
        if digest.emergence_rule:
            out.append(f'<p style="color:#444">{e(_clean(digest.emergence_rule))}</p>')
        for kind, notices in _emergence_groups(digest):
            out.append(f"<p><b>{e(EMERGENCE_TITLES[kind])} ({len(notices)})</b></p>")
            out.append("<ul>")
            for n in notices:
                mark = " <b>(escalated)</b>" if n.kind == "escalated" else ""
                out.append(f"<li>{e(_clean(_emergence_text(n)))}{mark}<br>Silence: <code>{e(n.silence_command)}</code></li>")
            out.append("</ul>")
    if cids.get(MAP_KEY):
        out.append(f'<p><img src="cid:{e(cids[MAP_KEY])}" alt="Map: events of the last four weeks and each admin1 area level" '
                   'width="700" style="max-width:100%;height:auto"></p>')
    if urlsplit(report).scheme in ("http", "https"):  # report.base_url: where the team opens the page
        out.append(f'<p>Report: <a href="{e(report)}">{e(report)}</a> (the Markdown version is attached).</p>')
    else:
        out.append(f"<p>Report: <code>{e(report)}</code> (the Markdown version is attached).</p>")
    out.append("<p style=\"color:#666\">An alert means this week's count is above what the series' own history makes "
               "normal; see Method in the report.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_digest(
    result: RunResult, files: ReportFiles, *, settings: Any, digest: Digest, report: str | None = None
) -> EmailMessage:
    """One route's digest: plain text and HTML (charts inline by Content-ID), the report attached; its
    emergence alerts (new actors, new places, more actors) in a section of their own, under their rule.

    report: how the message names the report (default: the report's path). Headers are
    deterministic for a given run and digest (Date from result.generated_at, Message-ID
    from the week, route, generated_at and the series), and so are the MIME boundaries.
    settings: alert settings; reads `sender`, `subject_prefix`, `group_by`.
    """
    group_by = getattr(settings, "group_by", "admin1")
    report = report or str(files.markdown)
    domain = _domain(settings.sender)
    keys = "\n".join(sorted([f"{n.kind}:{n.change.key}" for n in digest.notices] + [f"{n.kind}:{n.key}" for n in digest.emergences]))
    seed = f"{result.week}\n{digest.route.name}\n{result.generated_at.isoformat()}\n{keys}"
    token = hashlib.sha256(seed.encode("utf-8")).hexdigest()
    generated = result.generated_at if result.generated_at.tzinfo else result.generated_at.replace(tzinfo=timezone.utc)

    message = EmailMessage()
    message["Subject"] = _subject(settings.subject_prefix, result.week, digest, group_by)
    message["From"] = settings.sender
    message["To"] = ", ".join(digest.route.recipients) if digest.route.recipients else "undisclosed-recipients:;"
    message["Date"] = format_datetime(generated)
    message["Message-ID"] = f"<{result.week}.{digest.route.name}.{token[:20]}@{domain}>"
    message[WEEK_HEADER] = result.week
    message[ROUTE_HEADER] = digest.route.name
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this

    shown = [n for n in digest.notices if n.kind != "resolved"]
    charts = {n.change.key: Path(files.charts[n.change.key]) for n in shown if n.change.key in files.charts}
    charts = {k: p for k, p in charts.items() if p.is_file()}
    cids = {k: f"chart-{_cid_token(k)}.{result.week}@{domain}" for k in charts}
    if files.map is not None and Path(files.map).is_file():  # the week's map, above the report line ("" is no series key)
        charts[MAP_KEY], cids[MAP_KEY] = Path(files.map), f"map.{result.week}@{domain}"

    message.set_content(_text_body(result, digest, report=report, group_by=group_by))
    message.add_alternative(_html_body(result, digest, report=report, group_by=group_by, cids=cids), subtype="html")
    html_part = message.get_payload()[1]
    for key, path in charts.items():
        html_part.add_related(
            path.read_bytes(), maintype="image", subtype="png", cid=f"<{cids[key]}>", filename=path.name, disposition="inline"
        )
    if files.markdown and Path(files.markdown).is_file():
        message.add_attachment(
            Path(files.markdown).read_text(encoding="utf-8"), subtype="markdown", filename=f"report-{result.week}.md"
        )
    _fix_boundaries(message, seed=token)
    return message


def _fix_boundaries(message: EmailMessage, *, seed: str) -> None:
    """Give every multipart a boundary made from `seed` instead of a random one (the email package's
    default), so the same digest is the same bytes: a run killed before its messages were queued
    queues, when run again, exactly what it would have queued."""
    parts = [p for p in message.walk() if p.is_multipart()]
    for n, part in reversed(list(enumerate(parts))):  # innermost first: each is checked against its final content
        content = b"".join(sub.as_bytes() for sub in part.iter_parts())
        boundary, extra = f"=_{seed[:24]}.{n}", 0
        while re.search(b"^--" + re.escape(boundary.encode("ascii")) + b"(--)?$", content, re.MULTILINE):
            boundary, extra = f"=_{seed[:24]}.{n}.{extra}", extra + 1  # as the email package does on a clash
        part.set_boundary(boundary)


# delivering


class _Deadline(TimeoutError):
    """The conversation's overall deadline (alerts.smtp.deadline) passed."""


class _Bounded:
    """smtplib client whose every read and write waits at most `timeout` seconds and ends by `deadline`.

    smtplib's own timeout bounds each socket read, so a server sending a continuation line every
    few seconds kept a run (and the run lock) forever (issue 12, item 2). Reply lines of any
    length are read; only their first MAX_REPLY_KEPT bytes are kept.
    """

    deadline: float = float("inf")  # time.monotonic() value
    read_timeout: float | None = None  # per read; None: self.timeout

    def _budget(self, timeout: float | None) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Deadline("deadline")
        return min(timeout, left) if timeout is not None else left

    def _get_socket(self, host, port, timeout):  # smtplib's hook: the connection waits no longer than the deadline
        return super()._get_socket(host, port, self._budget(timeout))

    def send(self, s):
        if self.sock:
            self.sock.settimeout(self._budget(self.timeout))
        return super().send(s)

    def _line(self) -> bytes:
        kept = b""
        while True:
            if self.sock:
                self.sock.settimeout(self._budget(self.read_timeout or self.timeout))
            chunk = self.file.readline(8192)
            if not chunk:
                return kept
            if len(kept) < MAX_REPLY_KEPT:
                kept += chunk[: MAX_REPLY_KEPT - len(kept)]
            if chunk.endswith(b"\n"):
                return kept if kept.endswith(b"\n") else kept + b"\r\n"

    def getreply(self):  # smtplib's, reading lines of any length within the deadline
        resp = []
        if self.file is None:
            self.file = self.sock.makefile("rb")
        while True:
            try:
                line = self._line()
            except _Deadline:
                self.close()
                raise
            except OSError as exc:
                self.close()
                if isinstance(exc, TimeoutError) and self.deadline - time.monotonic() <= 0.01:
                    raise _Deadline("deadline") from None  # the read was cut short by the deadline, not its own timeout
                raise smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from None
            if not line:
                self.close()
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            resp.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
                break
            if line[3:4] != b"-":
                break
        return code, b"\n".join(resp)


class _Client(_Bounded, smtplib.SMTP):
    pass


class _SSLClient(_Bounded, smtplib.SMTP_SSL):
    pass


class _Answer(Exception):
    """The server answered a step of the transaction with something other than success."""

    def __init__(self, text: str, *, code: int) -> None:
        super().__init__(text)
        self.code = code


class _Unknown(Exception):
    """The end of DATA was sent and no final answer came: the server may have the message."""


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _flatten(message: EmailMessage, *, international: bool) -> bytes:
    """The message as smtplib's send_message sends it (Bcc removed, CRLF line ends)."""
    copied = copy.copy(message)
    del copied["Bcc"]
    del copied["Resent-Bcc"]
    with io.BytesIO() as out:
        policy = message.policy.clone(utf8=True) if international else None
        (BytesGenerator(out, policy=policy) if policy else BytesGenerator(out)).flatten(copied, linesep="\r\n")
        return out.getvalue()


def _transaction(client: _Bounded, message: EmailMessage, *, sender: str, recipients: Sequence[str], data_timeout: float) -> None:
    """MAIL, RCPT, DATA; raises _Answer for a refusal (its code says temporary or permanent), _Unknown once the
    end of DATA was sent without a final answer.

    A recipient refused with a 4xx (greylisting) makes the whole message wait for a later
    attempt: it is not sent to the others now, so the next attempt reaches everyone exactly
    once. Recipients refused with a 5xx only are dropped, and the message goes to the rest.
    """
    international = any(not a.isascii() for a in (sender, *recipients))
    if international and not client.has_extn("smtputf8"):  # as smtplib's send_message refuses it
        raise smtplib.SMTPNotSupportedError("a non-ASCII address needs SMTPUTF8, which the server does not offer")
    options = ["SMTPUTF8", "BODY=8BITMIME"] if international else []
    code, reply = client.mail(sender, options)
    if code != 250:
        raise _Answer(f"sender {sender} refused ({code} {_text(reply)})", code=code)
    refused: dict[str, tuple[int, bytes]] = {}
    for rcpt in recipients:
        code, reply = client.rcpt(rcpt)
        if code not in (250, 251):
            refused[rcpt] = (code, reply)
            if code == 421:  # the server is closing the connection: ask no more
                break
    if refused:
        listed = "; ".join(f"{r} ({c} {_text(m)})" for r, (c, m) in refused.items())
        temporary = [c for c, _ in refused.values() if not 500 <= c < 600]
        if temporary:
            raise _Answer(f"recipients refused for now: {listed}; the message waits for the next attempt", code=temporary[0])
        if len(refused) == len(recipients):
            raise _Answer(f"all recipients refused: {listed}", code=next(iter(refused.values()))[0])
    code, reply = client.docmd("data")
    if code != 354:
        raise _Answer(f"DATA: the server answered {code} {_text(reply)}", code=code)
    body = smtplib._quote_periods(_flatten(message, international=international))  # smtplib's own dot-stuffing
    if body[-2:] != b"\r\n":
        body += b"\r\n"
    client.send(body + b".\r\n")
    # RFC 5321 4.5.3.2.6: wait up to 10 minutes for the answer to the end of DATA; the server may
    # be storing the message, and giving up early makes the next attempt a duplicate
    client.read_timeout = data_timeout
    try:
        code, reply = client.getreply()
    except _Deadline:
        raise _Unknown("no final answer before the conversation's deadline (alerts.smtp.deadline)") from None
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        timed_out = "timed out" in str(exc) or isinstance(exc, TimeoutError)
        raise _Unknown(f"no final answer within {data_timeout:g} s" if timed_out else "the server closed the connection") from None
    finally:
        client.read_timeout = None
    if 200 <= code < 300:
        return
    if not 400 <= code < 600:  # an answer that is no answer: the message may have been stored all the same
        raise _Unknown(f"an unreadable final answer ({_clean(_text(reply))[:80] or 'empty'})")
    raise _Answer(f"the server answered {code} {_text(reply)} to the message", code=code)


def _write_eml(message: EmailMessage, eml_dir: Path) -> Path:
    week = re.sub(r"[^A-Za-z0-9_-]+", "-", str(message.get(WEEK_HEADER) or "")).strip("-") or "digest"
    eml_dir = Path(eml_dir)
    eml_dir.mkdir(parents=True, exist_ok=True)
    route = re.sub(r"[^A-Za-z0-9_-]+", "-", str(message.get(ROUTE_HEADER) or "default")).strip("-")
    path = eml_dir / (f"digest-{week}.eml" if route in ("", "default") else f"digest-{week}-{route}.eml")
    remove_stale_temps(eml_dir)
    return atomic_write(path, message.as_bytes())


def _smtp_reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {text}".strip()


def _describe(exc: BaseException, *, stage: str, smtp: Any, sender: str) -> str:
    """The problem in a few words, with what to check."""
    if isinstance(exc, _Deadline):
        return f"{stage}: the conversation took longer than alerts.smtp.deadline ({smtp.deadline:g} s)"
    if isinstance(exc, _Answer):
        return f"{stage}: {exc}"
    if isinstance(exc, binascii.Error):  # smtplib decodes the AUTH challenge (CRAM-MD5) with no check of its own
        return f"login: the server's authentication challenge is not valid base64 ({exc}); the server is misbehaving"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"login refused for user '{smtp.username}' ({_smtp_reply(exc)}); check the username and password"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        if stage == "starttls":
            return "the server does not offer STARTTLS; set alerts.smtp.security to \"ssl\" (port 465) or \"none\""
        if stage == "login":
            return "the server does not offer AUTH (login); clear alerts.smtp.username or enable TLS"
        return f"{stage}: not supported by the server ({exc})"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{rcpt} ({code} {msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg})"
                            for rcpt, (code, msg) in exc.recipients.items())
        return f"all recipients refused: {refused}"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"sender {sender} refused ({_smtp_reply(exc)})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{stage}: the server answered {_smtp_reply(exc)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if "timed out" in str(exc):  # smtplib's words when the greeting or a reply never came
            return f"{stage}: no answer within {smtp.timeout:g} s"
        return f"{stage}: the server closed the connection ({exc or 'no reason given'})"
    if isinstance(exc, smtplib.SMTPException):
        return f"{stage}: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, and are alerts.smtp.host and port right?)"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"{stage}: no answer within {smtp.timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{stage}: TLS certificate not trusted ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        hint = "; is alerts.smtp.security right for this port?" if stage == "connect" else ""
        return f"{stage}: TLS failed ({exc.reason or exc}){hint}"
    if isinstance(exc, OSError):
        return f"{stage}: {exc.strerror or exc}"
    return f"{stage}: {exc}"


def _permanent(exc: BaseException, stage: str) -> bool:
    """A refusal of this message itself (a 5xx to its sender, recipients or data), not of the connection or login.

    A 4xx at any step (451 greylisting, 421 closing down) is temporary: the message waits (issue 12, item 1).
    """
    return stage == "send" and isinstance(exc, _Answer) and 500 <= exc.code < 600


def _secret(password: Any) -> SecretStr:
    """A password given as text, a SecretStr, or a function returning either (called now), as a SecretStr.

    Kept wrapped until the login itself, so no frame of `deliver` holds it in the clear (tracebacks
    that show local variables, as some error reporters and pytest --showlocals print them).
    """
    if callable(password):
        password = password()
    return password if isinstance(password, SecretStr) else SecretStr(password or "")


def _mask(text: str, *, username: str, secret: SecretStr) -> str:
    """`text` without the password, plain or as AUTH LOGIN / AUTH PLAIN carry it (base64), should a server echo it."""
    password = secret.get_secret_value()
    if not password:
        return text
    forms = {password, base64.b64encode(password.encode("utf-8")).decode("ascii"),
             base64.b64encode(f"\0{username}\0{password}".encode("utf-8")).decode("ascii")}  # fmt: skip
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _usable(secret: SecretStr, *, username: str, env: str, where: str) -> None:
    """Refuse, before connecting, a login that cannot work: no password, or characters smtplib cannot send."""
    password = secret.get_secret_value()
    if not password:
        raise DeliveryError(
            f"{where}: alerts.smtp.username is set but no password was given; set ${env} (or alerts.smtp.password_file)"
        )
    if not password.isascii() or not username.isascii():
        # smtplib logs in with ASCII only; its UnicodeEncodeError would quote a character of the password
        raise DeliveryError(f"{where}: the SMTP username or password has non-ASCII characters, which smtplib cannot send; "
                            "use an ASCII password")  # fmt: skip


def deliver(
    message: EmailMessage, *, settings: Any, password: Any, eml_dir: Path, recipients: Sequence[str] | None = None
) -> Delivery:
    """Send the digest by SMTP, or write `<eml_dir>/digest-<week>.eml` when no server is configured.

    settings: alert settings; reads `recipients`, `sender` and `smtp` (host, port,
        security "starttls" | "ssl" | "none", username, timeout, data_timeout, deadline).
    password: the SMTP password, used only when smtp.username is set: its text, a SecretStr,
        or a function returning either (e.g. `Config.smtp_password`, called only then; a
        MonitorError it raises, such as a password file others can read, becomes a DeliveryError).
    Raises DeliveryError with one line naming host:port and the problem (never the password):
    `permanent` for a 5xx refusal of the message, `unknown` when the end of DATA was sent and
    no final answer came (timeout, deadline or disconnect: the server may have the message).
    A message accepted for some recipients but refused for good (5xx) for others counts as
    delivered; a 4xx to any recipient makes the whole message wait for the next attempt.
    """
    message_id = str(message.get("Message-ID") or "")
    smtp = settings.smtp
    if not smtp.host:
        try:
            return Delivery("file", message_id, _write_eml(message, eml_dir))
        except OSError as exc:
            raise DeliveryError(f"cannot write the digest to {eml_dir}: {exc.strerror or exc}") from exc
    where = f"{smtp.host}:{smtp.port}"
    recipients = list(settings.recipients if recipients is None else recipients)
    if not recipients:
        raise DeliveryError(f"{where}: no recipients; list at least one address in alerts.recipients or a route")
    secret = SecretStr("")
    if smtp.username:
        try:
            secret = _secret(password)
        except MonitorError as exc:  # e.g. a password file group or others can read: named, with the fix
            raise DeliveryError(f"{where}: {exc}") from None
        _usable(secret, username=smtp.username, env=getattr(smtp, "password_env", "MONITOR_SMTP_PASSWORD"), where=where)
    context = ssl.create_default_context()
    client: _Bounded | None = None
    stage = "connect"
    try:
        client = _SSLClient(timeout=smtp.timeout, context=context) if smtp.security == "ssl" else _Client(timeout=smtp.timeout)
        client.deadline = time.monotonic() + smtp.deadline
        client._host = smtp.host  # as smtplib's constructor sets it: STARTTLS and SSL check the certificate against it
        code, reply = client.connect(smtp.host, smtp.port)
        if code != 220:  # what smtplib's constructor checks (e.g. 421 busy, 554 no service here)
            raise smtplib.SMTPConnectError(code, reply)
        stage = "ehlo"
        client.ehlo()
        if smtp.security == "starttls":
            stage = "starttls"
            client.starttls(context=context)
            client.ehlo()
        if smtp.username:
            stage = "login"
            client.login(smtp.username, secret.get_secret_value())
        stage = "send"
        _transaction(client, message, sender=settings.sender, recipients=recipients, data_timeout=smtp.data_timeout)
    except _Unknown as exc:
        raise DeliveryError(f"{where}: outcome unknown: the whole message was sent, then {exc}; the server may have "
                            "accepted it", unknown=True) from None  # fmt: skip
    except (smtplib.SMTPException, OSError, _Answer, binascii.Error) as exc:
        problem = _mask(_describe(exc, stage=stage, smtp=smtp, sender=settings.sender), username=smtp.username, secret=secret)
        raise DeliveryError(f"{where}: {_clean(problem)}", permanent=_permanent(exc, stage)) from None
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):  # the message is already accepted (or the error reported)
                client.close()
    return Delivery("smtp", message_id, None)


__all__ = ["Delivery", "build_digest", "deliver"]
