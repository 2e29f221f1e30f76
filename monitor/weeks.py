"""Week arithmetic without pandas: the first day of a week and its ISO label.

A week starts on the configured weekday (`week.start`, Monday by default). Its label is the
ISO week of its middle day (start + 3 days), which for Monday weeks is exactly the ISO week
(`2023-W07`) and gives every other week start one unambiguous label too. The readers in
`monitor.sources` use it to check counts files; `monitor.series` builds on it.
"""

from __future__ import annotations

from datetime import date, timedelta

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def week_start_of(day: date, *, start: str = "monday") -> date:
    """The first day of the week containing `day`."""
    offset = (day.weekday() - WEEKDAYS.index(start)) % 7
    return day - timedelta(days=offset)


def week_label(week_start: date) -> str:
    """ISO label of a week, e.g. 2023-W07 (the ISO week of its middle day)."""
    year, week, _ = (week_start + timedelta(days=3)).isocalendar()
    return f"{year:04d}-W{week:02d}"
