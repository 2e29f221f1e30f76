"""`monitor status`: what the weekly job did, what it will do next and how fresh the data is.

One plain dict (JSON-ready: dates and times as ISO text) from the database and the config;
cli.py prints it as tables or JSON.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from monitor.config import Config

#: Seconds in a week, for "weeks since the last ingest".
_WEEK_SECONDS = 7 * 24 * 3600


def _run_row(run: dict[str, Any]) -> dict[str, Any]:
    summary = run["summary"] if isinstance(run["summary"], dict) else {}
    error = summary.get("error") or "; ".join(summary.get("refused") or [])
    return {
        "week": run["week"],
        "started": run["started_at"],
        "finished": run["finished_at"],
        "status": run["status"],
        "series": summary.get("series"),
        "flagged": len(summary.get("flagged") or []),
        "announced": len(summary.get("announced") or []),
        "error": error,
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def freshness(store, *, now: datetime, last_complete: date | None = None, start: str = "monday") -> list[dict[str, Any]]:
    """Per source: records, latest event date (incidents, or latest week of counts), the last week its data
    completes (`monitor.coverage`) and how many weeks that lags `last_complete` (the clock's last complete
    week; 0: up to date, None without it), last ingest, weeks since it."""
    from monitor.coverage import lag_weeks, source_reach
    from monitor.series import week_label

    stats = store.stats()
    reach = source_reach(store, start=start, stats=stats)
    rows = []
    for source, entry in sorted(stats["sources"].items()):
        last = entry["last_ingest"]
        data_week = reach[source].last_week
        rows.append({
            "source": source,
            "records": entry["records"],
            "latest_event_date": entry["latest_event_date"].isoformat() if entry["latest_event_date"] else None,
            "last_week_with_data": week_label(data_week) if data_week else None,
            "weeks_behind": lag_weeks(data_week, last_complete) if last_complete else None,
            "last_ingest": last.isoformat() if last else None,
            "weeks_since_ingest": round((_aware(now) - _aware(last)).total_seconds() / _WEEK_SECONDS, 1) if last else None,
        })  # fmt: skip
    return rows


def _optional(store, name: str, *args: Any) -> list[dict[str, Any]] | None:
    """`store.<name>(*args)` where the store has it, else None ("not available")."""
    method = getattr(store, name, None)
    return None if method is None else [dict(row) for row in method(*args)]


def status(config: Config, store, *, now: datetime, runs: int = 10) -> dict[str, Any]:
    """Everything `monitor status` shows.

    runs: how many of the last runs to list, newest first.
    Returns {"database", "runs", "schedule": {cron, timezone, catch_up_weeks, next_run, next_week, owed},
    "sources" (`freshness`; weeks_behind counts from the clock's last complete week), "outbox", "silences"};
    outbox and silences are None when the store does not keep them.
    """
    from monitor.coverage import select_week
    from monitor.schedule import next_run, owed_weeks
    from monitor.series import week_label

    fire = next_run(config, now=now)
    last_complete = select_week(config, week=None, now=now)
    return {
        "database": str(config.db_path),
        "runs": [_run_row(r) for r in reversed(store.runs()[-runs:])],
        "schedule": {
            "cron": config.schedule.cron,
            "timezone": config.schedule.timezone,
            "catch_up_weeks": config.schedule.catch_up_weeks,
            "next_run": fire.isoformat(),
            "next_week": week_label(select_week(config, week=None, now=fire)),
            "owed": [week_label(w) for w in owed_weeks(config, store, now=now)],
        },
        "sources": freshness(store, now=now, last_complete=last_complete, start=config.week.start),
        "outbox": _optional(store, "pending_outbox"),
        "silences": _optional(store, "active_silences", now),
    }
