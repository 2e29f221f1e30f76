"""Farrington flexible against R surveillance 1.20.3 (`../shared/reference/*.ff_*.csv`).

Cases come from manifest.csv: one per ff_* file. The parameters are read from the exact R
call recorded there (R's defaults filling in what the call leaves out) and the monitored
range from range_first_index/range_last_index.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import assert_close, load_reference, reference_cases
from pydantic import ValidationError

import monitor.detectors.farrington_model as F
from monitor.detectors.farrington import (
    COLUMNS,
    FarringtonParams,
    detect,
    detect_statsmodels,
    min_history,
    series_min_history,
)
from monitor.detectors.reference import params_from_r_call

CASES = reference_cases("ff_")


def _load(row, shared_reference):
    case = load_reference(row, shared_reference)
    return case.counts, case.golden, case.weeks, FarringtonParams.model_validate(case.params)


@pytest.mark.parametrize("row", CASES)
def test_matches_r_surveillance(row, shared_reference):
    counts, golden, weeks, params = _load(row, shared_reference)
    before = counts.copy()
    out = detect(counts, params, weeks=weeks)

    pd.testing.assert_series_equal(counts, before)  # input untouched
    assert list(out.columns) == list(COLUMNS)
    assert (out["week_start"] == golden["week_start"]).all()
    assert (out["count"] == golden["count"]).all()
    assert_close(out["expected"], golden["expected"], "expected")
    assert_close(out["upperbound"], golden["upperbound"], "upperbound")
    r_alarm = golden["alarm"].astype("boolean")
    assert out["alarm"].isna().tolist() == r_alarm.isna().tolist(), "alarm: NA in different weeks"
    assert (out["alarm"].fillna(False) == r_alarm.fillna(False)).all(), "alarms differ"
    assert int(out["alarm"].sum()) == int(row["n_alarms"])

    # The model behind the numbers: dispersion, trend decision and p-value agree too.
    assert_close(out["phi"], golden["phi"], "phi")
    assert (out["trend_used"].astype(int) == golden["trend_used"]).all(), "trend decision differs"
    assert_close(out["trend_coef"], golden["trend_coef"], "trend_coef")
    assert_close(out["pvalue"], golden["pvalue"], "pvalue")
    if params.threshold_method == "delta":
        assert_close(out["score"], golden["score"], "score")  # R's score is on the link scale otherwise
    else:
        assert_close(out["mu0"], golden["mu0"], "mu0")  # R's mu0 is not meaningful for delta
    limit54 = out["note"].str.contains("limit54")
    assert (limit54 == golden["expected"].isna()).all()


def test_r_control_parsing_reads_the_package_defaults():
    call = "farringtonFlexible(sts, control = list(range = 265:290, structure(list(), names = character(0))))"
    detector, values = params_from_r_call(call)
    params = FarringtonParams.model_validate(values)
    assert detector == "farrington"
    assert (params.b, params.w, params.alpha, params.weights_threshold) == (5, 3, 0.05, 2.58)
    assert (params.no_periods, params.past_weeks_not_included, params.threshold_method) == (1, 3, "delta")
    assert params.p_threshold_trend == 0.05 and params.limit54 == (5, 4)


# -- parameters --------------------------------------------------------------------------------


def test_defaults_are_noufaily_2013():
    p = FarringtonParams()
    assert (p.b, p.w, p.reweight, p.weights_threshold, p.alpha) == (3, 3, True, 2.58, 0.005)
    assert (p.trend, p.p_threshold_trend, p.limit54, p.powertrans) == (True, 1.0, (5, 4), "2/3")
    assert (p.no_periods, p.past_weeks_not_included, p.threshold_method) == (10, 26, "nbPlugin")
    assert all(info.description for info in FarringtonParams.model_fields.values())
    with pytest.raises(ValidationError):
        p.b = 5  # frozen


def test_parameters_parse_from_command_line_strings():
    p = FarringtonParams.model_validate(
        {
            "b": "5",
            "w": "2",
            "reweight": "false",
            "weights_threshold": "1",
            "alpha": "0.05",
            "trend": "no",
            "p_threshold_trend": "0.05",
            "limit54": " 3 , 2 ",
            "powertrans": "NONE",
            "no_periods": "1",
            "past_weeks_not_included": "2",
            "threshold_method": "NBPLUGIN",
        }
    )
    assert (p.b, p.w, p.reweight, p.weights_threshold, p.alpha, p.trend) == (5, 2, False, 1.0, 0.05, False)
    assert (p.p_threshold_trend, p.limit54, p.powertrans, p.no_periods) == (0.05, (3, 2), "none", 1)
    assert (p.past_weeks_not_included, p.threshold_method) == (2, "nbPlugin")
    assert FarringtonParams(threshold_method="Muan", limit54=[5, 4], powertrans="1/2").threshold_method == "muan"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"b": "0"}, "greater than or equal to 1"),
        ({"w": "-1"}, "greater than or equal to 0"),
        ({"alpha": "0"}, "greater than 0"),
        ({"alpha": "1"}, "less than 1"),
        ({"weights_threshold": "0"}, "greater than 0"),
        ({"p_threshold_trend": "1.5"}, "less than or equal to 1"),
        ({"no_periods": "0"}, "greater than or equal to 1"),
        ({"past_weeks_not_included": "-3"}, "greater than or equal to 0"),
        ({"limit54": "5"}, "two whole numbers 'cases,weeks', e.g. 5,4"),
        ({"limit54": "five,4"}, "two whole numbers 'cases,weeks', e.g. 5,4"),
        ({"limit54": "5,0"}, "cases >= 0 and weeks >= 1"),
        ({"limit54": "-1,4"}, "cases >= 0 and weeks >= 1"),
        ({"powertrans": "3/4"}, "powertrans must be one of 2/3, 1/2, none"),
        ({"threshold_method": "poisson"}, "threshold_method must be one of delta, nbPlugin, muan"),
        ({"no_periods": "50"}, "no_periods=50 is too large for w=3"),
        ({"reweight": "maybe"}, "valid boolean"),
        ({"alpah": "0.01"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_parameters_say_what_is_allowed(values, message):
    with pytest.raises(ValidationError) as exc:
        FarringtonParams.model_validate(values)
    assert message in str(exc.value)


def test_min_history_covers_every_start_date():
    # The week nearest to t0 - b years is 52·b + 0..2 rows back depending on dates, and R
    # drops the index 0 of a window one week short: at min_history rows R fits whatever the calendar.
    p = FarringtonParams(no_periods=1, past_weeks_not_included=3)
    need = min_history(p)
    assert need == 159
    rng = np.random.default_rng(7)
    for start in pd.date_range("2000-01-03", periods=60, freq="5W-MON"):
        counts = pd.Series(rng.poisson(4.0, need + 1).astype(float), index=pd.date_range(start, periods=need + 1, freq="7D"))
        out = detect(counts, p, weeks=[need])
        assert "history" not in out.loc[0, "note"], (start, out.loc[0, "note"])


@pytest.mark.parametrize(("b", "w"), [(1, 0), (1, 1), (2, 2), (3, 3), (4, 3), (5, 3), (5, 6), (9, 2)])
def test_min_history_is_where_r_starts_fitting(b, w):
    # With the series' first date, min_history is the first position whose reference weeks
    # R finds (the reference path's own rule: it raises "too little history" one week
    # before); without, the most any calendar needs, which some calendar does need.
    p = FarringtonParams(b=b, w=w, no_periods=1, past_weeks_not_included=0)
    worst = 0
    for start in pd.date_range("1999-12-27", "2009-01-05", freq="6D").date:  # every weekday, leap years, 29 Feb
        first = min_history(p, start)
        days = [start + timedelta(weeks=i) for i in range(first + 1)]
        position_of = {d: i for i, d in enumerate(days)}
        refs = F.reference_weeks(days, position_of, first, b)
        F.seasonal_blocks(len(days), refs, w, 1, days)  # fits
        with pytest.raises(F.TooLittleHistory):
            refs = F.reference_weeks(days, position_of, first - 1, b)
            F.seasonal_blocks(len(days), refs, w, 1, days)
        worst = max(worst, first)
    assert worst == min_history(p)


def test_both_engines_fit_from_min_history_on():
    # The batch engine and the reference path agree on the first fitted week of any calendar,
    # and series_min_history (what the EARS fallback consults) is that week.
    p = FarringtonParams(b=3, w=3, no_periods=1, past_weeks_not_included=3, threshold_method="delta")
    rng = np.random.default_rng(5)
    firsts = set()
    for start in pd.date_range("2000-10-02", periods=7, freq="4W-MON"):
        counts = pd.Series(rng.poisson(6.0, 165).astype(float), index=pd.date_range(start, periods=165, freq="7D"))
        first = series_min_history(p, counts)
        assert first == min_history(p, start.date())
        firsts.add(first)
        weeks = [first - 1, first, first + 1]
        for out in (detect(counts, p, weeks=weeks), detect_statsmodels(counts, p, weeks=weeks)):
            assert out.loc[0, "note"].startswith("too little history") and pd.isna(out.loc[0, "alarm"])
            assert out["alarm"].iloc[1:].notna().all(), out["note"].tolist()
    assert firsts == {158, 159}  # 3 years back is 156 or 157 rows, the window may reach one row before


# -- behaviour on short or degenerate series ------------------------------------------------------


def test_too_little_history_is_a_note_not_an_error():
    counts = pd.Series(np.full(120, 6.0), index=pd.date_range("2020-01-06", periods=120, freq="7D"))
    out = detect(counts, FarringtonParams(), weeks=[0, 60, 119])
    assert list(out.columns) == list(COLUMNS)
    assert out["alarm"].isna().all()
    assert out[["expected", "upperbound", "mu0", "phi"]].isna().all().all()
    assert all(note.startswith("too little history: needs the week of") for note in out["note"])
    assert "(3 years back, b=3)" in out.loc[2, "note"]
    assert out["week_start"].tolist() == list(counts.index[[0, 60, 119]])


def test_limit54_leaves_bounds_undefined_and_never_alarms():
    rng = np.random.default_rng(3)
    values = rng.poisson(3.0, 220).astype(float)
    values[-4:] = [0, 0, 4, 0]  # 4 cases in the last 4 weeks
    counts = pd.Series(values, index=pd.date_range("2015-01-05", periods=220, freq="7D"))
    out = detect(counts, FarringtonParams(), weeks=[219])
    row = out.loc[0]
    assert np.isnan(row["expected"]) and np.isnan(row["upperbound"])
    assert not pd.isna(row["alarm"]) and not row["alarm"]  # R: decided, no alarm
    assert row["note"] == "fewer than 5 cases in the last 4 weeks (limit54)"
    assert row["phi"] >= 1 and not np.isnan(row["pvalue"])


def test_surge_alarms_and_quiet_week_does_not():
    rng = np.random.default_rng(11)
    values = rng.poisson(20.0, 230).astype(float)
    values[228] = 80.0
    counts = pd.Series(values, index=pd.date_range("2016-01-04", periods=230, freq="7D"))
    for method in ("nbPlugin", "muan", "delta"):
        out = detect(counts, FarringtonParams(threshold_method=method), weeks=[227, 228])
        assert out["alarm"].tolist() == [False, True], method
        assert out.loc[1, "count"] > out.loc[1, "upperbound"] > out.loc[1, "expected"]
        assert out.loc[1, "score"] > 1 and out.loc[1, "pvalue"] < 0.005


def test_degenerate_series_never_raise():
    idx = pd.date_range("2015-01-05", periods=300, freq="7D")
    sparse = np.zeros(300)
    sparse[[20, 75, 160, 296, 297, 298, 299]] = [3, 1, 2, 4, 9, 1, 2]
    for values in (np.zeros(300), sparse, np.r_[np.zeros(295), [0, 3, 5, 9, 40]], np.full(300, 1e6)):
        counts = pd.Series(values, index=idx)
        for method in ("nbPlugin", "muan", "delta"):
            out = detect(counts, FarringtonParams(threshold_method=method), weeks=[170, 296, 299])
            assert len(out) == 3
            assert out["alarm"].notna().all() or out["note"].str.startswith("model failed").any()
            alarmed = out["alarm"].fillna(False).to_numpy(dtype=bool)
            assert not (alarmed & (out["count"] == 0)).any()
            assert (out.loc[alarmed, "score"] > 1).all()


def test_missing_count_is_a_note():
    values = np.full(200, 5.0)
    values[190] = np.nan
    counts = pd.Series(values, index=pd.date_range("2015-01-05", periods=200, freq="7D"))
    out = detect(counts, FarringtonParams(), weeks=[190])
    assert out.loc[0, "note"] == "count is missing" and pd.isna(out.loc[0, "alarm"])


def test_bad_arguments_raise():
    counts = pd.Series([1.0, 2.0], index=pd.date_range("2020-01-06", periods=2, freq="7D"))
    with pytest.raises(IndexError):
        detect(counts, FarringtonParams(), weeks=[2])
    with pytest.raises(ValueError, match="consecutive weeks"):
        detect(counts.set_axis(pd.DatetimeIndex(["2020-01-06", "2020-02-03"])), FarringtonParams(), weeks=[0])
    with pytest.raises(TypeError):
        detect(pd.Series([1.0, 2.0]), FarringtonParams(), weeks=[0])
