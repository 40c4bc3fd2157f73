"""Sites: existing institutions and candidate sites for new ones, one table.

Existing institutions come from ``existing_facilities`` (beds from ``beds_field``, or the
assumed ``default_beds``, flagged ``beds_assumed``); facilities outside the study area stay,
since they can reach cells inside it. Candidates come from a layer, or are generated on a
deterministic lattice over land use that may host an institution (``candidates.generate``):
one candidate per lattice square, at the lattice point when it lies on hosting land, else at a
point inside the hosting land of that square; then at least ``spacing_m`` apart, away from
existing sites, thinned to ``max_candidates``. Building centroids are not used as candidates:
17k footprints would swamp the model and cluster where OSM mapping is dense.

``near_hospital`` (ZJ-HOSP) marks sites within :data:`NEAR_HOSPITAL_M` of an OSM hospital
(buildings with ``amenity``/``building``/``healthcare`` = hospital, land use = hospital).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from scipy.spatial import cKDTree

from ._errors import DataError
from ._layers import read_layer

log = logging.getLogger(__name__)

ASSUMED_BEDS_NOTE = "existing institution(s) have ASSUMED bed counts"  # the report lists them by name instead
GAP_NOTE = "candidate(s) added at the centre of cells no generated site reached (candidates.generate.fill_gaps"
NEAR_HOSPITAL_M = 300.0  # ZJ-HOSP "毗邻": within this straight-line distance of a hospital
HOSPITAL_TAGS = ("amenity", "building", "healthcare", "landuse")
GCJ_MIN_FACILITIES = 3
GCJ_FIT_M = 25.0  # a facility "sits on" a footprint when this close to one
COLUMNS = ["site_id", "kind", "name", "x", "y", "beds", "beds_assumed", "unit_id", "subdistrict",
           "cost_open", "near_hospital", "landuse", "geometry"]


@dataclass(frozen=True)
class Sites:
    """Every site the model may use; row i is column i of the reach matrix.

    table columns: site_id (str, unique), kind ("existing" | "candidate"), name (str),
        x, y (metres, working CRS), geometry (Point), beds (int; 0 for candidates),
        beds_assumed (bool), unit_id (str or "" when outside every planning unit),
        subdistrict (str), cost_open (float, CNY; candidates), near_hospital (bool),
        landuse (str; the land use a generated candidate sits on, else "").
    Existing sites come first, then candidates, each sorted by site_id (determinism).
    """

    table: gpd.GeoDataFrame
    crs: str
    meta: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    hospitals: np.ndarray | None = None  # hospital points (metres) read once, for sites added later

    @property
    def n_existing(self) -> int:
        return int((self.table["kind"] == "existing").sum())


# ---------------------------------------------------------------- helpers


def _id_sort_key(ids: pd.Series) -> pd.Series:
    """Numeric ids sort as numbers (osm ids), others as text — deterministic either way."""
    text = ids.astype(str)
    if text.str.fullmatch(r"\d+").all():
        return text.str.zfill(int(text.str.len().max()))
    return text


def _as_points(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    geom = gdf.geometry
    return geom.where(geom.geom_type == "Point", geom.representative_point())


def _ids(gdf: gpd.GeoDataFrame, id_field: str, where: str) -> pd.Series:
    raw = gdf[id_field]
    if raw.isna().any():
        raise DataError(f"{where}: {int(raw.isna().sum())} row(s) have no `{id_field}`",
                        hints=("give every facility an id",))
    ids = raw.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    dup = ids[ids.duplicated(keep=False)]
    if not dup.empty:
        raise DataError(f"{where}: duplicate id(s) in `{id_field}`: {sorted(set(dup))[:10]}",
                        hints=("ids must be unique; fix the layer or choose another `id_field`",))
    return ids.reset_index(drop=True)


def _beds(gdf: gpd.GeoDataFrame, ids: pd.Series, spec: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Bed counts and whether each was assumed (default_beds); bad values raise DataError."""
    n = len(gdf)
    if spec.beds_field is None:
        return np.full(n, int(spec.default_beds), dtype=np.int64), np.ones(n, dtype=bool)
    raw = gdf[spec.beds_field].reset_index(drop=True)
    empty = raw.isna() | raw.astype(str).str.strip().isin(["", "nan", "None"])
    num = pd.to_numeric(raw.where(~empty), errors="coerce")
    for i in range(n):
        v = num.iloc[i]
        if empty.iloc[i]:
            if spec.default_beds is None:
                raise DataError(f"{where}: facility {ids.iloc[i]!r} has no value in `{spec.beds_field}` "
                                "and no `default_beds` is set",
                                hints=("fill in the beds, or set `existing_facilities.default_beds`",))
            continue
        if not (np.isfinite(v) and v >= 0 and float(v).is_integer()):
            raise DataError(f"{where}: facility {ids.iloc[i]!r}: `{spec.beds_field}` = {raw.iloc[i]!r} "
                            "is not a whole number of beds ≥ 0",
                            hints=("write a bed count such as 120, or leave it empty to use default_beds",))
    assumed = empty.to_numpy()
    beds = np.where(assumed, spec.default_beds or 0, num.fillna(0)).astype(np.int64)
    return beds, assumed


def _frame(crs: str, **cols: Any) -> gpd.GeoDataFrame:
    geom = gpd.points_from_xy(cols.pop("x"), cols.pop("y"), crs=crs)
    gdf = gpd.GeoDataFrame(cols, geometry=geom, crs=crs)
    gdf["x"] = gdf.geometry.x
    gdf["y"] = gdf.geometry.y
    return gdf


# ---------------------------------------------------------------- existing


def read_existing(scenario: Any) -> gpd.GeoDataFrame:
    """Existing institutions as site rows (kind "existing"), or an empty frame."""
    spec = scenario.existing_facilities
    crs = scenario.grid.crs
    if spec.layer is None:
        return _empty(crs)
    fields = [spec.id_field, spec.name_field] + ([spec.beds_field] if spec.beds_field else [])
    gdf = read_layer(spec.layer, field="existing_facilities.layer", crs=crs, geometry="point",
                     required_fields=fields)
    where = f"{spec.layer.path} (scenario field `existing_facilities`)"
    ids = _ids(gdf, spec.id_field, where)
    beds, assumed = _beds(gdf, ids, spec, where)
    pts = _as_points(gdf).reset_index(drop=True)
    names = gdf[spec.name_field].fillna("").astype(str).reset_index(drop=True)
    out = _frame(crs, site_id=ids, kind="existing", name=names, x=pts.x.to_numpy(), y=pts.y.to_numpy(),
                 beds=beds, beds_assumed=assumed, cost_open=0.0, landuse="")
    out.attrs["notes"] = list(gdf.attrs.get("notes", []))
    return out


def _empty(crs: str) -> gpd.GeoDataFrame:
    return _frame(crs, site_id=pd.Series([], dtype=str), kind=pd.Series([], dtype=str),
                  name=pd.Series([], dtype=str), x=np.zeros(0), y=np.zeros(0),
                  beds=np.zeros(0, np.int64), beds_assumed=np.zeros(0, bool), cost_open=np.zeros(0),
                  landuse=pd.Series([], dtype=str))


# ---------------------------------------------------------------- candidates


def read_candidates(scenario: Any) -> gpd.GeoDataFrame:
    """Candidate sites from `candidates.layer` (ids, optional per-site opening cost)."""
    spec = scenario.candidates
    crs = scenario.grid.crs
    fields = [spec.id_field] + ([spec.cost_field] if spec.cost_field else [])
    gdf = read_layer(spec.layer, field="candidates.layer", crs=crs, geometry="point", required_fields=fields)
    where = f"{spec.layer.path} (scenario field `candidates.layer`)"
    ids = _ids(gdf, spec.id_field, where)
    cost = np.full(len(gdf), float(scenario.costs.site))
    if spec.cost_field:
        raw = gdf[spec.cost_field].reset_index(drop=True)
        num = pd.to_numeric(raw, errors="coerce")
        bad = (raw.notna() & (num.isna() | (num < 0))).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: candidate {ids.iloc[i]!r}: `{spec.cost_field}` = {raw.iloc[i]!r} "
                            "is not a cost ≥ 0 (CNY)", hints=("leave it empty to use costs.site",))
        cost = np.where(num.notna(), num, cost)
    pts = _as_points(gdf).reset_index(drop=True)
    return _frame(crs, site_id=ids, kind="candidate", name="", x=pts.x.to_numpy(), y=pts.y.to_numpy(),
                  beds=0, beds_assumed=False, cost_open=cost, landuse="")


def _landuse_layer(scenario: Any) -> tuple[gpd.GeoDataFrame, str]:
    weights = scenario.demand.weights
    if weights.landuse is None:
        raise DataError("`candidates.mode: generate` needs a land-use layer, but "
                        "`demand.weights.landuse` is not set",
                        hints=("set demand.weights.landuse, or give `candidates.mode: layer`",))
    gdf = read_layer(weights.landuse, field="demand.weights.landuse", crs=scenario.grid.crs,
                     geometry="polygon", required_fields=[weights.landuse_field])
    return gdf, weights.landuse_field


def _residential_buildings(scenario: Any) -> gpd.GeoDataFrame | None:
    """Typed residential footprints (apartments, residential, house, … — not the generic ``yes``)."""
    w = scenario.demand.weights
    if w.buildings is None:
        return None
    b = read_layer(w.buildings, field="demand.weights.buildings", crs=scenario.grid.crs, geometry="polygon",
                   required_fields=[w.building_field])
    kind = b[w.building_field].astype(str)
    keep = kind.isin(set(w.residential_buildings) - {"yes"})
    return gpd.GeoDataFrame({"host": "building=" + kind[keep]}, geometry=b.geometry[keep], crs=b.crs)


def _hosting_land(landuse: gpd.GeoDataFrame, lu_field: str, gen: Any, study: shapely.Geometry,
                  buildings: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Polygons that may host an institution, inside the study area, minus excluded land use.

    Land use in ``landuse_values`` first, then typed residential building footprints: the
    demand grid puts the elderly on those, so a candidate must be possible next to them even
    where OSM maps no residential land use.
    """
    values = landuse[lu_field].astype(str)
    host = gpd.GeoDataFrame({"host": values[values.isin(gen.landuse_values)]},
                            geometry=landuse.geometry[values.isin(gen.landuse_values)], crs=landuse.crs)
    host = host.sort_values("host", kind="stable")
    if buildings is not None and len(buildings):
        host = pd.concat([host, buildings.sort_values("host", kind="stable")], ignore_index=True)
    excluded = landuse.loc[values.isin(gen.exclude_landuse)].geometry
    geom = shapely.intersection(host.geometry.to_numpy(), study)
    if len(excluded):
        geom = shapely.difference(geom, shapely.union_all(excluded.to_numpy()))
    host = host.set_geometry(geom)
    return host.loc[~shapely.is_empty(geom) & (shapely.area(geom) > 0)].reset_index(drop=True)


def _lattice_points(host: gpd.GeoDataFrame, spacing: float) -> pd.DataFrame:
    """One point per lattice square touching hosting land: the lattice point, else a point inside."""
    x0, y0, x1, y1 = host.total_bounds
    i0, j0 = math.floor(x0 / spacing), math.floor(y0 / spacing)
    gi, gj = np.meshgrid(np.arange(i0, math.floor(x1 / spacing) + 1),
                         np.arange(j0, math.floor(y1 / spacing) + 1), indexing="xy")
    ii, jj = gi.ravel(), gj.ravel()
    squares = shapely.box(ii * spacing, jj * spacing, (ii + 1) * spacing, (jj + 1) * spacing)
    centres = shapely.points((ii + 0.5) * spacing, (jj + 0.5) * spacing)
    tree = shapely.STRtree(host.geometry.to_numpy())
    sq_idx, poly_idx = tree.query(squares, predicate="intersects")
    rows = []
    seen: set[int] = set()
    # first pass: lattice points on hosting land (exactly `spacing` apart)
    c_idx, c_poly = tree.query(centres, predicate="within")
    for s, p in zip(c_idx, c_poly, strict=True):
        if s not in seen:
            seen.add(int(s))
            rows.append((int(jj[s]), int(ii[s]), 0, *shapely.get_coordinates(centres[s])[0], host.iat[p, 0]))
    # second pass: squares whose lattice point is off hosting land, snapped into the land
    for s, p in zip(sq_idx, poly_idx, strict=True):
        if s in seen:
            continue
        seen.add(int(s))
        piece = shapely.intersection(squares[s], host.geometry.iat[p])
        if shapely.is_empty(piece) or shapely.area(piece) <= 0:
            seen.discard(int(s))
            continue
        pt = shapely.point_on_surface(piece)
        rows.append((int(jj[s]), int(ii[s]), 1, *shapely.get_coordinates(pt)[0], host.iat[p, 0]))
    return pd.DataFrame(rows, columns=["row", "col", "snapped", "x", "y", "landuse"]).sort_values(
        ["snapped", "row", "col"], kind="stable").reset_index(drop=True)


def _keep_spaced(points: pd.DataFrame, spacing: float) -> pd.DataFrame:
    """Greedy in order: keep a point unless a kept one lies closer than ``spacing``."""
    xy = points[["x", "y"]].to_numpy()
    lattice = points["snapped"].to_numpy() == 0
    keep = lattice.copy()  # lattice points are exactly `spacing` apart
    kept_tree = cKDTree(xy[lattice]) if lattice.any() else None
    extra: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(~lattice):
        if kept_tree is not None and kept_tree.query(xy[i], k=1)[0] < spacing:
            continue
        gx, gy = int(xy[i, 0] // spacing), int(xy[i, 1] // spacing)
        near = [k for dx in (-1, 0, 1) for dy in (-1, 0, 1) for k in extra.get((gx + dx, gy + dy), [])]
        if any(math.dist(xy[i], xy[k]) < spacing for k in near):
            continue
        keep[i] = True
        extra.setdefault((gx, gy), []).append(int(i))
    return points.loc[keep]


def generate_candidates(scenario: Any, demand: Any, existing: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Candidate sites on a lattice over hosting land inside the study area (deterministic)."""
    gen = scenario.candidates.generate
    crs = scenario.grid.crs
    landuse, lu_field = _landuse_layer(scenario)
    study = shapely.union_all(demand.study_area.to_crs(crs).geometry.to_numpy())
    host = _hosting_land(landuse, lu_field, gen, study, _residential_buildings(scenario))
    if host.empty:
        raise DataError(f"no land use {gen.landuse_values} inside the study area to place candidates on "
                        "(scenario field `candidates.generate.landuse_values`)",
                        hints=("check the values against the layer's `landuse` field",))
    pts = _keep_spaced(_lattice_points(host, gen.spacing_m), gen.spacing_m)
    if len(existing) and gen.min_distance_to_existing_m > 0:
        d, _ = cKDTree(existing[["x", "y"]].to_numpy()).query(pts[["x", "y"]].to_numpy(), k=1)
        pts = pts.loc[d >= gen.min_distance_to_existing_m]
    pts = pts.sort_values(["row", "col"], kind="stable").reset_index(drop=True)
    if gen.max_candidates is not None and len(pts) > gen.max_candidates:
        pick = np.unique(np.linspace(0, len(pts) - 1, gen.max_candidates).round().astype(np.int64))
        pts = pts.iloc[pick].reset_index(drop=True)
    width = max(5, len(str(len(pts))))
    ids = [f"C{i + 1:0{width}d}" for i in range(len(pts))]
    return _frame(crs, site_id=ids, kind="candidate", name="", x=pts["x"].to_numpy(),
                  y=pts["y"].to_numpy(), beds=0, beds_assumed=False,
                  cost_open=float(scenario.costs.site), landuse=pts["landuse"].astype(str).to_numpy())


# ---------------------------------------------------------------- attributes


def _assign_units(table: gpd.GeoDataFrame, units: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """unit_id / subdistrict by point-in-polygon ("" outside every unit; ties → smallest unit_id)."""
    table = table.copy()
    table["unit_id"] = ""
    table["subdistrict"] = ""
    if units is None or len(units) == 0 or len(table) == 0:
        return table
    u = units.to_crs(table.crs).reset_index(drop=True)
    sub = u["subdistrict"] if "subdistrict" in u else u.get("name", pd.Series([""] * len(u)))
    pt_idx, poly_idx = shapely.STRtree(u.geometry.to_numpy()).query(
        table.geometry.to_numpy(), predicate="intersects")
    hits = pd.DataFrame({"pt": pt_idx, "unit_id": u["unit_id"].astype(str).to_numpy()[poly_idx],
                         "sub": sub.fillna("").astype(str).to_numpy()[poly_idx]})
    first = hits.sort_values(["pt", "unit_id"]).drop_duplicates("pt")
    table.loc[first["pt"].to_numpy(), "unit_id"] = first["unit_id"].to_numpy()
    table.loc[first["pt"].to_numpy(), "subdistrict"] = first["sub"].to_numpy()
    return table


def hospital_points(scenario: Any) -> np.ndarray | None:
    """Hospital locations (metres) from the OSM buildings / land-use layers, or None if no source."""
    weights = scenario.demand.weights
    found: list[np.ndarray] = []
    sources = 0
    for ref, name in ((weights.buildings, "demand.weights.buildings"), (weights.landuse, "demand.weights.landuse")):
        if ref is None:
            continue
        gdf = read_layer(ref, field=name, crs=scenario.grid.crs)
        tags = [c for c in HOSPITAL_TAGS if c in gdf.columns]
        sources += bool(tags)
        if not tags:
            continue
        mask = np.zeros(len(gdf), dtype=bool)
        for c in tags:
            mask |= (gdf[c].astype(str).str.lower() == "hospital").to_numpy()
        found.append(shapely.get_coordinates(gdf.geometry[mask].representative_point().to_numpy()))
    if sources == 0:
        return None
    return np.concatenate(found) if found else np.zeros((0, 2))


def _near_hospital(table: gpd.GeoDataFrame, hospitals: np.ndarray | None) -> np.ndarray:
    if hospitals is None or len(hospitals) == 0 or len(table) == 0:
        return np.zeros(len(table), dtype=bool)
    d, _ = cKDTree(hospitals).query(table[["x", "y"]].to_numpy(), k=1)
    return d <= NEAR_HOSPITAL_M


# ---------------------------------------------------------------- GCJ-02 check


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 minus WGS84 offset (degrees) at WGS84 lon/lat (the published obfuscation formula)."""
    a, ee = 6378245.0, 0.00669342162296594323
    x, y = lon - 105.0, lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad = lat / 180.0 * np.pi
    magic = 1 - ee * np.sin(rad) ** 2
    dlat = (dlat * 180.0) / ((a * (1 - ee)) / (magic * np.sqrt(magic)) * np.pi)
    dlon = (dlon * 180.0) / (a / np.sqrt(magic) * np.cos(rad) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dlon, dlat = _gcj_delta(np.asarray(lon, float), np.asarray(lat, float))
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse by fixed-point iteration (better than 1 cm after a few steps)."""
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    wlon, wlat = lon.copy(), lat.copy()
    for _ in range(5):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        wlon, wlat = wlon - (glon - lon), wlat - (glat - lat)
    return wlon, wlat


def gcj02_suspicion(points: gpd.GeoSeries, reference: gpd.GeoSeries) -> str | None:
    """A note if facility points look like GCJ-02 coordinates labelled WGS84, else None.

    GCJ-02 shifts points by ~300–700 m in eastern China, so a plain "far from the buildings"
    test fails in dense cities (a shifted point lands on some other building). Instead each
    facility is compared with its GCJ-02 → WGS84 corrected position: which of the two sits on
    (within 25 m of) a reference footprint (OSM buildings). Genuine WGS84 points fit better as
    given; mislabelled GCJ-02 points systematically fit better once corrected.
    """
    if len(points) < GCJ_MIN_FACILITIES or len(reference) == 0:
        return None
    crs = points.crs
    if crs is None:
        return None
    points = points.where(points.geom_type == "Point", points.representative_point())
    ll = points.to_crs("EPSG:4326")
    lon, lat = ll.x.to_numpy(), ll.y.to_numpy()
    wlon, wlat = gcj02_to_wgs84(lon, lat)
    back = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)
    fixed = shapely.points(np.column_stack(back.transform(wlon, wlat)))
    tree = shapely.STRtree(reference.to_crs(crs).geometry.to_numpy())
    _, d_given = tree.query_nearest(points.to_numpy(), return_distance=True, all_matches=False)
    _, d_fixed = tree.query_nearest(fixed, return_distance=True, all_matches=False)
    on_given, on_fixed = d_given <= GCJ_FIT_M, d_fixed <= GCJ_FIT_M
    better_fixed = int((on_fixed & ~on_given).sum())  # only the corrected point sits on a building
    better_given = int((on_given & ~on_fixed).sum())
    shift = float(np.median(np.hypot(*(shapely.get_coordinates(fixed) - shapely.get_coordinates(
        points.to_numpy())).T)))
    if better_fixed >= max(2, 0.3 * len(points)) and better_fixed >= 2 * better_given:
        return (f"existing facilities look like GCJ-02 (Mars) coordinates labelled WGS84: "
                f"{better_fixed} of {len(points)} sit on a building only after the GCJ-02 → WGS84 "
                f"correction (a ~{shift:.0f} m shift), {better_given} only as given; "
                "convert them to WGS84 first")
    return None


def _gcj_note(scenario: Any, existing: gpd.GeoDataFrame) -> str | None:
    ref = scenario.demand.weights.buildings
    if ref is None or len(existing) < GCJ_MIN_FACILITIES:
        return None
    buildings = read_layer(ref, field="demand.weights.buildings", crs=scenario.grid.crs, geometry="polygon")
    return gcj02_suspicion(existing.geometry, buildings.geometry)


def _outside_study_area(existing: gpd.GeoDataFrame, demand: Any) -> int:
    area = getattr(demand, "study_area", None)
    if area is None or len(area) == 0 or len(existing) == 0:
        return 0
    union = shapely.union_all(area.to_crs(existing.crs).geometry.to_numpy())
    return int((~shapely.intersects(existing.geometry.to_numpy(), union)).sum())


# ---------------------------------------------------------------- public


def add_gap_candidates(scenario: Any, demand: Any, sites: Sites, cells: np.ndarray) -> Sites:
    """Add a candidate at the centre of each given demand cell, thinned to one per half radius.

    Used after reach when generated candidates leave cells owed a radius with no site in reach
    (a lattice point fell on the wrong side of a canal, or a compound has no path through it):
    a cell holding elderly holds residential buildings, so its centre can host an institution.
    Cells are taken by elderly (most first), then cell_id, so the result is deterministic.
    """
    c = demand.cells.iloc[np.asarray(cells, dtype=np.int64)]
    c = c.sort_values(["elderly", "cell_id"], ascending=[False, True], kind="stable")
    xy = c[["x", "y"]].to_numpy()
    keep_r = 0.5 * c["radius_m"].to_numpy(dtype=float)
    picked: list[int] = []
    for i in range(len(c)):
        if picked:
            d = np.hypot(*(xy[picked] - xy[i]).T)
            if (d <= keep_r[i]).any():
                continue
        picked.append(i)
    if not picked:
        return sites
    start = int((sites.table["site_id"].astype(str).str.startswith("G")).sum())
    width = max(5, len(str(start + len(picked))))
    ids = [f"G{start + k + 1:0{width}d}" for k in range(len(picked))]
    new = _frame(sites.crs, site_id=ids, kind="candidate", name="", x=xy[picked, 0], y=xy[picked, 1], beds=0,
                 beds_assumed=False, cost_open=float(scenario.costs.site), landuse="gap_fill")
    new = _assign_units(new, getattr(demand, "units", None))
    hospitals = sites.hospitals if sites.hospitals is not None else hospital_points(scenario)
    new["near_hospital"] = _near_hospital(new, hospitals)
    table = gpd.GeoDataFrame(pd.concat([sites.table, new[COLUMNS]], ignore_index=True), geometry="geometry",
                             crs=sites.crs)
    table["beds"] = table["beds"].astype(np.int64)
    table["cost_open"] = table["cost_open"].astype(np.float64)
    passes = [*sites.meta.get("gap_candidates_per_pass", ()), len(picked)]
    how = f"; {' + '.join(map(str, passes))} in {len(passes)} passes" if len(passes) > 1 else ""
    note = f"{sum(passes)} {GAP_NOTE}{how})"  # one note for every pass, not one per pass
    meta = {**sites.meta, "n_candidates": int(sites.meta.get("n_candidates", 0)) + len(picked),
            "n_gap_candidates": sum(passes), "gap_candidates_per_pass": passes}
    notes = (*(n for n in sites.notes if GAP_NOTE not in n), note)
    return Sites(table=table[COLUMNS], crs=sites.crs, meta=meta, notes=notes, hospitals=hospitals)


def build(scenario: Any, demand: Any) -> Sites:
    """Load existing facilities and candidate sites (a layer, or generated)."""
    crs = scenario.grid.crs
    existing = read_existing(scenario)
    notes = list(existing.attrs.get("notes", []))
    if scenario.candidates.mode == "layer":
        cands = read_candidates(scenario)
    else:
        cands = generate_candidates(scenario, demand, existing)
    clash = sorted(set(existing["site_id"]) & set(cands["site_id"]))
    if clash:
        raise DataError(f"candidate id(s) {clash[:10]} equal existing facility ids",
                        hints=("site ids must be unique across existing and candidate sites",))
    parts = [f.iloc[np.argsort(_id_sort_key(f["site_id"]).to_numpy(), kind="stable")]
             for f in (existing, cands) if len(f)]
    if not parts:
        raise DataError("there are no sites: no existing facility and no candidate",
                        hints=("give `existing_facilities.layer` or candidates",))
    table = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=crs)
    table = _assign_units(table, getattr(demand, "units", None))
    hospitals = hospital_points(scenario)
    table["near_hospital"] = _near_hospital(table, hospitals)
    table["beds"] = table["beds"].astype(np.int64)
    table["beds_assumed"] = table["beds_assumed"].astype(bool)
    table["cost_open"] = table["cost_open"].astype(np.float64)
    gcj = _gcj_note(scenario, existing)
    if gcj:
        log.warning(gcj)
        notes.append(gcj)
    outside = _outside_study_area(existing, demand)
    if outside:
        notes.append(f"{outside} existing institution(s) lie outside the study area; kept, since they "
                     "can serve elderly inside it")
    if existing["beds_assumed"].any():
        notes.append(f"{int(existing['beds_assumed'].sum())} {ASSUMED_BEDS_NOTE} "
                     f"({scenario.existing_facilities.default_beds} each; no bed data)")
    meta = {"n_existing": len(existing), "n_existing_outside_study_area": outside, "n_candidates": len(cands),
            "candidates_mode": scenario.candidates.mode, "near_hospital_m": NEAR_HOSPITAL_M,
            "n_hospitals": None if hospitals is None else len(hospitals), "gcj02_suspected": gcj is not None}
    return Sites(table=table[COLUMNS], crs=crs, meta=meta, notes=tuple(notes), hospitals=hospitals)
