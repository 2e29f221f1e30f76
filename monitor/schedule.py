"""`monitor schedule`: the weekly job under APScheduler 3, on the cron expression from the config.

BlockingScheduler with a cron trigger; `coalesce` folds runs missed while the machine
was down into one, and `max_instances = 1` keeps runs from overlapping.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from monitor.config import Config

JOB_ID = "weekly-run"
#: a run whose start was missed by less than this (machine asleep, restart) still happens once
MISFIRE_GRACE_SECONDS = 12 * 3600


def parse_cron(expression: str, timezone: str = "UTC") -> CronTrigger:
    """A cron trigger; ValueError (APScheduler's message: which field, which value) if invalid."""
    return CronTrigger.from_crontab(expression, timezone=timezone)


def trigger(config: Config) -> CronTrigger:
    """The cron trigger of the weekly job (weekday names, as the config requires)."""
    return parse_cron(config.schedule.cron, config.schedule.timezone)


def build_scheduler(config: Config, job: Callable[[], object], *, scheduler: BaseScheduler | None = None) -> BaseScheduler:
    """A scheduler holding the weekly job: coalesced, one instance at a time."""
    scheduler = scheduler or BlockingScheduler(timezone=config.schedule.timezone)
    scheduler.add_job(
        job,
        trigger(config),
        id=JOB_ID,
        name="incident-monitor weekly run",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
        replace_existing=True,
    )
    return scheduler


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def weekly_job(
    config: Config, *, echo: Callable[[str], object] = print, clock: Callable[[], datetime] = utc_now
) -> Callable[[], int]:
    """The job the scheduler calls: one `run_weekly` for the last week complete at `clock()`
    (in the schedule's time zone: a Monday 06:00 Tokyo run reports on the week just ended there)."""
    from monitor.errors import MonitorError
    from monitor.pipeline import run_weekly
    from monitor.store import Store

    def job() -> int:
        now = clock()
        try:
            with Store(config.db_path) as store:
                outcome = run_weekly(config, store, week=None, now=now, clock=clock)
        except MonitorError as exc:  # the daemon keeps running; the next tick tries again
            echo(f"{now.isoformat()} weekly run failed: {exc}")
            return 1
        result = outcome.result
        echo(f"{now.isoformat()} {result.week}: {len(result.flagged)} of {len(result.results)} series flagged; "
             f"report {outcome.files.markdown}" + (f"; email failed: {outcome.delivery_error}" if outcome.delivery_error else ""))
        return outcome.exit_code

    return job


def serve(config: Config, *, echo: Callable[[str], object] = print) -> None:
    """Block, running the weekly job on schedule, until interrupted (Ctrl-C / SIGTERM)."""
    import signal

    scheduler = build_scheduler(config, weekly_job(config, echo=echo))
    # SIGTERM (systemd stop, kill) ends the loop like Ctrl-C; a running job finishes its step first
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    echo(f"incident-monitor: weekly run scheduled '{config.schedule.cron}' ({config.schedule.timezone}); "
         f"next: {trigger(config).get_next_fire_time(None, datetime.now(timezone.utc))}")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        echo("incident-monitor: scheduler stopped")
