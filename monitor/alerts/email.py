"""The email digest: build one message per run for the surges to announce, and deliver it.

The only module that uses smtplib and the email package. `deliver` either hands the
message to an SMTP server or, with no server configured, writes it as an .eml file; the
caller records the announcements only after `deliver` returned (Alertmanager's
silence → dedup → send → record order), so a failed send is retried by the next run.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import smtplib
import socket
import ssl
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from monitor.errors import DeliveryError
from monitor.report.markdown import fmt_num, fmt_p, fmt_score
from monitor.types import ReportFiles, RunResult, SeriesResult

WEEK_HEADER = "X-Incident-Monitor-Week"
MAX_SUBJECT_NAMES = 4


@dataclass(frozen=True)
class Delivery:
    """Where a digest went: channel "smtp" or "file", its Message-ID, and the .eml path for "file"."""

    channel: str
    message_id: str
    path: Path | None = None


# ---------------------------------------------------------------------------- building


def _clean(text: Any) -> str:
    """One line of plain text (no CR/LF/control characters) for headers and the text part."""
    return re.sub(r"\s+", " ", "".join(c if c.isprintable() or c.isspace() else " " for c in str(text))).strip()


def _name(r: SeriesResult) -> str:
    return _clean(f"{r.series.title or r.series.definition} — {r.series.label}")


def _status(r: SeriesResult) -> str:
    return (r.status or ("new" if r.detection.alarm else "")).lower() or "quiet"


def _unit(r: SeriesResult) -> str:
    return "fatalities" if r.series.metric == "fatalities" else "events"


def _weeks(n: int) -> str:
    return f"{n} week" + ("" if n == 1 else "s")


def _domain(sender: str) -> str:
    domain = sender.rpartition("@")[2].strip(" >")
    return domain if re.fullmatch(r"[A-Za-z0-9.-]+", domain or "") else "incident-monitor.local"


def _cid_token(key: str) -> str:
    # short on purpose: a Content-ID longer than a header line gets folded, and some clients then miss it
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def _subject(prefix: str, week: str, chosen: Sequence[SeriesResult]) -> str:
    labels: list[str] = []
    for r in chosen:
        label = _clean(r.series.label)
        if label not in labels:
            labels.append(label)
    shown = ", ".join(labels[:MAX_SUBJECT_NAMES]) + (f" +{len(labels) - MAX_SUBJECT_NAMES} more" if len(labels) > MAX_SUBJECT_NAMES else "")
    n = len(chosen)
    new = sum(1 for r in chosen if _status(r) == "new")
    count = f"{n} surge{'s' if n != 1 else ''}" + (f", {new} new" if 0 < new < n else "")
    return _clean(f"{prefix} {week}: {count} ({shown})")


def _line(r: SeriesResult) -> str:
    d = r.detection
    detector = d.detector + (f", fallback from {d.fallback_from}" if d.fallback_from else "")
    return (
        f"{fmt_num(d.observed)} {_unit(r)} this week against {fmt_num(d.expected)} expected (threshold {fmt_num(d.threshold)}); "
        f"exceedance score {fmt_score(d.score)}, p-value {fmt_p(d.pvalue)}, {detector}; in alert for {_weeks(r.weeks_in_alert)}; "
        f"trend {r.trend}"
    )


def _text_body(result: RunResult, files: ReportFiles, chosen: Sequence[SeriesResult], others: Sequence[SeriesResult]) -> str:
    dates = f"{result.week_start:%a %d %b %Y} – {result.week_end:%a %d %b %Y}"
    out = [f"incident-monitor — weekly digest {result.week} ({dates})", ""]
    if result.synthetic:
        out += ["*** SYNTHETIC DEMO DATA: these are generated events, not real ones. ***", ""]
    out += [f"{len(chosen)} surge{'s' if len(chosen) != 1 else ''} to announce:", ""]
    for i, r in enumerate(chosen, 1):
        out.append(f"{i:>2}. [{_status(r).upper()}] {_name(r)}")
        out.append(f"    {_clean(_line(r))}")
        incidents = r.incidents
        if incidents is not None and len(incidents):
            top = incidents.iloc[0]
            place = _clean(" / ".join(dict.fromkeys(str(top.get(c) or "") for c in ("admin1", "admin2", "location") if top.get(c))))
            out.append(f"    deadliest: {_clean(str(top.get('event_date'))[:10])}, {place}, {_clean(top.get('fatalities'))} killed")
    out.append("")
    if others:
        out += ["Still in alert (announced before): " + ", ".join(_name(r) for r in others) + ".", ""]
    out += [
        f"Full report: {files.markdown} (attached as report-{result.week}.md; charts in {files.folder / 'charts'})",
        f"Checked {len(result.results)} series; {len(result.flagged)} flagged in total"
        + (f", {len(result.warnings)} more at the warning level (in the report, not announced). " if result.warnings else ". ")
        + f"Data up to {result.latest_event_date or 'unknown'}; {result.records_total:,} records in the database.",
        "",
        "An alarm means this week's count is above what the series' own history makes normal (see Method in the report).",
    ]
    return "\n".join(out) + "\n"


def _html_body(
    result: RunResult, files: ReportFiles, chosen: Sequence[SeriesResult], others: Sequence[SeriesResult], cids: dict[str, str]
) -> str:
    e = html.escape
    dates = f"{result.week_start:%a %d %b %Y} – {result.week_end:%a %d %b %Y}"
    cell = 'style="padding:4px 8px;border-bottom:1px solid #ddd;text-align:{}"'
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>' + e(f"incident-monitor {result.week}") + "</title></head>",
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222">',
        f"<h2>incident-monitor — weekly digest {e(result.week)}</h2>",
        f"<p>{e(dates)}</p>",
    ]
    if result.synthetic:
        out.append('<p style="background:#fff3b0;padding:8px;font-weight:bold">'
                   "SYNTHETIC DEMO DATA: these are generated events, not real ones.</p>")
    out.append(f"<p><b>{len(chosen)} surge{'s' if len(chosen) != 1 else ''}</b> to announce:</p>")
    headers = ["#", "Series", "Status", "Observed", "Expected", "Threshold", "Exceedance score", "p-value", "Weeks in alert", "Trend"]
    aligns = ["right", "left", "left", "right", "right", "right", "right", "right", "right", "center"]
    out.append('<table style="border-collapse:collapse">')
    out.append("<tr>" + "".join(f"<th {cell.format(a)}>{e(h)}</th>" for h, a in zip(headers, aligns)) + "</tr>")
    for i, r in enumerate(chosen, 1):
        d = r.detection
        status = _status(r)
        badge = "#d62728" if status == "new" else "#e69f00"
        values = [
            str(i),
            e(_name(r)),
            f'<span style="color:#fff;background:{badge};padding:1px 6px;border-radius:3px">{e(status.upper())}</span>',
            e(fmt_num(d.observed)), e(fmt_num(d.expected)), e(fmt_num(d.threshold)), e(fmt_score(d.score)), e(fmt_p(d.pvalue)),
            str(int(r.weeks_in_alert)), e(r.trend),
        ]
        out.append("<tr>" + "".join(f"<td {cell.format(a)}>{v}</td>" for v, a in zip(values, aligns)) + "</tr>")
    out.append("</table>")
    if others:
        out.append("<p>Still in alert (announced before): " + e(", ".join(_name(r) for r in others)) + ".</p>")
    for r in chosen:
        cid = cids.get(r.series.key)
        out.append(f"<h3>{e(_name(r))}</h3>")
        out.append(f"<p>{e(_clean(_line(r)))}</p>")
        if cid:
            out.append(f'<p><img src="cid:{e(cid)}" alt="{e("Weekly chart: " + _name(r))}" width="900" '
                       'style="max-width:100%;height:auto"></p>')
    out.append(f"<p>Full report: <code>{e(str(files.markdown))}</code> (attached).</p>")
    out.append("<p style=\"color:#666\">An alarm means this week's count is above what the series' own history makes "
               "normal; see Method in the report.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_digest(result: RunResult, files: ReportFiles, *, settings: Any, announce: Collection[str]) -> EmailMessage | None:
    """One digest for the flagged series whose keys are in `announce`; None when there is nothing to announce.

    The message is multipart: plain text and HTML alternatives (the HTML with the charts
    inline by Content-ID) and the report Markdown attached. Headers are deterministic for
    a given run (Date from result.generated_at, Message-ID from the week, generated_at and the keys).
    Numbers are formatted as in the report (monitor.report.markdown.fmt_num, fmt_p, fmt_score).
    settings: alert settings; reads `sender`, `recipients`, `subject_prefix`.
    """
    wanted = set(announce)
    chosen = [r for r in result.flagged if r.series.key in wanted]  # keys of series not flagged are ignored
    if not chosen:
        return None
    others = [r for r in result.flagged if r.series.key not in wanted]

    domain = _domain(settings.sender)
    keys = "\n".join(sorted(r.series.key for r in chosen))
    digest = hashlib.sha256(f"{result.week}\n{result.generated_at.isoformat()}\n{keys}".encode("utf-8")).hexdigest()
    generated = result.generated_at if result.generated_at.tzinfo else result.generated_at.replace(tzinfo=timezone.utc)

    message = EmailMessage()
    message["Subject"] = _subject(getattr(settings, "subject_prefix", "[incident-monitor]"), result.week, chosen)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients) if settings.recipients else "undisclosed-recipients:;"
    message["Date"] = format_datetime(generated)
    message["Message-ID"] = f"<{result.week}.{digest[:20]}@{domain}>"
    message[WEEK_HEADER] = result.week
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this

    charts = {r.series.key: files.charts[r.series.key] for r in chosen if r.series.key in files.charts}
    charts = {k: Path(p) for k, p in charts.items() if Path(p).is_file()}
    cids = {k: f"chart-{_cid_token(k)}.{result.week}@{domain}" for k in charts}

    message.set_content(_text_body(result, files, chosen, others))
    message.add_alternative(_html_body(result, files, chosen, others, cids), subtype="html")
    html_part = message.get_payload()[1]
    for key, path in charts.items():
        html_part.add_related(
            path.read_bytes(), maintype="image", subtype="png", cid=f"<{cids[key]}>", filename=path.name, disposition="inline"
        )
    if files.markdown and Path(files.markdown).is_file():
        message.add_attachment(
            Path(files.markdown).read_text(encoding="utf-8"), subtype="markdown", filename=f"report-{result.week}.md"
        )
    return message


# ---------------------------------------------------------------------------- delivering


def _write_eml(message: EmailMessage, eml_dir: Path) -> Path:
    week = re.sub(r"[^A-Za-z0-9_-]+", "-", str(message.get(WEEK_HEADER) or "")).strip("-") or "digest"
    eml_dir = Path(eml_dir)
    eml_dir.mkdir(parents=True, exist_ok=True)
    path = eml_dir / f"digest-{week}.eml"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=eml_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(message.as_bytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _smtp_reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {text}".strip()


def _describe(exc: BaseException, *, stage: str, smtp: Any, sender: str) -> str:
    """The problem in a few words, with what to check."""
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


def deliver(message: EmailMessage, *, settings: Any, password: str | None, eml_dir: Path) -> Delivery:
    """Send the digest by SMTP, or write `<eml_dir>/digest-<week>.eml` when no server is configured.

    settings: alert settings; reads `recipients`, `sender` and `smtp` (host, port,
        security "starttls" | "ssl" | "none", username, timeout).
    password: the SMTP password (from the environment), used only when smtp.username is set.
    Raises DeliveryError with one line naming host:port and the problem (never the password).
    A message accepted for some recipients but refused for others counts as delivered.
    """
    message_id = str(message.get("Message-ID") or "")
    smtp = settings.smtp
    if not smtp.host:
        try:
            return Delivery("file", message_id, _write_eml(message, eml_dir))
        except OSError as exc:
            raise DeliveryError(f"cannot write the digest to {eml_dir}: {exc.strerror or exc}") from exc
    where = f"{smtp.host}:{smtp.port}"
    recipients = list(settings.recipients)
    if not recipients:
        raise DeliveryError(f"{where}: no recipients; list at least one address in alerts.recipients")
    if smtp.username and not password:
        env = getattr(smtp, "password_env", "MONITOR_SMTP_PASSWORD")
        raise DeliveryError(f"{where}: alerts.smtp.username is set but no password was given; set ${env}")
    context = ssl.create_default_context()
    client: smtplib.SMTP | None = None
    stage = "connect"
    try:
        if smtp.security == "ssl":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        stage = "ehlo"
        client.ehlo()
        if smtp.security == "starttls":
            stage = "starttls"
            client.starttls(context=context)
            client.ehlo()
        if smtp.username:
            stage = "login"
            client.login(smtp.username, password or "")
        stage = "send"
        client.send_message(message, from_addr=settings.sender, to_addrs=recipients)
    except (smtplib.SMTPException, OSError) as exc:
        problem = _describe(exc, stage=stage, smtp=smtp, sender=settings.sender)
        if password:
            problem = problem.replace(password, "***")
        raise DeliveryError(f"{where}: {_clean(problem)}") from None
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):  # the message is already accepted (or the error reported)
                client.close()
    return Delivery("smtp", message_id, None)


__all__ = ["Delivery", "build_digest", "deliver"]
