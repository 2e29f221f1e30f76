"""`monitor detect` reproduces every ff_* file of `../shared/reference` from the first week of its range.

Run as a user would: the counts CSV of the dataset, `--detector farrington`, the R call of
the manifest translated into `--param`s (R's defaults filling in what the call leaves out),
`--last n_weeks_monitored`, `--format csv`. Every monitored week must be R's: same alarm,
NA where R has NA, `expected` and `upperbound` within 1e-6 relative, and fitted by
Farrington itself: the short-history fallback (EARS) must not take any of them. R fits a
week as soon as its reference weeks exist by date, so the first week of each range is where
a history requirement counted in rows, or one week too strict, would show.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import assert_close, load_reference, reference_cases
from monitor.cli import cli

CASES = reference_cases("ff_")


@pytest.mark.parametrize("row", CASES)
def test_monitor_detect_matches_r_from_the_first_week(row, shared_reference, tmp_path):
    case = load_reference(row, shared_reference)
    assert case.detector == "farrington"
    config = tmp_path / "monitor.toml"
    config.write_text("")  # built-in defaults: the result must not depend on a local config
    args = ["--config", str(config), "detect", str(shared_reference / f"{row['dataset']}.counts.csv"), "--detector", "farrington"]
    for name, value in case.params.items():
        args += ["--param", f"{name}={value}"]
    args += ["--last", row["n_weeks_monitored"], "--format", "csv"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)

    golden = case.golden
    assert result.exit_code == (3 if golden["alarm"].iloc[-1] == 1 else 0), result.output
    out = pd.read_csv(io.StringIO(result.output), parse_dates=["week_start"])
    assert len(out) == len(golden) == int(row["n_weeks_monitored"])
    assert (out["week_start"] == golden["week_start"]).all()
    assert (out["count"] == golden["count"]).all()
    used = out["detector"].tolist()
    assert used == ["farrington"] * len(out), (
        f"not fitted by farrington in {len(out) - used.count('farrington')} week(s), first "
        f"{out.loc[out['detector'] != 'farrington', ['week_start', 'detector', 'note']].head(1).to_dict('records')}"
    )
    r_alarm, alarm = golden["alarm"].astype("boolean"), out["alarm"].astype("boolean")
    assert alarm.isna().tolist() == r_alarm.isna().tolist(), "alarm: NA in different weeks"
    assert alarm.fillna(False).tolist() == r_alarm.fillna(False).tolist(), "alarms differ"
    assert_close(out["expected"], golden["expected"], "expected")
    assert_close(out["upperbound"], golden["upperbound"], "upperbound")
