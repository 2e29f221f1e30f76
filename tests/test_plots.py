"""The PNG charts: a real image of the right size, with the alarm colour where alarms are."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from PIL import Image

from monitor.report.plots import ALARM, CURRENT, plot_series
from tests.helpers_result import EARTHQUAKE, make_result

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


@pytest.fixture(scope="module")
def homs(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "charts" / "homs.png"
    return plot_series(_series("Homs"), week_start=RESULT.week_start, annotations=[EARTHQUAKE], path=path)


def test_png_of_sensible_size(homs):
    assert homs.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(homs) as image:
        width, height = image.size
    assert 1100 <= width <= 1300 and 450 <= height <= 550
    assert 20_000 < homs.stat().st_size < 500_000
    assert not list(homs.parent.glob("*.tmp"))


def test_image_is_not_blank_and_shows_alarms_and_the_current_week(homs, tmp_path):
    pixels = _pixels(homs)
    white = (pixels >= 250).all(axis=2).mean()
    assert 0.3 < white < 0.97, "the chart is (nearly) blank or a solid block"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    alarm_pixels = _count(pixels, ALARM)
    assert _count(pixels, CURRENT) > 200, "the reported week is not highlighted"
    # a quiet series has the alarm colour only in its legend patch
    quiet = plot_series(_series("Raqqa"), week_start=RESULT.week_start, annotations=[], path=tmp_path / "raqqa.png")
    assert alarm_pixels > 3 * _count(_pixels(quiet), ALARM) > 0


def test_alarm_bars_sit_at_the_right_end_for_a_surge_this_week(homs):
    pixels = _pixels(homs)
    rgb = np.array([0xD6, 0x27, 0x28])
    columns = np.where((np.abs(pixels - rgb).max(axis=2) <= 12).any(axis=0))[0]
    assert columns.max() > 0.9 * pixels.shape[1], "the surge of February 2023 should be drawn at the right edge"


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
