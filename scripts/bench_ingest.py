#!/usr/bin/env python
"""Time `monitor ingest` of a large ACLED export against `sqlite-utils insert` (issue 5, item 1).

Usage (from the project root):

    .venv/bin/python scripts/bench_ingest.py                          # 2,000,000 rows in a temp folder
    .venv/bin/python scripts/bench_ingest.py --rows 500000 --out /tmp/bench --keep
    .venv/bin/python scripts/bench_ingest.py --rows 200000 --profile  # + a cProfile of the first ingest

What it does, in one run:

1. writes, with a fixed seed, `events.csv`: `--rows` synthetic events in the current
   31-column ACLED export layout over 10 years (see `scripts/benchlib.py`), and in the
   same pass `events-revised.csv`, the same file with 1 % of the rows revised (a later
   `timestamp`, `fatalities` raised by 1-3);
2. (a) `monitor ingest events.csv` into a fresh database, as a child process of the
   real CLI with a temporary config;
3. (b) `sqlite-utils insert fresh.db events events.csv --csv` into another fresh database;
4. (c) `monitor ingest events.csv` again into the database of (a) (unchanged file);
5. (d) `monitor ingest events-revised.csv` into the database of (a) (1 % revised rows).

Figures: wall seconds and rows/s of each child, its peak RSS (GNU time's `%M`, the
command's own high-water mark; see `benchlib.measure`), the
ratio monitor / sqlite-utils, and a final table against the targets of issue 5:
ingest <= 1.0x sqlite-utils, peak RSS < 1.5 GB, unchanged re-ingest < 5 s, 1 %-revised
re-ingest <= the first ingest. Nothing is asserted: each target is printed PASS or MISS.

With `--profile`, the first ingest is run once more, into a third fresh database, under
cProfile (stopped after `--profile-limit` seconds), and the top functions are printed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (  # noqa: E402
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

GB = 1e9
#: Targets of issue 5.
RSS_TARGET = 1.5 * GB
UNCHANGED_TARGET_S = 5.0


def sqlite_utils_command() -> list[str]:
    """The `sqlite-utils` executable of this environment (next to the interpreter, else on PATH)."""
    local = Path(sys.executable).parent / "sqlite-utils"
    found = str(local) if local.exists() else shutil.which("sqlite-utils")
    if not found:
        raise SystemExit("sqlite-utils not found: install it in this environment (pip install sqlite-utils)")
    return [found]


def report(label: str, m: Measurement, rows: int) -> None:
    """One line per measured child, plus its output when it failed."""
    state = " TIMED OUT" if m.timed_out else (f" exit {m.returncode}" if m.returncode else "")
    print(f"{label}: {m.seconds:8.2f} s  {rows / m.seconds:>10,.0f} rows/s  peak RSS {human_bytes(m.peak_rss)}{state}")
    for line in m.stdout.strip().splitlines()[-3:]:
        print(f"    | {line}")
    if m.returncode or m.timed_out:
        for line in m.stderr.strip().splitlines()[-10:]:
            print(f"    ! {line}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def run(args: argparse.Namespace, work: Path) -> int:
    rows = args.rows
    events, revised = work / "events.csv", work / "events-revised.csv"
    print(f"working folder: {work}")
    start = time.perf_counter()
    n_revised = write_acled_csv(events, rows=rows, seed=args.seed, revised_path=revised, revised_fraction=0.01)
    print(
        f"generated {events.name}: {rows:,} rows, {human_bytes(events.stat().st_size)}; {revised.name}: {n_revised:,} rows "
        f"revised; {time.perf_counter() - start:.1f} s (seed {args.seed})"
    )

    db = fresh_db(work / "ingest.db")
    config = write_config(work / "bench.toml", db=db, work=work)
    monitor = [*monitor_command(), "--config", str(config), "--db", str(db)]
    print(f"\nmonitor: {' '.join(monitor)} ingest FILE")
    print(f"sqlite-utils: {' '.join(sqlite_utils_command())} insert {work / 'sqlite-utils.db'} events {events} --csv")
    print(rss_method() + "\n")

    first = measure([*monitor, "ingest", str(events)], timeout=args.timeout)
    report("(a) monitor ingest, fresh db      ", first, rows)
    su_db = fresh_db(work / "sqlite-utils.db")
    su = measure([*sqlite_utils_command(), "insert", str(su_db), "events", str(events), "--csv"], timeout=args.timeout)
    report("(b) sqlite-utils insert --csv      ", su, rows)
    again = measure([*monitor, "ingest", str(events)], timeout=args.timeout)
    report("(c) monitor re-ingest, unchanged   ", again, rows)
    rev = measure([*monitor, "ingest", str(revised)], timeout=args.timeout)
    report("(d) monitor re-ingest, 1 % revised ", rev, rows)
    ratio = first.seconds / su.seconds
    print(f"\nratio monitor / sqlite-utils (first ingest): {ratio:.2f}x")
    print(f"database sizes: monitor {human_bytes(db.stat().st_size)}, sqlite-utils {human_bytes(su_db.stat().st_size)}")

    failed = [m for m in (first, su, again, rev) if m.returncode or m.timed_out]
    peak = max(first.peak_rss, again.peak_rss, rev.peak_rss)
    print(f"\ntargets ({rows:,} rows):")
    print_table(
        [
            ("ingest time <= 1.0x sqlite-utils", f"{first.seconds:.1f} s vs {su.seconds:.1f} s = {ratio:.2f}x", verdict(ratio <= 1.0)),
            ("peak RSS of monitor ingest < 1.5 GB", f"{peak / GB:.2f} GB (a {first.peak_rss / GB:.2f}, c {again.peak_rss / GB:.2f}, "
             f"d {rev.peak_rss / GB:.2f})", verdict(peak < RSS_TARGET)),
            ("unchanged re-ingest < 5 s", f"{again.seconds:.2f} s", verdict(again.seconds < UNCHANGED_TARGET_S)),
            ("1 %-revised re-ingest <= first ingest", f"{rev.seconds:.1f} s vs {first.seconds:.1f} s", verdict(rev.seconds <= first.seconds)),
        ],
        ("target", "measured", "result"),
    )  # fmt: skip
    if failed:
        print(f"\nwarning: {len(failed)} command(s) failed or timed out; their figures are not comparable")

    if args.profile:
        prof_db = fresh_db(work / "profile.db")
        out = work / "ingest.prof"
        cmd = profile_command(["--config", str(config), "--db", str(prof_db), "ingest", str(events)], out=out, limit=args.profile_limit)
        m = measure(cmd, timeout=args.profile_limit + 120)
        print(f"\ncProfile of the first ingest (fresh db, {m.seconds:.1f} s under the profiler):")
        if out.exists():
            print_profile(out, top=args.top)
        else:
            print(f"no profile written (exit {m.returncode}): {m.stderr.strip()[-500:]}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="events in the generated file (default 2,000,000)")
    parser.add_argument("--out", type=Path, default=None, help="working folder, kept afterwards (default: a temp folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the default temp folder (files and databases)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before a child process is stopped (default 3600)")
    parser.add_argument("--profile", action="store_true", help="also profile the first ingest with cProfile (one extra ingest)")
    parser.add_argument("--profile-limit", type=float, default=600, help="stop the profiled ingest after this many seconds")
    parser.add_argument("--top", type=int, default=20, help="functions listed per profile ordering (default 20)")
    args = parser.parse_args(argv)
    return in_workdir(args, run, prefix="bench_ingest-")


if __name__ == "__main__":
    sys.exit(main())
