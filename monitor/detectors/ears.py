"""EARS C1, C2 and C3 (CDC Early Aberration Reporting System), as R `surveillance::earsC`.

Each week is compared with the mean and standard deviation of a short moving baseline of
the weeks just before it (Hutwagner et al. 2003, "The bioterrorism preparedness and
response Early Aberration Reporting System (EARS)", J Urban Health 80:i89-96; Fricker
et al. 2008, Stat Med 27:3407-3429):

* C1: baseline = the `baseline` weeks t-baseline..t-1; alarm when count > mean + z·sd.
* C2: the same with a two-week guard band, baseline t-baseline-2..t-3.
* C3: C3(t) = Σ_{i=t-2..t} max(0, C2(i) − 1); alarm when C3(t) ≥ z (the textbook rule).

`z` = Φ⁻¹(1 − alpha) and sd is the sample sd (n − 1), floored at `min_sigma`.

C1 and C2 reproduce surveillance 1.20.3 exactly (expected, upperbound, alarm). C3 does
NOT follow R by default: surveillance 1.20.3 computes C3's bound as
``U(t) = max(0, y(t) + sd(t)·(z − max(0, C2(t−1) − 1) − max(0, C2(t−2) − 1)))``, which
contains the observed count itself, so its alarm ``y(t) > U(t)`` only depends on weeks
t−1 and t−2 (never on this week's count, see ../shared/reference/README.md). The
project's C3 uses the documented rule and reports as `upperbound` the smallest count that
would alarm this week given weeks t−1 and t−2: ``mean + sd·(1 + z − S)`` with S the lag
terms, or 0 when S ≥ z already (any count then alarms). `r_c3=True` reproduces R's
`upperbound` and `alarm` columns instead, for parity checks only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.detectors._common import check_positions, result_frame, window_mean_sd
from monitor.detectors._dist import norm_ppf, norm_sf

SUMMARY = (
    "EARS C1/C2/C3 (CDC, as R surveillance::earsC): this week against the mean and sd of "
    "the previous few weeks; needs only `baseline` (+2 for C2, +4 for C3) weeks of history."
)

class EarsParams(BaseModel):
    """Control list of `surveillance::earsC` (range aside: positions are `detect`'s `weeks`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["C1", "C2", "C3"] = Field(
        "C1",
        description="C1: baseline = the weeks just before; C2: with a 2-week gap; C3: sum of C2 excesses over 3 weeks.",
    )
    baseline: int = Field(7, ge=3, description="Number of weeks in the moving baseline (at least 3, as in R).")
    alpha: float = Field(
        0.001, gt=0, lt=1, allow_inf_nan=False, description="One-sided level: z = qnorm(1 - alpha) (R's C3 default is 0.025)."
    )
    min_sigma: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="Floor on the baseline sd (R minSigma); > 0 stops all-zero baselines alarming on 1 event."
    )
    r_c3: bool = Field(
        False, description="C3 only: reproduce surveillance 1.20.3's C3 bound and alarm (which ignore this week's count) instead of the textbook rule."
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        # Accept `method=c3` from the command line.
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _r_c3_needs_c3(self) -> EarsParams:
        if self.r_c3 and self.method != "C3":
            raise ValueError(f"r_c3=true applies only to method C3 (method is {self.method}): drop r_c3 or set method=C3")
        return self


def min_history(params: EarsParams) -> int:
    """Weeks needed before a monitored week: baseline (C1), baseline + 2 (C2), baseline + 4 (C3)."""
    return params.baseline + {"C1": 0, "C2": 2, "C3": 4}[params.method]


def detect(counts: pd.Series, params: EarsParams, *, weeks: Sequence[int]) -> pd.DataFrame:
    """Run EARS on the weeks at positions `weeks` of `counts`.

    Parameters:
        counts: weekly counts indexed by consecutive week starts (zero-filled).
        params: the EARS settings.
        weeks: 0-based positions in `counts` to evaluate.

    Returns one row per position: the core columns, then `baseline_sd` (sample sd of the
    baseline of week t: C1 window for C1, C2 window for C2/C3), `stat` (C1 or C2 z-score of
    week t), and `note`. `score` is the C1/C2 z-score with `pvalue` = 1 − Φ(score); for C3
    `score` is the C3 statistic and `pvalue` is NaN (a sum of three truncated, overlapping
    z-scores has no simple null distribution).
    """
    pos = check_positions(counts, weeks)
    y = counts.to_numpy(dtype=float, na_value=np.nan)
    z = float(norm_ppf(1.0 - params.alpha))
    lag = 1 if params.method == "C1" else 3
    mean, sd = window_mean_sd(y, lag=lag, length=params.baseline)
    sigma = np.maximum(sd, params.min_sigma)  # NaN stays NaN (R pmax without na.rm)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = (y - mean) / sigma

    need = min_history(params)
    label = f"EARS {params.method}"
    notes = [""] * len(pos)
    if params.method in ("C1", "C2"):
        upper = mean + z * sigma
        with np.errstate(invalid="ignore"):
            alarm = _decided(y > upper, upper, y)
        score = stat
        pvalue = norm_sf(stat)
    else:
        excess = np.maximum(0.0, stat - 1.0)
        lagged = np.full_like(y, np.nan)
        lagged[2:] = excess[1:-1] + excess[:-2]  # weeks t-1 and t-2
        c3 = lagged + excess
        if params.r_c3:
            # surveillance 1.20.3 earsC: upperbound = pmax(0, y + sd * (zAlpha - lag terms)).
            with np.errstate(invalid="ignore"):
                upper = np.maximum(0.0, y + sigma * (z - lagged))
                alarm = _decided(y > upper, upper, y)
        else:
            with np.errstate(invalid="ignore"):
                upper = np.where(lagged >= z, 0.0, mean + sigma * (1.0 + z - lagged))
                alarm = _decided(c3 >= z, c3, y)
        score = c3
        pvalue = np.full_like(y, np.nan)

    for k, t in enumerate(pos):
        if t < need:
            alarm[t] = None  # already NaN-driven; explicit so a decided row never lacks history
            notes[k] = f"too little history for {label} (needs {need} weeks, has {t})"
        elif np.isnan(y[t - need : t + 1]).any():
            notes[k] = "a count is missing in this week or its baseline weeks"
        elif alarm[t] is None:
            notes[k] = (
                f"{label} undefined: a baseline sd is 0 (min_sigma = {params.min_sigma:g}) "
                "and a count equals its baseline mean"
            )
    return result_frame(
        counts,
        pos,
        expected=mean,
        upperbound=upper,
        alarm=alarm,
        score=score,
        pvalue=pvalue,
        extra={"baseline_sd": sd, "stat": stat},
        notes=notes,
    )


def _decided(flag: np.ndarray, *inputs: np.ndarray) -> list[bool | None]:
    """Booleans with None wherever any input is NaN (R gives NA there)."""
    undefined = np.zeros(len(flag), dtype=bool)
    for values in inputs:
        undefined |= np.isnan(values)
    return [None if u else bool(f) for f, u in zip(flag, undefined)]
