"""Cron expressions of the weekly job, read by APScheduler 3's CronTrigger.

Its own module so that checking `[schedule] cron` when the config loads (`monitor.config`) needs
neither the scheduler daemon (`monitor.schedule`) nor what it runs.
"""

from __future__ import annotations

import re
from datetime import datetime
from datetime import timezone as dt_timezone

from apscheduler.triggers.cron import CronTrigger

_CRON_FIELDS = (("minute", "minute"), ("hour", "hour"), ("day", "day"), ("month", "month"), ("day_of_week", "weekday"))


def parse_cron(expression: str, timezone: str = "UTC") -> CronTrigger:
    """A cron trigger; ValueError naming the field and value APScheduler refused, and the field order, if invalid."""
    try:
        return CronTrigger.from_crontab(expression, timezone=timezone)
    except ValueError as exc:
        problem = re.sub(r"^Error validating expression '[^']*': ", "", str(exc))
        field = ""
        for (name, label), text in zip(_CRON_FIELDS, expression.split()):
            try:
                CronTrigger(**{name: text})
            except ValueError:
                field = f"{label} '{text}': "
                break
        raise ValueError(f"{field}{problem}; the fields are minute hour day month weekday, e.g. '0 6 * * mon'") from None


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time the cron expression fires at or after `after` (an aware datetime), in UTC."""
    fire = parse_cron(expression, timezone).get_next_fire_time(None, after)
    return fire.astimezone(dt_timezone.utc)
