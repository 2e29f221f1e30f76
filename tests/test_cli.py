"""The command line: exit codes, formats, messages (CliRunner, real files, real database)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_help_and_usage_errors():
    assert invoke("--help").exit_code == 0
    result = invoke("check", "--bogus")
    assert result.exit_code == 2 and "No such option" in result.output
    assert invoke("detect").exit_code == 2  # missing FILE


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "monitor", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "incident-monitor" in done.stdout


def counts_csv(tmp_path: Path, values: list[int], name: str = "counts.csv", series: str | None = None) -> Path:
    weeks = pd.date_range("2020-01-06", periods=len(values), freq="7D")
    frame = pd.DataFrame({"week_start": weeks.strftime("%Y-%m-%d"), "count": values})
    if series:
        frame.insert(0, "series", series)
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_detect_flags_a_spike_and_exits_3(tmp_path):
    path = counts_csv(tmp_path, [2, 3, 2, 2, 3, 2, 2, 3, 2, 2, 25])
    result = invoke("detect", str(path), "--detector", "ears", "--param", "method=C1", "--last", "2", "--format", "csv")
    assert result.exit_code == 3, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["week_start"] for r in rows] == ["2020-03-09", "2020-03-16"]
    assert list(rows[0])[:5] == ["week_start", "count", "expected", "upperbound", "alarm"]
    assert rows[-1]["alarm"] == "1" and rows[0]["alarm"] == "0"


def test_detect_quiet_series_exits_0_and_json(tmp_path):
    path = counts_csv(tmp_path, [2, 3, 2, 2, 3, 2, 2, 3, 2, 2, 3])
    result = invoke("detect", str(path), "--detector", "acled-surge", "--last", "1", "--format", "json")
    assert result.exit_code == 0
    [row] = json.loads(result.output)
    assert row["alarm"] == 0 and row["expected"] == pytest.approx(2.25)  # mean of the 4 weeks before


def test_detect_prints_alarm_as_1_0_or_na_when_some_weeks_are_undecided(tmp_path):
    # 12 weeks: farrington has too little history for all of them, the nb-recent fallback for the first 5
    path = counts_csv(tmp_path, [2, 3, 2, 2, 3, 2, 2, 3, 2, 2, 3, 2])
    result = invoke("detect", str(path), "--detector", "farrington", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["alarm"] for r in rows] == ["NA"] * 5 + ["0"] * 7, result.output
    result = invoke("detect", str(path), "--detector", "farrington", "--format", "json")
    alarms = [r["alarm"] for r in json.loads(result.output)]
    assert alarms == [None] * 5 + [0] * 7 and all(type(a) is int for a in alarms[5:])


@pytest.mark.parametrize("header", ["week_start,count", "week_start,count,series"])
def test_detect_of_a_file_with_no_rows_is_a_clear_error(tmp_path, header):
    """A header and nothing else (an export that failed half-way) is not a quiet week: it was an unexpected
    ValueError from pandas with a series column, and an empty table without one."""
    path = tmp_path / "empty.csv"
    path.write_text(header + "\n", encoding="utf-8")
    result = invoke("detect", str(path), "--detector", "farrington")
    assert result.exit_code == 1
    assert f"{path}: no rows after the header (expected week_start,count[,series] rows, one per week)" in result.output
    assert "unexpected" not in result.output


def test_detect_several_series_stays_one_csv(tmp_path):
    a = pd.read_csv(counts_csv(tmp_path, [1, 1, 1, 1, 1, 9], "a.csv", series="Homs"))
    b = pd.read_csv(counts_csv(tmp_path, [4, 4, 4, 4, 4, 4], "b.csv", series="Hama"))
    path = tmp_path / "both.csv"
    pd.concat([a, b]).to_csv(path, index=False)
    result = invoke("detect", str(path), "--detector", "acled-surge", "--last", "1", "--format", "csv")
    assert result.exit_code == 3
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["series"], r["alarm"]) for r in rows] == [("Homs", "1"), ("Hama", "0")]
    assert list(rows[0])[0] == "series"


def test_detect_bad_csv_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("week_start,count\n2020-01-06,1\n2020-01-13,many\n")
    result = CliRunner().invoke(cli, ["detect", str(path), "--detector", "ears"])
    assert result.exit_code == 1
    assert "line 3: count 'many' is not a finite number >= 0" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("week_start,count\n2020-01-06,1\n2020-01-13,1e400\n", "line 3: count '1e400' is not a finite number >= 0"),
        ("week_start,count\n2020-01-06,1\n2020-01-13,\n", "line 3: count '' is not a finite number >= 0"),
        ("week_start,count\n2020-01-06,1\n2020-01-20,1\n", "line 3: week_start 2020-01-20 does not follow 2020-01-06 by 7 days"),
        ("series,week_start,count\nHoms,2020-01-06,1\n,2020-01-13,1\n", "line 3: series '' is not a series name"),
        # rows of several series interleaved: each series is checked in the file's order, the first gap reported
        ("series,week_start,count\nHoms,2020-01-06,1\nHama,2020-01-06,1\nHama,2020-01-13,1\nHoms,2020-01-20,1\nHama,2020-01-13,1\n",
         "line 5: week_start 2020-01-20 (series Homs) does not follow 2020-01-06 by 7 days"),
        ("when,n\n2020-01-06,1\n", "missing column(s) week_start, count"),
    ],
)
def test_detect_bad_cells_name_line_and_value(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["detect", str(path), "--detector", "ears"])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output


def test_detect_on_a_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["detect", str(tmp_path), "--detector", "ears"])
    assert result.exit_code == 1 and "cannot read" in result.output and "unexpected" not in result.output


def test_detect_starts_from_the_configs_detector_defaults(tmp_path):
    config = tmp_path / "monitor.toml"
    config.write_text('[detectors.acled-surge]\nratio = 5.0\n')
    path = counts_csv(tmp_path, [1, 1, 1, 1, 3])
    base = ["--config", str(config), "detect", str(path), "--detector", "acled-surge", "--last", "1", "--format", "json"]
    assert json.loads(invoke(*base).output)[0]["upperbound"] == 5.0  # ratio 5 from the config
    assert json.loads(invoke(*base, "--param", "ratio=2").output)[0]["upperbound"] == 2.0  # --param on top


def test_detect_bad_param_names_key_and_suggests(tmp_path):
    path = counts_csv(tmp_path, [1] * 10)
    result = CliRunner().invoke(cli, ["detect", str(path), "--detector", "farrington", "--param", "alpah=0.01"])
    assert result.exit_code == 1 and "alpah" in result.output and "alpha" in result.output
    result = CliRunner().invoke(cli, ["detect", str(path), "--detector", "farington"])
    assert result.exit_code == 1 and "farrington" in result.output


def test_detect_farrington_matches_r_on_reference_weeks(shared_reference):
    """`monitor detect` with the R parameter names reproduces surveillance's ff_farrington bounds."""
    ref = pd.read_csv(shared_reference / "salmNewport.ff_farrington.csv").tail(5)
    args = ["detect", str(shared_reference / "salmNewport.counts.csv"), "--detector", "farrington", "--last", "5",
            "--format", "csv", "--param", "b=3", "--param", "w=3", "--param", "reweight=true",
            "--param", "weights_threshold=1", "--param", "alpha=0.005", "--param", "trend=true",
            "--param", "p_threshold_trend=0.05", "--param", "limit54=5,4", "--param", "powertrans=2/3",
            "--param", "no_periods=1", "--param", "past_weeks_not_included=3", "--param", "threshold_method=delta"]
    result = invoke(*args)
    assert result.exit_code in (0, 3)
    out = pd.read_csv(io.StringIO(result.output), na_values=["NA"])
    assert out["week_start"].tolist() == ref["week_start"].tolist()
    assert out["upperbound"].to_numpy() == pytest.approx(ref["upperbound"].to_numpy(), rel=1e-6, nan_ok=True)


def test_ingest_check_and_exit_codes(tmp_path, shared_data):
    db = str(tmp_path / "m.db")
    config = tmp_path / "monitor.toml"
    config.write_text(
        '[[series]]\nname = "syria"\ngroup_by = ["admin1"]\nfilters = { country = ["Syria"] }\n'
        'detector = "acled-surge"\nmin_events = 0\n', encoding="utf-8")
    acled = str(shared_data / "acled_sample_9000_2022-01-01_2022-06-30.csv")
    result = invoke("--config", str(config), "--db", db, "ingest", acled)
    assert result.exit_code == 0 and "9000 inserted" in result.output
    assert "already ingested" in invoke("--config", str(config), "--db", db, "ingest", acled).output
    result = invoke("--config", str(config), "--db", db, "check", "--week", "2022-W20", "--format", "json")
    assert result.exit_code in (0, 3)
    rows = json.loads(result.output)
    assert {r["week"] for r in rows} == {"2022-W20"} and any(r["series"] == "syria/total" for r in rows)
    flagged = any(r["alarm"] for r in rows)
    assert result.exit_code == (3 if flagged else 0)
    result = CliRunner().invoke(cli, ["--config", str(config), "--db", db, "check", "--series", "Atlantis"])
    assert result.exit_code == 1 and "no series" in result.output


def test_ingest_refused_file_exits_1_and_names_it(tmp_path):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x00\x01\x02binary\xff\xfe")
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "m.db"), "ingest", str(junk)])
    assert result.exit_code == 1 and "junk.csv" in result.output and "Traceback" not in result.output


def test_read_only_commands_do_not_create_a_database(tmp_path):
    db = tmp_path / "missing.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "check", "--week", "2023-W09"])
    assert result.exit_code == 1 and "does not exist" in result.output and not db.exists()


def test_unfinished_weeks_are_refused(tmp_path):
    db = tmp_path / "m.db"
    invoke("--db", str(db), "ingest", str(counts_csv(tmp_path, [1, 2, 3])))  # creates the database
    result = CliRunner().invoke(cli, ["--db", str(db), "check", "--week", "2999-W01"])
    assert result.exit_code == 1 and "has not ended yet" in result.output and "last complete week is" in result.output


def test_demo_refuses_config_and_db(tmp_path):
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "x.db"), "demo", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "demo writes its own config" in result.output


def test_bad_config_exits_1_with_the_key(tmp_path):
    config = tmp_path / "monitor.toml"
    config.write_text("[report]\nhistroy_weeks = 3\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 1 and "did you mean 'history_weeks'" in result.output


def test_detectors_lists_rules_and_parameters():
    result = invoke("detectors")
    assert result.exit_code == 0
    for name in ("farrington", "ears", "glrnb", "cusum", "acled-surge", "acled-threat", "threshold_method", "min_sigma", "c_arl"):
        assert name in result.output


def test_simulate_writes_tables_and_prints_the_summary(tmp_path):
    out = tmp_path / "sim"
    result = invoke("simulate", "--detector", "ears", "--param", "method=C2", "--n-series", "2", "--scenarios", "14",
                    "--ks", "10", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "| overall |" in result.output and "1 cells x 2 series" in result.output
    summary = pd.read_csv(out / "simulate_ears_summary.csv")
    assert summary.loc[0, "group"] == "overall" and summary.loc[0, "outbreaks"] == 2
    assert 0 <= summary.loc[0, "fpr"] <= 1 and "method=C2" in (out / "simulate_ears.md").read_text()
    bad = CliRunner().invoke(cli, ["simulate", "--scenarios", "99"])
    assert bad.exit_code == 2 and "--scenarios" in bad.output


def test_monitor_now_fixes_the_clock_of_a_command(tmp_path):
    """$MONITOR_NOW (ISO 8601 with an offset) replaces the clock: here, the day a silence is created and the
    check that its end is not in the past. Without an offset, or unreadable, it is refused with the fix."""
    from monitor.store import Store

    (tmp_path / "c.toml").write_text("", encoding="utf-8")
    base = ["--config", str(tmp_path / "c.toml"), "--db", str(tmp_path / "m.db")]
    Store(tmp_path / "m.db").close()
    add = [*base, "silence", "add", "--series", "Homs", "--until", "2023-03-31", "--comment", "c"]
    done = invoke(*add, env={"MONITOR_NOW": "2023-03-06T07:00:00+01:00"})
    assert done.exit_code == 0, done.output
    with Store(tmp_path / "m.db") as store:
        assert [s["created_at"] for s in store.silences()] == ["2023-03-06T06:00:00+00:00"]
    for bad in ("2023-03-06T06:00:00", "next monday"):
        refused = invoke(*add, env={"MONITOR_NOW": bad})
        assert refused.exit_code == 1 and f"$MONITOR_NOW '{bad}' is not a date and time with a UTC offset" in refused.output
