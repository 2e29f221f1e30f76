"""The detectors, registered in a plain dict, and the helpers the CLI and config use on them.

Every detector is a frozen parameter model plus ``detect(counts, params, *, weeks)``:
`counts` is a weekly, zero-filled pandas Series indexed by week start, `weeks` the 0-based
positions to evaluate. The result has one row per position with the columns
``week_start, count, expected, upperbound, alarm, score, pvalue``, then the detector's
own columns, ending with ``note`` (why a week is undecided). `alarm` is pandas "boolean",
NA when undecided. A detector MAY add a pandas "boolean" column ``warning``: the week passes
the detector's looser, warning-level rule (ESSENCE's yellow, where `alarm` is red); it is
True wherever `alarm` is True and NA wherever `alarm` is NA. A detector whose `pvalue` is
a single-week test but which also alarms by a chart MAY add a "boolean" column
``chart_alarm``: alarms raised by the chart alone, which false-discovery-rate control keeps. A problem in one week is data
(NaN + note), never an exception.
"""

from __future__ import annotations

import difflib
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from monitor.detectors import (
    _common,
    cusum,
    ears,
    farrington,
    farrington_cusum,
    glrnb,
    nb_recent,
    rules,
    signals,
)
from monitor.errors import DetectorError


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: its parameter model, `detect`, `min_history` and one-line summary.

    stateful: the detector carries a chart from week to week (CUSUM, GLR): its answer for a
    week depends on where the monitored run starts, so callers must start it at a fixed place.
    """

    name: str
    params: type[BaseModel]
    detect: Callable[..., pd.DataFrame]
    min_history: Callable[[BaseModel], int]
    summary: str
    stateful: bool = False
    #: optional ``detect_many(series, params, weeks)``: `detect` on many series at once, the
    #: same frames faster (the batch engine); callers without a fallback may use it.
    detect_many: Callable[..., list[pd.DataFrame]] | None = None
    #: optional ``detect_table(series, params, weeks)``: `detect_many`'s frames as one frame, series after
    #: series (``pd.concat(frames, ignore_index=True)``), without a frame per series (`run_detector_table`).
    detect_table: Callable[..., pd.DataFrame] | None = None
    #: optional ``detect_cuts_many(series, params, cuts)``: for each series and each (start, end) of its cuts, the
    #: row of the week at `end` of the chart run start..end on the counts up to `end`, as `detect` gives it
    #: (`monitor backtest` replays each week so), one frame per series; only for a detector whose every other
    #: figure of a week looks only backwards from it.
    detect_cuts_many: Callable[..., list[pd.DataFrame]] | None = None
    #: optional ``series_min_history(params, counts)``: `min_history` for this series' calendar.
    series_min_history: Callable[[BaseModel, pd.Series], int] | None = None
    #: optional ``in_control_weeks(params)``: the most weeks a stateful detector fits its
    #: in-control model on, just before its chart (0: all of them); the weekly job starts the
    #: chart of a short series late enough to give the model that many (`detection.chart_start`).
    in_control_weeks: Callable[[BaseModel], int] | None = None
    #: what it does in plain words: the report's Method section
    method: str = ""
    #: optional ``nominal_rate(params)``: the false-alert rate per series and week that its alarm rule
    #: states for these parameters (a mapping): alpha, plus a chart's 1/ARL0; NaN where they state none
    nominal_rate: Callable[[Mapping[str, Any]], float] | None = None
    #: its own `score` is on the exceedance scale, and stands in where (observed - expected) /
    #: (threshold - expected) is undefined: the threshold not above the expected count
    own_score: bool = False


#: What each detector does, in plain words: the report's Method section (`DetectorSpec.method`).
_METHODS = {
    "farrington": (
        "Farrington flexible (Noufaily et al. 2013, as in R `surveillance`): a quasi-Poisson regression on the same "
        "weeks of the past `b` years (± `w` weeks) with a trend and down-weighting of past surges; the threshold is the "
        "upper limit of the prediction interval at level `alpha`."
    ),
    "farrington-cusum": (
        "Farrington flexible (Noufaily et al. 2013, as in R `surveillance`) at level `alpha`, combined with a CUSUM: "
        "each week's count becomes a normal score under Farrington's negative-binomial model, the scores above `cusum_k` "
        "accumulate, and an alarm is raised when a single week passes the threshold shown (the single-week threshold) "
        "or the accumulated excess reaches `cusum_h`, so a rise spread over two or three weeks is caught too (the "
        "details then name the weeks behind it). After an alarm the CUSUM restarts at `hold` × `cusum_h`, so a rise "
        "that goes on stays one continuing alert. The baseline learns a new level: when the last `recent_window` weeks "
        "are together significantly above Farrington's expectation for them (at `shift_alpha`) and most of them are above "
        "it, the expected count is raised by their ratio of observed to expected (drawn thicker on the chart), so a "
        "settled escalation stops alarming within that many weeks."
    ),
    "nb-recent": (
        "Negative-binomial bound on the recent level, for short or sparse history: the expected count is the mean of "
        "the last `window` weeks (leaving out the `gap` weeks just before) plus half an event, never zero; the "
        "dispersion comes from its own one-week-ahead errors (at least `phi_min`); an alarm when the chance of this "
        "count or more is at most `alpha` (the threshold shown is never below one event), or when a CUSUM of the "
        "weeks' normal scores reaches `cusum_h` (a rise over several weeks)."
    ),
    "ears": (
        "EARS C1/C2/C3 (CDC Early Aberration Reporting System): mean and standard deviation of the last few weeks; "
        "an alarm when the count is above the mean plus a multiple of the standard deviation. Meant for short histories."
    ),
    "acled-surge": (
        "ACLED Subnational Surge Tracker rule: an alarm when this week's events are at least twice the mean of the "
        "previous 4 weeks, only where that mean is at least 1 event a week."
    ),
    "acled-threat": (
        "ACLED Threat Tracker rule: an alarm when the mean of the last 4 weeks is at least twice the weekly mean of the "
        "previous 52 weeks."
    ),
    "glrnb": (
        "Negative-binomial GLR-CUSUM (Höhle & Paul 2008, as R `surveillance::glrnb`): accumulates evidence of a "
        "sustained rise since some past week against a seasonal model of the (at most two) years before; suited to slow surges."
    ),
    "cusum": (
        "CUSUM of standardised counts (as R `surveillance::cusum`, restarting after each alarm): accumulates "
        "excesses over the expected count (a seasonal model of the (at most two) years before), so several moderately "
        "high weeks in a row raise an alarm."
    ),
    "highest-in": (
        "OCHA HDX Signals rule: an alarm when the last weeks' total is the highest in 3 years (a warning at 1 year), "
        "above a floor."
    ),
    "trendfinder": (
        "ACLED Trendfinder bands: this week against the mean of the previous weeks; a large increase (> +25 %) is an "
        "alarm, a moderate one (+10 to +25 %) a warning; a low baseline (≤ 2 a week, ≤ 5 this week) is never a rise."
    ),
}

def _alpha(params: Mapping[str, Any]) -> float:
    """An alarm rule "p-value <= alpha"."""
    return float(params["alpha"])


def _ears_rate(params: Mapping[str, Any]) -> float:
    """EARS C1 and C2 alarm at p <= alpha; C3's statistic has no p-value."""
    return math.nan if str(params.get("method", "C1")).upper() == "C3" else float(params["alpha"])


def _chart_rate(params: Mapping[str, Any]) -> float:
    """A single-week test at alpha OR a CUSUM of normal scores: alpha plus the chart's 1/ARL0."""
    from monitor.detectors._nb import arl0

    return float(params["alpha"]) + 1 / arl0(float(params["cusum_k"]), float(params["cusum_h"]))


DETECTORS: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in (
        DetectorSpec(
            "farrington",
            farrington.FarringtonParams,
            farrington.detect,
            farrington.min_history,
            farrington.SUMMARY,
            detect_many=farrington.detect_many,
            detect_table=farrington.detect_table,
            series_min_history=farrington.series_min_history,
            method=_METHODS["farrington"],
            nominal_rate=_alpha,
        ),
        DetectorSpec("ears", ears.EarsParams, ears.detect, ears.min_history, ears.SUMMARY, method=_METHODS["ears"],
                     nominal_rate=_ears_rate),  # fmt: skip
        DetectorSpec("nb-recent", nb_recent.NbRecentParams, nb_recent.detect, nb_recent.min_history, nb_recent.SUMMARY, stateful=True,
                     detect_cuts_many=nb_recent.detect_cuts_many, method=_METHODS["nb-recent"], nominal_rate=_chart_rate),  # fmt: skip
        DetectorSpec("acled-surge", rules.AcledSurgeParams, rules.detect_surge, rules.surge_min_history, rules.SURGE_SUMMARY,
                     method=_METHODS["acled-surge"]),  # fmt: skip
        DetectorSpec("acled-threat", rules.AcledThreatParams, rules.detect_threat, rules.threat_min_history, rules.THREAT_SUMMARY,
                     method=_METHODS["acled-threat"]),  # fmt: skip
        DetectorSpec(
            "highest-in", signals.HighestInParams, signals.detect_highest_in, signals.highest_in_min_history, signals.HIGHEST_IN_SUMMARY,
            method=_METHODS["highest-in"], own_score=True,
        ),  # fmt: skip
        DetectorSpec(
            "trendfinder", signals.TrendfinderParams, signals.detect_trendfinder, signals.trendfinder_min_history, signals.TRENDFINDER_SUMMARY,
            method=_METHODS["trendfinder"], own_score=True,
        ),  # fmt: skip
        DetectorSpec(
            "glrnb", glrnb.GlrnbParams, glrnb.detect, glrnb.min_history, glrnb.SUMMARY, stateful=True,
            in_control_weeks=glrnb.in_control_weeks, method=_METHODS["glrnb"],
        ),  # fmt: skip
        DetectorSpec(
            "cusum", cusum.CusumParams, cusum.detect, cusum.min_history, cusum.SUMMARY, stateful=True,
            in_control_weeks=cusum.in_control_weeks, method=_METHODS["cusum"],
        ),  # fmt: skip
        DetectorSpec(
            "farrington-cusum",
            farrington_cusum.FarringtonCusumParams,
            farrington_cusum.detect,
            farrington_cusum.min_history,
            farrington_cusum.SUMMARY,
            stateful=True,
            detect_many=farrington_cusum.detect_many,
            detect_cuts_many=farrington_cusum.detect_cuts_many,
            series_min_history=farrington_cusum.series_min_history,
            method=_METHODS["farrington-cusum"],
            nominal_rate=_chart_rate,
        ),
    )
}


#: The detector that judges the weeks a series' own detector has too little history for
#: (Farrington needs years): a negative-binomial bound on the recent level, made for short,
#: sparse, overdispersed counts (`monitor.detectors.nb_recent`). EARS stays available by name.
FALLBACK = "nb-recent"


def detector_method(name: str) -> str:
    """What the detector called `name` does, in plain words (the report's Method section)."""
    spec = DETECTORS.get(name)
    return spec.method if spec is not None and spec.method else "A registered detector (see `monitor detectors`)."


def nominal_rate(name: str, params: Mapping[str, Any] | None) -> float:
    """The false-alert rate per series and week that detector `name` states for `params`; NaN if none."""
    spec = DETECTORS.get(name)
    if spec is None or spec.nominal_rate is None or not params:
        return math.nan
    try:
        return float(spec.nominal_rate(params))
    except (KeyError, TypeError, ValueError):
        return math.nan


def get_detector(name: str) -> DetectorSpec:
    """The registered detector called `name`; DetectorError naming it and the valid names otherwise."""
    try:
        return DETECTORS[name]
    except (KeyError, TypeError):
        pass
    close = difflib.get_close_matches(str(name).strip().lower(), DETECTORS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise DetectorError(f"unknown detector '{name}'{hint}; valid detectors: {', '.join(sorted(DETECTORS))}")


def make_params(name: str, values: Mapping[str, Any]) -> BaseModel:
    """Validate `values` (strings from the command line are fine) into `name`'s parameter model.

    Raises DetectorError with one line per problem, e.g.
    ``detector farrington: parameter 'alpah' is unknown (did you mean 'alpha'?)``.
    """
    spec = get_detector(name)
    try:
        return spec.params.model_validate(dict(values))
    except ValidationError as exc:
        raise DetectorError("; ".join(_explain(name, spec.params, values, err) for err in exc.errors())) from None


def _explain(name: str, model: type[BaseModel], values: Mapping[str, Any], err: Mapping[str, Any]) -> str:
    fields = list(model.model_fields)
    loc = err.get("loc") or ()
    field = str(loc[0]) if loc else ""
    if err.get("type") == "extra_forbidden":
        close = difflib.get_close_matches(field, fields, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"valid parameters: {', '.join(fields)}"
        return f"detector {name}: parameter '{field}' is unknown ({hint})"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    msg = msg[:1].lower() + msg[1:]
    if not field:  # a rule across several parameters (model validator)
        return f"detector {name}: {msg}"
    raw = values.get(field, err.get("input"))
    return f"detector {name}: {field}={raw!r} is invalid: {msg}"


def parse_param_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """Turn ``["reweight=true", "limit54=5,4"]`` into ``{"reweight": "true", "limit54": "5,4"}``.

    Values stay strings: `make_params` converts them. A pair without '=', with an empty
    name, or a name given twice raises DetectorError.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise DetectorError(f"detector parameter '{pair}' is not name=value (e.g. alpha=0.01)")
        if key in out:
            raise DetectorError(f"detector parameter '{key}' is given twice ({key}={out[key]}, {key}={value.strip()}): keep one")
        out[key] = value.strip()
    return out


def run_detector(
    name: str,
    params: BaseModel,
    counts: pd.Series,
    *,
    weeks: Sequence[int],
    fallback: str = FALLBACK,
    fallback_params: BaseModel | None = None,
    chart_start: int = 0,
) -> pd.DataFrame:
    """Run detector `name` on the positions `weeks` of `counts`, with a short-history fallback.

    Parameters:
        name: a registered detector.
        params: its validated parameter model (see `make_params`).
        counts: weekly, zero-filled counts indexed by week start.
        weeks: 0-based positions to evaluate.
        fallback: detector run on positions that have fewer than ``min_history(params)``
            weeks before them; "" for none. Default `FALLBACK` (nb-recent, which needs 5
            weeks). Positions too short for the fallback as well are left to `name` itself
            (alarm NA and its note, plus the fallback's requirement).
        fallback_params: the fallback's parameters (e.g. from the config's
            [detectors.nb-recent]); None: its defaults.
        chart_start: first position `name` itself judges (a stateful detector's chart start,
            see `detection.chart_start`); earlier positions are judged by the fallback as if
            their history were too short (without a fallback, by `name` from the first of
            `weeks`). 0: wherever `min_history` allows.

    Returns the detector column contract, with the fallback's extra columns added where
    they differ, and the columns `detector` (the detector actually used) and
    `fallback_from` ("" or `name`) just before `note`.
    """
    return run_detector_many(
        name, params, [counts], weeks=[weeks], fallback=fallback, fallback_params=fallback_params, chart_starts=[chart_start]
    )[0]


def run_detector_many(
    name: str,
    params: BaseModel,
    series: Sequence[pd.Series],
    *,
    weeks: Sequence[Sequence[int]],
    fallback: str = FALLBACK,
    fallback_params: BaseModel | None = None,
    chart_starts: Sequence[int] | None = None,
) -> list[pd.DataFrame]:
    """`run_detector` on many series at once (`weeks[i]` are the positions of `series[i]`,
    `chart_starts[i]` its `chart_start`; None: 0 for every series).

    The frames equal those of one `run_detector` call per series; detectors with a batch
    engine (`DetectorSpec.detect_many`) fit all series in one call, which is what makes a
    global weekly run (thousands of series) take seconds instead of minutes.
    """
    spec, plans, needs, chart_starts, fb_spec, fb_params, fb_need = _plan(
        name, params, series, weeks=weeks, fallback=fallback, fallback_params=fallback_params, chart_starts=chart_starts
    )
    own_idx = [i for i, (_, own, _, _) in enumerate(plans) if own is not None]
    own_out = _many(spec, params, [(series[i], [plans[i][0][k] for k in plans[i][1]]) for i in own_idx])
    fb_idx = [i for i, (_, _, _, backup) in enumerate(plans) if backup]
    fb_out = _many(fb_spec, fb_params, [(series[i], [plans[i][0][k] for k in plans[i][3]]) for i in fb_idx]) if fb_idx else []
    own_of, fb_of = dict(zip(own_idx, own_out)), dict(zip(fb_idx, fb_out))

    results = []
    for i, (pos, own, neither, backup) in enumerate(plans):
        parts: list[pd.DataFrame] = []
        if own is not None:
            out = own_of[i].set_axis(own)
            out["detector"] = name
            out["fallback_from"] = ""
            if fb_spec and neither:
                extra = f"{_label(fb_spec.name, fb_params)} fallback needs {fb_need} weeks"
                out.loc[neither, "note"] = [_join(note, extra) for note in out.loc[neither, "note"]]
            parts.append(out)
        if backup:
            out = fb_of[i].set_axis(backup)
            out["detector"] = fb_spec.name
            out["fallback_from"] = name
            out["note"] = [
                _join(_before(name, needs[i], chart_starts[i], pos[k]) + f": {_label(fb_spec.name, fb_params)} used", note)
                for k, note in zip(backup, out["note"])
            ]
            parts.append(out)
        columns: list[str] = []
        for part in parts:
            columns += [c for c in part.columns if c not in columns and c not in ("detector", "fallback_from", "note")]
        columns += ["detector", "fallback_from", "note"]
        frames = [p.reindex(columns=columns) for p in parts]
        result = frames[0] if len(frames) == 1 else pd.concat(frames)
        result = result.sort_index().reset_index(drop=True)
        result["alarm"] = result["alarm"].astype("boolean")
        results.append(result)
    return results


def run_detector_table(
    name: str,
    params: BaseModel,
    series: Sequence[pd.Series],
    *,
    weeks: Sequence[Sequence[int]],
    fallback: str = FALLBACK,
    fallback_params: BaseModel | None = None,
    chart_starts: Sequence[int] | None = None,
) -> pd.DataFrame:
    """`run_detector_many`'s frames as one frame, series after series (``pd.concat(frames, ignore_index=True)``).

    Where the detector itself judges every week asked for (none is too early for it: the usual
    case of `monitor detect` on long series), the frame is built in one pass from the batch
    engine's (`DetectorSpec.detect_table`) instead of a frame per series; otherwise the
    frames of `run_detector_many` are put together. At least one series.
    """
    spec, plans, _, _, _, _, _ = _plan(
        name, params, series, weeks=weeks, fallback=fallback, fallback_params=fallback_params, chart_starts=chart_starts
    )
    if not all(pos and not neither and not backup for pos, _, neither, backup in plans):
        return pd.concat(
            run_detector_many(name, params, series, weeks=weeks, fallback=fallback, fallback_params=fallback_params,
                              chart_starts=chart_starts),  # fmt: skip
            ignore_index=True,
        )
    jobs = [(counts, pos) for counts, (pos, _, _, _) in zip(series, plans)]
    if spec.detect_table is not None and len(jobs) > 1:
        table = spec.detect_table([c for c, _ in jobs], params, [w for _, w in jobs])
    else:
        table = pd.concat(_many(spec, params, jobs), ignore_index=True)
    # what run_detector_many adds to each frame: the detector used, no fallback, `note` last
    table["detector"] = name
    table["fallback_from"] = ""
    table = table[[c for c in table.columns if c not in ("detector", "fallback_from", "note")] + ["detector", "fallback_from", "note"]]
    table["alarm"] = table["alarm"].astype("boolean")
    return table


def _plan(
    name: str,
    params: BaseModel,
    series: Sequence[pd.Series],
    *,
    weeks: Sequence[Sequence[int]],
    fallback: str,
    fallback_params: BaseModel | None,
    chart_starts: Sequence[int] | None,
) -> tuple[DetectorSpec, list[tuple[list[int], list[int] | None, list[int], list[int]]], list[int], list[int],
           DetectorSpec | None, BaseModel | None, int]:  # fmt: skip
    """Which weeks of each series the detector judges and which its fallback does (`run_detector_many`).

    Returns the detector, per series (positions, indexes into them the detector runs on or None,
    those too early for the fallback too, those the fallback judges), the history each series
    needs, the chart starts, and the fallback with its parameters and the history it needs.
    """
    spec = get_detector(name)
    if not isinstance(params, spec.params):
        raise DetectorError(f"detector {name}: parameters must be {spec.params.__name__}, not {type(params).__name__}")
    if len(series) != len(weeks):
        raise ValueError(f"run_detector_many needs one list of weeks per series (got {len(series)} and {len(weeks)})")
    chart_starts = [0] * len(series) if chart_starts is None else list(chart_starts)
    if len(chart_starts) != len(series):
        raise ValueError(f"run_detector_many needs one chart start per series (got {len(series)} and {len(chart_starts)})")
    need = spec.min_history(params)
    fb_spec = get_detector(fallback) if fallback and fallback != name else None
    fb_params = (fallback_params or fb_spec.params()) if fb_spec else None
    fb_need = fb_spec.min_history(fb_params) if fb_spec else 0

    needs = [spec.series_min_history(params, c) if spec.series_min_history else need for c in series]
    plans = []  # per series: positions, (main + neither) keys, neither keys, backup keys
    for counts, w, need, chart in zip(series, weeks, needs, chart_starts):
        pos = _common.check_positions(counts, w)
        first = max(need, chart) if fb_spec else need  # without a fallback, nothing else can judge them
        main = [k for k, t in enumerate(pos) if t >= first]
        backup = [k for k, t in enumerate(pos) if t < first and fb_spec and t >= fb_need]
        neither = [k for k, t in enumerate(pos) if t < first and not (fb_spec and t >= fb_need)]
        own = sorted(main + neither) if (main or neither or not pos) else None
        plans.append((pos, own, neither, backup))
    return spec, plans, needs, chart_starts, fb_spec, fb_params, fb_need


def _many(spec: DetectorSpec, params: BaseModel, jobs: list[tuple[pd.Series, list[int]]]) -> list[pd.DataFrame]:
    """`spec`'s frames for (counts, positions) jobs: one batched call where the detector has a batch engine."""
    if spec.detect_many is not None and len(jobs) > 1:
        return spec.detect_many([c for c, _ in jobs], params, [w for _, w in jobs])
    return [spec.detect(c, params, weeks=w) for c, w in jobs]


def _before(name: str, need: int, chart: int, t: int) -> str:
    if t < need:
        return f"too little history for {name} (needs {need} weeks, has {t})"
    return f"before the {name} chart's start (week {chart + 1} of the series, after its in-control weeks)"


def _label(name: str, params: BaseModel) -> str:
    return f"EARS {params.method}" if name == "ears" else name


def apply_min_count(frame: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """No week with fewer than `min_count` events alerts or warns, whatever the detector.

    Sets `alarm` (and `warning`, `chart_alarm`, `single_alarm`) to False on decided weeks
    below the floor, raises `upperbound` to at least min_count − 1 (alarm ⇔ count above it
    still reads right) and adds the boolean column `floor_ok` that `monitor.severity` reads
    so such a week is not tested for a warning either. Returns a copy.
    """
    out = frame.copy()
    count = pd.to_numeric(out["count"], errors="coerce").to_numpy(dtype=float)
    below = np.nan_to_num(count, nan=0.0) < min_count
    decided = ~out["alarm"].isna().to_numpy()
    hit = below & decided
    if min_count > 0 and hit.any():
        was = out["alarm"].fillna(False).to_numpy(dtype=bool) & hit
        for col in ("alarm", "warning", "chart_alarm", "single_alarm"):
            if col in out:
                values = out[col].astype("boolean").array
                missing = values.isna()
                data = values.to_numpy(dtype=bool, na_value=False)
                data[hit & ~missing] = False
                out[col] = pd.arrays.BooleanArray(data, missing)
        if "note" in out and was.any():
            notes = out["note"].astype(str).to_numpy(dtype=object)
            notes[was] = [_join(n, f"fewer than min_count = {min_count} events: not an alert") for n in notes[was]]
            out["note"] = notes
    if min_count > 0 and "upperbound" in out:  # the threshold shown is never below the floor
        upper = pd.to_numeric(out["upperbound"], errors="coerce").to_numpy(dtype=float)
        out["upperbound"] = np.where(decided, np.fmax(upper, float(min_count - 1)), upper)
    out["floor_ok"] = ~below
    return out


def _join(first: str, second: str) -> str:
    return "; ".join(s for s in (first, second) if s)


def describe() -> list[dict[str, Any]]:
    """Every detector with its summary and parameters (name, type, default, description)."""
    out = []
    for spec in DETECTORS.values():
        parameters = []
        for field_name, info in spec.params.model_fields.items():
            default = info.get_default(call_default_factory=True)
            parameters.append(
                {
                    "name": field_name,
                    "type": _type_name(info.annotation),
                    "default": default,
                    "description": info.description or "",
                }
            )
        out.append({"name": spec.name, "summary": spec.summary, "parameters": parameters})
    return out


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))
