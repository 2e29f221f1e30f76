"""The weekly run, one straight line: fetch → ingest → aggregate → detect → report → alert → record.

Every function takes `now` and `week` as arguments; only cli.py and schedule.py read the clock.

A crash anywhere (power cut, OOM killer, SIGKILL; tests/test_crash.py kills `monitor ingest`,
`monitor run` and `monitor alerts flush` at the named points of monitor.faults) loses nothing,
and running the same command again ends as an uninterrupted run would have:

* every database write is one transaction; each ingested file commits on its own, and the re-run
  skips the files already in (by sha256);
* report files are written to a temporary file, flushed to disk and renamed; the next report of
  the folder removes the temporary files a killed writer left;
* a week's alert states and the messages they call for commit together (the outbox): a run
  killed before that commit is decided afresh by the re-run; one killed after it is not decided
  again: the re-run sends what the outbox still holds, and its report shows what the first run
  decided (`as_first_run`);
* a killed run records no `runs` row, so its week stays owed: the scheduler's catch-up runs it
  again; with cron, `monitor status` lists it;
* the one duplicate: a message the server accepted whose "sent" mark was not written is sent
  again by the next run or `monitor alerts flush`, with the same Message-ID (monitor.alerts.outbox).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from monitor import faults
from monitor.config import Config
from monitor.coverage import choose_week, select_week
from monitor.detection import detect_week, worker_processes
from monitor.errors import EXIT_DELIVERY_FAILED, EXIT_ERROR, EXIT_NO_DATA, EXIT_OK
from monitor.ingest import (
    IngestOutcome,
    inbox_files,
    ingest_files,
    rejected_since_last_week,
)
from monitor.types import ReportFiles, RunResult, RunSummary
from monitor.weeks import week_number

if TYPE_CHECKING:
    from monitor.store_protocol import Storage


@dataclass(frozen=True)
class WeeklyOutcome:
    """What `run_weekly` did: the run result, the report files and the alert notifications."""

    result: RunResult
    files: ReportFiles
    ingest: IngestOutcome
    announced: tuple[str, ...]  # series keys in messages delivered by this run (any week's)
    delivery: object | None  # monitor.alerts.email.Delivery of the last message delivered, or None
    delivery_error: str = ""
    pending: tuple[str, ...] = ()  # series keys in messages still in the outbox (not sent, or failed)
    queued: int = 0  # messages this run put in the outbox
    delivered: tuple[dict, ...] = ()  # every message delivered by this run (outbox id, route, channel, path, series)
    outbox_pending: int = 0  # messages left in the outbox
    unknown: int = 0  # messages this run sent whole without a final answer (kept, not resent: issue 12)
    emailed: bool = True  # False with --no-email or alerts.enabled = false: the alert lifecycle was not advanced
    fetched: tuple = ()  # monitor.fetch.FetchOutcome of each [[sources]] fetch made before the ingest

    @property
    def exit_code(self) -> int:
        if self.result.no_data_line:  # nothing was judged: the worst news a run can give, ahead of a digest left waiting
            return EXIT_NO_DATA
        if self.delivery_error or self.outbox_pending:
            return EXIT_DELIVERY_FAILED
        return EXIT_ERROR if self.ingest.refused or any(f.failed for f in self.fetched) else EXIT_OK


def run_weekly(
    config: Config, store: Storage, *, week: date | None, now: datetime, send: bool = True, clock: Callable[[], datetime] | None = None
) -> WeeklyOutcome:
    """The weekly job: fetch the [[sources]] and ingest new inbox files → detect → alert lifecycle → report → outbox →
    send → record.

    Each series takes one step of its alert lifecycle (monitor.alerts.lifecycle); the
    notices are routed, silenced and grouped (monitor.alerts.notify) into one digest per
    recipient group, committed to the outbox together with the new states, then sent
    (monitor.alerts.outbox): a message leaves the outbox only once a server accepted it,
    so a failed send is delivered by the next run or `monitor alerts flush`, exactly once.
    Re-running a week changes no state and queues nothing; it still flushes the outbox.
    send=False (--no-email) or alerts.enabled = false: report only, the lifecycle is not advanced.
    clock: gives the finishing time recorded for the run (default: `now`).
    """
    from monitor.alerts.notify import advance, as_first_run, plan
    from monitor.report import write_report

    from monitor.fetch import fetch_sources, remote_sources

    started = now
    week = select_week(config, week=week, now=now)
    # data that arrives by itself first ([[sources]]); a source that fails is named in the report, and the
    # week is judged on what the database holds
    fetched = tuple(fetch_sources(config, store, now=now, clock=clock)) if remote_sources(config) else ()
    ingest = ingest_files(store, inbox_files(config), config=config, now=now)
    faults.point("run.after-ingest")
    result = detect_week(config, store, week=week, now=now, ingests=ingest.results)
    emailing = send and config.alerts.enabled
    silences = store.active_silences(now)
    states = store.alert_states()
    no_data = set(result.no_data)
    changes = advance(result, states, config.alerts, no_data=no_data)
    ahead = max((st.last_week for st in states.values() if st.last_index > week_number(result.week_start)), default="")
    emergences, rule = _emergence_changes(config, store, result, ahead=bool(ahead))
    decided = plan(result, changes, config.alerts, silences, emergences, rule=rule)
    notes = list(result.notes)
    notes += [f"Fetching failed: {f.message or f.refused} The week is judged on the data the database held before."
              for f in fetched if f.failed]  # fmt: skip
    if ahead:
        notes.append(
            f"Alerts were not evaluated for {result.week}: the alert states already cover {ahead}, a later week. "
            "Surges of this week are in this report only (no email)."
        )
    shown, shown_plan = changes, decided
    index = week_number(result.week_start)
    if any(not c.event and c.before.last_index == index for c in changes):  # this week's alerts were decided before
        shown = as_first_run(changes, index=index, events={e["series"]: e["event"] for e in store.alert_events(result.week)},
                             previous_week=_previous_weeks(store, result.week))  # fmt: skip
        shown_plan = plan(result, shown, config.alerts, silences)  # for the report only: nothing is queued again
    result = replace(result, alert_notes=alert_notes(shown, shown_plan), silences=tuple(silences), notes=tuple(notes),
                     refused=ingest.refused, rejected=rejected_since_last_week(store, week=result.week))  # fmt: skip
    faults.point("run.after-detect")
    files = write_report(result, settings=config.report_settings, workers=worker_processes(config))
    faults.point("run.report.written")
    store.save_detections(result.week, [r.detection for r in result.results])
    faults.point("run.detections-saved")

    queued, flushed = 0, None
    if emailing:
        from monitor.alerts.outbox import flush, queue

        from monitor.report.html import report_address

        link = report_address(config.report_settings.base_url, result.week, fallback=files.html or files.markdown)
        queued = len(queue(store, result, files, decided, settings=config.alerts, now=now, report=link))
        faults.point("run.alerts.committed")
        # the password is read (from its file or the environment) only when a login needs it
        flushed = flush(store, settings=config.alerts, password=config.smtp_password, now=now,
                        eml_dir_for=lambda w: config.report_settings.folder / w)  # fmt: skip
    pending_rows = store.pending_outbox()
    delivered = tuple(flushed.delivered) if flushed else ()
    outcome = WeeklyOutcome(
        result=result,
        files=files,
        ingest=ingest,
        announced=tuple(dict.fromkeys(k for d in delivered for k in d["series"])),
        delivery=_last_delivery(delivered),
        delivery_error=flushed.error if flushed else "",
        pending=tuple(dict.fromkeys(k for message in pending_rows for k in message.series)),
        queued=queued,
        delivered=delivered,
        outbox_pending=len(pending_rows) if emailing else 0,
        unknown=flushed.unknown if flushed else 0,
        emailed=emailing,
        fetched=fetched,
    )
    faults.point("run.before-record")
    store.record_run(
        week=result.week,
        started_at=started,
        finished_at=clock() if clock else now,
        status=_run_status(outcome, all_held=bool(result.no_data_line) or (bool(result.results) and no_data >= {r.series.key for r in result.results})),
        summary=RunSummary(
            series=len(result.results),
            flagged=tuple(r.series.key for r in result.flagged),
            warnings=tuple(r.series.key for r in result.warnings),
            queued=queued,
            announced=outcome.announced,
            outbox_pending=outcome.outbox_pending,
            outbox_unknown=outcome.unknown,
            ingested_files=tuple(i.file for i in ingest.results if not i.skipped),
            refused=tuple(ingest.refused),
            error=outcome.delivery_error,
            emailed=emailing,  # False: a report-only run; the scheduler's catch-up still owes this week
        ),
    )
    faults.point("run.recorded")
    return outcome


def _emergence_changes(config: Config, store: Storage, result: RunResult, *, ahead: bool) -> tuple[list, str]:
    """This week's steps of the emergence alerts (monitor.alerts.emergence) and their rule in words; none when
    `[emerging] alerts` is off, or when the alerts already cover a later week (a week run late is reported, not
    emailed: what was new then is old news)."""
    from monitor.alerts.emergence import advance, rule_text

    if not config.emerging.alerts:
        return [], ""
    index = week_number(result.week_start)
    known = store.emergence_states()
    if ahead or any(st.last_index > index for st in known.values()):
        return [], ""
    changes = advance(result.emerging, known, week=result.week, index=index, weeks=config.emerging.weeks)
    return changes, rule_text(config.emerging.weeks, config.emerging.aliases)


def _previous_weeks(store: Storage, week: str) -> Callable[[str], str]:
    """previous(series key): the last week before `week` whose alerts were judged for the series (its
    latest event other than "held"); the event log is read once, on the first call."""
    latest: dict[str, str] | None = None

    def previous(key: str) -> str:
        nonlocal latest
        if latest is None:
            latest = {}
            for e in store.alert_events():
                if e["week"] < week and e["event"] != "held":
                    latest[e["series"]] = max(latest.get(e["series"], ""), e["week"])
        return latest.get(key, "")

    return previous


def _run_status(outcome: WeeklyOutcome, *, all_held: bool) -> str:
    """ok, ingest-refused, delivery-failed (messages wait in the outbox, or one's outcome is unknown), or no-data: nothing reached the week, so
    nothing was judged; the scheduler's catch-up runs the week again (a re-run judges it once its data is in).
    A report-only run (--no-email, alerts off) of such a week is no-data too: recorded `ok`, it would settle the
    week with every series read as quiet (issue 11)."""
    if all_held:
        return "no-data"
    if outcome.outbox_pending or outcome.unknown:  # unknown: the digest may not have arrived, and is not resent
        return "delivery-failed"
    return "ingest-refused" if outcome.ingest.refused else "ok"


def _last_delivery(delivered: Sequence[dict]):
    from monitor.alerts.email import Delivery

    if not delivered:
        return None
    d = delivered[-1]
    return Delivery(d["channel"], "", Path(d["path"]) if d["path"] else None)


def alert_notes(changes, decided) -> dict[str, str]:
    """Series key -> how its alert stands this week, for the report (firing, pending, silenced, resolved...)."""
    states = {c.key: decided.states.get(c.key, c.after) for c in changes}
    out = {}
    for c in changes:
        st = states[c.key]
        if st.state == "pending":
            text = f"pending since {st.since_week} ({st.flagged_weeks} week(s) flagged)"
        elif st.state == "firing":
            text = f"firing ({st.severity}) since {st.since_week}"
        elif st.state == "recovering":
            text = f"recovering (quiet {st.quiet_weeks} week(s)); firing since {st.since_week}"
        elif c.event == "resolved":
            text = f"resolved (flagged {st.since_week} to {c.before.last_week})"
        else:
            text = ""
        if c.event == "held" and st.state:
            text += "; held this week (no data or undecided)"
        for revision in c.revisions:  # an earlier week judged on a partial count, judged again (issue 14, item 4)
            text = (text + "; " if text else "") + revision.text()
        silence = decided.silenced.get(c.key)
        if silence:
            text = (text + "; " if text else "") + f"silenced (#{silence.id} until {silence.until}: {silence.comment})"
        if text:
            out[c.key] = text
    return out


def report_week(config: Config, store: Storage, *, week: date | None, now: datetime) -> tuple[RunResult, ReportFiles]:
    """Detect and write the report for a week, without ingesting or emailing."""
    from monitor.report import write_report

    week = choose_week(config, store, week=week, now=now).week  # None: the latest week with data
    result = detect_week(config, store, week=week, now=now)
    result = replace(result, silences=tuple(store.active_silences(now)), rejected=rejected_since_last_week(store, week=result.week))
    return result, write_report(result, settings=config.report_settings, workers=worker_processes(config))


