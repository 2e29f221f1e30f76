"""Realistic RunResult fixtures for the report, plot and email tests.

The shape follows the founding example (docs/domain.md): Islamic State attacks in central
Syria, about 1 a week per governorate through 2020–2022, then a surge after the
6 February 2023 earthquake in Homs, Hama and Deir ez Zor. Counts are drawn with a fixed
seed; expected/threshold are a simple moving baseline standing in for a detector, with
NaN for the first weeks (too little history) so the charts must show gaps.
One incident note and one region label carry Markdown/HTML/formula injection.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pandas as pd

from monitor.detection import alert_status
from monitor.types import INCIDENT_FIELDS, Annotation, Detection, IngestResult, RunResult, SeriesResult, WeeklySeries

W09 = date(2023, 2, 27)  # ISO 2023-W09, the week after the 2023-02-27 landmine killings in Hama
GENERATED = datetime(2023, 3, 6, 6, 0, tzinfo=timezone.utc)
EARTHQUAKE = Annotation(date(2023, 2, 6), "Turkey–Syria earthquake")
INJECTION_NOTE = "Attack | **x** <script>alert(1)</script>\nsecond line with `code` and [link](http://evil) _u_"
INJECTION_ACTOR = '=HYPERLINK("http://evil","x")'
INJECTION_LABEL = "Al-Hasakah | [x](javascript:alert(1)) <b>"
FARRINGTON = {"b": 3, "w": 3, "alpha": 0.005, "threshold_method": "nbPlugin"}

#: admin1 -> (baseline events a week, counts of the surge weeks ending in W09 by week start)
PLACES: dict[str, tuple[float, dict[date, int]]] = {
    "Homs": (1.2, {date(2023, 2, 13): 7, date(2023, 2, 20): 8, date(2023, 2, 27): 9}),
    "Hama": (0.8, {date(2023, 2, 27): 6}),
    "Deir ez Zor": (1.5, {date(2023, 2, 20): 7, date(2023, 2, 27): 8}),
    "Raqqa": (1.0, {}),
    INJECTION_LABEL: (0.6, {}),
}


def _poisson_sf(k: float, mu: float) -> float:
    """P(X >= k) for X ~ Poisson(mu)."""
    if mu != mu or mu <= 0:
        return math.nan
    term, cdf = math.exp(-mu), 0.0
    for i in range(int(k)):
        cdf += term
        term *= mu / (i + 1)
    return max(0.0, 1.0 - cdf)


def _history(counts: pd.Series, *, window: int = 26, min_periods: int = 20) -> pd.DataFrame:
    """A stand-in detector output: moving-mean baseline, threshold = mean + 3 sd + 1."""
    expected = counts.shift(1).rolling(window, min_periods=min_periods).mean()
    upper = expected + 3 * np.sqrt(expected) + 1
    alarm = pd.array([pd.NA if e != e else bool(c > u) for c, e, u in zip(counts, expected, upper)], dtype="boolean")
    score = (counts - expected) / (upper - expected)
    pvalue = [_poisson_sf(c, e) for c, e in zip(counts, expected)]
    return pd.DataFrame(
        {
            "week_start": pd.DatetimeIndex(counts.index),
            "count": counts.to_numpy(dtype=float),
            "expected": expected.to_numpy(),
            "upperbound": upper.to_numpy(),
            "alarm": alarm,
            "score": score.to_numpy(),
            "pvalue": pvalue,
        }
    )


def _incidents(admin1: str, week: date, n: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for i in range(n):
        day = week + timedelta(days=int(rng.integers(0, 7)))
        rows.append(
            {
                "source": "acled",
                "source_id": f"SYR{admin1[:3].upper()}{week:%y%m%d}{i:02d}",
                "event_date": pd.Timestamp(day),
                "date_end": pd.Timestamp(day),
                "country": "Syria",
                "admin1": admin1,
                "admin2": {"Homs": "Tadmor", "Hama": "As-Salamiyeh", "Deir ez Zor": "Al Mayadin"}.get(admin1, "Centre"),
                "location": {"Homs": "Al-Sukhnah", "Hama": "Ithriya", "Deir ez Zor": "Kabajib"}.get(admin1, "Town"),
                "latitude": 34.9,
                "longitude": 38.9,
                "event_type": "Explosions/Remote violence" if i % 2 else "Violence against civilians",
                "sub_event_type": "Remote explosive/landmine/IED" if i % 2 else "Attack",
                "actor1": "Islamic State (Syria)",
                "actor2": "Civilians (Syria)" if i % 3 else "Military Forces of Syria (2000-)",
                "fatalities": int(rng.integers(0, 12)),
                "notes": f"On {day:%d %B %Y}, suspected IS militants attacked truffle collectors near {admin1}.",
                "revision": "1680000000",
            }
        )
    frame = pd.DataFrame(rows, columns=list(INCIDENT_FIELDS))
    if admin1 == "Homs" and n:
        frame.loc[0, "notes"] = INJECTION_NOTE + " " + "long text " * 40
        frame.loc[0, "actor2"] = INJECTION_ACTOR
        frame.loc[0, "fatalities"] = 68
    return frame


def make_result(
    *,
    week_start: date = W09,
    years: int = 3,
    synthetic: bool = False,
    generated_at: datetime = GENERATED,
    seed: int = 7,
) -> RunResult:
    """A RunResult for `week_start` with the central-Syria surge, a quiet series, an undecided one and an EARS fallback."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(end=pd.Timestamp(week_start), periods=52 * years + 1, freq="7D", name="week_start")
    results = []
    for admin1, (rate, surge) in PLACES.items():
        values = rng.poisson(rate, size=len(index)).astype(float)
        for day, count in surge.items():
            ts = pd.Timestamp(day)
            if ts in index:
                values[index.get_loc(ts)] = count
        counts = pd.Series(values, index=index, name="count")
        results.append(_series_result("is_attacks", "Islamic State events", (("admin1", admin1),), counts, week_start, rng))
    total = sum(r.series.counts for r in results)
    results.append(_series_result("is_attacks", "Islamic State events", (), total, week_start, rng))
    # a series with ten weeks of history: farrington could not run, EARS did (fallback)
    short = pd.Series(rng.poisson(2.0, size=10).astype(float), index=index[-10:], name="count")
    results.append(
        _series_result("violence", "Political violence events", (("admin1", "Quneitra"),), short, week_start, rng,
                       detector="ears", fallback_from="farrington")
    )
    # a series that could not be decided at all
    tiny = pd.Series(np.zeros(3), index=index[-3:], name="count")
    results.append(
        _series_result("violence", "Political violence events", (("admin1", "Daraa"),), tiny, week_start, rng,
                       undecided="too little history: 3 weeks, farrington needs 3 years")
    )
    return RunResult(
        week=f"{week_start.isocalendar()[0]}-W{week_start.isocalendar()[1]:02d}",
        week_start=week_start,
        week_end=week_start + timedelta(days=6),
        generated_at=generated_at,
        data_start=index[0].date(),
        records_total=4213,
        last_ingest=IngestResult(
            file="/srv/inbox/acled_syria_2023-03-06.csv", sha256="0" * 64, format="acled", source="acled",
            rows_read=190, inserted=187, updated=3, unchanged=0, rejected=0, ingested_at="2023-03-06T05:58:12+00:00",
        ),
        latest_event_date=week_start + timedelta(days=5),
        detectors={"farrington": dict(FARRINGTON), "ears": {"method": "C1", "alpha": 0.001, "baseline": 7}},
        results=tuple(results),
        annotations=(EARTHQUAKE,),
        synthetic=synthetic,
        notes=("1 series had too little history for their detector and were checked with nb-recent instead.",
               "1 series could not be decided this week (see the note column)."),
    )


def _series_result(name, title, labels, counts, week_start, rng, *, detector="farrington", fallback_from="", undecided=""):
    key = f"{name}/" + ("|".join(f"{k}={v}" for k, v in labels) or "total")
    # two deaths an event, every week: figures a test can work out (the incidents listed are a sample of their own)
    figures = pd.DataFrame({"events": counts.to_numpy(dtype=float), "fatalities": 2 * counts.to_numpy(dtype=float)},
                           index=counts.index)  # fmt: skip
    series = WeeklySeries(key=key, definition=name, labels=labels, metric="events", detector="farrington",
                          params=dict(FARRINGTON), counts=counts, title=title, figures=figures)
    history = _history(counts, window=7, min_periods=4) if fallback_from else _history(counts)
    if undecided:
        history = history.assign(expected=np.nan, upperbound=np.nan, score=np.nan, pvalue=np.nan,
                                 alarm=pd.array([pd.NA] * len(history), dtype="boolean"))
    last = history.iloc[-1]
    alarm = None if pd.isna(last["alarm"]) else bool(last["alarm"])
    detection = Detection(
        series=key, week_start=week_start, observed=float(last["count"]), expected=float(last["expected"]),
        threshold=float(last["upperbound"]), score=float(last["score"]), pvalue=float(last["pvalue"]), alarm=alarm,
        detector=detector, note=undecided, fallback_from=fallback_from,
    )
    weeks, status = alert_status(list(history["alarm"].tail(9)))
    admin1 = dict(labels).get("admin1", "")
    incidents = _incidents(admin1 or "Homs", week_start, min(int(last["count"]), 15), rng) if alarm else None
    return SeriesResult(series=series, detection=detection, history=history, weeks_in_alert=weeks, status=status,
                        trend=_trend(counts), incidents=incidents)


def _trend(counts: pd.Series) -> str:
    recent, before = counts.iloc[-4:].sum(), counts.iloc[-8:-4].sum()
    if len(counts) < 8 or (recent <= 5 and before <= 5):
        return "→"
    if before == 0:
        return "↑"
    change = (recent - before) / before
    return "↑" if change > 0.25 else ("↓" if change < -0.25 else "→")


def report_settings(folder, **overrides) -> SimpleNamespace:
    """Stand-in for monitor.config.ReportSettings."""
    values = dict(folder=folder, history_weeks=156, max_incidents=15, note_chars=240, annotations=[EARTHQUAKE])
    values.update(overrides)
    return SimpleNamespace(**values)


def alert_settings(*, host="", port=587, security="starttls", username="", recipients=("desk@example.org",), timeout=5.0, **alerts):
    """monitor.config.AlertSettings with a test sender; `alerts` sets any other [alerts] key (routes, for_weeks...)."""
    from monitor.config import AlertSettings

    return AlertSettings.model_validate({
        "enabled": True, "recipients": list(recipients), "sender": "incident-monitor@example.org",
        "subject_prefix": "[incident-monitor]", **alerts,
        "smtp": {"host": host, "port": port, "security": security, "username": username,
                 "password_env": "MONITOR_SMTP_PASSWORD", "timeout": timeout},
    })  # fmt: skip
