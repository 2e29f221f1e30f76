"""`highest-in` (OCHA HDX Signals) and `trendfinder` (ACLED Trendfinder) on hand-made series.

Right answers are computed here from the definitions (brute force, exact fractions), never
with the module's own helpers.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from monitor.detectors import DETECTORS, describe, make_params, run_detector
from monitor.detectors._common import CORE_COLUMNS
from monitor.detectors.signals import (
    HighestInParams,
    TrendfinderParams,
    detect_highest_in,
    detect_trendfinder,
    highest_in_min_history,
    trendfinder_min_history,
)
from monitor.errors import DetectorError


def _series(values) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2019-01-07", periods=len(values), freq="7D"), name="count", dtype=float)


def _last(detect, values, params):
    """The detector's row for the last week of `values`."""
    counts = _series(values)
    return detect(counts, params, weeks=[len(counts) - 1]).iloc[0]


def _check_warning_contract(out: pd.DataFrame) -> None:
    assert str(out["warning"].dtype) == "boolean"
    assert (out["alarm"].isna() == out["warning"].isna()).all()
    decided = out["alarm"].notna()
    assert not (out.loc[decided, "alarm"].astype(bool) & ~out.loc[decided, "warning"].astype(bool)).any()


# --- highest-in: window sum > every rolling window sum of the previous years x 52 weeks, and >= floor ---


def _highest_by_hand(values, t, *, window=4, years=3, warning_years=1, floor=10):
    """(window sum, previous max, alarm, warning) of week t, by brute force."""
    def s(u):
        return sum(values[u - window + 1 : u + 1])

    now = s(t)
    top = max(s(u) for u in range(t - years * 52, t))
    top_warn = max(s(u) for u in range(t - warning_years * 52, t))
    return now, top, now > top and now >= floor, now > top_warn and now >= floor


HIGHEST_CASES = [
    # (history of 52 weeks (window 1, years 1), this week, params, alarm, note contains)
    ([3] * 51 + [7], 8, {}, True, ""),
    ([3] * 51 + [7], 7, {}, False, "ties the highest of the previous 1 year: a tie is not a new high"),
    ([3] * 51 + [7], 6, {}, False, ""),
    ([2] * 52, 9, {"floor": 10}, False, "highest in 1 year but below the floor (9 < 10)"),
    ([2] * 52, 10, {"floor": 10}, True, ""),  # the floor is inclusive
    ([0] * 52, 1, {"floor": 0}, True, ""),
    ([0] * 52, 0, {"floor": 0}, False, "a tie is not a new high"),  # 0 ties 0
    ([12] + [3] * 51, 11, {}, False, ""),  # the old 12 is still inside the 52 weeks
    ([12] + [3] * 51 + [4], 11, {}, True, ""),  # one more week: the 12 has left the lookback
]


@pytest.mark.parametrize(("history", "this_week", "values", "alarm", "note"), HIGHEST_CASES)
def test_highest_in_rule(history, this_week, values, alarm, note):
    params = HighestInParams(**{"window": 1, "years": 1, "floor": 5, **values})
    counts = [100] * 3 + history + [this_week]  # weeks before the lookback must not matter
    row = _last(detect_highest_in, counts, params)
    t = len(counts) - 1
    now, top, by_hand, _ = _highest_by_hand(counts, t, window=1, years=1, floor=params.floor)
    assert by_hand is alarm
    assert (row["window_sum"], row["previous_max"]) == (now, top) == (this_week, max(counts[t - 52 : t]))
    assert bool(row["alarm"]) is alarm and bool(row["warning"]) is alarm  # warning_years = years
    assert row["expected"] == pytest.approx(sum(counts[t - 52 : t]) / 52)
    assert row["upperbound"] == max(params.floor, top + 1)
    assert row["score"] == pytest.approx(now / max(params.floor, top + 1))
    assert np.isnan(row["pvalue"])
    assert note in row["note"] and (note or row["note"] == "")


def test_highest_in_window_1_and_4_differ():
    # One past week of 12, otherwise 1 a week; the last four weeks 5 each.
    values = [1] * 20 + [12] + [1] * 40 + [5, 5, 5, 5]
    t = len(values) - 1
    weekly = _last(detect_highest_in, values, HighestInParams(window=1, years=1))
    assert (weekly["window_sum"], weekly["previous_max"], bool(weekly["alarm"])) == (5, 12, False)
    monthly = _last(detect_highest_in, values, HighestInParams(window=4, years=1))
    # previous 4-week sums: at most 12 + 1 + 1 + 1 = 15, and 5 + 5 + 5 + 1 = 16 the week before
    assert (monthly["window_sum"], monthly["previous_max"], bool(monthly["alarm"])) == (20, 16, True)
    assert _highest_by_hand(values, t, years=1)[:3] == (20, 16, True)
    # upperbound: a window sum of 17 is needed, the other three weeks give 15, so 2 this week
    assert monthly["upperbound"] == 2 and monthly["score"] == pytest.approx(20 / 17)
    assert monthly["expected"] == pytest.approx(sum(values[t - 52 : t]) / 52)


def test_highest_in_warning_is_the_looser_level():
    params = HighestInParams(window=1, years=2, warning_years=1, floor=0)
    history = [1] * 10 + [20] + [1] * 50 + [10] + [1] * 43  # 104 weeks: 20 in the older year, 10 in the last
    cases = {15: (False, True), 20: (False, True), 21: (True, True), 10: (False, False), 11: (False, True)}
    for this_week, (alarm, warning) in cases.items():
        row = _last(detect_highest_in, history + [this_week], params)
        assert (bool(row["alarm"]), bool(row["warning"])) == (alarm, warning), this_week
        assert row["previous_max"] == 20
    assert "ties the highest of the previous 2 years" in _last(detect_highest_in, history + [20], params)["note"]


def test_highest_in_matches_definition_on_a_long_series():
    rng = np.random.default_rng(3)
    values = rng.poisson(3.0, 400).astype(float)
    values[250:254] = [9, 14, 12, 8]
    values[330] = 30
    values = values.tolist()
    for params in (HighestInParams(), HighestInParams(window=1, years=2, warning_years=2, floor=0)):
        need = highest_in_min_history(params)
        out = detect_highest_in(_series(values), params, weeks=range(400))
        _check_warning_contract(out)
        for t in range(400):
            if t < need:
                assert pd.isna(out.loc[t, "alarm"]) and pd.isna(out.loc[t, "warning"])
                continue
            kw = params.model_dump()
            now, top, alarm, warning = _highest_by_hand(values, t, **kw)
            assert (out.loc[t, "window_sum"], out.loc[t, "previous_max"]) == (now, top)
            assert (bool(out.loc[t, "alarm"]), bool(out.loc[t, "warning"])) == (alarm, warning), t
        assert out["alarm"].fillna(False).sum() >= 2


def test_highest_in_upperbound_is_the_smallest_alarming_count():
    rng = np.random.default_rng(5)
    values = rng.poisson(2.0, 260).astype(float)
    values[200:203] = [10, 12, 9]
    for params in (HighestInParams(), HighestInParams(window=1, years=1, floor=3)):
        need = highest_in_min_history(params)
        out = detect_highest_in(_series(values), params, weeks=range(need, 260))
        assert out["alarm"].fillna(False).sum() >= 1
        for k, t in enumerate(range(need, 260)):
            ub = out.loc[k, "upperbound"]
            # at least 1: the window that ended last week holds this window's other weeks
            assert ub == int(ub) and ub >= 1
            assert bool(out.loc[k, "alarm"]) is bool(values[t] >= ub)
            trial = values.copy()
            trial[t] = ub
            assert bool(detect_highest_in(_series(trial), params, weeks=[t]).loc[0, "alarm"]) is True
            trial[t] = ub - 1
            assert bool(detect_highest_in(_series(trial), params, weeks=[t]).loc[0, "alarm"]) is False


def test_highest_in_short_history_and_missing_counts():
    params = HighestInParams()
    assert highest_in_min_history(params) == 159
    assert highest_in_min_history(HighestInParams(window=1, years=1)) == 52
    values = [1.0] * 200
    out = detect_highest_in(_series(values), params, weeks=[158, 159])
    assert pd.isna(out.loc[0, "alarm"]) and pd.isna(out.loc[0, "warning"])
    assert out.loc[0, "note"] == "too little history for highest-in (needs 159 weeks, has 158)"
    assert bool(out.loc[1, "alarm"]) is False and out.loc[1, "note"] == ""  # 4 ties 4, below the floor anyway

    values += [1.0] * 70
    values[100] = np.nan  # in the windows ending at weeks 100..103: compared by weeks 101..259, not by 260
    values[260] = 50
    out = detect_highest_in(_series(values), params, weeks=[259, 260])
    assert pd.isna(out.loc[0, "alarm"]) and pd.isna(out.loc[0, "warning"]) and np.isnan(out.loc[0, "upperbound"])
    assert out.loc[0, "note"] == "a count is missing in this week's 4-week window or in the 159 weeks before"
    assert bool(out.loc[1, "alarm"]) is True and out.loc[1, "previous_max"] == 4
    values[260] = np.nan
    out = detect_highest_in(_series(values), params, weeks=[260])
    assert pd.isna(out.loc[0, "alarm"]) and "missing" in out.loc[0, "note"]


def test_highest_in_params():
    assert HighestInParams.model_validate({"window": "1", "years": "2", "warning_years": "2", "floor": "100"}) == HighestInParams(
        window=1, years=2, warning_years=2, floor=100
    )
    for bad in [{"window": "0"}, {"years": "0"}, {"warning_years": "0"}, {"floor": "-1"}, {"years": "1.5"}, {"flor": "1"},
                {"years": "2", "warning_years": "3"}]:  # fmt: skip
        with pytest.raises(ValidationError):
            HighestInParams.model_validate(bad)
    with pytest.raises(DetectorError) as err:
        make_params("highest-in", {"years": "1", "warning_years": "2"})
    assert str(err.value) == (
        "detector highest-in: warning_years (2) must be at most years (1): the warning is the looser level"
    )
    assert all(f.description for f in HighestInParams.model_fields.values())
    assert "HDX" in HighestInParams.model_fields["floor"].description


# --- trendfinder: % change of this week against the mean of the previous weeks, in four bands ---


BAND_CASES = [
    # (baseline weeks, this week, band, % change)
    ([20, 20, 20, 20], 26, "large increase", 30),
    ([20, 20, 20, 20], 25, "moderate increase", 25),  # exactly +25 %: not "greater than 25 %"
    ([20, 20, 20, 20], 23, "moderate increase", 15),
    ([20, 20, 20, 20], 22, "limited change", 10),  # exactly +10 %: not moderate
    ([20, 20, 20, 20], 20, "limited change", 0),
    ([20, 20, 20, 20], 15, "limited change", -25),  # exactly -25 %: not "less than -25 %"
    ([20, 20, 20, 20], 14, "large decrease", -30),
    ([10, 10, 10, 10], 11, "limited change", 10),
    ([9, 10, 11, 10], 13, "large increase", 30),
    ([3, 3, 3, 4], 5, "large increase", Fraction(700, 13)),  # mean 3.25 > guard_mean: not guarded
    ([3, 3, 3, 4], 4, "moderate increase", Fraction(300, 13)),  # 4 is 23 % above 3.25
]


@pytest.mark.parametrize(("baseline", "this_week", "band", "pct"), BAND_CASES)
def test_trendfinder_bands(baseline, this_week, band, pct):
    row = _last(detect_trendfinder, [50] * 3 + baseline + [this_week], TrendfinderParams())
    mean = Fraction(sum(baseline), len(baseline))
    assert Fraction(100) * (this_week - mean) / mean == pct
    assert row["band"] == band
    assert row["pct_change"] == pytest.approx(float(pct))
    assert row["expected"] == pytest.approx(float(mean))
    assert row["score"] == pytest.approx(float(pct) / 25)
    assert bool(row["alarm"]) is (band == "large increase")
    assert bool(row["warning"]) is (band in ("large increase", "moderate increase"))
    assert np.isnan(row["pvalue"]) and row["note"] == ""


@pytest.mark.parametrize(
    ("baseline", "this_week", "params", "band", "note"),
    [
        ([2, 2, 2, 2], 5, {}, "limited change", "low baseline (mean 2 <= 2, count 5 <= 5): limited change, not large increase"),
        ([2, 2, 2, 2], 6, {}, "large increase", ""),
        ([2, 2, 2, 3], 5, {}, "large increase", ""),  # mean 2.25 > 2: no guard
        ([2, 2, 2, 2], 0, {}, "limited change", ""),  # -100 %, held back too, but only increases get a note
        ([1, 0, 0, 1], 2, {}, "limited change", "low baseline (mean 0.5 <= 2, count 2 <= 5): limited change, not large increase"),
        ([2, 2, 2, 2], 5, {"guard_mean": 1.5}, "large increase", ""),
        ([2, 2, 2, 2], 5, {"guard_count": 4}, "large increase", ""),
        ([2, 2, 2, 2], 2, {}, "limited change", ""),  # guarded, but limited anyway: no note
        ([2, 2, 2, 1], 2, {}, "limited change", "low baseline (mean 1.75 <= 2, count 2 <= 5): limited change, not moderate increase"),
    ],
)
def test_trendfinder_low_baseline_guard(baseline, this_week, params, band, note):
    row = _last(detect_trendfinder, baseline + [this_week], TrendfinderParams(**params))
    assert row["band"] == band
    assert row["note"] == note
    mean = sum(baseline) / 4
    assert row["pct_change"] == pytest.approx(100 * (this_week - mean) / mean)  # the % change is reported even when guarded


def test_trendfinder_zero_baseline():
    quiet = _last(detect_trendfinder, [0, 0, 0, 0, 0], TrendfinderParams())
    assert (quiet["pct_change"], quiet["band"], bool(quiet["alarm"]), quiet["note"]) == (0.0, "limited change", False, "")
    assert quiet["score"] == 0 and quiet["upperbound"] == 6  # guard: 6 is the smallest count above guard_count
    guarded = _last(detect_trendfinder, [0, 0, 0, 0, 3], TrendfinderParams())
    assert np.isinf(guarded["pct_change"]) and guarded["band"] == "limited change" and "not large increase" in guarded["note"]
    surge = _last(detect_trendfinder, [0, 0, 0, 0, 6], TrendfinderParams())
    assert np.isinf(surge["pct_change"]) and surge["pct_change"] > 0
    assert surge["band"] == "large increase" and bool(surge["alarm"]) and np.isnan(surge["score"])
    assert surge["note"] == "no events in the 4 baseline weeks: the % change is infinite (score undefined)"
    unguarded = TrendfinderParams(guard_mean=0, guard_count=0)
    first = _last(detect_trendfinder, [0, 0, 0, 0, 1], unguarded)
    assert first["band"] == "large increase" and first["upperbound"] == 1
    assert _last(detect_trendfinder, [0, 0, 0, 0, 0], unguarded)["band"] == "limited change"  # 0 / 0 is no change


def _band_by_hand(baseline, count, p=TrendfinderParams()):
    mean = Fraction(sum(baseline), len(baseline))
    if mean <= Fraction(p.guard_mean) and count <= p.guard_count:
        return "limited change"
    if mean == 0:
        return "large increase" if count > 0 else "limited change"
    pct = 100 * (Fraction(count) - mean) / mean
    if pct > Fraction(p.large):
        return "large increase"
    if pct > Fraction(p.moderate):
        return "moderate increase"
    if pct < Fraction(p.decrease):
        return "large decrease"
    return "limited change"


def test_trendfinder_matches_definition_on_a_long_series():
    rng = np.random.default_rng(17)
    values = np.concatenate([rng.poisson(1.2, 150), rng.poisson(8.0, 150), rng.poisson(30.0, 100)]).astype(int).tolist()
    for params in (TrendfinderParams(), TrendfinderParams(baseline=52), TrendfinderParams(baseline=3, large=50, moderate=50)):
        n = params.baseline
        out = detect_trendfinder(_series(values), params, weeks=range(len(values)))
        _check_warning_contract(out)
        for t in range(len(values)):
            if t < n:
                assert pd.isna(out.loc[t, "alarm"]) and out.loc[t, "band"] is None
                continue
            band = _band_by_hand(values[t - n : t], values[t], params)
            assert out.loc[t, "band"] == band, t
            assert bool(out.loc[t, "alarm"]) is (band == "large increase")
            assert bool(out.loc[t, "warning"]) is (band in ("large increase", "moderate increase"))
        assert set(out["band"].dropna()) <= {"large increase", "moderate increase", "limited change", "large decrease"}
        if params.moderate < params.large:
            assert set(out["band"].dropna()) == {"large increase", "moderate increase", "limited change", "large decrease"}
        else:
            assert "moderate increase" not in set(out["band"].dropna())  # an empty band


def test_trendfinder_upperbound_is_the_smallest_large_increase():
    rng = np.random.default_rng(23)
    values = np.concatenate([rng.poisson(1.0, 60), rng.poisson(12.0, 60)]).astype(float)
    for params in (TrendfinderParams(), TrendfinderParams(baseline=7, large=33.3, guard_mean=0, guard_count=0)):
        n = params.baseline
        out = detect_trendfinder(_series(values), params, weeks=range(n, 120))
        for k, t in enumerate(range(n, 120)):
            ub = out.loc[k, "upperbound"]
            assert ub == int(ub) and ub >= 1
            assert bool(out.loc[k, "alarm"]) is bool(values[t] >= ub)
            trial = values.copy()
            trial[t] = ub
            assert detect_trendfinder(_series(trial), params, weeks=[t]).loc[0, "band"] == "large increase"
            trial[t] = ub - 1
            assert detect_trendfinder(_series(trial), params, weeks=[t]).loc[0, "band"] != "large increase"


def test_trendfinder_short_history_and_missing_counts():
    params = TrendfinderParams()
    assert trendfinder_min_history(params) == 4 and trendfinder_min_history(TrendfinderParams(baseline=52)) == 52
    out = detect_trendfinder(_series([3, 3, 3, 3, 9, np.nan, 3, 3, 3, 3, 3]), params, weeks=[3, 4, 5, 8, 10])
    assert pd.isna(out.loc[0, "alarm"]) and out.loc[0, "note"] == "too little history for trendfinder (needs 4 weeks, has 3)"
    assert out.loc[1, "band"] == "large increase" and bool(out.loc[1, "alarm"])
    for k in (2, 3):  # the missing week itself, then a week whose baseline holds it
        assert pd.isna(out.loc[k, "alarm"]) and pd.isna(out.loc[k, "warning"]) and out.loc[k, "band"] is None
        assert np.isnan(out.loc[k, "pct_change"]) and np.isnan(out.loc[k, "upperbound"])
        assert out.loc[k, "note"] == "count is missing in this week or the previous 4 weeks"
    assert out.loc[4, "band"] == "limited change"  # the missing week has left the baseline


def test_trendfinder_params():
    assert TrendfinderParams.model_validate({"baseline": "52", "large": "30", "moderate": "30"}).baseline == 52
    for bad in [{"baseline": "0"}, {"large": "0"}, {"moderate": "-1"}, {"decrease": "5"}, {"decrease": "-101"},
                {"guard_mean": "-1"}, {"guard_count": "-1"}, {"large": "nan"}, {"moderate": "30"}, {"Large": "30"}]:  # fmt: skip
        with pytest.raises(ValidationError):
            TrendfinderParams.model_validate(bad)
    with pytest.raises(DetectorError) as err:
        make_params("trendfinder", {"moderate": "30"})
    assert str(err.value) == "detector trendfinder: moderate (30) must be at most large (25): the moderate band lies below the large one"
    assert all(f.description for f in TrendfinderParams.model_fields.values())


# --- shared contract and registry ---


@pytest.mark.parametrize(
    ("name", "detect", "params", "extras"),
    [
        ("highest-in", detect_highest_in, HighestInParams(years=1), ["window_sum", "previous_max", "warning"]),
        ("trendfinder", detect_trendfinder, TrendfinderParams(), ["pct_change", "band", "warning"]),
    ],
)
def test_contract(name, detect, params, extras):
    counts = _series(list(range(70)))
    before = counts.copy()
    out = detect(counts, params, weeks=[69, 2, 60])
    pd.testing.assert_series_equal(counts, before)
    assert tuple(out.columns[:7]) == CORE_COLUMNS
    assert list(out.columns[7:]) == [*extras, "note"]
    assert str(out["alarm"].dtype) == "boolean" and str(out["warning"].dtype) == "boolean"
    assert out["week_start"].tolist() == [counts.index[t] for t in (69, 2, 60)]
    assert out["pvalue"].isna().all()
    _check_warning_contract(out)
    assert DETECTORS[name].detect is detect and DETECTORS[name].params is type(params)
    assert detect(counts, params, weeks=[]).columns.tolist() == out.columns.tolist()


def test_registry_summaries_and_fallback():
    entries = {e["name"]: e for e in describe()}
    assert "OCHA HDX Signals" in entries["highest-in"]["summary"] and "strictly higher" in entries["highest-in"]["summary"]
    assert "ACLED Trendfinder" in entries["trendfinder"]["summary"]
    for name in ("highest-in", "trendfinder"):
        assert entries[name]["summary"].count(". ") == 0 and entries[name]["summary"].endswith(".")  # one sentence
    # Too little history for highest-in: EARS C1 steps in, and has no warning column values.
    counts = _series([2] * 150 + [9] + [2] * 49 + [20])
    out = run_detector("highest-in", make_params("highest-in", {}), counts, weeks=[150, 200])
    assert out["detector"].tolist() == ["nb-recent", "highest-in"] and "needs 159 weeks, has 150" in out.loc[0, "note"]
    assert pd.isna(out.loc[0, "warning"]) and bool(out.loc[1, "warning"]) and bool(out.loc[1, "alarm"])
    assert str(out["alarm"].dtype) == "boolean"


# --- real data: UCDP GED Syria 2016-2019, weekly fatalities per governorate ---


@pytest.fixture(scope="module")
def ucdp_fatalities(shared_db):
    from monitor.config import SeriesDefinition
    from monitor.series import build_series, combined_frame
    from monitor.store import Store

    with Store(shared_db("ucdp_ged_syria_2016-01-01_2019-11-30.csv"), read_only=True) as store:  # ingested once per test run
        records = combined_frame(store.incidents_frame(), None)
    definition = SeriesDefinition(name="deaths", group_by=["admin1"], metric="fatalities", min_events=10)
    return {s.key: s.counts for s in build_series(records, [definition], week=date(2019, 11, 25))}


def test_highest_in_on_ucdp_syria(ucdp_fatalities):
    assert len(ucdp_fatalities) >= 10
    flagged = {}
    for params in (HighestInParams(), HighestInParams(window=1, years=1, floor=25)):
        need = highest_in_min_history(params)
        lookback = params.years * 52
        for key, counts in ucdp_fatalities.items():
            out = detect_highest_in(counts, params, weeks=range(len(counts)))
            _check_warning_contract(out)
            sums = counts.rolling(params.window).sum().to_numpy()  # computed independently with pandas
            for t in range(need, len(counts)):
                earlier = sums[t - lookback : t]
                assert bool(out.loc[t, "alarm"]) is bool(sums[t] > earlier.max() and sums[t] >= params.floor), (key, t)
                if out.loc[t, "alarm"]:
                    assert (sums[t] > earlier).all()
                    flagged.setdefault(params.window, set()).add((key, counts.index[t].date().isoformat()))
            assert out.loc[: need - 1, "alarm"].isna().all()
    assert len(flagged[1]) > len(flagged[4]) > 0
    # Turkey's offensive into north-east Syria (Operation Peace Spring, from 9 October 2019):
    # Al Hasakeh's 4-week fatalities are at a 3-year high for four weeks running.
    hasakeh = sorted(week for key, week in flagged[4] if key == "deaths/admin1=Al Hasakeh")
    assert hasakeh == ["2019-10-07", "2019-10-14", "2019-10-21", "2019-10-28"]
