"""Week arithmetic without pandas: the first day of a week and its ISO label.

A week starts on the configured weekday (`week.start`, Monday by default). Its label is the
ISO week of its middle day (start + 3 days), which for Monday weeks is exactly the ISO week
(`2023-W07`) and gives every other week start one unambiguous label too. Also: a week label or
date read from the command line, the last week that has ended, and consecutive week numbers.
Everything about weeks that needs no pandas is here; `monitor.series` builds on it.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from monitor.errors import MonitorError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: Monday 5 January 1970: week numbers count weeks from it.
_EPOCH = date(1970, 1, 5)


def week_start_of(day: date, *, start: str = "monday") -> date:
    """The first day of the week containing `day`."""
    offset = (day.weekday() - WEEKDAYS.index(start)) % 7
    return day - timedelta(days=offset)


def week_label(week_start: date) -> str:
    """ISO label of a week, e.g. 2023-W07 (the ISO week of its middle day)."""
    year, week, _ = (week_start + timedelta(days=3)).isocalendar()
    return f"{year:04d}-W{week:02d}"


_WEEK_LABEL = re.compile(r"^(\d{4})-W(\d{2})$")


def parse_week(label: str, *, start: str = "monday") -> date:
    """The start date of the week labelled `2023-W08` (or given as any ISO date inside it)."""
    text = label.strip()
    match = _WEEK_LABEL.match(text)
    if match:
        year, week = int(match.group(1)), int(match.group(2))
        try:
            thursday = date.fromisocalendar(year, week, 4)
        except ValueError:
            raise MonitorError(f"week '{label}' does not exist (ISO years have 52 or 53 weeks)") from None
        # the week whose middle day (start + 3) is in that ISO week starts in [Thursday - 6, Thursday]
        return week_start_of(thursday, start=start)
    try:
        return week_start_of(date.fromisoformat(text), start=start)
    except ValueError:
        raise MonitorError(f"week '{label}' is not a week: write YYYY-Www (e.g. 2023-W08) or a date YYYY-MM-DD") from None


def last_complete_week(now: datetime | date, *, start: str = "monday") -> date:
    """Start of the last week that has fully ended at `now` (what a Monday-morning job reports on)."""
    today = now.date() if isinstance(now, datetime) else now
    return week_start_of(today, start=start) - timedelta(days=7)


def last_full_week(last_day: date, *, start: str = "monday") -> date:
    """Start of the last week whose every day is on or before `last_day` (data up to a Saturday completes
    the week before, with Monday weeks; data up to the Sunday completes its own week)."""
    return last_complete_week(last_day + timedelta(days=1), start=start)


def week_number(week_start: date) -> int:
    """Consecutive weeks have consecutive numbers (whatever weekday weeks start on): the alert
    lifecycle counts weeks between two events with it."""
    return (week_start - _EPOCH).days // 7
