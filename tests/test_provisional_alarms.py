"""Alarms that account for late reporting (issue 14, item 4).

A week is judged on the events reported so far. When that partial count already crosses the threshold it
alarms; when only its nowcast does, it is a warning, "likely surge once reporting completes", and the next
run re-judges the week with the data it then has: the alert lifecycle is replayed from the state the week
started from, and the digest says what changed. Driven through `monitor run` on a real SQLite file over
weekly deliveries of the same ACLED export (tests/test_history.py's `weekly_deliveries`).
"""

from __future__ import annotations

import json
import math
import sqlite3
from email import message_from_bytes, policy
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from test_history import monday, weekly_deliveries

from monitor.alerts.lifecycle import AlertState, LifecycleSettings, Observation, rejudge, step
from monitor.cli import cli
from monitor.detection import nowcast_levels
from monitor.nowcast import nowcast_week

SETTINGS = LifecycleSettings(for_weeks=1, resolve_after_weeks=2, repeat_weeks=4)


def _config(tmp_path: Path, min_level: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text('[database]\npath = "m.db"\n[report]\nfolder = "reports"\n'
                    f'[alerts]\nmin_level = "{min_level}"\n[[series]]\nname = "all"\n', encoding="utf-8")  # fmt: skip
    return path


def _run(config: Path, week: str, k: int):
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--week", week], env={"MONITOR_NOW": monday(k).isoformat()})
    assert result.exit_code in (0, 3), result.output
    return result


def _digest(tmp_path: Path, week: str) -> str:
    emls = sorted((tmp_path / "reports" / week).glob("*.eml"))
    assert len(emls) == 1, emls
    message = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    return message.get_body(preferencelist=("plain",)).get_content()


def _events(config: Path) -> list[tuple]:
    with sqlite3.connect(config.parent / "m.db") as conn:
        return conn.execute("SELECT week, event, state, severity, detail FROM alert_events ORDER BY week").fetchall()


def test_a_likely_surge_is_a_warning_then_an_alert_once_its_late_events_are_in(tmp_path):
    """Week 19 (2023-W20) holds its 4 usual events and a surge: 6 events reported at once, 6 more a week
    later. On the Monday after it, 8 are known (2 usual + 6) at a measured share of 50 %: below nb-recent's
    threshold of 11, but its nowcast (14, 90 % 10 to 20) ends above it with a 77 % chance: a warning that
    says "likely surge". The next Monday 15 are known (3 usual + 12): the week is re-judged an alert and the
    digest says it escalated, naming the week."""
    config = _config(tmp_path, "warning")
    weekly_deliveries(tmp_path, config, weeks=21, deliveries=20, surge=6, late=6, surge_week=19)
    _run(config, "2023-W20", 20)
    first = _digest(tmp_path, "2023-W20")
    assert "NEW (1)" in first
    assert ("likely surge once reporting completes: 8 reported (50% of a week's events are in by now), nowcast 14 (90% 10 "
            "to 20) against a threshold of 11: 77% chance to end above it") in first  # fmt: skip
    report = (tmp_path / "reports" / "2023-W20" / "report.md").read_text(encoding="utf-8")
    assert ("This week is still filling: about 50% of a week's events are in the data by now (measured reporting delays, "
            "see monitor delays)") in report  # fmt: skip
    assert "1 series is a warning only by its nowcast (‡, likely surge once reporting completes): all — All (total)." in report
    assert "| all — All (total) ‡ | 8 | 4.1 | 11 | 0.055 | 14 (10–20) |" in report  # the Warnings table
    (state,) = _states(config)
    assert state["state"] == "firing" and state["severity"] == "warning"
    assert [w["week"] for w in json.loads(state["provisional"])] == ["2023-W20"]

    weekly_deliveries(tmp_path, config, weeks=21, deliveries=21, surge=6, late=6, surge_week=19, first=21)
    _run(config, "2023-W21", 21)
    second = _digest(tmp_path, "2023-W21")
    assert "ESCALATED (1)" in second
    assert ("2023-W20 re-judged with fuller reporting: 15 events against a threshold of 11, alert (first judged warning on a "
            "partial count); 2 events (0 fatalities) this week") in second  # fmt: skip
    (state,) = _states(config)
    assert (state["severity"], state["announced_severity"], state["last_week"]) == ("alert", "alert", "2023-W21")
    week, event, _, severity, detail = _events(config)[-1]
    assert (week, event, severity) == ("2023-W21", "escalated", "alert")
    assert detail.startswith("2023-W20 re-judged with fuller reporting: 15 events against a threshold of 11, alert")
    # the same week run again decides nothing anew and sends nothing again
    _run(config, "2023-W21", 21)
    assert len(list((tmp_path / "reports" / "2023-W21").glob("*.eml"))) == 1
    assert _events(config)[-1][:2] == ("2023-W21", "escalated")


def _states(config: Path) -> list[dict]:
    with sqlite3.connect(config.parent / "m.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM alert_states")]


def test_a_route_for_alerts_hears_of_the_surge_when_its_week_is_re_judged_an_alert(tmp_path):
    """The same deliveries with the digest for alerts only: the likely-surge warning of 2023-W20 is not sent
    (no route at that severity), and when the week is re-judged an alert the next Monday, the alert route is
    told: a new alert, although the week being reported (2023-W21) is itself quiet so far."""
    config = _config(tmp_path, "alert")
    weekly_deliveries(tmp_path, config, weeks=21, deliveries=20, surge=6, late=6, surge_week=19)
    _run(config, "2023-W20", 20)
    assert not list((tmp_path / "reports" / "2023-W20").glob("*.eml"))
    assert _events(config)[-1][:2] == ("2023-W20", "new") and "not sent: no route at this severity" in _events(config)[-1][4]
    weekly_deliveries(tmp_path, config, weeks=21, deliveries=21, surge=6, late=6, surge_week=19, first=21)
    _run(config, "2023-W21", 21)
    digest = _digest(tmp_path, "2023-W21")
    assert "NEW (1)" in digest and "2023-W20 re-judged with fuller reporting: 15 events against a threshold of 11, alert" in digest


def test_a_likely_surge_that_does_not_hold_up_is_resolved(tmp_path):
    """A surge of 5 reported at once and nothing late: on the first Monday 7 are known at 50 % and the nowcast
    (12.3, 90 % 8 to 18) ends above the threshold of 11 with a 56 % chance, a warning sent to the team. A week
    later 8 are known (3 usual + 5) at 75 %: no longer likely, so what the team was told is withdrawn."""
    config = _config(tmp_path, "warning")
    weekly_deliveries(tmp_path, config, weeks=21, deliveries=20, surge=5, surge_week=19)
    _run(config, "2023-W20", 20)
    assert "56% chance to end above it" in _digest(tmp_path, "2023-W20")
    weekly_deliveries(tmp_path, config, weeks=21, deliveries=21, surge=5, surge_week=19, first=21)
    _run(config, "2023-W21", 21)
    digest = _digest(tmp_path, "2023-W21")
    assert "RESOLVED (1)" in digest
    assert "2023-W20 re-judged with fuller reporting: 8 events against a threshold of 11, quiet (first judged warning" in digest
    assert "fell below its threshold with the data now in (late reports, revisions or deletions)" in digest
    (state,) = _states(config)
    assert state["state"] == ""
    # both weeks are still filling (2023-W20 at 75 %, 2023-W21 at 50 %): open to re-judging, 2023-W20 now quiet
    assert [(w["week"], w["level"]) for w in json.loads(state["provisional"])] == [("2023-W20", ""), ("2023-W21", "")]


def test_a_partial_count_above_the_threshold_alarms_and_only_a_likely_one_warns():
    """`nowcast_levels` on a detector frame: a week still filling whose reported count already exceeds its
    threshold keeps its alarm; one below it is a warning when its final count is likely to end above the
    threshold, and stays quiet when it is not (by hand: 3 known at half reported, prior 4 a week, shape 1:
    NB(4, 0.6) still to come, P(U > 8) = 1 − Σ_{k ≤ 8} C(k + 3, k) 0.6⁴ 0.4^k = 0.01527)."""
    frame = pd.DataFrame({
        "week_start": pd.to_datetime(["2023-05-01", "2023-05-08", "2023-05-15"]),
        "count": [12.0, 8.0, 3.0], "expected": [4.0, 4.0, 4.0], "upperbound": [11.0, 11.0, 11.0],
        "alarm": pd.array([True, False, False], dtype="boolean"), "level": ["alert", "", ""], "note": ["", "", ""],
    })  # fmt: skip
    casts = {d: nowcast_week(int(c), 0.5, prior_mean=4, size=1) for d, c in zip(frame["week_start"].dt.date, frame["count"])}
    out = nowcast_levels(frame, casts, likely=0.5)
    assert list(out["level"]) == ["alert", "warning", ""]
    assert list(out["alarm"]) == [True, False, False]
    assert out["chance_above"].iloc[0] == 1.0
    assert math.isclose(out["chance_above"].iloc[2], 0.01527, abs_tol=5e-6)
    assert out["note"].iloc[1].startswith("likely surge once reporting completes: 8 reported (50%")
    # a stricter setting keeps the week quiet: its chance is 77 %
    assert list(nowcast_levels(frame, casts, likely=0.8)["level"]) == ["alert", "", ""]


def _obs(week: int, level: str, *, provisional: bool = False) -> Observation:
    return Observation(f"2023-W{week:02d}", week, level, 1.5 if level else math.nan, provisional=provisional)


def test_rejudging_replays_from_the_state_the_week_started_from():
    """Pure lifecycle: a quiet week still filling, re-judged an alert, starts a new alert; a week judged a
    warning and re-judged the same, now complete, closes without an event; a re-judged week that is still
    filling stays open with its new level."""
    quiet, event = step(AlertState("s"), _obs(10, "", provisional=True), SETTINGS)
    assert event == "" and json.loads(quiet.provisional)[0]["week"] == "2023-W10"
    state, event, revisions = rejudge(quiet, {10: _obs(10, "alert")}, SETTINGS)
    assert (state.state, state.since_week, event, state.provisional) == ("firing", "2023-W10", "new", "")
    assert [(r.week, r.was, r.now) for r in revisions] == [("2023-W10", "", "alert")]

    warned, event = step(AlertState("s"), _obs(10, "warning", provisional=True), SETTINGS)
    assert (warned.state, event) == ("firing", "new")
    same, event, revisions = rejudge(warned, {10: _obs(10, "warning")}, SETTINGS)
    assert (event, revisions) == ("", ()) and same == replace_provisional(warned, "")
    still, event, revisions = rejudge(warned, {10: _obs(10, "alert", provisional=True)}, SETTINGS)
    assert event == "escalated" and still.announced_severity == "alert"
    assert [w["level"] for w in json.loads(still.provisional)] == ["alert"]
    # a week not re-checked (older than the run's look-back) stays as it was judged
    assert rejudge(warned, {}, SETTINGS)[0] == warned


def replace_provisional(state: AlertState, value: str) -> AlertState:
    from dataclasses import replace

    return replace(state, provisional=value)


def _weeks(settings: LifecycleSettings, weeks: list[tuple[int, str]], now: dict[int, dict[int, Observation]]) -> list[tuple]:
    """Weekly runs: each re-judges the open weeks with `now[run]` (earlier week -> observation as known at that run),
    then judges its own week, still filling. Returns (week, event of the re-judging, event of the week, state, announced)."""
    state, out = AlertState("s"), []
    for index, level in weeks:
        earlier = ""
        if state.provisional and state.last_index < index:
            state, earlier, _ = rejudge(state, now.get(index, {}), settings)
        state, event = step(state, _obs(index, level, provisional=True), settings)
        out.append((index, earlier, event, state.state, state.announced_index))
    return out


def _final(index: int, level: str, *, held: bool = False) -> Observation:
    return Observation(f"2023-W{index:02d}", index, level, 1.5 if level else math.nan, held=held)


def test_an_announced_episode_is_not_announced_again_when_an_earlier_week_is_re_judged_quiet():
    """for_weeks = 2: weeks 1 and 2 flagged, announced new at week 2. At week 3, week 1 turns out quiet: the replay
    leaves the episode one week old, but the team was told, so it stays firing: week 3 continues (or, quiet,
    starts recovering), never a second "new" and never dropped without a word."""
    settings = LifecycleSettings(for_weeks=2, resolve_after_weeks=2, repeat_weeks=4)
    rejudged = {3: {1: _final(1, ""), 2: _final(2, "alert")}}
    flagged = _weeks(settings, [(1, "alert"), (2, "alert"), (3, "alert")], rejudged)
    assert [e for _, _, e, _, _ in flagged] == ["pending", "new", "continuing"]
    assert flagged[-1][3:] == ("firing", 2)
    quiet = _weeks(settings, [(1, "alert"), (2, "alert"), (3, "")], rejudged)
    assert quiet[-1][2:4] == ("recovering", "recovering")


def test_a_week_undecided_when_re_checked_keeps_its_first_verdict():
    """No data is not zero: a re-check that cannot decide the week changes nothing, and the week stays open."""
    run = _weeks(SETTINGS, [(1, "alert"), (2, "alert"), (3, "alert")], {2: {1: _final(1, "", held=True)}})
    assert [(earlier, event) for _, earlier, event, _, _ in run] == [("", "new"), ("", "continuing"), ("", "continuing")]


def test_a_resolution_is_not_hidden_behind_an_escalation_of_the_same_run():
    """Week 1 a warning (announced), then quiet; at week 3, week 1 is re-judged an alert while the series is quiet
    for the second week: the alert is over, and the digest says so (the re-judged week is named in the notice)."""
    from monitor.alerts.notify import _louder

    run = _weeks(SETTINGS, [(1, "warning"), (2, ""), (3, "")], {3: {1: _final(1, "alert"), 2: _final(2, "")}})
    index, earlier, event, state, _ = run[-1]
    assert (earlier, event, state) == ("escalated", "resolved", "resolved")
    assert _louder(earlier, event) == "resolved"


def test_a_larger_surge_confirmed_at_the_same_level_escalates():
    """Week 1 alerted on a partial count at an exceedance score of 1.5 (band 1); once complete its score is 5
    (band 3): the same level, a larger surge, announced as an escalation."""
    state, _ = step(AlertState("s"), _obs(1, "alert", provisional=True), SETTINGS)
    larger = Observation("2023-W01", 1, "alert", 5.0, observed=30, threshold=11)
    after, event, revisions = rejudge(state, {1: larger}, SETTINGS)
    assert (event, after.announced_band) == ("escalated", 3)
    assert revisions[0].text() == ("2023-W01 re-judged with fuller reporting: 30 events against a threshold of 11, "
                                   "a larger surge than first judged on a partial count")  # fmt: skip
