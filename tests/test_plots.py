"""The PNG charts: a real image of the right size; the last 26 weeks drawn large under a strip of the whole history;
every alerted or warned week marked whatever its level or detector; a legend of exactly what is drawn, inside the
image; a caption when the threshold changes; the fallback drawn thin and grey."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from monitor.report.plots import ALARM, CURRENT, FALLBACK, MAIN_WEEKS, NOWCAST, WARNING, draw_series, plot_series
from tests.helpers_result import EARTHQUAKE, W09, make_result

RESULT = make_result()


def _series(label: str):
    return next(r for r in RESULT.results if r.series.label == label)


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB")).astype(int)


def _count(pixels: np.ndarray, colour: str, tolerance: int = 12) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels - rgb).max(axis=2) <= tolerance).sum())


def _axes(fig, label: str):
    return next((ax for ax in fig.axes if ax.get_label() == label), None)


def _legend(fig) -> list[str]:
    (legend,) = fig.legends
    return [t.get_text() for t in legend.get_texts()]


def _caption(fig) -> str:
    return next((t.get_text() for t in fig.texts if t.get_gid() == "caption"), "")


def _marks(ax, marker: str = "v") -> list:
    """(week start, colour, hollow) of each mark above a bar."""
    out = []
    for line in ax.get_lines():
        if line.get_marker() == marker:
            for x in mdates.num2date(np.asarray(mdates.date2num(line.get_xdata()))):
                out.append(((x - timedelta(days=3)).date(), line.get_markeredgecolor(), line.get_markerfacecolor() == "white"))
    return out


def _frame(n: int = 156, *, week: date = W09, **columns) -> pd.DataFrame:
    """A quiet decided history of n weeks ending at `week`: 1 a week against 1 expected, threshold 5."""
    starts = pd.date_range(end=pd.Timestamp(week), periods=n, freq="7D")
    frame = pd.DataFrame({"week_start": starts, "count": 1.0, "expected": 1.0, "upperbound": 5.0,
                          "alarm": pd.array([False] * n, dtype="boolean"), "level": "", "detector": "farrington-cusum",
                          "fallback_from": ""})  # fmt: skip
    for name, values in columns.items():
        frame[name] = values
    return frame


def _result(history: pd.DataFrame, **detection):
    base = _series("Raqqa")
    return replace(base, history=history, detection=replace(base.detection, detector="farrington-cusum", **detection))


@pytest.fixture(scope="module")
def homs(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "charts" / "homs.png"
    return plot_series(_series("Homs"), week_start=RESULT.week_start, annotations=[EARTHQUAKE], path=path)


def test_png_of_sensible_size(homs):
    assert homs.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(homs) as image:
        width, height = image.size
    assert 1100 <= width <= 1300 and 550 <= height <= 650
    assert 20_000 < homs.stat().st_size < 500_000
    assert not list(homs.parent.glob("*.tmp"))


def test_image_is_not_blank_and_shows_alarms_and_the_current_week(homs, tmp_path):
    pixels = _pixels(homs)
    white = (pixels >= 250).all(axis=2).mean()
    assert 0.3 < white < 0.97, "the chart is (nearly) blank or a solid block"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    assert _count(pixels, CURRENT) > 2000, "the reported week is not highlighted"
    # a quiet series draws no alarm, so its legend lists none either: not one pixel of the alarm colour
    quiet = plot_series(_series("Raqqa"), week_start=RESULT.week_start, annotations=[], path=tmp_path / "raqqa.png")
    assert _count(pixels, ALARM) > 2000 and _count(_pixels(quiet), ALARM) == 0


def test_alarm_bars_sit_at_the_right_end_for_a_surge_this_week(homs):
    pixels = _pixels(homs)
    rgb = np.array([0xD6, 0x27, 0x28])
    columns = np.where((np.abs(pixels[int(0.3 * pixels.shape[0]) :] - rgb).max(axis=2) <= 12).any(axis=0))[0]
    assert columns.max() > 0.9 * pixels.shape[1], "the surge of February 2023 should be drawn at the right edge"


def test_the_main_panel_is_the_last_26_weeks_ending_at_the_reported_week_and_the_strip_the_whole_history():
    fig = draw_series(_series("Homs"), week_start=W09, annotations=[EARTHQUAKE])
    main, strip = _axes(fig, "main"), _axes(fig, "context")
    left, right = (mdates.num2date(x).date() for x in main.get_xlim())
    first = W09 - timedelta(weeks=MAIN_WEEKS - 1)
    assert first - timedelta(days=7) < left <= first and W09 + timedelta(days=7) <= right < W09 + timedelta(days=14)
    heights = [b.get_height() for b in main.containers[0]]
    assert len(heights) == MAIN_WEEKS and heights[-3:] == [7, 8, 9]  # the surge fills the panel's right end
    s_left, s_right = (mdates.num2date(x).date() for x in strip.get_xlim())
    assert s_left <= _series("Homs").history["week_start"].iloc[0].date() and s_right >= W09 + timedelta(days=7)
    assert main.get_position().height > 3 * strip.get_position().height
    assert strip.get_position().y0 > main.get_position().y1  # the strip sits above the main panel
    # a series that starts inside the window has no strip, and says where its data start
    short = draw_series(_series("Quneitra"), week_start=W09, annotations=[])
    assert _axes(short, "context") is None
    assert any(t.get_text().startswith("no data before 2022-12-26") for t in _axes(short, "main").texts)


def test_the_legend_lists_exactly_what_is_drawn_and_stays_inside_the_image():
    homs = draw_series(_series("Homs"), week_start=W09, annotations=[EARTHQUAKE])
    assert _legend(homs) == ["weekly count", "alert week", "undecided (too little history)", "expected (farrington)",
                             "threshold", "reported week"]  # fmt: skip
    quiet = _series("Raqqa")
    assert not quiet.history["alarm"].fillna(False).any()
    labels = _legend(draw_series(quiet, week_start=W09, annotations=[]))
    assert "alert week" not in labels and "warning week" not in labels and not [x for x in labels if "fallback" in x]
    # the fallback's series: its lines are the fallback's, so no "expected (...)" of a detector that did not run
    assert _legend(draw_series(_series("Quneitra"), week_start=W09, annotations=[])) == [
        "weekly count", "undecided (too little history)", "ears fallback: expected, threshold", "reported week"]
    for r in RESULT.results:
        fig = draw_series(r, week_start=W09, annotations=[EARTHQUAKE])
        fig.canvas.draw()
        (legend,) = fig.legends
        box = legend.get_window_extent()
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, r.series.label


def test_a_long_legend_wraps_inside_the_image():
    n = 156
    level = [""] * n
    level[-2], level[-20], level[-5] = "warning", "alert", "alert"
    fallback = ["farrington-cusum"] * 120 + [""] * 36
    history = _frame(n, level=level, alarm=pd.array([lv == "alert" for lv in level], dtype="boolean"),
                     fallback_from=fallback, detector=["nb-recent"] * 120 + ["farrington-cusum"] * 36,
                     chart_alarm=pd.array([i == n - 5 for i in range(n)], dtype="boolean"),
                     single_alarm=pd.array([False] * n, dtype="boolean"),
                     model=["farrington"] * 140 + ["recent"] * 16,
                     nowcast=[np.nan] * 155 + [9.0], nowcast_low=[np.nan] * 155 + [6.0], nowcast_high=[np.nan] * 155 + [14.0])
    history.loc[:3, "alarm"] = pd.NA
    history.loc[n - 20, "fallback_from"] = "farrington-cusum"
    fig = draw_series(_result(history, complete_share=0.5), week_start=W09, annotations=[EARTHQUAKE])
    fig.canvas.draw()
    labels = _legend(fig)
    assert len(labels) >= 12 and "alert by the CUSUM (a rise over weeks)" in labels
    assert "alert of the nb-recent fallback" in labels and "warning week" in labels
    assert "still filling: nowcast, 90 % (50% of the reported week in)" in labels
    box = fig.legends[0].get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0
    caption = next(t for t in fig.texts if t.get_gid() == "caption")
    assert caption.get_window_extent().x1 <= fig.bbox.width and caption.get_window_extent().y0 > box.y1
    assert _axes(fig, "main").get_position().y0 * fig.bbox.height > caption.get_window_extent().y1


def test_a_warning_only_week_is_marked_and_the_legend_has_no_alert():
    level = [""] * 156
    level[-4] = "warning"
    history = _frame(level=level)
    history.loc[151, "count"] = 4.0
    fig = draw_series(_result(history), week_start=W09, annotations=[])
    assert _marks(_axes(fig, "main")) == [(W09 - timedelta(weeks=3), WARNING, False)]
    labels = _legend(fig)
    assert "warning week" in labels and "alert week" not in labels


def test_every_alerted_or_warned_week_in_the_main_panel_is_marked_whatever_its_detector():
    n = 156
    level = [""] * n
    for i, lv in {n - 1: "alert", n - 3: "warning", n - 20: "alert", n - 24: "warning", n - 40: "alert"}.items():
        level[i] = lv
    fallback = ["farrington-cusum"] * (n - 10) + [""] * 10
    history = _frame(n, level=level, alarm=pd.array([lv == "alert" for lv in level], dtype="boolean"), fallback_from=fallback,
                     detector=["nb-recent"] * (n - 10) + ["farrington-cusum"] * 10,
                     chart_alarm=pd.array([i == n - 1 for i in range(n)], dtype="boolean"))
    fig = draw_series(_result(history), week_start=W09, annotations=[])
    main = _axes(fig, "main")
    week = lambda i: (history["week_start"].iloc[i]).date()  # noqa: E731
    assert sorted(_marks(main) + _marks(main, "*")) == sorted([
        (week(n - 1), ALARM, False),  # the CUSUM's alarm: a star
        (week(n - 3), WARNING, False),
        (week(n - 20), ALARM, True),  # the fallback's: hollow
        (week(n - 24), WARNING, True),
    ])  # the alert 40 weeks back is outside the main panel: a red bar in the strip only  # fmt: skip
    assert [m for m in _marks(main, "*")] == [(week(n - 1), ALARM, False)]
    assert _legend(fig)[:6] == ["weekly count", "alert week", "alert by the CUSUM (a rise over weeks)",
                                "alert of the nb-recent fallback", "warning week", "warning of the nb-recent fallback"]  # fmt: skip


def test_fallback_weeks_are_drawn_thin_and_grey_and_the_switch_is_explained():
    n = 156
    history = _frame(n, fallback_from=["farrington-cusum"] * (n - 8) + [""] * 8, detector=["nb-recent"] * (n - 8) + ["farrington-cusum"] * 8)
    fig = draw_series(_result(history), week_start=W09, annotations=[])
    grey = [line for line in _axes(fig, "main").get_lines() if line.get_color() == FALLBACK]
    assert len(grey) == 2 and all(line.get_linewidth() <= 1.0 for line in grey)
    assert "nb-recent fallback: expected, threshold" in _legend(fig)
    assert _caption(fig) == (f"Before {(W09 - timedelta(weeks=7)):%-d %b %Y} the nb-recent fallback judged the weeks "
                             "(grey: too little history for farrington-cusum).")  # fmt: skip
    # no fallback in the main window: no grey line, no fallback entry, no caption
    fig = draw_series(_result(_frame(n, fallback_from=["farrington-cusum"] * 100 + [""] * 56)), week_start=W09, annotations=[])
    assert not [line for line in _axes(fig, "main").get_lines() if line.get_color() == FALLBACK]
    assert not [x for x in _legend(fig) if "fallback" in x] and _caption(fig) == ""


def test_a_caption_says_when_the_threshold_steps_or_the_baseline_learned_a_new_level():
    flat = draw_series(_result(_frame()), week_start=W09, annotations=[])
    assert _caption(flat) == "" and not [t for t in flat.texts if t.get_gid() == "caption"]
    wobble = _frame(upperbound=[5.0, 6.0] * 78)  # the week-to-week wobble of a refitted baseline is no step
    assert _caption(draw_series(_result(wobble), week_start=W09, annotations=[])) == ""
    step = _frame(upperbound=[5.0] * 148 + [12.0] * 8)
    assert _caption(draw_series(_result(step), week_start=W09, annotations=[])) == (
        f"The threshold rises from about 5 to 12 in the week of {(W09 - timedelta(weeks=7)):%-d %b %Y}.")
    learned = _frame(model=["farrington"] * 150 + ["recent"] * 6, expected=[1.0] * 150 + [4.0] * 6,
                     upperbound=[5.0] * 150 + [10.0] * 6)
    fig = draw_series(_result(learned), week_start=W09, annotations=[])
    assert _caption(fig) == (f"The threshold rises from about 5 to 10 in the week of {(W09 - timedelta(weeks=5)):%-d %b %Y} "
                             "as the baseline learns a new level.")  # fmt: skip
    assert "expected = new level (recent weeks)" in _legend(fig)
    # a learned level that ends inside the window: the threshold's fall back is explained, and the learned weeks said
    ended = _frame(model=["farrington"] * 140 + ["recent"] * 8 + ["farrington"] * 8, upperbound=[5.0] * 140 + [12.0] * 8 + [5.0] * 8)
    assert _caption(draw_series(_result(ended), week_start=W09, annotations=[])) == (
        f"The threshold falls from about 12 to 5 in the week of {(W09 - timedelta(weeks=7)):%-d %b %Y} as the baseline "
        f"leaves its learned level; a learned new level (thick line, {(W09 - timedelta(weeks=15)):%-d %b %Y} to "
        f"{(W09 - timedelta(weeks=8)):%-d %b %Y}) takes the recent weeks' rate as normal.")  # fmt: skip


def test_the_nowcast_annotations_and_reported_week_are_kept():
    history = _frame(nowcast=[np.nan] * 155 + [9.0], nowcast_low=[np.nan] * 155 + [6.0], nowcast_high=[np.nan] * 155 + [14.0])
    old = EARTHQUAKE.__class__(date(2021, 6, 1), "an older event")
    fig = draw_series(_result(history, complete_share=0.4), week_start=W09, annotations=[EARTHQUAKE, old])
    main, strip = _axes(fig, "main"), _axes(fig, "context")
    green = tuple(int(NOWCAST[i : i + 2], 16) / 255 for i in (1, 3, 5))
    band = [p for c in main.containers for p in c if p.get_facecolor()[:3] == pytest.approx(green)]
    assert [(p.get_y(), p.get_height()) for p in band] == [(6.0, 8.0)]
    assert "still filling: nowcast, 90 % (40% of the reported week in)" in _legend(fig)
    assert [t.get_text() for t in main.texts if "earthquake" in t.get_text()] == ["2023-02-06 Turkey–Syria earthquake"]
    assert [t.get_text() for t in strip.texts if "older" in t.get_text()] == ["2021-06-01 an older event"]
    assert "reported week" in _legend(fig)


def test_short_and_undecided_histories_still_draw(tmp_path):
    for label in ("Quneitra", "Daraa"):
        path = plot_series(_series(label), week_start=RESULT.week_start, annotations=[EARTHQUAKE], path=tmp_path / f"{label}.png")
        assert path.stat().st_size > 10_000


def test_empty_history_and_far_annotations_do_not_fail(tmp_path):
    empty = replace(_series("Homs"), history=_series("Homs").history.iloc[0:0])
    far = [EARTHQUAKE.__class__(date(1990, 1, 1), "long ago")]
    path = plot_series(empty, week_start=RESULT.week_start, annotations=far, path=tmp_path / "empty.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_input_gives_the_same_png(tmp_path):
    a = plot_series(_series("Hama"), week_start=RESULT.week_start, annotations=[EARTHQUAKE], path=tmp_path / "a.png")
    b = plot_series(_series("Hama"), week_start=RESULT.week_start, annotations=[EARTHQUAKE], path=tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()


def test_a_long_title_pushes_the_subtitle_under_it_and_nothing_overlaps():
    base = _series("Homs")
    long = replace(base, series=replace(base.series, title="Islamic State and affiliated armed groups' attacks on civilians"))
    for r in (base, long):
        fig = draw_series(r, week_start=W09, annotations=[EARTHQUAKE])
        fig.canvas.draw()
        title, subtitle = fig.texts[0].get_window_extent(), fig.texts[1].get_window_extent()
        assert not title.overlaps(subtitle) and title.x1 <= fig.bbox.width and subtitle.x1 <= fig.bbox.width
        strip = _axes(fig, "context").get_tightbbox()
        assert strip.y1 <= min(title.y0, subtitle.y0)
