"""The report on disk: `<folder>/<week>/report.md`, its charts, `summary.json` and `index.md`.

Every file is written to a temporary name and renamed, so a crash never leaves half a report.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from monitor.errors import ReportError
from monitor.report.markdown import md_escape, md_table, render_markdown, series_name
from monitor.types import Annotation, ReportFiles, RunResult

REPORT_NAME = "report.md"
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


# ---------------------------------------------------------------------------- tables


def atomic_write(path: Path, data: bytes | str) -> Path:
    """Write `data` to a temp file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
        "synthetic": result.synthetic,
        "records_total": result.records_total,
    }


def write_report(result: RunResult, *, settings: Any) -> ReportFiles:
    """Write `<folder>/<week>/report.md`, one chart per flagged series, `summary.json` and `<folder>/index.md`.

    Every file is written to a temp name and renamed; charts of series no longer flagged
    are removed, so a re-run leaves exactly what the report links to.
    settings: report settings; reads `folder`, `history_weeks`, `max_incidents`, `note_chars`, `annotations`.
    """
    root = Path(settings.folder)
    try:
        return _write_report(result, settings=settings, root=root)
    except OSError as exc:  # a folder that is a file, read-only, full, or not ours
        where = f": {exc.filename}" if exc.filename else ""
        raise ReportError(
            f"{root}: cannot write the report ({exc.strerror or exc}{where}); set report.folder to a folder this user "
            "can write to, or fix its permissions"
        ) from None


def _write_report(result: RunResult, *, settings: Any, root: Path) -> ReportFiles:
    from monitor.report.plots import plot_series  # matplotlib is loaded only when charts are drawn

    folder = root / result.week
    charts_dir = folder / CHARTS_DIR
    flagged = result.flagged
    slugs = chart_slugs(r.series.key for r in flagged)
    annotations = _annotations(result, settings)
    history_weeks = int(getattr(settings, "history_weeks", 156))
    charts: dict[str, Path] = {}
    for r in flagged:
        trimmed = replace(r, history=r.history.tail(history_weeks).reset_index(drop=True))
        path = charts_dir / f"{slugs[r.series.key]}.png"
        charts[r.series.key] = plot_series(trimmed, week_start=result.week_start, annotations=annotations, path=path)
    if charts_dir.is_dir():
        keep = {p.name for p in charts.values()}
        for stale in charts_dir.glob("*.png"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
    relative = {key: f"{CHARTS_DIR}/{path.name}" for key, path in charts.items()}
    markdown = atomic_write(folder / REPORT_NAME, render_markdown(result, charts=relative, settings=settings))
    atomic_write(folder / SUMMARY_NAME, json.dumps(_summary(result), ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    write_index(root)
    return ReportFiles(folder=folder, markdown=markdown, charts=charts)


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
    return atomic_write(root / INDEX_NAME, "\n".join(lines) + "\n")


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = ["md_escape", "render_markdown", "write_report", "write_index", "slugify", "series_name", "atomic_write"]
