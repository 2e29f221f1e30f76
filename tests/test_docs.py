"""The example config, the README and the code agree; each outside library has one owner."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from monitor.cli import cli
from monitor.config import Config, iter_settings, load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "monitor.toml"
README = (ROOT / "README.md").read_text(encoding="utf-8")

#: settings the example deliberately sets to something else than the default, and why
EXAMPLE_DIFFERS = {
    "report.annotations": "the example draws the 2023-02-06 earthquake on every chart",
    "series": "the example monitors political violence and Islamic State events by admin1 (default: none)",
    "detectors": "the example lists every detector's defaults (checked by the next test)",
    "ingest.mappings": "the example carries the mapping of the Iraq SIGACTS file (default: none)",
    "alerts.routes": "the example shows two recipient groups, a Syria desk and a duty officer (default: none)",
}
PATHS = {"database.path", "ingest.inbox", "report.folder", "fetch.folder"}


def _lookup(raw: dict, dotted: str):
    for part in dotted.split("."):
        raw = raw[part]
    return raw


@pytest.mark.parametrize("key,default,help_text", iter_settings(), ids=[k for k, _, _ in iter_settings()])
def test_example_config_declares_every_setting_with_its_default(key, default, help_text):
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert help_text, f"{key} has no help line in config.py"
    try:
        value = _lookup(raw, key)
    except KeyError:
        pytest.fail(f"config/monitor.toml does not declare {key} (default {default!r})")
    if key in EXAMPLE_DIFFERS:
        return
    example = load_config(EXAMPLE)
    if key in PATHS:  # relative to the config's folder in the file, to the working folder by default
        resolved = [example.path(Path(v)).resolve() for v in (value if isinstance(value, list) else [value])]
        expected = [(ROOT / d).resolve() for d in (default if isinstance(default, list) else [default])]
        assert resolved == expected
        return
    assert _lookup(example.model_dump(), key) == default, f"{key}: example {value!r} != default {default!r}"


def test_example_detector_tables_use_each_detectors_defaults():
    from monitor.detectors import make_params

    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for name, values in raw["detectors"].items():
        assert make_params(name, values) == make_params(name, {}), f"[detectors.{name}] differs from the defaults"


def test_every_command_is_documented_in_the_readme():
    for name in cli.commands:
        assert f"`monitor {name}" in README, f"README does not document `monitor {name}`"


def test_readme_quick_start_is_exactly_two_commands():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.+?)\n```", section, flags=re.S)
    assert len(commands) == 2
    assert "monitor demo" in commands[0] and ".venv" in commands[0]
    assert "pytest" in commands[1] and ".[test]" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci, ".ci/run must run the README's test command"


def test_readme_documents_every_exit_code_the_cli_uses():
    from monitor import cli as cli_module, pipeline

    help_text = cli.get_help(cli.make_context("monitor", ["--help"], resilient_parsing=True))
    codes = {0, 1, 2, cli_module.EXIT_FLAGGED, pipeline.EXIT_DELIVERY_FAILED, cli_module.EXIT_LOCKED, pipeline.EXIT_NO_DATA}
    for code in codes:
        assert re.search(rf"^\| {code} \|", README, flags=re.M), f"exit code {code} is not in the README"
        assert re.search(rf"^ +{code}  ", help_text, flags=re.M), f"exit code {code} is not in `monitor --help`"


OWNERS = {
    "matplotlib": ("monitor/report/",),
    "smtplib": ("monitor/alerts/email.py",),
    "apscheduler": ("monitor/schedule.py", "monitor/cron.py"),
    "sqlite_utils": ("monitor/store.py",),
    "sqlite3": ("monitor/store.py",),
    "click": ("monitor/cli.py",),
    "statsmodels": ("monitor/detectors/",),
    "tomllib": ("monitor/config.py",),
    "httpx": ("monitor/fetch/http.py",),
    "openpyxl": ("monitor/sources/_csv.py",),
    "shapefile": ("monitor/report/maps.py",),
    "markdown_it": ("monitor/report/html.py",),
    "distributed": ("monitor/cluster.py",),
    "dask": ("monitor/cluster.py",),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_each_outside_library_has_one_owner():
    for path in sorted((ROOT / "monitor").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for module in _imports(path):
            owners = OWNERS.get(module)
            if owners:
                assert rel.startswith(owners), f"{rel} imports {module}; only {owners} may"


def test_config_model_has_no_unlisted_sections():
    assert set(Config.model_fields) - {"base_dir"} == set(tomllib.loads(EXAMPLE.read_text())) 
