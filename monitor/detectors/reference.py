"""Checking detectors against golden outputs of R `surveillance` (`../shared/reference`).

Each row of the folder's `manifest.csv` names an output file, its dataset, the exact R
call and the monitored range. The call is translated into this project's detector and
parameters (R's own defaults filling in what the call leaves out), so a new reference
file is checked by adding nothing but the file and its manifest row.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: farringtonFlexible's own defaults (surveillance 1.20.3), which are not this project's.
R_FARRINGTON_DEFAULTS = {
    "b": "5", "w": "3", "reweight": "TRUE", "weightsThreshold": "2.58", "alpha": "0.05", "trend": "TRUE",
    "pThresholdTrend": "0.05", "limit54": "c(5,4)", "powertrans": "2/3", "populationOffset": "FALSE",
    "noPeriods": "1", "pastWeeksNotIncluded": "NULL", "thresholdMethod": "delta",
}  # fmt: skip
#: earsC's defaults (alpha: 0.001 for C1/C2; R uses 0.025 for C3 when alpha is not given).
R_EARS_DEFAULTS = {"method": "C1", "baseline": "7", "minSigma": "0", "alpha": "NULL"}
#: glrnb's defaults; S, trend and refit are the entries of its `mu0 = list(...)` (alpha NULL: estimated).
R_GLRNB_DEFAULTS = {
    "c.ARL": "5", "S": "1", "trend": "FALSE", "refit": "FALSE", "alpha": "NULL", "Mtilde": "1", "M": "-1",
    "change": "intercept", "theta": "NULL", "dir": "inc", "ret": "value",
}  # fmt: skip
#: cusum's defaults (m = NULL: the mean of the weeks before the range; alpha only for NegBin transforms).
R_CUSUM_DEFAULTS = {"k": "1.04", "h": "2.26", "m": "NULL", "trans": "standard", "alpha": "NULL"}
#: R control name -> this project's parameter name.
R_NAMES = {
    "b": "b", "w": "w", "reweight": "reweight", "weightsThreshold": "weights_threshold", "alpha": "alpha",
    "trend": "trend", "pThresholdTrend": "p_threshold_trend", "limit54": "limit54", "powertrans": "powertrans",
    "noPeriods": "no_periods", "pastWeeksNotIncluded": "past_weeks_not_included", "thresholdMethod": "threshold_method",
    "method": "method", "baseline": "baseline", "minSigma": "min_sigma",
    "c.ARL": "c_arl", "S": "s", "Mtilde": "m_tilde", "M": "m", "change": "change", "dir": "dir",
    "k": "k", "h": "h", "m": "m", "trans": "trans", "reset": "reset",
}  # fmt: skip
R_IGNORED = {"range", "glmWarnings", "verbose"}  # no effect on the numbers
SUPPORTED = {
    "farringtonFlexible": ("farrington", R_FARRINGTON_DEFAULTS),
    "earsC": ("ears", R_EARS_DEFAULTS),
    "glrnb": ("glrnb", R_GLRNB_DEFAULTS),
    "cusum": ("cusum", R_CUSUM_DEFAULTS),
}


@dataclass(frozen=True)
class ReferenceCase:
    """One golden file: the input counts, R's output and how to call our detector."""

    file: str
    counts: pd.Series
    golden: pd.DataFrame
    weeks: list[int]  # 0-based monitored positions
    detector: str
    params: dict[str, str]
    alarm_column: str  # the golden column our alarms must equal


def manifest(folder: Path, *, functions: tuple[str, ...] = tuple(SUPPORTED)) -> list[dict[str, str]]:
    """Manifest rows whose R call uses one of `functions`."""
    with (Path(folder) / "manifest.csv").open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["r_call"].split("(", 1)[0] in functions]


def params_from_r_call(r_call: str) -> tuple[str, dict[str, str]]:
    """(detector name, parameters as command-line strings) for an R call such as
    `farringtonFlexible(sts, control = list(b = 3, ...))`."""
    function = r_call.split("(", 1)[0]
    if function not in SUPPORTED:
        raise ValueError(f"no detector reproduces R's {function}()")
    detector, defaults = SUPPORTED[function]
    call = r_call.replace("structure(list(), names = character(0))", "")  # how R deparses an empty list()
    body = call.split("control = list(", 1)[1]
    body = re.sub(r"mu0 = list\(([^)]*)\)", r"\1", body)  # glrnb: mu0 = list(S = 1, trend = FALSE, refit = FALSE)
    given = dict(re.findall(r"([\w.]+) = (c\([^)]*\)|\"[^\"]*\"|[^,\s)]+)", body))
    unknown = set(given) - set(defaults) - R_IGNORED
    if unknown:
        raise ValueError(f"R control keys with no counterpart here: {sorted(unknown)}")
    control = {**defaults, **{k: v for k, v in given.items() if k not in R_IGNORED}}
    if detector == "farrington":
        if control.pop("populationOffset") != "FALSE":
            raise ValueError("populationOffset = TRUE is not supported")
        if control["pastWeeksNotIncluded"] == "NULL":  # R: NULL means w
            control["pastWeeksNotIncluded"] = control["w"]
    if detector == "glrnb":
        for key, only in (("refit", "FALSE"), ("theta", "NULL")):
            if control.pop(key) != only:
                raise ValueError(f"glrnb with {key} other than {only} is not supported")
        control.pop("ret")  # only changes what R stores as upperbound; the project's is the alarming count
    if detector == "cusum":
        control.pop("alpha")  # only used by R's NegBin transforms, which trans does not offer
        if control["m"] == "NULL":
            control["m"] = "mean"
        control["reset"] = "false"  # surveillance's cusum never resets after an alarm
    if detector == "ears" and control["alpha"] == "NULL":
        control["alpha"] = "0.025" if control["method"].strip('"') == "C3" else "0.001"
    params = {R_NAMES[k]: v.strip('"').removeprefix("c(").removesuffix(")") for k, v in control.items()}
    if detector in ("glrnb", "cusum"):
        params["in_control_weeks"] = "0"  # R fits the in-control model on every week before the range
    return detector, params


def load_case(folder: Path, row: dict[str, str]) -> ReferenceCase:
    """Read a manifest row's counts and golden output."""
    folder = Path(folder)
    table = pd.read_csv(folder / f"{row['dataset']}.counts.csv", parse_dates=["week_start"])
    counts = pd.Series(table["count"].to_numpy(), index=pd.DatetimeIndex(table["week_start"]), name="count")
    golden = pd.read_csv(folder / row["file"], parse_dates=["week_start"])
    weeks = list(range(int(row["range_first_index"]) - 1, int(row["range_last_index"])))  # R's range is 1-based
    detector, params = params_from_r_call(row["r_call"])
    # surveillance 1.20.3's C3 alarm ignores this week's count; the project follows the
    # documented rule, which the harness wrote as `alarm_documented` (see reference/README.md)
    alarm_column = "alarm_documented" if "alarm_documented" in golden.columns else "alarm"
    return ReferenceCase(row["file"], counts, golden, weeks, detector, params, alarm_column)


def relative_difference(ours: pd.Series, theirs: pd.Series) -> float:
    """Largest relative difference where both are finite (0 when none are)."""
    a, b = ours.to_numpy(dtype=float), theirs.to_numpy(dtype=float)
    finite = np.isfinite(a) & np.isfinite(b)
    rel = np.abs(a[finite] - b[finite]) / np.maximum(np.abs(b[finite]), 1e-12)
    return float(rel.max(initial=0.0))


def same_missing(ours: pd.Series, theirs: pd.Series) -> bool:
    """NA in exactly the same weeks."""
    return bool(np.array_equal(pd.isna(ours).to_numpy(), pd.isna(theirs).to_numpy()))


def alarms_equal(ours: pd.Series, theirs: pd.Series) -> int:
    """Number of weeks whose alarm (0/1/NA) is identical."""
    r = theirs.astype("boolean")
    o = ours.astype("boolean")
    both_na = o.isna().to_numpy() & r.isna().to_numpy()
    same = (o.fillna(False).to_numpy() == r.fillna(False).to_numpy()) & (o.isna().to_numpy() == r.isna().to_numpy())
    return int((same | both_na).sum())


def compare(case: ReferenceCase, out: pd.DataFrame) -> dict[str, object]:
    """Parity figures of one detector output against its golden file."""
    golden = case.golden
    return {
        "file": case.file,
        "weeks": len(golden),
        "alarms_equal": alarms_equal(out["alarm"], golden[case.alarm_column]),
        "na_expected_same": same_missing(out["expected"], golden["expected"]),
        "na_upperbound_same": same_missing(out["upperbound"], golden["upperbound"]),
        "max_rel_expected": relative_difference(out["expected"], golden["expected"]),
        "max_rel_upperbound": relative_difference(out["upperbound"], golden["upperbound"]),
    }
