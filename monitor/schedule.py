"""`monitor schedule`: the weekly job under APScheduler 3, its catch-up of missed weeks and its stop.

The job (`weekly_job`) takes the database's run lock (monitor.lock, shared with `monitor
run` and `monitor ingest`), then catches up: it runs every complete week still owed
(`owed_weeks`), oldest first, once each, and each run is recorded in the `runs` table,
failures included. `serve` runs the job at start-up, then on the cron trigger; SIGTERM
or Ctrl-C stops it between weeks, after the week being run.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from monitor.config import Config
from monitor.cron import parse_cron
from monitor.errors import EXIT_ERROR, LockError, MonitorError
from monitor.types import Progress, RecordedRun, RunSummary

if TYPE_CHECKING:
    from monitor.store_protocol import Storage

JOB_ID = "weekly-run"
WAKE_ID = "wake"
#: Statuses that settle a week: the report was written. "ingest-refused" (a file was refused,
#: the rest was reported) and "delivery-failed" (messages left in the outbox, which every later
#: run flushes) would not change by running the week again. "failed" leaves the week owed, and so
#: does "no-data" (no source's data reached the week: once a late file is in, the re-run judges it).
DONE_STATUSES = frozenset({"ok", "ingest-refused", "delivery-failed"})
FAILED = "failed"
#: How long a scheduled job waits for a run holding the lock (e.g. `monitor run` from cron)
#: before giving up until the next tick; a stop request ends the wait at once.
JOB_LOCK_WAIT_SECONDS = 3600
#: The scheduler wakes at least this often. Its sleep runs on the monotonic clock, which
#: stands still while the machine is suspended; waking up looks at the wall clock again, so
#: a Monday slept through is run (late, once) within this long after the machine resumes.
WAKE_SECONDS = 3600
#: How often the main thread looks for a stop request (signal handlers only set a flag).
STOP_POLL_SECONDS = 0.2


def trigger(config: Config) -> CronTrigger:
    """The cron trigger of the weekly job (weekday names, as the config requires)."""
    return parse_cron(config.schedule.cron, config.schedule.timezone)


def next_run(config: Config, *, now: datetime) -> datetime:
    """When the cron trigger next fires after `now` (in the schedule's time zone)."""
    return trigger(config).get_next_fire_time(None, now)


def _wake() -> None:
    """Nothing: the scheduler re-reads the wall clock after it (see WAKE_SECONDS)."""


def build_scheduler(
    config: Config, job: Callable[[], object], *, scheduler: BaseScheduler | None = None, first_run: datetime | None = None
) -> BaseScheduler:
    """A scheduler holding the weekly job: coalesced, one instance at a time, run however late.

    first_run: run the job at this time first (start-up catch-up), then on the cron trigger.
    A late tick still runs (misfire_grace_time None): the job catches up, so late is never wrong.
    """
    scheduler = scheduler or BackgroundScheduler(timezone=config.schedule.timezone)
    extra = {"next_run_time": first_run} if first_run is not None else {}
    scheduler.add_job(
        job,
        trigger(config),
        id=JOB_ID,
        name="incident-monitor weekly run",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
        replace_existing=True,
        **extra,
    )
    scheduler.add_job(_wake, "interval", seconds=WAKE_SECONDS, id=WAKE_ID, name="wake up", replace_existing=True)
    return scheduler


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def owed_weeks(config: Config, store: Storage, *, now: datetime) -> list[date]:
    """The complete weeks the weekly job still owes at `now`, oldest first (week start dates).

    A week is owed when no run settled it (`_settles`: a status in DONE_STATUSES, and not a
    --no-email run while alerts are on), it is not older than the first week in the `runs`
    table and it is among the last `schedule.catch_up_weeks` complete weeks. With no run
    recorded at all, only the last complete week is owed (a new install does not back-fill
    history). A failed week stays owed: every catch-up retries it until it succeeds or leaves
    the window.
    """
    from monitor.coverage import select_week
    from monitor.series import parse_week

    last = select_week(config, week=None, now=now)
    runs = store.runs()
    if not runs:
        return [last]
    start = config.week.start
    recorded = {r.week: parse_week(r.week, start=start) for r in runs}
    done = {recorded[r.week] for r in runs if _settles(r, config)}
    first = max(min(recorded.values()), last - timedelta(weeks=config.schedule.catch_up_weeks - 1))
    weeks = [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]
    return [w for w in weeks if w not in done]


def _settles(run: RecordedRun, config: Config) -> bool:
    """Whether a recorded run settles its week: a DONE_STATUSES status, and alerts processed
    unless they are off (a `run --no-email` preview, recorded with summary emailed = false, does not)."""
    return run.status in DONE_STATUSES and (run.summary.settles_alerts or not config.alerts.enabled)


def describe_error(exc: BaseException) -> str:
    """A failure in one line: a MonitorError's own message, else the type and message of the defect."""
    return str(exc) if isinstance(exc, MonitorError) else f"unexpected {type(exc).__name__}: {exc}"


def run_week(
    config: Config, store: Storage, *, week: date | None, now: datetime, send: bool = True, clock: Callable[[], datetime] | None = None
):
    """`run_weekly` for a week (None: the last complete one), recording a run that raises.

    A run that raises is recorded with status "failed" and its error (the same summary keys
    as a finished run), then the exception is raised again. A week that has not ended is a
    wrong request, not a run: select_week's error is raised and nothing is recorded.
    """
    from monitor.coverage import select_week
    from monitor.pipeline import run_weekly
    from monitor.series import week_label

    week = select_week(config, week=week, now=now)
    try:
        return run_weekly(config, store, week=week, now=now, send=send, clock=clock)
    except Exception as exc:
        summary = RunSummary(series=0, flagged=(), announced=(), ingested_files=(), refused=(), error=describe_error(exc))
        with suppress(Exception):  # the database itself failing: the original error is the one to show
            store.record_run(week=week_label(week), started_at=now, finished_at=clock() if clock else now, status=FAILED,
                             summary=summary)  # fmt: skip
        raise


def _line(now: datetime, outcome) -> str:
    result = outcome.result
    if result.no_data_line:  # recorded no-data, so still owed: a late file is judged at the next tick
        return (f"{now.isoformat()} {result.no_data_line}; the week stays owed and runs again at the next tick "
                f"(report {outcome.files.markdown})")  # fmt: skip
    line = f"{now.isoformat()} {result.week}: {len(result.flagged)} of {len(result.results)} series flagged"
    line += f"; report {outcome.files.markdown}"
    return line + (f"; email not delivered (kept in the outbox): {outcome.delivery_error}" if outcome.delivery_error else "")


def catch_up(
    config: Config,
    store: Storage,
    *,
    clock: Callable[[], datetime],
    echo: Callable[[str], object] = print,
    stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
) -> list[tuple[str, int]]:
    """Run every owed week (`owed_weeks` at `clock()`), oldest first, once each, with `run_week`.

    A failed week is reported and the catch-up goes on (the week stays owed: the next
    catch-up retries it). Weeks that end while catching up are run too. `stop` is asked
    before each week: once it returns True, the weeks left are named and nothing more runs.
    Returns (week label, exit code) of each week run, in order (1 for a failed week).
    progress: told ("weeks caught up", done, owed) after each week of a catch-up of more than one.
    """
    from monitor.series import week_label

    ran: list[tuple[str, int]] = []
    tried: set[date] = set()
    while True:
        weeks = [w for w in owed_weeks(config, store, now=clock()) if w not in tried]
        if not weeks:
            return ran
        if len(weeks) > 1:
            echo(f"{clock().isoformat()} catching up {len(weeks)} weeks: {', '.join(map(week_label, weeks))}")
        for i, week in enumerate(weeks):
            if stop():
                left = ", ".join(map(week_label, weeks[i:]))
                echo(f"{clock().isoformat()} stopping: {left} left for the next start or tick")
                return ran
            tried.add(week)
            now = clock()
            try:
                outcome = run_week(config, store, week=week, now=now, clock=clock)
            except Exception as exc:  # recorded by run_week; the daemon and the other weeks go on
                echo(f"{now.isoformat()} {week_label(week)}: weekly run failed: {describe_error(exc)} (retried at the next run)")
                ran.append((week_label(week), EXIT_ERROR))
                if progress is not None and len(weeks) > 1:
                    progress("weeks caught up", i + 1, len(weeks))
                continue
            echo(_line(now, outcome))
            ran.append((outcome.result.week, outcome.exit_code))
            if progress is not None and len(weeks) > 1:
                progress("weeks caught up", i + 1, len(weeks))


def weekly_job(
    config: Config,
    *,
    echo: Callable[[str], object] = print,
    clock: Callable[[], datetime] = utc_now,
    stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
) -> Callable[[], int]:
    """The job the scheduler calls at start-up and on each tick: hold the run lock and `catch_up`.

    The job returns the highest exit code of the weeks it ran (0 when nothing was owed),
    5 when another run held the lock for JOB_LOCK_WAIT_SECONDS, 1 when the database cannot
    be opened. It never raises: the daemon keeps running and the next tick tries again.
    """
    from monitor.lock import locked_store

    def job() -> int:
        if stop():
            return 0
        try:
            with locked_store(config.db_path, clock=clock, wait=JOB_LOCK_WAIT_SECONDS, command="monitor schedule",
                              hint="the next scheduled run catches up", stop=stop) as store:  # fmt: skip
                ran = catch_up(config, store, clock=clock, echo=echo, stop=stop, progress=progress)
        except LockError as exc:
            echo(f"{clock().isoformat()} weekly run skipped: {exc}")
            return LockError.exit_code
        except Exception as exc:  # the database cannot be opened (or a defect): say so, keep the daemon alive
            echo(f"{clock().isoformat()} weekly run failed: {describe_error(exc)}")
            return EXIT_ERROR
        return max((code for _, code in ran), default=0)

    return job


class StopRequest:
    """A stop asked for by SIGTERM or SIGINT, read between steps (`stop()` is True once asked).

    The handler only assigns an attribute: taking a lock in a signal handler can deadlock
    the thread it interrupted. A second signal ends the process at once (the default action).
    """

    def __init__(self) -> None:
        self.signal_name = ""

    def __call__(self) -> bool:
        return bool(self.signal_name)

    def handle(self, signum: int, frame: object) -> None:
        if self.signal_name:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signal_name = signal.Signals(signum).name


def serve(config: Config, *, echo: Callable[[str], object] = print, clock: Callable[[], datetime] = utc_now,
          progress: Progress | None = None) -> None:  # fmt: skip
    """Run the weekly job now (catching up missed weeks), then on the cron schedule, until stopped.

    SIGTERM (systemd stop, kill) or Ctrl-C: the week being run finishes, no other week
    starts, the scheduler shuts down after the current job and this returns (exit 0).
    """
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        job = weekly_job(config, echo=echo, clock=clock, stop=stop, progress=progress)
        scheduler = build_scheduler(config, job, first_run=clock())
        echo(
            f"incident-monitor: weekly run scheduled '{config.schedule.cron}' ({config.schedule.timezone}); "
            f"catching up now; next scheduled run: {next_run(config, now=clock()).isoformat()}"
        )
        scheduler.start()
        while not stop():
            time.sleep(STOP_POLL_SECONDS)
        echo(f"incident-monitor: {stop.signal_name} received; stopping after the current step")
        scheduler.shutdown(wait=True)  # waits for a running job, which stops between weeks
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo("incident-monitor: scheduler stopped")
