"""Synthetic but consistent pipeline objects for report/export/map tests.

``make_small_run()`` builds a tiny run (61 cells of 100 m in EPSG:4549 near x=500000,
y=3340000, three planning units, two existing institutions, four candidate sites of which
three are opened) that follows the contracts in ``siting.demand``, ``siting.sites``,
``siting.reach`` and ``siting.model``. Bands come from the real ``zhejiang-2021`` rule set
(``RuleSet.band_index``); coverage is computed from the real coordinates, so every number
below can be checked by hand.

Layout (rows south → north, columns west → east; full grid 17 columns × 5 rows,
``cell_id = row * 17 + col``)::

    row 4  L L L L | L L L L | L L L L          low:    5.25 elderly/cell (525/km²)
    row 3  M M M M | M M M M | M M M M          medium: 20 (2000/km²)
    row 2  M M M M | M M M M | M M M M
    row 1  H H H H | H H H H | H H H H          high:   60 (6000/km²), 120 in U3
    row 0  H H H H | H H H H | H H H H . . . . H   ← (0, 16): high, 55 elderly, uncoverable
           U1 清波街道  U2 湖滨街道  U3 小营街道

Hand-computed figures (ZJ-BEDS: ceil(300/10,000 × elderly)):

    unit  elderly  required  existing  new (how)               deficit before/after
    U1    661      20        20 (E01, assumed)  30 (C01)        0 / 0
    U2    661      20        10 (E02)  60 (E02 +30, C02 30)     10 / 0
    U3    1196     36        0         30 (C03)                 36 / 6
    total 2518  — high 1975 (25 cells), medium 480 (24), low 63 (12)
    cost  E02 expansion 500,000 + 30 × 100,000 = 3,500,000; each new site
          3,000,000 + 30 × 120,000 = 6,600,000; total 23,300,000 CNY.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.spatial import cKDTree
from shapely.geometry import Point, box

from siting._data import data_root
from siting.demand import DemandGrid
from siting.model import Plan, SolverInfo
from siting.reach import MIN_STORED_DISTANCE_M, Reach
from siting.rules import RuleSet, load_rule_set
from siting.scenario import Scenario
from siting.sites import Sites

CRS = "EPSG:4549"
X0, Y0 = 500_000.0, 3_340_000.0
CELL_M = 100.0
N_COLS_FULL = 17
UNITS = (  # unit_id, name, columns
    ("U1", "清波街道", range(0, 4)),
    ("U2", "湖滨街道", range(4, 8)),
    ("U3", "小营街道", range(8, 12)),
)
UNCOVERABLE_RC = (0, 16)

# site_id, kind, name, x, y, beds, beds_assumed, unit_id
SITES = (
    ("E01", "existing", "清波颐养院", 500_157.0, 3_340_243.0, 20, True, "U1"),
    ("E02", "existing", "湖滨福利院", 500_557.0, 3_340_143.0, 10, False, "U2"),
    ("C01", "candidate", "", 500_257.0, 3_340_043.0, 0, False, "U1"),
    ("C02", "candidate", "", 500_757.0, 3_340_343.0, 0, False, "U2"),
    ("C03", "candidate", "", 501_057.0, 3_340_143.0, 0, False, "U3"),
    ("C04", "candidate", "", 501_157.0, 3_340_443.0, 0, False, "U3"),
)
OPENED = ("C01", "C02", "C03")
NEW_BEDS = 30
COST_SITE, COST_BED, COST_EXP_FIXED, COST_EXP_BED = 3_000_000.0, 120_000.0, 500_000.0, 100_000.0


class SmallRun(NamedTuple):
    """The six pipeline objects, in the order ``report``/``export``/``maps`` take them (``*run``)."""

    scenario: Scenario
    rules: RuleSet
    demand: DemandGrid
    sites: Sites
    reach: Reach
    plan: Plan


def _cell_elderly(row: int, col: int) -> float:
    if (row, col) == UNCOVERABLE_RC:
        return 55.0
    if row <= 1:
        return 120.0 if col >= 8 else 60.0
    return 20.0 if row <= 3 else 5.25


def _unit_of(col: int) -> tuple[str, str]:
    for uid, name, cols in UNITS:
        if col in cols:
            return uid, name
    return UNITS[-1][0], UNITS[-1][1]


def _cell_positions() -> list[tuple[int, int]]:
    cells = [(r, c) for r in range(5) for c in range(12)]
    return sorted([*cells, UNCOVERABLE_RC], key=lambda rc: rc[0] * N_COLS_FULL + rc[1])


def _make_scenario(tmp_path: Path | None) -> Scenario:
    root = data_root(required=False) or Path("data")
    hz = Path(root) / "hangzhou_westlake"
    subd = {"path": str(hz / "subdistricts.gpkg"), "layer": "subdistricts"}
    raw: dict[str, Any] = {
        "version": 1,
        "name": "small_synthetic",
        "title": "合成小算例 · Small synthetic run",
        "study_area": subd,
        "demand": {"source": "census", "census": {
            "table": str(hz / "census2020_districts.csv"), "units": subd}},
        "grid": {"cell_size_m": CELL_M, "crs": CRS},
        "density": {"method": "zone", "zones": subd},
        "planning_units": {"mode": "polygons", "layer": subd, "id_field": "osm_id",
                           "name_field": "subdistrict"},
        "existing_facilities": {"layer": {"path": str(hz / "elderly_facilities.gpkg")},
                                "id_field": "osm_id", "default_beds": 20},
        "candidates": {"mode": "generate"},
        "distance": {"mode": "euclidean"},
        "objective": {"kind": "max_coverage", "n_sites": 3, "beds_rule": "objective"},
        "costs": {"site": COST_SITE, "bed": COST_BED, "expansion_fixed": COST_EXP_FIXED,
                  "expansion_bed": COST_EXP_BED},
        "modules": {"sizes": [30, 60], "expansion_beds": 30},
        "solver": {"name": "highs", "time_limit_s": 60, "mip_gap": 0.0, "threads": 2, "seed": 0},
    }
    if tmp_path is not None:
        raw["outputs"] = {"dir": str(Path(tmp_path) / "out")}
    return Scenario.model_validate(raw)


def _make_demand(rules: RuleSet) -> DemandGrid:
    rows = []
    for r, c in _cell_positions():
        x, y = X0 + (c + 0.5) * CELL_M, Y0 + (r + 0.5) * CELL_M
        elderly = _cell_elderly(r, c)
        uid, uname = _unit_of(c)
        rows.append({"cell_id": r * N_COLS_FULL + c, "x": x, "y": y, "elderly": elderly,
                     "land_km2": 0.01, "density_km2": elderly / 0.01, "unit_id": uid,
                     "unit_name": uname, "subdistrict": uname,
                     "geometry": box(x - 50, y - 50, x + 50, y + 50)})
    cells = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    cells["cell_id"] = cells["cell_id"].astype("int64")
    idx = rules.band_index(cells["density_km2"].to_numpy())
    cells["band"] = [rules.bands[i].name for i in idx]
    cells["radius_m"] = [rules.bands[i].radius_m if rules.bands[i].radius_m else np.nan for i in idx]
    cells["rule_id"] = [rules.bands[i].rule_id for i in idx]
    ratio = float(rules.param("beds_per_unit", "beds_per_10k", 300)) / 10_000
    units = []
    for uid, name, cols in UNITS:
        sel = cells[cells["unit_id"] == uid]
        xmin = X0 + cols.start * CELL_M
        xmax = X0 + (cols.stop if uid != "U3" else N_COLS_FULL) * CELL_M
        eld = float(sel["elderly"].sum())
        units.append({"unit_id": uid, "name": name, "subdistrict": name,
                      "geometry": box(xmin, Y0, xmax, Y0 + 5 * CELL_M),
                      "area_km2": (xmax - xmin) * 5 * CELL_M / 1e6, "elderly": eld,
                      "beds_required": math.ceil(round(ratio * eld, 9)), "rule_id": "ZJ-BEDS"})
    units_gdf = gpd.GeoDataFrame(units, geometry="geometry", crs=CRS)
    area = gpd.GeoDataFrame({"name": ["研究区"]}, geometry=[units_gdf.union_all()], crs=CRS)
    total = float(cells["elderly"].sum())
    census = pd.DataFrame([{"code": "330102", "name": "上城区", "count": 3000.0,
                            "weight_share_inside": total / 3000.0, "elderly_inside": total,
                            "partial": True}])
    meta = {"density_method": "zone", "density_radius_m": None, "cell_size_m": CELL_M,
            "age": "60+", "source": "census", "census_table": "census2020_districts.csv"}
    notes = ("建筑物缺失的普查单元按居住用地分配 · census units without residential buildings were spread "
             "over residential land instead (fallback)",)
    return DemandGrid(cells=cells, units=units_gdf, study_area=area, census=census, crs=CRS,
                      cell_size_m=CELL_M, meta=meta, notes=notes)


def _make_sites() -> Sites:
    rows = [{"site_id": sid, "kind": kind, "name": name, "x": x, "y": y, "geometry": Point(x, y),
             "beds": beds, "beds_assumed": assumed, "unit_id": uid,
             "subdistrict": _unit_name(uid), "cost_open": 0.0 if kind == "existing" else COST_SITE,
             "near_hospital": sid == "C02"}
            for sid, kind, name, x, y, beds, assumed, uid in SITES]
    table = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    table["beds"] = table["beds"].astype("int64")
    notes = ("现有机构来自 OpenStreetMap，可能不完整 · existing institutions come from OpenStreetMap "
             "and may be incomplete",)
    return Sites(table=table, crs=CRS, meta={"existing_source": "osm"}, notes=notes)


def _unit_name(uid: str) -> str:
    return {u: n for u, n, _ in UNITS}[uid]


def _make_reach(demand: DemandGrid, sites: Sites) -> Reach:
    """Sparse euclidean reach: an entry iff the site is within the cell's owed radius."""
    cxy = demand.cells[["x", "y"]].to_numpy()
    sxy = sites.table[["x", "y"]].to_numpy()
    tree = cKDTree(sxy)
    radius = demand.cells["radius_m"].to_numpy()
    rows, cols, vals = [], [], []
    for i, (pt, rad) in enumerate(zip(cxy, radius, strict=True)):
        if np.isnan(rad):
            continue
        for j in sorted(tree.query_ball_point(pt, rad)):
            d = float(np.hypot(*(sxy[j] - pt)))
            assert abs(d - rad) > 1.0, "factory layout must avoid ties at the radius"
            rows.append(i)
            cols.append(j)
            vals.append(max(d, MIN_STORED_DISTANCE_M))
    dist = sparse.csr_array((vals, (rows, cols)), shape=(len(cxy), len(sxy)))
    return Reach(dist=dist, mode="euclidean", meta={"method": "kd-tree"})


def _covered(reach: Reach, open_sites: np.ndarray) -> np.ndarray:
    return np.asarray((reach.covers @ open_sites.astype(np.int64)) > 0).ravel()


def _make_plan(demand: DemandGrid, sites: Sites, reach: Reach) -> Plan:
    t = sites.table
    open_before = (t["kind"] == "existing").to_numpy()
    open_after = open_before | t["site_id"].isin(OPENED).to_numpy()
    has_radius = demand.cells["radius_m"].notna().to_numpy()
    uncoverable = has_radius & (np.diff(reach.dist.indptr) == 0)
    new_cost = COST_SITE + NEW_BEDS * COST_BED
    new_sites = pd.DataFrame([{"site": int(j), "site_id": t["site_id"].iat[j], "beds": NEW_BEDS,
                               "cost": new_cost, "unit_id": t["unit_id"].iat[j]}
                              for j in np.flatnonzero(t["site_id"].isin(OPENED).to_numpy())])
    exp_cost = COST_EXP_FIXED + 30 * COST_EXP_BED
    existing = pd.DataFrame([
        {"site": 0, "site_id": "E01", "name": "清波颐养院", "action": "kept", "beds_before": 20,
         "beds_added": 0, "beds_after": 20, "beds_assumed": True, "cost": 0.0},
        {"site": 1, "site_id": "E02", "name": "湖滨福利院", "action": "expanded", "beds_before": 10,
         "beds_added": 30, "beds_after": 40, "beds_assumed": False, "cost": exp_cost},
    ])
    units = demand.units[["unit_id", "name", "elderly", "beds_required"]].copy()
    units = pd.DataFrame(units)
    units["beds_existing"] = [20, 10, 0]
    units["beds_new"] = [30, 60, 30]
    have_before = units["beds_existing"]
    units["deficit_before"] = (units["beds_required"] - have_before).clip(lower=0)
    units["deficit_after"] = (units["beds_required"] - have_before - units["beds_new"]).clip(lower=0)
    covered_after = _covered(reach, open_after)
    objective = float(demand.cells.loc[covered_after, "elderly"].sum())
    solver = SolverInfo(name="highs", status="optimal", objective=objective, bound=objective,
                        gap=0.0, seconds=0.42,
                        options={"time_limit_s": 60.0, "mip_gap": 0.0, "threads": 2, "seed": 0})
    return Plan(objective_kind="max_coverage", new_sites=new_sites, existing=existing,
                open_before=open_before, open_after=open_after,
                covered_before=_covered(reach, open_before), covered_after=covered_after,
                uncoverable=uncoverable, units=units,
                cost_total=3 * new_cost + exp_cost, solver=solver)


def make_small_run(tmp_path: Path | None = None) -> SmallRun:
    """A tiny, deterministic, internally consistent run (see the module docstring)."""
    scenario = _make_scenario(tmp_path)
    rules = load_rule_set("zhejiang-2021")
    demand = _make_demand(rules)
    sites = _make_sites()
    reach = _make_reach(demand, sites)
    plan = _make_plan(demand, sites, reach)
    return SmallRun(scenario, rules, demand, sites, reach, plan)


def with_time_limit(run: SmallRun, gap: float = 0.05) -> SmallRun:
    """The same plan, but stopped by the time limit with an incumbent ``gap`` from the bound."""
    obj = run.plan.solver.objective or 0.0
    info = replace(run.plan.solver, status="time_limit", bound=obj * (1 + gap), gap=gap, seconds=60.0)
    return run._replace(plan=replace(run.plan, solver=info))


def with_infeasible(run: SmallRun) -> SmallRun:
    """An infeasible min-cost plan: no new sites, and a diagnosis saying what cannot be met."""
    empty = run.plan.new_sites.iloc[0:0]
    units = run.plan.units.copy()
    units["beds_new"] = 0
    units["deficit_after"] = units["deficit_before"]
    diagnosis = {  # the shape of siting.diagnose.finish()
        "status": "infeasible",
        "summary": ["ZJ-BEDS: unit U3 needs 36 beds but its sites can hold at most 0 (36 short; 0 candidate "
                    "sites) — add candidate sites or larger module sizes"],
        "problems": [{"rule": "ZJ-BEDS", "unit_id": "U3", "beds_required": 36, "beds_max_achievable": 0,
                      "shortfall": 36, "fix": "add candidate sites near (501650, 3340050)"}],
        "units": [], "subdistricts": [], "special_beds": [], "capacity": [], "limits": {},
        "uncoverable": {"cells": 1, "elderly": 55.0},
    }
    existing = run.plan.existing.copy()
    existing["action"] = "kept"
    existing["beds_added"] = 0
    existing["beds_after"] = existing["beds_before"]
    existing["cost"] = 0.0
    units["beds_new"] = 0
    info = replace(run.plan.solver, status="infeasible", objective=None, bound=None, gap=None)
    plan = replace(run.plan, objective_kind="min_cost", new_sites=empty, units=units, existing=existing,
                   open_after=run.plan.open_before, covered_after=run.plan.covered_before,
                   cost_total=0.0, solver=info, diagnosis=diagnosis)
    return run._replace(plan=plan)
