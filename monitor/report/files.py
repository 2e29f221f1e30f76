"""The report on disk: `<folder>/<week>/report.md` and `report.html`, its charts and map, `summary.json`, and
`index.md` / `index.html` listing the weeks.

Every file is written to a temporary name, flushed to disk and renamed, so a crash never leaves
half a report; the next report of the folder removes the temporary files a killed run left.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from monitor import faults
from monitor.atomic import atomic_write, remove_stale_temps
from monitor.errors import ReportError
from monitor.parallel import pmap
from monitor.report.html import render_html
from monitor.report.markdown import md_escape, md_table, render_markdown
from monitor.series import series_name
from monitor.types import Annotation, ReportFiles, RunResult

REPORT_NAME = "report.md"
HTML_NAME = "report.html"
INDEX_HTML_NAME = "index.html"
SUMMARY_NAME = "summary.json"
INDEX_NAME = "index.md"
CHARTS_DIR = "charts"
_WEEK_FOLDER = re.compile(r"^\d{4}-W\d{2}$")


def slugify(key: str) -> str:
    """A file-name-safe slug of a series key: 'is_attacks/admin1=Deir ez Zor' → 'is_attacks-admin1-deir-ez-zor'."""
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9_]+", "-", ascii_key.lower()).strip("-")
    return slug[:80] or "series"


def chart_slugs(keys: Iterable[str]) -> dict[str, str]:
    """Unique slugs for series keys; a short hash settles collisions (e.g. non-Latin names)."""
    import hashlib

    out: dict[str, str] = {}
    used: set[str] = set()
    for key in keys:
        slug = slugify(key)
        if slug in used or slug == "series":
            slug = f"{slug}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:8]}"
        used.add(slug)
        out[key] = slug
    return out


# tables


def _annotations(result: RunResult, settings: Any) -> list[Annotation]:
    seen: dict[tuple[date, str], Annotation] = {}
    for a in [*getattr(settings, "annotations", ()), *result.annotations]:
        seen.setdefault((a.date, a.label), a)
    return sorted(seen.values(), key=lambda a: (a.date, a.label))


def _summary(result: RunResult) -> dict[str, Any]:
    flagged = result.flagged
    return {
        "week": result.week,
        "week_start": result.week_start.isoformat(),
        "week_end": result.week_end.isoformat(),
        "series_checked": len(result.results),
        "flagged": [r.series.key for r in flagged],
        "flagged_names": [series_name(r) for r in flagged],
        "new": [r.series.key for r in flagged if r.status == "new"],
        "warnings": [r.series.key for r in result.warnings],
        "undecided": sum(1 for r in result.results if r.detection.alarm is None),
        "multiple_testing": result.false_alarms.multiple_testing if result.false_alarms is not None else "",
        "expected_false_alerts": round(result.false_alarms.expected_alerts, 4) if result.false_alarms is not None else None,
        # nominal (from alpha) unless a stored `monitor backtest` of this configuration measured it (issue 11, item 4)
        "false_alerts_basis": "measured" if result.measured_rate is not None else "nominal",
        "measured_false_alerts_a_week": round(result.measured_rate.per_week(len(result.results)), 4)
        if result.measured_rate is not None else None,
        "measured_false_alerts_per_100_series_weeks": result.measured_rate.outside_per100
        if result.measured_rate is not None else None,
        "synthetic": result.synthetic,
        "records_total": result.records_total,
    }


#: Charts below which a report is drawn in this process only (a worker takes about two seconds to start).
PARALLEL_MIN_CHARTS = 12


def _plot(job: tuple) -> Path:
    """One chart, in a worker process."""
    from monitor.report.plots import plot_series

    result, week_start, annotations, path = job
    return plot_series(result, week_start=week_start, annotations=annotations, path=path)


def write_report(result: RunResult, *, settings: Any, workers: int = 1) -> ReportFiles:
    """Write `<folder>/<week>/report.md`, one chart per flagged series, `summary.json` and `<folder>/index.md`.

    Every file is written to a temp name and renamed; charts of series no longer flagged
    are removed, so a re-run leaves exactly what the report links to.
    settings: report settings; reads `folder`, `history_weeks`, `max_incidents`, `note_chars`, `annotations`.
    workers: processes that may draw the charts of a large report (see monitor.parallel).
    """
    root = Path(settings.folder)
    try:
        return _write_report(result, settings=settings, root=root, workers=workers)
    except OSError as exc:  # a folder that is a file, read-only, full, or not ours
        where = f": {exc.filename}" if exc.filename else ""
        raise ReportError(
            f"{root}: cannot write the report ({exc.strerror or exc}{where}); set report.folder to a folder this user "
            "can write to, or fix its permissions"
        ) from None


def _write_report(result: RunResult, *, settings: Any, root: Path, workers: int) -> ReportFiles:
    from monitor.report.plots import (
        plot_series,  # matplotlib is loaded only when charts are drawn
    )

    folder = root / result.week
    charts_dir = folder / CHARTS_DIR
    flagged = result.flagged
    slugs = chart_slugs(r.series.key for r in flagged)
    annotations = _annotations(result, settings)
    history_weeks = int(getattr(settings, "history_weeks", 156))
    for stale in (root, folder, charts_dir):  # what a run killed mid-write left behind
        remove_stale_temps(stale)
    jobs = [
        (replace(r, history=r.history.tail(history_weeks).reset_index(drop=True)), result.week_start, annotations,
         charts_dir / f"{slugs[r.series.key]}.png")
        for r in flagged
    ]  # fmt: skip
    if workers > 1 and len(jobs) >= PARALLEL_MIN_CHARTS:
        drawn = pmap(_plot, jobs, workers=workers)
    else:
        drawn = []
        for r, week, notes, path in jobs:
            drawn.append(plot_series(r, week_start=week, annotations=notes, path=path))
            faults.point("run.report.chart")
    charts: dict[str, Path] = {r.series.key: path for r, path in zip(flagged, drawn)}
    if charts_dir.is_dir():
        keep = {p.name for p in charts.values()}
        for stale in charts_dir.glob("*.png"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
    relative = {key: f"{CHARTS_DIR}/{path.name}" for key, path in charts.items()}
    map_path, unjoined, map_problem = _draw_map(result, settings, folder)
    text = render_markdown(result, charts=relative, settings=settings, map_file=MAP_NAME if map_path else "", unjoined=unjoined,
                           map_problem=map_problem)  # fmt: skip
    markdown = atomic_write(folder / REPORT_NAME, text)
    page = atomic_write(folder / HTML_NAME, render_html(text, folder=folder))  # after the charts and map it inlines
    atomic_write(folder / SUMMARY_NAME, json.dumps(_summary(result), ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    faults.point("run.report.before-index")
    write_index(root)
    share(root, folder, mode=file_mode_setting(settings))
    return ReportFiles(folder=folder, markdown=markdown, charts=charts, map=map_path, html=page)


def file_mode_setting(settings: Any) -> int:
    """`report.file_mode` as a number (0644 by default)."""
    return int(str(getattr(settings, "file_mode", "0644")), 8)


def share(root: Path, folder: Path, *, mode: int) -> None:
    """Give the week's report files `mode` (`report.file_mode`), and its folders the same with search (x) wherever
    read is given, so the team can open them whatever the umask of the job (cron's is often 077). The report folder
    itself is changed only when this user owns it and only to add rights, never to take them away."""
    dir_mode = mode | ((mode & 0o444) >> 2)
    for path in [folder / REPORT_NAME, folder / HTML_NAME, folder / SUMMARY_NAME, folder / MAP_NAME,
                 *sorted((folder / CHARTS_DIR).glob("*.png")), root / INDEX_NAME, root / INDEX_HTML_NAME]:  # fmt: skip
        if path.is_file():
            path.chmod(mode)
    for path in (folder, folder / CHARTS_DIR):
        if path.is_dir():
            path.chmod(dir_mode)
    try:
        if root.stat().st_uid == os.getuid():
            root.chmod(root.stat().st_mode & 0o7777 | dir_mode)
    except OSError:  # not ours to change: the files inside are still readable to whoever may enter
        pass


MAP_NAME = "map.png"


def _draw_map(result: RunResult, settings: Any, folder: Path) -> tuple[Path | None, list[str], str]:
    """The week's map (monitor.report.maps): its path, the admin1 names that joined no area, and why the boundaries
    could not be used ("" if they could, or none are configured); (None, [], "") when the run has no events to place."""
    from monitor.report.maps import admin1_levels, draw_map, read_boundaries

    events = result.map_events
    path = folder / MAP_NAME
    if events is None or (events.empty and not any("admin1" in dict(r.series.labels) for r in result.results)):
        path.unlink(missing_ok=True)
        return None, [], ""
    boundaries = str(getattr(settings, "boundaries", "") or "")
    areas, trouble = None, ""
    if boundaries:
        try:
            areas = read_boundaries(Path(boundaries), name_field=settings.boundary_name_field, pcode_field=settings.boundary_pcode_field)
        except ReportError as exc:  # the map is not worth a report (or an alert): bubbles, and the problem said
            trouble = str(exc)
    missing = draw_map(events, admin1_levels(result.results, result.no_data), week=result.week, path=path, areas=areas)
    return path, missing, trouble


def write_index(root: Path) -> Path:
    """(Re)write `<root>/index.md`: every report folder, newest first, with its flagged series."""
    root = Path(root)
    rows = []
    folders = sorted((p for p in root.iterdir() if p.is_dir() and _WEEK_FOLDER.match(p.name) and (p / REPORT_NAME).is_file()),
                     key=lambda p: p.name, reverse=True) if root.is_dir() else []
    for path in folders:
        summary = _read_summary(path / SUMMARY_NAME)
        flagged = summary.get("flagged") or []
        names = summary.get("flagged_names") or flagged
        shown = ", ".join(md_escape(n) for n in names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        dates = f"{summary['week_start']} – {summary['week_end']}" if "week_start" in summary and "week_end" in summary else ""
        week = md_escape(path.name) + (" (synthetic)" if summary.get("synthetic") else "")
        rows.append(
            [
                f"[{week}]({quote(path.name)}/{REPORT_NAME})",
                md_escape(dates),
                str(summary.get("series_checked", "?")),
                str(len(flagged)) if "flagged" in summary else "?",
                str(len(summary.get("new") or [])) if "new" in summary else "?",
                shown,
            ]
        )
    lines = ["# Incident monitor — weekly reports", "", "Newest first. Each report lists the flagged series, charts and the incidents behind them.", ""]
    if rows:
        lines += md_table(["Week", "Dates", "Series checked", "Flagged", "New", "Flagged series"], rows, "llrrrl")
    else:
        lines.append("No reports yet.")
    text = "\n".join(lines) + "\n"
    atomic_write(root / INDEX_HTML_NAME, render_html(text, folder=root))
    return atomic_write(root / INDEX_NAME, text)


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = ["md_escape", "render_markdown", "write_report", "write_index", "slugify", "series_name", "atomic_write",
           "remove_stale_temps"]
