"""Secrets and safety (issue 5): the SMTP password's sources, that it is never written anywhere, SQL with
parameters only, and no shell."""

from __future__ import annotations

import ast
import base64
import html
import json
import os
import sqlite3
import traceback
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import load_config
from monitor.errors import ConfigError
from tests.fork_server import ForkServer
from tests.helpers_incidents import write_incidents
from tests.smtp_server import Inbox, free_port

ROOT = Path(__file__).resolve().parents[1]
NOW = "2023-03-06T06:00:00+00:00"
WEEK = "2023-W08"
SECRET = "hunter2-Zq9'%\"x;"
#: A second password, with characters smtplib cannot send (it would quote one in its error).
NON_ASCII = "Sécret-ü-7Kq"


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.write_text(text, encoding="utf-8")
    if mode is not None:
        path.chmod(mode)
    return path


# ---- where the password comes from ---------------------------------------------------------------------


def test_password_file_readable_by_its_owner_only_is_read(tmp_path, monkeypatch):
    write(tmp_path / "smtp-password", SECRET + "\n", 0o600)
    config = load_config(write(tmp_path / "m.toml", '[alerts.smtp]\npassword_file = "smtp-password"\n'))  # relative: beside the config
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", "from-the-environment")
    assert config.smtp_password().get_secret_value() == SECRET  # the file, first line, without its newline
    (tmp_path / "smtp-password").chmod(0o400)
    assert config.smtp_password().get_secret_value() == SECRET


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_password_file_others_can_read_is_refused_with_the_fix(tmp_path, mode):
    secret = write(tmp_path / "smtp-password", SECRET + "\n", mode)
    config = load_config(write(tmp_path / "m.toml", f'[alerts.smtp]\npassword_file = "{secret}"\n'))
    with pytest.raises(ConfigError) as caught:
        config.smtp_password()
    assert str(caught.value) == (
        f"{secret}: alerts.smtp.password_file can be read by group or others (mode {mode:04o}); run chmod 600 {secret}"
    )


@pytest.mark.parametrize("case", ["missing", "empty", "folder"])
def test_a_password_file_that_cannot_serve_is_a_one_line_error(tmp_path, case):
    path = tmp_path / "smtp-password"
    if case == "empty":
        write(path, "\n", 0o600)
    elif case == "folder":
        path.mkdir(mode=0o700)
    config = load_config(write(tmp_path / "m.toml", f'[alerts.smtp]\npassword_file = "{path}"\n'))
    expected = {"missing": "does not exist (write the password into it, then chmod 600", "empty": "is empty",
                "folder": "is not a regular file"}[case]  # fmt: skip
    with pytest.raises(ConfigError, match=r"^" + str(path) + ": alerts.smtp.password_file ") as caught:
        config.smtp_password()
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_password_in_the_config_file_is_refused_naming_both_ways(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path / "m.toml", f'[alerts.smtp]\npassword = "{SECRET[:8]}"\n'))
    text = str(caught.value)
    assert "alerts.smtp.password: the password is never read from the config file" in text
    assert "MONITOR_SMTP_PASSWORD (alerts.smtp.password_env)" in text and "(alerts.smtp.password_file, chmod 600)" in text
    assert SECRET[:8] not in text


def test_a_password_typed_into_a_password_key_is_not_echoed(tmp_path):
    """A bad value of password_env or password_file is named, not shown: it may be the password itself."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path / "m.toml", "[alerts.smtp]\npassword_env = 73194285\n"))
    assert "alerts.smtp.password_env" in str(caught.value) and "73194285" not in str(caught.value)


def test_the_password_prints_as_stars(tmp_path, monkeypatch):
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", SECRET)
    config = load_config(write(tmp_path / "m.toml", '[alerts.smtp]\nhost = "x"\nusername = "watch"\n'
                                                    '[alerts]\nrecipients = ["a@example.org"]\n'))  # fmt: skip
    password = config.smtp_password()
    assert password.get_secret_value() == SECRET
    for text in (repr(password), str(password), f"{password}", repr(config), config.model_dump_json(), repr(vars(config))):
        assert SECRET not in text


# ---- the password never leaves the process ------------------------------------------------------------


class Login:
    """aiosmtpd authenticator: records every (user, password) tried; accepts only `accept`."""

    def __init__(self) -> None:
        self.accept = ""
        self.tried: list[tuple[str, str]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.tried.append((user, password))
        return AuthResult(success=(user, password) == ("watch", self.accept), handled=False)


@pytest.fixture
def servers():
    """Two real SMTP servers asking for a login: one over a plain connection, one that requires TLS for it."""
    login, inbox = Login(), Inbox()
    plain = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=login, auth_required=True,
                       auth_require_tls=False)  # fmt: skip
    tls_only = Controller(Inbox(), hostname="127.0.0.1", port=free_port(), authenticator=login, auth_required=True,
                          auth_require_tls=True)  # fmt: skip
    plain.start()
    tls_only.start()
    yield login, inbox, plain.port, tls_only.port
    plain.stop()
    tls_only.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_traceback_showing_local_variables_does_not_show_the_password(tmp_path, servers, monkeypatch):
    """What pytest --showlocals or an error reporter prints: the password stays wrapped until the login itself."""
    from email.message import EmailMessage

    from monitor.alerts.email import deliver
    from monitor.errors import DeliveryError

    login, _, refusing, _ = servers  # login.accept is empty: every login is refused
    message = EmailMessage()
    message["Subject"] = "x"
    message.set_content("x")
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", SECRET)
    for port, problem in ((free_port(), "connection refused"), (refusing, "login refused for user 'watch'")):
        config = load_config(write(tmp_path / "m.toml", f'[alerts.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
                                   'username = "watch"\ntimeout = 5.0\n[alerts]\nrecipients = ["a@example.org"]\n'))  # fmt: skip
        for password in (config.smtp_password, config.smtp_password()):  # as `monitor` passes it, or read already
            with pytest.raises(DeliveryError) as caught:
                deliver(message, settings=config.alerts, password=password, eml_dir=tmp_path)
            shown = "".join(traceback.TracebackException.from_exception(caught.value, capture_locals=True).format())
            assert "in deliver" in shown and problem in shown and "secret = SecretStr('**********')" in shown
            assert _leaks(shown.encode("utf-8"), [SECRET]) == []
    assert {("watch", SECRET)} == set(login.tried)


def forms(secret: str) -> dict[str, bytes]:
    """A secret as it could appear in text: as typed, escaped by repr, JSON or HTML, and in base64 as AUTH LOGIN and
    AUTH PLAIN send it."""
    raw = secret.encode("utf-8")
    return {
        "plain": raw, "repr": repr(secret)[1:-1].encode("utf-8"), "json": json.dumps(secret)[1:-1].encode("utf-8"),
        "json-ascii": json.dumps(secret, ensure_ascii=True)[1:-1].encode("ascii"),
        "html": html.escape(secret).encode("utf-8"), "base64": base64.b64encode(raw),
        "auth-plain": base64.b64encode(b"\0watch\0" + raw),
    }  # fmt: skip


def _leaks(data: bytes, secrets: list[str]) -> list[str]:
    """The forms of each secret found in `data`."""
    return [f"{secret!r} as {name}" for secret in secrets for name, form in forms(secret).items() if form in data]


def test_the_leak_check_finds_each_form():
    for secret in (SECRET, NON_ASCII):
        for name, form in forms(secret).items():
            assert _leaks(b"before " + form + b" after", [secret]), name
        assert _leaks(repr({"summary": json.dumps({"error": secret})}).encode(), [secret]) == []  # escaped twice: not a form


@pytest.fixture
def fork_server():
    """Runs each `monitor` command as a process of its own, forked from one that imported the monitor once
    (tests/fork_server.py): what the process prints is read from its own stdout and stderr, as for
    `python -m monitor`, without paying the interpreter's start-up for every command."""
    server = ForkServer()
    yield server
    server.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # on purpose: the test server has no certificate
def test_the_password_is_never_printed_stored_or_sent_in_the_clear(tmp_path, servers, fork_server):
    login, inbox, port, tls_port = servers
    write_incidents(tmp_path / "inbox" / "acled.csv", ["Homs", "Hama"], prefix="SYR", surge=("Homs",))
    base = ('[database]\npath = "m.db"\n[ingest]\ninbox = ["inbox"]\n[report]\nfolder = "reports"\n'
            '[[series]]\nname = "violence"\ngroup_by = ["admin1"]\ndetector = "acled-surge"\n'
            '[alerts]\nrecipients = ["desk@example.org"]\nsender = "incident-monitor@example.org"\n')  # fmt: skip
    smtp = '[alerts.smtp]\nhost = "127.0.0.1"\nport = {}\nsecurity = "none"\nusername = "watch"\ntimeout = 5.0\n'
    configs = {
        "env": write(tmp_path / "env.toml", base + smtp.format(port)),
        "down": write(tmp_path / "down.toml", base + smtp.format(free_port())),
        "tls-required": write(tmp_path / "tls.toml", base + smtp.format(tls_port)),
        "file": write(tmp_path / "file.toml", base + smtp.format(port) + 'password_file = "smtp-password"\n'),
    }
    password_file = write(tmp_path / "smtp-password", SECRET + "\n", 0o644)  # too open, at first
    outputs: list[str] = []

    def monitor(name: str, *args: str, password: str = SECRET) -> tuple[int, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env.update(MONITOR_NOW=NOW, MONITOR_SMTP_PASSWORD=password)
        done = fork_server.run(["--debug", "--config", str(configs[name]), *args], cwd=ROOT, env=env)
        outputs.append(done.stdout + done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, done.stdout + done.stderr

    login.accept = "not-" + SECRET  # the server expects another password
    code, out = monitor("env", "run", "--week", WEEK)
    assert code == 4 and f"127.0.0.1:{port}: login refused for user 'watch' (535 5.7.8" in out, out
    assert set(login.tried) == {("watch", SECRET)}  # the environment's password was sent (by AUTH PLAIN, then LOGIN)
    code, out = monitor("down", "alerts", "flush")
    assert code == 4 and "connection refused" in out, out
    code, out = monitor("tls-required", "alerts", "flush")
    assert code == 4 and "the server does not offer AUTH (login)" in out, out
    code, out = monitor("env", "alerts", "flush", password=NON_ASCII)
    assert code == 4 and "non-ASCII characters, which smtplib cannot send" in out, out
    code, out = monitor("file", "alerts", "flush")  # the file is 0644: refused, the message stays in the outbox
    assert code == 4 and f"{password_file}: alerts.smtp.password_file can be read by group or others (mode 0644); " \
                         f"run chmod 600 {password_file}" in out, out  # fmt: skip
    for args in (["status"], ["status", "--format", "json"], ["alerts", "list"]):
        assert monitor("env", *args)[0] == 0
    tried = len(login.tried)
    assert inbox.messages == []

    password_file.chmod(0o600)
    login.accept = SECRET
    code, out = monitor("file", "alerts", "flush", password="")  # the file's password, not the environment's
    assert code == 0 and "delivered #1 (default, 2023-W08) via SMTP" in out, out
    assert login.tried[tried:] == [("watch", SECRET)] and len(inbox.messages) == 1  # the only login since the first run

    with sqlite3.connect(tmp_path / "m.db") as conn:
        attempts, error = conn.execute("SELECT attempts, last_error FROM outbox").fetchone()
        assert attempts == 6 and error == ""  # five failures recorded, then sent
        runs = conn.execute("SELECT summary FROM runs").fetchall()
        assert "login refused for user 'watch'" in json.loads(runs[0][0])["error"]
        # every text and blob in the database
        stored = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # names from sqlite_master
                stored += [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in row if v is not None]
    secrets = [SECRET, NON_ASCII]
    assert _leaks(b"\n".join(stored), secrets) == []
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != password_file]
    assert not [p for p in files if p.suffix == ".eml"]  # sent by SMTP: what the server received is checked below
    assert {p.name for p in files} >= {"m.db", "report.md", "summary.json", "index.md", "m.db.lock"}
    for path in files:  # the database file itself (and any -wal), reports, charts, the lock file, the configs
        assert _leaks(path.read_bytes(), secrets) == [], path
    assert _leaks("\n".join(outputs).encode("utf-8"), secrets) == []
    assert _leaks(inbox.messages[0][1].as_bytes(), secrets) == []


# ---- SQL: values are parameters -------------------------------------------------------------------------

PAYLOAD = "Raqqa'); DROP TABLE incidents;--"
PERCENT = "100%_sure"
ACTOR = 'Robert"); DROP TABLE runs; --'
NOTES = "50% of _all_ 'quoted' \"double\" \\ ; DROP TABLE ingests;--"
COMMENT = "'); DROP TABLE silences;--"


def _invoke(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args], env={"MONITOR_NOW": NOW})


def _checked(config: Path, series: str) -> list[str]:
    result = _invoke(config, "check", "--week", WEEK, "--series", series, "--format", "json")
    assert result.exit_code in (0, 3), result.output
    return sorted(r["series"] for r in json.loads(result.stdout))


def test_injection_payloads_are_stored_and_matched_literally(tmp_path):
    data = tmp_path / "inbox" / "acled.csv"
    n = write_incidents(data, ["Homs", PAYLOAD, PERCENT], prefix="ID'; DROP TABLE counts;--", surge=("Homs", PERCENT),
                        actor1=ACTOR, notes=NOTES)  # fmt: skip
    config = write(tmp_path / "m.toml", '[database]\npath = "m.db"\n[ingest]\ninbox = ["inbox"]\n[report]\nfolder = "reports"\n'
                   '[[series]]\nname = "violence"\ngroup_by = ["admin1"]\ndetector = "acled-surge"\n'
                   '[alerts]\nrecipients = ["desk@example.org"]\n')  # fmt: skip
    db = tmp_path / "m.db"
    result = _invoke(config, "ingest", str(data))
    assert result.exit_code == 0 and f"{n} inserted" in result.output, result.output
    tables = {"ingests", "incidents", "counts", "rejects", "detections", "announcements", "runs", "alert_states",
              "alert_events", "outbox", "silences", "migrations", "backtests", "incident_history", "fetches",
              "emergence_alerts"}  # fmt: skip
    with sqlite3.connect(db) as conn:
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == tables
        assert set(conn.execute("SELECT DISTINCT admin1, actor1, notes FROM incidents")) == {
            (place, ACTOR, NOTES) for place in ("Homs", PAYLOAD, PERCENT)
        }
        prefix = "ID'; DROP TABLE counts;--"
        assert conn.execute("SELECT count(*) FROM incidents WHERE substr(source_id, 1, ?) = ?", [len(prefix), prefix]).fetchone() == (n,)

    from monitor.series import escape_label  # '%' in a label is escaped in its key (issue 12, item 7)

    # series filters are text: '%' and '_' match themselves, not everything
    assert _checked(config, "%") == _checked(config, "_") == [f"violence/admin1={escape_label(PERCENT)}"]
    assert _checked(config, "'); DROP TABLE incidents;--") == [f"violence/admin1={PAYLOAD}"]
    assert len(_checked(config, "violence")) == 4  # three places and the total

    # a silence whose filter is '%' silences the one series with a '%' in its name
    result = _invoke(config, "silence", "add", "--series", "%", "--until", "2999-12-31", "--comment", COMMENT,
                     "--author", "o'brien_%")  # fmt: skip
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT filter, comment, author FROM silences").fetchall() == [("%", COMMENT, "o'brien_%")]
    listed = _invoke(config, "silence", "list")
    assert COMMENT in listed.output and "o'brien_%" in listed.output
    result = _invoke(config, "run", "--week", WEEK)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as conn:
        flagged = {s for (s,) in conn.execute("SELECT series FROM detections WHERE alarm = 1")}
        (emailed,) = [json.loads(s) for (s,) in conn.execute("SELECT series FROM outbox")]
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == tables
        assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == n
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert {"violence/admin1=Homs", f"violence/admin1={escape_label(PERCENT)}"} <= flagged  # both surged ...
    assert "violence/admin1=Homs" in emailed and f"violence/admin1={escape_label(PERCENT)}" not in emailed  # ... one was silenced


# ---- no shell ---------------------------------------------------------------------------------------------

#: Calls that hand a command line to a shell (or replace the process with one built from text).
SHELL_CALLS = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput", "os.execl", "os.execlp",
               "os.execle", "os.execlpe", "os.execv", "os.execvp", "os.execve", "os.execvpe", "os.spawnl", "os.spawnlp",
               "os.spawnv", "os.spawnvp", "os.posix_spawn", "os.posix_spawnp", "pty.spawn"}  # fmt: skip


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def shell_uses(source: str, name: str = "<source>") -> list[str]:
    """Every shell=... other than False, every call or import of SHELL_CALLS, in Python source."""
    found = []
    if "shell=True" in source.replace(" ", ""):
        found.append(f"{name}: shell=True")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            called = _dotted(node.func)
            if called in SHELL_CALLS:
                found.append(f"{name}:{node.lineno}: {called}")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(f"{name}:{node.lineno}: shell={ast.unparse(kw.value)}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess", "pty"):
            found += [f"{name}:{node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if f"{node.module}.{a.name}" in SHELL_CALLS]  # fmt: skip
    return found


@pytest.mark.parametrize("bad", [
    "import subprocess\nsubprocess.run(f'grep {x} file', shell=True)",
    "import subprocess\nsubprocess.Popen(cmd, shell = flag)",
    "import os\nos.system('ls ' + folder)",
    "from os import popen\npopen(cmd)",
    "import subprocess\nsubprocess.getoutput(cmd)",
])  # fmt: skip
def test_the_shell_check_catches_a_shell(bad):
    assert shell_uses(bad)


def test_no_shell_in_monitor():
    found = []
    for path in sorted((ROOT / "monitor").rglob("*.py")):
        found += shell_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == []
