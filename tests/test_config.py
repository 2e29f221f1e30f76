"""Config: the example file loads, unknown keys get suggestions, bad values are named, secrets stay out."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from monitor.config import Config, load_config
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "monitor.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads_and_resolves_paths_from_its_folder():
    config = load_config(EXAMPLE)
    assert config.db_path.resolve() == (ROOT / "monitor.db").resolve()
    assert config.report_folder.resolve() == (ROOT / "reports").resolve()
    assert config.report.annotations[0].date == date(2023, 2, 6)
    assert "earthquake" in config.report.annotations[0].label
    assert {s.name for s in config.series} == {"violence", "is_attacks", "is_fatalities"}
    by_name = {s.name: s for s in config.series}
    assert by_name["is_fatalities"].metric == "fatalities" and by_name["is_fatalities"].filters == by_name["is_attacks"].filters
    assert config.ingest.mappings[0].match_header == ["time", "event_type", "target", "city"]


def test_unknown_key_is_refused_with_a_suggestion(tmp_path):
    path = write(tmp_path, "[report]\nhistroy_weeks = 200\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "unknown key 'report.histroy_weeks'" in message
    assert "did you mean 'history_weeks'?" in message
    assert str(path) in message


def test_unknown_section_is_refused_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'alert'.*did you mean 'alerts'"):
        load_config(write(tmp_path, "[alert]\nenabled = true\n"))


def test_unknown_key_inside_a_series_block(tmp_path):
    text = '[[series]]\nname = "x"\ngroup_bi = ["admin1"]\n'
    with pytest.raises(ConfigError, match=r"unknown key 'series\[0\]\.group_bi'.*did you mean 'group_by'"):
        load_config(write(tmp_path, text))


def test_bad_value_names_key_value_and_what_is_allowed(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, '[alerts.smtp]\nsecurity = "tls"\n'))
    message = str(err.value)
    assert "alerts.smtp.security = 'tls'" in message
    assert "'starttls', 'ssl' or 'none'" in message


def test_bad_group_by_dimension(tmp_path):
    with pytest.raises(ConfigError, match=r"series\[0\]\.group_by\[0\] = 'province'"):
        load_config(write(tmp_path, '[[series]]\nname = "x"\ngroup_by = ["province"]\n'))


def test_numeric_weekday_in_cron_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="weekdays as names"):
        load_config(write(tmp_path, '[schedule]\ncron = "0 6 * * 1"\n'))


@pytest.mark.parametrize("cron", ["0 6 * * foo", "99 6 * * mon", "0 25 * * mon"])
def test_invalid_cron_field_is_refused_when_the_config_loads(tmp_path, cron):
    with pytest.raises(ConfigError, match=r"schedule\.cron = '.*'"):
        load_config(write(tmp_path, f'[schedule]\ncron = "{cron}"\n'))


def test_params_for_merges_config_series_and_overrides(tmp_path):
    config = load_config(write(tmp_path, '[detectors.farrington]\nalpha = 0.01\n\n[detectors.ears]\nmethod = "C2"\n'))
    assert config.params_for("farrington").alpha == 0.01
    merged = config.params_for("farrington", series_params={"b": 2}, overrides={"w": "1"})
    assert (merged.alpha, merged.b, merged.w) == (0.01, 2, 1)
    assert config.params_for("ears").method == "C2"


def test_bad_annotation(tmp_path):
    with pytest.raises(ConfigError, match="does not start with a date"):
        load_config(write(tmp_path, '[report]\nannotations = ["Feb 6 earthquake"]\n'))


def test_password_in_file_is_refused_and_read_from_environment(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="MONITOR_SMTP_PASSWORD"):
        load_config(write(tmp_path, '[alerts.smtp]\npassword = "hunter2"\n'))
    config = load_config(write(tmp_path, '[alerts.smtp]\npassword_env = "DESK_SMTP_PW"\n'))
    monkeypatch.setenv("DESK_SMTP_PW", "s3cret")
    assert config.smtp_password().get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)


def test_invalid_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"monitor\.toml: line 1, column 8: not valid TOML: Expected '\]'"):
        load_config(write(tmp_path, "[report\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_db_override_and_environment_variable(tmp_path, monkeypatch):
    path = write(tmp_path, '[database]\npath = "a.db"\n')
    monkeypatch.setenv("MONITOR_CONFIG", str(path))
    config = load_config(None, db=tmp_path / "b.db")
    assert config.db_path == (tmp_path / "b.db").resolve()
    assert load_config(None).db_path == tmp_path.resolve() / "a.db"


def test_unknown_detector_parameter_in_config(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[detectors.farrington]\nalpah = 0.01\n"))
    assert "alpah" in str(err.value) and "alpha" in str(err.value)


def test_series_with_unknown_detector(tmp_path):
    with pytest.raises(ConfigError, match="farington"):
        load_config(write(tmp_path, '[[series]]\nname = "x"\ndetector = "farington"\n'))


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config == Config(base_dir=tmp_path)
    assert config.week.start == "monday" and config.schedule.cron == "0 6 * * wed"  # after ACLED's weekly update (README)
