"""Emergences as alerts (issue 16, item 2): new actors, new places and more actors than ever are announced
once to the routes that take them, through a real SMTP server (aiosmtpd on 127.0.0.1), never twice on a
re-run or in the following weeks, not when switched off, not when silenced; and on real data (UCDP GED
Syria, Operation Peace Spring, October 2019)."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_revisions import ACLED_HEADER, acled_row, write_csv

from monitor.alerts.emergence import advance, emergence_key, unannounce
from monitor.cli import cli
from monitor.config import load_config
from monitor.emerging import Emergence
from monitor.errors import ConfigError
from monitor.pipeline import run_weekly
from monitor.store import Store
from monitor.types import EmergenceState
from tests.smtp_server import SmtpServer

W06 = date(2023, 2, 6)  # the week the new actor and the new place appear
W07 = date(2023, 2, 13)
NOW = datetime(2023, 2, 22, 6, 0, tzinfo=timezone.utc)
HOMS_ACTOR = "emergence/kind=new-actor|country=Syria|admin1=Homs|actor=liwa fatemiyoun"
HOMS_PLACE = "emergence/kind=new-place|country=Syria|admin1=Homs|admin2=Sukhnah"
HOMS_MORE = "emergence/kind=more-actors|country=Syria|admin1=Homs"
HAMA_ACTOR = "emergence/kind=new-actor|country=Syria|admin1=Hama|actor=islamic state"
HAMA_MORE = "emergence/kind=more-actors|country=Syria|admin1=Hama"


# ---- the lifecycle (pure) --------------------------------------------------------------------------------


def _em(kind: str, admin1: str, what: str, key: str = "", actors: int = 0, country: str = "Syria") -> Emergence:
    return Emergence(kind, admin1, what, 1, f"{what} in {admin1}", country=country, key=key, actors=actors)


def test_keys_name_the_kind_place_and_normalised_actor_never_the_week():
    assert emergence_key(_em("new actor", "Homs", "Islamic State (Syria)", "islamic state")) == (
        "emergence/kind=new-actor|country=Syria|admin1=Homs|actor=islamic state")
    assert emergence_key(_em("new place", "Homs", "Sukhnah", "Sukhnah")) == HOMS_PLACE
    assert emergence_key(_em("more actors", "Homs", "3 actors", actors=3)) == HOMS_MORE
    # admin1 names repeat across countries, and label values are escaped as in series keys
    assert emergence_key(_em("more actors", "Homs", "3 actors", country="Lebanon")) != HOMS_MORE
    assert emergence_key(_em("new place", "A|admin2=B", "C", "C")) == "emergence/kind=new-place|country=Syria|admin1=A%7Cadmin2%3DB|admin2=C"


def test_an_emergence_is_new_once_then_again_then_expires_after_the_window():
    actor = _em("new actor", "Homs", "Liwa Fatemiyoun", "liwa fatemiyoun")
    (first,) = advance([actor], {}, week="2023-W06", index=100, weeks=52)
    assert (first.key, first.event, first.after.state, first.after.announced_week) == (HOMS_ACTOR, "new", "open", "2023-W06")
    states = {first.key: first.after}
    assert advance([actor], states, week="2023-W06", index=100, weeks=52) == []  # a re-run of the week: nothing
    (again,) = advance([actor], states, week="2023-W09", index=103, weeks=52)  # flagged again (a deleted event back)
    assert again.event == "again" and again.after.last_week == "2023-W09" and again.after.announced_week == "2023-W06"
    states = {first.key: again.after}
    assert advance([], states, week="2024-W10", index=103 + 52, weeks=52) == []  # 52 weeks after: still remembered
    (expired,) = advance([], states, week="2024-W11", index=103 + 53, weeks=52)
    assert expired.event == "expired" and expired.after.state == "closed"
    (back,) = advance([actor], {first.key: expired.after}, week="2024-W12", index=103 + 54, weeks=52)
    assert back.event == "new" and back.after.first_week == "2024-W12"  # absent a whole window: news again


def test_more_actors_escalates_only_above_the_count_announced():
    three, four = _em("more actors", "Hama", "3 actors", actors=3), _em("more actors", "Hama", "4 actors", actors=4)
    (first,) = advance([three], {}, week="2019-W41", index=10, weeks=52)
    (up,) = advance([four], {first.key: first.after}, week="2019-W42", index=11, weeks=52)
    assert (up.event, up.after.announced_actors, up.after.announced_week) == ("escalated", 4, "2019-W42")
    (same,) = advance([three], {first.key: first.after}, week="2019-W42", index=11, weeks=52)
    assert same.event == "again"
    # never sent (silenced): the escalation is the first the team hears of it
    quiet = unannounce(first)
    assert quiet.announced_index == -1 and quiet.state == "open"
    (heard,) = advance([four], {first.key: quiet}, week="2019-W42", index=11, weeks=52)
    assert heard.event == "new"


def test_bad_alert_kinds_are_refused_naming_the_key_and_the_choices(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[alerts]\nroutes = [{ name = "x", recipients = ["x@example.org"], kinds = ["emergences"] }]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alerts\.routes\[0\]\.kinds\[0\] = 'emergences': expected 'surge', 'emergence', "
                                          r"'new-actor', 'new-place' or 'more-actors'"):  # fmt: skip
        load_config(path)
    path.write_text("[alerts]\nkinds = []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alerts\.kinds"):
        load_config(path)
    path.write_text('[emerging]\nalerts = "no"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"emerging\.alerts: expected true or false"):
        load_config(path)


# ---- the weekly run, through a real SMTP server ------------------------------------------------------------


def _row(n: int, day: date, admin1: str, admin2: str, actor1: str, actor2: str) -> dict:
    row = acled_row(f"SYR{n}", event_date=day.isoformat(), fatalities=1, timestamp="1675000000")
    row.update(admin1=admin1, admin2=admin2, location=admin2, actor1=actor1, actor2=actor2)
    return row


def _incidents(path: Path) -> Path:
    """A year and more of one weekly event in Homs (IS against the army, in Tadmor) and one in Hama (the army against
    the NDF, in Salamiyeh); in 2023-W06 Liwa Fatemiyoun attacks in Sukhnah (Homs), in 2023-W07 again, and 'ISIS' (the
    Islamic State, as another source writes it) fights the NDF in Hama, where it never was."""
    army, ndf = "Military Forces of Syria (2000-)", "NDF: National Defence Forces"
    rows, n = [], 0
    for k in range(-70, 2):
        day = W06 + timedelta(weeks=k, days=2)
        rows += [_row(n, day, "Homs", "Tadmor", "Islamic State (Syria)", army), _row(n + 1, day, "Hama", "Salamiyeh", army, ndf)]
        n += 2
    rows.append(_row(n, W06 + timedelta(days=3), "Homs", "Sukhnah", "Liwa Fatemiyoun", "Civilians (Syria)"))
    rows.append(_row(n + 1, W07 + timedelta(days=3), "Homs", "Sukhnah", "Liwa Fatemiyoun", "Civilians (Syria)"))
    rows.append(_row(n + 2, W07 + timedelta(days=4), "Hama", "Salamiyeh", "ISIS", ndf))
    return write_csv(path, ACLED_HEADER, rows)


ROUTES = """routes = [
    { name = "surges-only", recipients = ["duty@example.org"] },
    { name = "actors", recipients = ["actors@example.org"], kinds = ["new-actor"] },
    { name = "hama", recipients = ["hama@example.org"], series = "Hama", kinds = ["surge", "emergence"] },
]
"""


def _config(tmp_path: Path, port: int, extra: str = ""):
    (tmp_path / "inbox").mkdir(exist_ok=True)
    _incidents(tmp_path / "inbox" / "acled.csv")
    path = tmp_path / "monitor.toml"
    path.write_text(
        '[database]\npath = "m.db"\n[ingest]\ninbox = ["inbox"]\n[report]\nfolder = "reports"\n'
        '[[series]]\nname = "violence"\ngroup_by = ["admin1"]\n'
        f'{extra}\n[alerts]\nrecipients = ["watch@example.org"]\nsender = "monitor@example.org"\n{ROUTES}'
        f'[alerts.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n',
        encoding="utf-8",
    )  # fmt: skip
    return path


def _text(message) -> str:
    return next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content().replace("\r\n", "\n")


def _by_address(server: SmtpServer) -> dict[str, list]:
    out: dict[str, list] = {}
    for recipients, message in server.inbox.messages:
        for r in recipients:
            out.setdefault(r, []).append(message)
    return out


@pytest.fixture
def server():
    smtp = SmtpServer().start()
    yield smtp
    smtp.stop()


def test_emergences_reach_the_routes_that_take_them_once(tmp_path, server):
    config = load_config(_config(tmp_path, server.port))
    with Store(config.db_path) as store:
        first = run_weekly(config, store, week=W06, now=NOW)
        assert first.exit_code == 0 and not first.result.flagged  # no surge: what goes out is the emergences
        week6 = _by_address(server)
        rerun = run_weekly(config, store, week=W06, now=NOW)  # the same week again: nothing is sent twice
        assert rerun.queued == 0 and len(server.inbox.messages) == len(first.delivered)
        second = run_weekly(config, store, week=W07, now=NOW)
        states = store.emergence_states()
        events = {(e["week"], e["series"]): e for e in store.alert_events()}
    assert set(week6) == {"watch@example.org", "actors@example.org"}  # no surge for duty, nothing in Hama yet
    (watch,) = week6["watch@example.org"]
    assert watch["Subject"] == "[incident-monitor] 2023-W06: 1 new actor (Homs), 1 new place (Homs), more actors in 1 admin1 (Homs)"
    text = _text(watch)
    section = text.split("NEW ACTORS AND PLACES (3)\n")[1].split("Report:")[0]
    assert "in the 52 weeks before" in section and "IS, ISIS, ISIL, Daesh = Islamic State" in section  # the rule, stated
    assert "  New actors (1)\n  - Liwa Fatemiyoun: 1 violent event(s) in Homs this week, its first there in 52 weeks\n" in section
    assert "  New places (1)\n  - Sukhnah (Homs): 1 event(s) this week, the first there in 52 weeks\n" in section
    assert "  More armed actors than ever (1)\n  - Homs: 3 distinct armed actors violent this week" in section
    assert f"silence: monitor silence add --series 'key:{HOMS_ACTOR}' --until" in section
    (actors,) = week6["actors@example.org"]  # kinds = ["new-actor"]: the new actor only
    assert "Liwa Fatemiyoun" in _text(actors) and "Sukhnah (Homs)" not in _text(actors) and "More armed" not in _text(actors)
    html = next(p for p in watch.walk() if p.get_content_type() == "text/html").get_content()
    assert "<h3>New actors and places (3)</h3>" in html and "<table" not in html  # no surge table for emergences only

    week7 = _by_address(server)
    assert len(week7["watch@example.org"]) == 2 and len(week7["actors@example.org"]) == 2
    (hama,) = week7["hama@example.org"]  # its series filter: Hama's emergences, not Homs'
    assert "duty@example.org" not in week7  # a route without "emergence" in kinds gets none
    watch7 = _text(week7["watch@example.org"][1])
    assert "ISIS: 1 violent event(s) in Hama this week" in watch7 and "Hama: 3 distinct armed actors" in watch7
    assert "Liwa Fatemiyoun" not in watch7  # announced in W06, not again
    assert "Homs" not in _text(hama) and "ISIS" in _text(hama)
    assert set(states) == {HOMS_ACTOR, HOMS_PLACE, HOMS_MORE, HAMA_ACTOR, HAMA_MORE}
    assert states[HOMS_ACTOR].announced_week == "2023-W06" and states[HOMS_ACTOR].state == "open"
    assert events[("2023-W06", HOMS_ACTOR)]["event"] == "new" and ("2023-W07", HOMS_ACTOR) not in events


def test_switched_off_emergences_are_in_the_report_only(tmp_path, server):
    config = load_config(_config(tmp_path, server.port, extra="[emerging]\nalerts = false\n"))
    with Store(config.db_path) as store:
        outcome = run_weekly(config, store, week=W06, now=NOW)
        assert store.emergence_states() == {}
    assert outcome.exit_code == 0 and server.inbox.messages == []
    assert {e.kind for e in outcome.result.emerging} == {"new actor", "new place", "more actors"}
    assert "Liwa Fatemiyoun" in outcome.files.markdown.read_text(encoding="utf-8")


def test_silences_hold_emergences_back_by_admin1_and_by_actor(tmp_path, server):
    path = _config(tmp_path, server.port)
    config = load_config(path)
    env = {"MONITOR_NOW": NOW.isoformat()}
    with Store(config.db_path) as store:
        run_weekly(config, store, week=W06 - timedelta(weeks=1), now=NOW)  # nothing new: the data is in the database
        assert server.inbox.messages == []
    result = CliRunner().invoke(cli, ["--config", str(path), "silence", "add", "--series", "Homs", "--until", "2023-03-31",
                                      "--comment", "known offensive"], env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    with Store(config.db_path) as store:
        store.add_silence(filter="ISIS", until=date(2023, 3, 31), comment="known cell", author="t", now=NOW)
        run_weekly(config, store, week=W06, now=NOW)
        assert server.inbox.messages == []  # the week's three emergences are all in Homs
        events = {e["series"]: e for e in store.alert_events("2023-W06")}
        assert events[HOMS_ACTOR]["detail"] == "not sent: silenced by #1"
        assert store.emergence_states()[HOMS_ACTOR].announced_week == ""
        run_weekly(config, store, week=W07, now=NOW)
    # W07: the actor silenced by name ('ISIS', the name as the data writes it) is held back; Hama's count is not
    texts = {tuple(to): _text(m) for to, m in server.inbox.messages}
    assert set(texts) == {("watch@example.org",), ("hama@example.org",)}, texts
    assert all("ISIS:" not in t and "Liwa" not in t and "Hama: 3 distinct armed actors" in t for t in texts.values())
    # an emergence alert once stored can be silenced by its key, as the digest prints the command
    result = CliRunner().invoke(cli, ["--config", str(path), "silence", "add", "--series", f"key:{HAMA_MORE}", "--until",
                                      "2023-03-31", "--comment", "seen"], env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(cli, ["--config", str(path), "alerts", "list"], env=env)
    assert "emergence alerts open" in listed.output and "Liwa Fatemiyoun" in listed.output and "not sent" in listed.output


def test_emergences_of_a_real_week_become_alerts(shared_data, tmp_path, server):
    """UCDP GED Syria, 2019-W41, the week Turkey and the Syrian National Army (SNA) entered north-east Syria
    (Operation Peace Spring): the SNA is violent in Al Hasakeh and Ar Raqqa for the first time in a year, Ras al Ayn
    district has its first event, and both governorates see more armed actors than in any week of the year before;
    the next week Al Hasakeh's count rises again (an escalation), and re-running 2019-W41 sends nothing."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ged.csv").symlink_to(shared_data / "ucdp_ged_syria_2016-01-01_2019-11-30.csv")
    path = tmp_path / "monitor.toml"
    path.write_text('[database]\npath = "m.db"\n[ingest]\ninbox = ["inbox"]\n[report]\nfolder = "reports"\n'
                    '[[series]]\nname = "violence"\ngroup_by = ["admin1"]\nrollup = false\n'
                    '[alerts]\nrecipients = ["watch@example.org"]\nsender = "monitor@example.org"\n'
                    f'[alerts.smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\ntimeout = 5\n', encoding="utf-8")  # fmt: skip
    config = load_config(path)
    now = datetime(2019, 12, 2, 6, 0, tzinfo=timezone.utc)
    with Store(config.db_path) as store:
        w41 = run_weekly(config, store, week=date(2019, 10, 7), now=now)
        w42 = run_weekly(config, store, week=date(2019, 10, 14), now=now)
        again = run_weekly(config, store, week=date(2019, 10, 7), now=now)
        states = store.emergence_states()
    assert len(w41.result.emerging) == 9 and again.queued == 0
    first, second = (_text(m) for _, m in server.inbox.messages)
    assert len(server.inbox.messages) == 2
    section = first.split("NEW ACTORS AND PLACES (9)\n")[1]
    for line in ("- SNA: 23 violent event(s) in Al Hasakeh this week", "- SNA: 12 violent event(s) in Ar Raqqa this week",
                 "- Ras al Ayn district (Al Hasakeh): 16 event(s) this week", "- Al Malikiyah district (Al Hasakeh)",
                 "- Al Hasakeh: 3 distinct armed actors", "- Ar Raqqa: 4 distinct armed actors", "- al-Bakkara clan: 1 violent"):
        assert line in section, section
    assert {k for k in states if "actor=sna" in k} == {
        "emergence/kind=new-actor|country=Syria|admin1=Al Hasakeh|actor=sna",
        "emergence/kind=new-actor|country=Syria|admin1=Ar Raqqa|actor=sna",
    }
    assert "Al Hasakeh: 4 distinct armed actors" in second and "up from 3 announced in 2019-W41 [escalated]" in second
    assert "SNA: 23 violent" not in second and "NEW ACTORS AND PLACES (3)" in second  # announced the week before
    assert states["emergence/kind=more-actors|country=Syria|admin1=Al Hasakeh"].announced_actors == 4
    assert len(w42.delivered) == 1
    with sqlite3.connect(config.db_path) as conn:  # the outbox lists the emergence keys each message announced
        series = [row[0] for row in conn.execute("SELECT series FROM outbox ORDER BY id")]
    assert "actor=sna" in series[0] and "actor=sna" not in series[1]
