"""The detector registry: names, parameter parsing and messages, nb-recent fallback, describe()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.detectors import (
    DETECTORS,
    describe,
    get_detector,
    make_params,
    parse_param_pairs,
    run_detector,
)
from monitor.detectors._common import CORE_COLUMNS
from monitor.detectors.ears import EarsParams
from monitor.detectors.nb_recent import NbRecentParams
from monitor.errors import DetectorError


def _series(values) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2021-01-04", periods=len(values), freq="7D"), name="count")


def test_registered_names():
    assert set(DETECTORS) == {
        "farrington", "ears", "glrnb", "cusum", "acled-surge", "acled-threat", "highest-in", "trendfinder", "farrington-cusum",
        "nb-recent",
    }
    for name, spec in DETECTORS.items():
        assert spec.name == name and spec.summary
        assert spec.params.model_config.get("frozen") and spec.params.model_config.get("extra") == "forbid"


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("farington", "farrington"), ("Ears", "ears"), ("acled_surge", "acled-surge"), ("acled-threats", "acled-threat"),
     ("glr-nb", "glrnb"), ("cusums", "cusum"), ("highest_in", "highest-in"), ("trend-finder", "trendfinder")],
)
def test_unknown_detector_suggests_the_nearest(name, suggestion):
    with pytest.raises(DetectorError) as err:
        get_detector(name)
    assert str(err.value) == (
        f"unknown detector '{name}' (did you mean '{suggestion}'?); "
        "valid detectors: acled-surge, acled-threat, cusum, ears, farrington, farrington-cusum, glrnb, highest-in, nb-recent, trendfinder"
    )


def test_unknown_detector_without_a_near_name():
    with pytest.raises(DetectorError, match=r"^unknown detector 'shewhart'; valid detectors: acled-surge, "):
        get_detector("shewhart")


def test_unknown_parameter_messages():
    with pytest.raises(DetectorError) as err:
        make_params("farrington", {"alpah": "0.01"})
    assert str(err.value) == "detector farrington: parameter 'alpah' is unknown (did you mean 'alpha'?)"
    with pytest.raises(DetectorError) as err:
        make_params("ears", {"minSigma": "1"})
    assert str(err.value) == "detector ears: parameter 'minSigma' is unknown (did you mean 'min_sigma'?)"
    with pytest.raises(DetectorError) as err:
        make_params("acled-surge", {"zzz": "1"})
    assert str(err.value) == "detector acled-surge: parameter 'zzz' is unknown (valid parameters: ratio, window, min_mean)"


def test_invalid_value_messages():
    with pytest.raises(DetectorError, match=r"^detector farrington: limit54='5;4' is invalid: .+"):
        make_params("farrington", {"limit54": "5;4"})
    with pytest.raises(DetectorError) as err:
        make_params("ears", {"method": "C4"})
    assert str(err.value) == "detector ears: method='C4' is invalid: input should be 'C1', 'C2' or 'C3'"
    with pytest.raises(DetectorError) as err:
        make_params("ears", {"baseline": "2", "alpha": "x"})
    assert str(err.value) == (
        "detector ears: baseline='2' is invalid: input should be greater than or equal to 3; "
        "detector ears: alpha='x' is invalid: input should be a valid number, unable to parse string as a number"
    )
    with pytest.raises(DetectorError, match=r"^detector ears: r_c3=true applies only to method C3"):
        make_params("ears", {"r_c3": "true"})
    with pytest.raises(DetectorError, match="unknown detector 'nope'"):
        make_params("nope", {})


def test_string_values_are_coerced():
    p = make_params("ears", parse_param_pairs(["method=c2", "baseline=10", "alpha=0.01", "min_sigma=0.5"]))
    assert p == EarsParams(method="C2", baseline=10, alpha=0.01, min_sigma=0.5)
    f = make_params("farrington", parse_param_pairs(["reweight=false", "limit54=5,4", "b=3", "alpha=0.005"]))
    assert (f.reweight, tuple(f.limit54), f.b, f.alpha) == (False, (5, 4), 3, 0.005)
    assert make_params("acled-threat", {"baseline": "26", "ratio": "1.5"}).baseline == 26
    assert make_params("acled-surge", {}) == DETECTORS["acled-surge"].params()


def test_parse_param_pairs():
    assert parse_param_pairs(["reweight=true", "limit54=5,4", " alpha = 0.01 ", "note=a=b"]) == {
        "reweight": "true",
        "limit54": "5,4",
        "alpha": "0.01",
        "note": "a=b",
    }
    assert parse_param_pairs([]) == {}
    with pytest.raises(DetectorError, match=r"'alpha' is not name=value \(e\.g\. alpha=0\.01\)"):
        parse_param_pairs(["alpha"])
    with pytest.raises(DetectorError, match="not name=value"):
        parse_param_pairs(["=3"])
    with pytest.raises(DetectorError, match="'b' is given twice"):
        parse_param_pairs(["b=3", "b=5"])


def test_fallback_to_nb_recent_on_a_short_series():
    from monitor.detectors.nb_recent import NbRecentParams
    from monitor.detectors.nb_recent import detect as nb_detect

    rng = np.random.default_rng(3)
    counts = _series(rng.poisson(3, 40).tolist())
    params = make_params("farrington", {})
    need = DETECTORS["farrington"].series_min_history(params, counts)  # by the series' calendar
    assert 40 < need <= DETECTORS["farrington"].min_history(params)
    out = run_detector("farrington", params, counts, weeks=range(40))

    assert tuple(out.columns[:7]) == CORE_COLUMNS
    assert list(out.columns[-3:]) == ["detector", "fallback_from", "note"]
    assert str(out["alarm"].dtype) == "boolean"
    early, late = out.iloc[:5], out.iloc[5:]
    # Weeks 5..39: nb-recent with its defaults, exactly what nb_recent.detect gives (its chart from week 5).
    assert (late["detector"] == "nb-recent").all() and (late["fallback_from"] == "farrington").all()
    nb = nb_detect(counts, NbRecentParams(), weeks=range(5, 40))
    for column in ("expected", "upperbound", "score", "pvalue", "phi"):
        np.testing.assert_allclose(late[column].to_numpy(), nb[column].to_numpy())
    assert late["alarm"].tolist() == nb["alarm"].tolist()
    assert late["note"].iloc[0] == f"too little history for farrington (needs {need} weeks, has 5): nb-recent used"
    # Weeks 0..4: too short for nb-recent as well, undecided under the configured detector.
    assert (early["detector"] == "farrington").all() and (early["fallback_from"] == "").all()
    assert early["alarm"].isna().all()
    assert early["note"].str.endswith("nb-recent fallback needs 5 weeks").all()


@pytest.mark.parametrize(("start", "first"), [("2001-01-01", 158), ("2001-02-19", 159)])
def test_farrington_takes_over_from_the_fallback_where_r_starts_fitting(start, first):
    # R finds "3 years back" by date: 156 or 157 rows depending on the calendar, and fits as
    # soon as the oldest window reaches no more than one week before the series.
    counts = pd.Series(np.full(first + 2, 4.0), index=pd.date_range(start, periods=first + 2, freq="7D"))
    params = make_params("farrington", {"b": "3", "w": "3"})
    out = run_detector("farrington", params, counts, weeks=[first - 1, first, first + 1])
    assert out["detector"].tolist() == ["nb-recent", "farrington", "farrington"]
    assert out.loc[0, "note"].startswith(f"too little history for farrington (needs {first} weeks, has {first - 1})")
    assert out["alarm"].iloc[1:].notna().all()


def test_fallback_rows_keep_the_requested_order_and_columns():
    counts = _series([2] * 52 + [1, 3, 2, 9, 2])
    params = make_params("acled-threat", {})
    out = run_detector("acled-threat", params, counts, weeks=[56, 3, 20, 55])
    assert out["week_start"].tolist() == [counts.index[t] for t in (56, 3, 20, 55)]
    assert out["detector"].tolist() == ["acled-threat", "acled-threat", "nb-recent", "acled-threat"]
    assert out["fallback_from"].tolist() == ["", "", "acled-threat", ""]
    # Extra columns of both detectors are kept, NaN where the other one ran.
    assert list(out.columns[7:-3]) == ["recent_mean", "phi", "z", "single_alarm", "chart_alarm", "chart_pvalue", "why"]
    assert np.isnan(out.loc[2, "recent_mean"]) and np.isnan(out.loc[0, "phi"])


def test_no_fallback():
    counts = _series([1] * 30)
    out = run_detector("acled-threat", make_params("acled-threat", {}), counts, weeks=range(30), fallback="")
    assert out["alarm"].isna().all()
    assert (out["detector"] == "acled-threat").all() and (out["fallback_from"] == "").all()
    assert out.loc[29, "note"] == "too little history for acled-threat (needs 55 weeks, has 29)"
    with pytest.raises(DetectorError, match="unknown detector 'earz'"):
        run_detector("acled-threat", make_params("acled-threat", {}), counts, weeks=[29], fallback="earz")


def test_enough_history_uses_the_configured_detector():
    counts = _series([2, 2, 2, 2, 4, 1])
    out = run_detector("acled-surge", make_params("acled-surge", {}), counts, weeks=[4, 5])
    assert out["detector"].tolist() == ["acled-surge"] * 2
    assert out["alarm"].tolist() == [True, False]
    assert run_detector("ears", EarsParams(), counts, weeks=[]).columns[-3:].tolist() == ["detector", "fallback_from", "note"]


def test_wrong_params_model():
    with pytest.raises(DetectorError, match="parameters must be FarringtonParams, not EarsParams"):
        run_detector("farrington", EarsParams(), _series([1] * 10), weeks=[9])


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_quiet_on_zeros_and_leaves_inputs_alone(name):
    counts = _series([0] * 420)
    before = counts.copy()
    weeks = list(range(400, 420))
    out = run_detector(name, make_params(name, {}), counts, weeks=weeks)
    pd.testing.assert_series_equal(counts, before)
    assert weeks == list(range(400, 420))
    assert len(out) == 20 and tuple(out.columns[:7]) == CORE_COLUMNS and out.columns[-1] == "note"
    assert not out["alarm"].fillna(False).any()


def test_describe_covers_every_field():
    entries = {e["name"]: e for e in describe()}
    assert set(entries) == set(DETECTORS)
    for name, spec in DETECTORS.items():
        entry = entries[name]
        assert entry["summary"] == spec.summary
        assert [p["name"] for p in entry["parameters"]] == list(spec.params.model_fields)
        defaults = spec.params()
        for p in entry["parameters"]:
            assert p["description"], f"{name}.{p['name']} has no description"
            assert p["default"] == getattr(defaults, p["name"])
            assert p["type"]
    assert {p["name"]: p["type"] for p in entries["ears"]["parameters"]}["method"] == "C1|C2|C3"


@pytest.mark.parametrize("name", ["farrington", "farrington-cusum", "ears"])
def test_run_detector_many_equals_one_call_per_series(name):
    """The global weekly run batches series; its frames must be those of one call per series,
    fallback weeks (short series) and NA weeks (too short even for EARS) included."""
    from monitor.detectors import run_detector_many

    rng = np.random.default_rng(5)
    lengths = [300, 300, 260, 120, 40, 6]  # long, shorter, EARS fallback, below every minimum
    series = []
    for i, n in enumerate(lengths):
        values = rng.poisson(3 + i, size=n).astype(float)
        values[-1] += 12 * (i % 2)  # a surge in every other series
        start = pd.Timestamp("2017-01-02") + pd.Timedelta(weeks=300 - n)  # all end the same week
        series.append(pd.Series(values, index=pd.date_range(start, periods=n, freq="7D"), name="count"))
    weeks = [list(range(max(0, len(s) - 30), len(s))) for s in series]
    params = make_params(name, {})
    together = run_detector_many(name, params, series, weeks=weeks)
    alone = [run_detector(name, params, s, weeks=w) for s, w in zip(series, weeks)]
    assert len(together) == len(alone)
    for a, b in zip(together, alone):
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    assert any((f["detector"] == "nb-recent").any() for f in together[:-1]) or name == "ears"
    assert any(f["alarm"].fillna(False).any() for f in together)


@pytest.mark.parametrize(("name", "lengths"), [("farrington", [300, 300, 280]), ("farrington", [300, 40, 6]), ("ears", [60, 60])])
def test_run_detector_table_is_the_frames_of_run_detector_many_put_together(name, lengths):
    """`monitor detect` takes all series' results as one frame: built in one pass where the detector judges
    every week itself (long series), from the frames otherwise (fallback and NA weeks); the same frame either way."""
    from monitor.detectors import run_detector_many, run_detector_table

    rng = np.random.default_rng(7)
    series = []
    for i, n in enumerate(lengths):
        values = rng.poisson(2 + i, size=n).astype(float)
        values[-1] += 15
        start = pd.Timestamp("2017-01-02") + pd.Timedelta(weeks=300 - n)
        series.append(pd.Series(values, index=pd.date_range(start, periods=n, freq="7D"), name="count"))
    weeks = [list(range(max(0, len(s) - 20), len(s))) for s in series]
    params = make_params(name, {})
    table = run_detector_table(name, params, series, weeks=weeks)
    pd.testing.assert_frame_equal(table, pd.concat(run_detector_many(name, params, series, weeks=weeks), ignore_index=True), check_exact=True)
    assert table["alarm"].fillna(False).any()


def test_detection_split_over_processes_equals_one_process(monkeypatch):
    """A large group of series is split over spawned worker processes; the frames must be the
    ones a single process computes (the chunks are contiguous and each series is independent)."""
    from monitor import detection
    from monitor.parallel import Engine
    from monitor.types import WeeklySeries

    rng = np.random.default_rng(11)
    series = [
        WeeklySeries(key=f"s/{i}", definition="s", labels=(("admin1", str(i)),), metric="events", detector="farrington-cusum",
                     params={}, counts=_series(rng.poisson(2 + i % 4, size=220).astype(float)))
        for i in range(7)
    ]  # fmt: skip
    models = [("farrington-cusum", make_params("farrington-cusum", {}))] * len(series)
    monkeypatch.setattr(detection, "PARALLEL_MIN_SERIES", 3)
    one = detection._detect_grouped(series, models, lookback=4, fallback_params=NbRecentParams(), engine=Engine(workers=1))
    two = detection._detect_grouped(series, models, lookback=4, fallback_params=NbRecentParams(), engine=Engine(workers=2))
    assert len(one) == len(two) == 7
    for a, b in zip(one, two):
        pd.testing.assert_frame_equal(a, b)


def test_chunks_are_contiguous_and_cover_everything():
    from monitor.parallel import chunks

    assert chunks(list(range(7)), 2) == [[0, 1, 2, 3], [4, 5, 6]]
    assert chunks([1, 2], 5) == [[1], [2]]
    assert chunks([], 3) == []


def _pid_after_sigterm(job):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGTERM)  # what systemd sends every process of the service on stop
    return job * 2


def test_workers_ignore_sigterm_so_the_parent_finishes_its_week():
    from monitor.parallel import pmap

    assert pmap(_pid_after_sigterm, [1, 2, 3], workers=2) == [2, 4, 6]


def _die_in_a_worker(job):
    import multiprocessing
    import os
    import signal

    if multiprocessing.parent_process() is not None:  # in a worker: as if the OOM killer struck
        os.kill(os.getpid(), signal.SIGKILL)
    return job + 1


def test_a_killed_worker_means_the_work_is_done_in_this_process():
    from monitor.parallel import pmap

    assert pmap(_die_in_a_worker, [1, 2], workers=2) == [2, 3]


def test_a_killed_worker_mid_stream_means_the_rest_is_done_in_this_process():
    from monitor.parallel import Engine, imap

    jobs = iter(range(6))  # a generator: only a window of jobs is in flight when the worker dies
    assert list(imap(_die_in_a_worker, jobs, engine=Engine(workers=2), window=2)) == [1, 2, 3, 4, 5, 6]


def test_workers_of_a_stream_ignore_sigterm_too():
    from monitor.parallel import Engine, imap

    assert list(imap(_pid_after_sigterm, iter([1, 2, 3, 4]), engine=Engine(workers=2), window=2)) == [2, 4, 6, 8]


def test_normal_and_t_functions_equal_scipy_stats():
    """The detectors use scipy.special directly (scipy.stats takes most of a second to import);
    the values, NaN and infinities included, must be scipy.stats' own."""
    from scipy import stats

    from monitor.detectors._dist import norm_isf, norm_ppf, norm_sf, t_sf

    q = np.array([0.0, 1e-300, 1e-12, 0.002, 0.5, 0.975, 1.0, np.nan, -0.1, 1.1])
    np.testing.assert_array_equal(norm_ppf(q), stats.norm.ppf(q))
    np.testing.assert_array_equal(norm_isf(q), stats.norm.isf(q))
    x = np.array([-np.inf, -40.0, -1.5, 0.0, 2.3, 38.0, np.inf, np.nan])
    np.testing.assert_array_equal(norm_sf(x), stats.norm.sf(x))
    for loc, scale in ((1.5, 2.0), (0.0, 0.0), (1.0, -1.0), (2.0, np.nan)):
        with np.errstate(all="ignore"):  # scipy divides by the bad scale before it checks it
            expected = stats.norm.sf(x, loc=loc, scale=scale)
        np.testing.assert_array_equal(norm_sf(x, loc=loc, scale=scale), expected)
    for df in (1.0, 3.5, 120.0, 0.0, -2.0, np.nan):
        np.testing.assert_array_equal(t_sf(x, df), stats.t.sf(x, df))
    assert isinstance(norm_sf(1.0, loc=0.5, scale=2.0), float) and norm_sf(1.0, 0.5, 2.0) == stats.norm.sf(1.0, 0.5, 2.0)
