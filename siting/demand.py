"""Demand surface: resident elderly on a regular grid, their density, band and owed radius.

Census counts are spread dasymetrically (residential building footprints, else residential
land use, else land) onto a grid in the working CRS, conserving each census unit's count
inside the study area; a raster or counted points can be used instead. Density per km² of
land sets the band (ZJ-R500, ZJ-R1000, ZJ-LOW …, from the rule set only); cells are
assigned to planning units (ZJ-UNIT), each owing beds (ZJ-BEDS).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import density as dens
from . import units as pu
from ._errors import DataError, RuleError, ScenarioError
from ._grid import Grid, area_on_grid, cover_fraction
from ._layers import check_overlap, norm_code, read_layer, read_table
from ._raster import points_on_grid, raster_on_grid

MIN_CELL_ELDERLY = 1e-9  # sliver intersections below this are not cells
SHARE_TOL = 1e-6  # a census unit with ≥ 99.9999 % of its weight inside is whole
WATER_LANDUSE = ("reservoir", "basin", "water")


@dataclass(frozen=True)
class DemandGrid:
    """The demand grid of one scenario, in the working (projected, metric) CRS.

    cells: one row per grid cell inside the study area holding elderly > 0, columns
        cell_id (int64, stable: row * n_cols + col of the full grid), geometry (square Polygon),
        x, y (cell centre, metres), elderly (float64, fractional, conserved),
        land_km2 (land area of the cell), density_km2 (elderly / km² of land around the cell,
        by the density method), band (band name from the rule set, e.g. "high"),
        radius_m (owed radius in metres; NaN where the band has none), rule_id (the band's
        rule, e.g. "ZJ-R500"), unit_id (str), unit_name (str), subdistrict (str).
    units: planning units (ZJ-UNIT): unit_id (str), name (str), subdistrict (str), geometry,
        area_km2, elderly (float), beds_required (int = ceil(ratio × elderly), ZJ-BEDS), rule_id.
    study_area: the dissolved study area (one row) in the working CRS.
    census: per census unit: code, name, count (census figure), weight_share_inside (0..1),
        elderly_inside (what was spread on the grid), partial (bool).
    meta: method and parameters (density method, radius, cell size, age, source), timings.
    notes: sentences for the report (partial census units, fallbacks used, …).
    """

    cells: gpd.GeoDataFrame
    units: gpd.GeoDataFrame
    study_area: gpd.GeoDataFrame
    census: pd.DataFrame
    crs: str
    cell_size_m: float
    meta: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


# ------------------------------------------------------------------ small helpers


def _dissolve(geoms: Any) -> shapely.Geometry:
    g = shapely.union_all(np.asarray(geoms))
    return g if g.is_valid else shapely.make_valid(g)


def _layer_notes(gdf: gpd.GeoDataFrame) -> list[str]:
    return list(gdf.attrs.get("notes", []))


def _clip_parts(parts: np.ndarray, poly: shapely.Geometry) -> np.ndarray:
    """Polygon parts clipped to ``poly``; parts wholly inside are kept as they are."""
    if len(parts) == 0 or poly.is_empty:
        return parts[:0]
    shapely.prepare(poly)
    hit = parts[shapely.intersects(poly, parts)]
    inside = shapely.contains_properly(poly, hit)
    cut = shapely.intersection(hit[~inside], poly)
    out = np.concatenate([hit[inside], shapely.get_parts(cut)])
    out = out[shapely.get_type_id(out) == 3]
    return out[shapely.area(out) > 0]


def _parts(geom: shapely.Geometry | None) -> np.ndarray:
    if geom is None or geom.is_empty:
        return np.array([], dtype=object)
    parts = shapely.get_parts(shapely.get_parts(geom))
    return parts[shapely.get_type_id(parts) == 3]


# ------------------------------------------------------------------ land, water, weights


@dataclass(frozen=True)
class _Landuse:
    residential: shapely.Geometry | None
    excluded: shapely.Geometry | None  # excluded land use, minus residential land use
    water: shapely.Geometry | None
    notes: tuple[str, ...]


def _read_landuse(scenario: Any, crs: str) -> _Landuse:
    """Residential, excluded and water land from the landuse layer (and a water layer if any).

    Water = landuse reservoir/basin/water, ``natural=water`` when the layer has that field,
    and every polygon of ``demand.weights.water`` when the scenario gives one. Where a
    residential and an excluded polygon overlap, residential wins (the finer tag).
    """
    w = scenario.demand.weights
    notes: list[str] = []
    res = exc = water = None
    if w.landuse is not None:
        lu = read_layer(w.landuse, field="demand.weights.landuse", crs=crs, geometry="polygon",
                        required_fields=[w.landuse_field])
        notes += _layer_notes(lu)
        val = lu[w.landuse_field].astype(str)
        res = _dissolve(lu.geometry[val.isin(w.residential_landuse)]) if val.isin(w.residential_landuse).any() else None
        is_water = val.isin(WATER_LANDUSE)
        if "natural" in lu.columns:
            is_water |= lu["natural"].astype(str).eq("water")
        water = _dissolve(lu.geometry[is_water]) if is_water.any() else None
        excl = val.isin(w.excluded_landuse) & ~is_water
        exc = _dissolve(lu.geometry[excl]) if excl.any() else None
        if exc is not None and res is not None:
            exc = exc.difference(res)
    water_ref = getattr(w, "water", None)
    if water_ref is not None:
        wl = read_layer(water_ref, field="demand.weights.water", crs=crs, geometry="polygon")
        notes += _layer_notes(wl)
        extra = _dissolve(wl.geometry)
        water = extra if water is None else water.union(extra)
    return _Landuse(res, exc, water, tuple(notes))


Weight = list[tuple[float, np.ndarray]]  # (sign, polygon parts): area of + parts minus − parts


def _pair_pieces(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersections of every intersecting pair (a_i, b_j) — b's parts must not overlap."""
    if len(a) == 0 or len(b) == 0:
        return np.array([], dtype=object)
    ia, ib = shapely.STRtree(b).query(a, predicate="intersects")
    pieces = shapely.get_parts(shapely.intersection(a[ia], b[ib]))
    pieces = pieces[shapely.get_type_id(pieces) == 3]
    return pieces[shapely.area(pieces) > 0]


def _building_weights(scenario: Any, crs: str, lu: _Landuse, area: shapely.Geometry,
                      reach: shapely.Geometry) -> tuple[Weight, list[str]]:
    """Residential footprints as signed pieces (no big dissolve): typed residential buildings
    minus their overlap with excluded land and water, plus ``yes`` buildings inside residential
    land use minus water. Only buildings touching ``reach`` (the census units) are used;
    overlapping footprints count twice (rare in OSM)."""
    w = scenario.demand.weights
    if w.buildings is None:
        return [], ["no `demand.weights.buildings` layer: census counts are spread over residential land use"]
    b = read_layer(w.buildings, field="demand.weights.buildings", crs=crs, geometry="polygon",
                   required_fields=[w.building_field])
    notes = _layer_notes(b)
    check_overlap(gpd.GeoDataFrame(geometry=[area], crs=crs), tuple(b.total_bounds),
                  what="the buildings layer", field="demand.weights.buildings")
    geoms = b.geometry.to_numpy()
    shapely.prepare(reach)
    near = shapely.intersects(reach, geoms)
    val = b[w.building_field].astype(str).to_numpy()
    kinds = set(w.residential_buildings)
    typed = _parts(shapely.GeometryCollection(list(geoms[near & np.isin(val, list(kinds - {"yes"}))])))
    blocked = _parts(shapely.union_all([g for g in (lu.excluded, lu.water) if g is not None]))
    weight: Weight = [(1.0, typed), (-1.0, _pair_pieces(typed, blocked))]
    if "yes" in kinds:
        if lu.residential is None:
            notes.append("buildings tagged building=yes were not counted: no residential land use to "
                         "confirm they are homes")
        else:
            yes = _parts(shapely.GeometryCollection(list(geoms[near & (val == "yes")])))
            yes_res = _pair_pieces(yes, _parts(lu.residential))
            weight += [(1.0, yes_res), (-1.0, _pair_pieces(yes_res, _parts(lu.water)))]
    return weight, notes


def _weight_area(weight: Weight, poly: shapely.Geometry) -> float:
    return float(sum(sign * shapely.area(_clip_parts(parts, poly)).sum() for sign, parts in weight))


def _weight_raster(weight: Weight, grid: Grid, poly: shapely.Geometry) -> np.ndarray:
    out = np.zeros(grid.shape)
    for sign, parts in weight:
        out += sign * area_on_grid(grid, _clip_parts(parts, poly))
    return np.where(out > 1e-6, out, 0.0)  # m²; drop round-off of a − a


# ------------------------------------------------------------------ census → grid


def _census_counts(spec: Any) -> pd.DataFrame:
    """The census table indexed by code: name and count (checked numeric and >= 0 later)."""
    table = read_table(spec.table, field="demand.census.table")
    for col, key in ((spec.code_field, "code_field"), (spec.count_column, "count_field")):
        if col not in table.columns:
            raise DataError(f"{spec.table}: column {col!r} missing (scenario field `demand.census.{key}`)",
                            hints=("columns: " + ", ".join(map(str, table.columns)),))
    name_col = next((c for c in ("name", "county", "district") if c in table.columns), spec.code_field)
    out = pd.DataFrame({"code": norm_code(table[spec.code_field]), "name": table[name_col].astype(str),
                        "raw": table[spec.count_column]})
    return out


def _count_of(table: pd.DataFrame, code: str, spec: Any) -> tuple[float, str]:
    rows = table[table.code == code]
    if rows.empty:
        raise DataError(
            f"{spec.table}: census code {code!r} (from `{spec.unit_code_field}` of the census units) "
            f"not found in column {spec.code_field!r} (scenario field `demand.census.code_field`)",
            hints=("add the row, or check that both use the same codes (e.g. 6-digit adcodes)",))
    if len(rows) > 1:
        raise DataError(f"{spec.table}: census code {code!r} appears {len(rows)} times "
                        f"(scenario field `demand.census.code_field`)")
    raw = rows.raw.iloc[0]
    value = pd.to_numeric(pd.Series([raw]), errors="coerce").iloc[0]
    if not np.isfinite(value) or value < 0:
        raise DataError(f"{spec.table}: census code {code!r}: {spec.count_column!r} = {raw!r} is not a "
                        f"non-negative number (scenario field `demand.census.count_field`)",
                        hints=("fix the table; counts are persons",))
    return float(value), str(rows.name.iloc[0])


def _census_polygons(spec: Any, crs: str, area: shapely.Geometry) -> tuple[dict[str, shapely.Geometry], list[str]]:
    units = read_layer(spec.units, field="demand.census.units", crs=crs, geometry="polygon",
                       required_fields=[spec.unit_code_field])
    codes = norm_code(units[spec.unit_code_field])
    polys = {c: _dissolve(units.geometry[codes == c]) for c in sorted(codes.unique())}
    shapely.prepare(area)
    touching = {c: g for c, g in polys.items() if shapely.intersects(area, g)
                and shapely.area(shapely.intersection(area, g)) > 0}
    if not touching:
        raise DataError(f"{spec.units.path}: no census unit overlaps the study area "
                        f"(scenario fields `demand.census.units` and `study_area`)",
                        hints=("check that both layers cover the same place and their CRS is right",))
    return touching, _layer_notes(units)


def _census_on_grid(scenario: Any, grid: Grid, area: shapely.Geometry, lu: _Landuse, crs: str
                    ) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Spread each census unit's count over its weight; keep the share inside the study area."""
    spec = scenario.demand.census
    w = scenario.demand.weights
    if w.buildings is None and w.landuse is None:
        raise ScenarioError("`demand.source: census` needs `demand.weights.buildings` or "
                            "`demand.weights.landuse` to place people (dasymetric weights)",
                            hints=("give the OSM buildings and landuse layers",))
    table = _census_counts(spec)
    polys, notes = _census_polygons(spec, crs, area)
    counts = {c: _count_of(table, c, spec) for c in polys}  # check every code before the slow part
    bld, bnotes = _building_weights(scenario, crs, lu, area, _dissolve(list(polys.values())))
    notes += bnotes
    res_land = lu.residential if lu.water is None or lu.residential is None else \
        lu.residential.difference(lu.water)
    tiers: list[tuple[str, Weight]] = [("residential buildings", bld),
                                       ("residential land use", [(1.0, _parts(res_land))])]
    parts: dict[str, np.ndarray] = {}
    records: list[dict[str, Any]] = []
    for code, poly in polys.items():
        count, name = counts[code]
        part = np.zeros(grid.shape)
        tier, share, inside, note, w_in = _spread_unit(grid, area, poly, tiers, lu, part, count)
        parts[code] = part
        if note:
            notes.append(f"census unit {code} ({name}): {note}")
        records.append({"code": code, "name": name, "count": count, "weight": tier,
                        "weight_share_inside": share, "elderly_inside": inside, "partial": share < 1.0,
                        "weight_m2_inside": w_in})
        if share < 1.0:
            notes.append(f"census unit {code} ({name}) is only partly inside the study area: "
                         f"{share:.1%} of its weight ({tier}) lies inside, so {inside:,.0f} of its "
                         f"{count:,.0f} elderly are placed")
    held, hnotes = _held_shares(spec, records)
    notes += hnotes
    out = np.zeros(grid.shape)
    for rec in records:
        f = held.get(rec["code"], 1.0)
        out += parts[rec["code"]] * f
        rec["share_held"] = f
        rec["elderly_inside"] *= f
    census = pd.DataFrame.from_records(records).sort_values("code", kind="stable").reset_index(drop=True)
    census, warn = _flag_crowded(census)
    return out, census, notes + warn


def _held_shares(spec: Any, records: list[dict]) -> tuple[dict[str, float], list[str]]:
    """Share of each census unit's count living in its polygons of the units layer.

    Given per code (``share_held``), or estimated from a reference unit (``share_reference``):
    share = min(1, weight m² in the unit's polygons × reference elderly per m² ÷ census count).
    """
    held = {str(k): float(v) for k, v in spec.share_held.items()}
    notes = [f"census unit {k}: {v:.1%} of its elderly are taken to live in the given polygons "
             "(demand.census.share_held, ASSUMED)" for k, v in sorted(held.items())]
    ref_code = spec.share_reference
    if ref_code is None:
        return held, notes
    by_code = {r["code"]: r for r in records}
    ref = by_code.get(str(ref_code))
    if ref is None or ref["weight_m2_inside"] <= 0:
        raise ScenarioError(f"`demand.census.share_reference: {ref_code}` is not a census unit with weight in "
                            "`demand.census.units`", hints=("codes present: " + ", ".join(sorted(by_code)),))
    per_m2 = ref["count"] / (ref["weight_m2_inside"] / max(ref["weight_share_inside"], 1e-12))
    for r in records:
        if r["code"] in held or r["code"] == ref["code"] or r["weight"] != ref["weight"] or r["count"] <= 0:
            continue
        total_m2 = r["weight_m2_inside"] / max(r["weight_share_inside"], 1e-12)
        f = min(1.0, total_m2 * per_m2 / r["count"])
        if f < 1.0:
            held[r["code"]] = f
            notes.append(f"census unit {r['code']} ({r['name']}): the given polygons are estimated to hold "
                         f"{f:.1%} of its {r['count']:,.0f} elderly — {per_m2 * 1000:,.1f} elderly per 1000 m² of "
                         f"{r['weight']} as in reference unit {ref['code']} ({ref['name']}) "
                         "(demand.census.share_reference, ASSUMED)")
    return held, notes


def _flag_crowded(census: pd.DataFrame, factor: float = 3.0) -> tuple[pd.DataFrame, list[str]]:
    """Flag census units placing over ``factor`` × the elderly per m² of weight of the sparsest one.

    A census unit whose polygons in the units layer cover only part of it (e.g. a district
    of which only some subdistricts are mapped) looks whole to the share computation and
    crowds its whole count onto the part; this is the visible symptom. Note only.
    """
    per_m2 = census["elderly_inside"] / census["weight_m2_inside"].where(census["weight_m2_inside"] > 0)
    census = census.assign(elderly_per_1000m2=per_m2 * 1000.0)
    if per_m2.notna().sum() < 2:
        return census.assign(crowded=False), []
    ref = float(per_m2.min())
    crowded = per_m2 > factor * ref
    notes = [f"census unit {r.code} ({r.name}) places {r.elderly_per_1000m2:,.1f} elderly per 1000 m² of "
             f"{r.weight}, {r.elderly_per_1000m2 / (ref * 1000):.1f}× the sparsest census unit: its "
             "polygons in `demand.census.units` may cover only part of it, so its count is crowded "
             "onto that part" for r in census[crowded].itertuples()]
    return census.assign(crowded=crowded.to_numpy()), notes


def _spread_unit(grid: Grid, area: shapely.Geometry, poly: shapely.Geometry, tiers: list, lu: _Landuse,
                 out: np.ndarray, count: float) -> tuple[str, float, float, str, float]:
    """Add one census unit's count to ``out``.

    Returns (weight used, share inside, elderly placed, note, weight m² inside).

    The first weight with area in the unit is used: residential buildings, else residential
    land use, else the unit's land (minus water), each with a note.
    """
    land = poly if lu.water is None else poly.difference(lu.water)
    chosen = None
    for i, (name, weight) in enumerate([*tiers, ("uniform over land", [(1.0, _parts(land))])]):
        total = _weight_area(weight, poly)
        if total > 1e-6:
            chosen = (i, name, weight, total)
            break
    if chosen is None:
        raise DataError(f"census unit has no land to place {count:,.0f} elderly on (all water?)",
                        hints=("check the census unit polygons and the water layer",))
    i, tier, weight, total = chosen
    note = "" if i == 0 else f"no {tiers[0][0]} in the unit, so its elderly are spread over {tier}"
    inside = _weight_raster(weight, grid, poly.intersection(area))
    share = float(inside.sum()) / total
    share = 1.0 if share > 1 - SHARE_TOL else share
    if share > 0:
        out += inside * (count * share / inside.sum())
    elif count > 0:
        note = (note + "; " if note else "") + f"none of its {tier} lies inside the study area, 0 placed"
    return tier, share, count * share, note, float(inside.sum())


# ------------------------------------------------------------------ density, cells, units


def _density_raster(scenario: Any, grid: Grid, elderly: np.ndarray, land_km2: np.ndarray,
                    cover: np.ndarray, crs: str) -> tuple[np.ndarray, dict]:
    spec = scenario.density
    if spec.method == "kernel":
        d = dens.kernel_density(elderly, land_km2, radius_m=spec.radius_m, cell_m=grid.cell_m)
        return d, {"method": "kernel", "radius_m": spec.radius_m,
                   "kernel": "elderly ÷ land km² over the cells whose centre is within radius_m "
                             "(FFT convolution, study area only)"}
    zones = read_layer(spec.zones, field="density.zones", crs=crs, geometry="polygon")
    rows, cols = np.nonzero(cover > 0)
    x, y = grid.centres(rows, cols)
    zone = pu.assign_by_centre(x, y, zones.geometry.to_numpy())
    d = np.zeros(grid.shape)
    d[rows, cols] = dens.zone_density(zone, elderly[rows, cols], land_km2[rows, cols], len(zones))
    return d, {"method": "zone", "zones": str(spec.zones.path), "n_zones": len(zones),
               "zone": "elderly of the zone ÷ its land km² (cells by centre)"}


def _beds_per_10k(rules: Any) -> float:
    """Beds per 10,000 elderly of the rule set's bed rule (ZJ-BEDS); 0 when it has none (e.g. weihai-2020)."""
    value = rules.param("beds_per_unit", "beds_per_10k")
    return 0.0 if value is None else float(value)


def _within(scenario: Any, crs: str, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    spec = scenario.planning_units
    if spec.within is None:
        return None
    w = read_layer(spec.within, field="planning_units.within", crs=crs, geometry="polygon",
                   required_fields=[spec.within_id_field])
    idx = pu.assign_by_centre(x, y, w.geometry.to_numpy())
    return w[spec.within_id_field].astype(str).to_numpy()[idx]


def _polygon_units(scenario: Any, area: shapely.Geometry, cells: pd.DataFrame, crs: str,
                   ratio: float) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray]:
    """Given unit polygons: each cell joins the unit holding its centre (else the nearest)."""
    spec = scenario.planning_units
    layer = read_layer(spec.layer, field="planning_units.layer", crs=crs, geometry="polygon",
                       required_fields=[spec.id_field, spec.name_field])
    ids = norm_code(layer[spec.id_field]).to_numpy(dtype=object)
    names = layer[spec.name_field].astype(str).to_numpy(dtype=object)
    dup = pd.Series(ids)[pd.Series(ids).duplicated()]
    if not dup.empty:
        raise DataError(f"{spec.layer.path}: unit id {dup.iloc[0]!r} appears more than once "
                        f"(scenario field `planning_units.id_field`)")
    x, y = cells.x.to_numpy(), cells.y.to_numpy()
    idx = pu.assign_by_centre(x, y, layer.geometry.to_numpy())
    geoms = shapely.intersection(layer.geometry.to_numpy(), area)
    elderly = np.bincount(idx, weights=cells.elderly.to_numpy(), minlength=len(layer))
    sub_units, sub_cells = names, names[idx]
    if spec.within is not None:
        sub_units = _within(scenario, crs, *shapely.get_coordinates(shapely.point_on_surface(geoms)).T)
        sub_cells = _within(scenario, crs, x, y)
    units = pu.units_frame(list(ids), list(names), list(sub_units), geoms, elderly, ratio, crs)
    return units, ids[idx], sub_cells


def _auto_units(scenario: Any, rules: Any, grid: Grid, area: shapely.Geometry, cover: np.ndarray,
                elderly: np.ndarray, crs: str, ratio: float
                ) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray, list[str]]:
    """Auto units grown over every grid cell in the study area (so units are contiguous).

    Returns the unit table, a raster of unit ids, a raster of subdistricts, and notes.
    """
    spec = scenario.planning_units
    target = spec.target_elderly or rules.param("unit_size", "elderly_per_unit")
    if target is None:
        raise RuleError(f"rule set {rules.name!r} has no `unit_size` rule (ZJ-UNIT); set "
                        "`planning_units.target_elderly`")
    rows, cols = np.nonzero(cover > 0)
    x, y = grid.centres(rows, cols)
    within = _within(scenario, crs, x, y)
    group = within if within is not None else np.full(len(rows), "U", dtype=object)
    label, ids = pu.auto_regions(grid, rows, cols, elderly[rows, cols], group, float(target))
    boxes = grid.boxes(rows, cols)
    geoms, subs, e = [], [], []
    for j in range(len(ids)):
        m = label == j
        geoms.append(shapely.intersection(shapely.coverage_union_all(boxes[m]), area))
        subs.append(str(group[m][0]) if within is not None else "")
        e.append(float(elderly[rows[m], cols[m]].sum()))
    names = [f"{s} {i.rsplit('-', 1)[1]}".strip() for s, i in zip(subs, ids, strict=True)]
    units = pu.units_frame(ids, names, subs, np.array(geoms, dtype=object), np.array(e), ratio, crs)
    id_raster = np.full(grid.shape, None, dtype=object)
    id_raster[rows[label >= 0], cols[label >= 0]] = np.array(ids, dtype=object)[label[label >= 0]]
    sub_raster = np.full(grid.shape, "", dtype=object)
    sub_raster[rows, cols] = group if within is not None else ""
    notes = [f"auto planning units: about {float(target):,.0f} elderly each (ZJ-UNIT), grown on the rook "
             "adjacency of grid cells" + (" inside each subdistrict" if within is not None else
                                         "; no `within` layer, so cells have no subdistrict")]
    return units, id_raster, sub_raster, notes


def _assign_units(scenario: Any, rules: Any, grid: Grid, area: shapely.Geometry, cover: np.ndarray,
                  elderly: np.ndarray, cells: pd.DataFrame, crs: str) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Fill unit_id, unit_name, subdistrict on ``cells`` (in place) and return the unit table."""
    ratio = _beds_per_10k(rules)
    notes: list[str] = []
    if scenario.planning_units.mode == "polygons":
        units, unit_ids, subs = _polygon_units(scenario, area, cells, crs, ratio)
    else:
        units, id_raster, sub_raster, notes = _auto_units(scenario, rules, grid, area, cover, elderly,
                                                          crs, ratio)
        r, c = cells["_row"].to_numpy(), cells["_col"].to_numpy()
        unit_ids, subs = id_raster[r, c], sub_raster[r, c]
    cells["unit_id"] = np.asarray(unit_ids, dtype=object).astype(str)
    cells["unit_name"] = units.set_index("unit_id").name.reindex(cells.unit_id).to_numpy()
    cells["subdistrict"] = np.asarray(subs, dtype=object).astype(str)
    return units, notes


def _cells_frame(grid: Grid, cover: np.ndarray, elderly: np.ndarray, land_km2: np.ndarray,
                 density: np.ndarray, crs: str) -> gpd.GeoDataFrame:
    """One row per cell in the study area holding elderly (sorted by cell_id)."""
    rows, cols = np.nonzero((elderly > MIN_CELL_ELDERLY) & (cover > 0))
    x, y = grid.centres(rows, cols)
    return gpd.GeoDataFrame(
        {"cell_id": grid.cell_ids(rows, cols), "x": x, "y": y, "elderly": elderly[rows, cols],
         "land_km2": land_km2[rows, cols], "density_km2": density[rows, cols], "_row": rows, "_col": cols},
        geometry=grid.boxes(rows, cols), crs=crs,
    )


# ------------------------------------------------------------------ the builder


def _demand_raster(scenario: Any, grid: Grid, area: shapely.Geometry, cover: np.ndarray, lu: _Landuse,
                   crs: str) -> tuple[np.ndarray, pd.DataFrame, list[str], dict]:
    """Elderly per cell from the scenario's source (census, raster or points)."""
    src = scenario.demand.source
    if src == "census":
        e, census, notes = _census_on_grid(scenario, grid, area, lu, crs)
        return e, census, notes, {"census_table": str(scenario.demand.census.table),
                                  "age": scenario.demand.census.age}
    empty = pd.DataFrame(columns=["code", "name", "count", "weight", "weight_share_inside",
                                  "elderly_inside", "partial", "weight_m2_inside", "elderly_per_1000m2",
                                  "crowded"])
    if src == "raster":
        e, info = raster_on_grid(scenario.demand.raster, grid, crs, cover, area)
        return e, empty, [f"elderly from the raster {info['raster']}: {info['aggregation']}"], info
    e, info = points_on_grid(scenario.demand.points, grid, crs, cover, area)
    notes = [f"{info['points_outside']} demand point(s) outside the study area were left out"] \
        if info["points_outside"] else []
    return e, empty, notes, info


def build(scenario: Any, rules: Any = None) -> DemandGrid:
    """Build the demand grid of a scenario (see :class:`DemandGrid`).

    ``rules`` defaults to the scenario's rule set with its overrides. Raises
    :class:`DataError`/:class:`ScenarioError` naming the file, field and fix on bad input.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if rules is None:
        from .rules import load_rule_set

        rules = load_rule_set(scenario.rules.set, scenario.rules.overrides)
    crs, cell_m, speed = scenario.grid.crs, float(scenario.grid.cell_size_m), scenario.speed_kmh()
    dens.check_cell_size(rules, cell_m=cell_m, speed_kmh=speed)
    study = read_layer(scenario.study_area, field="study_area", crs=crs, geometry="polygon")
    notes = _layer_notes(study)
    area = _dissolve(study.geometry)
    grid = Grid.covering(area.bounds, cell_m)
    lu = _read_landuse(scenario, crs)
    notes += list(lu.notes)
    land = area if lu.water is None else area.difference(lu.water)
    cover = cover_fraction(grid, area)
    land_km2 = area_on_grid(grid, land) / 1e6
    timings["grid_s"] = time.perf_counter() - t0
    elderly, census, src_notes, src_meta = _demand_raster(scenario, grid, area, cover, lu, crs)
    notes += src_notes
    timings["spread_s"] = time.perf_counter() - t0 - timings["grid_s"]
    density, dmeta = _density_raster(scenario, grid, elderly, land_km2, cover, crs)
    cells = _cells_frame(grid, cover, elderly, land_km2, density, crs)
    for k, v in dens.band_columns(cells.density_km2.to_numpy(), rules, speed_kmh=speed).items():
        cells[k] = v
    units, unit_notes = _assign_units(scenario, rules, grid, area, cover, elderly, cells, crs)
    notes += unit_notes
    cells = cells.drop(columns=["_row", "_col"]).sort_values("cell_id").reset_index(drop=True)
    notes.append(_land_note(lu, scenario))
    timings["total_s"] = time.perf_counter() - t0
    meta = {
        "source": scenario.demand.source, **src_meta, "crs": crs, "cell_size_m": cell_m,
        "grid_shape": grid.shape, "grid_origin": (grid.x0, grid.y0), "n_cells": len(cells),
        "elderly_total": float(cells.elderly.sum()), "study_area_km2": area.area / 1e6,
        "land_km2": float(land_km2.sum()), "density": dmeta, "speed_kmh": speed,
        "band_shares": dens.band_shares(cells.band.to_numpy(), cells.elderly.to_numpy(), rules),
        "beds_per_10k": _beds_per_10k(rules), "rule_set": rules.name, "timings": timings,
    }
    study_gdf = gpd.GeoDataFrame({"name": [scenario.name], "area_km2": [area.area / 1e6]},
                                 geometry=[area], crs=crs)
    return DemandGrid(cells=cells, units=units, study_area=study_gdf, census=census, crs=crs,
                      cell_size_m=cell_m, meta=meta, notes=tuple(dict.fromkeys(n for n in notes if n)))


def _land_note(lu: _Landuse, scenario: Any) -> str:
    if lu.water is None:
        return ("density is per km² of the study area: no water polygons were found (landuse "
                "reservoir/basin/water, natural=water), so lakes and rivers count as land there")
    src = "landuse reservoir/basin/water" + (" and `demand.weights.water`"
                                             if getattr(scenario.demand.weights, "water", None) else "")
    return f"density is per km² of land: the study area minus water ({src})"
