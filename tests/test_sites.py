"""Sites: existing institutions (beds, ids), generated and given candidates, units, hospitals,
and the GCJ-02 check — on the real Hangzhou layers and on small layers written per test."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.spatial import cKDTree

from siting import scenario as scenario_mod
from siting import sites as sites_mod
from siting._errors import DataError
from siting._layers import read_layer
from siting.demand import DemandGrid
from siting.scenario import CandidatesSpec, ExistingFacilitiesSpec, GenerateCandidates, LayerRef

CRS = "EPSG:4549"


@pytest.fixture(scope="module")
def scenario(default_scenario_path):
    return scenario_mod.load(default_scenario_path)


@pytest.fixture(scope="module")
def demand(scenario) -> DemandGrid:
    """DemandGrid-shaped: the six planning units of old Shangcheng and their union (no cells needed)."""
    units = read_layer(scenario.planning_units.layer, field="planning_units.layer", crs=CRS)
    units = gpd.GeoDataFrame({"unit_id": units["osm_id"].astype(str), "name": units["subdistrict"],
                              "subdistrict": units["subdistrict"]}, geometry=units.geometry, crs=CRS)
    area = gpd.GeoDataFrame(geometry=[shapely.union_all(units.geometry.to_numpy())], crs=CRS)
    cells = gpd.GeoDataFrame({"x": [], "y": [], "radius_m": []}, geometry=[], crs=CRS)
    return DemandGrid(cells=cells, units=units, study_area=area, census=pd.DataFrame(), crs=CRS,
                      cell_size_m=100.0)


@pytest.fixture(scope="module")
def built(scenario, demand):
    return sites_mod.build(scenario, demand)


def _with(scenario, **update):
    return scenario.model_copy(update=update)


def _points_layer(tmp_path, rows: dict, lonlat: list[tuple[float, float]], name="pts.gpkg"):
    gdf = gpd.GeoDataFrame(rows, geometry=gpd.points_from_xy(*zip(*lonlat, strict=True)), crs="EPSG:4326")
    path = tmp_path / name
    gdf.to_file(path, driver="GPKG")
    return path


LONLAT = [(120.166, 30.215), (120.160, 30.229), (120.170, 30.240)]


def _existing(scenario, path, **spec):
    return _with(scenario, existing_facilities=ExistingFacilitiesSpec(layer=LayerRef(path=path), **spec))


# ---------------------------------------------------------------- the default scenario


def test_default_sites_table(built):
    t = built.table
    assert list(t.columns) == sites_mod.COLUMNS
    assert built.n_existing == 6
    assert t["kind"].tolist() == ["existing"] * 6 + ["candidate"] * (len(t) - 6)
    ex = t.iloc[:6]
    assert ex["site_id"].astype(int).is_monotonic_increasing
    assert (ex["beds"] == 100).all() and ex["beds_assumed"].all()
    assert "松龄院" in set(ex["name"])  # outside the study area, kept: it may reach cells inside
    assert (ex.loc[ex["name"] == "松龄院", "unit_id"] == "").all()
    cand = t.iloc[6:]
    assert len(cand) > 100 and cand["site_id"].is_monotonic_increasing and t["site_id"].is_unique
    assert (cand["beds"] == 0).all() and (cand["cost_open"] == 3_000_000).all()
    assert (cand["unit_id"] != "").all()  # generated inside the study area = union of the units
    on_buildings = {"building=" + v for v in ("residential", "apartments", "house", "dormitory", "detached")}
    assert set(cand["landuse"]) <= {"residential", "commercial", "retail"} | on_buildings
    assert (cand["landuse"] == "residential").sum() > 50 and cand["landuse"].isin(on_buildings).sum() > 10
    assert np.allclose(t.geometry.x, t["x"]) and np.allclose(t.geometry.y, t["y"])
    assert any("ASSUMED" in n for n in built.notes)
    n_out = int((ex["unit_id"] == "").sum())
    assert n_out == 4 and built.meta["n_existing_outside_study_area"] == n_out
    assert any(n.startswith(f"{n_out} existing institution(s) lie outside") for n in built.notes)
    assert built.meta["gcj02_suspected"] is False


def test_candidates_lie_on_hosting_land_spaced(built, scenario, demand):
    cand = built.table[built.table["kind"] == "candidate"]
    landuse = read_layer(scenario.demand.weights.landuse, field="landuse", crs=CRS)
    host = landuse[landuse["landuse"].isin(["residential", "commercial", "retail"])]
    b = read_layer(scenario.demand.weights.buildings, field="buildings", crs=CRS)
    homes = b[b["building"].isin(["residential", "apartments", "house", "dormitory", "detached"])]
    excluded = landuse[landuse["landuse"].isin(scenario.candidates.generate.exclude_landuse)]
    host_union = shapely.union_all(np.concatenate([host.geometry.to_numpy(), homes.geometry.to_numpy()]))
    area = demand.study_area.geometry.iloc[0]
    pts = cand.geometry.to_numpy()
    assert (shapely.distance(pts, host_union) < 1e-6).all()
    assert (shapely.distance(pts, area) < 1e-6).all()
    if len(excluded):
        assert not shapely.intersects(pts, shapely.union_all(excluded.geometry.to_numpy())).any()
    d, _ = cKDTree(cand[["x", "y"]].to_numpy()).query(cand[["x", "y"]].to_numpy(), k=2)
    assert d[:, 1].min() >= 200 - 1e-6  # spacing_m: 200 in the default scenario


def test_unit_ids_agree_with_point_in_polygon(built, demand):
    joined = gpd.sjoin(built.table[["site_id", "geometry"]], demand.units, predicate="within")
    got = built.table.set_index("site_id")["unit_id"]
    for sid, uid in zip(joined["site_id"], joined["unit_id"], strict=True):
        assert got[sid] == uid
    assert set(got[got != ""].index) == set(joined["site_id"])


def test_build_is_deterministic(scenario, demand, built):
    again = sites_mod.build(scenario, demand)
    pd.testing.assert_frame_equal(pd.DataFrame(again.table), pd.DataFrame(built.table))


def test_near_hospital_from_osm_buildings(built, scenario):
    b = read_layer(scenario.demand.weights.buildings, field="buildings", crs=CRS)
    hosp = b[(b["amenity"] == "hospital") | (b["building"] == "hospital")].geometry.representative_point()
    d, _ = cKDTree(hosp.get_coordinates().to_numpy()).query(built.table[["x", "y"]].to_numpy())
    assert np.array_equal(built.table["near_hospital"].to_numpy(), d <= sites_mod.NEAR_HOSPITAL_M)
    assert built.table["near_hospital"].any() and not built.table["near_hospital"].all()


def test_generate_min_distance_and_max_candidates(scenario, demand, built):
    gen = GenerateCandidates(spacing_m=200, min_distance_to_existing_m=800, max_candidates=40)
    s = sites_mod.build(_with(scenario, candidates=CandidatesSpec(mode="generate", generate=gen)), demand)
    cand = s.table[s.table["kind"] == "candidate"]
    assert len(cand) == 40
    ex = s.table[s.table["kind"] == "existing"]
    d, _ = cKDTree(ex[["x", "y"]].to_numpy()).query(cand[["x", "y"]].to_numpy())
    assert d.min() >= 800
    again = sites_mod.build(_with(scenario, candidates=CandidatesSpec(mode="generate", generate=gen)), demand)
    assert again.table["x"].tolist() == s.table["x"].tolist()
    allc = built.table[built.table["kind"] == "candidate"]
    assert set(zip(cand["x"], cand["y"], strict=True)) <= set(zip(allc["x"], allc["y"], strict=True))


def test_generate_needs_land_use(scenario, demand):
    weights = scenario.demand.weights.model_copy(update={"landuse": None})
    sc = _with(scenario, demand=scenario.demand.model_copy(update={"weights": weights}))
    with pytest.raises(DataError, match="needs a land-use layer"):
        sites_mod.build(sc, demand)


# ---------------------------------------------------------------- existing facilities


def test_beds_from_field_and_default(tmp_path, scenario, demand):
    path = _points_layer(tmp_path, {"fid_": ["a", "b", "c"], "nm": ["甲", "乙", "丙"],
                                    "beds": ["120", None, "30"]}, LONLAT)
    sc = _existing(scenario, path, id_field="fid_", name_field="nm", beds_field="beds", default_beds=50)
    t = sites_mod.build(sc, demand).table.iloc[:3]
    assert t["site_id"].tolist() == ["a", "b", "c"]
    assert t["beds"].tolist() == [120, 50, 30]
    assert t["beds_assumed"].tolist() == [False, True, False]


@pytest.mark.parametrize(("beds", "default", "match"), [
    (["120", "-5", "30"], 50, r"facility 'b': `beds` = '-5' is not a whole number of beds"),
    (["120", "many", "30"], 50, r"facility 'b': `beds` = 'many'"),
    (["120", "12.5", "30"], 50, r"facility 'b': `beds` = '12.5'"),
    (["120", None, "30"], None, r"facility 'b' has no value in `beds` and no `default_beds`"),
])
def test_bad_beds(tmp_path, scenario, demand, beds, default, match):
    path = _points_layer(tmp_path, {"fid_": ["a", "b", "c"], "nm": ["x", "y", "z"], "beds": beds}, LONLAT)
    sc = _existing(scenario, path, id_field="fid_", name_field="nm", beds_field="beds", default_beds=default)
    with pytest.raises(DataError, match=match):
        sites_mod.build(sc, demand)


def test_numeric_nan_beds_without_default(tmp_path, scenario, demand):
    path = _points_layer(tmp_path, {"fid_": [1, 2, 3], "nm": ["x", "y", "z"], "beds": [10.0, np.nan, 5.0]},
                         LONLAT)
    sc = _existing(scenario, path, id_field="fid_", name_field="nm", beds_field="beds")
    with pytest.raises(DataError, match=r"facility '2' has no value in `beds`"):
        sites_mod.build(sc, demand)


def test_duplicate_ids(tmp_path, scenario, demand):
    path = _points_layer(tmp_path, {"fid_": [7, 7, 9], "nm": ["x", "y", "z"]}, LONLAT)
    with pytest.raises(DataError, match=r"duplicate id\(s\) in `fid_`: \['7'\]"):
        sites_mod.build(_existing(scenario, path, id_field="fid_", name_field="nm", default_beds=10), demand)


def test_missing_id_field(tmp_path, scenario, demand):
    path = _points_layer(tmp_path, {"nm": ["x", "y", "z"]}, LONLAT)
    with pytest.raises(DataError, match=r"field\(s\) 'osm_id' missing"):
        sites_mod.build(_existing(scenario, path, name_field="nm", default_beds=10), demand)


def test_empty_site_layer(tmp_path, scenario, demand, hangzhou):
    ref = LayerRef(path=hangzhou / "elderly_facilities.gpkg", where={"name": "没有这个名字"})
    sc = _with(scenario, existing_facilities=ExistingFacilitiesSpec(layer=ref, default_beds=10))
    with pytest.raises(DataError, match="matched no row"):
        sites_mod.build(sc, demand)


# ---------------------------------------------------------------- candidate layer


def test_candidate_layer_with_costs(tmp_path, scenario, demand):
    path = _points_layer(tmp_path, {"cid": ["k2", "k1", "k3"], "cost": [1e6, None, 2.5e6]}, LONLAT, "c.gpkg")
    sc = _with(scenario, candidates=CandidatesSpec(mode="layer", layer=LayerRef(path=path), id_field="cid",
                                                   cost_field="cost"))
    t = sites_mod.build(sc, demand).table
    cand = t[t["kind"] == "candidate"]
    assert cand["site_id"].tolist() == ["k1", "k2", "k3"]
    assert cand["cost_open"].tolist() == [3_000_000.0, 1e6, 2.5e6]
    assert (cand["unit_id"] != "").all()


def test_candidate_layer_bad_cost_and_clash(tmp_path, scenario, demand):
    path = _points_layer(tmp_path, {"cid": ["k1", "k2", "k3"], "cost": ["1", "cheap", "2"]}, LONLAT, "c.gpkg")
    sc = _with(scenario, candidates=CandidatesSpec(mode="layer", layer=LayerRef(path=path), id_field="cid",
                                                   cost_field="cost"))
    with pytest.raises(DataError, match=r"candidate 'k2': `cost` = 'cheap' is not a cost"):
        sites_mod.build(sc, demand)
    path2 = _points_layer(tmp_path, {"cid": ["514617957", "x"]}, LONLAT[:2], "c2.gpkg")
    sc2 = _with(scenario, candidates=CandidatesSpec(mode="layer", layer=LayerRef(path=path2), id_field="cid"))
    with pytest.raises(DataError, match=r"candidate id\(s\) \['514617957'\] equal existing facility ids"):
        sites_mod.build(sc2, demand)


def test_no_sites_at_all(tmp_path, scenario, demand):
    path = _points_layer(tmp_path, {"cid": ["k1"]}, LONLAT[:1], "c.gpkg")
    empty = gpd.read_file(path).iloc[:0]
    empty.to_file(tmp_path / "empty.gpkg", driver="GPKG")
    sc = _with(scenario, existing_facilities=ExistingFacilitiesSpec(),
               candidates=CandidatesSpec(mode="layer", layer=LayerRef(path=tmp_path / "empty.gpkg"), id_field="cid"))
    with pytest.raises(DataError, match="the layer is empty"):
        sites_mod.build(sc, demand)


# ---------------------------------------------------------------- GCJ-02


def _all_facilities(tmp_path, hangzhou, shift: bool):
    f = gpd.read_file(hangzhou / "elderly_facilities.gpkg")
    pts = f.geometry.representative_point()
    lon, lat = pts.x.to_numpy(), pts.y.to_numpy()
    if shift:
        lon, lat = sites_mod.wgs84_to_gcj02(lon, lat)
    path = _points_layer(tmp_path, {"osm_id": f["osm_id"], "name": f["name"]}, list(zip(lon, lat, strict=True)),
                         "gcj.gpkg" if shift else "wgs.gpkg")
    return path


@pytest.mark.parametrize("shift", [False, True])
def test_gcj02_suspicion(tmp_path, scenario, demand, hangzhou, shift, caplog):
    sc = _existing(scenario, _all_facilities(tmp_path, hangzhou, shift), default_beds=10)
    with caplog.at_level(logging.WARNING, logger="siting.sites"):
        s = sites_mod.build(sc, demand)
    assert s.meta["gcj02_suspected"] is shift
    assert any("GCJ-02" in n for n in s.notes) is shift
    assert ("GCJ-02" in caplog.text) is shift


def test_gcj02_round_trip():
    lon, lat = np.array([120.15, 121.5]), np.array([30.25, 29.8])
    glon, glat = sites_mod.wgs84_to_gcj02(lon, lat)
    assert 300 < np.hypot((glon - lon) * 96_000, (glat - lat) * 111_000).min() < 700
    wlon, wlat = sites_mod.gcj02_to_wgs84(glon, glat)
    assert np.allclose(wlon, lon, atol=1e-8) and np.allclose(wlat, lat, atol=1e-8)


def test_gcj02_suspicion_accepts_mapped_areas(hangzhou):
    """Facilities as OSM areas (polygons) are judged by a point inside each: real data passes."""
    f = gpd.read_file(hangzhou / "elderly_facilities.gpkg").to_crs(CRS)
    b = gpd.read_file(hangzhou / "buildings.gpkg").to_crs(CRS)
    areas = f.geometry.buffer(5.0)
    assert set(areas.geom_type) == {"Polygon"}
    assert sites_mod.gcj02_suspicion(areas, b.geometry) is None
    lon, lat = sites_mod.wgs84_to_gcj02(f.to_crs(4326).geometry.x.to_numpy(), f.to_crs(4326).geometry.y.to_numpy())
    shifted = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs="EPSG:4326").to_crs(CRS).buffer(5.0)
    assert "GCJ-02" in sites_mod.gcj02_suspicion(shifted, b.geometry)
    assert sites_mod.gcj02_suspicion(f.geometry.iloc[:2], b.geometry) is None  # too few to judge
