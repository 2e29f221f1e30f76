#!/usr/bin/env python
"""Time the Farrington detector's batch engine on many simulated series, against R's speed.

Usage (from the project root):

    .venv/bin/python scripts/bench_detect.py                  # 1,000 series x 52 monitored weeks
    .venv/bin/python scripts/bench_detect.py --series 10000   # memory check: must stay under 2 GB
    .venv/bin/python scripts/bench_detect.py --series 200 --check 20 --seed 7

What it does: simulates `--series` seeded weekly series of `--weeks` weeks, cycling through
the 42 scenarios of Noufaily et al. (2013) in `monitor.evaluate` (negative-binomial counts
around `baseline_mean`, variance phi·mean, plus one outbreak of Poisson(3·sd) cases starting
in the monitored weeks so that some weeks alarm), then runs `farrington` with the improved
settings (the `FarringtonParams` defaults, Noufaily 2013: w=3, reweighting, nbPlugin, ...)
with b = `--b` on the last `--monitor` weeks of every series, all series in one call
(`detect_many`, i.e. `farrington_batch.detect_batch`). Only that call is timed.

Figures printed:

* series, monitored weeks (one GLM fit chain per week), seconds (wall clock of the
  detection only; the process's CPU time beside it, which another busy process on the
  machine disturbs less), weeks per second and ms per week (both from the wall clock);
* speed-up against R: surveillance::farringtonFlexible takes about 366 s for 1,000 such
  series on these machines, i.e. about 7.04 ms per monitored week; the target is >= 100x;
* weeks handed to the statsmodels reference path (degenerate fits or rounding near-ties,
  see monitor/detectors/farrington_batch.py);
* peak RSS: the process's high-water mark (resource.getrusage), input series included,
  and the RSS just before the detection for comparison;
* with `--check K` (default 5): the statsmodels reference path (`detect_statsmodels`) on the
  first K series: alarm, NA and note mismatches (must be 0) and the largest relative
  difference per numeric column (rounding; where above 1e-9 it is the reference's own
  error, see tests/test_farrington_batch.py). The reference path is not included in the
  timing; it takes about 3.5 ms per week.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.detectors.farrington import COLUMNS, FarringtonParams, detect_statsmodels  # noqa: E402
from monitor.detectors.farrington_batch import DEFAULT_CHUNK, BatchStats, detect_batch  # noqa: E402
from monitor.evaluate import SCENARIOS, START, baseline_mean  # noqa: E402

#: R surveillance 1.20.3, farringtonFlexible with these settings: ~366 s for 1,000 series x 52 weeks.
R_MS_PER_WEEK = 366.0 / (1000 * 52) * 1000
NUMERIC = ("count", "expected", "upperbound", "score", "pvalue", "mu0", "phi", "trend_coef")


def simulate(n_series: int, weeks: int, monitor: int, seed: int) -> list[pd.Series]:
    """`n_series` seeded series of `weeks` weeks; series i uses scenario i mod 42 and generator (seed, i)."""
    index = pd.date_range(START, periods=weeks, freq="7D", name="week_start")  # one index shared by all series
    means = {sc.id: baseline_mean(sc, weeks=weeks) for sc in SCENARIOS}
    out = []
    for i in range(n_series):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        rng = np.random.default_rng([seed, i])
        mu = means[scenario.id]
        if scenario.phi == 1:
            counts = rng.poisson(mu)
        else:  # mean mu, variance phi·mu (monitor.evaluate's parametrisation)
            counts = rng.negative_binomial(mu / (scenario.phi - 1), 1 / scenario.phi)
        start = int(rng.integers(weeks - monitor, weeks))
        size = int(rng.poisson(3 * np.sqrt(scenario.phi * mu[start])))
        lag = np.floor(rng.lognormal(0.0, 0.5, size)).astype(int)
        hit = start + lag
        counts = counts + np.bincount(hit[hit < weeks], minlength=weeks)
        out.append(pd.Series(counts.astype(float), index=index, name="count"))
    return out


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory now, in MB (from /proc; NaN where that does not exist)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * resource.getpagesize() / 2**20


def check(series: list[pd.Series], results: list[pd.DataFrame], params: FarringtonParams, weeks: list[int]) -> None:
    """Run the reference path on the given series and print how far the batch results are from it."""
    worst = dict.fromkeys(NUMERIC, 0.0)
    alarm_mismatch = na_mismatch = note_mismatch = n = 0
    started = time.perf_counter()
    for counts, fast in zip(series, results):
        slow = detect_statsmodels(counts, params, weeks=weeks)
        assert list(slow.columns) == list(COLUMNS) == list(fast.columns)
        n += len(slow)
        alarm_mismatch += int((fast["alarm"].fillna(False) != slow["alarm"].fillna(False)).sum())
        na_mismatch += int((fast["alarm"].isna() != slow["alarm"].isna()).sum())
        note_mismatch += int((fast["note"] != slow["note"]).sum())
        for col in NUMERIC:
            a, b = fast[col].to_numpy(float), slow[col].to_numpy(float)
            na_mismatch += int((np.isnan(a) != np.isnan(b)).sum())
            both = np.isfinite(a) & np.isfinite(b)
            rel = np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-12)
            worst[col] = max(worst[col], float(rel.max(initial=0.0)))
    seconds = time.perf_counter() - started
    print(f"check: statsmodels reference path on {len(series)} series ({n} weeks, {seconds:.1f} s, {1000 * seconds / max(n, 1):.2f} ms/week)")
    print(f"  alarm mismatches {alarm_mismatch}, NA mismatches {na_mismatch}, note mismatches {note_mismatch}")
    print("  max relative difference: " + ", ".join(f"{col} {value:.1e}" for col, value in worst.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=1000, help="number of simulated series (default 1000)")
    parser.add_argument("--weeks", type=int, default=520, help="weeks per series (default 520)")
    parser.add_argument("--monitor", type=int, default=52, help="monitored weeks at the end of each series (default 52)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulation (default 1)")
    parser.add_argument("--b", type=int, default=5, help="years of history b (default 5)")
    parser.add_argument("--check", type=int, default=5, metavar="K", help="compare with the statsmodels path on the first K series (default 5; 0: skip)")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help=f"fits per chunk (default {DEFAULT_CHUNK})")
    args = parser.parse_args(argv)
    if not 0 < args.monitor <= args.weeks or args.series < 1:
        parser.error("need --series >= 1 and 0 < --monitor <= --weeks")

    params = FarringtonParams(b=args.b)
    series = simulate(args.series, args.weeks, args.monitor, args.seed)
    weeks = list(range(args.weeks - args.monitor, args.weeks))
    rss_before = current_rss_mb()
    info = BatchStats()
    started, cpu_started = time.perf_counter(), time.process_time()
    results = detect_batch(series, params, [weeks] * len(series), chunk=args.chunk, info=info)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak = peak_rss_mb()

    n_weeks = info.weeks
    ms_per_week = 1000 * seconds / n_weeks
    alarms = sum(int(r["alarm"].sum()) for r in results)
    print(f"farrington (improved settings, b={args.b}): {args.series} series x {args.monitor} monitored weeks of {args.weeks}, seed {args.seed}")
    print(f"series            {args.series}")
    print(f"monitored weeks   {n_weeks}  ({alarms} alarms; weeks via the statsmodels path: {info.fallback})")
    print(f"seconds           {seconds:.3f}  (CPU {cpu_seconds:.3f})")
    print(f"weeks per second  {n_weeks / seconds:,.0f}")
    print(f"ms per week       {ms_per_week:.4f}")
    print(f"speed-up vs R     {R_MS_PER_WEEK / ms_per_week:,.0f}x  (R: {R_MS_PER_WEEK:.2f} ms/week, {R_MS_PER_WEEK * n_weeks / 1000:,.0f} s for these weeks)")
    print(f"peak RSS          {peak:,.0f} MB  (before detection: {rss_before:,.0f} MB)")
    if args.check:
        k = min(args.check, len(series))
        check(series[:k], results[:k], params, weeks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
