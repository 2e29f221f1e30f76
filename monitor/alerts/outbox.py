"""The outbox: every digest is stored before it is sent and leaves only once a server accepted it.

`queue` turns a week's plan into messages and commits them together with the alert states
(one transaction: the decision to notify and the notification are never separated).
`flush` sends what is pending, oldest first, and marks each message sent right after the
server accepted it. When the server is down, refuses or times out, the messages stay in
the outbox with the error and attempt count, and the next run (or `monitor alerts flush`)
delivers them exactly once.

Crashes: a process killed anywhere before the server accepted a message leaves it pending,
and the next run or `monitor alerts flush` sends it, once; killed after its "sent" mark, the
message is never sent again. The one duplicate this allows: if the process dies after the
server accepted a message and before its "sent" mark is written (a few milliseconds; the crash
point `outbox.accepted`), the next run or flush sends it again. Mail cannot be un-sent, so
at-least-once is the honest guarantee there; the stored bytes are sent both times, Message-ID
included, so clients that thread or deduplicate by Message-ID show it once. Only that message
is repeated: each message is marked sent as soon as the server accepted it, before the next.

A 4xx answer at any step (greylisting at RCPT, 421 at MAIL) leaves the message pending, to be
retried. When the whole message was sent but the server's final answer never came (RFC 5321
asks clients to wait 10 minutes for it: `alerts.smtp.data_timeout`; or the connection dropped),
the server may have stored it: the message is marked of unknown outcome and is not resent
unless the user asks (`monitor alerts flush --resend-unknown`), which may duplicate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from monitor import faults
from monitor.alerts.notify import Plan
from monitor.errors import DeliveryError
from monitor.types import ReportFiles, RunResult

if TYPE_CHECKING:
    from monitor.store_protocol import Storage


@dataclass
class FlushResult:
    """What a flush did: messages delivered (outbox id, channel, where, series) and attempts that failed."""

    delivered: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    pending: int = 0  # messages still in the outbox afterwards
    unknown: int = 0  # messages this flush sent whole without a final answer (kept, not resent)

    @property
    def error(self) -> str:
        def state(f: dict[str, Any]) -> str:
            return " refused for good" if f.get("permanent") else " outcome unknown, not resent" if f.get("unknown") else ""

        return "; ".join(f"#{f['id']} ({f['route']}){state(f)}: {f['error']}" for f in self.failed)


def queue(store: Storage, result: RunResult, files: ReportFiles, plan: Plan, *, settings: Any, now: datetime, report: str | None = None) -> list[int]:
    """Build one message per digest of `plan` and commit them with the plan's states and events."""
    from monitor.alerts.email import build_digest

    messages = []
    for digest in plan.digests:
        message = build_digest(result, files, settings=settings, digest=digest, report=report)
        messages.append({
            "route": digest.route.name,
            "recipients": list(digest.route.recipients),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "message": message.as_bytes(),
            "series": digest.series,
        })  # fmt: skip
    faults.point("outbox.built")
    return store.commit_alerts(result.week, plan.states.values(), plan.events, messages, now=now,
                               emergences=plan.emergence_states.values())


def flush(store: Storage, *, settings: Any, password: Any, eml_dir_for: Callable[[str], Path], now: datetime) -> FlushResult:
    """Send every pending outbox message, oldest first; stop at the first failure of the SMTP server.

    password: as `deliver` takes it (text, SecretStr, or a function read only when a login needs it).
    eml_dir_for(week): where a message is written when no SMTP server is configured.
    A failure of the server (down, busy, timeout, login) is recorded on the message
    (attempts, last error) and the flush stops: the rest stay pending, nothing is lost. A
    refusal of one message for good (5xx to its sender, recipients or content) sets that
    message aside as dead (kept with the reason, listed by `monitor alerts list`) and the
    flush goes on, so one bad address never blocks the others. A message sent whole whose final
    answer never came (timeout, deadline or disconnect after the end of DATA) may have been
    accepted: it is marked of unknown outcome (kept with the reason, not resent until
    `Store.resend_unknown`, i.e. `monitor alerts flush --resend-unknown`) and the flush stops.
    """
    from monitor.alerts.email import deliver

    out = FlushResult()
    pending = store.pending_outbox()
    for i, row in enumerate(pending):
        message = BytesParser(policy=policy.default).parsebytes(store.outbox_message(row.id))
        faults.point("outbox.before-send")
        try:
            delivery = deliver(message, settings=settings, password=password, eml_dir=eml_dir_for(row.week),
                               recipients=list(row.recipients) or None)  # fmt: skip
        except DeliveryError as exc:
            unknown = getattr(exc, "unknown", False)
            failure = {"id": row.id, "route": row.route, "week": row.week, "error": str(exc), "permanent": exc.permanent,
                       "unknown": unknown}  # fmt: skip
            out.failed.append(failure)
            if exc.permanent:  # refused for good: set aside (kept, with the reason) and go on with the others
                store.mark_dead(row.id, error=str(exc), now=now)
                continue
            if unknown:  # sent whole, no final answer: the server may have it; resending is the user's call
                store.mark_unknown(row.id, error=str(exc), now=now)
                out.unknown += 1
                out.pending = len(pending) - i - 1  # the ones after it wait: the server is in trouble
                return out
            store.mark_failed(row.id, error=str(exc), now=now)  # the server is down or busy: try again later
            out.pending = len(pending) - i  # this message and the ones after it
            return out
        faults.point("outbox.accepted")  # the one duplicate: accepted by the server, not yet marked sent
        store.mark_sent(row.id, channel=delivery.channel, now=now)
        faults.point("outbox.marked")
        out.delivered.append({
            "id": row.id, "route": row.route, "week": row.week, "channel": delivery.channel,
            "path": str(delivery.path) if delivery.path else "", "series": list(row.series), "subject": row.subject,
        })  # fmt: skip
    return out
