"""`monitor schedule`: the APScheduler 3 job, its cron trigger, the catch-up of missed weeks and SIGTERM."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.config import config_from_dict, load_config
from monitor.coverage import select_week
from monitor.schedule import JOB_ID, WAKE_ID, build_scheduler, catch_up, owed_weeks, trigger, weekly_job
from monitor.series import week_label
from monitor.store import Store


def test_cron_trigger_fires_monday_morning_in_the_configured_zone(tmp_path):
    config = config_from_dict({"schedule": {"cron": "0 6 * * mon", "timezone": "Asia/Damascus"}}, base_dir=tmp_path)
    fire = trigger(config).get_next_fire_time(None, datetime(2023, 3, 1, tzinfo=timezone.utc))
    assert fire.isoformat() == "2023-03-06T06:00:00+03:00"  # Monday 06:00 in Damascus
    assert fire.weekday() == 0


def test_job_is_coalesced_never_runs_twice_at_once_and_runs_late_rather_than_never(tmp_path):
    config = config_from_dict({}, base_dir=tmp_path)
    first = datetime(2023, 3, 1, 12, 0, tzinfo=timezone.utc)
    scheduler = build_scheduler(config, lambda: None, scheduler=BackgroundScheduler(timezone="UTC"), first_run=first)
    job = scheduler.get_job(JOB_ID)
    assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time is None
    assert str(job.trigger) == str(trigger(config))
    assert job.next_run_time == first  # the start-up catch-up, before the first cron tick
    assert scheduler.get_job(WAKE_ID).trigger.interval.total_seconds() <= 3600


CLOCK = lambda: datetime(2023, 3, 6, 6, 0, tzinfo=timezone.utc)  # noqa: E731 (Monday morning)


def test_weekly_job_runs_the_pipeline_and_reports_failures_without_dying(tmp_path):
    lines: list[str] = []
    config = config_from_dict({"database": {"path": str(tmp_path / "m.db")}}, base_dir=tmp_path)
    code = weekly_job(config, echo=lines.append, clock=CLOCK)()
    assert code == 0  # an empty database: nothing to flag, a report still written
    assert "2023-W09: 0 of 0 series flagged" in lines[-1]
    assert (tmp_path / "reports" / "2023-W09" / "report.md").exists()
    broken = config_from_dict({"database": {"path": str(tmp_path)}}, base_dir=tmp_path)  # a folder is not a database
    assert weekly_job(broken, echo=lines.append, clock=CLOCK)() == 1
    assert "weekly run failed" in lines[-1]


def test_the_reported_week_is_the_one_just_ended_in_the_schedules_zone(tmp_path):
    """Monday 06:00 in Tokyo is Sunday 21:00 UTC: the week that has just ended there is 2023-W09."""
    tokyo = config_from_dict({"schedule": {"cron": "0 6 * * mon", "timezone": "Asia/Tokyo"}}, base_dir=tmp_path)
    fire = trigger(tokyo).get_next_fire_time(None, datetime(2023, 3, 1, tzinfo=timezone.utc))
    assert fire.astimezone(timezone.utc).isoformat() == "2023-03-05T21:00:00+00:00"
    assert select_week(tokyo, week=None, now=fire.astimezone(timezone.utc)).isoformat() == "2023-02-27"
    utc = config_from_dict({}, base_dir=tmp_path)
    assert select_week(utc, week=None, now=fire.astimezone(timezone.utc)).isoformat() == "2023-02-20"


# ---- catch-up of missed weeks -------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
MONDAY_W09 = datetime(2023, 2, 27, 6, 0, tzinfo=timezone.utc)  # the last complete week is 2023-W08


def _empty_config(tmp_path: Path, **schedule):
    """A config with no series on a new database in tmp_path: each weekly run takes a few milliseconds."""
    return config_from_dict(
        {"database": {"path": str(tmp_path / "m.db")}, "report": {"folder": str(tmp_path / "reports")},
         "ingest": {"inbox": [str(tmp_path / "inbox")]}, "schedule": schedule},
        base_dir=tmp_path)  # fmt: skip


def _record(store: Store, week: str, status: str, **summary) -> None:
    store.record_run(week=week, started_at=MONDAY_W09, finished_at=MONDAY_W09, status=status, summary=summary)


def _labels(weeks) -> list[str]:
    return [week_label(w) for w in weeks]


@pytest.mark.parametrize(
    "runs,owed",
    [
        ([], ["2023-W08"]),  # a new install runs the last complete week only, no back-fill
        ([("2023-W05", "ok")], ["2023-W06", "2023-W07", "2023-W08"]),
        ([("2023-W05", "ok"), ("2023-W06", "failed"), ("2023-W07", "ok")], ["2023-W06", "2023-W08"]),  # failed: retried
        ([("2023-W06", "failed"), ("2023-W06", "ok")], ["2023-W07", "2023-W08"]),  # a retry that succeeded settles it
        ([("2023-W06", "failed")], ["2023-W06", "2023-W07", "2023-W08"]),  # no success yet: from the first recorded week
        ([("2023-W05", "ok"), ("2023-W06", "delivery-failed"), ("2023-W07", "ingest-refused"), ("2023-W08", "ok")], []),
        ([("2022-W40", "ok")], ["2023-W01", "2023-W02", "2023-W03", "2023-W04", "2023-W05", "2023-W06", "2023-W07", "2023-W08"]),
        ([("2023-W09", "ok")], []),  # nothing before the first recorded week is owed
    ],
)
def test_owed_weeks(tmp_path, runs, owed):
    config = _empty_config(tmp_path)
    with Store(config.db_path) as store:
        for week, status in runs:
            _record(store, week, status)
        assert _labels(owed_weeks(config, store, now=MONDAY_W09)) == owed


def test_owed_weeks_are_bounded_by_catch_up_weeks_and_skip_no_email_previews(tmp_path):
    config = _empty_config(tmp_path, catch_up_weeks=3)
    with Store(config.db_path) as store:
        _record(store, "2023-W01", "ok")
        assert _labels(owed_weeks(config, store, now=MONDAY_W09)) == ["2023-W06", "2023-W07", "2023-W08"]
        _record(store, "2023-W07", "ok", emailed=False)  # `run --no-email`: the alerts of the week were not processed
        _record(store, "2023-W08", "ok")
        assert _labels(owed_weeks(config, store, now=MONDAY_W09)) == ["2023-W06", "2023-W07"]
        quiet = config.model_copy(update={"alerts": config.alerts.model_copy(update={"enabled": False})})
        assert _labels(owed_weeks(quiet, store, now=MONDAY_W09)) == ["2023-W06"]  # with alerts off it is settled


def _demo_copy(demo_dir: Path, tmp_path: Path) -> Path:
    """The demo's config and database in tmp_path (reports and inbox resolve there too); runs table emptied."""
    shutil.copy(demo_dir / "monitor.db", tmp_path / "monitor.db")
    config_path = tmp_path / "monitor.toml"
    shutil.copy(demo_dir / "monitor.toml", config_path)
    with Store(tmp_path / "monitor.db") as store:
        store.db.execute("DELETE FROM runs")
        store.db.conn.commit()
    return config_path


def test_catch_up_runs_the_missed_weeks_of_the_demo_in_order_once_each(demo_dir, tmp_path):
    config = load_config(_demo_copy(demo_dir, tmp_path))
    lines: list[str] = []
    with Store(config.db_path) as store:
        _record(store, "2023-W05", "ok")
        told: list[tuple] = []
        ran = catch_up(config, store, clock=lambda: MONDAY_W09, echo=lines.append, progress=lambda *a: told.append(a))
        assert ran == [("2023-W06", 0), ("2023-W07", 0), ("2023-W08", 0)]
        assert told == [("weeks caught up", 1, 3), ("weeks caught up", 2, 3), ("weeks caught up", 3, 3)]  # a bar on a terminal
        assert catch_up(config, store, clock=lambda: MONDAY_W09, echo=lines.append) == []  # nothing owed any more
        runs = store.runs()
    assert [(r["week"], r["status"]) for r in runs] == [(f"2023-W0{n}", "ok") for n in (5, 6, 7, 8)]
    assert all(r["summary"]["series"] == 31 for r in runs[1:])  # the demo's 31 series, each week
    assert lines[0] == "2023-02-27T06:00:00+00:00 catching up 3 weeks: 2023-W06, 2023-W07, 2023-W08"
    for week in ("2023-W06", "2023-W07", "2023-W08"):
        assert (tmp_path / "reports" / week / "report.md").exists()


def test_a_machine_that_slept_through_two_mondays_runs_both_weeks_at_the_next_tick(tmp_path):
    config = _empty_config(tmp_path)
    now = [datetime(2023, 2, 6, 6, 0, tzinfo=timezone.utc)]  # Monday of 2023-W06
    lines: list[str] = []
    job = weekly_job(config, echo=lines.append, clock=lambda: now[0])
    assert job() == 0  # the first tick: the last complete week only
    now[0] = datetime(2023, 2, 27, 6, 0, tzinfo=timezone.utc)  # asleep on 13 and 20 February; awake on the 27th
    assert job() == 0
    assert job() == 0  # a second tick in the same week owes nothing
    with Store(config.db_path) as store:
        assert [r["week"] for r in store.runs()] == ["2023-W05", "2023-W06", "2023-W07", "2023-W08"]
    assert "catching up 3 weeks: 2023-W06, 2023-W07, 2023-W08" in lines[1]
    assert not (Path(str(config.db_path) + ".lock").read_text())  # the run lock is released (and emptied) after each job


def test_a_failed_week_is_recorded_and_retried_by_the_next_tick(tmp_path):
    config = _empty_config(tmp_path)
    (tmp_path / "reports").write_text("a file where the report folder should be")
    lines: list[str] = []
    job = weekly_job(config, echo=lines.append, clock=lambda: MONDAY_W09)
    assert job() == 1
    assert f"2023-W08: weekly run failed: {tmp_path / 'reports'}: cannot write the report (" in lines[-1]
    assert "set report.folder to a folder this user can write to" in lines[-1] and "retried at the next run" in lines[-1]
    with Store(config.db_path) as store:
        (failed,) = store.runs()
    assert (failed["week"], failed["status"]) == ("2023-W08", "failed")
    assert "reports" in failed["summary"]["error"] and failed["summary"]["flagged"] == []
    (tmp_path / "reports").unlink()  # fixed: the next tick runs the week again, once
    assert job() == 0 and job() == 0
    with Store(config.db_path) as store:
        assert [(r["week"], r["status"]) for r in store.runs()] == [("2023-W08", "failed"), ("2023-W08", "ok")]


def test_catch_up_stops_between_weeks_and_the_rest_stays_owed(tmp_path):
    config = _empty_config(tmp_path)
    lines: list[str] = []
    with Store(config.db_path) as store:
        _record(store, "2023-W04", "ok")
        done = lambda: sum(" series flagged" in line for line in lines) >= 1  # noqa: E731 (stop after the first week)
        assert catch_up(config, store, clock=lambda: MONDAY_W09, echo=lines.append, stop=done) == [("2023-W05", 0)]
        assert lines[-1].endswith("stopping: 2023-W06, 2023-W07, 2023-W08 left for the next start or tick")
        assert _labels(owed_weeks(config, store, now=MONDAY_W09)) == ["2023-W06", "2023-W07", "2023-W08"]
        assert [w for w, _ in catch_up(config, store, clock=lambda: MONDAY_W09, echo=lines.append)] == [
            "2023-W06", "2023-W07", "2023-W08"]  # fmt: skip


def test_monitor_run_records_its_failures_but_not_a_refused_week(tmp_path):
    from click.testing import CliRunner

    from monitor.cli import cli

    config_path = tmp_path / "monitor.toml"
    config_path.write_text('[database]\npath = "m.db"\n[report]\nfolder = "reports"\n', encoding="utf-8")
    (tmp_path / "reports").write_text("not a folder")
    result = CliRunner().invoke(cli, ["--config", str(config_path), "run", "--week", "2023-W08"])
    assert result.exit_code == 1 and "reports" in result.output
    result = CliRunner().invoke(cli, ["--config", str(config_path), "run", "--week", "2999-W01"])
    assert result.exit_code == 1 and "has not ended yet" in result.output
    with Store(tmp_path / "m.db") as store:
        assert [(r["week"], r["status"]) for r in store.runs()] == [("2023-W08", "failed")]


# ---- the daemon in a real process: start-up catch-up, SIGTERM ------------------------------


class _Output:
    """The lines a subprocess prints, read by a thread so the test can wait for one with a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self._queue.put(line) for line in proc.stdout], daemon=True).start()

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no line with {text!r} within {timeout} s; output: {''.join(self.lines)}")
            self.lines.append(line)
            if text in line:
                return line

    def rest(self) -> str:
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return "".join(self.lines)


def _schedule(config_path: Path) -> tuple[subprocess.Popen, _Output]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config_path), "schedule"], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    return proc, _Output(proc)


def _stop(proc: subprocess.Popen, output: _Output) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("monitor schedule did not stop within 30 s of SIGTERM")
    proc.stdout.close()
    return output.rest()


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_schedule_catches_up_at_start_then_waits_and_stops_cleanly_on_sigterm(tmp_path):
    config_path = tmp_path / "monitor.toml"
    config_path.write_text('[database]\npath = "m.db"\n[report]\nfolder = "reports"\n[ingest]\ninbox = ["inbox"]\n')
    proc, output = _schedule(config_path)
    try:
        output.wait_for("weekly run scheduled '0 6 * * wed' (UTC); catching up now; next scheduled run:")
        output.wait_for("0 of 0 series flagged")  # the start-up catch-up: the last complete week (a new database)
    finally:
        text = _stop(proc, output)
    assert proc.returncode == 0, text
    assert "SIGTERM received; stopping after the current step" in text and text.rstrip().endswith("scheduler stopped")
    assert "Traceback" not in text
    with Store(tmp_path / "m.db") as store:
        assert [r["status"] for r in store.runs()] == ["ok"]
    assert _integrity(tmp_path / "m.db") == "ok"
    assert (tmp_path / "m.db.lock").read_text() == ""  # released


def test_sigterm_during_a_catch_up_finishes_the_week_being_run_and_starts_no_other(tmp_path):
    """520 weeks owed (a run recorded in 2000, catch_up_weeks = 520); SIGTERM once the first is done."""
    config_path = tmp_path / "monitor.toml"
    config_path.write_text('[database]\npath = "m.db"\n[report]\nfolder = "reports"\n[ingest]\ninbox = ["inbox"]\n'
                           '[schedule]\ncatch_up_weeks = 520\n')  # fmt: skip
    with Store(tmp_path / "m.db") as store:
        _record(store, "2000-W01", "ok")
    proc, output = _schedule(config_path)
    try:
        owed = output.wait_for("catching up 520 weeks:").rstrip().split(": ", 1)[1].split(", ")
        output.wait_for(f"{owed[0]}: 0 of 0 series flagged")
    finally:
        text = _stop(proc, output)
    assert proc.returncode == 0, text
    with Store(tmp_path / "m.db") as store:
        runs = store.runs()[1:]
    # the week being run when SIGTERM arrived was finished and recorded; no later week was started
    assert 1 <= len(runs) < 520 and [r["week"] for r in runs] == owed[: len(runs)], text[-2000:]
    assert all(r["status"] == "ok" and r["finished_at"] for r in runs)
    assert f"stopping: {', '.join(owed[len(runs):])} left for the next start or tick" in text
    assert "scheduler stopped" in text and "Traceback" not in text
    assert _integrity(tmp_path / "m.db") == "ok"


# ---- what ships in scripts/ ------------------------------------------------------------------


def _monitor_args(command: str) -> list[str]:
    """The arguments after `.../monitor` in a shell command line, up to a redirection."""
    import shlex

    words = shlex.split(command)
    start = next(i for i, w in enumerate(words) if w.endswith("/monitor")) + 1
    end = next((i for i, w in enumerate(words) if w.startswith(">")), len(words))
    return words[start:end]


def _parses(args: list[str]) -> str:
    """The subcommand name, after click parsed the global and the subcommand's options (UsageError if wrong)."""
    from monitor.cli import cli

    at = next(i for i, word in enumerate(args) if word in cli.commands)
    name = args[at]
    cli.commands[name].make_context(name, args[at + 1 :], parent=cli.make_context("monitor", args[:at]))
    return name


def test_the_systemd_unit_and_the_crontab_example_run_real_commands():
    unit = (ROOT / "scripts" / "incident-monitor.service").read_text(encoding="utf-8")
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["KillSignal"] == "SIGTERM" and settings["Restart"] == "on-failure"
    assert settings["TimeoutStopSec"] and settings["WorkingDirectory"] and settings["EnvironmentFile"]
    assert _parses(_monitor_args(settings["ExecStart"])) == "schedule"
    crontab = (ROOT / "scripts" / "crontab.example").read_text(encoding="utf-8")
    (entry,) = [line for line in crontab.splitlines() if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert entry.split()[:5] == ["0", "6", "*", "*", "wed"]
    args = _monitor_args(entry)
    assert _parses(args) == "run" and args[args.index("--wait") + 1] == "600"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    running = readme.split("## Running it every week", 1)[1].split("\n## ", 1)[0]
    assert "scripts/incident-monitor.service" in running and "scripts/crontab.example" in running
