"""Alert and warning levels, Benjamini–Hochberg control across series, and the false-alarm budget."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.config import config_from_dict, load_config
from monitor.errors import ConfigError
from monitor.detection import detect_week
from monitor.report.markdown import render_markdown
from monitor.series import parse_week
from monitor.severity import SeveritySettings, _bh_null, assign_levels, bh_adjusted, false_alarm_budget
from monitor.store import Store
from tests.conftest import demo_config

PER_SERIES = SeveritySettings()
FDR = SeveritySettings(multiple_testing="fdr", fdr=0.05, warning_fdr=0.2)


def _bh_by_definition(p: list[float]) -> list[float]:
    """q_i = min over p_j >= p_i of m p_j / rank_j, capped at 1 (the step-up definition, ties ranked last)."""
    m = len(p)
    rank = {j: sum(1 for x in p if x <= p[j]) for j in range(m)}
    return [min(1.0, min(m * p[j] / rank[j] for j in range(m) if p[j] >= p[i])) for i in range(m)]


def test_bh_adjusted_on_a_hand_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4p/rank = 0.02, 0.02, 0.04, 0.04
    assert bh_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_bh_adjusted_matches_the_definition_and_keeps_nan():
    rng = np.random.default_rng(7)
    p = list(np.round(rng.random(40) ** 3, 3))  # rounding makes ties
    q = bh_adjusted(p + [math.nan])
    assert math.isnan(q[-1])
    assert q[:-1] == pytest.approx(_bh_by_definition(p), rel=1e-12)
    assert bh_adjusted([math.nan, math.nan]).tolist() == [pytest.approx(math.nan, nan_ok=True)] * 2


def _rows(pvalues, *, alarm=None, count=None, upper=None, week="2023-02-27", detector="farrington", warning=None):
    n = len(pvalues)
    frame = pd.DataFrame(
        {
            "week_start": pd.Timestamp(week),
            "count": count if count is not None else [5.0] * n,
            "upperbound": upper if upper is not None else [4.0] * n,
            "alarm": pd.array(alarm if alarm is not None else [p <= 0.005 for p in pvalues], dtype="boolean"),
            "pvalue": pvalues,
            "detector": detector,
        }
    )
    if warning is not None:
        frame["warning"] = pd.array(warning, dtype="boolean")
    return frame


def test_per_series_keeps_the_detectors_alarm_and_warns_on_the_looser_alpha():
    frame = _rows([0.001, 0.03, 0.2, 0.04, 0.04, 0.01],
                  count=[9, 6, 2, 0, 6, 7], upper=[4, 4, 4, 4, math.nan, 4],
                  alarm=[True, False, False, False, False, None])  # fmt: skip
    out = assign_levels(frame, PER_SERIES)
    # row 3: count 0 never warns; row 4: limit54 blanked the threshold; row 5: undecided
    assert out["level"].tolist() == ["alert", "warning", "", "", "", ""]
    assert out["alarm"].tolist()[:5] == [True, False, False, False, False] and pd.isna(out["alarm"].iloc[5])
    assert out["qvalue"].isna().all() and not out["tested"].any()
    assert frame["alarm"].tolist()[:5] == [True, False, False, False, False]  # the input is untouched


def test_a_detectors_own_warning_rule_counts_when_it_has_no_pvalue():
    frame = _rows([math.nan] * 3, alarm=[True, False, False], warning=[True, True, False], detector="highest-in")
    for settings in (PER_SERIES, FDR):  # no p-value: never tested, the detector's own levels stand
        out = assign_levels(frame, settings)
        assert out["level"].tolist() == ["alert", "warning", ""]
        assert not out["tested"].any()


def test_fdr_decides_each_week_across_series():
    week1 = _rows([0.0001, 0.004, 0.3, 0.6], week="2023-02-20")
    week2 = _rows([0.004, 0.5, 0.6, 0.7], week="2023-02-27")
    out = assign_levels(pd.concat([week1, week2], ignore_index=True), FDR, by="week_start")
    # week 1: q = 0.0004, 0.008 -> both alerts; week 2: 0.004 * 4 / 1 = 0.016 -> alert
    assert out["level"].tolist() == ["alert", "alert", "", "", "alert", "", "", ""]
    assert out["qvalue"].tolist()[:2] == pytest.approx([0.0004, 0.008])
    assert out["qvalue"].iloc[4] == pytest.approx(0.016)
    assert out["tested"].all()


def test_fdr_can_overrule_a_per_series_alarm_among_many_quiet_series():
    p = [0.004] + [0.5] * 99  # one p-value just under alpha among 100 quiet series: q = 0.4
    out = assign_levels(_rows(p), FDR)
    assert not out["alarm"].any() and out["level"].iloc[0] == ""
    assert assign_levels(_rows(p), PER_SERIES)["alarm"].iloc[0]


def test_watching_500_quiet_series_fdr_removes_the_weekly_false_alarms():
    """Measured on 200 seeded weeks of 500 series with no surge (uniform p-values) plus 3 real surges."""
    rng = np.random.default_rng(20230206)
    per_series, fdr, share, found = [], [], [], 0
    for week in range(200):
        p = np.concatenate([rng.random(500), [1e-6, 2e-6, 5e-6]])
        per_series.append(int((assign_levels(_rows(list(p)), PER_SERIES)["alarm"].to_numpy()[:500]).sum()))
        out = assign_levels(_rows(list(p)), FDR)["alarm"].to_numpy()
        fdr.append(int(out[:500].sum()))
        found += int(out[500:].sum())
        share.append(fdr[-1] / max(1, int(out.sum())))
    assert 2.0 < np.mean(per_series) < 3.0  # 500 x 0.005 = 2.5 false alarms a week
    assert np.mean(fdr) < 0.4  # BH: a false alert in about one week out of five
    assert np.mean(share) < 0.05 + 0.02  # realised false discovery rate: q m0/m = 0.0497 in theory (se ~0.007)
    assert found == 600  # and the three real surges are still found every week


def test_bh_under_the_global_null_alarms_in_a_share_q_of_weeks():
    # Simes (1986): with independent uniform p-values BH rejects anything with probability exactly q
    for m in (1, 20, 500):
        mean, any_ = _bh_null(m, 0.05, 4000, 1)
        assert abs(any_ - 0.05) < 0.011, (m, any_)
        assert any_ <= mean < 0.08


def test_false_alarm_budget_per_series_sums_each_detectors_alpha():
    rows = pd.concat(
        [_rows([0.3, 0.4, 0.5]), _rows([math.nan], detector="acled-surge"), _rows([0.2], alarm=[None])], ignore_index=True
    )
    budget = false_alarm_budget(rows, PER_SERIES, params_of={"farrington": {"alpha": 0.005}, "acled-surge": {}})
    assert budget.series == 4 and budget.calibrated == 3  # the undecided series does not count
    assert budget.expected_alerts == pytest.approx(0.015)
    assert budget.expected_warnings == pytest.approx(3 * 0.045)
    assert budget.any_alert == pytest.approx(1 - 0.995**3)
    assert budget.uncalibrated == ("acled-surge",)
    text = budget.sentence()
    assert "0.01" in text and "acled-surge" in text and "fdr" in text


def test_false_alarm_budget_under_fdr_counts_tested_series():
    rows = _rows(list(np.linspace(0.1, 0.9, 50)))
    budget = false_alarm_budget(rows, FDR, params_of={"farrington": {"alpha": 0.005}})
    assert budget.calibrated == 50
    assert abs(budget.any_alert - 0.05) < 0.011
    assert budget.expected_alerts < 0.08 and budget.expected_warnings > budget.expected_alerts
    assert "Benjamini–Hochberg" in budget.sentence()


def test_warning_fdr_below_fdr_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="warning_fdr"):
        config_from_dict({"detection": {"multiple_testing": "fdr", "fdr": 0.1, "warning_fdr": 0.05}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="multiple_testing"):
        config_from_dict({"detection": {"multiple_testing": "bonferroni"}}, base_dir=tmp_path)


# ---- through the weekly run on the demo data ---------------------------------------------


NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
WEEK = parse_week("2023-W09")


def _run(demo_dir: Path, **detection):
    config = demo_config(demo_dir, **detection)
    with Store(config.db_path) as store:
        return detect_week(config, store, week=WEEK, now=NOW)


def test_demo_week_levels_and_report_under_both_settings(demo_dir):
    per_series = _run(demo_dir)
    fdr = _run(demo_dir, multiple_testing="fdr")
    alerts = {r.series.key for r in per_series.flagged}
    assert "is_attacks/admin1=Homs" in alerts
    for r in per_series.results:  # warnings are the looser level, never also alerts
        d = r.detection
        assert (d.level == "alert") == bool(d.alarm)
        if d.level == "warning":
            assert d.pvalue <= 0.05 and not d.alarm
    own = {r.series.key: r.detection for r in per_series.results}
    for r in fdr.results:
        d = r.detection
        if not math.isnan(d.qvalue):
            # a BH rejection, or farrington-cusum's chart alarm (no single-week p-value), which FDR keeps
            chart = bool(own[r.series.key].alarm) and own[r.series.key].pvalue > 0.002
            assert (d.qvalue <= 0.05 or chart) == bool(d.alarm), r.series.key
    tested = [r for r in fdr.results if not math.isnan(r.detection.qvalue)]
    assert tested and fdr.false_alarms.calibrated == len(tested)
    md = render_markdown(fdr, charts={}, settings=load_config(demo_dir / "monitor.toml").report)
    assert "Benjamini–Hochberg" in md and "q-value" in md
    md = render_markdown(per_series, charts={}, settings=load_config(demo_dir / "monitor.toml").report)
    assert "Expected false alerts a week" in md and "q-value" not in md
    budget = per_series.false_alarms
    from monitor.detectors.farrington_cusum import nominal_rate

    config = load_config(demo_dir / "monitor.toml")
    used = {r.detection.detector for r in per_series.results}
    assert used <= {"farrington-cusum", "nb-recent"} and "farrington-cusum" in used
    assert all(r.detection.fallback_from == "farrington-cusum" for r in per_series.results if r.detection.detector == "nb-recent")
    rate = nominal_rate(config.params_for("farrington-cusum"))
    nb, fc = config.params_for("nb-recent"), config.params_for("farrington-cusum")
    assert (nb.alpha, nb.cusum_k, nb.cusum_h) == (fc.alpha, fc.cusum_k, fc.cusum_h)  # so one nominal rate covers both
    assert budget.expected_alerts == pytest.approx(rate * budget.calibrated)


def test_demo_digest_announces_alerts_only_and_counts_the_warnings(demo_dir):
    result = _run(demo_dir)
    warned = [r for r in result.results if r.detection.level == "warning"]
    assert warned, "the demo week has warning-level series"
    import email
    from email import policy

    eml = next((demo_dir / "reports" / "2023-W09").glob("digest-*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
    assert f"{len(warned)} at the warning level" in text
    from monitor.series import series_name

    assert all(series_name(r) in text for r in result.flagged)
    for r in warned:  # named in the report, not announced in the digest
        assert series_name(r) not in text
