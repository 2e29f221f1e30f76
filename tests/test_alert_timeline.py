"""The alert path over a scripted run of weeks, against a real SMTP server on 127.0.0.1, with a fake clock.

Weekly counts files arrive in the inbox, `run_weekly` runs each Monday at 06:00 (the fake
clock), and the test asserts which mails arrive in which run:

* Homs: a warning in W02 (new for the Syria desk, which takes warnings), an alert in W03
  (escalated for the desk, new for the duty officer, who takes alerts only), a higher
  exceedance band in W05 (escalated for both), quiet in W06 (recovering: nothing sent) and
  W07 (resolved: both told);
* the server is down for the W02 run: the run exits 4 and the W02 message waits in the
  outbox; the W03 run delivers it first, exactly once;
* Hama: alerts from W04, silenced until 2023-02-06 (the W05 run's day), so nothing goes out
  until the silence has expired: the W06 run announces it as new;
* Aleppo never moves; W09 has no data (no file arrived): every series is held, not zero;
* re-running a week sends nothing.
"""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.config import config_from_dict
from monitor.pipeline import EXIT_DELIVERY_FAILED, EXIT_NO_DATA, run_weekly
from monitor.store import Store
from tests.smtp_server import SmtpServer

DESK, DUTY = "syria-desk@example.org", "duty@example.org"
HISTORY_START = date(2022, 1, 3)  # 52 quiet weeks before 2023-W01
WEEKS = [date(2023, 1, 2) + timedelta(weeks=i) for i in range(8)]  # 2023-W01 .. W08
#: counts per week of 2023 (W01..W08); every earlier week is 20 everywhere
COUNTS = {
    "Homs": [20, 23, 32, 34, 60, 30, 30, 30],
    "Hama": [20, 20, 20, 30, 40, 50, 50, 50],
    "Aleppo": [20, 20, 20, 20, 20, 20, 20, 20],
}


def _write_counts(path: Path, rows: list[tuple[date, str, int]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["week_start", "country", "admin1", "count"])
        for week, admin1, n in rows:
            out.writerow([week.isoformat(), "Syria", admin1, n])


def _config(tmp_path: Path, port: int):
    raw = {
        "database": {"path": str(tmp_path / "monitor.db")},
        "ingest": {"inbox": [str(tmp_path / "inbox")]},
        "report": {"folder": str(tmp_path / "reports")},
        "series": [{"name": "is", "title": "IS attacks", "group_by": ["country", "admin1"], "rollup": False,
                    "min_events": 0, "detector": "trendfinder"}],
        "alerts": {
            "sender": "incident-monitor@example.org",
            "routes": [
                {"name": "syria-desk", "recipients": [DESK], "series": "Syria", "min_level": "warning"},
                {"name": "duty-officer", "recipients": [DUTY], "min_level": "alert"},
            ],
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 5},
        },
    }  # fmt: skip
    return config_from_dict(raw, base_dir=tmp_path)


def _monday_after(week: date) -> datetime:
    return datetime.combine(week + timedelta(days=7), datetime.min.time(), tzinfo=timezone.utc).replace(hour=6)


def _received(server, since: int) -> list[tuple[str, str]]:
    """(recipient, subject) of the mails accepted since message number `since`."""
    return [(rcpt[0], str(msg["Subject"]).strip()) for rcpt, msg in server.inbox.messages[since:]]


@pytest.fixture
def timeline(tmp_path):
    server = SmtpServer()
    config = _config(tmp_path, server.port)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "reports").mkdir()
    history = [(HISTORY_START + timedelta(weeks=i), a, 20) for i in range(52) for a in COUNTS]
    _write_counts(tmp_path / "inbox" / "history.csv", history)
    yield config, server, tmp_path
    server.stop()


def test_weeks_of_alerts_arrive_once_each_in_the_right_run(timeline):
    config, server, folder = timeline
    log: dict[str, list[tuple[str, str]]] = {}
    exit_codes = {}
    with Store(config.db_path) as store:
        for i, week in enumerate(WEEKS):
            label = f"2023-W{i + 1:02d}"
            _write_counts(folder / "inbox" / f"{label}.csv", [(week, a, COUNTS[a][i]) for a in COUNTS])
            if label == "2023-W03":
                server.start()  # down for the W02 run, back for W03
            if label == "2023-W04":
                store.add_silence(filter="Hama", until=date(2023, 2, 6), comment="known offensive, tracked by the desk",
                                  author="test", now=_monday_after(week))  # fmt: skip
            before = len(server.inbox.messages)
            outcome = run_weekly(config, store, week=week, now=_monday_after(week))
            exit_codes[label] = outcome.exit_code
            log[label] = _received(server, before)
            if label == "2023-W05":
                report_w05 = (folder / "reports" / "2023-W05" / "report.md").read_text(encoding="utf-8")
            if label == "2023-W02":
                (pending,) = store.pending_outbox()
                assert pending["route"] == "syria-desk" and "connection refused" in pending["last_error"]
        # W09: no file arrived; W05 again: a re-run sends nothing
        before = len(server.inbox.messages)
        w09 = run_weekly(config, store, week=date(2023, 2, 27), now=_monday_after(date(2023, 2, 27)))
        again = run_weekly(config, store, week=WEEKS[4], now=_monday_after(date(2023, 2, 27)))
        # W09 judged nothing: exit 6, not 0 (issue 11: no silent all-clear)
        assert _received(server, before) == [] and w09.exit_code == EXIT_NO_DATA and again.exit_code == 0
        held = {e["series"]: e["event"] for e in store.alert_events("2023-W09")}
        states = store.alert_states()
        runs = {r["week"]: r["status"] for r in store.runs()}
        report_w09 = (folder / "reports" / "2023-W09" / "report.md").read_text(encoding="utf-8")
        assert store.pending_outbox() == []

    new_homs_desk = (DESK, "[incident-monitor] 2023-W02: 1 new surge (Homs)")
    assert log == {
        "2023-W01": [],
        "2023-W02": [],  # server down
        "2023-W03": [new_homs_desk,
                     (DESK, "[incident-monitor] 2023-W03: 1 escalated (Homs)"),
                     (DUTY, "[incident-monitor] 2023-W03: 1 new surge (Homs)")],
        "2023-W04": [],  # Homs continues; Hama is silenced
        "2023-W05": [(DESK, "[incident-monitor] 2023-W05: 1 escalated (Homs)"),
                     (DUTY, "[incident-monitor] 2023-W05: 1 escalated (Homs)")],
        "2023-W06": [(DESK, "[incident-monitor] 2023-W06: 1 new surge (Hama)"),
                     (DUTY, "[incident-monitor] 2023-W06: 1 new surge (Hama)")],
        "2023-W07": [(DESK, "[incident-monitor] 2023-W07: 1 resolved"),
                     (DUTY, "[incident-monitor] 2023-W07: 1 resolved")],
        "2023-W08": [],  # Hama continues at the warning level
    }  # fmt: skip
    assert exit_codes["2023-W02"] == EXIT_DELIVERY_FAILED and all(c == 0 for w, c in exit_codes.items() if w != "2023-W02")
    assert [m for m in server.inbox.messages if "2023-W02" in str(m[1]["Subject"])].__len__() == 1  # exactly once

    # the resolved notice says what resolved; the desk's W06 digest lists Homs as continuing (recovering)
    subjects = {(r[0], str(m["Subject"]).strip()): m for r, m in server.inbox.messages}
    resolved = subjects[(DESK, "[incident-monitor] 2023-W07: 1 resolved")].get_body(("plain",)).get_content()
    assert "RESOLVED (1)" in resolved and "IS attacks — Syria · Homs" in resolved
    w06 = subjects[(DESK, "[incident-monitor] 2023-W06: 1 new surge (Hama)")].get_body(("plain",)).get_content()
    assert "CONTINUING (ANNOUNCED BEFORE) (1)" in w06 and "IS attacks — Syria · Homs" in w06.split("CONTINUING")[1]

    # no data is not zero: W09 held everything, Hama is still firing rather than recovering
    assert set(held.values()) == {"held"}
    hama = next(s for k, s in states.items() if "Hama" in k)
    assert hama.state == "firing" and hama.last_week == "2023-W08"  # W09 is not judged: a re-run with data will judge it
    assert runs["2023-W09"] == "no-data"  # not settled: the scheduler runs the week again
    assert report_w09.split("\n", 3)[2].startswith("> **⚠ NO DATA FOR THIS WEEK.** No data for 2023-W09: no source's data")
    assert "No monitored series rose above its threshold" not in report_w09
    # the silence is listed in the report of a week it covered, and Hama is marked there
    alerts_w05 = report_w05[report_w05.index("## Alerts and silences"):report_w05.index("## At a glance")]
    assert "| IS attacks — Syria · Hama | firing (alert) since 2023-W04; silenced (\\#1 until 2023-02-06" in alerts_w05
    assert "| 1 | Hama | 2023-02-06 | known offensive, tracked by the desk | test |" in alerts_w05


def test_a_source_that_stops_reporting_holds_its_series_while_the_others_go_on(tmp_path):
    """No data is not zero, per source: a week without the 'cep' file holds cep's series; 'acme' is judged."""
    server = SmtpServer().start()
    try:
        config = _config(tmp_path, server.port)
        raw_series = [
            {"name": name, "group_by": ["admin1"], "rollup": False, "min_events": 0, "detector": "trendfinder",
             "filters": {"source": [name]}}
            for name in ("cep", "acme")
        ]  # fmt: skip
        config = config.model_copy(update={"series": [type(config.series[0]).model_validate(s) for s in raw_series]})
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        (tmp_path / "reports").mkdir()

        def write(path, rows):
            with open(path, "w", newline="", encoding="utf-8") as handle:
                out = csv.writer(handle)
                out.writerow(["week_start", "admin1", "count", "source"])
                out.writerows(rows)

        write(inbox / "history.csv", [((HISTORY_START + timedelta(weeks=i)).isoformat(), "Homs", 20, s)
                                      for i in range(53) for s in ("cep", "acme")])  # fmt: skip
        with Store(config.db_path) as store:
            run_weekly(config, store, week=WEEKS[0], now=_monday_after(WEEKS[0]))
            write(inbox / "w02-acme.csv", [(WEEKS[1].isoformat(), "Homs", 40, "acme")])  # cep sent nothing
            run_weekly(config, store, week=WEEKS[1], now=_monday_after(WEEKS[1]))
            events = {e["series"]: e["event"] for e in store.alert_events("2023-W02")}
            report = (tmp_path / "reports" / "2023-W02" / "report.md").read_text(encoding="utf-8")
    finally:
        server.stop()
    assert events == {"acme/admin1=Homs": "new", "cep/admin1=Homs": "held"}
    # the duty officer, about acme's Homs only (the Syria desk follows series named Syria; these have no country)
    assert [(r, str(m["Subject"]).strip()) for r, m in server.inbox.messages] == [
        ([DUTY], "[incident-monitor] 2023-W02: 1 new surge (Homs)")
    ]
    assert "No data this week" not in report  # acme's data reaches the week


def test_a_week_whose_data_came_late_is_judged_when_run_again(timeline):
    """W02's file arrives after the W02 run: that run holds everything (status no-data); the re-run announces Homs.
    A week run after a later one is reported but its alerts are not evaluated, and the report says so."""
    config, server, folder = timeline
    server.start()
    with Store(config.db_path) as store:
        _write_counts(folder / "inbox" / "w01.csv", [(WEEKS[0], a, 20) for a in COUNTS])
        run_weekly(config, store, week=WEEKS[0], now=_monday_after(WEEKS[0]))
        held = run_weekly(config, store, week=WEEKS[1], now=_monday_after(WEEKS[1]))  # the W02 file is late
        _write_counts(folder / "inbox" / "w02.csv", [(WEEKS[1], "Homs", 40), (WEEKS[1], "Hama", 20), (WEEKS[1], "Aleppo", 20)])
        rerun = run_weekly(config, store, week=WEEKS[1], now=_monday_after(WEEKS[1]) + timedelta(days=1))
        statuses = [r["status"] for r in store.runs()]
        # then W04 runs before anybody runs W03: W03's alerts cannot be evaluated any more
        _write_counts(folder / "inbox" / "w03.csv", [(WEEKS[2], a, 20) for a in COUNTS])
        _write_counts(folder / "inbox" / "w04.csv", [(WEEKS[3], a, 20) for a in COUNTS])
        run_weekly(config, store, week=WEEKS[3], now=_monday_after(WEEKS[3]))
        late = run_weekly(config, store, week=WEEKS[2], now=_monday_after(WEEKS[3]))
    assert held.delivered == () and statuses == ["ok", "no-data", "ok"]
    assert [d["subject"] for d in rerun.delivered] == ["[incident-monitor] 2023-W02: 1 new surge (Homs)"] * 2
    assert any("Alerts were not evaluated for 2023-W03" in n and "2023-W04" in n for n in late.result.notes)


def test_a_week_run_again_reports_what_its_first_run_decided(timeline):
    """Running a week again (after a crash once its alert states were committed, or by hand) changes no
    state and sends nothing, and rewrites the same report: the resolution of W07 and the silence holding
    back Hama's new alert in W04 are still in it, although the re-run itself decided nothing."""
    config, server, folder = timeline
    server.start()
    with Store(config.db_path) as store:
        for i, week in enumerate(WEEKS[:7]):
            label = f"2023-W{i + 1:02d}"
            _write_counts(folder / "inbox" / f"{label}.csv", [(week, a, COUNTS[a][i]) for a in COUNTS])
            if label == "2023-W04":
                store.add_silence(filter="Hama", until=date(2023, 2, 6), comment="known offensive", author="test",
                                  now=_monday_after(week))  # fmt: skip
            run_weekly(config, store, week=week, now=_monday_after(week))
            report = folder / "reports" / label / "report.md"
            first, states, sent = report.read_bytes(), store.alert_states(), len(server.inbox.messages)
            again = run_weekly(config, store, week=week, now=_monday_after(week))
            assert again.delivered == () and len(server.inbox.messages) == sent and store.alert_states() == states
            assert report.read_bytes().decode() == first.decode(), f"{label}: the re-run rewrote the report differently"
            if label == "2023-W04":
                assert "firing (alert) since 2023-W04; silenced (\\#1 until 2023-02-06" in first.decode()
            if label == "2023-W07":
                assert "| IS attacks — Syria · Homs | resolved (flagged 2023-W02 to 2023-W06) |" in first.decode()
