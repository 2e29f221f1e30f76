"""New actors and places (issue 16, item 2, the report section): who is violent where for the first time in
twelve months, which places have their first event, and where more armed actors are active than ever before."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from click.testing import CliRunner
from test_revisions import ACLED_HEADER, acled_row, write_csv

from monitor.cli import cli
from monitor.emerging import actor_key, emerging

WEEK = date(2023, 2, 6)


def test_actor_names_are_compared_normalised_with_aliases():
    assert actor_key("Islamic State (Syria)") == actor_key("ISIS") == actor_key(" islamic  state ") == actor_key("Daesh")
    assert actor_key("QSD: Syrian Democratic Forces") != actor_key("Islamic State")
    assert actor_key("HTS", {"HTS": "Hayat Tahrir al-Sham"}) == actor_key("Hayat Tahrir al Sham (Syria)")


def _event(day: date, admin1: str, admin2: str, actor1: str, actor2: str = "Civilians (Syria)", kind: str = "Battles") -> dict:
    return {"event_date": pd.Timestamp(day), "event_type": kind, "country": "Syria", "admin1": admin1, "admin2": admin2,
            "actor1": actor1, "actor2": actor2}


def _year_before() -> list[dict]:
    """A year of weekly events in Homs (Tadmor) by the army against IS ('IS' as UCDP writes it), in Hama by two actors."""
    rows = []
    for k in range(1, 53):
        day = WEEK - timedelta(weeks=k) + timedelta(days=2)
        rows.append(_event(day, "Homs", "Tadmor", "Military Forces of Syria (2000-)", "IS"))
        rows.append(_event(day, "Hama", "Salamiyeh", "Military Forces of Syria (2000-)", "NDF: National Defence Forces"))
    rows.append(_event(WEEK - timedelta(weeks=10), "Homs", "Homs", "Protesters (Syria)", "", kind="Protests"))
    return rows


def test_new_actors_new_places_and_more_actors_than_ever():
    this_week = [
        _event(WEEK + timedelta(days=1), "Homs", "Tadmor", "Islamic State (Syria)", "Military Forces of Syria (2000-)"),  # not new: IS
        _event(WEEK + timedelta(days=1), "Homs", "Sukhnah", "Liwa Fatemiyoun"),  # a new actor, in a new place
        _event(WEEK + timedelta(days=2), "Hama", "Salamiyeh", "Islamic State (Syria)", "NDF: National Defence Forces"),
        _event(WEEK + timedelta(days=3), "Hama", "Salamiyeh", "Military Forces of Syria (2000-)", "Unidentified Armed Group (Syria)"),
        _event(WEEK + timedelta(days=3), "Homs", "Homs", "Protesters (Syria)", "", kind="Protests"),  # not violence, and Homs city is known
    ]
    found = emerging(pd.DataFrame(_year_before() + this_week), week=WEEK, weeks=52, data_start=date(2020, 1, 1))
    got = {(e.kind, e.admin1, e.what) for e in found}
    assert got == {
        ("new actor", "Homs", "Liwa Fatemiyoun"),
        ("new actor", "Hama", "Islamic State (Syria)"),  # IS was violent in Homs, never in Hama
        ("new place", "Homs", "Sukhnah"),
        ("more actors", "Hama", "3 actors"),  # army, NDF, IS: the unidentified group does not count
        ("more actors", "Homs", "3 actors"),  # army, IS, Liwa Fatemiyoun (civilians are not armed actors)
    }
    more = next(e for e in found if e.kind == "more actors" and e.admin1 == "Hama")
    assert more.detail == "Hama: 3 distinct armed actors violent this week, more than in any week of the 52 before (at most 2)"


def test_nothing_is_new_while_the_data_is_younger_than_the_window():
    rows = _year_before() + [_event(WEEK + timedelta(days=1), "Homs", "Sukhnah", "Liwa Fatemiyoun")]
    assert emerging(pd.DataFrame(rows), week=WEEK, weeks=52, data_start=WEEK - timedelta(weeks=30)) == []


def test_the_report_lists_them(tmp_path):
    rows = []
    for k in range(1, 60):
        day = (WEEK - timedelta(weeks=k) + timedelta(days=2)).isoformat()
        rows.append(acled_row(f"SYR{k}", event_date=day, fatalities=0, timestamp="1675000000"))
    new = acled_row("SYR999", event_date=(WEEK + timedelta(days=1)).isoformat(), fatalities=3, timestamp="1675000000")
    new.update(actor1="Liwa Fatemiyoun", admin2="Sukhnah")
    rows.append(new)
    data = write_csv(tmp_path / "acled.csv", ACLED_HEADER, rows)
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\npath = "m.db"\n[report]\nfolder = "reports"\n[[series]]\nname = "all"\n', encoding="utf-8")
    env = {"MONITOR_NOW": "2023-02-15T06:00:00+00:00"}
    assert CliRunner().invoke(cli, ["--config", str(config), "ingest", str(data)], env=env).exit_code == 0
    result = CliRunner().invoke(cli, ["--config", str(config), "report", "--week", "2023-W06"], env=env)
    assert result.exit_code == 0, result.output
    report = (tmp_path / "reports" / "2023-W06" / "report.md").read_text(encoding="utf-8")
    assert "## New actors and places" in report
    assert "- Liwa Fatemiyoun: 1 violent event(s) in Homs this week, its first there in 52 weeks" in report
    assert "- Sukhnah (Homs): 1 event(s) this week, the first there in 52 weeks" in report


def test_a_place_is_its_admin1_and_a_country_added_later_is_not_all_new():
    """Tadmor in Homs is known; a Tadmor in another admin1 is a new place. A country first ingested this year
    (its data younger than the window) is left out, while the one with a year of data is judged."""
    rows = _year_before() + [_event(WEEK + timedelta(days=1), "Deir ez Zor", "Tadmor", "Military Forces of Syria (2000-)")]
    lebanon = {**_event(WEEK + timedelta(days=1), "South", "Tyre", "Hezbollah"), "country": "Lebanon"}
    found = emerging(pd.DataFrame([*rows, lebanon]), week=WEEK, weeks=52,
                     data_start={"Syria": date(2020, 1, 1), "Lebanon": WEEK - timedelta(weeks=3)})  # fmt: skip
    assert ("new place", "Deir ez Zor", "Tadmor") in {(e.kind, e.admin1, e.what) for e in found}
    assert not [e for e in found if e.admin1 == "South"]
