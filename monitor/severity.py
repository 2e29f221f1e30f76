"""Alert levels and false-alarm control across the many series of one run.

Two levels, like ESSENCE's red and yellow:

* **alert**: the detector's own alarm at its configured alpha (per-series control), or a
  Benjamini–Hochberg rejection at false discovery rate `fdr` across the run's series
  (FDR control);
* **warning**: not an alert, but the week passes a looser rule: p-value ≤ `warning_alpha`
  (per-series) or a BH rejection at `warning_fdr` (FDR), or, for detectors without
  p-values, the detector's own `warning` column (e.g. highest in 1 year instead of 3).

A week is *tested* (enters Benjamini–Hochberg) when the detector decided it and gave a
p-value, the count is above 0 and the detector's own eligibility rule holds (Farrington's
limit54 blanks `upperbound`). Detectors without p-values (ACLED rules, highest-in,
trendfinder, glrnb, cusum, EARS C3) keep their own alarm under FDR control and say so.

Everything here is pure: frames in, frames out; the expected number of false alarms is
computed, not guessed (`false_alarm_budget`), but only nominally: it assumes calibrated,
independent p-values, and real conflict data exceeds it. `monitor backtest` measures the
real rate, which the report states instead when it has one (issue 11, item 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.types import MultipleTesting, SeveritySettings  # noqa: F401  (declared with the other settings values)

LEVELS: tuple[str, ...] = ("alert", "warning", "")

def bh_adjusted(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values) of the finite entries; NaN stay NaN.

    q_(i) = min_{j ≥ i} min(1, m p_(j) / j) over the m finite p-values sorted ascending,
    as R's ``p.adjust(p, "BH")``. Rejecting q ≤ level is the BH step-up procedure.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    values = p[ok]
    order = np.argsort(values, kind="stable")
    ranked = values[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(ranked, 1.0)
    out[ok] = adjusted
    return out


def testable(frame: pd.DataFrame) -> np.ndarray:
    """Rows that enter Benjamini–Hochberg: decided, finite p-value and threshold, count > 0, not below min_count."""
    alarm = frame["alarm"] if "alarm" in frame else pd.Series(pd.NA, index=frame.index)
    p = pd.to_numeric(frame.get("pvalue", pd.Series(np.nan, index=frame.index)), errors="coerce").to_numpy(dtype=float)
    upper = pd.to_numeric(frame.get("upperbound", pd.Series(np.nan, index=frame.index)), errors="coerce").to_numpy(dtype=float)
    count = pd.to_numeric(frame.get("count", pd.Series(np.nan, index=frame.index)), errors="coerce").to_numpy(dtype=float)
    floor = frame["floor_ok"].astype("boolean").fillna(True).to_numpy(dtype=bool) if "floor_ok" in frame else True
    return (~alarm.isna().to_numpy()) & np.isfinite(p) & np.isfinite(upper) & (count > 0) & floor


def _chart_alarm(frame: pd.DataFrame) -> np.ndarray:
    # alarms a chart raised without a single-week p-value (farrington-cusum's CUSUM): BH cannot judge them
    if "chart_alarm" not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame["chart_alarm"].astype("boolean").fillna(False).to_numpy(dtype=bool)


def _own_warning(frame: pd.DataFrame) -> np.ndarray:
    if "warning" not in frame:
        return np.zeros(len(frame), dtype=bool)
    own = frame["warning"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if "floor_ok" in frame:
        own &= frame["floor_ok"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    return own


def assign_levels(frame: pd.DataFrame, settings: SeveritySettings, *, by: str | None = "week_start") -> pd.DataFrame:
    """Add `level` ("alert" / "warning" / ""), `qvalue` and `tested`, and set `alarm` to the alert level.

    Parameters:
        frame: detector output rows (the detector column contract), one row per series
            and week, for any number of series and weeks.
        settings: the run's severity settings.
        by: column whose groups are separate runs for Benjamini–Hochberg (one week of
            many series); None: the whole frame is one group.

    Per-series control keeps every detector's own `alarm`; FDR control replaces it, on
    tested rows, by the BH rejection at `settings.fdr` among the tested rows of the same
    week (untested rows keep their own alarm, and so do rows whose `chart_alarm` is True:
    a chart's alarm has no single-week p-value for BH to judge). `alarm` stays NA where it was NA.
    Returns a copy; the input is not modified.
    """
    out = frame.copy()
    n = len(out)
    alarm = out["alarm"].astype("boolean") if "alarm" in out else pd.Series(pd.NA, index=out.index, dtype="boolean")
    decided = ~alarm.isna().to_numpy()
    own_alarm = alarm.fillna(False).to_numpy(dtype=bool)
    is_tested = testable(out)
    p = pd.to_numeric(out.get("pvalue", pd.Series(np.nan, index=out.index)), errors="coerce").to_numpy(dtype=float)
    qvalue = np.full(n, np.nan)
    if settings.multiple_testing == "fdr":
        groups = [np.arange(n)] if by is None or by not in out else [np.flatnonzero(g) for g in _group_masks(out[by])]
        for idx in groups:
            sub = idx[is_tested[idx]]
            if sub.size:
                qvalue[sub] = bh_adjusted(p[sub])
        alert = np.where(is_tested, (qvalue <= settings.fdr) | _chart_alarm(out), own_alarm)
        warn_rule = np.where(is_tested, qvalue <= settings.warning_fdr, _own_warning(out))
    else:
        alert = own_alarm
        warn_rule = _own_warning(out) | (is_tested & (p <= settings.warning_alpha))
    alert = alert & decided
    warning = warn_rule & decided & ~alert
    out["alarm"] = pd.array(np.where(decided, alert, False), dtype="boolean")
    out.loc[~decided, "alarm"] = pd.NA
    out["level"] = np.where(alert, "alert", np.where(warning, "warning", ""))
    out["qvalue"] = qvalue
    out["tested"] = is_tested & (settings.multiple_testing == "fdr")
    return out


def _group_masks(keys: pd.Series) -> list[np.ndarray]:
    values = keys.to_numpy()
    return [values == k for k in pd.unique(values)]


@dataclass(frozen=True)
class FalseAlarmBudget:
    """What the chosen setting means in false alarms per week, for the report."""

    multiple_testing: MultipleTesting
    series: int  # series decided this week
    calibrated: int  # series whose alarm rule has a stated false-alarm rate (alpha or BH)
    uncalibrated: tuple[str, ...]  # detectors without one (rules, GLR, CUSUM, C3), by name
    expected_alerts: float  # expected false alerts a week if no series had a real surge
    expected_warnings: float  # expected false warnings a week (same assumption)
    any_alert: float  # chance of at least one false alert in a week (same assumption)
    settings: SeveritySettings

    def sentence(self) -> str:
        """One plain-English paragraph for the report's method section."""
        s = self.settings
        parts: list[str] = []
        if self.multiple_testing == "fdr":
            parts.append(
                f"False alarms are controlled across series with the Benjamini–Hochberg procedure: alerts at a false "
                f"discovery rate of {s.fdr:g}, warnings at {s.warning_fdr:g}. With {self.calibrated} series tested this "
                f"week, if none had a real surge the nominal figures are about {self.expected_alerts:.2f} false alerts and "
                f"{self.expected_warnings:.2f} false warnings a week (chance of any false alert in a "
                f"week: {self.any_alert:.0%}); when there are real surges, on average no more than {s.fdr:.0%} of alerts "
                "are false, nominally."
            )
        else:
            parts.append(
                f"Each series is tested at its detector's own false-alarm rate (alpha; for farrington-cusum alpha plus "
                f"its CUSUM's 1/ARL0) and warned at p ≤ {s.warning_alpha:g}. With "
                f"{self.calibrated} series tested this way, if none had a real surge the nominal figures are about "
                f"{self.expected_alerts:.2f} false alerts and {self.expected_warnings:.2f} false warnings a week "
                f"(chance of any false alert in a week: {self.any_alert:.0%}). Set `multiple_testing = \"fdr\"` in "
                "[detection] to control the false discovery rate across series instead."
            )
        if self.uncalibrated:
            parts.append(
                f"{self.series - self.calibrated} series use detectors without a stated false-alarm rate "
                f"({', '.join(self.uncalibrated)}); they are not counted."
            )
        return " ".join(parts)


def false_alarm_budget(
    week_rows: pd.DataFrame,
    settings: SeveritySettings,
    *,
    params_of: Mapping[str, Mapping[str, Any]],
    null_draws: int = 4000,
    seed: int = 20130601,
) -> FalseAlarmBudget:
    """Expected false alerts and warnings in one week if no series had a real surge.

    Parameters:
        week_rows: one row per series for the week (after `assign_levels`), with the
            columns `alarm`, `detector` and those `testable` reads.
        settings: the run's severity settings.
        params_of: detector name -> parameters in use (for each detector's `alpha`).
        null_draws, seed: Monte Carlo draws of independent uniform p-values used for the
            Benjamini–Hochberg figures (deterministic for a given seed).

    Per-series: the sum of alpha (and of `warning_alpha`) over decided series whose
    detector has one, an upper bound since counts are discrete and limit54 suppresses
    some weeks; the chance of any false alert is 1 − Π(1 − alpha). FDR: the mean number
    of BH rejections among m independent uniform p-values (m = the tested series).
    """
    decided = ~week_rows["alarm"].isna().to_numpy() if len(week_rows) else np.zeros(0, dtype=bool)
    detectors = week_rows["detector"].astype(str).to_numpy() if len(week_rows) else np.zeros(0, dtype=str)
    from monitor.detectors import (
        nominal_rate,  # the rate each detector's alarm rule states
    )

    alphas = np.array([nominal_rate(d, params_of.get(d)) for d in detectors], dtype=float)
    calibrated_mask = decided & np.isfinite(alphas)
    uncalibrated = tuple(sorted({d for d, ok, dec in zip(detectors, calibrated_mask, decided) if dec and not ok}))
    if settings.multiple_testing == "fdr":
        m = int((decided & testable(week_rows)).sum()) if len(week_rows) else 0
        expected_alerts, any_alert = _bh_null(m, settings.fdr, null_draws, seed)
        expected_warnings, _ = _bh_null(m, settings.warning_fdr, null_draws, seed)
        expected_warnings -= expected_alerts
        calibrated = m
    else:
        a = alphas[calibrated_mask]
        expected_alerts = float(a.sum())
        expected_warnings = float(np.maximum(settings.warning_alpha - a, 0).sum())
        any_alert = float(1 - np.prod(1 - a)) if a.size else 0.0
        calibrated = int(calibrated_mask.sum())
    return FalseAlarmBudget(
        multiple_testing=settings.multiple_testing,
        series=int(decided.sum()),
        calibrated=calibrated,
        uncalibrated=uncalibrated,
        expected_alerts=expected_alerts,
        expected_warnings=max(expected_warnings, 0.0),
        any_alert=any_alert,
        settings=settings,
    )


def _bh_null(m: int, q: float, draws: int, seed: int) -> tuple[float, float]:
    """(mean rejections, P(any rejection)) of BH at level q on m independent uniform p-values."""
    if m == 0:
        return 0.0, 0.0
    rng = np.random.default_rng([seed, m])
    rejections = np.zeros(draws)
    step = max(1, 2_000_000 // m)  # bound the memory of one block of draws
    for start in range(0, draws, step):
        n = min(step, draws - start)
        p = np.sort(rng.random((n, m)), axis=1)
        below = p <= q * np.arange(1, m + 1) / m
        # BH rejects the k smallest, k = the largest rank whose p is under its line
        last = np.where(below.any(axis=1), m - np.argmax(below[:, ::-1], axis=1), 0)
        rejections[start : start + n] = last
    return float(rejections.mean()), float((rejections > 0).mean())
