"""The email digest: its content, and delivery through a real SMTP server (aiosmtpd) or to an .eml file."""

from __future__ import annotations

import email
import re
import shutil
import ssl
import subprocess
from dataclasses import replace
from email.policy import default
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.alerts.email import Delivery, build_digest, deliver
from monitor.alerts.lifecycle import AlertState
from monitor.alerts.notify import advance, plan
from monitor.errors import DeliveryError
from monitor.numbers import fmt_num, fmt_p, fmt_score
from monitor.report import write_report
from monitor.weeks import week_number as week_index
from tests.helpers_result import (
    INJECTION_LABEL,
    alert_settings,
    make_result,
    report_settings,
)
from tests.smtp_server import Inbox, SmtpServer, free_port

CENTRAL = ["is_attacks/admin1=Homs", "is_attacks/admin1=Hama", "is_attacks/admin1=Deir ez Zor"]
PASSWORD = "s3cret-Pa55"
TO = ["a@example.org", "b@example.org"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result = make_result(synthetic=True)
    files = write_report(result, settings=report_settings(tmp_path_factory.mktemp("reports")))
    return result, files


REPORT = "reports/2023-W09/report.md"
GOLDEN = Path(__file__).parent / "golden"


def _plan(result, *, settings=None, states=None, silences=()):
    settings = settings or alert_settings(recipients=TO)
    return plan(result, advance(result, states or {}, settings), settings, silences)


def _announced_before(result, keys):
    """States of series that fired and were announced last week (so this week they continue)."""
    index = week_index(result.week_start) - 1
    return {k: AlertState(series=k, state="firing", severity="alert", band=10, since_week="2023-W08", flagged_weeks=1,
                          announced_week="2023-W08", announced_index=index, announced_severity="alert", announced_band=10,
                          last_week="2023-W08", last_index=index) for k in keys}  # fmt: skip


@pytest.fixture(scope="module")
def digest(written):
    result, _ = written
    before = _announced_before(result, [CENTRAL[0], "is_attacks/total"])
    (only,) = _plan(result, states=before).digests
    return only


@pytest.fixture(scope="module")
def message(written, digest):
    result, files = written
    return build_digest(result, files, settings=alert_settings(recipients=TO), digest=digest, report=REPORT)


def _html(message) -> str:
    return next(p for p in message.walk() if p.get_content_type() == "text/html").get_content()


def _text(message) -> str:
    return next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()


def test_nothing_to_announce_gives_no_digest(written):
    result, _ = written
    every = [r.series.key for r in result.flagged]
    assert _plan(result, states=_announced_before(result, every)).digests == []


def test_headers(message, written, digest):
    result, files = written
    assert message["Subject"] == "[incident-monitor] 2023-W09: 2 new surges (Deir ez Zor, Hama)"
    assert message["From"] == "incident-monitor@example.org"
    assert message["To"] == "a@example.org, b@example.org"
    assert message["Date"] == "Mon, 06 Mar 2023 06:00:00 +0000"  # result.generated_at, not the clock
    assert re.fullmatch(r"<2023-W09\.default\.[0-9a-f]{20}@example\.org>", message["Message-ID"])
    assert message["X-Incident-Monitor-Route"] == "default"
    again = build_digest(result, files, settings=alert_settings(recipients=TO), digest=digest, report=REPORT)
    assert again["Message-ID"] == message["Message-ID"]


def test_the_same_digest_is_the_same_bytes(message, written, digest):
    """MIME boundaries come from the message, not from `random`: a run killed before its messages were queued
    queues, when run again at the same time, exactly the bytes it would have queued (tests/test_crash.py)."""
    result, files = written
    again = build_digest(result, files, settings=alert_settings(recipients=TO), digest=digest, report=REPORT)
    assert again.as_bytes() == message.as_bytes()
    boundaries = [p.get_boundary() for p in message.walk() if p.is_multipart()]
    assert len(boundaries) == 3 and len(set(boundaries)) == 3
    parsed = email.message_from_bytes(message.as_bytes(), policy=default)  # and it still parses into the same parts
    assert [p.get_content_type() for p in parsed.walk()] == [p.get_content_type() for p in message.walk()]
    other = replace(result, generated_at=result.generated_at.replace(hour=7))  # another run: other boundaries
    later = build_digest(other, files, settings=alert_settings(recipients=TO), digest=digest, report=REPORT)
    assert set(boundaries).isdisjoint(p.get_boundary() for p in later.walk() if p.is_multipart())


def test_structure_text_html_inline_charts_and_attachment(message, written):
    _, files = written
    assert message.get_content_type() == "multipart/mixed"
    types = [p.get_content_type() for p in message.walk()]
    assert types[:5] == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html"]
    images = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 2 and all(p.get_content()[:8] == b"\x89PNG\r\n\x1a\n" for p in images)  # the two new ones
    cids = re.findall(r'src="cid:([^"]+)"', _html(message))
    assert sorted(f"<{c}>" for c in cids) == sorted(p["Content-ID"] for p in images)
    attachment = next(p for p in message.iter_attachments() if p.get_filename() == "report-2023-W09.md")
    assert attachment.get_content() == files.markdown.read_text(encoding="utf-8")


@pytest.mark.parametrize("part", ["text", "html"])
def test_bodies_match_the_golden_files(message, part):
    """The rendered bodies, byte for byte (regenerate with UPDATE_GOLDEN=1 after an intended change, and read the diff)."""
    import os

    body = _text(message) if part == "text" else _html(message)
    path = GOLDEN / f"digest-2023-W09.{'txt' if part == 'text' else 'html'}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(body, encoding="utf-8")
    assert body == path.read_text(encoding="utf-8")


def test_text_part_says_what_is_new_and_continuing_and_how_to_silence(message):
    text = _text(message)
    new = text.split("NEW (2)")[1].split("CONTINUING")[0]
    assert "Islamic State events — Hama" in new and "Islamic State events — Deir ez Zor" in new
    assert "Homs" not in new
    continuing = text.split("CONTINUING (ANNOUNCED BEFORE) (2)")[1]
    assert "Islamic State events — Homs" in continuing and "Islamic State events — All (total)" in continuing
    assert "monitor silence add --series 'key:is_attacks/admin1=Hama' --until 2023-04-02 --comment 'reason'" in text
    assert f"Report: {REPORT}" in text and "SYNTHETIC DEMO DATA" in text


def test_numbers_read_as_in_the_report(written):
    """The digest formats numbers with the report's formatters: same strings, and None/NaN read NA."""
    result, files = written
    hama = next(r for r in result.flagged if r.series.key == CENTRAL[1])
    odd = replace(hama, detection=replace(hama.detection, observed=1234.0, expected=2.25, threshold=float("nan"),
                                          score=float("nan"), pvalue=None))  # fmt: skip
    changed = replace(result, results=tuple(odd if r is hama else r for r in result.results))
    before = _announced_before(changed, [k for k in [r.series.key for r in result.flagged] if k != CENTRAL[1]])
    (digest,) = _plan(changed, states=before).digests
    message = build_digest(changed, files, settings=alert_settings(), digest=digest)
    # the week's fatalities (12: the fixture's two deaths an event) come from the series' figures, not the detection
    line = ("1,234 events (12 fatalities) this week against 2.2 expected (threshold NA); last week 1 event (2 fatalities), "
            "a year earlier 0 events (0 fatalities); alert, exceedance score NA, p-value NA")  # fmt: skip
    assert line == (f"{fmt_num(1234.0)} events (12 fatalities) this week against {fmt_num(2.25)} expected (threshold "
                    f"{fmt_num(float('nan'))}); last week 1 event (2 fatalities), a year earlier 0 events (0 fatalities); "
                    f"alert, exceedance score {fmt_score(float('nan'))}, p-value {fmt_p(None)}")  # fmt: skip
    assert line in _text(message) and line in _html(message)
    cells = re.findall(r"<td [^>]*>([^<]*)</td>", _html(message))
    # after the group and the series name: observed, events (fatalities) this week, last week, a year ago, expected, ...
    assert cells[2:10] == ["1,234", "6 (12)", "1 (2)", "0 (0)", "2.2", "NA", "alert", "NA"]


def test_html_escapes_data(written):
    result, files = written
    hasakah = next(r for r in result.results if r.series.label == INJECTION_LABEL)
    flagged = replace(hasakah, detection=replace(hasakah.detection, alarm=True, level="alert"), status="new", weeks_in_alert=1)
    result = replace(result, results=tuple(flagged if r is hasakah else r for r in result.results))
    before = _announced_before(result, [r.series.key for r in result.flagged if r.series.key != hasakah.series.key])
    (digest,) = _plan(result, states=before).digests
    message = build_digest(result, files, settings=alert_settings(), digest=digest)
    html = _html(message)
    assert INJECTION_LABEL not in html and "<b>" not in html.split("<table")[1] and "&lt;b&gt;" in html
    assert "\n" not in message["Subject"] and "Al-Hasakah" in message["Subject"]


def test_no_server_writes_an_eml_file(message, tmp_path):
    delivery = deliver(message, settings=alert_settings(host=""), password=None, eml_dir=tmp_path / "out")
    assert delivery == Delivery("file", message["Message-ID"], tmp_path / "out" / "digest-2023-W09.eml")
    parsed = email.message_from_bytes(delivery.path.read_bytes(), policy=default)
    # (Python folds this subject right after "Subject:", and its parser keeps the fold's space)
    assert parsed["Subject"].strip() == message["Subject"] and parsed["To"] == "a@example.org, b@example.org"
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_real_smtp_server_receives_the_digest(message):
    server = SmtpServer().start()
    try:
        settings = alert_settings(host="127.0.0.1", port=server.port, security="none", recipients=["a@example.org", "b@example.org"])
        delivery = deliver(message, settings=settings, password=None, eml_dir=Path("/nonexistent"))
    finally:
        server.stop()
    assert delivery == Delivery("smtp", message["Message-ID"], None)
    [(recipients, received)] = server.inbox.messages
    assert recipients == ["a@example.org", "b@example.org"]
    assert received["Subject"].strip() == message["Subject"] and received["Message-ID"] == message["Message-ID"]
    crlf = lambda s: s.replace("\r\n", "\n")  # noqa: E731 (SMTP carries CRLF line ends)
    assert crlf(_text(received)) == _text(message) and crlf(_html(received)) == _html(message)
    images = [p for p in received.walk() if p.get_content_type() == "image/png"]
    cids = re.findall(r'src="cid:([^"]+)"', _html(received))
    assert len(images) == 2 and sorted(f"<{c}>" for c in cids) == sorted(p["Content-ID"] for p in images)
    assert any(p.get_filename() == "report-2023-W09.md" for p in received.iter_attachments())


def test_unreachable_server_is_a_one_line_delivery_error(message):
    port = free_port()  # nothing listens there
    settings = alert_settings(host="127.0.0.1", port=port, security="none", username="watch")
    with pytest.raises(DeliveryError) as caught:
        deliver(message, settings=settings, password=PASSWORD, eml_dir=Path("."))
    text = str(caught.value)
    assert text.startswith(f"127.0.0.1:{port}: connection refused") and "\n" not in text and PASSWORD not in text


def test_starttls_required_by_settings_but_not_offered(message):
    server = SmtpServer().start()
    try:
        settings = alert_settings(host="127.0.0.1", port=server.port, security="starttls")
        with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
            deliver(message, settings=settings, password=None, eml_dir=Path("."))
    finally:
        server.stop()
    assert server.inbox.messages == []


def test_username_without_password_is_refused_before_connecting(message):
    settings = alert_settings(host="127.0.0.1", port=free_port(), security="none", username="watch")
    with pytest.raises(DeliveryError, match=r"no password was given; set \$MONITOR_SMTP_PASSWORD"):
        deliver(message, settings=settings, password=None, eml_dir=Path("."))


# ---------------------------------------------------------------- TLS + login against a real server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"watch" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def tls_server(certificate, monkeypatch):
    """aiosmtpd requiring STARTTLS and a login; the client trusts our certificate through SSL_CERT_FILE."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
        authenticator=_authenticator, auth_required=True, auth_require_tls=True,
    )
    controller.start()
    yield inbox, port
    controller.stop()


def test_starttls_and_login(message, tls_server):
    inbox, port = tls_server
    settings = alert_settings(host="127.0.0.1", port=port, security="starttls", username="watch", recipients=TO)
    delivery = deliver(message, settings=settings, password=PASSWORD, eml_dir=Path("."))
    assert delivery.channel == "smtp"
    [(recipients, received)] = inbox.messages
    assert recipients == ["a@example.org", "b@example.org"] and received["Subject"].strip() == message["Subject"]


def test_wrong_password_names_the_user_not_the_password(message, tls_server):
    inbox, port = tls_server
    settings = alert_settings(host="127.0.0.1", port=port, security="starttls", username="watch")
    with pytest.raises(DeliveryError) as caught:
        deliver(message, settings=settings, password="wrong-" + PASSWORD, eml_dir=Path("."))
    text = str(caught.value)
    assert f"127.0.0.1:{port}: login refused for user 'watch'" in text and PASSWORD not in text
    assert inbox.messages == []


def test_plain_connection_to_a_starttls_only_server_is_refused(message, tls_server):
    inbox, port = tls_server
    settings = alert_settings(host="127.0.0.1", port=port, security="none")
    with pytest.raises(DeliveryError, match=f"127.0.0.1:{port}: "):
        deliver(message, settings=settings, password=None, eml_dir=Path("."))
    assert inbox.messages == []


def test_untrusted_certificate_is_reported(message, tls_server, monkeypatch, tmp_path):
    _, port = tls_server
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    settings = alert_settings(host="127.0.0.1", port=port, security="starttls", username="watch")
    with pytest.raises(DeliveryError, match="starttls: TLS certificate not trusted"):
        deliver(message, settings=settings, password=PASSWORD, eml_dir=Path("."))
