"""`monitor status`: last runs, next scheduled run, weeks owed, outbox, silences, data freshness (demo database)."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import load_config
from monitor.status import status
from monitor.store import Store

#: Tuesday, two weeks after the demo fixture ingested its data (2026-11-24 09:00 UTC).
NOW = datetime(2026, 12, 8, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def demo_copy(demo_dir, tmp_path) -> Path:
    """The demo's config and database in tmp_path, with a failed run of 2023-W10 after the demo's 2023-W09."""
    shutil.copy(demo_dir / "monitor.db", tmp_path / "monitor.db")
    shutil.copy(demo_dir / "monitor.toml", tmp_path / "monitor.toml")
    with Store(tmp_path / "monitor.db") as store:
        store.record_run(week="2023-W10", started_at=NOW, finished_at=NOW, status="failed",
                         summary={"series": 0, "flagged": [], "announced": [], "error": "disk full"})  # fmt: skip
    return tmp_path / "monitor.toml"


def test_status_lists_runs_next_run_owed_weeks_and_freshness(demo_copy):
    config = load_config(demo_copy)
    with Store(config.db_path) as store:
        info = status(config, store, now=NOW)
        outbox, silences = store.pending_outbox(), store.active_silences(NOW)
    newest, demo = info["runs"]
    assert (newest["week"], newest["status"], newest["error"], newest["flagged"]) == ("2023-W10", "failed", "disk full", 0)
    assert (demo["week"], demo["status"], demo["error"], demo["series"]) == ("2023-W09", "ok", "", 31)  # the demo's 31 series
    assert demo["flagged"] >= 3 and demo["started"].startswith("2026-11-24T09:00")  # the demo's surge, as recorded
    assert info["schedule"] == {
        "cron": "0 6 * * wed", "timezone": "UTC", "catch_up_weeks": 8,
        "next_run": "2026-12-09T06:00:00+00:00", "next_week": "2026-W49",
        # the last 8 complete weeks (the demo recorded 2023-W09, so nothing earlier than that is owed)
        "owed": [f"2026-W{n}" for n in range(42, 50)],
    }  # fmt: skip
    # the data ends on Friday 2023-03-31, so its last complete week is 2023-W12, 193 weeks before 2026-W49
    assert info["sources"] == [{"source": "acled", "records": 32958, "latest_event_date": "2023-03-31",
                                "last_week_with_data": "2023-W12", "weeks_behind": 193,
                                "last_ingest": "2026-11-24T09:00:00+00:00", "weeks_since_ingest": 2.0}]  # fmt: skip
    assert info["outbox"] == outbox and info["silences"] == silences
    with Store(config.db_path) as store:
        assert status(config, store, now=NOW, runs=1)["runs"] == [newest]


def test_status_says_not_available_for_what_the_store_does_not_keep(demo_copy):
    class OlderStore(Store):
        """A store from before the outbox and silences."""

        pending_outbox = None
        active_silences = None

    config = load_config(demo_copy)
    with OlderStore(config.db_path) as store:
        info = status(config, store, now=NOW)
    assert info["outbox"] is None and info["silences"] is None


def test_status_command_prints_every_section_and_json(demo_copy):
    with Store(demo_copy.parent / "monitor.db") as store:
        store.add_silence(filter="Homs", until=date(2999, 12, 31), comment="known offensive", author="ana", now=NOW)
    result = CliRunner().invoke(cli, ["--config", str(demo_copy), "status", "--runs", "5"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"database: {demo_copy.parent / 'monitor.db'}\nnext scheduled run: ")  # when: from the wall clock
    assert "(cron '0 6 * * wed', UTC), reporting on " in out
    assert "weeks owed (run by the next `monitor schedule` job, at most 8): " in out
    for heading in ("last runs (newest first)", "pending outbox messages", "active silences", "data freshness per source"):
        assert f"\n{heading}\n" in out
    lines = out.splitlines()
    runs_at = lines.index("last runs (newest first)")
    assert lines[runs_at + 1].split() == ["week", "started", "finished", "status", "flagged", "announced", "error"]
    assert lines[runs_at + 2].split()[0] == "2023-W10" and lines[runs_at + 2].endswith("disk full")
    silence_row = lines[lines.index("active silences") + 2]
    assert "Homs" in silence_row and "2999-12-31" in silence_row and "known offensive" in silence_row and "ana" in silence_row
    assert "acled" in lines[lines.index("data freshness per source") + 2]
    as_json = CliRunner().invoke(cli, ["--config", str(demo_copy), "status", "--format", "json"])
    assert as_json.exit_code == 0
    info = json.loads(as_json.output)
    assert [r["week"] for r in info["runs"]] == ["2023-W10", "2023-W09"] and info["silences"][0]["filter"] == "Homs"


def test_status_needs_an_existing_database(tmp_path):
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "missing.db"), "status"])
    assert result.exit_code == 1 and "does not exist" in result.output and not (tmp_path / "missing.db").exists()
