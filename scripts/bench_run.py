#!/usr/bin/env python
"""Time the weekly job (`monitor run`) and an ad-hoc `monitor check` on a large database (issue 5, item 2).

Usage (from the project root):

    .venv/bin/python scripts/bench_run.py                              # generate + ingest 2,000,000 rows first
    .venv/bin/python scripts/bench_run.py --db /tmp/bench/ingest.db    # reuse a database (e.g. bench_ingest.py --out)
    .venv/bin/python scripts/bench_run.py --rows 200000 --profile always

What it does:

1. without `--db`: writes the seeded synthetic ACLED file of `scripts/benchlib.py`
   (`--rows` events, 2015-01-05 to 2024-12-29) and ingests it with `monitor ingest`
   into a fresh database (timed, for context);
2. writes a config whose series are admin1 x event type (`group_by = ["country",
   "admin1", "event_type"]`, with the global roll-up) plus country totals (`group_by =
   ["country"]`), detector `farrington-cusum` (the default), reports in the working
   folder, alerts to a digest file (one recipient, no SMTP host: an .eml is written);
3. times `monitor run --week W` (default 2024-W52, the last week of the generated data)
   and `monitor check --week W --series S` (one series), each as a child process of the
   real CLI: wall time including interpreter start-up, and the child's peak RSS
   (GNU time's `%M`; see `benchlib.measure`);
4. prints the figures against the targets of issue 5: run < 60 s, check < 2 s. Nothing is
   asserted. A command still running after its timeout (`--run-timeout`, `--check-timeout`)
   is stopped and reported as such;
5. `--profile auto` (default) re-runs under cProfile each command that missed its target
   (stopped after `--profile-limit` seconds; the stats written so far are kept) and prints
   its top functions; `always` profiles both, `never` none.

The run writes detections, alert states and a `runs` row into the database, like any
weekly run; running the same week again changes no state.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (  # noqa: E402
    LAST_WEEK,
    Measurement,
    fresh_db,
    human_bytes,
    in_workdir,
    measure,
    monitor_command,
    print_profile,
    print_table,
    profile_command,
    rss_method,
    write_acled_csv,
    write_config,
)

#: Targets of issue 5 (wall seconds, start-up included).
RUN_TARGET_S = 60.0
CHECK_TARGET_S = 2.0
DEFAULT_SERIES = "admin1_type/country=Syria|admin1=Aleppo|event_type=Battles"


def report(label: str, m: Measurement) -> None:
    """One line per measured child, the end of its output, and its errors when it failed."""
    state = f" TIMED OUT (stopped after {m.seconds:.0f} s)" if m.timed_out else f" exit {m.returncode}"
    print(f"{label}: {m.seconds:8.2f} s  peak RSS {human_bytes(m.peak_rss)} {state}")
    for line in m.stdout.strip().splitlines()[-4:]:
        print(f"    | {line[:200]}")
    if m.timed_out or m.returncode not in (0, 3):  # check exits 3 when the series is flagged
        for line in m.stderr.strip().splitlines()[-10:]:
            print(f"    ! {line}")


def incidents_in(db: Path) -> int:
    """Rows of the incidents table (read-only)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM incidents").fetchone()[0])


def series_count(stdout: str) -> str:
    """'N of M series flagged' from `monitor run`'s output, or '?'."""
    found = re.search(r"(\d+) of (\d+) series flagged", stdout)
    return f"{found.group(2)} series, {found.group(1)} flagged" if found else "series: ?"


def profile(label: str, args: list[str], *, work: Path, limit: float, top: int) -> None:
    """Run `monitor ARGS` under cProfile for at most `limit` seconds and print its top functions."""
    out = work / f"{label}.prof"
    m = measure(profile_command(args, out=out, limit=limit), timeout=limit + 120)
    stopped = " (stopped by the time limit: partial profile)" if m.returncode == 124 else ""
    print(f"\ncProfile of `monitor {label}`: {m.seconds:.1f} s under the profiler{stopped}")
    if out.exists():
        print_profile(out, top=top)
    else:
        print(f"no profile written (exit {m.returncode}): {m.stderr.strip()[-500:]}")


def run(args: argparse.Namespace, work: Path) -> int:
    print(f"working folder: {work}")
    if args.db is None:
        events = work / "events.csv"
        start = time.perf_counter()
        write_acled_csv(events, rows=args.rows, seed=args.seed)
        print(f"generated {events.name}: {args.rows:,} rows, {human_bytes(events.stat().st_size)}, "
              f"{time.perf_counter() - start:.1f} s (seed {args.seed})")  # fmt: skip
        db = fresh_db(work / "monitor.db")
    else:
        db = args.db.resolve()
        if not db.is_file():
            raise SystemExit(f"--db {db}: no such database")
    config = write_config(work / "bench.toml", db=db, work=work, series=True)
    monitor = [*monitor_command(), "--config", str(config), "--db", str(db)]
    if args.db is None:
        m = measure([*monitor, "ingest", str(work / "events.csv")], timeout=args.run_timeout)
        report("monitor ingest (context)", m)
        if m.returncode:
            return 1
    rows = incidents_in(db)
    print(f"database: {db} ({human_bytes(db.stat().st_size)}, {rows:,} incidents)")
    print(f"config: {config}")
    print(rss_method() + "\n")

    run_args = ["--config", str(config), "--db", str(db), "run", "--week", args.week]
    check_args = ["--config", str(config), "--db", str(db), "check", "--week", args.week, "--series", args.series]
    print(f"$ monitor {' '.join(run_args)}")
    weekly = measure([*monitor_command(), *run_args], timeout=args.run_timeout)
    report("monitor run  ", weekly)
    print(f"$ monitor {' '.join(check_args)}")
    check = measure([*monitor_command(), *check_args], timeout=args.check_timeout)
    report("monitor check", check)

    run_ok = not weekly.timed_out and weekly.returncode == 0
    check_ok = not check.timed_out and check.returncode in (0, 3)
    print(f"\ntargets ({rows:,} incidents, {series_count(weekly.stdout)}, week {args.week}):")
    print_table(
        [
            ("monitor run < 60 s", f"{'>= ' if weekly.timed_out else ''}{weekly.seconds:.1f} s, peak RSS {human_bytes(weekly.peak_rss)}",
             "PASS" if run_ok and weekly.seconds < RUN_TARGET_S else "MISS"),
            ("monitor check --series < 2 s", f"{'>= ' if check.timed_out else ''}{check.seconds:.2f} s, peak RSS {human_bytes(check.peak_rss)}",
             "PASS" if check_ok and check.seconds < CHECK_TARGET_S else "MISS"),
        ],
        ("target", "measured (wall, start-up included)", "result"),
    )  # fmt: skip

    todo = []
    if args.profile == "always" or (args.profile == "auto" and not (run_ok and weekly.seconds < RUN_TARGET_S)):
        todo.append(("run", run_args))
    if args.profile == "always" or (args.profile == "auto" and not (check_ok and check.seconds < CHECK_TARGET_S)):
        todo.append(("check", check_args))
    for label, cmd in todo:
        profile(label, cmd, work=work, limit=args.profile_limit, top=args.top)
    return 0 if run_ok and check_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="events to generate and ingest without --db (default 2,000,000)")
    parser.add_argument("--db", type=Path, default=None, help="reuse this database (built from the benchmark file) instead")
    parser.add_argument("--out", type=Path, default=None, help="working folder, kept afterwards (default: a temp folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the default temp folder")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--week", default=LAST_WEEK, help=f"week to run and check (default {LAST_WEEK}, the data's last week)")
    parser.add_argument("--series", default=DEFAULT_SERIES, help=f"series filter of the check (default {DEFAULT_SERIES})")
    parser.add_argument("--run-timeout", type=float, default=1800, help="stop `monitor run` (and ingest) after this many seconds")
    parser.add_argument("--check-timeout", type=float, default=300, help="stop `monitor check` after this many seconds")
    parser.add_argument("--profile", choices=["auto", "always", "never"], default="auto",
                        help="cProfile the commands that miss their target (auto), both, or none")  # fmt: skip
    parser.add_argument("--profile-limit", type=float, default=300, help="stop a profiled command after this many seconds")
    parser.add_argument("--top", type=int, default=20, help="functions listed per profile ordering (default 20)")
    args = parser.parse_args(argv)
    return in_workdir(args, run, prefix="bench_run-")


if __name__ == "__main__":
    sys.exit(main())
