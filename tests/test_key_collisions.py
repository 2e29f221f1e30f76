"""Labels that look like keys no longer share one (issue 12, item 7): a label value holding `|` or `=` is
escaped in its series key, so two different label tuples are two series with their own detections, alert
states and outbox lines; migration 0008 rewrites keys stored before (real database, real CLI)."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shlex
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers_incidents import write_incidents
from monitor.cli import cli
from monitor.series import escape_label, legacy_key_readings, parse_key, series_key, unescape_label
from monitor.store import MIGRATIONS, SCHEMA_VERSION, Store
from monitor.types import DIMENSIONS

NOW = "2023-03-06T06:00:00+00:00"  # the Monday after WEEK
WEEK = "2023-W08"
#: two label tuples whose unescaped keys were both `pv/country=Syria|admin1=Homs|admin1=Hama`
SURGING = (("country", "Syria"), ("admin1", "Homs|admin1=Hama"))
QUIET = (("country", "Syria|admin1=Homs"), ("admin1", "Hama"))
OLD_KEY = "pv/country=Syria|admin1=Homs|admin1=Hama"
SURGING_KEY = "pv/country=Syria|admin1=Homs%7Cadmin1%3DHama"
QUIET_KEY = "pv/country=Syria%7Cadmin1%3DHoms|admin1=Hama"
CONFIG = """
[database]
path = "m.db"
[ingest]
inbox = ["inbox"]
[report]
folder = "reports"
[[series]]
name = "pv"
group_by = ["country", "admin1"]
rollup = false
detector = "acled-surge"
[alerts]
recipients = ["desk@example.org"]
sender = "incident-monitor@example.org"
"""


def invoke(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args], env={"MONITOR_NOW": NOW})


@pytest.mark.parametrize(
    ("labels", "key"),
    [
        ((("admin1", "Homs"),), "pv/admin1=Homs"),  # ordinary labels: the key of every earlier version
        ((("admin1", "Deir ez Zor"), ("actor", "IS / ISIL (Syria)")), "pv/admin1=Deir ez Zor|actor=IS / ISIL (Syria)"),
        ((), "pv/total"),
        (SURGING, SURGING_KEY),
        (QUIET, QUIET_KEY),
        ((("admin1", "A=B"),), "pv/admin1=A%3DB"),
        ((("admin1", "100% sure %7C"),), "pv/admin1=100%25 sure %257C"),
    ],
)
def test_series_keys_escape_what_would_make_them_ambiguous(labels, key):
    assert series_key("pv", labels) == key
    assert parse_key(key) == ("pv", labels)
    assert all(unescape_label(escape_label(v)) == v for _, v in labels)


def test_two_label_tuples_that_shared_a_key_are_two_series_and_the_surge_is_alerted(tmp_path):
    write_incidents(tmp_path / "inbox" / "a.csv", ["Homs|admin1=Hama"], prefix="A", surge=("Homs|admin1=Hama",),
                    country="Syria")  # fmt: skip
    write_incidents(tmp_path / "inbox" / "b.csv", ["Hama"], prefix="B", country="Syria|admin1=Homs")
    config = tmp_path / "monitor.toml"
    config.write_text(CONFIG, encoding="utf-8")
    run = invoke(config, "run", "--week", WEEK)
    assert run.exit_code == 0, run.output

    with sqlite3.connect(tmp_path / "m.db") as conn:
        detections = dict(conn.execute("SELECT series, alarm FROM detections WHERE week = ?", [WEEK]).fetchall())
        states = dict(conn.execute("SELECT series, state FROM alert_states").fetchall())
        outbox = [json.loads(s) for (s,) in conn.execute("SELECT series FROM outbox")]
    assert detections == {SURGING_KEY: 1, QUIET_KEY: 0}
    assert set(states) <= {SURGING_KEY, QUIET_KEY} and states[SURGING_KEY] != states.get(QUIET_KEY)
    assert [SURGING_KEY] in outbox and not any(QUIET_KEY in listed for listed in outbox)
    summary = json.loads((tmp_path / "reports" / WEEK / "summary.json").read_text(encoding="utf-8"))
    assert summary["series_checked"] == 2 and summary["flagged"] == [SURGING_KEY]

    # the digest's check command names the escaped key, and `check` finds exactly that series
    [eml] = (tmp_path / "reports" / WEEK).glob("digest-*.eml")
    text = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default).get_body(("plain",)).get_content()
    printed = re.findall(r"^ {4}(?:silence|check): +(monitor .+)$", text, flags=re.M)
    assert len(printed) == 2 and all(shlex.split(c)[shlex.split(c).index("--series") + 1] == f"key:{SURGING_KEY}" for c in printed)
    for key, code in ((SURGING_KEY, 3), (QUIET_KEY, 0)):
        check = invoke(config, "check", "--week", WEEK, "--series", f"key:{key}", "--format", "csv")
        assert check.exit_code == code, check.output
        assert [r.split(",")[0] for r in check.stdout.splitlines()[1:]] == [key]
    # the old, ambiguous spelling names neither series, and the error names both as they are spelled now
    old = invoke(config, "check", "--week", WEEK, "--series", f"key:{OLD_KEY}")
    assert old.exit_code == 1 and "no series matches" in old.stderr
    assert f"'key:{SURGING_KEY}'" in old.stderr and f"'key:{QUIET_KEY}'" in old.stderr

    silence = invoke(config, "silence", "add", "--series", f"key:{QUIET_KEY}", "--until", "2023-04-30",
                     "--comment", "c", "--author", "t")  # fmt: skip
    assert silence.exit_code == 0, silence.output
    with sqlite3.connect(tmp_path / "m.db") as conn:
        assert [f for (f,) in conn.execute("SELECT filter FROM silences")] == [f"key:{QUIET_KEY}"]


def test_old_keys_read_every_way_their_labels_allow():
    assert legacy_key_readings("pv/total", DIMENSIONS) == [()]
    assert legacy_key_readings("pv/admin1=A=B", DIMENSIONS) == [(("admin1", "A=B"),)]
    assert legacy_key_readings("pv/admin1=A|B", DIMENSIONS) == [(("admin1", "A|B"),)]
    assert sorted(legacy_key_readings(OLD_KEY, DIMENSIONS)) == sorted([SURGING, QUIET, (("country", "Syria|admin1=Homs|admin1=Hama"),)])


def _version_7_database(path: Path, *, admin1: list[str], country: list[str]) -> None:
    """A database as the code before migration 0008 left it: raw label values in its keys."""
    conn = sqlite3.connect(path)
    for _, statements in MIGRATIONS[:7]:
        for sql in statements:
            conn.execute(sql)
    conn.execute("PRAGMA user_version = 7")
    for i, (c, a) in enumerate(zip(country, admin1)):
        conn.execute("INSERT INTO incidents (source, source_id, event_date, date_end, country, admin1) VALUES"
                     " ('acled', ?, '2023-02-20', '2023-02-20', ?, ?)", [f"x{i}", c, a])  # fmt: skip
    keys = ["pv/admin1=A=B", "pv/admin1=50%", "pv/country=Syria|admin1=Aleppo", "pv/total", OLD_KEY]
    for key in keys:
        conn.execute("INSERT INTO detections (week, series, week_start, alarm, detector) VALUES (?, ?, '2023-02-20', 1, 'x')",
                     [WEEK, key])  # fmt: skip
        conn.execute("INSERT INTO alert_events (week, series, event, state, severity) VALUES (?, ?, 'new', 'open', 'alert')",
                     [WEEK, key])  # fmt: skip
        conn.execute("INSERT INTO announcements (week, series, channel, message_id, sent_at) VALUES (?, ?, 'email', 'm', 'now')",
                     [WEEK, key])  # fmt: skip
        conn.execute("INSERT INTO silences (filter, until, comment, author, created_at) VALUES (?, '2023-04-30', '', '', 'now')",
                     [f"key:{key}"])  # fmt: skip
    conn.execute("INSERT INTO silences (filter, until, comment, author, created_at) VALUES ('A=B', '2023-04-30', '', '', 'now')")
    conn.execute("INSERT INTO outbox (week, route, recipients, subject, message_id, message, series, created_at)"
                 " VALUES (?, 'desk', '[]', 's', 'm', x'00', ?, 'now')", [WEEK, json.dumps(keys)])  # fmt: skip
    conn.execute("INSERT INTO alert_states VALUES (?, 'open', 'alert', 1, ?, 1, 0, ?, 0, 'alert', 1, ?, 0)",
                 [OLD_KEY, WEEK, WEEK, WEEK])  # fmt: skip
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("country", "admin1", "migrated"),
    [
        # only the surging tuple's values are in the data: the old key can only have been its
        (["Syria", "Syria"], ["Homs|admin1=Hama", "A=B"], SURGING_KEY),
        # both tuples are in the data: their rows were shared, so they stay under the old key
        (["Syria", "Syria|admin1=Homs"], ["Homs|admin1=Hama", "Hama"], OLD_KEY),
    ],
)
def test_migration_0008_rewrites_the_keys_that_read_one_way(tmp_path, country, admin1, migrated):
    path = tmp_path / "m.db"
    _version_7_database(path, admin1=admin1, country=country)
    with Store(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        # every migration after schema 7 ran, the key rewrite first
        applied = [r["name"] for r in store.db.query("SELECT name FROM migrations ORDER BY version")]
        assert applied == [name for name, _ in MIGRATIONS[7:]] and applied[0] == "0008_escaped_series_keys"
        expected = ["pv/admin1=A%3DB", "pv/admin1=50%25", "pv/country=Syria|admin1=Aleppo", "pv/total", migrated]
        for table in ("detections", "alert_events", "announcements"):
            assert sorted(k for (k,) in store.db.execute(f"SELECT series FROM {table}")) == sorted(expected), table
        assert [row["series"] for row in store.outbox()] == [expected]
        assert list(store.alert_states()) == [migrated]
        assert sorted(s["filter"] for s in store.silences()) == sorted(["A=B", *(f"key:{k}" for k in expected)])
