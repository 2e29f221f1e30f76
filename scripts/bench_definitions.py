#!/usr/bin/env python
"""Time a config with hundreds of [[series]] definitions on real data (issue 12, item 10).

Usage (from the project root, with ../shared beside it):

    .venv/bin/python scripts/bench_definitions.py                   # 500 definitions
    .venv/bin/python scripts/bench_definitions.py --definitions 2000 --typos 0.5

What it does: ingests the UCDP GED Syria file (2016-01 to 2019-11, 16,566 events) into a
fresh database in a temp folder, then writes a config of `--definitions` definitions, one per
(governorate, UCDP violence type, one of the 12 most active actors), each grouped by admin2;
a share `--typos` of them name their governorate with a letter too many, as a config with
mistakes does (each such definition is then explained with the nearest names in the data).
It times, in this process, the building of every series and the explanation of every
definition that yields none (`assemble.series_and_problems`), then `monitor check --week
2019-W47 --format json` end to end as a child process (interpreter start-up and detection
included). Nothing is asserted.

Figures on the development machine (2 cores), 500 definitions: 284 series, built and
explained in 1.8-2.3 s (9.1 s before the definitions shared one factorized frame); `check`
28 s in all, nearly all of it the Farrington reference path on sparse actor x district
series (degenerate fits, see monitor/detectors/farrington_batch.py; issue 17). With every
definition misspelt: 0.5 s, and `check` ends in 2.5 s naming the nearest governorates.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UCDP = ROOT.parent / "shared" / "data" / "ucdp_ged_syria_2016-01-01_2019-11-30.csv"
NOW = "2019-12-03T06:00:00+00:00"
WEEK = "2019-W47"


def write_config(path: Path, db: Path, n: int, typos: float) -> None:
    with sqlite3.connect(db) as conn:
        places = [r[0] for r in conn.execute("SELECT DISTINCT admin1 FROM incidents WHERE admin1 <> '' ORDER BY 1")]
        kinds = [r[0] for r in conn.execute("SELECT DISTINCT event_type FROM incidents ORDER BY 1")]
        actors = [r[0] for r in conn.execute("SELECT actor1 FROM incidents GROUP BY 1 ORDER BY COUNT(*) DESC LIMIT 12")]
    combos = [(p, k, a) for p in places for k in kinds for a in actors]
    lines = [f'[database]\npath = "{db}"\n[report]\nfolder = "{path.parent / "reports"}"\n']
    for i in range(n):
        place, kind, actor = combos[i % len(combos)]
        if i < round(n * typos):
            place += "x"
        lines.append(f'[[series]]\nname = "s{i}"\ngroup_by = ["admin2"]\n'
                     f"filters = {{ admin1 = [{json.dumps(place)}], event_type = [{json.dumps(kind)}], "
                     f"actor = [{json.dumps(actor)}] }}\n")  # fmt: skip
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--definitions", type=int, default=500, help="[[series]] definitions (default 500)")
    parser.add_argument("--typos", type=float, default=0.0, help="share of definitions whose governorate is misspelt (0..1)")
    args = parser.parse_args(argv)
    if not UCDP.is_file():
        sys.exit(f"{UCDP}: not found (this benchmark reads the shared UCDP file; put ../shared beside the project)")
    env = {**os.environ, "MONITOR_NOW": NOW}
    monitor = [sys.executable, "-m", "monitor"]
    with tempfile.TemporaryDirectory(prefix="bench-definitions-") as tmp:
        work = Path(tmp)
        db, config = work / "m.db", work / "monitor.toml"
        print(f"ingesting {UCDP.name} ...", file=sys.stderr)
        subprocess.run([*monitor, "--db", str(db), "ingest", str(UCDP)], env=env, check=True, capture_output=True)
        write_config(config, db, args.definitions, args.typos)

        from monitor.assemble import series_and_problems
        from monitor.config import load_config
        from monitor.series import parse_week
        from monitor.store import Store

        cfg = load_config(config)
        with Store(db) as store:
            start = time.perf_counter()
            series, problems = series_and_problems(cfg, store, week=parse_week(WEEK))
            built = time.perf_counter() - start
        print(f"definitions: {args.definitions:,} ({round(args.definitions * args.typos):,} misspelt)")
        print(f"series built: {len(series):,}; problems explained: {len(problems):,}; in {built:.2f} s")
        print("running `monitor check` ...", file=sys.stderr)
        start = time.perf_counter()
        done = subprocess.run([*monitor, "--config", str(config), "check", "--week", WEEK, "--format", "json"],
                              env=env, capture_output=True, text=True)  # fmt: skip
        took = time.perf_counter() - start
        rows = len(json.loads(done.stdout)) if done.stdout.strip().startswith("[") else 0
        print(f"monitor check: exit {done.returncode}, {rows:,} series judged, {took:.1f} s wall clock")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
