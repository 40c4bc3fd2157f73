"""GIS layers of a run: GeoPackage, Shapefile and GeoJSON, written deterministically.

One GeoPackage ``layers.gpkg`` holds six layers (``LAYERS``); the same layers go to
``shp/<layer>.shp`` (field names cut to ≤ 10 characters by ``SHP_NAMES``, documented in
``data/shapefile_fields.md``; UTF-8 with a ``.cpg``) and ``geojson/<layer>.geojson``
(always EPSG:4326, RFC 7946). Rows are sorted, columns in a fixed order, and the
GeoPackage/DBF timestamps are pinned so two runs give the same bytes.

Service areas (``service_areas``) depend on the run's distance mode:

* euclidean — one circle (buffer) per open institution and per band radius (ZJ-R500, ZJ-R1000);
* network — per open institution and band, the union of the demand cells of that band it
  reaches within the band radius along the street network (``Reach.dist``), i.e. the cells
  it serves, not an isochrone of the streets.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from ._errors import DataError, ScenarioError

LAYERS = (
    "demand_cells",
    "planning_units",
    "facilities_existing",
    "facilities_new",
    "uncovered_cells",
    "service_areas",
)
FORMATS = ("gpkg", "shp", "geojson")
FIXED_DATE = "2000-01-01T00:00:00Z"  # written where GDAL would write "now" (determinism)
GEOJSON_CRS = "EPSG:4326"  # RFC 7946 allows nothing else

# GeoPackage field name -> Shapefile field name (≤ 10 characters); see data/shapefile_fields.md.
SHP_NAMES: dict[str, str] = {
    "density_km2": "dens_km2",
    "covered_before": "cov_before",
    "covered_after": "cov_after",
    "dist_before_m": "dist_bef_m",
    "dist_after_m": "dist_aft_m",
    "uncoverable": "uncoverabl",
    "beds_assumed": "beds_assum",
    "deficit_bef": "deficit_bf",
    "deficit_aft": "deficit_af",
    "nursing_beds": "nurs_beds",
    "dementia_beds": "dem_beds",
    "nursing_added": "nurs_added",
}

# Column order and pandas dtype of every layer (geometry last). "bool" never holds nulls;
# float columns hold NaN where a value is missing (written as NULL).
SCHEMA: dict[str, dict[str, str]] = {
    "demand_cells": {
        "cell_id": "int64", "elderly": "float64", "density_km2": "float64", "band": "str",
        "radius_m": "float64", "rule_id": "str", "unit_id": "str", "covered_before": "bool",
        "covered_after": "bool", "dist_before_m": "float64", "dist_after_m": "float64",
        "uncoverable": "bool",
    },
    "planning_units": {
        "unit_id": "str", "name": "str", "elderly": "float64", "beds_req": "int64",
        "beds_exist": "int64", "beds_new": "int64", "deficit_bef": "int64", "deficit_aft": "int64",
    },
    "facilities_existing": {
        "fac_id": "str", "name": "str", "beds": "int64", "beds_assumed": "bool", "action": "str",
        "beds_added": "int64", "nursing_added": "float64", "beds_after": "int64", "unit_id": "str",
    },
    "facilities_new": {"site_id": "str", "beds": "int64", "nursing_beds": "float64", "dementia_beds": "float64",
                       "unit_id": "str", "cost": "float64"},
    "uncovered_cells": {
        "cell_id": "int64", "elderly": "float64", "band": "str", "radius_m": "float64",
        "rule_id": "str", "unit_id": "str", "reason": "str",
    },
    "service_areas": {
        "fac_id": "str", "status": "str", "band": "str", "radius_m": "float64", "rule_id": "str",
        "mode": "str", "method": "str",
    },
}
GEOMETRY_TYPES = {
    "demand_cells": "Polygon", "planning_units": "MultiPolygon", "facilities_existing": "Point",
    "facilities_new": "Point", "uncovered_cells": "Polygon", "service_areas": "MultiPolygon",
}
REASON_UNCOVERABLE = "uncoverable"  # no site at all within the owed radius
REASON_NOT_COVERED = "not covered"  # a site could reach it, the plan opened none


# ---------------------------------------------------------------- distances


def nearest_open_distance(dist: Any, is_open: np.ndarray) -> np.ndarray:
    """Distance (m) from each cell to its nearest open site within reach; NaN where none.

    Works on the sparse entries only (``Reach.dist`` stores a distance iff the site lies
    within the cell's owed radius), so it never builds a dense cells × sites array.
    """
    coo = dist.tocoo()
    is_open = np.asarray(is_open, dtype=bool)
    if is_open.shape != (dist.shape[1],):
        raise DataError(
            f"plan: open flags have {is_open.shape[0]} entries but reach has {dist.shape[1]} sites",
            hints=("build the plan from the same sites and reach it is exported with",),
        )
    keep = is_open[coo.col]
    out = np.full(dist.shape[0], np.inf)
    np.minimum.at(out, coo.row[keep], coo.data[keep])
    out[np.isinf(out)] = np.nan
    return out


# ---------------------------------------------------------------- layers


def _typed(frame: pd.DataFrame, layer: str, geometry: Any, crs: Any) -> gpd.GeoDataFrame:
    """Fixed column order and dtypes of ``layer`` (works for empty frames too)."""
    cols = {}
    for name, dtype in SCHEMA[layer].items():
        values = frame[name] if name in frame else pd.Series([], dtype=object)
        if dtype == "str":
            cols[name] = np.asarray(values.fillna("").astype(str), dtype=object)
        else:
            cols[name] = np.asarray(values, dtype=dtype)
    out = gpd.GeoDataFrame(pd.DataFrame(cols), geometry=gpd.GeoSeries(geometry, crs=crs).values, crs=crs)
    return out.reset_index(drop=True)


def _check_lengths(demand: Any, plan: Any, reach: Any) -> None:
    n = len(demand.cells)
    for name in ("covered_before", "covered_after", "uncoverable"):
        got = len(getattr(plan, name))
        if got != n:
            raise DataError(f"plan.{name} has {got} entries but the demand grid has {n} cells",
                            hints=("export the plan with the demand grid it was solved on",))
    if reach.dist.shape[0] != n:
        raise DataError(f"reach has {reach.dist.shape[0]} rows but the demand grid has {n} cells")


def demand_cells_layer(demand: Any, reach: Any, plan: Any) -> gpd.GeoDataFrame:
    """Every demand cell with its band, owed radius, coverage and nearest-open distances."""
    _check_lengths(demand, plan, reach)
    cells = demand.cells
    frame = pd.DataFrame({
        "cell_id": cells["cell_id"].to_numpy(), "elderly": cells["elderly"].to_numpy(),
        "density_km2": cells["density_km2"].to_numpy(), "band": cells["band"].to_numpy(),
        "radius_m": cells["radius_m"].to_numpy(), "rule_id": cells["rule_id"].to_numpy(),
        "unit_id": cells["unit_id"].to_numpy(),
        "covered_before": np.asarray(plan.covered_before, bool),
        "covered_after": np.asarray(plan.covered_after, bool),
        "dist_before_m": nearest_open_distance(reach.dist, plan.open_before),
        "dist_after_m": nearest_open_distance(reach.dist, plan.open_after),
        "uncoverable": np.asarray(plan.uncoverable, bool),
    })
    order = np.argsort(frame["cell_id"].to_numpy(), kind="stable")
    return _typed(frame.iloc[order], "demand_cells", cells.geometry.to_numpy()[order], cells.crs)


def uncovered_cells_layer(cells_layer: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Cells owed a radius (ZJ-R500/ZJ-R1000) but not covered after the plan, with the reason."""
    owed = cells_layer["radius_m"].notna() & ~cells_layer["covered_after"]
    sub = cells_layer[owed]
    frame = pd.DataFrame(sub.drop(columns="geometry"))
    frame["reason"] = np.where(sub["uncoverable"], REASON_UNCOVERABLE, REASON_NOT_COVERED)
    return _typed(frame, "uncovered_cells", sub.geometry.to_numpy(), cells_layer.crs)


def _site_points(sites: Any, site_ids: pd.Series) -> np.ndarray:
    table = sites.table.set_index("site_id")
    missing = sorted(set(site_ids) - set(table.index))
    if missing:
        raise DataError(f"plan names site(s) {missing[:5]} that are not in the sites table",
                        hints=("export the plan with the sites it was solved on",))
    return table.geometry.reindex(site_ids.to_numpy()).to_numpy()


def facilities_existing_layer(sites: Any, plan: Any) -> gpd.GeoDataFrame:
    """Existing institutions with the plan's action (kept | expanded | closed) and beds added."""
    ex = plan.existing.sort_values("site_id", kind="stable")
    units = sites.table.set_index("site_id")["unit_id"]
    frame = pd.DataFrame({
        "fac_id": ex["site_id"].astype(str), "name": ex["name"], "beds": ex["beds_before"],
        "beds_assumed": ex["beds_assumed"].astype(bool), "action": ex["action"],
        "beds_added": ex["beds_added"], "nursing_added": _typed_beds(ex, "nursing_beds_added"),
        "beds_after": ex["beds_after"], "unit_id": ex["site_id"].map(units),
    })
    return _typed(frame, "facilities_existing", _site_points(sites, frame["fac_id"]), sites.table.crs)


def facilities_new_layer(sites: Any, plan: Any) -> gpd.GeoDataFrame:
    """New institutions the plan builds: site, beds (ZJ-BEDS), nursing / dementia beds among them (empty
    unless a nursing-share / dementia-beds rule is enforced), planning unit, cost (CNY)."""
    new = plan.new_sites.sort_values("site_id", kind="stable")
    frame = pd.DataFrame({"site_id": new["site_id"].astype(str), "beds": new["beds"],
                          "nursing_beds": _typed_beds(new, "nursing_beds"),
                          "dementia_beds": _typed_beds(new, "dementia_beds"),
                          "unit_id": new["unit_id"], "cost": new["cost"]})
    return _typed(frame, "facilities_new", _site_points(sites, frame["site_id"]), sites.table.crs)


def _typed_beds(frame: pd.DataFrame, column: str) -> pd.Series:
    """Nursing / dementia beds the model typed (a count), NaN (NULL) when the rule is not enforced."""
    if column in frame.columns:
        return frame[column].astype(np.float64)
    return pd.Series(np.nan, index=frame.index, dtype=np.float64)


def planning_units_layer(demand: Any, plan: Any) -> gpd.GeoDataFrame:
    """Planning units (ZJ-UNIT) with beds required/existing/new and the deficit before/after."""
    geom = demand.units.set_index("unit_id").geometry
    u = plan.units.assign(unit_id=plan.units["unit_id"].astype(str)).sort_values("unit_id", kind="stable")
    missing = sorted(set(u["unit_id"]) - set(geom.index.astype(str)))
    if missing:
        raise DataError(f"plan.units names unit(s) {missing[:5]} missing from the demand's planning units")
    frame = pd.DataFrame({
        "unit_id": u["unit_id"], "name": u["name"], "elderly": u["elderly"],
        "beds_req": u["beds_required"], "beds_exist": u["beds_existing"], "beds_new": u["beds_new"],
        "deficit_bef": u["deficit_before"], "deficit_aft": u["deficit_after"],
    })
    geom.index = geom.index.astype(str)
    multi = [_as_multi(g) for g in geom.reindex(u["unit_id"]).to_numpy()]
    return _typed(frame, "planning_units", multi, demand.units.crs)


def _open_sites(sites: Any, plan: Any) -> pd.DataFrame:
    """Open institutions after the plan: column index, site id, existing/new."""
    idx = np.flatnonzero(np.asarray(plan.open_after, bool))
    table = sites.table
    status = np.where(table["kind"].to_numpy()[idx] == "existing", "existing", "new")
    return pd.DataFrame({"site": idx, "fac_id": table["site_id"].to_numpy()[idx].astype(str), "status": status})


def _radius_bands(rules: Any, speed_kmh: float) -> list[tuple[str, float, str]]:
    """(band name, radius m, rule id) of every band with an owed radius."""
    out = []
    for band in rules.bands:
        radius = band.radius_at(speed_kmh)
        if radius is not None:
            out.append((band.name, float(radius), band.rule_id))
    return out


def service_areas_layer(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any,
                        plan: Any) -> gpd.GeoDataFrame:
    """Service areas of the open institutions, per band radius (see the module docstring)."""
    opened = _open_sites(sites, plan)
    speed = scenario.speed_kmh()
    bands = _radius_bands(rules, speed)
    if reach.mode == "network":
        frame, geoms = _network_areas(demand, reach, opened, bands)
    else:
        frame, geoms = _euclidean_areas(sites, opened, bands)
    frame["mode"] = reach.mode
    order: np.ndarray | list[int]
    order = np.lexsort((frame["band"].to_numpy(), frame["fac_id"].to_numpy())) if len(frame) else []
    multi = np.array([_as_multi(g) for g in geoms], dtype=object)
    return _typed(frame.iloc[order], "service_areas", multi[order] if len(frame) else multi, demand.cells.crs)


def _euclidean_areas(sites: Any, opened: pd.DataFrame,
                     bands: Sequence[tuple[str, float, str]]) -> tuple[pd.DataFrame, list[Any]]:
    pts = sites.table.geometry.to_numpy()[opened["site"].to_numpy()]
    rows, geoms = [], []
    for name, radius, rule_id in bands:
        buffers = shapely.buffer(pts, radius, quad_segs=16)
        geoms.extend(buffers)
        rows.append(opened.assign(band=name, radius_m=radius, rule_id=rule_id,
                                  method="buffer of the band radius"))
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["fac_id"])
    return frame, geoms


def _network_areas(demand: Any, reach: Any, opened: pd.DataFrame,
                   bands: Sequence[tuple[str, float, str]]) -> tuple[pd.DataFrame, list[Any]]:
    sub = reach.dist.tocsc()[:, opened["site"].to_numpy()].tocoo()
    band_of_cell = demand.cells["band"].to_numpy()
    cell_geom = demand.cells.geometry.to_numpy()
    by_band = {name: (radius, rule_id) for name, radius, rule_id in bands}
    pairs = pd.DataFrame({"k": sub.col, "row": sub.row, "band": band_of_cell[sub.row]})
    pairs = pairs[pairs["band"].isin(list(by_band))]
    rows, geoms = [], []
    for (k, band), grp in pairs.groupby(["k", "band"], sort=True):
        radius, rule_id = by_band[band]
        rows.append({**opened.iloc[int(k)].to_dict(), "band": band, "radius_m": radius, "rule_id": rule_id,
                     "method": "union of demand cells reached along the network"})
        geoms.append(shapely.union_all(cell_geom[grp["row"].to_numpy()], grid_size=0.01))
    return pd.DataFrame(rows, columns=["site", "fac_id", "status", "band", "radius_m", "rule_id", "method"]), geoms


def _as_multi(geom: Any) -> Any:
    if geom is None or geom.is_empty:
        return shapely.MultiPolygon()
    if isinstance(geom, shapely.MultiPolygon):
        return geom
    if isinstance(geom, shapely.Polygon):
        return shapely.MultiPolygon([geom])
    polys = [g for g in shapely.get_parts(geom) if isinstance(g, shapely.Polygon)]
    return shapely.MultiPolygon(polys)


def build_layers(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any,
                 plan: Any) -> dict[str, gpd.GeoDataFrame]:
    """All six layers in the working CRS, keyed by layer name (in ``LAYERS`` order)."""
    cells = demand_cells_layer(demand, reach, plan)
    layers = {
        "demand_cells": cells,
        "planning_units": planning_units_layer(demand, plan),
        "facilities_existing": facilities_existing_layer(sites, plan),
        "facilities_new": facilities_new_layer(sites, plan),
        "uncovered_cells": uncovered_cells_layer(cells),
        "service_areas": service_areas_layer(scenario, rules, demand, sites, reach, plan),
    }
    return {name: layers[name] for name in LAYERS}


# ---------------------------------------------------------------- writing


@contextmanager
def _gdal_config(**options: str) -> Iterator[None]:
    """Set GDAL config options for the block, then restore what was there."""
    before = {k: pyogrio.get_gdal_config_option(k) for k in options}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(before)


def _check_args(formats: Sequence[str], crs: str) -> CRS:
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ScenarioError(f"outputs.formats: unknown format(s) {unknown}",
                            hints=(f"use any of: {', '.join(FORMATS)}",))
    try:
        return CRS.from_user_input(crs)
    except CRSError:
        raise ScenarioError(f"outputs.crs: unknown CRS {crs!r}",
                            hints=("use an EPSG code such as 'EPSG:4549'",)) from None


def _to_crs(layer: gpd.GeoDataFrame, crs: CRS) -> gpd.GeoDataFrame:
    if layer.crs is None:
        raise DataError("a layer has no CRS; the demand grid must carry the scenario's `grid.crs`")
    return layer if CRS.from_user_input(layer.crs) == crs else layer.to_crs(crs)


def _write_gpkg(path: Path, layers: dict[str, gpd.GeoDataFrame], crs: CRS) -> list[Path]:
    path.unlink(missing_ok=True)
    with _gdal_config(OGR_CURRENT_DATE=FIXED_DATE):
        for name, layer in layers.items():
            pyogrio.write_dataframe(_to_crs(layer, crs), path, layer=name, driver="GPKG",
                                    geometry_type=GEOMETRY_TYPES[name], append=path.exists())
    return [path]


def _write_shp(folder: Path, layers: dict[str, gpd.GeoDataFrame], crs: CRS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, layer in layers.items():
        path = folder / f"{name}.shp"
        out = _to_crs(layer, crs).rename(columns=SHP_NAMES)
        pyogrio.write_dataframe(out, path, driver="ESRI Shapefile", encoding="UTF-8",
                                geometry_type=GEOMETRY_TYPES[name],
                                layer_options={"DBF_DATE_LAST_UPDATE": FIXED_DATE[:10]})
        written += sorted(p for p in folder.glob(f"{name}.*") if p.suffix in {".shp", ".shx", ".dbf",
                                                                               ".prj", ".cpg"})
    return written


def _write_geojson(folder: Path, layers: dict[str, gpd.GeoDataFrame]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, layer in layers.items():
        path = folder / f"{name}.geojson"
        path.unlink(missing_ok=True)
        pyogrio.write_dataframe(_to_crs(layer, CRS.from_user_input(GEOJSON_CRS)), path, driver="GeoJSON",
                                geometry_type=GEOMETRY_TYPES[name], layer_options={"RFC7946": "YES"})
        written.append(path)
    return written


def write_layers(out_dir: Path, scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, plan: Any,
                 formats: Sequence[str] = FORMATS, crs: str = "EPSG:4549") -> list[Path]:
    """Write the run's GIS layers; return every file written, sorted.

    ``layers.gpkg`` (GeoPackage, in ``crs``), ``shp/<layer>.shp`` (+ .shx .dbf .prj .cpg, in
    ``crs``, short field names per ``SHP_NAMES``) and ``geojson/<layer>.geojson`` (EPSG:4326).
    Deterministic: same inputs, same bytes.
    """
    target = _check_args(formats, crs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layers = build_layers(scenario, rules, demand, sites, reach, plan)
    written: list[Path] = []
    if "gpkg" in formats:
        written += _write_gpkg(out_dir / "layers.gpkg", layers, target)
    if "shp" in formats:
        written += _write_shp(out_dir / "shp", layers, target)
    if "geojson" in formats:
        written += _write_geojson(out_dir / "geojson", layers)
    return sorted(written)
