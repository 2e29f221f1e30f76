"""Mistakes answer clearly (issue 11, item 7): a [[series]] that matches no incident, a --series that matches
no series or several, and every command a digest prints runs as printed (real database, real CLI, a shell)."""

from __future__ import annotations

import email
import email.policy
import html
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers_incidents import write_incidents
from monitor.cli import cli

ROOT = Path(__file__).resolve().parents[1]
NOW = "2023-03-06T06:00:00+00:00"  # the Monday after WEEK: the run's clock, and the reader's when pasting
WEEK = "2023-W08"
#: admin1 names a shell would split, expand or choke on: each must reach `monitor` as one word
SPACED, QUOTED = "Deir ez Zor", "Da'ra $HOME; echo"
PLACES = ["Homs", SPACED, QUOTED]
#: definitions that yield no series, one per way of getting it wrong, and what `check` says about each
CONFIG = """
[database]
path = "m.db"
[ingest]
inbox = ["inbox"]
[report]
folder = "reports"
[[series]]
name = "violence"
group_by = ["admin1"]
detector = "acled-surge"
[[series]]
name = "is"
group_by = ["admin1"]
filters = { actor = ["ISIS"] }
[[series]]
name = "typo"
filters = { country = ["Syria"], admin1 = ["Homms"] }
[[series]]
name = "apart"
filters = { admin1 = ["Homs"], admin2 = ["Deir ez Zor"] }
[[series]]
name = "rare"
group_by = ["admin1"]
rollup = false
min_events = 100000
[alerts]
recipients = ["desk@example.org"]
sender = "incident-monitor@example.org"
"""
PROBLEMS = [
    f"series 'is': filter actor=['ISIS'] matches no incident up to {WEEK}; nearest values in the data: 'IS'",
    f"series 'typo': filter admin1=['Homms'] matches no incident up to {WEEK}; nearest values in the data: 'Homs'",
    f"series 'apart': its filters admin1=['Homs'], admin2=['Deir ez Zor'] each match some incidents up to {WEEK} "
    "but never the same ones (every listed condition must hold)",
    f"series 'rare': {3 * 3 * 112 + (14 - 3):,} events match its filters up to {WEEK}, but no group of admin1 reaches min_events = 100000 "
    "and rollup = false (lower min_events or set rollup = true)",
]


def invoke(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args], env={"MONITOR_NOW": NOW})


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    """A folder where `monitor run --week 2023-W08` ran once: Da'ra surges and with it the total (actors named
    as UCDP does, 'IS'); the digest is written as an .eml. Tests copy the folder before changing its database."""
    folder = tmp_path_factory.mktemp("mistakes")
    write_incidents(folder / "inbox" / "ucdp_like.csv", PLACES, prefix="M", surge=(QUOTED,), actor1="IS")
    config = folder / "monitor.toml"
    config.write_text(CONFIG, encoding="utf-8")
    result = invoke(config, "run", "--week", WEEK)
    assert result.exit_code == 0, result.output
    return folder


def copy(folder: Path, tmp_path: Path) -> Path:
    for name in ("monitor.toml", "m.db"):
        shutil.copy(folder / name, tmp_path / name)
    return tmp_path / "monitor.toml"


def digest_parts(folder: Path) -> tuple[str, str]:
    [eml] = (folder / "reports" / WEEK).glob("digest-*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    return text, page


def test_every_command_in_the_digest_runs_as_printed(ran, tmp_path):
    """Each `monitor ...` line of the digest, pasted into a shell (sh -c) with the run's config and clock, works."""
    config = copy(ran, tmp_path)
    text, page = digest_parts(ran)
    printed = re.findall(r"^ {4}(?:silence|check): +(monitor .+)$", text, flags=re.M)
    in_html = [html.unescape(c) for c in re.findall(r"<code>(monitor .+?)</code>", page)]
    assert sorted(printed) == sorted(in_html)
    flagged = {f"violence/admin1={QUOTED}", "violence/total"}
    assert len(printed) == 2 * len(flagged)  # a silence and a check command per new alert
    env = {**os.environ, "MONITOR_CONFIG": str(config), "MONITOR_NOW": NOW, "PYTHONPATH": str(ROOT)}
    silenced, checked = [], []
    for command in printed:
        words = shlex.split(command)
        key = words[words.index("--series") + 1]
        assert key.startswith("key:") and key[4:] in flagged, command
        shell = f"{shlex.quote(sys.executable)} -m {command}"  # `monitor ...` as the installed script would run it
        done = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        if words[1] == "silence":
            assert (done.returncode, done.stderr) == (0, ""), command + "\n" + done.stderr
            assert done.stdout.startswith("silence #") and f"series matching '{key}' not emailed" in done.stdout
            silenced.append(key)
        else:
            assert done.returncode == 3, command + "\n" + done.stderr  # 3: flagged, as the digest said
            rows = done.stdout.splitlines()
            assert len(rows) == 2 and rows[1].startswith(key[4:] + "  ") and "ALARM" in rows[1], done.stdout
            checked.append(key)
    assert sorted(silenced) == sorted(checked) == sorted("key:" + k for k in flagged)
    with sqlite3.connect(tmp_path / "m.db") as conn:
        assert sorted(f for (f,) in conn.execute("SELECT filter FROM silences")) == sorted(silenced)


def test_definitions_matching_nothing_are_reported_and_the_rest_judged(ran):
    config = ran / "monitor.toml"
    result = invoke(config, "check", "--week", WEEK, "--format", "csv")
    assert result.exit_code == 3  # the good definition is still judged: Da'ra surges
    assert result.stderr.splitlines() == [f"warning: {p}" for p in PROBLEMS]
    keys = [line.split(",")[0] for line in result.stdout.splitlines()[1:]]
    assert sorted(keys) == sorted(["violence/admin1=Homs", f"violence/admin1={SPACED}", f"violence/admin1={QUOTED}",
                                   "violence/total"])  # fmt: skip
    report = (ran / "reports" / WEEK / "report.md").read_text(encoding="utf-8")
    section = report.split("## Configuration problems\n", 1)[1].split("\n## ", 1)[0]
    escaped = [p.replace("[", "\\[").replace("]", "\\]").replace("_", "\\_") for p in PROBLEMS]  # md_escape
    assert [line[2:] for line in section.splitlines() if line.startswith("- ")] == escaped
    assert "4 \\[\\[series\\]\\] definitions yielded no series (is, typo, apart, rare); see Configuration problems" in report
    rerun = invoke(config, "report", "--week", WEEK)
    assert rerun.exit_code == 0 and rerun.stderr.splitlines() == [f"warning: {p}" for p in PROBLEMS]


def test_check_series_takes_a_key_as_printed_and_names_the_nearest(ran):
    config = ran / "monitor.toml"
    exact = invoke(config, "check", "--week", WEEK, "--series", f"key:violence/admin1={QUOTED}", "--format", "csv")
    assert exact.exit_code == 3 and [r.split(",")[0] for r in exact.stdout.splitlines()[1:]] == [f"violence/admin1={QUOTED}"]
    total = invoke(config, "check", "--week", WEEK, "--series", "key:violence/total", "--format", "csv")
    assert [r.split(",")[0] for r in total.stdout.splitlines()[1:]] == ["violence/total"]
    # `key:` is exact: a prefix of a key is no key
    typo = invoke(config, "check", "--week", WEEK, "--series", "key:violence/admin1=Deir ez Zo")
    assert typo.exit_code == 1 and typo.stdout == ""
    line = typo.stderr.splitlines()[-1]
    assert line.startswith("error: no series matches --series 'key:violence/admin1=Deir ez Zo' (of 4 series); "
                           "nearest: 'key:violence/admin1=Deir ez Zor'.")  # fmt: skip
    loose = invoke(config, "check", "--week", WEEK, "--series", "Hmos")
    assert loose.exit_code == 1 and "nearest: 'key:violence/admin1=Homs'." in loose.stderr
    nothing = invoke(config, "check", "--week", WEEK, "--series", "Atlantis")
    assert nothing.exit_code == 1 and "no series matches --series 'Atlantis' (of 4 series) (e.g. " in nothing.stderr


def test_silence_add_refuses_a_series_that_does_not_exist_or_is_ambiguous(ran, tmp_path):
    config = copy(ran, tmp_path)
    add = ["silence", "add", "--until", "2023-04-30", "--comment", "known offensive", "--author", "t"]

    def silences() -> list[str]:
        with sqlite3.connect(tmp_path / "m.db") as conn:
            return [f for (f,) in conn.execute("SELECT filter FROM silences ORDER BY id")]

    missing = invoke(config, *add, "--series", "Hom s")
    assert missing.exit_code == 1 and "no series matches --series 'Hom s'" in missing.stderr
    assert "nearest: 'key:violence/admin1=Homs'" in missing.stderr and silences() == []
    one = invoke(config, *add, "--series", "Deir ez")  # text matching one series is enough
    assert one.exit_code == 0 and one.stderr == "" and silences() == ["Deir ez"]
    ambiguous = invoke(config, *add, "--series", "violence/")
    assert ambiguous.exit_code == 2 and "--series 'violence/' matches 4 series:" in ambiguous.stderr
    listed = re.findall(r"^  ('key:.+')$", ambiguous.stderr, flags=re.M)
    assert [shlex.split(k)[0] for k in listed] == sorted(["key:violence/admin1=Homs", f"key:violence/admin1={SPACED}",
                                                          f"key:violence/admin1={QUOTED}", "key:violence/total"])  # fmt: skip
    assert "--all-matching" in ambiguous.stderr and silences() == ["Deir ez"]
    everything = invoke(config, *add, "--series", "violence/", "--all-matching")
    assert everything.exit_code == 0 and "(4 series now: " in everything.stdout and silences() == ["Deir ez", "violence/"]
    exact = invoke(config, *add, "--series", f"key:violence/admin1={QUOTED}")
    assert exact.exit_code == 0 and silences()[-1] == f"key:violence/admin1={QUOTED}"


def test_silence_commands_never_print_a_past_date_and_quote_any_key():
    from datetime import date

    from monitor.alerts.notify import silence_command
    from monitor.series import shell_quote

    class Series:
        key = "v/admin1=it's $(here)"

    class Result:
        series = Series()

    week_end = date(2023, 3, 5)
    assert "--until 2023-04-02 " in silence_command(Result(), week_end, today=date(2023, 3, 6))
    # a week reported long after it ended (catch-up, the demo): four weeks from the day of the run
    assert "--until 2026-12-22 " in silence_command(Result(), week_end, today=date(2026, 11, 24))
    words = shlex.split(silence_command(Result(), week_end))
    assert words[words.index("--series") + 1] == "key:v/admin1=it's $(here)"
    for text in ("", "plain", "a b", "it's", "'", "$HOME", "a\\b"):
        assert shlex.split(shell_quote(text)) == [text]
