"""One PNG per flagged series: weekly bars, expected and threshold steps, alarms, annotations.

With monitor.report.maps, the only module that imports matplotlib. It draws on a bare `Figure` with the Agg canvas
(no pyplot, no global state), so charts can be drawn from any thread or a daemon.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # harmless if already set; the report never needs a display

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from monitor.atomic import atomic_write  # noqa: E402
from monitor.types import Annotation, SeriesResult  # noqa: E402

#: Colours chosen to stay distinct for the common colour-vision deficiencies (Okabe–Ito based).
BAR = "#9bb4cc"
ALARM = "#d62728"
WARNING = "#cc79a7"  # Okabe–Ito reddish purple: the looser warning level
UNDECIDED = "#d9d9d9"
EXPECTED = "#1f4e79"
THRESHOLD = "#e69f00"
CURRENT = "#fff3b0"
ANNOTATION = "#555555"
FALLBACK = "#8c8c8c"
NOWCAST = "#009e73"  # Okabe–Ito bluish green: the final count a week still filling is expected to reach

WIDTH_IN, HEIGHT_IN, DPI = 12.0, 5.0, 100  # 1200 × 500 px
MIN_WEEKS = 104  # the x axis spans at least two years


def plot_series(result: SeriesResult, *, week_start: date, annotations: Sequence[Annotation], path: Path) -> Path:
    """Draw the weekly chart of one series and write it as a PNG (atomically).

    result: the series; `result.history` holds week_start, count, expected, upperbound, alarm.
    week_start: the reported week, highlighted.
    annotations: dated events drawn as vertical lines when they fall inside the chart.
    path: the PNG to write; its folder is created.
    """
    history = result.history
    weeks = pd.to_datetime(history["week_start"]).dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
    counts = pd.to_numeric(history["count"], errors="coerce").to_numpy(dtype=float)
    expected = _floats(history, "expected")
    upper = _floats(history, "upperbound")
    alarm = history["alarm"] if "alarm" in history else pd.Series([pd.NA] * len(history))
    alarmed = np.array([bool(a) if not pd.isna(a) else False for a in alarm], dtype=bool)
    undecided = np.array([pd.isna(a) for a in alarm], dtype=bool)
    warned = history["level"].astype(str).eq("warning").to_numpy() if "level" in history else np.zeros(len(history), dtype=bool)
    # weeks whose baseline learned a new level (farrington-cusum's model "recent"): the expected line
    # is drawn thicker there, so the reader sees where the detector took the escalation as the new normal
    learned = (
        history["model"].fillna("").astype(str).eq("recent").to_numpy() if "model" in history else np.zeros(len(history), dtype=bool)
    )
    # weeks the configured detector lacked history for were checked by the nb-recent fallback:
    # drawn in grey, with hollow markers, so they never pass for the main detector's alarms
    fallback = (
        history["fallback_from"].fillna("").astype(str).ne("").to_numpy()
        if "fallback_from" in history else np.zeros(len(history), dtype=bool)
    )
    fb_expected, fb_upper = np.where(fallback, expected, np.nan), np.where(fallback, upper, np.nan)
    expected, upper = np.where(fallback, np.nan, expected), np.where(fallback, np.nan, upper)
    fb_alarmed, alarmed = alarmed & fallback, alarmed & ~fallback
    warned = warned & ~fallback
    casts, cast_low, cast_high = _floats(history, "nowcast"), _floats(history, "nowcast_low"), _floats(history, "nowcast_high")
    if not np.isfinite(casts).any() and math.isfinite(result.detection.nowcast) and len(weeks):  # a history without the columns
        at = weeks == np.datetime64(week_start, "D")
        casts[at], cast_low[at], cast_high[at] = result.detection.nowcast, result.detection.nowcast_low, result.detection.nowcast_high

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)

    week = np.datetime64(week_start, "D")
    seven = np.timedelta64(7, "D")
    ax.axvspan(week, week + seven, color=CURRENT, zorder=0, lw=0)

    colours = np.where(alarmed, ALARM, np.where(warned, WARNING, np.where(undecided, UNDECIDED, BAR)))
    if len(weeks):
        ax.bar(weeks, counts, width=6, align="edge", color=colours, edgecolor="none", zorder=2)
        current = weeks == week
        if current.any():  # a dark outline makes the reported week findable even when it is not alarmed
            ax.bar(weeks[current], counts[current], width=6, align="edge", fill=False, edgecolor="black", lw=1.5, zorder=3)
        # steps span each bar's week: repeat the last value one week further so the final step is drawn
        x_steps = np.append(weeks, weeks[-1] + seven)
        ax.step(x_steps, np.append(expected, expected[-1:]), where="post", color=EXPECTED, lw=1.8, zorder=4)
        ax.step(x_steps, np.append(upper, upper[-1:]), where="post", color=THRESHOLD, lw=1.6, ls="--", zorder=4)
        if learned.any():
            level = np.where(learned & ~fallback, expected, np.nan)
            ax.step(x_steps, np.append(level, level[-1:]), where="post", color=EXPECTED, lw=4.0, alpha=0.45, zorder=4)
        if fallback.any():
            ax.step(x_steps, np.append(fb_expected, fb_expected[-1:]), where="post", color=FALLBACK, lw=1.0, zorder=4)
            ax.step(x_steps, np.append(fb_upper, fb_upper[-1:]), where="post", color=FALLBACK, lw=1.0, ls="--", zorder=4)
        top = np.nanmax(np.concatenate([counts, upper[np.isfinite(upper)], [1.0]]))
        marks = alarmed & np.isfinite(counts)
        ax.plot(weeks[marks] + np.timedelta64(3, "D"), counts[marks] + 0.04 * top, "v", color=ALARM, ms=6, zorder=5)
        marks = fb_alarmed & np.isfinite(counts)
        ax.plot(weeks[marks] + np.timedelta64(3, "D"), counts[marks] + 0.04 * top, "v", mfc="none", mec=FALLBACK,
                ms=6, zorder=5)
        # weeks still filling (the reported one, and those before it whose reporting is incomplete):
        # where each count is heading, the nowcast's 90 % interval over the bar and its mean as a diamond
        filling = np.isfinite(casts) & np.isfinite(counts)
        if filling.any():
            ax.bar(weeks[filling], (cast_high - cast_low)[filling], bottom=cast_low[filling], width=6, align="edge",
                   color=NOWCAST, alpha=0.3, edgecolor=NOWCAST, hatch="///", lw=0.8, zorder=3)  # fmt: skip
            ax.plot(weeks[filling] + np.timedelta64(3, "D"), casts[filling], "D", color=NOWCAST, ms=6, zorder=5)
            top = max(top, float(np.nanmax(cast_high[filling])))
        first, right = weeks[0], max(weeks[-1], week) + max(3, len(weeks) // 40) * seven
    else:
        top = 1.0
        first, right = week, week + 3 * seven
    # always at least two years wide, so charts of different series read at the same scale
    left = min(first - seven, week - MIN_WEEKS * seven)
    if first - left > 2 * seven:
        ax.axvspan(left, first, facecolor="none", edgecolor="#cccccc", hatch="//", lw=0, zorder=0)
        ax.text(first - seven, 0.5, f"no data before {str(first)}", transform=ax.get_xaxis_transform(),
                ha="right", va="center", fontsize=9, color="#777777", zorder=6,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none"})
    ax.set_xlim(left, right)
    ax.set_ylim(0, math.ceil(top * 1.22) or 1)

    shown = [a for a in annotations if left <= np.datetime64(a.date, "D") <= right]
    span = (right - left).astype(float)
    for i, note in enumerate(sorted(shown, key=lambda a: a.date)):
        x = np.datetime64(note.date, "D")
        ax.axvline(x, color=ANNOTATION, ls=":", lw=1.2, zorder=4)
        # label on the side with more room, stacked when several are close
        on_right = (x - left).astype(float) < 0.7 * span
        ax.annotate(
            f"{note.date.isoformat()} {note.label}",
            xy=(x, 1.0), xycoords=("data", "axes fraction"),
            xytext=(4 if on_right else -4, -4 - 14 * (i % 3)), textcoords="offset points",
            ha="left" if on_right else "right", va="top", fontsize=9, color=ANNOTATION,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85}, zorder=6,
        )

    locator = mdates.AutoDateLocator(minticks=6, maxticks=14)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", color="#e6e6e6", lw=0.8, zorder=1)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    series = result.series
    detection = result.detection
    title = f"{series.title or series.definition} — {series.label}"
    ax.set_title(title, loc="left", fontsize=14, fontweight="bold")
    ax.set_title(_subtitle(result, week_start), loc="right", fontsize=10, color="#444444")
    ax.set_ylabel("fatalities per week" if series.metric == "fatalities" else "events per week")
    ax.set_xlabel(f"week starting (reported week {week_start.isoformat()} highlighted)")

    detector = detection.detector + (f", fallback from {detection.fallback_from}" if detection.fallback_from else "")
    handles = [
        Patch(color=BAR, label="weekly count"),
        Patch(color=ALARM, label="alarm week"),
        matplotlib.lines.Line2D([], [], color=EXPECTED, lw=1.8, label=f"expected ({detector})"),
        # detectors with a CUSUM also alarm below it, on a rise over several weeks
        matplotlib.lines.Line2D([], [], color=THRESHOLD, lw=1.6, ls="--",
                                label="single-week threshold" if "chart_alarm" in history else "threshold"),
        Patch(facecolor=CURRENT, edgecolor="black", label="reported week"),
    ]
    if warned.any():
        handles.insert(2, Patch(color=WARNING, label="warning week"))
    if undecided.any():
        handles.insert(2, Patch(color=UNDECIDED, label="undecided (too little history)"))
    if learned.any():
        handles.append(matplotlib.lines.Line2D([], [], color=EXPECTED, lw=4.0, alpha=0.45, label="expected = new level (recent weeks)"))
    if np.isfinite(casts).any():
        share = f" ({detection.complete_share:.0%} of the reported week in)" if math.isfinite(detection.complete_share) else ""
        handles.append(Patch(facecolor=NOWCAST, alpha=0.3, edgecolor=NOWCAST, hatch="///",
                             label=f"weeks still filling: nowcast, 90 %{share}"))  # fmt: skip
    if fallback.any():
        configured = next(f for f in history["fallback_from"].astype(str) if f)
        used = next((d for d, f in zip(history["detector"].astype(str), history["fallback_from"].astype(str)) if f), "fallback")
        handles.append(matplotlib.lines.Line2D(
            [], [], color=FALLBACK, lw=1.0, ls="--", marker="v", mfc="none",
            label=f"{used} fallback (too little history for {configured})"))
    # below the axes: inside it would hide bars or annotation labels
    rows = 1 if len(handles) <= 5 else 2
    fig.legend(handles=handles, loc="lower center", fontsize=9, frameon=False, ncol=math.ceil(len(handles) / rows))
    fig.tight_layout(rect=(0, 0.035 + 0.04 * rows, 1, 1))

    png = io.BytesIO()
    # a fixed Software tag keeps the PNG identical across matplotlib patch versions
    fig.savefig(png, format="png", dpi=DPI, metadata={"Software": "incident-monitor"})
    return atomic_write(Path(path), png.getvalue())


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _subtitle(result: SeriesResult, week_start: date) -> str:
    d = result.detection
    parts = [f"week of {week_start:%d %b %Y}: {_num(d.observed)} observed"]
    if d.expected == d.expected:
        parts.append(f"{_num(d.expected)} expected")
    if d.threshold == d.threshold:
        parts.append(f"threshold {_num(d.threshold)}")
    return ", ".join(parts)


def _num(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


__all__ = ["plot_series"]


def plot_comparison(counts: pd.Series, comparison, *, label: str, path: Path) -> Path:
    """The weeks before and after an event (`monitor compare`): weekly bars, the event line, the mean weekly rate
    of each window as a step, and the rate ratio with its interval in the title; written as a PNG (atomically)."""
    start = pd.Timestamp(comparison.first_before)
    end = pd.Timestamp(comparison.event_week) + pd.Timedelta(weeks=comparison.after_weeks)
    shown = counts[(counts.index >= start) & (counts.index < end)]
    weeks = shown.index.tz_localize(None).to_numpy(dtype="datetime64[D]")
    event = np.datetime64(comparison.event_week, "D")
    fig = Figure(figsize=(WIDTH_IN, 4.2), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    after = weeks >= event
    ax.bar(weeks[~after], shown.to_numpy()[~after], width=6, align="edge", color=BAR, edgecolor="none", label="weekly count, before")
    ax.bar(weeks[after], shown.to_numpy()[after], width=6, align="edge", color=ALARM, alpha=0.75, edgecolor="none",
           label="weekly count, after")  # fmt: skip
    seven = np.timedelta64(7, "D")
    if len(weeks):
        ax.plot([weeks[0], event], [comparison.before_rate] * 2, color=EXPECTED, lw=2, label=f"mean before: {comparison.before_rate:.2f} a week")
        ax.plot([event, weeks[-1] + seven], [comparison.after_rate] * 2, color=ALARM, lw=2,
                label=f"mean after: {comparison.after_rate:.2f} a week")  # fmt: skip
    ax.axvline(event, color=ANNOTATION, lw=1.2, ls="--")
    ax.text(event, 1.0, f" {label}", transform=ax.get_xaxis_transform(), va="top", ha="left", fontsize=9, color=ANNOTATION)
    ratio = (f"rate ratio ×{comparison.rate_ratio:.2f} (95 % CI {comparison.ci_low:.2f} to {comparison.ci_high:.2f})"
             if math.isfinite(comparison.rate_ratio) and math.isfinite(comparison.ci_low) else comparison.note or "no ratio")
    ax.set_title(f"{comparison.name}: {ratio}", loc="left", fontsize=11)
    ax.set_ylabel(f"{comparison.unit} per week")
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    ax.grid(axis="y", color="#e5e5e5", lw=0.8)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", fontsize=9, frameon=False, bbox_to_anchor=(0, -0.12), ncol=4)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI, metadata={"Software": "incident-monitor"})
    return atomic_write(Path(path), png.getvalue())
