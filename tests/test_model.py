"""The planning model against brute force on tiny instances, and against an independent solver."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from shapely.geometry import Point, box

from siting import _cuts, model
from siting.demand import DemandGrid
from siting.reach import MIN_STORED_DISTANCE_M, Reach
from siting.rules import Rule, RuleSet, load_rule_set
from siting.scenario import Scenario
from siting.sites import Sites
from siting.solve import is_feasible

CRS = "EPSG:4549"


# ----------------------------------------------------------------------------- factory


@dataclass(frozen=True)
class Tiny:
    """A tiny planning instance as plain arrays (brute force reads these)."""

    cell_xy: np.ndarray
    elderly: np.ndarray
    radius: np.ndarray  # NaN: no radius (ZJ-LOW)
    cell_unit: np.ndarray  # index into units
    site_xy: np.ndarray
    is_exist: np.ndarray
    beds: np.ndarray
    site_unit: np.ndarray
    unit_boxes: tuple[tuple[float, float, float, float], ...]
    unit_sub: tuple[str, ...]
    cost_open: np.ndarray | None = None

    def objects(self) -> tuple[DemandGrid, Sites, Reach]:
        return make_demand(self), make_sites(self), make_reach(self)


def make_demand(t: Tiny) -> DemandGrid:
    uid = np.array([f"U{u}" for u in range(len(t.unit_boxes))])
    has_r = np.isfinite(t.radius)
    cells = gpd.GeoDataFrame({
        "cell_id": np.arange(len(t.elderly), dtype=np.int64),
        "x": t.cell_xy[:, 0], "y": t.cell_xy[:, 1], "elderly": t.elderly.astype(float),
        "radius_m": t.radius, "rule_id": np.where(t.radius == 500, "ZJ-R500", np.where(has_r, "ZJ-R1000", "ZJ-LOW")),
        "unit_id": uid[t.cell_unit], "subdistrict": np.array(t.unit_sub)[t.cell_unit],
    }, geometry=[Point(x, y).buffer(50, cap_style="square") for x, y in t.cell_xy], crs=CRS)
    elderly_u = np.bincount(t.cell_unit, weights=t.elderly, minlength=len(uid))
    units = gpd.GeoDataFrame({
        "unit_id": uid, "name": [f"unit {u}" for u in range(len(uid))], "subdistrict": list(t.unit_sub),
        "elderly": elderly_u, "beds_required": np.ceil(300 * elderly_u / 10_000).astype(int), "rule_id": "ZJ-BEDS",
    }, geometry=[box(*b) for b in t.unit_boxes], crs=CRS)
    return DemandGrid(cells=cells, units=units, study_area=units.dissolve(), census=pd.DataFrame(), crs=CRS,
                      cell_size_m=100.0)


def make_sites(t: Tiny) -> Sites:
    n = len(t.beds)
    kind = np.where(t.is_exist, "existing", "candidate")
    table = gpd.GeoDataFrame({
        "site_id": [f"{'E' if e else 'C'}{i:02d}" for i, e in enumerate(t.is_exist)], "kind": kind,
        "name": [f"site {i}" for i in range(n)], "x": t.site_xy[:, 0], "y": t.site_xy[:, 1],
        "beds": t.beds.astype(int), "beds_assumed": False,
        "unit_id": [f"U{u}" if u >= 0 else "" for u in t.site_unit],
        "subdistrict": [t.unit_sub[u] if u >= 0 else "" for u in t.site_unit],
        "cost_open": t.cost_open if t.cost_open is not None else np.full(n, np.nan),
        "near_hospital": False,
    }, geometry=[Point(x, y) for x, y in t.site_xy], crs=CRS)
    return Sites(table=table, crs=CRS)


def make_reach(t: Tiny) -> Reach:
    d = np.hypot(t.cell_xy[:, None, 0] - t.site_xy[None, :, 0], t.cell_xy[:, None, 1] - t.site_xy[None, :, 1])
    ok = np.isfinite(t.radius)[:, None] & (d <= np.nan_to_num(t.radius, nan=-1)[:, None])
    r, c = np.nonzero(ok)
    dist = sparse.csr_array((np.maximum(d[r, c], MIN_STORED_DISTANCE_M), (r, c)), shape=d.shape)
    return Reach(dist=dist, mode="euclidean")


def make_scenario(**blocks: dict) -> Scenario:
    raw = {"version": 1, "name": "tiny", "study_area": {"path": "x.gpkg"},
           "demand": {"source": "points", "points": {"path": "p.gpkg"}}, "planning_units": {"mode": "auto"},
           "modules": {"sizes": [30, 60], "expansion_beds": 30},
           "costs": {"site": 1_000_000, "bed": 100_000, "expansion_fixed": 500_000, "expansion_bed": 90_000},
           "solver": {"time_limit_s": 60}}
    for k, v in blocks.items():
        raw[k] = {**raw.get(k, {}), **v}
    return Scenario.model_validate(raw)


def core_rules() -> RuleSet:
    """The preset with only what brute force checks enforced (ZJ-BEDS, ZJ-R500, ZJ-R1000)."""
    rs = load_rule_set("zhejiang-2021")
    core = {"unit_size", "beds_per_unit", "band_radius"}
    rules = tuple(r if r.kind in core or r.status != "enforced" else r.model_copy(update={"status": "reported"})
                  for r in rs.rules)
    return RuleSet.model_validate({**rs.model_dump(), "rules": rules})


def rules_with(*extra: dict) -> RuleSet:
    rs = core_rules()
    base = {"quote_zh": "测试规则", "source": "test", "status": "enforced", "title": "test rule"}
    rules = (*rs.rules, *(Rule.model_validate({**base, **e}) for e in extra))
    return RuleSet.model_validate({**rs.model_dump(), "rules": rules})


RULES = core_rules()
PRESET = load_rule_set("zhejiang-2021")


@st.composite
def tiny_instances(draw, max_cand: int = 7, max_exist: int = 2) -> Tiny:
    n_cells = draw(st.integers(3, 10))
    n_cand = draw(st.integers(2, max_cand))
    n_ex = draw(st.integers(0, max_exist))
    coord = st.integers(0, 20).map(lambda v: v * 100.0)
    cell_xy = np.array([[draw(coord), draw(coord)] for _ in range(n_cells)])
    site_xy = np.array([[draw(coord), draw(coord)] for _ in range(n_ex + n_cand)])
    elderly = np.array([draw(st.integers(1, 400)) for _ in range(n_cells)], dtype=float) * 10
    radius = np.array([draw(st.sampled_from([500.0, 1000.0, np.nan])) for _ in range(n_cells)])
    beds = np.array([draw(st.sampled_from([0, 20, 50])) for _ in range(n_ex)] + [0] * n_cand)
    cost_open = np.array([np.nan] * n_ex + [draw(st.sampled_from([np.nan, 500_000.0, 2_000_000.0]))
                                            for _ in range(n_cand)])
    return Tiny(cell_xy=cell_xy, elderly=elderly, radius=radius, cell_unit=(cell_xy[:, 0] >= 1000).astype(int),
                site_xy=site_xy, is_exist=np.r_[np.ones(n_ex, bool), np.zeros(n_cand, bool)], beds=beds,
                site_unit=(site_xy[:, 0] >= 1000).astype(int),
                unit_boxes=((-50, -50, 950, 2050), (950, -50, 2050, 2050)), unit_sub=("S0", "S1"),
                cost_open=cost_open)


# ----------------------------------------------------------------------------- brute force


def brute_force(t: Tiny, sc: Scenario, rules: RuleSet = RULES) -> tuple[float, float] | None:
    """Enumerate every plan; return (best objective, its cost) or None when none is feasible.

    min_cost: least cost; max_coverage: most elderly covered within budget / n_sites.
    """
    sizes = np.array(sc.modules.sizes)
    ex, cst, kind = sc.existing_facilities, sc.costs, sc.objective.kind
    cand, exist = np.flatnonzero(~t.is_exist), np.flatnonzero(t.is_exist)
    n_mod = ex.max_expansion_modules if ex.allow_expand else 0
    ex_opts = [(1, m) for m in range(n_mod + 1)] + ([(0, 0)] if ex.allow_close else [])
    cand_choice = np.array(list(itertools.product(range(len(sizes) + 1), repeat=len(cand))), dtype=int)
    cand_choice = cand_choice.reshape(-1, len(cand))
    ex_choice = list(itertools.product(ex_opts, repeat=len(exist)))
    reach = make_reach(t).dist.toarray() > 0
    need = np.isfinite(t.radius) & reach.any(axis=1)
    site_cost = np.where(np.isfinite(t.cost_open[cand]), t.cost_open[cand], cst.site) if t.cost_open is not None \
        else np.full(len(cand), cst.site)
    req = np.ceil(300 * np.bincount(t.cell_unit, weights=t.elderly, minlength=2) / 10_000 - 1e-9)
    opened = cand_choice > 0
    new_beds = np.where(opened, sizes[np.maximum(cand_choice - 1, 0)], 0)
    cand_cost = (opened * (site_cost + cst.module) + new_beds * cst.bed).sum(axis=1)
    best: tuple[float, float] | None = None
    for choice in ex_choice:
        keep = np.array([c[0] for c in choice], dtype=bool)
        mods = np.array([c[1] for c in choice], dtype=float)
        ex_cost = float(((mods > 0) * cst.expansion_fixed + mods * (cst.expansion_bed * 30 + cst.module)).sum()
                        + (~keep).sum() * cst.close)
        open_all = np.zeros((len(cand_choice), len(t.beds)), dtype=bool)
        open_all[:, cand] = opened
        open_all[:, exist] = keep
        beds = np.zeros((len(cand_choice), len(t.beds)))
        beds[:, cand] = new_beds
        beds[:, exist] = keep * (t.beds[exist] + 30 * mods)
        covered = (open_all.astype(int) @ reach.T.astype(int)) > 0
        unit_beds = np.stack([beds[:, t.site_unit == u].sum(axis=1) for u in range(2)], axis=1)
        feas = (unit_beds >= req).all(axis=1)
        feas &= _subdistrict_ok(t, rules, open_all, beds, sizes, cand_choice, cand)
        cost = cand_cost + ex_cost
        if kind == "min_cost":
            feas &= (covered | ~need).all(axis=1)
            val = cost
        else:
            if sc.objective.budget is not None:
                feas &= cost <= sc.objective.budget + 1e-6
            if sc.objective.n_sites is not None:
                feas &= opened.sum(axis=1) <= sc.objective.n_sites
            val = -((covered & need).astype(float) @ t.elderly)
        if feas.any():
            i = np.flatnonzero(feas)[np.argmin(val[feas])]
            if best is None or val[i] < best[0] - 1e-6:
                best = (float(val[i]), float(cost[i]))
    if best is not None and kind == "max_coverage":
        best = (-best[0], best[1])
    return best


def _subdistrict_ok(t, rules, open_all, beds, sizes, cand_choice, cand) -> np.ndarray:
    ok = np.ones(len(open_all), dtype=bool)
    for rule in rules.by_kind("one_per_subdistrict", enforced_only=True):
        min_beds = float(rule.params.get("min_beds") or 0)
        counts = np.zeros((len(open_all), 2))
        for s in range(len(t.beds)):
            if t.is_exist[s]:
                hit = open_all[:, s] & (t.beds[s] >= min_beds)
            else:
                j = np.flatnonzero(cand == s)[0]
                hit = (cand_choice[:, j] > 0) & (sizes[np.maximum(cand_choice[:, j] - 1, 0)] >= min_beds)
            counts[:, t.site_unit[s]] += hit
        ok &= (counts >= 1).all(axis=1)
    return ok


def scipy_optimum(problem) -> float | None:
    """Independent check: scipy's own HiGHS on the built MilpProblem."""
    sign = -1.0 if problem.sense == "max" else 1.0
    res = milp(sign * problem.c, constraints=[LinearConstraint(problem.A, problem.row_lb, problem.row_ub)],
               integrality=problem.integrality.astype(int), bounds=Bounds(problem.col_lb, problem.col_ub),
               options={"mip_rel_gap": 0})
    return None if res.status != 0 else float(problem.c @ res.x + problem.offset)


def objective_of(p: model.Plan) -> float:
    return p.cost_total if p.objective_kind == "min_cost" else p.meta["covered_elderly_after"]


HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- brute-force tests


@HYP
@given(t=tiny_instances(), close=st.booleans(), n_mod=st.integers(0, 2))
def test_min_cost_matches_brute_force(t: Tiny, close: bool, n_mod: int) -> None:
    sc = make_scenario(existing_facilities={"allow_close": close, "max_expansion_modules": n_mod},
                       costs={"close": 100_000})
    truth = brute_force(t, sc)
    p = model.plan(sc, RULES, *t.objects())
    if truth is None:
        assert p.solver.status == "infeasible"
        assert p.diagnosis is not None
        return
    assert p.solver.status == "optimal"
    assert p.cost_total == pytest.approx(truth[0], rel=1e-9, abs=1e-3)
    assert p.covered_after[model.build_problem(sc, RULES, *t.objects())[1].need].all()
    assert (p.units["deficit_after"] == 0).all()


@HYP
@given(t=tiny_instances(max_cand=6, max_exist=1), budget=st.sampled_from([0, 1.5e6, 4e6, 9e6]),
       n_sites=st.sampled_from([None, 1, 2]))
def test_max_coverage_matches_brute_force(t: Tiny, budget: float, n_sites: int | None) -> None:
    t = replace(t, elderly=t.elderly / 20)  # small units so the bed rule rarely binds alone
    sc = make_scenario(objective={"kind": "max_coverage", "budget": budget, "n_sites": n_sites})
    truth = brute_force(t, sc)
    p = model.plan(sc, RULES, *t.objects())
    if truth is None:
        assert p.solver.status == "infeasible"
        assert any(q["rule"] in {"objective.budget", "objective.n_sites", "ZJ-BEDS"} for q in p.diagnosis["problems"])
        return
    assert p.solver.status == "optimal"
    assert p.meta["covered_elderly_after"] == pytest.approx(truth[0], rel=1e-9, abs=1e-6)
    assert p.cost_total <= budget + 1e-6


@HYP
@given(t=tiny_instances(max_cand=6), min_beds=st.sampled_from([None, 60]))
def test_one_per_subdistrict_matches_brute_force(t: Tiny, min_beds: int | None) -> None:
    rules = rules_with({"id": "CX-EMBED", "kind": "one_per_subdistrict", "params": {"min_beds": min_beds}})
    sc = make_scenario()
    truth = brute_force(t, sc, rules)
    p = model.plan(sc, rules, *t.objects())
    if truth is None:
        assert p.solver.status == "infeasible"
        return
    assert p.cost_total == pytest.approx(truth[0], rel=1e-9, abs=1e-3)
    opened_subs = set(p.new_sites["subdistrict"]) | set(
        p.existing.loc[p.existing["action"] != "closed", "unit_id"].map({"U0": "S0", "U1": "S1"}))
    assert opened_subs >= {"S0", "S1"}


@HYP
@given(t=tiny_instances(max_cand=8))
def test_reductions_keep_the_optimum(t: Tiny) -> None:
    sc = make_scenario(existing_facilities={"allow_close": True})
    objs = t.objects()
    full, _ = model.build_problem(sc, RULES, *objs, reduce=False)
    red, _ = model.build_problem(sc, RULES, *objs, reduce=True)
    assert red.A.shape[0] <= full.A.shape[0]
    assert scipy_optimum(red) == pytest.approx(scipy_optimum(full), rel=1e-9) if scipy_optimum(full) else True


def _lp_value(problem) -> float:
    """The LP relaxation's optimum (scipy's HiGHS), in the problem's own sense."""
    sign = -1.0 if problem.sense == "max" else 1.0
    res = milp(sign * problem.c, constraints=[LinearConstraint(problem.A, problem.row_lb, problem.row_ub)],
               integrality=np.zeros(problem.A.shape[1], dtype=int), bounds=Bounds(problem.col_lb, problem.col_ub))
    assert res.status == 0
    return float(problem.c @ res.x + problem.offset)


@HYP
@given(t=tiny_instances(max_cand=7, max_exist=2), close=st.booleans(), n_mod=st.integers(0, 2),
       neighbour=st.sampled_from([None, 3000]), sizes=st.sampled_from([[30, 60], [40, 70, 100]]))
def test_beds_mir_rows_keep_the_optimum(t: Tiny, close: bool, n_mod: int, neighbour: int | None,
                                        sizes: list[int]) -> None:
    """Rows implied by ZJ-BEDS (siting._cuts: MIR and count hull rows): the optimum without them meets
    them; same optimum (independent solver)."""
    t = replace(t, elderly=t.elderly / 4)  # units owe a few modules' worth of beds: feasible, and the cuts bite
    sc = make_scenario(existing_facilities={"allow_close": close, "max_expansion_modules": n_mod},
                       costs={"close": 100_000}, rules={"neighbour_beds_distance_m": neighbour},
                       modules={"sizes": sizes})
    objs = t.objects()
    with_cuts, idx = model.build_problem(sc, RULES, *objs, cuts={"mir", "hull"})
    without, idx0 = model.build_problem(sc, RULES, *objs, cuts=False)
    assert "beds_mir" not in idx0.rows and "beds_hull" not in idx0.rows
    assert with_cuts.A.shape[1] == without.A.shape[1]  # rows only: no new columns
    a, b = idx0.rows["beds"]
    divisors = _cuts.mir_divisors([*sizes, 30 if n_mod else 0])
    has_cols = np.diff(sparse.csr_array(without.A[a:b]).indptr) > 0
    rhs = without.row_lb[a:b]
    if any(r > 0 and k and any(r / d % 1 for d in divisors) for r, k in zip(rhs, has_cols, strict=True)):
        assert "beds_mir" in idx.rows  # a unit short of beds by a non-multiple gets its rounding rows
    res = milp(without.c, constraints=[LinearConstraint(without.A, without.row_lb, without.row_ub)],
               integrality=without.integrality.astype(int), bounds=Bounds(without.col_lb, without.col_ub),
               options={"mip_rel_gap": 0})
    if res.status != 0:
        assert scipy_optimum(with_cuts) is None
        return
    assert is_feasible(with_cuts, np.round(res.x))  # an optimal plan is never cut off
    assert scipy_optimum(with_cuts) == pytest.approx(float(without.c @ res.x + without.offset), rel=1e-9)


def test_beds_mir_rows_lift_the_lp_of_a_short_unit() -> None:
    """Two units short of 60 and 30 beds with modules 60/100/150: the LP bound rises toward the optimum."""
    t = replace(line_instance(), elderly=np.r_[np.full(10, 200.0), np.full(10, 100.0)],
                radius=np.full(20, np.nan), beds=np.array([0, 0, 0, 0, 0, 0]))
    sc = make_scenario(modules={"sizes": [60, 100, 150]}, existing_facilities={"allow_expand": False})
    with_cuts, idx = model.build_problem(sc, RULES, *t.objects())
    without, _ = model.build_problem(sc, RULES, *t.objects(), cuts=False)
    a, b = idx.rows["beds_mir"]
    assert b > a
    best = model.plan(sc, RULES, *t.objects()).cost_total
    assert _lp_value(without) < _lp_value(with_cuts) <= best * (1 + 1e-9)
    assert model.plan(sc, RULES, *t.objects(), cuts=False).cost_total == pytest.approx(best, rel=1e-9)


def test_count_hull_rows_lift_the_lp_of_a_unit_that_coverage_spreads() -> None:
    """Coverage needs 3 sites in unit 0 (cells 800 m apart, radius 300 m) which owes 230 beds:
    a plan holds >= 260 beds on 3 sites or >= 240 on 4, the LP with MIR rows less; the hull rows
    (``beds_hull``) lift it, and all three variants reach the same optimum."""
    xs = np.array([0.0, 800.0, 1600.0])
    t = Tiny(cell_xy=np.c_[xs, np.zeros(3)], elderly=np.full(3, 7_650.0 / 3), radius=np.full(3, 300.0),
             cell_unit=np.zeros(3, dtype=int), site_xy=np.c_[np.r_[xs, xs + 50.0], np.zeros(6)],
             is_exist=np.zeros(6, dtype=bool), beds=np.zeros(6, dtype=int), site_unit=np.zeros(6, dtype=int),
             unit_boxes=((-100, -100, 1800, 100),), unit_sub=("S0",))
    sc = make_scenario(modules={"sizes": [60, 100, 150]}, existing_facilities={"allow_expand": False})
    objs = t.objects()
    both, idx = model.build_problem(sc, RULES, *objs, cuts={"mir", "hull"})
    mir_only, idx_mir = model.build_problem(sc, RULES, *objs)  # the default: MIR rows only
    assert "beds_hull" in idx.rows and "beds_hull" not in idx_mir.rows and "beds_mir" in idx_mir.rows
    a, b = idx.rows["beds"]
    assert both.row_lb[a:b].tolist() == [230.0]
    best = model.plan(sc, RULES, *objs, cuts={"mir", "hull"})
    assert best.solver.status == "optimal" and len(best.new_sites) >= 3 and best.new_sites["beds"].sum() >= 230
    assert _lp_value(mir_only) < _lp_value(both) <= best.cost_total * (1 + 1e-9)
    for cuts in (False, True, {"hull"}):
        assert model.plan(sc, RULES, *objs, cuts=cuts).cost_total == pytest.approx(best.cost_total, rel=1e-9)
    with pytest.raises(ValueError, match="unknown cut families"):
        model.build_problem(sc, RULES, *objs, cuts={"gomory"})


def test_plan_without_reductions_solves_every_row_to_the_same_plan() -> None:
    """``plan(reduce=False)`` (the benchmark's ablation) really reaches the solver unreduced."""
    t = line_instance()
    sc = make_scenario()
    full, red = model.plan(sc, RULES, *t.objects(), reduce=False), model.plan(sc, RULES, *t.objects())
    assert full.solver.status == red.solver.status == "optimal"
    assert full.cost_total == pytest.approx(red.cost_total, rel=1e-9)
    assert full.meta["reductions"]["cover_rows_after"] == 14 > red.meta["reductions"]["cover_rows_after"] == 3


# ----------------------------------------------------------------------------- hand-made cases


def line_instance(**kw) -> Tiny:
    """Cells on a line, one unit per half; candidates every 400 m; one existing site at x=0."""
    xs = np.arange(0, 2000, 100.0)
    base = {
        "cell_xy": np.c_[xs, np.zeros_like(xs)], "elderly": np.full(len(xs), 200.0),
        "radius": np.full(len(xs), 500.0), "cell_unit": (xs >= 1000).astype(int),
        "site_xy": np.array([[0, 0], [400, 0], [800, 0], [1200, 0], [1600, 0], [1900, 0]], float),
        "is_exist": np.array([True, False, False, False, False, False]),
        "beds": np.array([60, 0, 0, 0, 0, 0]), "site_unit": np.array([0, 0, 0, 1, 1, 1]),
        "unit_boxes": ((-50, -50, 950, 50), (950, -50, 2050, 50)), "unit_sub": ("S0", "S1"),
    }
    base.update(kw)
    return Tiny(**base)


def test_uncoverable_cells_are_excluded_and_reported() -> None:
    t = line_instance()
    t = replace(t, cell_xy=np.r_[t.cell_xy, [[5000.0, 0.0]]], elderly=np.r_[t.elderly, 50.0],
                radius=np.r_[t.radius, 500.0], cell_unit=np.r_[t.cell_unit, 1])
    p = model.plan(make_scenario(), RULES, *t.objects())
    assert p.solver.status == "optimal"
    assert p.uncoverable.tolist() == [False] * 20 + [True]
    assert not p.covered_after[-1]
    assert p.covered_after[:-1].all()


def test_bed_shortfall_is_diagnosed_with_unit_and_numbers() -> None:
    t = replace(line_instance(), elderly=np.full(20, 1000.0))  # 10,000 per unit → 300 beds each
    p = model.plan(make_scenario(existing_facilities={"max_expansion_modules": 1}), RULES, *t.objects())
    assert p.solver.status == "infeasible"
    d = p.diagnosis
    json.dumps(d)  # serialisable for the written diagnosis
    by_unit = {u["unit_id"]: u for u in d["units"]}
    assert by_unit["U0"]["beds_required"] == 300
    assert by_unit["U0"]["beds_max_achievable"] == 60 + 30 + 2 * 60  # existing + 1 module + 2 sites × 60
    assert by_unit["U0"]["shortfall"] == 300 - 210
    assert by_unit["U1"]["shortfall"] == 300 - 180
    assert any("U0" in s and "90 short" in s for s in d["summary"])


def test_budget_too_small_reports_least_budget() -> None:
    t = replace(line_instance(), elderly=np.full(20, 200.0))  # 2,000 per unit → 60 beds each
    sc = make_scenario(objective={"kind": "max_coverage", "budget": 1_000_000})
    p = model.plan(sc, RULES, *t.objects())
    assert p.solver.status == "infeasible"
    q = next(q for q in p.diagnosis["problems"] if q["rule"] == "objective.budget")
    # U1 needs 60 beds: one new 60-bed site (1e6 + 6e6) is the least; U0 is met by the existing 60 beds
    assert q["min_budget"] == pytest.approx(7_000_000)
    ok = model.plan(make_scenario(objective={"kind": "max_coverage", "budget": q["min_budget"]}), RULES,
                    *t.objects())
    assert ok.solver.status == "optimal"


def test_subdistrict_without_site_is_diagnosed() -> None:
    t = replace(line_instance(), site_unit=np.array([0, 0, 0, 0, 0, 0]))
    rules = rules_with({"id": "CX-EMBED", "kind": "one_per_subdistrict", "params": {}})
    sc = make_scenario(rules={"set": "zhejiang-2021"})
    p = model.plan(sc, rules, *replace(t, elderly=np.full(20, 10.0)).objects())
    assert p.solver.status == "infeasible"
    assert [s["subdistrict"] for s in p.diagnosis["subdistricts"]] == ["S1"]


def test_expansion_preferred_when_cheaper_and_closing_saves() -> None:
    t = replace(line_instance(), elderly=np.full(20, 300.0), radius=np.full(20, np.nan))  # 90 beds per unit
    sc = make_scenario(existing_facilities={"max_expansion_modules": 2})
    p = model.plan(sc, RULES, *t.objects())
    ex = p.existing.iloc[0]
    assert ex["action"] == "expanded" and ex["beds_added"] == 30  # 60 + 30 = 90 in U0
    # U1 needs 90 with modules of 30/60: two new sites, 30 + 60 beds
    assert p.new_sites["unit_id"].tolist() == ["U1", "U1"] and sorted(p.new_sites["beds"]) == [30, 60]
    assert p.cost_total == pytest.approx(3_200_000 + 2 * 1_000_000 + 90 * 100_000)
    assert p.units["deficit_after"].tolist() == [0, 0] and p.units["deficit_before"].tolist() == [30, 90]


def test_neighbour_beds_count_once() -> None:
    t = replace(line_instance(), elderly=np.r_[np.full(10, 200.0), np.full(10, 100.0)],
                radius=np.full(20, np.nan), beds=np.array([90, 0, 0, 0, 0, 0]))
    # U0 needs 60, U1 needs 30. Without neighbours U1 must build; with 2 km all of U0's 90 beds may count.
    base = model.plan(make_scenario(), RULES, *t.objects())
    assert len(base.new_sites) == 1
    sc = make_scenario(rules={"neighbour_beds_distance_m": 2000})
    p = model.plan(sc, RULES, *t.objects())
    assert p.solver.status == "optimal" and len(p.new_sites) == 0 and p.cost_total == 0
    assert p.units["beds_neighbour_net"].tolist() == [-30, 30]
    assert "neighbour_beds" in p.meta
    # 90 beds cannot serve 60 + 60: a bed is never counted twice → one 30-bed expansion (3.2e6)
    t2 = replace(t, elderly=np.full(20, 200.0))
    p2 = model.plan(sc, RULES, *t2.objects())
    assert p2.cost_total == pytest.approx(3_200_000)
    assert p2.units["beds_after"].tolist() == [60, 60]
    assert p2.existing["beds_after"].sum() == 120


def test_capacitated_coverage_needs_capacity_within_reach() -> None:
    # 4,000 elderly at x = 1500..1900 counted in U0 (120 beds there); each bed serves 10,000/300 elderly
    xs = np.arange(1500, 2000, 100.0)
    t = replace(line_instance(), cell_xy=np.c_[xs, np.zeros(5)], elderly=np.full(5, 800.0),
                radius=np.full(5, 500.0), cell_unit=np.zeros(5, dtype=int))
    p_free = model.plan(make_scenario(), RULES, *t.objects())
    # free: expand the existing site by 60 (5.9e6) + one 30-bed site near the cells (4e6)
    assert p_free.cost_total == pytest.approx(9_900_000)
    p_cap = model.plan(make_scenario(rules={"capacitated": True}), RULES, *t.objects())
    assert p_cap.solver.status == "optimal"
    # capacitated: 120 beds within 500 m of the cells too → two 60-bed sites there (2 × 7e6)
    assert p_cap.cost_total == pytest.approx(5_900_000 + 14_000_000)
    near = p_cap.new_sites["x"] >= 1000
    assert p_cap.new_sites.loc[near, "beds"].sum() * 10_000 / 300 >= 4000


def test_nursing_share_applies_to_the_beds_the_plan_adds() -> None:
    """ZJ-NURSE (58 %) is enforced on new beds only: existing beds' type mix is not in the data."""
    t = replace(line_instance(), radius=np.full(20, np.nan), elderly=np.full(20, 100.0))
    rules = PRESET  # ZJ-NURSE enforced: share 0.58
    assert rules.rule("ZJ-NURSE").status == "enforced"
    p = model.plan(make_scenario(), rules, *t.objects())
    assert p.solver.status == "optimal"
    nursing = p.new_sites["nursing_beds"].sum() + p.existing.get("nursing_beds_added", pd.Series([0])).sum()
    added = p.new_sites["beds"].sum() + p.existing["beds_added"].sum()
    assert nursing >= 0.58 * added
    # the share does not force building: the plan adds no more beds than without the rule
    base = model.plan(make_scenario(), RULES, *t.objects())
    assert added == base.new_sites["beds"].sum() + base.existing["beds_added"].sum()
    assert any("ZJ-NURSE" in a for a in p.meta["assumptions"])


def test_coverage_curve_is_monotone_and_exact() -> None:
    t = replace(line_instance(), elderly=np.full(20, 20.0))
    budgets = [0, 4e6, 8e6, 12e6, 20e6]  # 0: infeasible (U1 needs 12 beds: one new site, 4e6)
    sc = make_scenario(objective={"kind": "max_coverage", "budget": 20e6, "coverage_curve": budgets})
    p = model.plan(sc, RULES, *t.objects())
    curve = p.curve
    assert curve["limit"].tolist() == budgets
    assert curve["status"].tolist() == ["infeasible"] + ["optimal"] * 4
    assert (np.diff(curve["covered_elderly"].iloc[1:]) >= 0).all()
    for b, row in zip(budgets, curve.itertuples(), strict=True):
        truth = brute_force(t, make_scenario(objective={"kind": "max_coverage", "budget": b}))
        if truth is None:
            assert np.isnan(row.covered_elderly)
            continue
        assert row.covered_elderly == truth[0]
        assert row.cost <= b + 1e-6
    assert curve["covered_share"].iloc[-1] == 1.0


def test_tie_break_is_deterministic_and_prefers_fewer_sites() -> None:
    # symmetric line: many equal-cost plans; zero bed cost makes size choices tie too
    t = replace(line_instance(), beds=np.array([0, 0, 0, 0, 0, 0]), elderly=np.full(20, 5.0))
    sc = make_scenario(costs={"bed": 0, "site": 1_000_000})
    runs = [model.plan(sc, RULES, *t.objects()) for _ in range(3)]
    ids = [tuple(r.new_sites["site_id"]) for r in runs]
    assert len(set(ids)) == 1
    assert [s for s in runs[0].solver.options["stages"]][1]["stage"] == "fewest_sites"


def test_build_problem_index_and_sizes() -> None:
    t = line_instance()
    sc = make_scenario(existing_facilities={"allow_close": True})
    prob, idx = model.build_problem(sc, RULES, *t.objects())
    assert prob.A.shape == (len(prob.row_lb), idx.n_cols)
    assert idx.col_y.shape == (5, 2)
    assert idx.meta["model_size"]["cols"] == idx.n_cols
    assert "ZJ-BEDS" in idx.meta["rules_enforced"] and "ZJ-R500" in idx.meta["rules_enforced"]
    assert prob.integrality[idx.col_x].all()


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_solvers_agree_with_scipy(solver: str) -> None:
    from siting import solve

    t = line_instance()
    sc = make_scenario(solver={"name": solver}, existing_facilities={"allow_close": True})
    prob, _ = model.build_problem(sc, RULES, *t.objects())
    try:
        res = solve.solve_milp(prob, model.solver_options(sc))
    except NotImplementedError:
        pytest.skip("siting.solve.solve_milp not implemented yet")
    assert res.status == "optimal"
    assert res.objective == pytest.approx(scipy_optimum(prob), rel=1e-9)


@HYP
@given(t=tiny_instances(max_cand=6))
def test_highs_and_cbc_give_the_same_plan(t: Tiny) -> None:
    """Lexicographic tie-breaks: the same sites and sizes whichever solver runs."""
    from siting import solve

    probe, _ = model.build_problem(make_scenario(), RULES, *t.objects())
    try:
        solve.solve_milp(probe, solve.SolverOptions(name="cbc"))
    except NotImplementedError:
        pytest.skip("siting.solve.solve_milp not implemented yet")
    plans = [model.plan(make_scenario(solver={"name": name}, costs={"bed": 0}), RULES, *t.objects())
             for name in ("highs", "cbc")]
    assert plans[0].solver.status == plans[1].solver.status
    if plans[0].solver.status != "optimal":
        return
    assert plans[0].cost_total == pytest.approx(plans[1].cost_total)
    a, b = (p.new_sites[["site_id", "beds"]].to_dict("records") for p in plans)
    assert a == b
    assert plans[0].existing["action"].tolist() == plans[1].existing["action"].tolist()


def test_plan_starts_from_the_greedy_start_and_keeps_the_exact_optimum() -> None:
    """The MIP start and the compact (nursing block solved in closed form) problem keep the optimum."""
    t = line_instance()
    sc = make_scenario()
    problem, _ = model.build_problem(sc, PRESET, *t.objects())  # full problem, ZJ-NURSE rows included
    p = model.plan(sc, PRESET, *t.objects())
    assert p.solver.status == "optimal"
    assert p.cost_total == pytest.approx(scipy_optimum(problem), rel=1e-9)
    start = p.solver.options["stages"][0]["warm_start"]
    assert start is not None and start["objective"] >= p.cost_total - 1e-3
    added = p.new_sites["beds"].sum() + p.existing["beds_added"].sum()
    assert p.new_sites["nursing_beds"].sum() + p.existing["nursing_beds_added"].sum() >= 0.58 * added
