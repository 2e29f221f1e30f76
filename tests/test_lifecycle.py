"""The alert lifecycle state machine, routing, inhibition and the silence / outbox commands."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone

import pytest
from click.testing import CliRunner

from monitor.alerts.lifecycle import AlertState, LifecycleSettings, Observation, exceedance_band, step
from monitor.alerts.notify import advance, plan
from tests.helpers_result import alert_settings, make_result


def _run(levels: str, settings=LifecycleSettings(), scores=None) -> list[tuple[str, str]]:
    """Feed weeks of levels ('a' alert, 'w' warning, '.' quiet, '?' held) and return (state, event) per week."""
    state, out = AlertState(series="s"), []
    for i, c in enumerate(levels):
        level = {"a": "alert", "w": "warning"}.get(c, "")
        score = scores[i] if scores else (1.5 if level else 0.0)
        state, event = step(state, Observation(f"W{i:02d}", i, level, score, held=c == "?"), settings)
        out.append((state.state, event))
    return out


def test_a_one_week_spike_fires_then_recovers_and_resolves_after_two_quiet_weeks():
    assert _run("a...") == [("firing", "new"), ("recovering", "recovering"), ("resolved", "resolved"), ("", "")]


def test_zero_one_counts_do_not_flap():
    """Alert, quiet, alert, quiet...: one announcement, never resolved while it keeps coming back."""
    events = [e for _, e in _run("a.a.a.a")]
    assert events.count("new") == 1 and "resolved" not in events and events[2] == "continuing"


def test_for_weeks_keeps_an_alert_pending_and_a_single_week_is_dropped():
    settings = LifecycleSettings(for_weeks=2)
    assert _run("a.aa", settings) == [("pending", "pending"), ("", "dropped"), ("pending", "pending"), ("firing", "new")]


def test_reminder_after_repeat_weeks_and_escalations():
    events = [e for _, e in _run("aaaaaa", LifecycleSettings(repeat_weeks=4))]
    assert events == ["new", "continuing", "continuing", "continuing", "reminder", "continuing"]
    assert [e for _, e in _run("wwa")] == ["new", "continuing", "escalated"]  # warning -> alert
    # exceedance score 1.5 (band 1) -> 2.5 (band 2) -> 1.2 (band 1, no news) -> 5 (band 3)
    assert [e for _, e in _run("aaaa", scores=[1.5, 2.5, 1.2, 5.0])] == ["new", "escalated", "continuing", "escalated"]
    assert [exceedance_band(s) for s in (0.5, 1.0, 1.99, 2.0, 4.0, 8.0, float("nan"), float("inf"))] == [0, 1, 1, 2, 3, 4, 0, 10]


def test_held_weeks_change_nothing_and_a_week_is_processed_once():
    assert [s for s, _ in _run("a?..")] == ["firing", "firing", "recovering", "resolved"]
    # unjudged for longer than resolve_after_weeks: the old episode is over and a new alert is new, not a reminder
    assert [e for _, e in _run("a???a")] == ["new", "held", "held", "held", "new"]
    # a held week can be judged later (a re-run once its data arrived): it does not count as processed
    held, _ = step(AlertState(series="s"), Observation("W05", 5, "", 0.0, held=True), LifecycleSettings())
    assert held.last_index == -1 and step(held, Observation("W05", 5, "alert", 1.5), LifecycleSettings())[1] == "new"
    state, _ = step(AlertState(series="s"), Observation("W05", 5, "alert", 1.5), LifecycleSettings())
    again, event = step(state, Observation("W05", 5, "alert", 3.0), LifecycleSettings())
    earlier, event2 = step(state, Observation("W04", 4, "", 0.0), LifecycleSettings())
    assert (again, event) == (state, "") and (earlier, event2) == (state, "")


def test_routes_take_their_series_and_severity_and_escalation_is_news_to_a_stricter_route():
    result = make_result()
    settings = alert_settings(recipients=(), routes=[
        {"name": "homs-desk", "recipients": ["homs@example.org"], "series": "Homs", "min_level": "warning"},
        {"name": "duty", "recipients": ["duty@example.org"], "min_level": "alert"},
    ])  # fmt: skip
    homs = next(r for r in result.results if r.series.label == "Homs")
    warned = replace(homs, detection=replace(homs.detection, level="warning", alarm=False))
    week1 = replace(result, results=tuple(warned if r is homs else r for r in result.results))
    first = plan(week1, advance(week1, {}, settings), settings, [])
    by_route = {d.route.name: [(n.kind, n.result.series.label) for n in d.notices] for d in first.digests}
    assert by_route["homs-desk"] == [("new", "Homs")]
    assert ("new", "Homs") not in by_route["duty"]  # a warning does not reach the duty officer
    states = {k: v for k, v in first.states.items()}
    week2 = replace(result, week="2023-W10", week_start=date(2023, 3, 6), week_end=date(2023, 3, 12), latest_event_date=date(2023, 3, 11))
    second = plan(week2, advance(week2, states, settings), settings, [])
    by_route = {d.route.name: [(n.kind, n.result.series.label) for n in d.notices] for d in second.digests}
    assert ("escalated", "Homs") in by_route["homs-desk"] and ("new", "Homs") in by_route["duty"]


def test_a_region_alert_inhibits_its_children():
    result = make_result()
    homs = next(r for r in result.results if r.series.label == "Homs")
    child_series = replace(homs.series, key=homs.series.key + "/event_type=Battles",
                           labels=homs.series.labels + (("event_type", "Battles"),))  # fmt: skip
    child = replace(homs, series=child_series, detection=replace(homs.detection, series=child_series.key))
    result = replace(result, results=result.results + (child,))
    settings = alert_settings(recipients=["w@example.org"])
    (digest,) = plan(result, advance(result, {}, settings), settings, []).digests
    top = {n.result.series.key: n for n in digest.notices}
    assert child.series.key not in top
    assert [c.result.series.key for c in top[homs.series.key].children] == [child.series.key]
    assert child.series.key in digest.series  # still counted as announced


def test_silence_and_alert_commands(tmp_path):
    from monitor.cli import cli

    db = tmp_path / "m.db"
    runner = CliRunner()
    base = ["--db", str(db)]
    (tmp_path / "c.toml").write_text("", encoding="utf-8")
    base = ["--config", str(tmp_path / "c.toml"), *base]
    from monitor.store import Store

    Store(db).close()
    added = runner.invoke(cli, [*base, "silence", "add", "--series", "Homs", "--until", "2099-01-31",
                                "--comment", "tracked by the desk", "--author", "ana"])  # fmt: skip
    assert added.exit_code == 0 and added.output.startswith("silence #1: series matching 'Homs' not emailed until 2099-01-31")
    listed = runner.invoke(cli, [*base, "silence", "list"])
    assert "tracked by the desk" in listed.output and "active" in listed.output
    past = runner.invoke(cli, [*base, "silence", "add", "--series", "x", "--until", "2001-01-01", "--comment", "c"])
    assert past.exit_code == 2 and "in the past" in past.output
    bad = runner.invoke(cli, [*base, "silence", "add", "--series", "x", "--until", "soon", "--comment", "c"])
    assert bad.exit_code == 2 and "not a date" in bad.output
    assert runner.invoke(cli, [*base, "silence", "expire", "1"]).exit_code == 0
    again = runner.invoke(cli, [*base, "silence", "expire", "1"])
    assert again.exit_code == 1 and "no active silence #1" in again.output
    assert runner.invoke(cli, [*base, "silence", "list"]).output.strip() == "no active silences"
    flushed = runner.invoke(cli, [*base, "alerts", "flush"])
    assert flushed.exit_code == 0 and "outbox empty" in flushed.output
    assert "outbox: 0 message(s), 0 pending, 0 refused for good" in runner.invoke(cli, [*base, "alerts", "list"]).output


def test_alerts_flush_delivers_what_a_failed_run_left(tmp_path):
    """A message queued while the server was down is sent by `monitor alerts flush`, once."""
    from monitor.alerts.outbox import flush
    from monitor.store import Store
    from tests.smtp_server import SmtpServer

    server = SmtpServer()
    settings = alert_settings(host="127.0.0.1", port=server.port, security="none", recipients=["w@example.org"])
    now = datetime(2023, 3, 6, 6, tzinfo=timezone.utc)
    with Store(tmp_path / "m.db") as store:
        message = {"route": "default", "recipients": ["w@example.org"], "subject": "s", "message_id": "<m@x>",
                   "message": b"Subject: s\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n", "series": ["a"]}  # fmt: skip
        store.commit_alerts("2023-W09", [], [], [message], now=now)
        down = flush(store, settings=settings, password=None, eml_dir_for=lambda w: tmp_path, now=now)
        assert down.pending == 1 and "connection refused" in down.error
        server.start()
        try:
            up = flush(store, settings=settings, password=None, eml_dir_for=lambda w: tmp_path, now=now)
            twice = flush(store, settings=settings, password=None, eml_dir_for=lambda w: tmp_path, now=now)
        finally:
            server.stop()
        assert len(up.delivered) == 1 and twice.delivered == [] and store.pending_outbox() == []
        assert store.outbox()[0]["attempts"] == 2
    assert len(server.inbox.messages) == 1 and server.inbox.messages[0][0] == ["w@example.org"]


@pytest.mark.parametrize("bad", [
    {"name": "default", "recipients": ["a@example.org"]},
    {"name": "has space", "recipients": ["a@example.org"]},
    {"name": "x", "recipients": []},
])  # fmt: skip
def test_bad_routes_are_refused(bad):
    with pytest.raises(Exception):
        alert_settings(routes=[bad])


class _Refusing:
    """aiosmtpd handler that refuses every message with a temporary error."""

    def __init__(self) -> None:
        self.tries = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.tries += 1
        return "451 4.3.0 mailbox busy, try again later"


def test_a_refusing_or_silent_server_leaves_the_message_pending(tmp_path):
    """Refused (451) or no answer within the timeout: the message stays in the outbox with the reason."""
    import socket

    from aiosmtpd.controller import Controller

    from monitor.alerts.outbox import flush
    from monitor.store import Store
    from tests.smtp_server import free_port

    now = datetime(2023, 3, 6, 6, tzinfo=timezone.utc)
    handler, port = _Refusing(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never says hello
    try:
        with Store(tmp_path / "m.db") as store:
            message = {"route": "default", "recipients": ["w@example.org"], "subject": "s", "message_id": "<m@x>",
                       "message": b"Subject: s\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n", "series": ["a"]}  # fmt: skip
            store.commit_alerts("2023-W09", [], [], [message], now=now)
            refused = flush(store, settings=alert_settings(host="127.0.0.1", port=port, security="none"), password=None,
                            eml_dir_for=lambda w: tmp_path, now=now)  # fmt: skip
            quiet = flush(store, settings=alert_settings(host="127.0.0.1", port=silent.getsockname()[1], security="none",
                                                         timeout=1.0), password=None, eml_dir_for=lambda w: tmp_path, now=now)  # fmt: skip
            (row,) = store.pending_outbox()
    finally:
        controller.stop()
        silent.close()
    assert handler.tries == 1 and "451" in refused.error and refused.pending == 1
    assert "no answer within 1 s" in quiet.error
    assert row["attempts"] == 2 and "no answer" in row["last_error"]


class _OneBadAddress:
    """aiosmtpd handler refusing one recipient for good (550) and accepting the others."""

    def __init__(self) -> None:
        self.accepted: list[list[str]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.accepted.append(list(envelope.rcpt_tos))
        return "250 accepted"


def test_a_message_refused_for_good_is_set_aside_and_does_not_block_the_others(tmp_path):
    from aiosmtpd.controller import Controller

    from monitor.alerts.outbox import flush
    from monitor.store import Store
    from tests.smtp_server import free_port

    now = datetime(2023, 3, 6, 6, tzinfo=timezone.utc)
    handler, port = _OneBadAddress(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings = alert_settings(host="127.0.0.1", port=port, security="none")
    try:
        with Store(tmp_path / "m.db") as store:
            msgs = [{"route": route, "recipients": [rcpt], "subject": route, "message_id": f"<{route}@x>",
                     "message": f"Subject: {route}\r\nMessage-ID: <{route}@x>\r\n\r\nbody\r\n".encode(), "series": ["a"]}
                    for route, rcpt in (("desk", "gone@example.org"), ("duty", "duty@example.org"))]  # fmt: skip
            store.commit_alerts("2023-W09", [], [], msgs, now=now)
            first = flush(store, settings=settings, password=None, eml_dir_for=lambda w: tmp_path, now=now)
            second = flush(store, settings=settings, password=None, eml_dir_for=lambda w: tmp_path, now=now)
            rows = {o["route"]: o for o in store.outbox()}
            pending = store.pending_outbox()
    finally:
        controller.stop()
    assert handler.accepted == [["duty@example.org"]]  # the good message went through, once
    assert [f["permanent"] for f in first.failed] == [True] and "550" in first.error and first.pending == 0
    assert [d["route"] for d in first.delivered] == ["duty"] and second.delivered == [] and second.failed == []
    assert rows["desk"]["dead_at"] and rows["desk"]["sent_at"] is None and "no such user" in rows["desk"]["last_error"]
    assert pending == []


def _week_of(r0, k, level):
    """Week k after make_result's week with only Homs, at `level` ("alert", "warning" or "")."""
    from datetime import timedelta

    homs = next(r for r in r0.results if r.series.label == "Homs")
    ws = r0.week_start + timedelta(weeks=k)
    d = replace(homs.detection, level=level, alarm=level == "alert", score=1.5 if level == "alert" else 0.8)
    return replace(r0, week=f"W+{k}", week_start=ws, week_end=ws + timedelta(days=6), latest_event_date=ws + timedelta(days=5),
                   results=(replace(homs, detection=d),))  # fmt: skip


@pytest.mark.parametrize("for_weeks,silenced_first", [(1, True), (2, False)])
def test_an_alert_only_route_hears_new_once_per_episode(for_weeks, silenced_first):
    """Weeks at alert, warning, alert: the duty officer (alerts only) is told 'new' once, in an alert week."""
    settings = alert_settings(recipients=(), for_weeks=for_weeks, routes=[
        {"name": "desk", "recipients": ["desk@example.org"], "min_level": "warning"},
        {"name": "duty", "recipients": ["duty@example.org"], "min_level": "alert"}])  # fmt: skip
    silence = [{"id": 1, "filter": "Homs", "until": "x", "comment": "c", "author": "a"}]
    r0, states, log = make_result(), {}, []
    for k, level in enumerate(["alert", "warning", "alert"]):
        week = _week_of(r0, k, level)
        p = plan(week, advance(week, states, settings), settings, silence if (k == 0 and silenced_first) else [])
        states.update(p.states)
        log.append({d.route.name: [n.kind for n in d.notices] for d in p.digests})
    duty = [kinds for week in log for kinds in [week.get("duty", [])]]
    assert sum(kinds.count("new") for kinds in duty) == 1 and duty[2] == ["new"], log


def test_a_new_child_is_not_tucked_under_a_resolved_parent():
    from datetime import timedelta

    r0 = make_result()
    homs = next(r for r in r0.results if r.series.label == "Homs")
    child_series = replace(homs.series, key=homs.series.key + "/event_type=Battles",
                           labels=homs.series.labels + (("event_type", "Battles"),))  # fmt: skip
    settings = alert_settings(recipients=["w@example.org"], resolve_after_weeks=1)
    states: dict = {}
    for k, (parent_level, child_level) in enumerate([("alert", ""), ("", "alert")]):
        ws = r0.week_start + timedelta(weeks=k)
        parent = replace(homs, detection=replace(homs.detection, level=parent_level, alarm=parent_level == "alert"))
        child = replace(homs, series=child_series, detection=replace(homs.detection, series=child_series.key,
                                                                      level=child_level, alarm=child_level == "alert"))  # fmt: skip
        week = replace(r0, week=f"W+{k}", week_start=ws, week_end=ws + timedelta(days=6),
                       latest_event_date=ws + timedelta(days=5), results=(parent, child))  # fmt: skip
        p = plan(week, advance(week, states, settings), settings, [])
        states.update(p.states)
    (digest,) = p.digests
    assert sorted((n.kind, n.result.series.key) for n in digest.notices) == [
        ("new", child_series.key), ("resolved", homs.series.key)
    ] and all(not n.children for n in digest.notices)


def test_the_suggested_silence_names_one_series_only():
    from monitor.alerts.notify import matches, silence_command

    r0 = make_result()
    homs = next(r for r in r0.results if r.series.label == "Homs")
    other = replace(homs, series=replace(homs.series, key="x_" + homs.series.key))  # a key that contains Homs' key
    command = silence_command(homs, r0.week_end)
    text = command.split("--series '")[1].split("'")[0]
    assert text == "key:" + homs.series.key
    assert matches(text, homs) and not matches(text, other)
    assert matches("Homs", homs) and matches("Homs", other)  # plain text still matches by substring


def test_level_column_of_a_quiet_series_is_a_dash_and_ended_silences_do_not_expire(tmp_path):
    from monitor.alerts.email import _level
    from monitor.alerts.notify import Change, Notice
    from monitor.store import Store

    r0 = make_result()
    quiet = next(r for r in r0.results if not r.detection.alarm)
    st = AlertState(series=quiet.series.key, state="resolved", severity="alert")
    assert _level(Notice("resolved", Change(quiet, "resolved", st, st))) == "-"
    with Store(tmp_path / "m.db") as store:
        sid = store.add_silence(filter="x", until=date(2023, 1, 1), comment="c", author="a", now=datetime(2022, 12, 1))
        assert not store.expire_silence(sid, now=datetime(2023, 2, 1, tzinfo=timezone.utc))
