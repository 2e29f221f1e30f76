#!/usr/bin/env python
"""Nowcasts and alarms on weeks still filling, simulated (issue 14, item 7).

Series of the Noufaily et al. (2013) design (`monitor.evaluate.simulate_series`, each with a current
outbreak of size k) are reported late: each event reaches the data d weeks after its week ended with
the probabilities of ACLED's measured delays (`monitor delays` on the ACLED sample export: 56 % of a
week's events known within a week of its end, 87 % within two, 91 %, 92 %, 94 %, 94 %, 95 %, 96 %,
then all). Every week of the last year is then judged as the weekly job judges it, on what is known
at its run, and the benchmark prints:

* for the latest week of each run (delay 0), over every simulated series and run: the bias and mean
  absolute error of the raw count and of the nowcast against the final count, and how often the
  final count fell inside the nowcast's 90 % interval (and equalled the raw count);
* for each current outbreak, the weeks from its start to the first alarm: on complete data (the
  counts as they end up), on the counts as known at each run without and with re-judging the weeks
  still filling (the lifecycle does this, `monitor.alerts.lifecycle.rejudge`), and counting the
  nowcast's warnings ("likely surge once reporting completes"); and the false flags each way: runs
  that flagged a week outside every outbreak.

The delays are estimated at each run as the job estimates them: chain ladder on the reporting
triangle of all simulated series pooled (`monitor.nowcast.estimate_delays`), over the last year's
event weeks known by then; each series' nowcasts come from `monitor.nowcast.nowcast_series`.

    python scripts/bench_nowcast.py                       # 3 scenarios x 60 series, k = 5: about 3 minutes
    python scripts/bench_nowcast.py --series 200 --k 3
    python scripts/bench_nowcast.py --report DIR          # also a weekly report of one simulated outbreak, still filling

With --report, the first simulated outbreak alerted at its run while its week was still filling (or,
if none was, the largest outbreak of the first scenario) is written as an ACLED export as known on
the Wednesday after that week (each event stamped with the Monday it reached the data), ingested into
DIR/monitor.db and reported with `monitor report`: DIR/reports/<week>/report.md and, when the week is
flagged, its chart with the nowcast bands over the weeks still filling.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config import config_from_dict  # noqa: E402
from monitor.detection import detect_counts_many  # noqa: E402
from monitor.evaluate import SCENARIOS, series_rng, simulate_series  # noqa: E402
from monitor.nowcast import estimate_delays, nowcast_series  # noqa: E402

#: Share of a week's events known 0, 1, ... 8 weeks after it ended: ACLED's sample export, measured by
#: `monitor delays` (README, "Running it every week"); 9 weeks and later: all.
ACLED_SHARES = (0.56, 0.87, 0.91, 0.92, 0.94, 0.94, 0.95, 0.96, 1.0)
#: Scenarios of the Noufaily design, no trend, one harmonic: a sparse, a middling and a busy series
#: (theta 0.1, 1.5, 2.5: about 1, 4 and 12 events a week).
DEFAULT_SCENARIOS = (2, 14, 26)
#: Weeks of the last year judged run by run, and how many weeks before each run it re-judges.
RUNS = 48
RECHECK = 7
LIKELY = 0.5


def _deliveries(counts: np.ndarray, pmf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """triangle[t, d]: the events of week t that reach the data d weeks after the week ended."""
    return np.stack([rng.multinomial(int(c), pmf) for c in counts])


def _known(triangle: np.ndarray, run: int) -> np.ndarray:
    """The counts of weeks 0..run as known at the run after week `run` ended (week run at delay 0)."""
    lags = run - np.arange(run + 1)
    depth = triangle.shape[1]
    cum = np.cumsum(triangle[: run + 1], axis=1)
    return cum[np.arange(run + 1), np.minimum(lags, depth - 1)].astype(float)


def _pooled_triangle(triangles: list[np.ndarray], run: int, window: int = 52) -> np.ndarray:
    """The reporting triangle of all series pooled, of the `window` event weeks up to `run`, as known then."""
    first = max(0, run - window + 1)
    tri = sum(t[first : run + 1] for t in triangles).astype(float)
    lags = run - np.arange(first, run + 1)
    for i, lag in enumerate(lags):
        tri[i, lag + 1 :] = np.nan
    return tri


ACLED_HEADER = (
    "event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,assoc_actor_1,inter1,"
    "actor2,assoc_actor_2,inter2,interaction,civilian_targeting,iso,region,country,admin1,admin2,admin3,location,"
    "latitude,longitude,geo_precision,source,source_scale,notes,fatalities,tags,timestamp"
).split(",")


def write_report(sim, triangle: np.ndarray, run: int, out: Path, *, detector: str) -> Path:
    """The series as an ACLED export known at the run of week `run` (0-based), ingested and reported with `detector`."""
    import csv
    from datetime import timedelta, timezone

    from click.testing import CliRunner

    from monitor.cli import cli

    starts = sim.counts.index
    end = starts[run].to_pydatetime().replace(tzinfo=timezone.utc) + timedelta(days=7)  # Monday 00:00 after the run's week
    out.mkdir(parents=True, exist_ok=True)
    export = out / "acled_export.csv"
    with open(export, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ACLED_HEADER, lineterminator="\n")
        writer.writeheader()
        for t in range(run + 1):
            day = (starts[t] + pd.Timedelta(days=2)).date().isoformat()
            for d in range(triangle.shape[1]):
                seen = starts[t].to_pydatetime().replace(tzinfo=timezone.utc) + timedelta(days=7 * (d + 1), hours=6)
                if seen > end + timedelta(hours=6):
                    break  # not yet in the data at the run
                for j in range(int(triangle[t, d])):
                    writer.writerow({
                        "event_id_cnty": f"SIM{t}-{d}-{j}", "event_date": day, "year": day[:4], "time_precision": "1",
                        "disorder_type": "Political violence", "event_type": "Violence against civilians", "sub_event_type": "Attack",
                        "actor1": "Simulated armed group", "inter1": "3", "inter2": "7", "interaction": "37", "iso": "760",
                        "region": "Middle East", "country": "Syria", "admin1": "Homs", "admin2": "Tadmor", "location": "Palmyra",
                        "latitude": "34.5574", "longitude": "38.2752", "geo_precision": "1", "source": "simulation",
                        "source_scale": "National", "notes": "simulated event (Noufaily design, ACLED delays)", "fatalities": "0",
                        "timestamp": str(int(seen.timestamp())),
                    })  # fmt: skip
    config = out / "monitor.toml"
    config.write_text('[database]\npath = "monitor.db"\n[report]\nfolder = "reports"\n[[series]]\nname = "simulated"\n'
                      f'detector = "{detector}"\n', encoding="utf-8")  # fmt: skip
    wednesday = (end + timedelta(days=2, hours=6)).isoformat()
    runner = CliRunner()
    from monitor.weeks import week_label

    for args in (["ingest", str(export)], ["report", "--week", week_label(starts[run].date())]):
        result = runner.invoke(cli, ["--config", str(config), *args], env={"MONITOR_NOW": wednesday})
        if result.exit_code not in (0, 3):
            raise SystemExit(f"monitor {args[0]} failed: {result.output}")
        print("  " + result.output.strip().replace("\n", "\n  "))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(map(str, DEFAULT_SCENARIOS)), help="Noufaily scenario ids (1..42)")
    parser.add_argument("--series", type=int, default=60, help="series per scenario")
    parser.add_argument("--k", type=float, default=5.0, help="size of the current outbreak (Noufaily's k)")
    parser.add_argument("--detector", default="farrington", help="detector judging each week (with the nb-recent fallback)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--report", type=Path, help="also write a weekly report of one simulated outbreak still filling here")
    args = parser.parse_args(argv)

    config = config_from_dict({}, base_dir=Path.cwd())
    params = config.params_for(args.detector)
    fallback = config.fallback_params()
    shares = np.asarray(ACLED_SHARES)
    pmf = np.diff(np.concatenate([[0.0], shares]))
    began = time.perf_counter()
    print(f"bench_nowcast: Noufaily scenarios {args.scenarios}, {args.series} series each, current outbreak k = {args.k:g}, "
          f"{args.detector}; delays of ACLED's sample (share known at delay 0..8: {', '.join(f'{s:.2f}' for s in shares)})")
    latest, timing, false_flags = [], [], {"raw": 0, "rejudged": 0, "nowcast": 0, "runs": 0}
    pick = fallback_pick = None  # the series and run --report writes
    for sid in (int(x) for x in args.scenarios.split(",")):
        scenario = SCENARIOS[sid - 1]
        sims, triangles = [], []
        for i in range(args.series):
            rng = series_rng(args.seed, scenario, args.k, i)
            sim = simulate_series(scenario, k=args.k, rng=rng)
            sims.append(sim)
            triangles.append(_deliveries(sim.counts.to_numpy(), pmf, rng))
        if fallback_pick is None:  # the largest outbreak, at the run after its second week
            sizes = [s.current_size if s.current_start and s.current_start < len(s.counts) else -1 for s in sims]
            big = int(np.argmax(sizes))
            fallback_pick = (sid, big, sims[big], triangles[big], sims[big].current_start)
        n = len(sims[0].counts)
        first_run = n - RUNS
        flags = {key: [dict() for _ in sims] for key in ("complete", "raw", "rejudged", "nowcast")}  # week -> first run flagging it
        for run in range(first_run, n):
            delays = estimate_delays(_pooled_triangle(triangles, run))
            known = [_known(t, run) for t in triangles]
            index = sims[0].counts.index[: run + 1]
            frames = detect_counts_many([pd.Series(k, index=index) for k in known], lookback=RECHECK, detector=args.detector,
                                        params=params, fallback_params=fallback)  # fmt: skip
            complete = detect_counts_many([s.counts.iloc[: run + 1].astype(float) for s in sims], lookback=0,
                                          detector=args.detector, params=params, fallback_params=fallback)  # fmt: skip
            for i, (sim, counts, frame) in enumerate(zip(sims, known, frames)):
                final = float(sim.counts.iloc[run])
                casts = dict(nowcast_series(counts, delays.share, delay=0)) if delays is not None else {}
                cast = casts.get(run)
                if cast is not None:
                    latest.append((counts[run], final, cast.expected, cast.low, cast.high))
                alarms = frame["alarm"].fillna(False).to_numpy(dtype=bool)
                uppers = frame["upperbound"].to_numpy(dtype=float)
                weeks = list(range(run - len(frame) + 1, run + 1))
                outbreak = sim.current
                for w, alarm, upper in zip(weeks, alarms, uppers):
                    likely = w in casts and casts[w].prob_above(upper) >= LIKELY
                    if alarm:
                        flags["rejudged"][i].setdefault(w, run)
                        if w == run:
                            flags["raw"][i].setdefault(w, run)
                            if pick is None and outbreak[w] and cast is not None:  # alerted while still filling: report it
                                pick = (sid, i, sim, triangles[i], run)
                    if alarm or likely:
                        flags["nowcast"][i].setdefault(w, run)
                if bool(complete[i]["alarm"].fillna(False).iloc[-1]):
                    flags["complete"][i].setdefault(run, run)
                # false flags: this run flagged a week outside the outbreak
                false_flags["runs"] += 1
                for key in ("raw", "rejudged", "nowcast"):
                    false_flags[key] += any(r == run and not outbreak[w] for w, r in flags[key][i].items())
        print(f"  scenario {sid}: {args.series} series judged over {RUNS} runs ({time.perf_counter() - began:.0f} s so far)", flush=True)
        for i, sim in enumerate(sims):
            start = (sim.current_start or 0) - 1  # 0-based week
            if sim.current_size == 0 or not first_run <= start <= n - 9:
                continue  # no cases, or too near the end to see eight runs after it
            weeks = np.flatnonzero(sim.current)
            row = {"scenario": sid}
            for key in flags:
                runs = [flags[key][i][w] for w in weeks if w in flags[key][i]]
                row[key] = (min(runs) - start) if runs and min(runs) - start <= 8 else math.nan
            timing.append(row)
    print(f"simulated and judged in {time.perf_counter() - began:.0f} s")
    if args.report is not None:
        sid, i, sim, triangle, run = pick or fallback_pick
        what = "alerted at its run while still filling" if pick else "the largest outbreak (none alerted at its run)"
        print(f"report: scenario {sid}, series {i}, week {run + 1} ({what}; outbreak of {sim.current_size} cases from week "
              f"{sim.current_start}):")  # fmt: skip
        write_report(sim, triangle, run, args.report, detector=args.detector)

    table = np.array(latest)
    raw, final, cast, low, high = table.T
    print(f"\nthe latest week at its run ({len(table):,} series-runs with a nowcast; mean final count {final.mean():.2f}):")
    print(f"  raw count:  bias {np.mean(raw - final):+.2f}, mean absolute error {np.mean(np.abs(raw - final)):.2f}, "
          f"equal to the final count in {np.mean(raw == final):.0%}")
    print(f"  nowcast:    bias {np.mean(cast - final):+.2f}, mean absolute error {np.mean(np.abs(cast - final)):.2f}, "
          f"final count inside its 90% interval in {np.mean((low <= final) & (final <= high)):.1%}")
    frame = pd.DataFrame(timing)
    print(f"\nweeks from the start of the current outbreak to the first alarm ({len(frame)} outbreaks with cases, "
          "first eight runs; 0 = the run right after its first week):")
    labels = {"complete": "complete data (the final counts)", "raw": "as known, each week judged once",
              "rejudged": "as known, weeks still filling re-judged", "nowcast": "as known, re-judged + nowcast warnings"}
    for key, label in labels.items():
        found = frame[key].dropna()
        mean = f"{found.mean():.2f}" if len(found) else "-"
        print(f"  {label:42s} detected {len(found) / max(len(frame), 1):.0%}, mean {mean} weeks, "
              f"within 1 week {np.mean(frame[key].fillna(99) <= 1):.0%}")
    runs = false_flags["runs"]
    print(f"\nruns flagging a week outside the outbreak (of {runs:,} series-runs): each week once {false_flags['raw'] / runs:.2%}, "
          f"re-judged {false_flags['rejudged'] / runs:.2%}, with nowcast warnings {false_flags['nowcast'] / runs:.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
