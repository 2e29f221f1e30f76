"""The map in every report (issue 16, item 1): events of the last four weeks over the admin1 areas, each coloured
by its series' level; boundaries from a GeoJSON or shapefile joined on admin1 name (names that did not join are
listed); without boundaries, admin1 bubbles at the centroid of their events. Offline: matplotlib only."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.report.maps import admin1_levels, join, normalise, read_boundaries

NOW = "2026-11-24T09:00:00+00:00"


def test_names_are_compared_without_case_accents_spacing_or_suffix():
    assert normalise("Deir ez-Zor Governorate") == normalise("DEIR EZ ZOR") == normalise("Deir ez Zor")
    assert normalise("Ḥamāh") == normalise("Hamah") and normalise("Homs") != normalise("Hama")


def _copy_demo(demo_dir: Path, tmp_path: Path, **report: str) -> Path:
    shutil.copy(demo_dir / "monitor.db", tmp_path / "monitor.db")
    text = (demo_dir / "monitor.toml").read_text(encoding="utf-8")
    config = tmp_path / "monitor.toml"
    extra = "".join(f'{k} = "{v}"\n' for k, v in report.items())
    config.write_text(text.replace("[report]\n", f"[report]\n{extra}", 1), encoding="utf-8")
    return config


def _centroids(db: Path) -> dict[str, tuple[float, float]]:
    with sqlite3.connect(db) as conn:
        return {a: (lon, lat) for a, lat, lon in conn.execute("SELECT admin1, avg(latitude), avg(longitude) FROM incidents GROUP BY admin1")}


def _square(lon: float, lat: float, half: float = 0.3) -> list[list[float]]:
    return [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half], [lon - half, lat - half]]


def test_the_demo_report_has_a_map_with_bubbles_and_the_levels_of_the_week(demo_dir):
    report = (demo_dir / "reports" / "2023-W09" / "report.md").read_text(encoding="utf-8")
    assert "![Events of the last four weeks and each admin1's level this week](map.png)" in report
    assert "Each admin1 is a bubble at the centroid of its events" in report
    assert (demo_dir / "reports" / "2023-W09" / "map.png").stat().st_size > 20_000


def _write_boundaries(path: Path, centroids: dict, names: dict[str, str]) -> Path:
    if path.suffix == ".shp":
        import shapefile

        with shapefile.Writer(str(path), shapeType=shapefile.POLYGON) as shp:
            shp.field("ADM1_EN", "C")
            shp.field("ADM1_PCODE", "C")
            for i, (admin1, spelled) in enumerate(names.items()):
                shp.poly([_square(*centroids[admin1])])
                shp.record(spelled, f"SY{i:02d}")
        return path
    features = [{"type": "Feature", "properties": {"ADM1_EN": spelled, "ADM1_PCODE": f"SY{i:02d}"},
                 "geometry": {"type": "Polygon", "coordinates": [_square(*centroids[admin1])]}}
                for i, (admin1, spelled) in enumerate(names.items())]  # fmt: skip
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["adm1.geojson", "adm1.shp"])
def test_boundaries_are_joined_on_the_admin1_name_and_the_names_that_did_not_join_are_listed(demo_dir, tmp_path, name):
    """Areas spelled as OCHA writes them ('Homs Governorate', 'Deir-ez-Zor', 'HAMA'); Idleb and Tartous have none."""
    centroids = _centroids(demo_dir / "monitor.db")
    names = {a: {"Homs": "Homs Governorate", "Deir ez Zor": "Deir-ez-Zor", "Hama": "HAMA"}.get(a, a)
             for a in centroids if a not in ("Idleb", "Tartous")}  # fmt: skip
    boundaries = _write_boundaries(tmp_path / name, centroids, names)
    config = _copy_demo(demo_dir, tmp_path, boundaries=str(boundaries))
    result = CliRunner().invoke(cli, ["--config", str(config), "report", "--week", "2023-W09"], env={"MONITOR_NOW": NOW})
    assert result.exit_code == 0, result.output
    report = (tmp_path / "reports" / "2023-W09" / "report.md").read_text(encoding="utf-8")
    assert "Areas coloured by their series' highest level this week" in report
    assert f"Not on the map (no area of that name in {name}): Idleb, Tartous;" in report
    areas = read_boundaries(boundaries)
    levels = {"Homs": "alert", "Deir ez Zor": "alert", "Idleb": "quiet"}
    joined, missing = join(areas, levels)
    assert sorted(areas[i].name for i in joined) == ["Deir-ez-Zor", "Homs Governorate"] and missing == ["Idleb"]


def test_levels_per_admin1_are_the_highest_of_its_series(demo_dir):
    from monitor.config import load_config
    from monitor.detection import detect_week
    from monitor.store import Store
    from datetime import date, datetime, timezone

    config = load_config(demo_dir / "monitor.toml")
    with Store(config.db_path, read_only=True) as store:
        result = detect_week(config, store, week=date(2023, 2, 27), now=datetime(2026, 11, 24, 9, tzinfo=timezone.utc))
    levels = admin1_levels(result.results, result.no_data)
    flagged = {dict(r.series.labels).get("admin1") for r in result.flagged}
    assert {a for a, lv in levels.items() if lv == "alert"} == flagged - {None}
    assert set(result.map_events["event_date"].dt.date.astype(str)) <= {f"2023-0{m}-{d:02d}" for m in (2, 3) for d in range(1, 32)}
    assert result.map_events["event_date"].min().date() >= date(2023, 2, 6)


def test_a_boundaries_file_that_cannot_be_read_costs_the_map_its_areas_not_the_report(demo_dir, tmp_path):
    """The map is not worth a report or an alert: bubbles instead, and the report says why in one line."""
    bad = tmp_path / "adm1.geojson"
    bad.write_text("{not json", encoding="utf-8")
    config = _copy_demo(demo_dir, tmp_path, boundaries=str(bad))
    result = CliRunner().invoke(cli, ["--config", str(config), "report", "--week", "2023-W09"], env={"MONITOR_NOW": NOW})
    assert result.exit_code == 0, result.output
    report = (tmp_path / "reports" / "2023-W09" / "report.md").read_text(encoding="utf-8")
    assert "The boundaries could not be used, so each admin1 is a bubble at the centroid of its events: " in report
    assert "cannot read the admin1 boundaries (JSONDecodeError" in report


def test_holes_stay_holes_whatever_the_winding():
    from monitor.report.maps import _rings_of, _signed_area

    outer = [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]  # counter-clockwise
    hole = [[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]  # wound the same way, as older exports do
    rings = _rings_of({"type": "Polygon", "coordinates": [outer, hole]})
    assert _signed_area(rings[0]) > 0 > _signed_area(rings[1])
    assert _rings_of({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}) == []  # no polygon: nothing, no error


def test_the_digest_carries_the_map_inline(demo_dir):
    from email import message_from_bytes, policy

    (eml,) = (demo_dir / "reports" / "2023-W09").glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    html = message.get_body(preferencelist=("html",)).get_content()
    images = [p for p in message.walk() if p.get_content_type() == "image/png"]
    (map_part,) = [p for p in images if p.get_filename() == "map.png"]
    assert f'src="cid:{map_part["Content-ID"].strip("<>")}"' in html
    assert map_part.get_content() == (demo_dir / "reports" / "2023-W09" / "map.png").read_bytes()
