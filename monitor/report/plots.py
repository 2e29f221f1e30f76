"""One PNG per flagged series: the last 26 weeks large (weekly bars, expected and threshold steps, every alerted or
warned week marked, annotations, the nowcast of weeks still filling) under a strip of the whole history, a caption
when the threshold changes, and a legend of what is drawn.

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
import matplotlib.lines  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.gridspec import GridSpec  # noqa: E402
from matplotlib.legend_handler import HandlerTuple  # noqa: E402
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

WINDOW = "#dde6ef"  # the main panel's weeks, shaded in the context strip

WIDTH_IN, HEIGHT_IN, DPI = 12.0, 6.0, 100  # 1200 × 600 px
MAIN_WEEKS = 26  # the main panel: the last half year, ending at the reported week
MIN_WEEKS = 104  # the context strip spans at least two years
STEP_SHARE = 0.25  # a threshold step the caption explains: its 4-week level changes by at least 2 and this share


def plot_series(result: SeriesResult, *, week_start: date, annotations: Sequence[Annotation], path: Path) -> Path:
    """Draw the weekly chart of one series and write it as a PNG (atomically).

    result: the series; `result.history` holds week_start, count, expected, upperbound, alarm (and, when
    the detectors gave them, level, model, chart_alarm, fallback_from, nowcast, nowcast_low, nowcast_high).
    week_start: the reported week, highlighted at the right end of the main panel.
    annotations: dated events drawn as vertical lines when they fall inside the chart.
    path: the PNG to write; its folder is created.
    """
    fig = draw_series(result, week_start=week_start, annotations=annotations)
    png = io.BytesIO()
    # a fixed Software tag keeps the PNG identical across matplotlib patch versions
    fig.savefig(png, format="png", dpi=DPI, metadata={"Software": "incident-monitor"})
    return atomic_write(Path(path), png.getvalue())


class _Weeks:
    """The history as arrays: one entry per week, with what each week is drawn as."""

    def __init__(self, result: SeriesResult, week_start: date) -> None:
        history = result.history
        n = len(history)
        none = np.zeros(n, dtype=bool)
        self.weeks = pd.to_datetime(history["week_start"]).dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
        self.counts = pd.to_numeric(history["count"], errors="coerce").to_numpy(dtype=float)
        expected, upper = _floats(history, "expected"), _floats(history, "upperbound")
        alarm = history["alarm"] if "alarm" in history else pd.Series([pd.NA] * n)
        self.undecided = np.array([pd.isna(a) for a in alarm], dtype=bool)
        alert = np.array([bool(a) if not pd.isna(a) else False for a in alarm], dtype=bool)
        level = history["level"].fillna("").astype(str).to_numpy() if "level" in history else np.full(n, "")
        self.alert = alert | (level == "alert")
        self.warned = (level == "warning") & ~self.alert
        # alarms the chart raised alone (CUSUM of farrington-cusum): the count may be under the single-week threshold
        chart = _bools(history, "chart_alarm")
        single = _bools(history, "single_alarm") if "single_alarm" in history else none
        self.chart = chart & ~single & (self.alert | self.warned)
        # weeks whose baseline learned a new level (farrington-cusum's model "recent"): the expected line
        # is drawn thicker there, so the reader sees where the detector took the escalation as the new normal
        self.learned = history["model"].fillna("").astype(str).eq("recent").to_numpy() if "model" in history else none
        # weeks the configured detector lacked history for were checked by the nb-recent fallback:
        # their lines are thin and grey, their marks hollow, so they never pass for the main detector's
        d = result.detection
        if "fallback_from" in history:
            self.fallback = history["fallback_from"].fillna("").astype(str).ne("").to_numpy()
        else:  # a history without the column: the reported week's detection says for the whole series
            self.fallback = np.full(n, bool(d.fallback_from))
        self.learned = self.learned & ~self.fallback
        self.expected, self.upper = np.where(self.fallback, np.nan, expected), np.where(self.fallback, np.nan, upper)
        self.fb_expected, self.fb_upper = np.where(self.fallback, expected, np.nan), np.where(self.fallback, upper, np.nan)
        self.all_upper = upper
        self.casts, self.cast_low, self.cast_high = (_floats(history, c) for c in ("nowcast", "nowcast_low", "nowcast_high"))
        if not np.isfinite(self.casts).any() and math.isfinite(d.nowcast) and n:  # a history without the columns
            at = self.weeks == np.datetime64(week_start, "D")
            self.casts[at], self.cast_low[at], self.cast_high[at] = d.nowcast, d.nowcast_low, d.nowcast_high
        self.configured, self.fallback_detector = d.fallback_from, d.detector if d.fallback_from else "nb-recent"
        if "fallback_from" in history and self.fallback.any():
            self.configured = next(f for f in history["fallback_from"].fillna("").astype(str) if f)
            self.fallback_detector = next((str(x) for x, f in zip(history["detector"], self.fallback) if f), "fallback") \
                if "detector" in history else "nb-recent"
        self.has_chart_column = "chart_alarm" in history

    def colours(self, shown: np.ndarray) -> np.ndarray:
        return np.where(self.alert, ALARM, np.where(self.warned, WARNING, np.where(self.undecided, UNDECIDED, BAR)))[shown]


def draw_series(result: SeriesResult, *, week_start: date, annotations: Sequence[Annotation]) -> Figure:
    """The chart of `plot_series` as a Figure: the last MAIN_WEEKS weeks large (the axes labelled "main"), the whole
    history above in a narrow strip (labelled "context", absent when the series starts inside the main window), one
    caption line (gid "caption") when the threshold changes markedly or the baseline learned a new level, and a legend
    of exactly what is drawn, below the axes and inside the figure."""
    w = _Weeks(result, week_start)
    week = np.datetime64(week_start, "D")
    seven = np.timedelta64(7, "D")
    start = week - (MAIN_WEEKS - 1) * seven  # the first week of the main panel
    left, right = start - np.timedelta64(4, "D"), week + seven + np.timedelta64(4, "D")
    in_main = (w.weeks >= start) & (w.weeks <= week)
    context = bool(len(w.weeks)) and bool((w.weeks < start).any())

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    if context:
        grid = GridSpec(2, 1, figure=fig, height_ratios=(1, 4.2))
        strip, ax = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    else:
        strip, ax = None, fig.add_subplot(1, 1, 1)
    ax.set_label("main")
    drawn: dict[str, bool] = {}

    # ---- the main panel: the last MAIN_WEEKS weeks
    ax.axvspan(week, week + seven, color=CURRENT, zorder=0, lw=0)
    top = 1.0
    weeks, counts = w.weeks[in_main], w.counts[in_main]
    if in_main.any():
        colours = w.colours(in_main)
        ax.bar(weeks, counts, width=6, align="edge", color=colours, edgecolor="none", zorder=2)
        _note_bars(drawn, colours)
        current = weeks == week
        if current.any():  # a dark outline makes the reported week findable even when it is not marked
            ax.bar(weeks[current], counts[current], width=6, align="edge", fill=False, edgecolor="black", lw=1.5, zorder=3)

        def step(values: np.ndarray, **style) -> bool:
            """A step over each bar's week, a lone week's included; broken where the values are NaN."""
            x, y = _steps(weeks, values[in_main])
            if not len(x):
                return False
            ax.plot(x, y, zorder=4, **style)
            return True

        drawn["expected"] = step(w.expected, color=EXPECTED, lw=1.8)
        drawn["threshold"] = step(w.upper, color=THRESHOLD, lw=1.6, ls="--")
        drawn["learned"] = step(np.where(w.learned, w.expected, np.nan), color=EXPECTED, lw=4.0, alpha=0.45)
        drawn["fallback"] = step(w.fb_expected, color=FALLBACK, lw=1.0) | step(w.fb_upper, color=FALLBACK, lw=1.0, ls="--")
        finite = np.concatenate([counts, w.all_upper[in_main]])
        top = max(1.0, float(np.nanmax(finite))) if np.isfinite(finite).any() else 1.0
        # weeks still filling (the reported one, and those before it whose reporting is incomplete):
        # where each count is heading, the nowcast's 90 % interval over the bar and its mean as a diamond
        filling = in_main & np.isfinite(w.casts) & np.isfinite(w.counts)
        if filling.any():
            ax.bar(w.weeks[filling], (w.cast_high - w.cast_low)[filling], bottom=w.cast_low[filling], width=6, align="edge",
                   color=NOWCAST, alpha=0.3, edgecolor=NOWCAST, hatch="///", lw=0.8, zorder=3)  # fmt: skip
            ax.plot(w.weeks[filling] + np.timedelta64(3, "D"), w.casts[filling], "D", color=NOWCAST, ms=6, zorder=5)
            top = max(top, float(np.nanmax(w.cast_high[filling])))
            drawn["nowcast"] = True
        # every alerted or warned week is marked above its bar, whatever its detector: filled triangles for the
        # configured detector's single-week alarms, stars for the chart's (CUSUM) alarms, hollow for the fallback's
        lift = 0.045 * top
        for kind, colour in (("alert", ALARM), ("warning", WARNING)):
            hit = (w.alert if kind == "alert" else w.warned) & in_main & np.isfinite(w.counts)
            for which, mask, style in (
                ("single", hit & ~w.fallback & ~w.chart, {"marker": "v", "color": colour, "ms": 8}),
                ("chart", hit & ~w.fallback & w.chart, {"marker": "*", "color": colour, "ms": 12}),
                ("fallback", hit & w.fallback, {"marker": "v", "mfc": "white", "mec": colour, "mew": 1.6, "ms": 8}),
            ):
                if mask.any():
                    ax.plot(w.weeks[mask] + np.timedelta64(3, "D"), w.counts[mask] + lift, ls="none", zorder=6, **style)
                    drawn[f"{kind}_{which}"] = True
        top = max(top, float(np.nanmax(np.where(w.alert | w.warned, w.counts, 0)[in_main])) + lift * 2.5)
    first = w.weeks[0] if len(w.weeks) else None
    if first is None or first > start:  # the series starts inside the main panel (or has no weeks)
        since = first if first is not None else week
        ax.axvspan(left, since, facecolor="none", edgecolor="#cccccc", hatch="//", lw=0, zorder=0)
        if first is not None:
            ax.text(since - np.timedelta64(2, "D"), 0.5, f"no data before {str(first)}", transform=ax.get_xaxis_transform(),
                    ha="right", va="center", fontsize=9, color="#777777", zorder=6,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none"})  # fmt: skip
    ax.set_xlim(left, right)
    ax.set_ylim(0, math.ceil(top * 1.18) or 1)
    _annotate(ax, annotations, left, right, fontsize=9)
    # a tick under every other bar, ending on the reported week, labelled with the week's first day
    ticks = [week - i * seven for i in range(0, MAIN_WEEKS, 2)][::-1]
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(mdates.date2num(ticks) + 3))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick_label(ticks)))
    ax.tick_params(axis="x", labelsize=9)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", color="#e6e6e6", lw=0.8, zorder=1)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    series = result.series
    ax.set_ylabel("fatalities per week" if series.metric == "fatalities" else "events per week")
    ax.set_xlabel(f"week starting: the last {MAIN_WEEKS} weeks, reported week {week_start.isoformat()} highlighted", fontsize=9)

    # ---- the context strip: the whole history, the main panel's window shaded
    if strip is not None:
        strip.set_label("context")
        colours = w.colours(np.ones(len(w.weeks), dtype=bool))
        strip.axvspan(start, right, color=WINDOW, zorder=0, lw=0)
        strip.bar(w.weeks, w.counts, width=6, align="edge", color=colours, edgecolor="none", zorder=2)
        _note_bars(drawn, colours)
        s_left = min(w.weeks[0] - seven, week - MIN_WEEKS * seven)  # at least two years, as every series' strip
        if w.weeks[0] - s_left > 2 * seven:
            strip.axvspan(s_left, w.weeks[0], facecolor="none", edgecolor="#cccccc", hatch="//", lw=0, zorder=0)
            strip.text(w.weeks[0] - seven, 0.5, f"no data before {str(w.weeks[0])}", transform=strip.get_xaxis_transform(),
                       ha="right", va="center", fontsize=7, color="#777777")  # fmt: skip
        strip.set_xlim(s_left, right)
        s_top = float(np.nanmax(w.counts)) if np.isfinite(w.counts).any() else 1.0
        strip.set_ylim(0, max(1.0, s_top) * 1.1)
        strip.set_yticks([0, max(1, int(s_top))])
        strip.tick_params(labelsize=7, length=2, pad=1)
        _annotate(strip, [a for a in annotations if np.datetime64(a.date, "D") < start], s_left, start, fontsize=7)
        for a in annotations:
            if start <= np.datetime64(a.date, "D") <= right:
                strip.axvline(np.datetime64(a.date, "D"), color=ANNOTATION, ls=":", lw=0.9, zorder=4)
        locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
        strip.xaxis.set_major_locator(locator)
        strip.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        for side in ("top", "right"):
            strip.spines[side].set_visible(False)
        n_weeks = int((week - w.weeks[0]).astype(int) // 7) + 1
        strip.text(0.0, 1.02, f"the last {n_weeks} weeks (shaded: the {MAIN_WEEKS} drawn below)",
                   transform=strip.transAxes, ha="left", va="bottom", fontsize=8, color="#555555")  # fmt: skip

    # ---- title, caption, legend
    title = f"{series.title or series.definition} — {series.label}"
    heads = (fig.text(0.01, 1 - 8 / fig.bbox.height, title, ha="left", va="top", fontsize=14, fontweight="bold"),
             fig.text(0.99, 1 - 10 / fig.bbox.height, _subtitle(result, week_start), ha="right", va="top", fontsize=10,
                      color="#444444"))  # fmt: skip
    caption = _caption(w, in_main, result)
    handles = _legend_handles(w, drawn, result)
    return _lay_out(fig, handles, caption, heads)


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _bools(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.zeros(len(frame), dtype=bool)
    return np.array([bool(v) if not pd.isna(v) else False for v in frame[column]], dtype=bool)


def _note_bars(drawn: dict[str, bool], colours: np.ndarray) -> None:
    for key, colour in (("bar_normal", BAR), ("bar_alert", ALARM), ("bar_warning", WARNING), ("bar_undecided", UNDECIDED)):
        drawn[key] = drawn.get(key, False) or bool((colours == colour).any())


def _annotate(ax, annotations: Sequence[Annotation], left, right, *, fontsize: float) -> None:
    """Dated vertical lines with their labels, on the side with more room, stacked when several are close."""
    shown = sorted((a for a in annotations if left <= np.datetime64(a.date, "D") <= right), key=lambda a: a.date)
    span = (right - left).astype(float)
    for i, note in enumerate(shown):
        x = np.datetime64(note.date, "D")
        ax.axvline(x, color=ANNOTATION, ls=":", lw=1.2, zorder=4)
        on_right = (x - left).astype(float) < 0.6 * span
        ax.annotate(
            f"{note.date.isoformat()} {note.label}",
            xy=(x, 1.0), xycoords=("data", "axes fraction"),
            xytext=(4 if on_right else -4, -4 - (fontsize + 5) * (i % 3)), textcoords="offset points",
            ha="left" if on_right else "right", va="top", fontsize=fontsize, color=ANNOTATION,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85}, zorder=7,
        )


def _tick_label(ticks: list):
    """Day and month under each tick, the year under the first and under the first of each new year."""
    years = [str(t)[:4] for t in ticks]

    def label(x: float, pos: int | None) -> str:
        day = mdates.num2date(x - 3).date()
        i = next((k for k, t in enumerate(ticks) if np.datetime64(day, "D") == t), None)
        new_year = i is not None and (i == 0 or years[i] != years[i - 1])
        return f"{day:%d %b}" + (f"\n{day:%Y}" if new_year else "")

    return label


def _steps(weeks: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The corners of a step line spanning each week with a finite value, with NaN gaps between runs."""
    seven = np.timedelta64(7, "D")
    xs: list = []
    ys: list[float] = []
    for i, (week, value) in enumerate(zip(weeks, values)):
        if not math.isfinite(value):
            continue
        if xs and xs[-1] != week:  # a gap before this week
            xs.append(xs[-1])
            ys.append(math.nan)
        xs += [week, week + seven]
        ys += [float(value), float(value)]
    return np.array(xs, dtype="datetime64[D]"), np.array(ys, dtype=float)


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return math.nan
    middle = float(np.median(finite))
    return float(round(middle)) if middle >= 10 else round(middle * 2) / 2  # "about 85", "about 4.5"


def _day(x: np.datetime64) -> str:
    return pd.Timestamp(x).strftime("%-d %b %Y")


def _caption(w: _Weeks, in_main: np.ndarray, result: SeriesResult) -> list[str]:
    """Why the threshold changes inside the main panel, most telling first (the caption joins as many as fit one
    line), or [] when it does not change markedly: a marked step, a baseline that learned a new level, the
    fallback handing over to the configured detector (or back)."""
    configured = w.configured or result.detection.detector
    idx = np.flatnonzero(in_main)
    if not len(idx):
        return []
    decided = np.isfinite(w.all_upper)  # a switch from undecided weeks is no change of threshold
    switch = next((i for i in idx[1:] if w.fallback[i] != w.fallback[i - 1] and in_main[i - 1] and decided[i - 1] and decided[i]), None)
    learned = next((i for i in idx if w.learned[i]), None)
    # a marked change: the threshold of the four weeks from a week differs from that of the four weeks before it
    # by at least 2 and 25 %, a lasting step rather than the week-to-week wobble of a re-estimated baseline
    step, size, levels = None, 0.0, (math.nan, math.nan)
    for i in idx[1:]:
        if not in_main[i - 1] or not (decided[i] and decided[i - 1]) or w.all_upper[i] == w.all_upper[i - 1]:
            continue
        before, after = _median(w.all_upper[max(0, i - 4) : i]), _median(w.all_upper[i : i + 4])
        jump = abs(w.all_upper[i] - w.all_upper[i - 1])  # the week the lasting change happens: its largest jump
        if abs(after - before) >= max(2.0, STEP_SHARE * max(before, after)) and jump >= size:  # the latest of equal steps
            step, size, levels = i, jump, (before, after)
    parts: list[str] = []
    if step is not None:
        a, b = levels
        why = ""
        if step == switch:
            why = (f" as {configured} takes over from the {w.fallback_detector} fallback" if not w.fallback[step]
                   else f" as the {w.fallback_detector} fallback takes over")  # fmt: skip
        elif w.learned[step] and not w.learned[step - 1]:
            why = " as the baseline learns a new level"
        elif w.learned[step - 1] and not w.learned[step]:
            why = " as the baseline leaves its learned level"
        parts.append(f"the threshold {'rises' if b > a else 'falls'} from about {_num(a)} to {_num(b)} in the week of "
                     f"{_day(w.weeks[step])}{why}")  # fmt: skip
    if learned is not None and not (step == learned and not w.learned[learned - 1]):
        first = learned
        while first > 0 and w.learned[first - 1]:  # the run may have started before the main panel
            first -= 1
        last = learned
        while last + 1 < len(w.learned) and w.learned[last + 1]:
            last += 1
        since = f"{_day(w.weeks[first])} to {_day(w.weeks[last])}" if last < idx[-1] else f"since {_day(w.weeks[first])}"
        parts.append(f"a learned new level (thick line, {since}) takes the recent weeks' rate as normal")
    if switch is not None and step != switch:
        quiet = w.fallback & in_main & decided
        main = ~w.fallback & in_main & decided
        if np.flatnonzero(quiet).max() < np.flatnonzero(main).min():
            parts.append(f"before {_day(w.weeks[switch])} the {w.fallback_detector} fallback judged the weeks (grey: too "
                         f"little history for {configured})")  # fmt: skip
        elif np.flatnonzero(main).max() < np.flatnonzero(quiet).min():
            parts.append(f"from {_day(w.weeks[switch])} the weeks are judged by the {w.fallback_detector} fallback (grey lines)")
        else:
            weeks = int(quiet.sum())
            parts.append(f"{weeks} week{'s' if weeks > 1 else ''} judged by the {w.fallback_detector} fallback (grey lines, "
                         "hollow marks)")  # fmt: skip
    return parts


def _sentence(parts: list[str]) -> str:
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "." if text else ""


def _legend_handles(w: _Weeks, drawn: dict[str, bool], result: SeriesResult) -> list:
    """A handle for each thing drawn, and for nothing else."""
    Line2D = matplotlib.lines.Line2D
    configured = w.configured or result.detection.detector
    h: list = []

    def add(key: str, handle, label: str) -> None:
        if drawn.get(key):
            h.append((handle, label))

    add("bar_normal", Patch(color=BAR), "weekly count")
    for kind, colour, word in (("alert", ALARM, "alert"), ("warning", WARNING, "warning")):
        bar = Patch(color=colour)
        add(f"bar_{kind}", (bar, Line2D([], [], ls="none", marker="v", color=colour, ms=7)) if drawn.get(f"{kind}_single") else bar,
            f"{word} week")
        add(f"{kind}_chart", Line2D([], [], ls="none", marker="*", color=colour, ms=11), f"{word} by the CUSUM (a rise over weeks)")
        add(f"{kind}_fallback", Line2D([], [], ls="none", marker="v", mfc="white", mec=colour, mew=1.6, ms=7),
            f"{word} of the {w.fallback_detector} fallback")
    add("bar_undecided", Patch(color=UNDECIDED), "undecided (too little history)")
    add("expected", Line2D([], [], color=EXPECTED, lw=1.8), f"expected ({configured})")
    add("learned", Line2D([], [], color=EXPECTED, lw=4.0, alpha=0.45), "expected = new level (recent weeks)")
    # detectors with a CUSUM also alarm below it, on a rise over several weeks
    add("threshold", Line2D([], [], color=THRESHOLD, lw=1.6, ls="--"),
        "single-week threshold" if w.has_chart_column else "threshold")
    add("fallback", (Line2D([], [], color=FALLBACK, lw=1.0), Line2D([], [], color=FALLBACK, lw=1.0, ls="--")),
        f"{w.fallback_detector} fallback: expected, threshold")
    if drawn.get("nowcast"):
        share = result.detection.complete_share
        share = f" ({share:.0%} of the reported week in)" if math.isfinite(share) else ""
        h.append((Patch(facecolor=NOWCAST, alpha=0.3, edgecolor=NOWCAST, hatch="///"), f"still filling: nowcast, 90 %{share}"))
    h.append((Patch(facecolor=CURRENT, edgecolor="black"), "reported week"))
    return h


def _lay_out(fig: Figure, handles: list, caption: list[str], heads: tuple) -> Figure:
    """The title with the subtitle at its right (or under it when both do not fit one line), the legend (as many
    columns as fit the figure's width, rows balanced) at the bottom, the caption above it, and the axes in the room
    left: nothing reaches past the figure's edges."""
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    margin = 8.0
    title, subtitle = heads
    while title.get_window_extent(renderer).width > width - 2 * margin and title.get_fontsize() > 8:
        title.set_fontsize(title.get_fontsize() - 0.5)
    top = title.get_window_extent(renderer).y0
    if title.get_window_extent(renderer).x1 + 24 > subtitle.get_window_extent(renderer).x0:
        subtitle.set_position((0.99, (top - 3) / height))
        top = subtitle.get_window_extent(renderer).y0
    objects, labels = [o for o, _ in handles], [label for _, label in handles]
    legend = None
    ncol = len(handles)
    while True:
        rows = math.ceil(len(handles) / ncol)
        cols = math.ceil(len(handles) / rows)  # balanced rows
        if legend is not None:
            legend.remove()
        legend = fig.legend(objects, labels, loc="lower center", bbox_to_anchor=(0.5, 4 / height), fontsize=9, frameon=False,
                            ncol=cols, columnspacing=1.5, handlelength=2.4, handler_map={tuple: HandlerTuple(ndivide=None)})  # fmt: skip
        if legend.get_window_extent(renderer).width <= width - 2 * margin or ncol == 1:
            break
        ncol -= 1
    bottom = legend.get_window_extent(renderer).y1 + 4
    if caption:  # one line: the least telling parts are left out rather than the type made too small to read
        text = fig.text(margin / width, bottom / height, _sentence(caption), ha="left", va="bottom", fontsize=9,
                        color="#333333", style="italic", gid="caption")  # fmt: skip
        while text.get_window_extent(renderer).width > width - 2 * margin:
            if text.get_fontsize() > 8:
                text.set_fontsize(text.get_fontsize() - 0.5)
            elif len(caption) > 1:
                caption = caption[:-1]
                text.set_text(_sentence(caption))
            elif text.get_fontsize() > 6:
                text.set_fontsize(text.get_fontsize() - 0.5)
            else:
                break
        bottom = text.get_window_extent(renderer).y1 + 4
    fig.tight_layout(rect=(0, bottom / height, 1, (top - 6) / height), h_pad=1.2)
    return fig


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


__all__ = ["draw_series", "plot_series"]


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
