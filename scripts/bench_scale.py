#!/usr/bin/env python
"""Detect one week of 100,000 weekly series (admin2 x actor scale) on one machine and on a two-worker Dask cluster.

Usage (from the project root; the cluster needs the extra: pip install -e '.[scale]'):

    .venv/bin/python scripts/bench_scale.py                          # 100,000 series, EARS, both runs
    .venv/bin/python scripts/bench_scale.py --series 20000 --detector farrington
    .venv/bin/python scripts/bench_scale.py --only local --chunk 5000 --weeks 520

What it does: generates `--series` seeded weekly series of `--weeks` weeks, the shape of
admin2 x actor counts: mostly sparse (negative binomial, dispersion 0.5, with a weekly mean
drawn from a gamma of mean 0.15, so most series are zero most weeks), 2 % dense ones (means 3
to 20), and a surge in the last week of 1 series in 200. The series are generated chunk by
chunk (`--chunk` series, each chunk from its own seed), so neither run ever holds more than a
few chunks. Each run detects the last week only (`lookback = 0`, as `monitor check` does)
with `--detector` (default `ears`, the cheapest baseline; `farrington` runs the batch engine,
about 3x slower a series on sparse data), through `monitor.detection.detect_chunk` and
`monitor.parallel.imap`, the same path as `monitor run`:

* one machine: one process, chunk after chunk (`[detection] engine = "local"`, workers = 1);
* cluster: a two-worker `distributed.LocalCluster` on 127.0.0.1 (`engine = "dask"`, empty
  scheduler, `--workers` processes), the chunks shipped to it as tasks, at most twice the
  workers in flight.

Each run is a child process of this script, so its peak memory is its own. Printed for each:
seconds (wall clock, generation included), series per second, the process's peak RSS
(getrusage ru_maxrss) and, for the cluster, each worker's peak RSS (asked of the workers
through Dask at the end); and the alarms and undecided series of the week, which must agree
between the two runs (the frames are the same, see tests/test_cluster.py). Progress goes to
the terminal (stderr) when it is one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import human_bytes, print_table  # noqa: E402

#: Share of dense series (a capital's main armed group), their mean range, and of series with a surge this week.
DENSE_SHARE, DENSE_MEANS, SURGE_EVERY = 0.02, (3.0, 20.0), 200


def generate_chunk(seed: int, index: int, size: int, weeks: int, offset: int) -> list:
    """`size` weekly count series (pd.Series on Monday weeks ending 2024-12-23), reproducible from (seed, index)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, index])
    dates = pd.date_range(end="2024-12-23", periods=weeks, freq="7D")
    dense = rng.random(size) < DENSE_SHARE
    means = np.where(dense, rng.uniform(*DENSE_MEANS, size), rng.gamma(0.5, 0.3, size))  # sparse: mean 0.15 a week
    r = 0.5  # negative-binomial dispersion: variance = mean + mean^2 / r
    counts = rng.negative_binomial(r, r / (r + means[:, None]), size=(size, weeks)).astype(float)
    surging = (offset + np.arange(size)) % SURGE_EVERY == 0
    counts[surging, -1] += np.ceil(3 * np.sqrt(means[surging] + 1) + 3)
    return [pd.Series(row, index=dates, name="count") for row in counts]


def _jobs(args, detector: str):
    from monitor.detectors import FALLBACK, make_params

    params, fallback = make_params(detector, {}), make_params(FALLBACK, {})
    for index, start in enumerate(range(0, args.series, args.chunk)):
        size = min(args.chunk, args.series - start)
        yield (generate_chunk(args.seed, index, size, args.weeks, start), 0, detector, params, fallback, [0] * size)


def run_child(args) -> int:
    """One run (`--mode local|cluster`): detect, print one JSON line of figures on stdout."""
    from monitor.detection import detect_chunk
    from monitor.parallel import Engine, hide_library_warnings, imap

    hide_library_warnings()
    os.environ["MONITOR_QUIET_WARNINGS"] = "1"  # the same on the workers (monitor.parallel)
    engine = Engine(name="dask", workers=args.workers) if args.mode == "cluster" else Engine(workers=1)
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tty = sys.stderr.isatty()
    chunks = -(-args.series // args.chunk)
    start = time.perf_counter()
    opened = None
    if engine.name == "dask":
        from monitor import cluster

        opened = cluster.client(scheduler="", workers=args.workers, setup=hide_library_warnings)
    ready = time.perf_counter() - start
    done = alarms = undecided = 0
    for k, frames in enumerate(imap(detect_chunk, _jobs(args, args.detector), engine=engine), 1):
        for frame in frames:
            alarm = frame["alarm"].iloc[-1]
            undecided += bool(alarm is None or alarm != alarm)
            alarms += bool(alarm is not None and alarm == alarm and alarm)
        done += len(frames)
        if tty:
            rate = done / (time.perf_counter() - start)
            print(f"\r  {args.mode}: chunk {k}/{chunks}, {done:,} series, {rate:,.0f} series/s   ", end="", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    if tty:
        print(file=sys.stderr)
    figures = {
        "mode": args.mode, "series": done, "seconds": seconds, "startup": ready, "alarms": alarms, "undecided": undecided,
        "rss_start": rss_start, "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "workers": {},
    }  # fmt: skip
    if opened is not None:
        from monitor import cluster

        figures["workers"] = cluster.worker_peaks(opened)
        cluster.close_all()
    print(json.dumps(figures))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--series", type=int, default=100_000, help="weekly series to generate (default 100,000)")
    parser.add_argument("--weeks", type=int, default=260, help="weeks of history per series, the detected week last (default 260)")
    parser.add_argument("--chunk", type=int, default=2_000, help="series generated and detected at a time (default 2,000)")
    parser.add_argument("--detector", default="ears", help="detector (default ears; see `monitor detectors`)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the local Dask cluster (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--only", choices=["local", "cluster"], help="one of the two runs only")
    parser.add_argument("--mode", choices=["local", "cluster"], help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args(argv)
    if args.mode:
        return run_child(args)
    print(f"{args.series:,} series x {args.weeks} weeks (admin2 x actor: mostly sparse, {DENSE_SHARE:.0%} dense), "
          f"detector {args.detector}, the last week only, chunks of {args.chunk:,} series; {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    rows, results = [], {}
    for mode in [args.only] if args.only else ["local", "cluster"]:
        child = [sys.executable, __file__, "--mode", mode, "--series", str(args.series), "--weeks", str(args.weeks),
                 "--chunk", str(args.chunk), "--detector", args.detector, "--workers", str(args.workers), "--seed", str(args.seed)]  # fmt: skip
        done = subprocess.run(child, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(f"{mode} run failed (exit {done.returncode})", file=sys.stderr)
            return 1
        r = results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        label = "one machine, one process" if mode == "local" else f"Dask LocalCluster, {args.workers} workers"
        workers = ", ".join(human_bytes(v) for v in r["workers"].values()) or "-"
        rows.append([label, f"{r['seconds']:.1f}", f"{r['series'] / r['seconds']:,.0f}", human_bytes(r["rss_peak"]), workers,
                     f"{r['startup']:.1f}", r["alarms"], r["undecided"]])  # fmt: skip
    print()
    print_table(rows, ["run", "seconds", "series/s", "peak RSS", "worker peak RSS", "start-up s", "alarms", "undecided"])
    if len(results) == 2:
        same = all(results["local"][k] == results["cluster"][k] for k in ("series", "alarms", "undecided"))
        print(f"\nalarms and undecided series agree between the runs: {'yes' if same else 'NO'}")
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
