#!/usr/bin/env python
"""Print how closely the detectors reproduce R surveillance's golden outputs.

Usage: python scripts/parity.py [REFERENCE_DIR]   (default: ../shared/reference)

One line per reference file that a detector here reproduces (farringtonFlexible,
earsC): weeks, weeks whose alarm is identical, whether NA falls in the same weeks, and
the largest relative difference of `expected` and `upperbound` where both are finite.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from monitor.detectors import make_params, run_detector
from monitor.detectors.reference import compare, load_case, manifest


def main(folder: Path) -> int:
    print(f"{'file':38} {'weeks':>5} {'alarms=':>7} {'NA same':>7} {'max rel expected':>16} {'max rel upperbound':>18}")
    failures = 0
    started = time.perf_counter()
    for row in manifest(folder):
        case = load_case(folder, row)
        params = make_params(case.detector, case.params)
        out = run_detector(case.detector, params, case.counts, weeks=case.weeks, fallback=None)
        r = compare(case, out)
        c3 = case.alarm_column == "alarm_documented"
        na_same = r["na_expected_same"] and (c3 or r["na_upperbound_same"])
        # C3's upperbound follows the textbook rule, not R's (see monitor/detectors/ears.py)
        ok = r["alarms_equal"] == r["weeks"] and na_same and r["max_rel_expected"] <= 1e-6 and (c3 or r["max_rel_upperbound"] <= 1e-6)
        failures += not ok
        upper = "(textbook C3)" if c3 else f"{r['max_rel_upperbound']:.2e}"
        print(f"{case.file:38} {r['weeks']:5d} {r['alarms_equal']:7d} {'yes' if na_same else 'NO':>7} "
              f"{r['max_rel_expected']:16.2e} {upper:>18}")
    print(f"{failures} file(s) outside tolerance; {time.perf_counter() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else default))
