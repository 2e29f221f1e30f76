"""Progress bars on long work (issue 17, item 3): drawn on a terminal, nothing extra for cron, Ctrl-C stops cleanly.

The commands run as child processes with standard error on a real pseudo-terminal (Python's `pty`), as a user
at a terminal runs them, or on a pipe, as cron does.
"""

from __future__ import annotations

import csv
import fcntl
import os
import pty
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _monitor(args: list[str], *, cwd: Path, terminal: bool, interrupt_when: bytes | None = None, timeout: float = 240,
             env: dict[str, str] | None = None, held=None):  # fmt: skip
    """Run `monitor ARGS`; standard error on a 100-column terminal or a pipe. Returns (exit code, stdout, stderr);
    with `interrupt_when`, Ctrl-C (SIGINT to the process group, as a terminal sends it) once stderr shows it (and
    `held()` is true, if given)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    env.pop("MONITOR_PROGRESS", None)
    command = [sys.executable, "-m", "monitor", *args]
    if not terminal:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=timeout)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    # SIGINT as a terminal's foreground job has it: a test run started in the background (`cmd &`, nohup) ignores
    # it, and a child would inherit that and never see Ctrl-C
    child = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                             start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    os.close(slave)
    err, sent, deadline = b"", False, time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            err += chunk
        if interrupt_when is not None and not sent and interrupt_when in err and (held is None or held()):
            os.killpg(child.pid, signal.SIGINT)
            sent = True
        if child.poll() is not None and not ready:
            break
    out = child.stdout.read()
    code = child.wait(timeout=30)
    os.close(master)
    return code, out, err


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\npath = "m.db"\n\n[[series]]\nname = "violence"\ngroup_by = ["admin1"]\n', encoding="utf-8")
    return config


def _incidents(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM incidents").fetchone()[0]


def test_ingest_on_a_terminal_draws_a_bar_of_rows_with_an_estimate_and_clears_it(shared_data, tmp_path):
    sample = shared_data / "acled_sample_9000_2022-01-01_2022-06-30.csv"
    _config(tmp_path)
    code, out, err = _monitor(["--config", "monitor.toml", "ingest", str(sample)], cwd=tmp_path, terminal=True)
    assert code == 0, err
    text = err.decode("utf-8", "replace")
    assert sample.name in text and "rows" in text  # what is counted, and in what
    assert "%|" in text and "/9.0" in text  # a bar, against about the file's 9,000 rows
    assert "<" in text and "/s]" in text  # an estimate of the time left and a rate
    assert text.split("\r")[-1].strip() == ""  # cleared when done: the terminal is left as it was
    assert b"9000 rows read" in out  # the summary is on standard output as before
    assert _incidents(tmp_path / "m.db") == 9000


def test_without_a_terminal_nothing_extra_is_printed(shared_data, tmp_path):
    """cron: standard error is a file or a pipe; the bars would be noise in the mail cron sends."""
    sample = shared_data / "acled_sample_9000_2022-01-01_2022-06-30.csv"
    _config(tmp_path)
    code, out, err = _monitor(["--config", "monitor.toml", "ingest", str(sample)], cwd=tmp_path, terminal=False)
    assert code == 0 and err == b"", err
    assert b"9000 rows read" in out
    code, out, err = _monitor(["--config", "monitor.toml", "backtest", "--weeks", "8", "--out", "bt"], cwd=tmp_path, terminal=False)
    assert code == 0 and b"Replayed 8 weeks" in out
    assert err.startswith(b"replaying up to") and b"\r" not in err and b"%|" not in err, err  # the one line it always said


def test_backtest_and_simulate_on_a_terminal_count_their_work(shared_data, tmp_path):
    sample = shared_data / "acled_sample_9000_2022-01-01_2022-06-30.csv"
    _config(tmp_path)
    assert _monitor(["--config", "monitor.toml", "ingest", str(sample)], cwd=tmp_path, terminal=False)[0] == 0
    code, out, err = _monitor(["--config", "monitor.toml", "backtest", "--weeks", "8", "--out", "bt"], cwd=tmp_path, terminal=True)
    assert code == 0, err
    assert b"series-weeks" in err and b"%|" in err
    assert b"Replayed 8 weeks" in out
    code, out, err = _monitor(["--config", "monitor.toml", "simulate", "--n-series", "3", "--scenarios", "1,2", "--ks", "2,5", "--out", "sim"],
                              cwd=tmp_path, terminal=True)  # fmt: skip
    assert code == 0, err
    assert b"cells" in err and b"/4 [" in err


def test_ctrl_c_during_an_ingest_stops_it_and_leaves_the_database_as_it_was(tmp_path):
    """A large file interrupted half way: the bar goes, click says it stopped, no traceback, and the file's one
    transaction is rolled back (not a row of it stored, no ingest logged). The ingest is held after its second
    batch of rows (the pause points of monitor.faults) so that Ctrl-C comes mid-file however busy the machine."""
    _config(tmp_path)
    big = tmp_path / "big.csv"
    with open(big, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["event_id_cnty", "event_date", "event_type", "actor1", "country", "admin1", "fatalities"])
        for i in range(400_000):
            writer.writerow([f"SYR{i}", f"2022-{1 + i % 12:02d}-{1 + i % 28:02d}", "Battles", "IS", "Syria", f"Place {i % 40}", i % 3])
    paused = tmp_path / "pause" / "ingest.batch-written.paused"
    paused.parent.mkdir()
    code, out, err = _monitor(["--config", "monitor.toml", "ingest", str(big)], cwd=tmp_path, terminal=True, interrupt_when=b"%|",
                              env={"MONITOR_PAUSE_AT": "ingest.batch-written:2", "MONITOR_PAUSE_DIR": str(paused.parent)},
                              held=paused.exists)  # fmt: skip
    assert paused.exists()
    text = err.decode("utf-8", "replace")
    assert code != 0, "the ingest finished before Ctrl-C reached it: make the file larger"
    assert "Aborted" in text and "Traceback" not in text, text[-2000:]
    assert b"rows read" not in out
    assert _incidents(tmp_path / "m.db") == 0
    with sqlite3.connect(tmp_path / "m.db") as con:
        assert con.execute("SELECT count(*) FROM ingests").fetchone()[0] == 0



def test_a_bar_is_cleared_when_its_work_is_done_restarts_for_new_work_and_lines_print_above_it(monkeypatch):
    """`monitor schedule` catching up weeks: its log lines print above the bar, the bar goes when the last owed
    week is run, and the next catch-up (a later tick) gets a bar of its own."""
    import io

    from monitor.cli import _above, _Bars

    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    bars, lines = _Bars(), []
    echo = _above(lines.append, bars)
    bars("weeks caught up", 1, 3)
    first = bars.bar
    echo("2023-W06: ok")
    bars("weeks caught up", 2, 3)
    assert bars.bar is first and first.n == 2 and lines == ["2023-W06: ok"]
    bars("weeks caught up", 3, 3)
    assert bars.bar is None  # done: cleared
    echo("2023-W08: ok")  # no bar: printed as it is
    bars("series-weeks", 5, None)
    bars("series-weeks", 2, None)  # the same task started again: a new bar, not a count going backwards
    assert bars.bar.n == 2
    bars.close()
    assert lines == ["2023-W06: ok", "2023-W08: ok"] and "weeks caught up" in screen.getvalue()
