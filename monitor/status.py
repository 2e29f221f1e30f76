"""`monitor status`: what the weekly job did, what it will do next and how fresh the data is.

One plain dict from the database and the config (dates and times as ISO text; the pending outbox
messages and active silences as the store's typed values, `as_row()` for their columns); cli.py
prints it as tables or JSON.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from monitor.config import Config
from monitor.types import RecordedRun

if TYPE_CHECKING:
    from monitor.store_protocol import Storage

#: Seconds in a week, for "weeks since the last ingest".
_WEEK_SECONDS = 7 * 24 * 3600


def _run_row(run: RecordedRun) -> dict[str, Any]:
    summary = run.summary
    return {
        "week": run.week,
        "started": run.started_at,
        "finished": run.finished_at,
        "status": run.status,
        "series": summary.series,
        "flagged": len(summary.flagged or ()),
        "announced": len(summary.announced or ()),
        "error": summary.problem,
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def freshness(store: Storage, *, now: datetime, last_complete: date | None = None, start: str = "monday") -> list[dict[str, Any]]:
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


def _optional(store: Storage, name: str, *args: Any) -> list[Any] | None:
    """`store.<name>(*args)` where the store has it, else None ("not available"): a store class from before the
    outbox and silences lacks `pending_outbox` and `active_silences`."""
    method = getattr(store, name, None)
    return None if method is None else list(method(*args))


def status(config: Config, store: Storage, *, now: datetime, runs: int = 10) -> dict[str, Any]:
    """Everything `monitor status` shows.

    runs: how many of the last runs to list, newest first.
    Returns {"database", "runs", "schedule": {cron, timezone, catch_up_weeks, next_run, next_week, owed},
    "sources" (`freshness`; weeks_behind counts from the clock's last complete week), "outbox" (OutboxMessage
    list), "silences" (Silence list), "fetches" (the last fetch of each remote [[sources]] entry)}; outbox and
    silences are None when the store does not keep them.
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
        "fetches": _fetches(config, store),
    }


def _fetches(config: Config, store: Storage) -> list[dict[str, Any]]:
    """Each remote [[sources]] entry's last fetch: when, its outcome and what it brought (monitor.fetch.last_fetches)."""
    from monitor.fetch import last_fetches, remote_sources

    if not remote_sources(config) or getattr(store, "fetches", None) is None:
        return []
    return last_fetches(store, config)
