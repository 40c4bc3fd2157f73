"""GIS layers: GeoPackage / Shapefile / GeoJSON round trips, names, types, CRS, determinism."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from factories import make_small_run, with_infeasible
from scipy import sparse

from siting import export
from siting._errors import DataError, ScenarioError

REPO = Path(__file__).resolve().parents[1]


def _args(run):
    return list(run)  # SmallRun is a NamedTuple in pipeline order


@pytest.fixture(scope="module")
def run():
    return make_small_run()


@pytest.fixture(scope="module")
def written(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("layers")
    files = export.write_layers(out, *_args(run))
    return out, files


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- nearest-open distance


def test_nearest_open_distance_matches_dense_brute_force():
    rng = np.random.default_rng(3)
    dense = np.where(rng.random((40, 9)) < 0.3, rng.uniform(1, 1000, (40, 9)), 0.0)
    is_open = rng.random(9) < 0.5
    got = export.nearest_open_distance(sparse.csr_array(dense), is_open)
    masked = np.where((dense > 0) & is_open, dense, np.inf)
    want = masked.min(axis=1)
    want[np.isinf(want)] = np.nan
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got).any() and np.isfinite(got).any()


def test_nearest_open_distance_rejects_wrong_length():
    with pytest.raises(DataError, match="open flags have 2 entries but reach has 3 sites"):
        export.nearest_open_distance(sparse.csr_array(np.ones((2, 3))), np.ones(2, bool))


# ---------------------------------------------------------------- files and round trips


def test_files_written(written):
    out, files = written
    names = {p.relative_to(out).as_posix() for p in files}
    assert "layers.gpkg" in names
    for layer in export.LAYERS:
        assert f"geojson/{layer}.geojson" in names
        for ext in ("shp", "shx", "dbf", "prj", "cpg"):
            assert f"shp/{layer}.{ext}" in names
    assert files == sorted(files)
    assert pyogrio.list_layers(out / "layers.gpkg")[:, 0].tolist() == list(export.LAYERS)


@pytest.mark.parametrize("layer", export.LAYERS)
def test_gpkg_fields_types_crs(written, layer):
    out, _ = written
    info = pyogrio.read_info(out / "layers.gpkg", layer=layer)
    assert list(info["fields"]) == list(export.SCHEMA[layer])
    assert info["crs"] == "EPSG:4549"
    assert info["geometry_type"] == export.GEOMETRY_TYPES[layer]
    ogr = dict(zip(info["fields"], info["ogr_types"], strict=True))
    sub = dict(zip(info["fields"], info["ogr_subtypes"], strict=True))
    for name, dtype in export.SCHEMA[layer].items():
        want = {"int64": "OFTInteger64", "float64": "OFTReal", "str": "OFTString", "bool": "OFTInteger"}[dtype]
        assert ogr[name] == want, name
        if dtype == "bool":
            assert sub[name] == "OFSTBoolean", name


def test_demand_cells_values(written, run):
    out, _ = written
    cells = gpd.read_file(out / "layers.gpkg", layer="demand_cells")
    assert len(cells) == len(run.demand.cells) == 61
    assert cells["cell_id"].is_monotonic_increasing
    assert cells["covered_before"].dtype == bool
    assert cells["covered_after"].sum() == run.plan.covered_after.sum()
    assert cells["uncoverable"].sum() == 1
    # the uncoverable high-density cell (row 0, col 16) has no open site within 500 m
    lone = cells.set_index("cell_id").loc[16]
    assert lone["band"] == "high" and lone["rule_id"] == "ZJ-R500" and np.isnan(lone["dist_after_m"])
    # low band: no radius, no distance
    low = cells[cells["band"] == "low"]
    assert low["radius_m"].isna().all() and low["dist_after_m"].isna().all()
    # a distance exists exactly where the cell is covered, and is within the owed radius
    covered = cells["covered_after"].to_numpy()
    assert (cells["dist_after_m"].notna().to_numpy() == covered).all()
    assert (cells.loc[covered, "dist_after_m"] <= cells.loc[covered, "radius_m"]).all()
    # opening sites never lengthens the distance to the nearest open one
    both = cells["dist_before_m"].notna()
    assert (cells.loc[both, "dist_after_m"] <= cells.loc[both, "dist_before_m"]).all()


def test_dist_after_by_hand(run, written):
    """Cell (row 0, col 0): centre (500050, 3340050); nearest open site is C01 at (500257, 3340043)."""
    out, _ = written
    cells = gpd.read_file(out / "layers.gpkg", layer="demand_cells").set_index("cell_id")
    assert cells.loc[0, "dist_after_m"] == pytest.approx(np.hypot(207.0, 7.0))
    assert cells.loc[0, "dist_before_m"] == pytest.approx(np.hypot(107.0, 193.0))  # E01 (500157, 3340243)


def test_chinese_names_and_units(written):
    out, _ = written
    units = gpd.read_file(out / "layers.gpkg", layer="planning_units")
    assert units["name"].tolist() == ["清波街道", "湖滨街道", "小营街道"]
    assert units["deficit_bef"].tolist() == [0, 10, 36]
    assert units["deficit_aft"].tolist() == [0, 0, 6]
    ex = gpd.read_file(out / "layers.gpkg", layer="facilities_existing")
    assert ex["name"].tolist() == ["清波颐养院", "湖滨福利院"]
    assert ex["action"].tolist() == ["kept", "expanded"]
    assert ex["beds_assumed"].tolist() == [True, False]
    new = gpd.read_file(out / "layers.gpkg", layer="facilities_new")
    assert new["site_id"].tolist() == ["C01", "C02", "C03"]


def test_uncovered_cells_reason(written, run):
    out, _ = written
    unc = gpd.read_file(out / "layers.gpkg", layer="uncovered_cells")
    owed = run.demand.cells["radius_m"].notna().to_numpy()
    assert len(unc) == int((owed & ~run.plan.covered_after).sum())
    assert unc.set_index("cell_id").loc[16, "reason"] == export.REASON_UNCOVERABLE
    assert set(unc["reason"]) <= {export.REASON_UNCOVERABLE, export.REASON_NOT_COVERED}


def test_service_areas_euclidean_are_band_circles(written, run):
    out, _ = written
    sa = gpd.read_file(out / "layers.gpkg", layer="service_areas")
    n_open = int(run.plan.open_after.sum())
    assert len(sa) == n_open * 2  # ZJ-R500 and ZJ-R1000 circles
    assert set(sa["rule_id"]) == {"ZJ-R500", "ZJ-R1000"}
    r500 = sa[sa["band"] == "high"]
    assert np.allclose(r500.area, np.pi * 500**2, rtol=2e-3)


def test_service_areas_network_are_reached_cells(run):
    net = run._replace(reach=replace(run.reach, mode="network"))
    sa = export.service_areas_layer(*_args(net))
    cells = run.demand.cells
    c01 = list(run.sites.table["site_id"]).index("C01")
    reached = run.reach.dist.tocsc()[:, [c01]].tocoo().row
    high = [i for i in reached if cells["band"].iat[i] == "high"]
    got = sa[(sa["fac_id"] == "C01") & (sa["band"] == "high")]
    assert len(got) == 1 and got["mode"].iat[0] == "network"
    assert got.area.iat[0] == pytest.approx(len(high) * 100.0 * 100.0)


def test_shapefile_names_encoding_and_crs(written):
    out, _ = written
    assert (out / "shp" / "demand_cells.cpg").read_text().strip().upper() in {"UTF-8", "UTF8"}
    for layer in export.LAYERS:
        info = pyogrio.read_info(out / "shp" / f"{layer}.shp")
        want = [export.SHP_NAMES.get(n, n) for n in export.SCHEMA[layer]]
        assert list(info["fields"]) == want
        assert all(len(n) <= 10 for n in info["fields"])
        assert info["crs"] == "EPSG:4549"
    units = gpd.read_file(out / "shp" / "planning_units.shp")
    assert units["name"].tolist() == ["清波街道", "湖滨街道", "小营街道"]
    gpkg = gpd.read_file(out / "layers.gpkg", layer="demand_cells")
    shp = gpd.read_file(out / "shp" / "demand_cells.shp").rename(columns={v: k for k, v in export.SHP_NAMES.items()})
    pd.testing.assert_frame_equal(pd.DataFrame(gpkg.drop(columns="geometry")),
                                  pd.DataFrame(shp.drop(columns="geometry")), check_dtype=False)


def test_shapefile_mapping_is_documented():
    doc = (REPO / "data" / "shapefile_fields.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\|\s*`(\w+)`\s*\|\s*`(\w+)`\s*\|", doc, flags=re.M))
    for long, short in export.SHP_NAMES.items():
        assert rows.get(long) == short, long
    assert len(set(export.SHP_NAMES.values())) == len(export.SHP_NAMES)


def test_geojson_is_rfc7946_wgs84(written):
    out, _ = written
    data = json.loads((out / "geojson" / "facilities_existing.geojson").read_text(encoding="utf-8"))
    assert "crs" not in data  # RFC 7946: no crs member, always WGS84 lon/lat
    lon, lat = data["features"][0]["geometry"]["coordinates"]
    assert 110 < lon < 125 and 25 < lat < 35
    assert data["features"][0]["properties"]["name"] == "清波颐养院"
    g = gpd.read_file(out / "geojson" / "demand_cells.geojson")
    assert g.crs.to_epsg() == 4326 and len(g) == 61


def test_export_crs_selectable(run, tmp_path):
    export.write_layers(tmp_path, *_args(run), formats=("gpkg",), crs="EPSG:32651")
    g = gpd.read_file(tmp_path / "layers.gpkg", layer="facilities_new")
    assert g.crs.to_epsg() == 32651
    assert not (tmp_path / "shp").exists()
    assert 200_000 < g.geometry.x.iat[0] < 900_000  # UTM 51N easting, not GK zone 40


# ---------------------------------------------------------------- determinism


def test_byte_identical_reruns(run, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    fa = export.write_layers(a, *_args(run))
    fb = export.write_layers(b, *_args(run))
    assert [p.relative_to(a) for p in fa] == [p.relative_to(b) for p in fb]
    for pa, pb in zip(fa, fb, strict=True):
        assert _sha(pa) == _sha(pb), pa.name
    with sqlite3.connect(a / "layers.gpkg") as con:
        stamps = {r[0] for r in con.execute("select last_change from gpkg_contents")}
    assert stamps == {export.FIXED_DATE}
    assert pyogrio.get_gdal_config_option("OGR_CURRENT_DATE") is None  # restored


# ---------------------------------------------------------------- edge cases and errors


def test_empty_new_sites_layer(tmp_path):
    run = with_infeasible(make_small_run())
    export.write_layers(tmp_path, *_args(run), formats=("gpkg", "shp"))
    new = gpd.read_file(tmp_path / "layers.gpkg", layer="facilities_new")
    assert len(new) == 0
    assert list(pyogrio.read_info(tmp_path / "layers.gpkg", layer="facilities_new")["fields"]) == [
        "site_id", "beds", "nursing_beds", "dementia_beds", "unit_id", "cost"]


def test_unknown_format_and_crs(run, tmp_path):
    with pytest.raises(ScenarioError, match=r"outputs.formats: unknown format\(s\) \['kml'\]"):
        export.write_layers(tmp_path, *_args(run), formats=("kml",))
    with pytest.raises(ScenarioError, match=r"outputs\.crs: unknown CRS 'EPSG:99999'"):
        export.write_layers(tmp_path, *_args(run), crs="EPSG:99999")


def test_plan_of_another_grid_is_refused(run, tmp_path):
    short = replace(run.plan, covered_after=run.plan.covered_after[:-1])
    bad = run._replace(plan=short)
    with pytest.raises(DataError, match=r"plan\.covered_after has 60 entries but the demand grid has 61"):
        export.write_layers(tmp_path, *_args(bad))


def test_nursing_beds_are_exported_when_the_model_types_them(run, tmp_path):
    """ZJ-NURSE enforced: each new site's nursing beds reach the layers (GeoPackage and Shapefile)."""
    new = run.plan.new_sites.assign(nursing_beds=[18, 17, 18])
    existing = run.plan.existing.assign(nursing_beds_added=[0, 18])
    typed = run._replace(plan=replace(run.plan, new_sites=new, existing=existing))
    export.write_layers(tmp_path / "a", *_args(typed), formats=("gpkg", "shp"))
    gpkg = gpd.read_file(tmp_path / "a" / "layers.gpkg", layer="facilities_new")
    assert gpkg["nursing_beds"].tolist() == [18, 17, 18] and gpkg["dementia_beds"].isna().all()
    shp = gpd.read_file(tmp_path / "a" / "shp" / "facilities_new.shp")
    assert shp["nurs_beds"].tolist() == [18, 17, 18]
    ex = gpd.read_file(tmp_path / "a" / "layers.gpkg", layer="facilities_existing")
    assert ex["nursing_added"].tolist() == [0, 18]
    export.write_layers(tmp_path / "b", *_args(run), formats=("gpkg",))  # not enforced: NULL, not 0
    assert gpd.read_file(tmp_path / "b" / "layers.gpkg", layer="facilities_new")["nursing_beds"].isna().all()
