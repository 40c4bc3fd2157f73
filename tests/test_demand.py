"""Demand grid: dasymetric census spreading, raster/point input, bands, planning units, errors.

Real-data truths (old 上城区, census 330102): 86,927 elderly aged 60+, 26.06 km² → ≈ 3,340/km²,
ZJ-BEDS ceil(300 × 86,927 / 10,000) = 2,608 beds.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely.geometry import box

from siting import demand, scenario
from siting._errors import DataError, ScenarioError
from siting.rules import load_rule_set
from siting.scenario import Scenario

CRS = "EPSG:4549"
X0, Y0 = 500_000.0, 3_340_000.0


def whole_area(s: Scenario) -> Scenario:
    """The default scenario over all 23 subdistricts (no `where` filters)."""
    pu = s.planning_units
    return s.model_copy(update={
        "study_area": s.study_area.model_copy(update={"where": None}),
        "planning_units": pu.model_copy(update={"layer": pu.layer.model_copy(update={"where": None})}),
    })


@pytest.fixture(scope="module")
def shangcheng(default_scenario_path: Path) -> demand.DemandGrid:
    return demand.build(scenario.load(default_scenario_path))


@pytest.fixture(scope="module")
def westlake(default_scenario_path: Path) -> demand.DemandGrid:
    return demand.build(whole_area(scenario.load(default_scenario_path)))


# ----------------------------------------------------------------- real data


def test_shangcheng_elderly_conserved(shangcheng):
    assert shangcheng.cells.elderly.sum() == pytest.approx(86_927, rel=1e-3)
    row = shangcheng.census.set_index("code").loc["330102"]
    assert row["count"] == 86_927
    assert row.weight_share_inside == 1.0
    assert not row.partial


def test_shangcheng_mean_density_and_beds(shangcheng):
    total = shangcheng.cells.elderly.sum()
    assert total / 26.06 == pytest.approx(3_340, rel=0.005)
    assert shangcheng.study_area.area_km2.iloc[0] == pytest.approx(26.06, rel=0.005)
    assert math.ceil(300 * total / 10_000) == 2_608
    units = shangcheng.units
    assert len(units) == 6
    assert units.elderly.sum() == pytest.approx(total, rel=1e-9)
    assert 2_608 <= units.beds_required.sum() <= 2_608 + len(units)
    assert (units.beds_required == np.ceil(300 * units.elderly / 10_000 - 1e-6)).all()
    assert set(units.rule_id) == {"ZJ-BEDS"}


def test_cells_contract(shangcheng):
    c = shangcheng.cells
    cols = {"cell_id", "geometry", "x", "y", "elderly", "land_km2", "density_km2", "band", "radius_m",
            "rule_id", "unit_id", "unit_name", "subdistrict"}
    assert cols <= set(c.columns)
    assert c.cell_id.is_unique and c.cell_id.is_monotonic_increasing
    assert (c.elderly > 0).all()
    assert c.crs == CRS
    x0, y0 = shangcheng.meta["grid_origin"]
    n_cols = shangcheng.meta["grid_shape"][1]
    rows = np.floor((y0 - c.y) / 100).astype(int)
    cols_ = np.floor((c.x - x0) / 100).astype(int)
    assert (c.cell_id == rows * n_cols + cols_).all()
    assert np.allclose(c.geometry.centroid.x, c.x) and np.allclose(c.geometry.area, 1e4)
    assert ((c.land_km2 > 0) & (c.land_km2 <= 0.01 + 1e-9)).all()
    assert set(c.subdistrict) == set(shangcheng.units.name)


def test_bands_follow_rule_set(shangcheng):
    rules = load_rule_set("zhejiang-2021")
    c = shangcheng.cells
    d = c.density_km2.to_numpy()
    expect = np.where(d > 3000, "high", np.where(d >= 1000, "medium", "low"))
    assert (c.band.to_numpy() == expect).all()
    assert (c.radius_m[c.band == "high"] == 500).all() and (c.radius_m[c.band == "medium"] == 1000).all()
    assert c.radius_m[c.band == "low"].isna().all()
    assert dict(zip(c.band, c.rule_id, strict=True)) == {b.name: b.rule_id for b in rules.bands
                                                        if b.name in set(c.band)}
    shares = shangcheng.meta["band_shares"]
    assert sum(v["elderly"] for v in shares.values()) == pytest.approx(c.elderly.sum())
    assert sum(v["cells"] for v in shares.values()) == len(c)


def test_band_radius_override_changes_cells(default_scenario_path):
    s = scenario.load(default_scenario_path)
    ov = s.rules.model_copy(update={"overrides": [
        scenario.RuleOverride(rule="ZJ-R500", set={"lower_km2": 5000}, reason="test a stricter band")]})
    rules = load_rule_set("zhejiang-2021", ov.overrides)
    d = demand.build(s, rules)
    c = d.cells
    assert (c.band[c.density_km2 > 5000] == "high").all()
    assert (c.band[(c.density_km2 <= 5000) & (c.density_km2 >= 1000)] == "medium").all()


def test_westlake_whole_area_partial_units_and_lake(westlake, hangzhou):
    census = westlake.census.set_index("code")
    assert list(census.index) == ["330102", "330103", "330104", "330105", "330106"]
    assert westlake.cells.elderly.sum() == pytest.approx(census.elderly_inside.sum(), rel=1e-6)
    # the units layer holds only part of the four districts: flagged as crowded (see notes)
    assert census.crowded.to_dict() == {"330102": False, "330103": True, "330104": True,
                                        "330105": True, "330106": True}
    assert any("330105" in n and "only part" in n for n in westlake.notes)
    lake = _west_lake(hangzhou)
    grid_boxes = _grid_boxes_within(westlake, lake)
    assert len(grid_boxes) > 400  # the lake is ~6 km²: the check below tests hundreds of cells
    on_lake = westlake.cells.cell_id.isin(grid_boxes)
    assert not on_lake.any()


def _west_lake(hangzhou: Path) -> shapely.Geometry:
    """West Lake as mapped in OSM (natural=water, name 西湖), read independently of siting."""
    water = gpd.read_file(hangzhou / "osm_extract.osm.pbf", layer="multipolygons",
                          columns=["natural", "name"])
    lake = water[(water.natural == "water") & (water.name == "西湖")].to_crs(CRS)
    assert len(lake) >= 1
    return shapely.union_all(lake.geometry.to_numpy())


def _grid_boxes_within(d: demand.DemandGrid, poly: shapely.Geometry) -> np.ndarray:
    x0, y0 = d.meta["grid_origin"]
    n_rows, n_cols = d.meta["grid_shape"]
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    boxes = shapely.box(x0 + cols * 100, y0 - (rows + 1) * 100, x0 + (cols + 1) * 100, y0 - rows * 100)
    inside = shapely.within(boxes.ravel(), poly)
    return (rows * n_cols + cols).ravel()[inside]


def test_westlake_builds_fast(westlake):
    assert westlake.meta["timings"]["total_s"] < 20  # bench/bench_demand.py: < 10 s target
    assert westlake.meta["study_area_km2"] == pytest.approx(133.6, rel=0.01)
    assert len(westlake.units) == 23


def test_deterministic(default_scenario_path, shangcheng):
    again = demand.build(scenario.load(default_scenario_path))
    pd.testing.assert_frame_equal(again.cells.drop(columns="geometry"),
                                  shangcheng.cells.drop(columns="geometry"))


# ----------------------------------------------------------------- synthetic scenarios


def _write(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    gdf.to_file(path, driver="GPKG", layer=path.stem)
    return path


def _synthetic(tmp: Path, *, study=None, counts=None, buildings=True, landuse_b=True,
               extra: dict | None = None) -> Scenario:
    """Two census units A (x 0–1 km) and B (x 1–2 km), 1 km tall, near (X0, Y0).

    A has two residential buildings (100 × 100 m and 100 × 200 m); B has a residential
    land-use block (200 × 200 m) and no buildings (when ``landuse_b``).
    """
    a, b = box(X0, Y0, X0 + 1000, Y0 + 1000), box(X0 + 1000, Y0, X0 + 2000, Y0 + 1000)
    units = _write(gpd.GeoDataFrame({"code": ["A", "B"], "uid": ["u1", "u2"], "nm": ["甲", "乙"]},
                                    geometry=[a, b], crs=CRS), tmp / "units.gpkg")
    study_path = _write(gpd.GeoDataFrame({"n": [1]}, geometry=[study or a.union(b)], crs=CRS),
                        tmp / "study.gpkg")
    bld = [box(X0 + 100, Y0 + 100, X0 + 200, Y0 + 200), box(X0 + 700, Y0 + 300, X0 + 800, Y0 + 500)]
    blds = _write(gpd.GeoDataFrame({"building": ["residential", "apartments"] if buildings else ["school"] * 2},
                                   geometry=bld, crs=CRS), tmp / "buildings.gpkg")
    lu_geoms = [box(X0 + 1300, Y0 + 300, X0 + 1500, Y0 + 500)] if landuse_b else [box(X0, Y0, X0 + 50, Y0 + 50)]
    lu = _write(gpd.GeoDataFrame({"landuse": ["residential" if landuse_b else "industrial"]},
                                 geometry=lu_geoms, crs=CRS), tmp / "landuse.gpkg")
    counts = counts or {"A": "300", "B": "200"}
    pd.DataFrame({"adcode": list(counts), "county": list(counts), "pop_60plus": list(counts.values())}
                 ).to_csv(tmp / "census.csv", index=False)
    raw = {
        "version": 1, "name": "synthetic",
        "study_area": {"path": str(study_path)},
        "demand": {"source": "census",
                   "census": {"table": str(tmp / "census.csv"), "units": {"path": str(units)},
                              "unit_code_field": "code"},
                   "weights": {"buildings": {"path": str(blds)}, "landuse": {"path": str(lu)}}},
        "planning_units": {"mode": "polygons", "layer": {"path": str(units)}, "id_field": "uid",
                           "name_field": "nm"},
        **(extra or {}),
    }
    return Scenario.model_validate(raw)


def test_fallback_to_residential_landuse(tmp_path):
    d = demand.build(_synthetic(tmp_path))
    census = d.census.set_index("code")
    assert census.loc["A", "weight"] == "residential buildings"
    assert census.loc["B", "weight"] == "residential land use"
    assert any("census unit B" in n and "residential land use" in n for n in d.notes)
    c = d.cells
    in_b = c.x > X0 + 1000
    assert c.elderly[in_b].sum() == pytest.approx(200)
    assert len(c[in_b]) == 4  # the 200 × 200 m block spans four cells, 50 each
    assert np.allclose(c.elderly[in_b], 50)
    # A: 300 elderly over 10,000 m² + 20,000 m² of footprint → 100 and 2 × 100
    assert np.allclose(np.sort(c.elderly[~in_b]), [100, 100, 100])
    units = d.units.set_index("unit_id")
    assert units.loc["u1", "beds_required"] == 9 and units.loc["u2", "beds_required"] == 6


def test_fallback_to_uniform_land(tmp_path):
    d = demand.build(_synthetic(tmp_path, landuse_b=False))
    census = d.census.set_index("code")
    assert census.loc["B", "weight"] == "uniform over land"
    in_b = d.cells.x > X0 + 1000
    assert len(d.cells[in_b]) == 100 and np.allclose(d.cells.elderly[in_b], 2.0)
    assert any("census unit B" in n and "uniform over land" in n for n in d.notes)


def test_partial_census_unit_gets_weight_share(tmp_path):
    # study area: unit B and the western 500 m of A (holds the 100 × 100 m building only)
    study = box(X0, Y0, X0 + 500, Y0 + 1000).union(box(X0 + 1000, Y0, X0 + 2000, Y0 + 1000))
    d = demand.build(_synthetic(tmp_path, study=study))
    a = d.census.set_index("code").loc["A"]
    assert a.partial and a.weight_share_inside == pytest.approx(1 / 3)
    assert a.elderly_inside == pytest.approx(100)
    assert d.cells.elderly.sum() == pytest.approx(300)
    assert any("census unit A" in n and "33.3%" in n for n in d.notes)


def test_auto_units_are_contiguous_and_sized(tmp_path):
    extra = {"planning_units": {"mode": "auto", "target_elderly": 100}}
    d = demand.build(_synthetic(tmp_path, landuse_b=False, extra=extra))
    units = d.units
    assert len(units) == 5  # round(500 / 100)
    assert units.elderly.sum() == pytest.approx(500)
    assert (units.geometry.geom_type == "Polygon").all()  # contiguous: one piece each
    assert units.area_km2.sum() == pytest.approx(2.0)
    assert set(d.cells.unit_id) <= set(units.unit_id)


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(("counts", "match"), [
    ({"A": "300"}, "census code 'B'.*not found"),
    ({"A": "300", "B": "-5"}, "'B'.*-5.*not a non-negative number"),
    ({"A": "300", "B": "many"}, "'B'.*'many'.*not a non-negative number"),
])
def test_bad_census_table(tmp_path, counts, match):
    with pytest.raises(DataError, match=match):
        demand.build(_synthetic(tmp_path, counts=counts))


def test_study_area_outside_data(tmp_path):
    far = box(X0 + 50_000, Y0, X0 + 51_000, Y0 + 1000)
    with pytest.raises(DataError, match="no census unit overlaps the study area"):
        demand.build(_synthetic(tmp_path, study=far))


def test_cell_larger_than_smallest_radius(tmp_path):
    s = _synthetic(tmp_path, extra={"grid": {"cell_size_m": 600}})
    with pytest.raises(ScenarioError, match=r"cell_size_m.*600 m.*smallest band radius \(500 m.*ZJ-R500"):
        demand.build(s)


def _raster_scenario(tmp: Path, tif: Path, study: shapely.Geometry, crs: str = "EPSG:4547") -> Scenario:
    study_path = _write(gpd.GeoDataFrame({"n": [1]}, geometry=[study], crs="EPSG:4326"), tmp / "study.gpkg")
    return Scenario.model_validate({
        "version": 1, "name": "raster", "study_area": {"path": str(study_path)},
        "demand": {"source": "raster", "raster": {"path": str(tif)}},
        "grid": {"crs": crs},
        "planning_units": {"mode": "auto", "target_elderly": 10_000},
    })


def _tif(path: Path, data: np.ndarray, crs: str | None, nodata: float = -9999.0) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="float32", crs=crs, nodata=nodata,
                       transform=from_origin(114.3, 30.6, 0.001, 0.001)) as dst:
        dst.write(data.astype("float32"), 1)
    return path


def test_raster_without_crs(tmp_path):
    tif = _tif(tmp_path / "nocrs.tif", np.ones((20, 20)), None)
    with pytest.raises(DataError, match="raster has no CRS"):
        demand.build(_raster_scenario(tmp_path, tif, box(114.302, 30.585, 114.315, 30.598)))


def test_raster_all_nodata(tmp_path):
    tif = _tif(tmp_path / "nodata.tif", np.full((20, 20), -9999.0), "EPSG:4326")
    with pytest.raises(DataError, match="every pixel over the study area is nodata"):
        demand.build(_raster_scenario(tmp_path, tif, box(114.302, 30.585, 114.315, 30.598)))


def test_raster_outside_study_area(tmp_path):
    tif = _tif(tmp_path / "far.tif", np.ones((20, 20)), "EPSG:4326")
    with pytest.raises(DataError, match="does not overlap the study area"):
        demand.build(_raster_scenario(tmp_path, tif, box(115.0, 30.0, 115.01, 30.01)))


def test_wuhan_raster_total_conserved(tmp_path, data_dir):
    """A 10 × 10 km box of central Wuhan: grid total = raster total inside the box (±0.5 %).

    The reference sums every pixel split into 10 × 10 sub-pixels by sub-pixel centre in the
    box, in lon/lat (independent of the grid code).
    """
    tif = data_dir / "wuhan_worldpop_age" / "wuhan_pop60plus_100m.tif"
    study = box(114.22, 30.52, 114.32, 30.61)
    d = demand.build(_raster_scenario(tmp_path, tif, study))
    with rasterio.open(tif) as src:
        win = rasterio.windows.from_bounds(114.21, 30.51, 114.33, 30.62, transform=src.transform)
        win = win.round_offsets().round_lengths()
        data = src.read(1, window=win, masked=True).filled(0.0)
        tr = src.window_transform(win)
    s = 10
    f = (np.arange(s) + 0.5) / s
    r, c = np.nonzero(data > 0)
    pr = (r[:, None, None] + f[None, :, None]).repeat(s, 2).ravel()
    pc = (c[:, None, None] + f[None, None, :]).repeat(s, 1).ravel()
    lon, lat = tr.c + pc * tr.a, tr.f + pr * tr.e
    val = np.repeat(data[r, c] / s**2, s * s)
    inside = (lon > 114.22) & (lon < 114.32) & (lat > 30.52) & (lat < 30.61)
    expected = val[inside].sum()
    assert expected > 50_000
    assert d.cells.elderly.sum() == pytest.approx(expected, rel=5e-3)
    assert d.units.elderly.sum() == pytest.approx(d.cells.elderly.sum())
    assert d.census.empty


def test_points_source(tmp_path):
    pts = gpd.GeoDataFrame({"elderly": [10.0, 5.0, 7.0]},
                           geometry=gpd.points_from_xy([X0 + 150, X0 + 160, X0 + 5000], [Y0 + 150] * 3),
                           crs=CRS)
    path = _write(pts, tmp_path / "pts.gpkg")
    s = _synthetic(tmp_path)
    s = s.model_copy(update={"demand": scenario.DemandSpec.model_validate(
        {"source": "points", "points": {"path": str(path)}})})
    d = demand.build(s)
    assert len(d.cells) == 1 and d.cells.elderly.iloc[0] == 15.0
    assert any("1 demand point(s) outside" in n for n in d.notes)
    bad = _write(pts.assign(elderly=[1.0, -2.0, 3.0]), tmp_path / "bad.gpkg")
    s2 = s.model_copy(update={"demand": scenario.DemandSpec.model_validate(
        {"source": "points", "points": {"path": str(bad)}})})
    with pytest.raises(DataError, match="negative"):
        demand.build(s2)
