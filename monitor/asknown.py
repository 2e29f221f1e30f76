"""`monitor backtest --as-known`: each past week replayed with only the data the database had at its run.

A plain backtest judges every past week on today's data: events reported late, and revisions made
since, are in its counts, so it flatters the detector (a surge is "caught" the week it began, with
events nobody had yet). Here week W is judged as the weekly job judged it on the day it ran: on the
incidents first seen by then, with the values they had then, without those deleted by then
(`Store.incident_versions`, from the history kept since schema 10), and with the reporting delays
and nowcasts measured on what was known then. The run of week W is the first time the configured
`[schedule] cron` fires after W ends (Wednesday 06:00 by default).

Compared with the same weeks judged on today's data (`monitor.backtest`), it says:

* **timing**: for each episode of alerts on today's data (consecutive alerted weeks of a series),
  the first run, as known at the time, that alerted one of its weeks (from two weeks before its
  first week to its last; each run re-checks the weeks before it still open to re-judging, as the
  job does): the run of the episode's first week, an earlier run, a later one (by how many weeks)
  or none; and how many weeks some run alerted that today's data does not alert. With the
  nowcast's warnings ("likely surge once reporting completes") counted as a first flag, the same again;
* **nowcasts**: over the replayed series-weeks that had a nowcast, the bias of the count known
  at the time and of the nowcast against today's count, and how often today's count fell in the
  nowcast's 90 % interval.

Pre-aggregated count rows carry no first sighting: they are replayed as they are today.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.config import Config
from monitor.series import WEEKDAYS, build_series, cells_frame, series_matches
from monitor.store import CELL_COLUMNS
from monitor.types import Progress
from monitor.weeks import week_label

#: How many weeks before an episode of today's alerts an alert at the time still counts as catching it early.
EARLY_WEEKS = 2

#: Columns of the as-known detail table, one row per series and replayed week.
AS_KNOWN_COLUMNS: tuple[str, ...] = (
    "series", "week", "week_start", "run_at", "observed_then", "threshold_then", "level_then", "alarm_then",
    "complete_share", "nowcast", "nowcast_low", "nowcast_high", "chance_above", "observed", "level", "alarm",
    "alerted_at", "flagged_at",
)  # fmt: skip


def run_time(config: Config, week: date) -> datetime:
    """When the weekly job runs for `week`: the first time `[schedule] cron` fires after the week ends (UTC)."""
    from monitor.cron import next_fire

    end = datetime.combine(week + timedelta(days=7), datetime.min.time(), tzinfo=timezone.utc)
    return next_fire(config.schedule.cron, config.schedule.timezone, end)


def cells_as_known(versions: pd.DataFrame, at: datetime, *, week_start: str = "monday") -> pd.DataFrame:
    """The weekly incident cells (`Store.incident_cells`' columns) of the versions known at `at`."""
    moment = at.isoformat()
    known = versions[(versions["known_from"] <= moment) & ((versions["known_to"] == "") | (versions["known_to"] > moment))]
    days = pd.to_datetime(known["event_date"].str[:10], format="%Y-%m-%d")
    back = (days.dt.weekday - WEEKDAYS.index(week_start)) % 7
    frame = known.assign(date=days - pd.to_timedelta(back, unit="D"), events=1)
    cells = frame.groupby(["source", "date", *CELL_COLUMNS], as_index=False, sort=False).agg(
        events=("events", "sum"), fatalities=("fatalities", "sum")
    )
    cells["events"] = cells["events"].astype("int64")
    return cells[["source", "date", *CELL_COLUMNS, "events", "fatalities"]]


@dataclass(frozen=True)
class AsKnown:
    """The replay as known at the time, beside today's verdicts of the same weeks."""

    detail: pd.DataFrame  # AS_KNOWN_COLUMNS
    timing: dict  # see `timing`
    timing_with_nowcast: dict
    nowcast: dict  # see `nowcast_accuracy`
    before_first_ingest: int  # replayed weeks whose run came before anything was ingested (nothing known)


def replay(
    config: Config,
    store,
    *,
    today: pd.DataFrame,
    first_week: date,
    last_week: date,
    series_filter: str | None = None,
    detector: str | None = None,
    params: dict | None = None,
    progress: Progress | None = None,
) -> AsKnown:
    """Judge each week of `first_week`..`last_week` on the data known at its run (see the module docstring).

    today: the plain backtest's detail (`monitor.backtest.Backtest.detail`) of the same weeks and series.
    progress: told ("weeks as known", done, total) after each week.
    """
    from monitor.alerts.lifecycle import REJUDGE_WEEKS

    versions = store.incident_versions(end=last_week + timedelta(days=6))
    sightings = store.sightings(since=first_week - timedelta(weeks=52))
    counts = store.counts_frame(end=last_week + timedelta(days=6))
    first_sight = versions["known_from"][versions["known_from"] != ""].min() if len(versions) else None
    weeks = [first_week + timedelta(weeks=k) for k in range((last_week - first_week).days // 7 + 1)]
    # each run re-checks the weeks before it still open to re-judging (monitor.alerts.lifecycle), as the job does
    recheck = min(config.report.lookback_weeks, REJUDGE_WEEKS - 1)
    rows, before = [], 0
    alerted: dict[tuple[str, date], date] = {}  # (series, week) -> the first run that alerted it
    flagged: dict[tuple[str, date], date] = {}  # the same, counting the nowcast's likely surges
    for done, week in enumerate(weeks, start=1):
        at = run_time(config, week)
        if not isinstance(first_sight, str) or at.isoformat() < first_sight:
            before += 1  # nothing was in the database yet: the job had nothing to judge
        else:
            rows += _one_run(config, versions, counts, sightings, week=week, at=at, recheck=recheck, series_filter=series_filter,
                             detector=detector, params=params, alerted=alerted, flagged=flagged)  # fmt: skip
        if progress:
            progress("weeks as known", done, len(weeks))
    then = pd.DataFrame(rows, columns=[c for c in AS_KNOWN_COLUMNS if c not in ("week", "observed", "level", "alarm", "alerted_at", "flagged_at")])
    now = today[["series", "week_start", "observed", "level", "alarm"]]
    detail = then.merge(now, on=["series", "week_start"], how="outer")  # a series absent then, or gone now: one side empty
    detail["week"] = [week_label(d) for d in detail["week_start"]]
    keys = list(zip(detail["series"], detail["week_start"]))
    detail["alerted_at"] = [week_label(alerted[k]) if k in alerted else "" for k in keys]
    detail["flagged_at"] = [week_label(flagged[k]) if k in flagged else "" for k in keys]
    detail = detail[list(AS_KNOWN_COLUMNS)].sort_values(["series", "week_start"], kind="stable", ignore_index=True)
    return AsKnown(
        detail=detail,
        timing=timing(detail, first_run=alerted),
        timing_with_nowcast=timing(detail, first_run=flagged),
        nowcast=nowcast_accuracy(detail),
        before_first_ingest=before,
    )


def _one_run(config: Config, versions, counts, sightings, *, week: date, at: datetime, recheck: int, series_filter, detector,
             params, alerted: dict, flagged: dict) -> list[dict]:  # fmt: skip
    """The run of `week` as known at `at`: its rows of `week`; the weeks it alerted (or flagged) recorded in
    `alerted` (`flagged`) when no earlier run had."""
    from monitor.delays import nowcasts_from
    from monitor.detection import detect_counts, nowcast_levels, resolve_params
    from monitor.severity import assign_levels

    records = cells_frame(cells_as_known(versions, at, week_start=config.week.start), counts)
    series = build_series(records, config.series, week=week, week_start=config.week.start, detector_of=config.detector_params)
    series = [s for s in series if series_matches(series_filter or "", s)]
    if not series:
        return []
    frames = []
    for s in series:
        name, model = resolve_params(config, s, detector=detector, overrides=params)
        frames.append(detect_counts(s.counts, lookback=recheck, detector=name, params=model,
                                    fallback_params=config.fallback_params(), min_count=s.min_count))  # fmt: skip
    levelled = assign_levels(pd.concat(frames, ignore_index=True), config.detection.severity, by="week_start")
    # the delays and nowcasts of that run: on the events first seen by then
    casts, _ = nowcasts_from([r for r in sightings if r[1] and r[1] <= at.isoformat()], series, week=week,
                             week_start=config.week.start)  # fmt: skip
    out, offset = [], 0
    for s, frame in zip(series, frames):
        part = levelled.iloc[offset : offset + len(frame)].reset_index(drop=True)
        offset += len(frame)
        part = nowcast_levels(part, casts.get(s.key, {}), likely=config.detection.nowcast_likely)
        for row in part.to_dict("records"):
            judged = pd.Timestamp(row["week_start"]).date()
            chance = _float(row.get("chance_above"))
            if not pd.isna(row["alarm"]) and bool(row["alarm"]):
                alerted.setdefault((s.key, judged), week)
                flagged.setdefault((s.key, judged), week)
            elif math.isfinite(chance) and chance >= config.detection.nowcast_likely:
                flagged.setdefault((s.key, judged), week)
        row = part.iloc[-1]
        out.append({
            "series": s.key, "week_start": week, "run_at": at.strftime("%Y-%m-%d %H:%M"),
            "observed_then": float(row["count"]), "threshold_then": _float(row.get("upperbound")),
            "level_then": str(row.get("level") or ""), "alarm_then": None if pd.isna(row["alarm"]) else bool(row["alarm"]),
            "complete_share": _float(row.get("complete_share")), "nowcast": _float(row.get("nowcast")),
            "nowcast_low": _float(row.get("nowcast_low")), "nowcast_high": _float(row.get("nowcast_high")),
            "chance_above": _float(row.get("chance_above")),
        })  # fmt: skip
    return out


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _alerted(values: pd.Series) -> np.ndarray:
    return np.array([bool(v) if v is not None and not pd.isna(v) else False for v in values], dtype=bool)


def timing(detail: pd.DataFrame, *, first_run: dict[tuple[str, date], date]) -> dict:
    """When today's alert episodes were first flagged at the time (see the module docstring): episodes,
    same, earlier, later, missed, mean_weeks_late (of the later ones), and unconfirmed: weeks flagged at
    the time, by any run, that today's data does not alert (outside every episode's window).

    first_run: (series, week) -> the first run (its week) that flagged that week, re-judging included.
    """
    out = {"episodes": 0, "same": 0, "earlier": 0, "later": 0, "missed": 0, "unconfirmed": 0}
    late: list[int] = []
    flags_now = _alerted(detail["alarm"])
    for key, idx in detail.groupby("series", sort=False).indices.items():
        starts = list(detail["week_start"].iloc[idx])
        runs = [first_run.get((key, w)) for w in starts]
        now = flags_now[idx]
        covered = np.zeros(len(idx), dtype=bool)
        k = 0
        while k < len(idx):
            if not now[k]:
                k += 1
                continue
            end = k
            while end + 1 < len(idx) and now[end + 1]:
                end += 1
            lo = max(0, k - EARLY_WEEKS)
            covered[lo : end + 1] = True
            found = [r for r in runs[lo : end + 1] if r is not None]
            out["episodes"] += 1
            if not found:
                out["missed"] += 1
            else:
                lag = (min(found) - starts[k]).days // 7
                out["same" if lag == 0 else "earlier" if lag < 0 else "later"] += 1
                if lag > 0:
                    late.append(lag)
            k = end + 1
        out["unconfirmed"] += sum(1 for i, r in enumerate(runs) if r is not None and not covered[i])
    out["mean_weeks_late"] = round(float(np.mean(late)), 2) if late else 0.0
    return out


def nowcast_accuracy(detail: pd.DataFrame, *, level: float = 0.9) -> dict:
    """Over the series-weeks that had a nowcast at the time: their number, the mean error (bias) of the
    count known then and of the nowcast against today's count, their mean absolute errors, and the share
    of today's counts inside the nowcast's interval (nominal `level`)."""
    rows = detail[np.isfinite(detail["nowcast"].to_numpy(dtype=float)) & detail["observed"].notna()]
    if rows.empty:
        return {"weeks": 0}
    final = rows["observed"].to_numpy(dtype=float)
    raw, cast = rows["observed_then"].to_numpy(dtype=float), rows["nowcast"].to_numpy(dtype=float)
    inside = (rows["nowcast_low"].to_numpy(dtype=float) <= final) & (final <= rows["nowcast_high"].to_numpy(dtype=float))
    return {
        "weeks": len(rows),
        "raw_bias": round(float(np.mean(raw - final)), 3),
        "nowcast_bias": round(float(np.mean(cast - final)), 3),
        "raw_mae": round(float(np.mean(np.abs(raw - final))), 3),
        "nowcast_mae": round(float(np.mean(np.abs(cast - final))), 3),
        "coverage": round(float(np.mean(inside)), 3),
        "level": level,
    }


def summary_lines(result: AsKnown) -> list[str]:
    """A few sentences for `monitor backtest --as-known`."""
    t, w, n = result.timing, result.timing_with_nowcast, result.nowcast
    lines = []
    if result.before_first_ingest:
        lines.append(f"{result.before_first_ingest} replayed weeks ran before anything was ingested: nothing was known then "
                     "(a database loaded in one go has no earlier vintages; ingest each delivery as it comes).")  # fmt: skip
    lines.append(
        f"As known at the time: of {t['episodes']} alert episodes on today's data, {t['same']} were alerted the same week, "
        f"{t['earlier']} earlier, {t['later']} later (by {t['mean_weeks_late']:g} weeks on average) and {t['missed']} never; "
        f"{t['unconfirmed']} weeks alerted at the time that today's data does not alert."
    )
    lines.append(
        f"Counting the nowcast's warnings (likely surge once reporting completes) as a first flag: {w['same']} the same week, "
        f"{w['earlier']} earlier, {w['later']} later (by {w['mean_weeks_late']:g} weeks on average), {w['missed']} never; "
        f"{w['unconfirmed']} flagged weeks that today's data does not alert."
    )
    if n.get("weeks"):
        lines.append(
            f"Nowcasts: {n['weeks']} series-weeks still filling at their run. Against today's counts, the count known then was "
            f"off by {n['raw_bias']:+g} on average (mean absolute error {n['raw_mae']:g}), the nowcast by {n['nowcast_bias']:+g} "
            f"({n['nowcast_mae']:g}); today's count fell inside the nowcast's 90% interval in {n['coverage']:.0%} of them."
        )
    else:
        lines.append("Nowcasts: none of the replayed weeks had one (delays are measured over weekly deliveries).")
    return lines



def write_as_known(result: AsKnown, out_dir: Path, markdown: Path) -> None:
    """as_known_detail.csv and as_known_summary.json in `out_dir`, and an "As known at the time" section
    at the end of the backtest's Markdown (`markdown`)."""
    from monitor.atomic import atomic_write
    from monitor.backtest import csv_text

    detail = result.detail.assign(
        alarm=result.detail["alarm"].map(_flag), alarm_then=result.detail["alarm_then"].map(_flag),
    )  # fmt: skip
    atomic_write(out_dir / "as_known_detail.csv", csv_text(detail))
    summary = {"timing": result.timing, "timing_with_nowcast": result.timing_with_nowcast, "nowcast": result.nowcast,
               "before_first_ingest": result.before_first_ingest}  # fmt: skip
    atomic_write(out_dir / "as_known_summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    text = markdown.read_text(encoding="utf-8")
    section = ["", "## As known at the time", "", *summary_lines(result), "",
               "Each week judged again on the data the database had when its run came (the first time the schedule fired "
               "after the week ended): incidents first seen by then, with the values they had then; "
               "`as_known_detail.csv` has every series-week, then and today."]  # fmt: skip
    atomic_write(markdown, text + "\n".join(section) + "\n")


def _flag(value) -> str:
    return "" if value is None or pd.isna(value) else str(int(bool(value)))
