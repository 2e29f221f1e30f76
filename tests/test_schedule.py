"""`monitor schedule`: the APScheduler 3 job, its cron trigger and its run."""

from __future__ import annotations

from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler

from monitor.config import config_from_dict
from monitor.pipeline import select_week
from monitor.schedule import JOB_ID, build_scheduler, trigger, weekly_job


def test_cron_trigger_fires_monday_morning_in_the_configured_zone(tmp_path):
    config = config_from_dict({"schedule": {"cron": "0 6 * * mon", "timezone": "Asia/Damascus"}}, base_dir=tmp_path)
    fire = trigger(config).get_next_fire_time(None, datetime(2023, 3, 1, tzinfo=timezone.utc))
    assert fire.isoformat() == "2023-03-06T06:00:00+03:00"  # Monday 06:00 in Damascus
    assert fire.weekday() == 0


def test_job_is_coalesced_and_never_runs_twice_at_once(tmp_path):
    config = config_from_dict({}, base_dir=tmp_path)
    scheduler = build_scheduler(config, lambda: None, scheduler=BackgroundScheduler(timezone="UTC"))
    job = scheduler.get_job(JOB_ID)
    assert job.coalesce is True and job.max_instances == 1
    assert str(job.trigger) == str(trigger(config))


CLOCK = lambda: datetime(2023, 3, 6, 6, 0, tzinfo=timezone.utc)  # noqa: E731 (Monday morning)


def test_weekly_job_runs_the_pipeline_and_reports_failures_without_dying(tmp_path):
    lines: list[str] = []
    config = config_from_dict({"database": {"path": str(tmp_path / "m.db")}}, base_dir=tmp_path)
    code = weekly_job(config, echo=lines.append, clock=CLOCK)()
    assert code == 0  # an empty database: nothing to flag, a report still written
    assert "2023-W09: 0 of 0 series flagged" in lines[-1]
    assert (tmp_path / "reports" / "2023-W09" / "report.md").exists()
    broken = config_from_dict({"database": {"path": str(tmp_path)}}, base_dir=tmp_path)  # a folder is not a database
    assert weekly_job(broken, echo=lines.append, clock=CLOCK)() == 1
    assert "weekly run failed" in lines[-1]


def test_the_reported_week_is_the_one_just_ended_in_the_schedules_zone(tmp_path):
    """Monday 06:00 in Tokyo is Sunday 21:00 UTC: the week that has just ended there is 2023-W09."""
    tokyo = config_from_dict({"schedule": {"cron": "0 6 * * mon", "timezone": "Asia/Tokyo"}}, base_dir=tmp_path)
    fire = trigger(tokyo).get_next_fire_time(None, datetime(2023, 3, 1, tzinfo=timezone.utc))
    assert fire.astimezone(timezone.utc).isoformat() == "2023-03-05T21:00:00+00:00"
    assert select_week(tokyo, week=None, now=fire.astimezone(timezone.utc)).isoformat() == "2023-02-27"
    utc = config_from_dict({}, base_dir=tmp_path)
    assert select_week(utc, week=None, now=fire.astimezone(timezone.utc)).isoformat() == "2023-02-20"
