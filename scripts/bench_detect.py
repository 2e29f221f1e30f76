#!/usr/bin/env python
"""Time the Farrington detector's batch engine on many simulated series, against R's speed.

Usage (from the project root):

    .venv/bin/python scripts/bench_detect.py                  # 1,000 series x 52 monitored weeks
    .venv/bin/python scripts/bench_detect.py --series 10000   # memory check: must stay under 2 GB
    .venv/bin/python scripts/bench_detect.py --series 200 --check 20 --seed 7
    .venv/bin/python scripts/bench_detect.py --cli            # the commands a user types, timed (issue 17)
    .venv/bin/python scripts/bench_detect.py --cli --series 500 --repeat 5 --workdir /tmp/bench-cli

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

With `--cli`, the same figures are taken through the commands a user types, each run as a
child process of the real `monitor` CLI of this interpreter's environment (best of
`--repeat` wall times, start-up included), side by side in one run. The package's bytecode
is compiled first, as a user's first run leaves it (`compile_bytecode`: where
PYTHONDONTWRITEBYTECODE is set, every start-up would otherwise compile the package again):

* start-up: `python -c pass` (the interpreter alone, the floor), `monitor --help`,
  `monitor --version` (target < 0.3 s);
* `monitor detect FILE.csv --detector farrington --param b=B --last M --format csv` on the
  simulated series written as one CSV (`week_start,count,series`; default 500 series of 520
  weeks): seconds, ms per series and the speed-up against R per series (target >= 100x),
  and the command's output compared with the statsmodels reference path on the first
  `--check` series (alarm, NA and note mismatches must be 0);
* the demo (`monitor demo`, written once under the work folder): `monitor check --series
  'key:is_attacks/admin1=Homs'` for one series (target < 0.8 s);
* UCDP GED Syria (`../shared/data`, the 28 series of `scripts/bench_alarms.py`):
  `monitor check` of the 28 series for 2019-W47 and `monitor backtest --from 2017-W01 --to
  2019-W47` (151 weeks x 28 series), and their ratio (target <= 3). Skipped, saying so,
  when the file is not there.
"""

from __future__ import annotations

import argparse
import csv
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from monitor.detectors.farrington import COLUMNS, FarringtonParams, detect_statsmodels  # noqa: E402
from monitor.detectors.farrington_batch import DEFAULT_CHUNK, BatchStats, detect_batch  # noqa: E402
from monitor.evaluate import SCENARIOS, START, baseline_mean  # noqa: E402
from benchlib import measure, monitor_command  # noqa: E402

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


def check(series: list[pd.Series], results: list[pd.DataFrame], params: FarringtonParams, weeks: list[int], *, columns: bool = True) -> None:
    """Run the reference path on the given series and print how far the batch results are from it
    (`columns`: also require the same columns in the same order, as `detect_batch` gives them)."""
    worst = dict.fromkeys(NUMERIC, 0.0)
    alarm_mismatch = na_mismatch = note_mismatch = n = 0
    started = time.perf_counter()
    for counts, fast in zip(series, results):
        slow = detect_statsmodels(counts, params, weeks=weeks)
        assert list(slow.columns) == list(COLUMNS) and (not columns or list(fast.columns) == list(COLUMNS))
        assert len(fast) == len(slow), f"{len(fast)} rows against the reference's {len(slow)}"
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
    parser.add_argument("--cli", action="store_true", help="time the commands a user types instead of the library (see above)")
    parser.add_argument("--repeat", type=int, default=3, help="with --cli: runs of each quick command, best taken (default 3)")
    parser.add_argument("--workdir", type=Path, help="with --cli: folder for the files and databases (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.cli:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return cli_bench(args, args.workdir)
        with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
            return cli_bench(args, Path(tmp))
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


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
UCDP_FILE = SHARED / "ucdp_ged_syria_2016-01-01_2019-11-30.csv"


def timed(args: list[str], *, repeat: int, cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """Best wall time of `repeat` runs of `monitor ARGS` (or of a full command line) and the last run's stdout."""
    command = args if args[0] == sys.executable else monitor_command() + args
    best, out = float("inf"), ""
    for _ in range(max(1, repeat)):
        m = measure(command, cwd=cwd)
        if m.returncode not in ok:
            raise SystemExit(f"{' '.join(command)} exited {m.returncode}:\n{m.stderr[-2000:]}")
        best, out = min(best, m.seconds), m.stdout
    return best, out


def compile_bytecode() -> str:
    """Compile the monitor package's bytecode (`__pycache__`) ahead of the timings, as Python does on a user's
    machine at the first run (and pip at install for a non-editable install): where PYTHONDONTWRITEBYTECODE is
    set, as in some sandboxes and containers, every command would otherwise compile the modules it imports
    again (a sixth of the instructions of a `monitor check`, measured with valgrind). Returns the line that says so."""
    import compileall
    import os

    import monitor

    package = Path(monitor.__file__).parent
    compileall.compile_dir(str(package), quiet=1)
    why = " (PYTHONDONTWRITEBYTECODE is set here, so no command would)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""
    return f"bytecode of {package} compiled ahead, as a user's first run would{why}"


def cli_bench(args: argparse.Namespace, work: Path) -> int:
    """The `--cli` figures (see the module docstring), printed as they come."""
    (work / "empty.toml").write_text('[database]\npath = "bench.db"\n', encoding="utf-8")
    print(compile_bytecode())
    floor, _ = timed([sys.executable, "-c", "pass"], repeat=args.repeat, cwd=work)
    print(f"start-up, best of {args.repeat} (targets: --help and --version < 0.3 s)")
    print(f"  python -c pass      {floor:.3f} s")
    for flag in ("--help", "--version"):
        seconds, _ = timed([flag], repeat=args.repeat, cwd=work)
        print(f"  monitor {flag:<11} {seconds:.3f} s  ({seconds - floor:+.3f} s over the interpreter)")

    # monitor detect on many series in one file
    series = simulate(args.series, args.weeks, args.monitor, args.seed)
    path = work / f"series_{args.series}x{args.weeks}.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["week_start", "count", "series"])
        for i, counts in enumerate(series):
            for day, value in zip(counts.index.strftime("%Y-%m-%d"), counts.to_numpy(dtype=int)):
                writer.writerow([day, value, f"s{i:05d}"])
    command = ["--config", str(work / "empty.toml"), "detect", str(path), "--detector", "farrington",
               "--param", f"b={args.b}", "--last", str(args.monitor), "--format", "csv"]  # fmt: skip
    seconds, out = timed(command, repeat=1, cwd=work, ok=(0, 3))
    r_seconds = R_MS_PER_WEEK * args.series * args.monitor / 1000
    print(f"monitor detect: {args.series} series x {args.monitor} monitored weeks of {args.weeks} (farrington, improved settings, b={args.b})")
    print(f"  seconds           {seconds:.2f}  ({1000 * seconds / args.series:.2f} ms per series)")
    print(f"  speed-up vs R     {r_seconds / seconds:,.0f}x per series  (R: {r_seconds:,.0f} s; target >= 100x)")
    if args.check:
        frame = pd.read_csv(io.StringIO(out), na_values=["NA"], keep_default_na=False)
        k = min(args.check, len(series))
        weeks = list(range(args.weeks - args.monitor, args.weeks))
        fast = []
        for i in range(k):
            part = frame[frame["series"] == f"s{i:05d}"].reset_index(drop=True)
            part["alarm"] = part["alarm"].astype("boolean")
            part["note"] = part["note"].fillna("").astype(str)
            fast.append(part)
        check(series[:k], fast, FarringtonParams(b=args.b), weeks, columns=False)

    demo = work / "demo"
    if not (demo / "monitor.db").exists():
        timed(["demo", "--out", str(demo)], repeat=1, cwd=work, ok=(0, 3))
    seconds, _ = timed(["--config", str(demo / "monitor.toml"), "check", "--series", "key:is_attacks/admin1=Homs"],
                       repeat=args.repeat, cwd=demo, ok=(0, 3))  # fmt: skip
    print(f"monitor check of one series on the demo (is_attacks, Homs): {seconds:.2f} s  (target < 0.8 s)")

    if not UCDP_FILE.exists():
        print(f"UCDP backtest: skipped, {UCDP_FILE} is not there")
        return 0
    ucdp = work / "ucdp"
    ucdp.mkdir(exist_ok=True)
    from bench_alarms import UCDP_TOML

    (ucdp / "monitor.toml").write_text(UCDP_TOML, encoding="utf-8")
    if not (ucdp / "monitor.db").exists():
        timed(["--config", "monitor.toml", "ingest", str(UCDP_FILE)], repeat=1, cwd=ucdp)
    one, _ = timed(["--config", "monitor.toml", "check", "--week", "2019-W47"], repeat=args.repeat, cwd=ucdp, ok=(0, 3))
    replay, _ = timed(["--config", "monitor.toml", "backtest", "--from", "2017-W01", "--to", "2019-W47", "--out", "backtest"],
                      repeat=1, cwd=ucdp)  # fmt: skip
    print("UCDP GED Syria, 28 series (events and IS events by admin1, with totals)")
    print(f"  monitor check 2019-W47                     {one:.2f} s")
    print(f"  monitor backtest 2017-W01..2019-W47 (151)  {replay:.2f} s  ({replay / one:.1f}x the check; target <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
