"""Mail servers that misbehave (issue 12, items 1, 2, 3 and the CRAM-MD5 part of 10).

Each test runs a real SMTP server on 127.0.0.1 (plain sockets, so it can break the protocol
exactly as described: greylisting, 421, trickling continuation lines, silence or a dropped
connection after the end of DATA, an over-long final reply, a malformed CRAM-MD5 challenge)
and drives `monitor alerts flush` through the command line, checking the outbox, attempt
counts, exit codes and how many times the server got the message. Timeouts and deadlines
are a second or two, set in the config.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.store import Store
from tests.smtp_server import free_port

NOW = datetime(2023, 3, 6, 6, tzinfo=timezone.utc)
RCPT = "w@example.org"
MESSAGE = b"Subject: s\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n.leading dot\r\n"


class Misbehaving:
    """An SMTP server on 127.0.0.1 that follows the protocol except where a hook says otherwise.

    Hooks take the connection number (1, 2, ...) and the command line (the EHLO hook: the
    socket) and return the reply to send, or None for the normal one. `after_data(n, conn)` answers the end of DATA itself (or not at all).
    received: (connection number, message bytes) of every message whose end of DATA arrived.
    """

    def __init__(self, *, ehlo=None, mail=None, rcpt=None, after_data=None, cram_challenge: str = "") -> None:
        self.hooks = {"ehlo": ehlo, "mail": mail, "rcpt": rcpt}
        self.after_data = after_data
        self.cram_challenge = cram_challenge
        self.received: list[tuple[int, bytes]] = []
        self.connections = 0
        self.stopping = threading.Event()
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, n: int) -> None:
        reader = conn.makefile("rb")
        try:
            conn.sendall(b"220 misbehaving ESMTP\r\n")
            while not self.stopping.is_set():
                line = reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    hook = self.hooks["ehlo"]
                    if hook and hook(n, conn) is not None:
                        return
                    conn.sendall(b"250-misbehaving\r\n" + (b"250-AUTH CRAM-MD5\r\n" if self.cram_challenge else b"") + b"250 8BITMIME\r\n")
                elif verb == b"AUTH":
                    conn.sendall(f"334 {self.cram_challenge}\r\n".encode())
                    if reader.readline():
                        conn.sendall(b"235 2.7.0 ok\r\n")
                elif verb in (b"MAIL", b"RCPT"):
                    hook = self.hooks["mail" if verb == b"MAIL" else "rcpt"]
                    reply = hook(n, line.decode("ascii", "replace")) if hook else None
                    conn.sendall((reply or "250 2.1.0 ok").encode() + b"\r\n")
                    if reply and reply.startswith("421"):
                        return
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    body = b""
                    while (chunk := reader.readline()) not in (b".\r\n", b""):
                        body += chunk
                    self.received.append((n, body))
                    if self.after_data is None or self.after_data(n, conn) is None:
                        conn.sendall(b"250 2.0.0 queued\r\n")
                    else:
                        return
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:  # RSET, NOOP
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            return
        finally:
            reader.close()
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.sock.close()
        self.thread.join(2)


def _trickle(conn: socket.socket, *, seconds: float = 6.0) -> str:
    """Send `250-still thinking` every 0.2 s for `seconds` (long past any deadline the tests set), then close."""
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            conn.sendall(b"250-still thinking\r\n")
            time.sleep(0.2)
    except OSError:
        pass
    return "closed"


def _silent(conn: socket.socket, *, seconds: float = 6.0) -> str:
    """Say nothing until the client hangs up (or `seconds` pass)."""
    conn.settimeout(seconds)
    try:
        while conn.recv(1024):
            pass
    except OSError:
        pass
    return "closed"


@pytest.fixture
def outbox(tmp_path):
    """A database with one message queued for RCPT, and a function writing the config for a server."""
    db = tmp_path / "m.db"
    with Store(db) as store:
        store.commit_alerts("2023-W09", [], [], [{"route": "default", "recipients": [RCPT], "subject": "s",
                                                  "message_id": "<m@x>", "message": MESSAGE, "series": ["a"]}], now=NOW)  # fmt: skip

    def configure(port: int, *, timeout=1.0, data_timeout=1.0, deadline=2.0, username="") -> list[str]:
        path = tmp_path / "c.toml"
        path.write_text(
            f'[alerts]\nrecipients = ["{RCPT}"]\n[alerts.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
            f'username = "{username}"\ntimeout = {timeout}\ndata_timeout = {data_timeout}\ndeadline = {deadline}\n',
            encoding="utf-8",
        )
        return ["--config", str(path), "--db", str(db)]

    return db, configure


def _flush(base, *extra, env=None):
    return CliRunner().invoke(cli, [*base, "alerts", "flush", *extra], env={"MONITOR_NOW": NOW.isoformat(), **(env or {})})


def _row(db):
    with Store(db) as store:
        (row,) = store.outbox()
    return row


@pytest.mark.parametrize("stage", ["greylisted at RCPT", "421 at MAIL"])
def test_a_temporary_answer_leaves_the_message_pending_and_the_next_flush_delivers_it_once(outbox, stage):
    db, configure = outbox
    first_only = {
        "greylisted at RCPT": {"rcpt": lambda n, line: "451 4.7.1 Greylisted, try again later" if n == 1 else None},
        "421 at MAIL": {"mail": lambda n, line: "421 4.3.2 service shutting down" if n == 1 else None},
    }[stage]
    server = Misbehaving(**first_only)
    try:
        base = configure(server.port)
        refused = _flush(base)
        row = _row(db)
        assert refused.exit_code == 4, refused.output
        assert "refused for good" not in refused.output and ("451" in refused.output or "421" in refused.output)
        assert row["sent_at"] is None and row["dead_at"] is None and row["unknown_at"] is None and row["attempts"] == 1
        assert ("Greylisted" if "RCPT" in stage else "shutting down") in row["last_error"]
        assert "1 pending" in CliRunner().invoke(cli, [*base, "alerts", "list"]).output
        delivered = _flush(base)
        again = _flush(base)
    finally:
        server.stop()
    assert delivered.exit_code == 0 and "delivered #1" in delivered.output
    assert again.exit_code == 0 and "outbox empty" in again.output
    row = _row(db)
    assert row["sent_at"] and row["attempts"] == 2 and row["last_error"] == ""
    assert [n for n, _ in server.received] == [2]  # exactly once, on the second connection


def test_a_recipient_greylisted_among_accepted_ones_holds_the_whole_message(outbox):
    """Keep it simple (documented): a 4xx to any recipient makes the whole message wait, so nobody gets it twice."""
    db, configure = outbox
    with Store(db) as store:
        store.db.execute("UPDATE outbox SET recipients = ?", ['["w@example.org", "grey@example.org"]'])
    server = Misbehaving(rcpt=lambda n, line: "451 4.7.1 Greylisted" if n == 1 and "grey@" in line else None)
    try:
        base = configure(server.port)
        first, second = _flush(base), _flush(base)
    finally:
        server.stop()
    assert first.exit_code == 4 and "grey@example.org (451" in first.output
    assert second.exit_code == 0
    assert [n for n, _ in server.received] == [2] and _row(db)["attempts"] == 2


@pytest.mark.parametrize("where", ["EHLO", "after DATA"])
def test_a_trickling_server_is_cut_off_at_the_deadline(outbox, where):
    """`250-still thinking` every 0.2 s: each read is quick, but the conversation ends at alerts.smtp.deadline."""
    db, configure = outbox
    if where == "EHLO":
        server = Misbehaving(ehlo=lambda n, conn: _trickle(conn))
    else:
        server = Misbehaving(after_data=lambda n, conn: _trickle(conn))
    try:
        base = configure(server.port, timeout=1.0, data_timeout=1.5, deadline=1.5)
        started = time.monotonic()
        result = _flush(base)
        took = time.monotonic() - started
    finally:
        server.stop()
    row = _row(db)
    assert took < 4, f"flush took {took:.1f} s"
    assert result.exit_code == 4 and "alerts.smtp.deadline" in result.output
    assert row["sent_at"] is None and row["dead_at"] is None and row["attempts"] == 1
    if where == "EHLO":  # nothing was sent: plainly pending
        assert row["unknown_at"] is None and "longer than alerts.smtp.deadline (1.5 s)" in row["last_error"]
    else:  # the whole message was sent: the server may have it
        assert row["unknown_at"] and "outcome unknown" in row["last_error"]


@pytest.mark.parametrize("behaviour", ["silent after DATA", "drops the connection after DATA"])
def test_no_final_answer_after_data_is_an_unknown_outcome_not_resent_unless_asked(outbox, behaviour):
    db, configure = outbox
    misbehave = _silent if behaviour.startswith("silent") else (lambda conn: "closed")
    server = Misbehaving(after_data=lambda n, conn: misbehave(conn) if n == 1 else None)
    try:
        base = configure(server.port, timeout=1.0, data_timeout=1.0, deadline=2.0)
        first = _flush(base)
        row = _row(db)
        second = _flush(base)
        listed = CliRunner().invoke(cli, [*base, "alerts", "list"]).output
        assert [n for n, _ in server.received] == [1]  # not sent again by the second flush
        resent = _flush(base, "--resend-unknown")
    finally:
        server.stop()
    assert first.exit_code == 4 and "outcome unknown" in first.output and "--resend-unknown" in first.output
    assert row["unknown_at"] and row["sent_at"] is None and row["dead_at"] is None and row["attempts"] == 1
    assert ("no final answer within 1 s" if behaviour.startswith("silent") else "closed the connection") in row["last_error"]
    assert second.exit_code == 0 and "outbox empty" in second.output
    assert "0 pending" in listed and "1 of unknown outcome" in listed and "unknown #1" in listed
    assert resent.exit_code == 0 and "may get them twice" in resent.output and "delivered #1" in resent.output
    assert [n for n, _ in server.received] == [1, 2]  # the user asked for the second copy
    assert _row(db)["sent_at"] and _row(db)["attempts"] == 2


def test_the_end_of_data_answer_may_come_after_the_read_timeout(outbox):
    """RFC 5321 4.5.3.2.6: the final answer gets data_timeout, not the 0.5 s every other read gets."""
    db, configure = outbox

    def late(conn):
        time.sleep(1.0)
        conn.sendall(b"250 2.0.0 stored at last\r\n")

    server = Misbehaving(after_data=lambda n, conn: late(conn))
    try:
        result = _flush(configure(server.port, timeout=0.5, data_timeout=3.0, deadline=4.0))
    finally:
        server.stop()
    assert result.exit_code == 0 and "delivered #1" in result.output
    assert _row(db)["sent_at"] and len(server.received) == 1


def test_an_over_long_250_final_reply_counts_as_accepted(outbox):
    """smtplib turns a 9,000-byte line into "500 Line too long"; the message was accepted, not refused."""
    db, configure = outbox

    def long_reply(conn):
        conn.sendall(b"250 2.0.0 queued as " + b"x" * 9000 + b"\r\n")

    server = Misbehaving(after_data=lambda n, conn: long_reply(conn))
    try:
        base = configure(server.port)
        result = _flush(base)
        again = _flush(base)
    finally:
        server.stop()
    row = _row(db)
    assert result.exit_code == 0 and "delivered #1" in result.output, result.output
    assert row["sent_at"] and row["dead_at"] is None and row["attempts"] == 1
    assert again.exit_code == 0 and len(server.received) == 1


def test_a_malformed_cram_md5_challenge_is_one_line_and_the_message_waits(outbox):
    db, configure = outbox
    server = Misbehaving(cram_challenge="abcde")  # 5 base64 characters: not decodable
    try:
        result = _flush(configure(server.port, username="desk"), env={"MONITOR_SMTP_PASSWORD": "s3cret-Pa55"})
    finally:
        server.stop()
    row = _row(db)
    assert result.exit_code == 4, result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "not valid base64" in error[0] and "unexpected" not in result.output
    assert "s3cret" not in result.output
    assert row["sent_at"] is None and row["dead_at"] is None and row["unknown_at"] is None and row["attempts"] == 1
    assert server.received == []


@pytest.mark.parametrize("smtp, message", [
    ({"deadline": 60.0, "data_timeout": 600.0}, "deadline (60 s) is shorter than data_timeout (600 s)"),
    ({"deadline": float("inf")}, "finite"),
    ({"data_timeout": 0}, "greater than 0"),
])  # fmt: skip
def test_deadline_and_data_timeout_are_validated(smtp, message):
    from monitor.config import SmtpSettings

    with pytest.raises(Exception, match=re.escape(message)):
        SmtpSettings.model_validate(smtp)
