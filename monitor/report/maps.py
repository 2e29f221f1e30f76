"""The report's map (issue 16, item 1): where it is rising, at a glance, offline.

Events of the last four weeks are drawn as points sized by fatalities, over the admin1 areas of the
countries monitored, each area coloured by the highest level of its series this week: alert,
warning, quiet, or no data. Boundaries come from a file the user configures (`report.boundaries`:
GeoJSON, or an ESRI shapefile read with pyshp), joined on the admin1 name (compared without case,
accents, spacing and suffixes such as "Governorate") or, when `report.boundary_pcode_field` is set
and the data's admin1 is a p-code, on the p-code; the admin1 names of the data that joined no area
are listed under the map. Without a boundaries file, each admin1 is a bubble at the centroid of its
events, coloured the same way. No tiles, no downloads: matplotlib draws everything.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.errors import ReportError

#: Colours of the levels (those of the charts: alarm red, warning purple).
LEVEL_COLOURS = {"alert": "#d62728", "warning": "#cc79a7", "quiet": "#c7d9e8", "no data": "#eeeeee", "not monitored": "#ffffff"}
LEVEL_ORDER = ("alert", "warning", "quiet", "no data", "not monitored")
#: Attribute names tried, in order, for the admin1 name when `report.boundary_name_field` is not set.
NAME_FIELDS = ("ADM1_EN", "admin1Name_en", "NAME_1", "shapeName", "ADM1_NAME", "name", "NAME")
_SUFFIXES = ("governorate", "province", "region", "state", "district", "muhafazat", "oblast", "department")


def normalise(name: str) -> str:
    """An admin1 name for comparison: no accents, case, punctuation, spacing or administrative suffix
    ('Deir ez-Zor Governorate', 'Deir ez Zor', 'DEIR EZ ZOR' are one)."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9]+", " ", text).strip()
    for suffix in _SUFFIXES:
        if text.endswith(" " + suffix):
            text = text[: -len(suffix) - 1].strip()
    # a name of no Latin letters (e.g. Arabic) is compared as written, without case and spacing
    return text.replace(" ", "") or "".join(str(name).casefold().split())


@dataclass(frozen=True)
class Area:
    name: str
    pcode: str
    rings: tuple[np.ndarray, ...]  # (n, 2) lon/lat arrays; polygons' exteriors and holes


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _rings_of(geometry: Mapping) -> list[np.ndarray]:
    """A GeoJSON (Multi)Polygon's rings, each polygon's exterior counter-clockwise and its holes clockwise, so a
    hole stays a hole whatever the file's winding (matplotlib fills by the nonzero rule)."""
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    polygons = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
    out = []
    try:
        for polygon in polygons:
            for i, ring in enumerate(polygon):
                ring = np.asarray(ring, dtype=float)
                if ring.ndim != 2 or len(ring) < 3:
                    continue
                ring = ring[:, :2]
                if (_signed_area(ring) > 0) != (i == 0):  # exterior counter-clockwise, holes clockwise
                    ring = ring[::-1]
                out.append(ring)
    except (TypeError, ValueError):
        return []
    return out


def read_boundaries(path: Path, *, name_field: str = "", pcode_field: str = "") -> list[Area]:
    """The admin1 areas of a GeoJSON (FeatureCollection) or shapefile (.shp beside its .dbf); ReportError naming
    the file and the fix when it cannot be read or has no name field."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".shp":
            import shapefile  # pyshp

            with shapefile.Reader(str(path)) as shp:
                fields = [f[0] for f in shp.fields[1:]]
                records = [(dict(zip(fields, rec.record)), rec.shape) for rec in shp.iterShapeRecords()]
            features = [(props, [np.asarray(shape.points[a:b], dtype=float)
                                 for a, b in zip(shape.parts, [*shape.parts[1:], len(shape.points)])]) for props, shape in records]  # fmt: skip
        else:
            raw = json.loads(path.read_text(encoding="utf-8"))
            items = raw.get("features", []) if isinstance(raw, dict) else []
            features = [(f.get("properties") or {}, _rings_of(f.get("geometry") or {})) for f in items if isinstance(f, dict)]
    except (OSError, ValueError, KeyError) as exc:
        raise ReportError(f"{path}: cannot read the admin1 boundaries ({type(exc).__name__}: {exc}); report.boundaries "
                          "takes a GeoJSON file or an ESRI shapefile (.shp with its .dbf)") from None  # fmt: skip
    except Exception as exc:  # pyshp's own errors (a .shp without its .dbf, a broken file)
        raise ReportError(f"{path}: cannot read the admin1 boundaries ({type(exc).__name__}: {exc}); report.boundaries "
                          "takes a GeoJSON file or an ESRI shapefile (.shp with its .dbf)") from None  # fmt: skip
    features = [(props or {}, rings) for props, rings in features if rings]
    if not features:
        raise ReportError(f"{path}: no polygons in the admin1 boundaries file (expected Polygon or MultiPolygon areas "
                          "with an admin1 name)")  # fmt: skip
    keys = set().union(*(props.keys() for props, _ in features))
    field = name_field or next((f for f in NAME_FIELDS if f in keys), "")
    if not field or field not in keys:
        raise ReportError(f"{path}: no admin1 name field{' ' + repr(name_field) if name_field else ''} in the boundaries "
                          f"(fields: {', '.join(sorted(keys))}); set report.boundary_name_field")  # fmt: skip
    return [Area(str(props.get(field, "")), str(props.get(pcode_field, "")) if pcode_field else "", tuple(rings))
            for props, rings in features if rings]  # fmt: skip


def admin1_levels(results: Iterable, no_data: Mapping[str, str]) -> dict[str, str]:
    """admin1 name -> the highest level of the series cut by it this week (alert, warning, quiet, no data)."""
    out: dict[str, str] = {}
    for r in results:
        labels = dict(r.series.labels)
        if "admin1" not in labels:
            continue
        d = r.detection
        level = ("no data" if r.series.key in no_data or d.alarm is None else
                 "alert" if d.alarm else "warning" if d.level == "warning" else "quiet")  # fmt: skip
        name = labels["admin1"]
        if name not in out or LEVEL_ORDER.index(level) < LEVEL_ORDER.index(out[name]):
            out[name] = level
    return out


def join(areas: Sequence[Area], levels: Mapping[str, str]) -> tuple[dict[int, str], list[str]]:
    """Area index -> level, and the admin1 names of the data that joined no area (by p-code, then by name)."""
    by_pcode = {a.pcode.lower(): i for i, a in enumerate(areas) if a.pcode}
    by_name = {normalise(a.name): i for i, a in enumerate(areas)}
    joined: dict[int, str] = {}
    missing = []
    for name, level in levels.items():
        i = by_pcode.get(name.strip().lower(), by_name.get(normalise(name)))
        if i is None:
            missing.append(name)
        else:
            joined[i] = level if i not in joined or LEVEL_ORDER.index(level) < LEVEL_ORDER.index(joined[i]) else joined[i]
    return joined, sorted(missing)


def draw_map(events: pd.DataFrame, levels: Mapping[str, str], *, week: str, path: Path, areas: Sequence[Area] | None = None) -> list[str]:
    """Write the map PNG (atomically); returns the admin1 names that joined no area ([] without boundaries)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, PathPatch
    from matplotlib.path import Path as MplPath

    from monitor.atomic import atomic_write

    fig = Figure(figsize=(9, 7.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    points = events.dropna(subset=["latitude", "longitude"])
    missing: list[str] = []
    if areas:
        joined, missing = join(areas, levels)
        for i, area in enumerate(areas):
            verts = np.concatenate(area.rings)
            codes = np.concatenate([[MplPath.MOVETO] + [MplPath.LINETO] * (len(r) - 2) + [MplPath.CLOSEPOLY] for r in area.rings])
            colour = LEVEL_COLOURS[joined[i]] if i in joined else "#ffffff"
            ax.add_patch(PathPatch(MplPath(verts, codes), facecolor=colour, edgecolor="#777777", lw=0.6, zorder=1))
            if i in joined and joined[i] in ("alert", "warning"):
                ring = max(area.rings, key=len)
                ax.text(float(ring[:, 0].mean()), float(ring[:, 1].mean()), area.name, fontsize=8, ha="center", va="center",
                        zorder=4, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})  # fmt: skip
        ax.autoscale_view()
    else:  # no boundaries configured: a bubble at the centroid of each admin1's events
        for name, group in points.groupby("admin1"):
            level = levels.get(name, "not monitored")
            x, y = float(group["longitude"].mean()), float(group["latitude"].mean())
            ax.scatter([x], [y], s=400 + 40 * len(group), color=LEVEL_COLOURS[level], alpha=0.55, edgecolor="#555555", zorder=1)
            if level in ("alert", "warning"):
                ax.text(x, y, name, fontsize=8, ha="center", va="center", zorder=4)
    if len(points):
        sizes = 12 + 14 * np.sqrt(points["fatalities"].clip(lower=0).to_numpy(dtype=float))
        ax.scatter(points["longitude"], points["latitude"], s=sizes, facecolor="#222222", edgecolor="white", lw=0.4,
                   alpha=0.65, zorder=3)  # fmt: skip
    ax.set_aspect(1 / max(math.cos(math.radians(float(points["latitude"].mean()) if len(points) else 0.0)), 0.2))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"Events of the four weeks to {week}, and each admin1's level this week", loc="left", fontsize=11)
    drawn = set(levels.values())
    if not areas and len(points) and set(points["admin1"]) - set(levels):
        drawn.add("not monitored")  # an admin1 with events but no series of its own
    shown = [lv for lv in LEVEL_ORDER if lv in drawn]
    handles = [Patch(facecolor=LEVEL_COLOURS[lv], edgecolor="#777777", label=lv) for lv in shown]
    if len(points):
        handles += [Line2D([], [], marker="o", ls="", color="#222222", alpha=0.65, markersize=math.sqrt(12 + 14 * math.sqrt(f)),
                           label=f"event, {f} killed") for f in (0, 10, 50)]  # fmt: skip
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    png = io.BytesIO()  # "tight": the legend beside the axes and the axis labels are kept whole
    fig.savefig(png, format="png", dpi=100, metadata={"Software": "incident-monitor"}, bbox_inches="tight", pad_inches=0.2)
    atomic_write(Path(path), png.getvalue())
    return missing
