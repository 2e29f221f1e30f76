"""The surge, episode and catch arithmetic of scripts/bench_alarms.py, on hand-made series (no CLI run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_alarms.py"


@pytest.fixture(scope="module")
def ba():
    spec = importlib.util.spec_from_file_location("bench_alarms", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_alarms"] = module
    spec.loader.exec_module(module)
    return module


#: 12 quiet weeks of 1 event, then 4 weeks of 3 (sum 12 >= 10; 8 weeks before: sum 8), then 2 quiet weeks.
SERIES = [1.0] * 12 + [3.0] * 4 + [1.0] * 2


def test_surge_flags_level_and_sum_readings(ba):
    level = ba.surge_flags(SERIES, "level")
    # t = 12: S4 = 1+1+1+3 = 6 < 10; t = 14: 1+3+3+3 = 10 >= 10 and >= 2 x 8/2; t = 15: 12 >= 8
    assert [t for t, f in enumerate(level) if f] == [14, 15, 16]
    # t = 16: S4 = 3+3+3+1 = 10, S8 = y[5..12] = 7+3 = 10 -> 10 >= 10 (level) but not >= 20 (sum)
    assert [t for t, f in enumerate(ba.surge_flags(SERIES, "sum")) if f] == []
    assert ba.surge_flags([0.0] * 11 + [50.0], "level") == [False] * 11 + [True]
    assert not any(ba.surge_flags([50.0] * 11, "level"))  # too little history before the 4-week window
    with pytest.raises(ValueError):
        ba.surge_flags(SERIES, "twice")


def test_episodes_are_runs_of_surge_weeks_clipped_to_the_range(ba):
    flags = [False, True, True, False, True, False, True, True]
    assert ba.surge_episodes(flags) == [(1, 2), (4, 4), (6, 7)]
    assert ba.surge_episodes(flags, 2, 6) == [(2, 2), (4, 4), (6, 6)]
    assert ba.episode_window(10, 12, "window") == (7, 12)
    assert ba.episode_window(10, 12, "surge") == (10, 12)


def test_catch_and_burden_outside_surges(ba):
    alerts = {t: t in (3, 8, 9, 20) for t in range(0, 26)}
    score = ba.score_surges(alerts, [(2, 5), (10, 12)], lo=0, hi=25)
    assert (score.surges, score.caught) == (2, 1)
    # weeks outside the windows: 26 - 4 - 3 = 19, alerts there at 8, 9, 20; episodes start at 8 and 20
    assert (score.outside_weeks, score.outside_alerts, score.outside_onsets) == (19, 3, 2)
    assert score.per_series_year == pytest.approx(3 / (19 / 52))
    total = ba.SurgeScore()
    total.add(score)
    total.add(score)
    assert (total.surges, total.caught, total.outside_alerts, total.outside_weeks) == (4, 2, 6, 38)


def test_first_alert_delay(ba):
    alerts = {9: True, 10: False, 12: True}
    assert ba.first_alert(alerts, 10) == -1
    assert ba.first_alert({12: True}, 10) == 2
    assert ba.first_alert({19: True}, 10) is None  # later than onset + 8


def test_formula_guard_is_removed_from_cells(ba):
    assert ba._cell("'-IED") == "-IED"
    assert ba._cell("'quoted") == "'quoted"
