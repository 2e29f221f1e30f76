"""Settings that used to be accepted and then fail at run time (issue 12, item 9): refused when the config loads,
in one line naming the file and the key, with what would work."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from monitor.cli import cli

CASES = [
    ("timeout_inf", "[alerts.smtp]\ntimeout = inf\n", "alerts.smtp.timeout = inf: must be a finite number"),
    (
        "cron_never",
        '[schedule]\ncron = "0 6 31 2 *"\n',
        "schedule.cron = '0 6 31 2 *': never fires (no date matches '0 6 31 2 *'), so the weekly job would never run",
    ),
    (
        "cron_day_and_weekday",
        '[schedule]\ncron = "0 6 1 * mon"\n',
        "schedule.cron = '0 6 1 * mon': gives both a day of the month ('1') and a weekday ('mon'): cron runs when either "
        "matches, APScheduler only when both do, so weeks would be skipped; keep one of them and write '*' for the other",
    ),
    ("nested_5000", "a = " + "[" * 5000 + "]" * 5000 + "\n", "not a usable config: tables or arrays nested too deeply to read"),
    (
        "integer_5000_digits",
        "[schedule]\ncatch_up_weeks = " + "9" * 5000 + "\n",
        "not a usable config: an integer with thousands of digits; no setting takes a number that large",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_setting_the_run_could_not_use_is_refused_when_the_config_loads(tmp_path, name, text, message):
    config = tmp_path / f"{name}.toml"
    config.write_text(text, encoding="utf-8")
    for command in (["status"], ["check"]):
        result = CliRunner().invoke(cli, ["--config", str(config), *command], env={"MONITOR_NOW": "2023-03-06T06:00:00+00:00"})
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines == [f"error: {config}: {message}"], result.output
        assert "unexpected" not in result.output


def test_a_cron_with_only_a_day_of_the_month_or_only_a_weekday_is_fine(tmp_path):
    for cron in ("0 6 1 * *", "0 6 * * mon", "30 5 * * mon-fri"):
        config = tmp_path / "ok.toml"
        config.write_text(f'[schedule]\ncron = "{cron}"\n[database]\npath = "m.db"\n', encoding="utf-8")
        result = CliRunner().invoke(cli, ["--config", str(config), "status"], env={"MONITOR_NOW": "2023-03-06T06:00:00+00:00"})
        assert "schedule.cron" not in result.output, (cron, result.output)
