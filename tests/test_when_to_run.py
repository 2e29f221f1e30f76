"""When to run the weekly job (issue 14, item 6): the day-by-day arrival of a week's events after it ends.

The default schedule (Wednesday 06:00 UTC) follows ACLED's sample export: its rows are stamped on Monday and
Tuesday afternoons, so a Monday-morning run would judge the week just ended before any of it arrived.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.delays import by_day

ACLED = "acled_sample_9000_2022-01-01_2022-06-30.csv"


def _sightings(weeks: int, *, early_hours: float, late_hours: float) -> list[tuple[str, str, str, str]]:
    """Two events a week first seen `early_hours` after the week ended, two `late_hours` after it."""
    rows = []
    for w in range(weeks):
        start = date(2024, 1, 1) + timedelta(weeks=w)  # Mondays
        end = datetime.combine(start + timedelta(days=7), datetime.min.time(), tzinfo=timezone.utc)
        for hours in (early_hours, early_hours, late_hours, late_hours):
            rows.append(((start + timedelta(days=2)).isoformat(), (end + timedelta(hours=hours)).isoformat(), "", ""))
    # the latest ingest: every week above has been over for 14 days; this event's week has not
    rows.append(("2025-02-26", "2025-03-01T00:00:00+00:00", "", ""))
    return rows


def test_by_day_by_hand():
    """Half of each week known Monday noon (12 h after it ended), the rest on the Wednesday of the week after
    (9.5 days): known by the end of Monday 50 %, flat, then 100 % from the end of that Wednesday (day 9). The
    first update is in by the end of Monday, so a run on Tuesday sees it."""
    days = by_day(_sightings(8, early_hours=12, late_hours=9.5 * 24))
    shares = list(days.shares)
    assert len(shares) == 14
    assert shares[:9] == [pytest.approx(0.5)] * 9
    assert days.weeks == 8
    assert shares[9] == pytest.approx(1.0)
    assert (days.first_update, days.day_name(days.first_update + 1)) == (0, "tuesday")
    assert days.share_at(6) == 0.0 and days.share_at(30) == pytest.approx(0.5)
    # fewer than 8 weeks over for 14 days: too little to say
    assert by_day(_sightings(7, early_hours=12, late_hours=9.5 * 24)) is None


def test_the_acled_sample_says_run_on_wednesday(tmp_path, shared_data):
    """On ACLED's sample export, every event dated by its `timestamp` (it came in one ingest): the share known by
    the end of each day after its week ended, computed here from the file with pandas, is what `monitor delays`
    prints, and it suggests Wednesday for a schedule on Monday, and nothing more for one on Wednesday."""
    path = shared_data / ACLED
    frame = pd.read_csv(path, usecols=["event_date", "timestamp"])
    stamped = pd.to_datetime(frame["timestamp"], unit="s")
    days = pd.to_datetime(frame["event_date"])
    week_end = days - pd.to_timedelta(days.dt.day_of_week, unit="D") + pd.Timedelta(days=7)
    after = (stamped - week_end) / pd.Timedelta(days=1)
    expected = [f"{(after <= d + 1).mean():.0%}" for d in range(9)]
    assert expected[:2] == ["24%", "56%"]  # Monday, Tuesday

    config = tmp_path / "monitor.toml"
    config.write_text('[database]\npath = "m.db"\n[schedule]\ncron = "0 6 * * mon"\n', encoding="utf-8")
    ingest = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(path)])
    assert ingest.exit_code == 0, ingest.output
    result = CliRunner().invoke(cli, ["--config", str(config), "delays"])
    assert result.exit_code == 0, result.output
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Mon", "Tue"]
    shown = ", ".join(f"{n} {e}" for n, e in zip(names, expected))
    assert f"known by the end of each day after the week ended (27 weeks): {shown}" in result.stdout
    assert ("the week's first update is in by the end of Tuesday: a run on Wednesday at 06:00 sees 56% of the week; the "
            "configured schedule ('0 6 * * mon', UTC) runs 6 hours after the week ends and sees 0%") in result.stdout  # fmt: skip
    assert 'suggested: [schedule] cron = "0 6 * * wed"' in result.stdout

    config.write_text('[database]\npath = "m.db"\n', encoding="utf-8")  # the default schedule
    result = CliRunner().invoke(cli, ["--config", str(config), "delays"])
    assert "configured schedule ('0 6 * * wed', UTC) runs 54 hours after the week ends and sees 56%" in result.stdout
    assert "suggested:" not in result.stdout
