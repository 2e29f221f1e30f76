"""The weekly job end to end: the demo, idempotent re-runs, and email through a real SMTP server."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from monitor.config import load_config
from monitor.pipeline import EXIT_DELIVERY_FAILED, run_weekly
from monitor.series import parse_week
from monitor.store import Store
from tests.smtp_server import SmtpServer

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
WEEK = parse_week("2023-W09")
CENTRAL = {"is_attacks/admin1=Homs", "is_attacks/admin1=Hama", "is_attacks/admin1=Deir ez Zor"}


@pytest.fixture(scope="module")
def demo_run(demo_dir, demo_outcome):
    """The shared demo (made once per test run, tests/conftest.py) and what its `run_demo` returned; read only."""
    return demo_dir, demo_outcome


def test_demo_flags_the_islamic_state_surge_in_central_syria(demo_run):
    out, outcome = demo_run
    flagged = {r.series.key for r in outcome.result.flagged}
    assert CENTRAL <= flagged, f"flagged: {sorted(flagged)}"
    others = flagged - CENTRAL - {"is_attacks/total"}
    assert len(others) <= 3, f"too many other series flagged: {sorted(others)}"
    assert outcome.result.week == "2023-W09" and outcome.exit_code == 0
    # everything the demo makes is under its folder
    assert {p.name for p in out.iterdir()} >= {"inbox", "monitor.toml", "monitor.db", "reports"}


def test_demo_report_says_synthetic_and_names_the_surge(demo_run):
    out, outcome = demo_run
    report = (out / "reports" / "2023-W09" / "report.md").read_text(encoding="utf-8")
    assert "synthetic" in report.lower()
    for place in ("Homs", "Hama", "Deir ez Zor"):
        assert place in report
    assert len(outcome.files.charts) == len(outcome.result.flagged)
    for png in outcome.files.charts.values():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2023-W09" in (out / "reports" / "index.md").read_text(encoding="utf-8")


def test_demo_writes_the_digest_as_eml_once(demo_run):
    out, outcome = demo_run
    assert outcome.delivery is not None and outcome.delivery.channel == "file"
    eml = outcome.delivery.path
    assert eml.parent == out / "reports" / "2023-W09"
    text = eml.read_text(encoding="utf-8", errors="replace")
    assert "syria-desk@example.org" in text
    assert set(outcome.announced) == {r.series.key for r in outcome.result.flagged}


def test_rerunning_the_same_week_changes_nothing_and_sends_nothing(demo_run, tmp_path):
    shared, first = demo_run
    out = tmp_path / "demo"
    shutil.copytree(shared, out)  # the demo's config names its files relative to itself: the copy is a demo of its own
    report = out / "reports" / "2023-W09" / "report.md"
    before = report.read_bytes()
    config = load_config(out / "monitor.toml")
    with Store(config.db_path) as store:
        again = run_weekly(config, store, week=WEEK, now=NOW)
        total = store.stats()["records_total"]
    assert again.delivery is None and again.announced == ()
    assert all(r.skipped for r in again.ingest.results)  # the inbox file is known by its sha256
    assert report.read_bytes() == before
    assert total == first.result.records_total


def _smtp_config(tmp_path: Path, demo_dir: Path, port: int):
    text = (demo_dir / "monitor.toml").read_text(encoding="utf-8")
    text = text.replace('host = ""', f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5')
    text = text.replace('folder = "reports"', f'folder = "{(tmp_path / "reports").as_posix()}"')
    text = text.replace('path = "monitor.db"', f'path = "{(tmp_path / "monitor.db").as_posix()}"')
    text = text.replace('inbox = ["inbox"]', f'inbox = ["{(demo_dir / "inbox").as_posix()}"]')
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_digest_through_a_real_smtp_server_survives_an_outage_and_is_sent_once(demo_run, tmp_path):
    demo_dir, _ = demo_run
    server = SmtpServer()
    config = _smtp_config(tmp_path, demo_dir, server.port)
    with Store(config.db_path) as store:
        # server down: the report is written, the run says so, nothing is recorded as announced
        down = run_weekly(config, store, week=WEEK, now=NOW)
        assert down.exit_code == EXIT_DELIVERY_FAILED and "127.0.0.1" in down.delivery_error
        assert (tmp_path / "reports" / "2023-W09" / "report.md").exists()
        pending = store.pending_outbox()  # the digest waits in the outbox with the error
        assert len(pending) == 1 and pending[0]["attempts"] == 1 and "127.0.0.1" in pending[0]["last_error"]
        server.start()
        try:
            up = run_weekly(config, store, week=WEEK, now=NOW)
            again = run_weekly(config, store, week=WEEK, now=NOW)
        finally:
            server.stop()
    assert up.exit_code == 0 and up.delivery.channel == "smtp"
    assert len(server.inbox.messages) == 1, "the repeated run must not send again"
    recipients, message = server.inbox.messages[0]
    assert recipients == ["syria-desk@example.org"]
    assert "2023-W09" in message["Subject"]
    types = [part.get_content_type() for part in message.walk()]
    assert "text/plain" in types and "text/html" in types and "image/png" in types
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_content()
    cids = re.findall(r'src="cid:([^"]+)"', html)
    assert cids and all(any(cid in (p.get("Content-ID") or "") for p in message.walk()) for cid in cids)
    assert again.delivery is None


def test_check_with_another_detector_uses_the_configs_defaults_for_it(demo_run, tmp_path):
    """`check --detector ears` runs [detectors.ears] from the config; --param goes on top."""
    from monitor.config import config_from_dict
    from monitor.detection import detect_week

    demo_dir, _ = demo_run
    config = config_from_dict(
        {"series": [{"name": "is", "group_by": ["admin1"], "filters": {"actor_contains": ["Islamic State"]}}],
         "detectors": {"ears": {"method": "C2", "alpha": 0.2}}, "database": {"path": str(demo_dir / "monitor.db")}},
        base_dir=tmp_path)
    with Store(config.db_path) as store:
        c2 = detect_week(config, store, week=WEEK, now=NOW, detector="ears", with_context=False)
        c3 = detect_week(config, store, week=WEEK, now=NOW, detector="ears", params={"method": "C3"}, with_context=False)
    assert c2.detectors == {"ears": {"method": "C2", "baseline": 7, "alpha": 0.2, "min_sigma": 0.0, "r_c3": False}}
    assert c3.detectors["ears"]["method"] == "C3" and c3.detectors["ears"]["alpha"] == 0.2


def test_flagged_series_rank_on_one_exceedance_scale(demo_run):
    _, outcome = demo_run
    for r in outcome.result.flagged:
        d = r.detection
        assert d.score == pytest.approx((d.observed - d.expected) / (d.threshold - d.expected))
        assert d.score > 1  # flagged: above the threshold
    scores = [r.detection.score for r in outcome.result.flagged]
    assert scores == sorted(scores, reverse=True)


def test_no_email_run_says_what_is_pending(demo_run, tmp_path):
    from click.testing import CliRunner

    from monitor.cli import cli

    demo_dir, _ = demo_run
    _smtp_config(tmp_path, demo_dir, port=1)  # writes tmp_path/monitor.toml; the server is never contacted
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "monitor.toml"), "run", "--week", "2023-W09", "--no-email"])
    assert result.exit_code == 0, result.output
    assert "alerts: not processed (--no-email" in result.output and "delivered" not in result.output


def test_stateful_detectors_answer_the_same_whatever_the_lookback(demo_run, tmp_path):
    """A CUSUM's verdict for 2023-W09 must not depend on how many weeks `check` or `run` display."""
    from monitor.config import config_from_dict
    from monitor.detection import detect_week

    demo_dir, _ = demo_run
    config = config_from_dict(
        {"series": [{"name": "is", "group_by": ["admin1"], "filters": {"actor_contains": ["Islamic State"]}, "detector": "cusum"}],
         "database": {"path": str(demo_dir / "monitor.db")}}, base_dir=tmp_path)
    with Store(config.db_path) as store:
        quick = detect_week(config, store, week=WEEK, now=NOW, with_context=False)
        full = detect_week(config, store, week=WEEK, now=NOW)
    pairs = {r.series.key: r.detection for r in quick.results}
    for r in full.results:
        d = pairs[r.series.key]
        assert (d.alarm, d.threshold, d.expected) == (r.detection.alarm, r.detection.threshold, r.detection.expected)
    assert {r.series.key for r in full.flagged} >= {"is/admin1=Homs", "is/admin1=Hama", "is/admin1=Deir ez Zor"}


@pytest.mark.parametrize(
    ("n", "window", "start"),
    [(80, 104, 52), (130, 104, 78), (185, 104, 104), (260, 104, 104), (300, 104, 144), (185, 0, 52), (300, 0, 144), (185, 156, 133)],
)
def test_chart_start_leaves_the_in_control_model_the_history_that_exists(n, window, start):
    """cusum/glrnb chart a short series from week `in_control_weeks` (or a year before its end), not
    from its first year's end; from 156 + window weeks on, the last 156 weeks (issue 11, item 5)."""
    from monitor.detectors import get_detector, make_params
    from monitor.detection import chart_start

    for name in ("cusum", "glrnb"):
        assert chart_start(get_detector(name), make_params(name, {"in_control_weeks": window}), n) == start
    assert chart_start(get_detector("farrington-cusum"), make_params("farrington-cusum", {}), 400) == 400 - 156  # no window: as before


def test_weeks_shown_before_the_chart_start_go_to_the_fallback_and_the_chart_is_the_checked_one():
    import numpy as np

    from monitor.detectors import make_params
    from monitor.detection import detect_counts

    rng = np.random.default_rng(5)
    counts = pd.Series(rng.poisson(np.linspace(4, 12, 185)).astype(float),
                       index=pd.date_range("2004-01-05", periods=185, freq="7D"), name="count")  # fmt: skip
    params = make_params("cusum", {})
    shown = detect_counts(counts, lookback=155, detector="cusum", params=params, fallback_params=None)
    assert len(shown) == 156 and shown["detector"].tolist() == ["nb-recent"] * 75 + ["cusum"] * 81  # weeks 29..103, 104..184
    assert shown.loc[0, "note"].startswith("too little history for cusum (needs 52 weeks, has 29)")
    assert shown.loc[74, "note"].startswith("before the cusum chart's start (week 105 of the series")
    checked = detect_counts(counts, lookback=0, detector="cusum", params=params, fallback_params=None)
    pd.testing.assert_frame_equal(shown.tail(1).reset_index(drop=True)[checked.columns], checked, check_dtype=False)


def test_check_of_one_series_reads_only_its_incidents_and_answers_as_the_full_run(demo_run, tmp_path):
    """A `--series` filter that spells out a key narrows the SQL to that series' labels; the
    answer for that series is the one the whole run gives."""
    from monitor.config import config_from_dict
    from monitor.assemble import _exact_labels
    from monitor.detection import detect_week

    demo_dir, _ = demo_run
    config = config_from_dict(
        {"series": [{"name": "pv", "title": "Political violence", "group_by": ["admin1", "event_type"]},
                    {"name": "act", "group_by": ["actor"]}],
         "database": {"path": str(demo_dir / "monitor.db")}},
        base_dir=tmp_path)  # fmt: skip
    key = "pv/admin1=Homs|event_type=Battles"
    assert _exact_labels(config, key)[1] == {"admin1": "Homs"}  # the last label may stop inside its value
    assert _exact_labels(config, "pv/admin1=Homs") is None
    assert _exact_labels(config, "Homs") is None and _exact_labels(config, "act/actor=IS|x=1") is None
    assert _exact_labels(config, "nope/admin1=Homs|event_type=Battles") is None
    with Store(config.db_path) as store:
        everything = detect_week(config, store, week=WEEK, now=NOW, with_context=False)
        one = detect_week(config, store, week=WEEK, now=NOW, series_filter=key, with_context=False)
        prefix = detect_week(config, store, week=WEEK, now=NOW, series_filter="pv/admin1=Homs|event_type=B", with_context=False)
    full = {r.series.key: r for r in everything.results}
    assert [r.series.key for r in one.results] == [key]
    from dataclasses import replace

    assert replace(one.results[0].detection, qvalue=0) == replace(full[key].detection, qvalue=0)  # NaN != NaN
    assert one.results[0].series.counts.equals(full[key].series.counts)
    assert {r.series.key for r in prefix.results} == {k for k in full if k.startswith("pv/admin1=Homs|event_type=B")}


def test_check_of_one_actor_filtered_series_reads_only_its_place_and_answers_as_the_full_run(tmp_path):
    """A definition filtered on actor names (the demo's Islamic State series) takes the narrow path
    too; its series start where the full run starts them, though other actors were active for years
    before the first Islamic State event (its name spelled two ways, as ACLED and UCDP do)."""
    import random
    from dataclasses import replace
    from datetime import date, timedelta

    from monitor.assemble import _exact_labels
    from monitor.config import config_from_dict
    from monitor.detection import detect_week
    from monitor.ingest import ingest_files

    rng = random.Random(9)
    lines = ["event_id_cnty,event_date,event_type,actor1,country,admin1,fatalities"]
    day, n = date(2019, 1, 7), 0
    while day < date(2023, 3, 6):
        for admin1, actor, since in (("Homs", "Military Forces of Syria", date(2019, 1, 7)), ("Homs", "Islamic State (Syria)", date(2020, 6, 1)),
                                     ("Hama", "ISIS", date(2021, 3, 1)), ("Aleppo", "Military Forces of Syria", date(2019, 1, 7))):  # fmt: skip
            for _ in range(rng.randint(0, 4) if day >= since else 0):
                n += 1
                lines.append(f"E{n},{day + timedelta(days=rng.randint(0, 6))},Battles,{actor},Syria,{admin1},{rng.randint(0, 2)}")
        day += timedelta(days=7)
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = config_from_dict(
        {"series": [{"name": "is", "group_by": ["admin1"], "min_events": 0,
                     "filters": {"actor_contains": ["islamic state", "isis"], "country": ["Syria"]}}],
         "database": {"path": str(tmp_path / "m.db")}}, base_dir=tmp_path)  # fmt: skip
    assert _exact_labels(config, "key:is/admin1=Hama") == (config.series[0], {"admin1": "Hama"})
    week = date(2023, 2, 27)
    with Store(config.db_path) as store:
        assert not ingest_files(store, [tmp_path / "events.csv"], config=config, now=NOW).refused
        everything = detect_week(config, store, week=week, now=NOW, with_context=False)
        full = {r.series.key: r for r in everything.results}
        assert set(full) == {"is/admin1=Homs", "is/admin1=Hama", "is/total"}
        for key in ("is/admin1=Homs", "is/admin1=Hama"):
            result = full[key]
            one = detect_week(config, store, week=week, now=NOW, series_filter="key:" + key, with_context=False)
            assert [r.series.key for r in one.results] == [key]
            assert one.results[0].series.counts.index[0] == result.series.counts.index[0], key
            assert one.results[0].series.counts.equals(result.series.counts), key
            assert replace(one.results[0].detection, qvalue=0) == replace(result.detection, qvalue=0), key
        assert full["is/admin1=Homs"].series.counts.index[0] >= pd.Timestamp("2020-05-25")  # not the army's first week


def test_charts_drawn_in_worker_processes_are_the_same_pngs(demo_run, tmp_path, monkeypatch):
    from monitor.config import load_config
    from monitor.report import files as report_files

    demo_dir, outcome = demo_run
    settings = load_config(demo_dir / "monitor.toml").report_settings
    monkeypatch.setattr(report_files, "PARALLEL_MIN_CHARTS", 2)
    one = report_files.write_report(outcome.result, settings=settings.model_copy(update={"folder": tmp_path / "one"}), workers=1)
    two = report_files.write_report(outcome.result, settings=settings.model_copy(update={"folder": tmp_path / "two"}), workers=2)
    assert len(one.charts) >= 3 and one.charts.keys() == two.charts.keys()
    for key, path in one.charts.items():
        assert path.read_bytes() == two.charts[key].read_bytes(), key
    assert one.markdown.read_text() == two.markdown.read_text()


def test_check_of_a_group_that_starts_late_gets_the_weeks_of_the_full_run(tmp_path):
    """A group whose first incident is years after its definition's first starts at its own first
    incident (judged from then on, never against years of zeros), the same whether `check` reads
    only its incidents or the whole run; a key typed in another case matches as the filter always did."""
    import random
    from datetime import date, timedelta

    from monitor.config import config_from_dict
    from monitor.detection import detect_week
    from monitor.ingest import ingest_files

    rng = random.Random(4)
    lines = ["event_id_cnty,event_date,event_type,actor1,country,admin1,fatalities"]
    day, n = date(2019, 1, 7), 0
    while day < date(2023, 3, 6):
        for admin1 in ("Homs", "Aleppo"):
            if admin1 == "Aleppo" and day < date(2022, 1, 3):
                continue
            for _ in range(rng.randint(0, 4)):
                n += 1
                lines.append(f"E{n},{day + timedelta(days=rng.randint(0, 6))},Battles,IS,Syria,{admin1},{rng.randint(0, 2)},")
        day += timedelta(days=7)
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = config_from_dict(
        {"series": [{"name": "pv", "group_by": ["country", "admin1", "event_type"], "min_events": 0}],
         "database": {"path": str(tmp_path / "m.db")}}, base_dir=tmp_path)  # fmt: skip
    key = "pv/country=Syria|admin1=Aleppo|event_type=Battles"
    with Store(config.db_path) as store:
        assert not ingest_files(store, [tmp_path / "events.csv"], config=config, now=NOW).refused
        full = {r.series.key: r for r in detect_week(config, store, week=WEEK, now=NOW, with_context=False).results}
        for typed in (key, key.lower()):
            one = detect_week(config, store, week=WEEK, now=NOW, series_filter=typed, with_context=False).results
            assert [r.series.key for r in one] == [key], typed
            first = pd.Timestamp(one[0].series.counts.index[0])
            assert first == full[key].series.counts.index[0] and pd.Timestamp("2022-01-03") <= first < pd.Timestamp("2022-01-31")
            assert one[0].series.counts.iloc[0] > 0
            assert one[0].series.counts.equals(full[key].series.counts)
            # a year of history: judged by the short-history fallback, identically in both reads
            assert one[0].detection.expected == full[key].detection.expected and one[0].detection.detector == "nb-recent"
