"""`siting prepare`: clear failure without internet; the layer shaping checked on the real Hangzhou data."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point, box

from siting._errors import DataError
from siting.prepare import (
    _osmnx_settings,
    buildings_table,
    classify_facility,
    data_extent_table,
    facilities_table,
    prepare_place,
    study_area_table,
    subdistricts_table,
)


def _online() -> bool:
    try:
        socket.getaddrinfo("nominatim.openstreetmap.org", 443)
    except OSError:
        return False
    return True


def _as_osmnx(gdf: gpd.GeoDataFrame, element: str | pd.Series = "way") -> gpd.GeoDataFrame:
    """A frame shaped like osmnx's features output: (element, id) index, raw OSM tag columns."""
    elements = element if isinstance(element, pd.Series) else pd.Series(element, index=gdf.index)
    out = gdf.drop(columns=["osm_type", "osm_id"]).copy()
    out.index = pd.MultiIndex.from_arrays([elements.values, gdf["osm_id"].values], names=["element", "id"])
    return out


@pytest.mark.skipif(_online(), reason="network reachable: the offline failure cannot be shown here")
def test_no_internet_raises_data_error(tmp_path: Path) -> None:
    import osmnx as ox

    before = ox.settings.requests_timeout
    with pytest.raises(DataError, match=r"needs internet access to download OSM data for '西湖区, 杭州市'"):
        prepare_place("西湖区, 杭州市", tmp_path / "out", timeout_s=5)
    assert ox.settings.requests_timeout == before  # osmnx settings restored
    assert not (tmp_path / "out" / "subdistricts.gpkg").exists()


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "subdistricts.gpkg").write_bytes(b"")
    with pytest.raises(DataError, match=r"already holds subdistricts.gpkg") as info:
        prepare_place("anywhere", tmp_path)
    assert "--overwrite" in info.value.hints[0]


def test_osmnx_settings_are_restored_after_an_error(tmp_path: Path) -> None:
    import osmnx as ox

    before = (ox.settings.requests_timeout, ox.settings.cache_folder)
    with pytest.raises(RuntimeError), _osmnx_settings(timeout_s=3, cache_dir=tmp_path):
        assert ox.settings.requests_timeout == 3
        raise RuntimeError
    assert (ox.settings.requests_timeout, ox.settings.cache_folder) == before


def test_classifier_matches_the_hand_classified_hangzhou_layer(hangzhou: Path) -> None:
    ref = gpd.read_file(hangzhou / "elderly_facilities.gpkg")
    ref = ref[ref["kind"] != "duplicate_node"]  # needs the mapped areas, tested below
    got = [classify_facility(r["name"], json.loads(r["tags_json"]))[0] for _, r in ref.iterrows()]
    mismatches = [(n, k, g) for n, k, g in zip(ref["name"], ref["kind"], got, strict=True) if k != g]
    assert mismatches == []
    assert sum(g == "elderly_care_institution" for g in got) == int(ref["include_default"].sum()) == 6


def test_classifier_by_tags_only() -> None:
    assert classify_facility(None, {"social_facility": "nursing_home"})[:2] == ("elderly_care_institution",
                                                                               "medium")
    assert classify_facility("x", {"social_facility": "group_home", "social_facility:for": "senior"})[0] == \
        "elderly_care_institution"
    assert classify_facility("x", {"social_facility": "group_home", "social_facility:for": "child"})[0] == \
        "uncertain"
    assert classify_facility("某某居家养老服务照料中心", {"social_facility": "nursing_home"})[0] == \
        "community_home_care_centre"


def test_subdistricts_and_study_area_from_the_hangzhou_polygons(hangzhou: Path) -> None:
    ref = gpd.read_file(hangzhou / "subdistricts.gpkg", layer="subdistricts")
    raw = _as_osmnx(ref.rename(columns={"subdistrict": "name", "name_en": "name:en"}).assign(
        admin_level="8", boundary="administrative"), element="relation")
    place = ref.union_all().buffer(0.001)
    units = subdistricts_table(raw, place)
    assert list(units.columns) == list(ref.columns)
    assert sorted(units["subdistrict"]) == sorted(ref["subdistrict"])
    merged = units.merge(ref[["osm_id", "area_km2"]], on="osm_id", suffixes=("", "_ref"))
    assert (merged["area_km2"] - merged["area_km2_ref"]).abs().max() < 0.01 * merged["area_km2_ref"].max()
    # a subdistrict outside the place is dropped
    assert len(subdistricts_table(raw, ref.geometry.iloc[0].buffer(-0.0001))) == 1
    study = study_area_table(units, "test", place)
    assert study["area_km2"].iloc[0] == pytest.approx(ref["area_km2"].sum(), rel=0.01)
    extent = data_extent_table(study, buffer_m=1000)
    assert extent.to_crs(32651).area.iloc[0] > study.to_crs(32651).area.iloc[0] * 1.1
    assert extent.geometry.iloc[0].contains(study.geometry.iloc[0])


def test_buildings_table_reproduces_the_hangzhou_layer(hangzhou: Path) -> None:
    ref = gpd.read_file(hangzhou / "buildings.gpkg", layer="buildings", rows=slice(0, 2000))
    raw = _as_osmnx(ref.rename(columns={"levels": "building:levels"}).drop(columns="footprint_m2"),
                    element=ref["osm_type"])
    extent = gpd.read_file(hangzhou / "data_extent.geojson").geometry.iloc[0]
    got = buildings_table(raw, extent)
    assert list(got.columns) == list(ref.columns)
    assert len(got) == len(ref)  # every reference building is inside the extent by construction
    assert (got["osm_id"].to_numpy() == ref["osm_id"].to_numpy()).all()
    rel = (got["footprint_m2"] - ref["footprint_m2"]).abs() / ref["footprint_m2"]
    assert rel.max() < 0.005
    # a footprint outside the extent is left out
    assert len(buildings_table(raw, box(0, 0, 1, 1))) == 0


def test_facilities_table_columns_and_duplicates(hangzhou: Path) -> None:
    ref = gpd.read_file(hangzhou / "elderly_facilities.gpkg")
    units = gpd.read_file(hangzhou / "subdistricts.gpkg", layer="subdistricts")
    study = gpd.read_file(hangzhou / "study_area.geojson")
    home = ref[ref["name"] == "杭州市第二社会福利院"].iloc[0]
    area = Point(home["lon"], home["lat"]).buffer(0.001)
    raw = gpd.GeoDataFrame(
        {"name": ["杭州市第二社会福利院", "第二社会福利院", "某老年活动中心"],
         "amenity": ["social_facility", None, "social_facility"],
         "social_facility": ["group_home", None, "group_home"],
         "social_facility:for": ["senior", None, "senior"], "addr:street": ["x路", None, None]},
        geometry=[area, Point(home["lon"], home["lat"]), Point(100.0, 10.0)], crs="EPSG:4326",
        index=pd.MultiIndex.from_tuples([("way", 1), ("node", 2), ("node", 3)], names=["element", "id"]))
    got = facilities_table(raw, study, units)
    assert list(got.columns) == list(ref.columns)
    by_id = got.set_index("osm_id")
    assert by_id.loc[1, "kind"] == "elderly_care_institution" and bool(by_id.loc[1, "include_default"])
    assert by_id.loc[2, "kind"] == "duplicate_node" and not by_id.loc[2, "include_default"]
    assert by_id.loc[3, "kind"] == "senior_activity_centre"
    assert by_id.loc[1, "subdistrict"] == home["subdistrict"]
    assert bool(by_id.loc[1, "in_study_area"]) and not bool(by_id.loc[3, "in_study_area"])
    assert by_id.loc[3, "dist_to_study_area_m"] > 1e6
    assert by_id.loc[1, "addr"] == "street=x路"


def test_datasets_json_matches_the_data_root(data_dir: Path) -> None:
    from siting._data import sha256_file

    repo = Path(__file__).resolve().parents[1]
    want = json.loads((repo / "data" / "datasets.json").read_text(encoding="utf-8"))
    on_disk = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
                     if p.is_file() and p.name != "SOURCES.md")
    assert sorted(want) == on_disk
    assert {rel: sha256_file(data_dir / rel) for rel in want} == want
    readme = (repo / "data" / "README.md").read_text(encoding="utf-8")
    for rel, sha in want.items():
        assert sha in readme and Path(rel).name in readme, rel
