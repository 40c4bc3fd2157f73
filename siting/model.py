"""The planning model: sparse MILP for coverage (ZJ-R500/ZJ-R1000), beds per unit (ZJ-BEDS),
existing facilities (keep/expand/close), modular sizes, budgets — and its diagnosis.

Formulation (every block is built with vectorised numpy/scipy; no loop over cells or pairs)
-------------------------------------------------------------------------------------------
Columns
    x_j    binary, candidate j opens                          (cost: site cost, ``cost_open`` wins)
    y_jk   binary, candidate j opens with module size k       (cost: bed cost × size + module cost)
    o_e    binary, existing e stays open (fixed 1 unless ``allow_close``; cost: closing, via offset)
    m_e    integer 0..max_expansion_modules, expansion modules at e
    w_e    binary, e is expanded at all (fixed expansion cost)
    cov_r  continuous [0,1], coverage row r is covered (max_coverage only)
    g_su   integer >= 0, beds of site s counted for neighbouring unit u (neighbour_beds_distance_m)
    a_rs   continuous >= 0, elderly of row r served by site s (capacitated only)
    n_*, d_*  integer nursing / dementia beds per new site and per expansion (when enforced)
    s_u    continuous >= 0, bed deficit of unit u (max_coverage with ``beds_rule: objective``)
Rows
    size:      sum_k y_jk = x_j;  expansion: m_e <= M w_e, w_e <= o_e
    cover:     sum_{s in reach(r)} open_s >= 1  (ZJ-R500/ZJ-R1000; or >= cov_r for max_coverage)
    beds:      beds located in unit u (+ in-transfers − out-transfers) >= required_u (ZJ-BEDS)
    beds_mir:  rows implied by each beds row (mixed-integer rounding, :mod:`siting._cuts`; no new rule:
               the same integer plans, a tighter LP; left out with ``cuts=False`` or a deficit column)
    beds_hull: per unit, the LP hull of (new sites, their beds) (:func:`siting._cuts.count_hull_rows`;
               implied by each beds row like beds_mir; only with ``cuts={"mir", "hull"}``)
    transfer:  sum_u g_su <= beds_s;  capacity: sum_r a_rs <= beds_s × 10,000 / beds_per_10k
    subdistrict, nursing, dementia, budget, n_sites rows when those apply.

Uncoverable cells (owed a radius, no site at all in reach) get no row; they are reported.

Tie-breaks (why a second, third and fourth solve)
-------------------------------------------------
The primary optimum is rarely unique, so the answer would depend on solver luck. ``plan`` solves
lexicographically: the primary objective, then — with the primary value fixed within
``LEX_REL_TOL`` — the fewest new sites, then — with that count fixed — the smallest
population-weighted distance score (per site: mean distance of the elderly in its reach,
plus a small share for the beds placed there so equal-count plans with swapped sizes differ),
then the site order (integer weights by site position: what is still tied — identical sites, or
score differences below the solvers' ~1e-7 tolerances — goes the same way with HiGHS and CBC).
Each stage is an exact MILP; no weight mixes two objectives of different units. A tie-break
stage is capped at ``max(TIE_BREAK_MIN_S, TIE_BREAK_FACTOR × primary seconds)``; if it stops
early its incumbent still keeps the primary optimum, and ``solver.options["tie_break_complete"]``
says the tie-break (and so cross-solver determinism) was not proven.

Solving at city scale (``plan``)
--------------------------------
``plan`` solves a compact copy: the nursing-share block (ZJ-NURSE, share <= 1) can never bind
and is filled in closed form afterwards (:func:`compact_problem`). A feasible MIP start comes
from :mod:`siting._warmstart` (greedy cover guided by the LP relaxation + exact per-unit bed
repair), so a run cut short by its time limit returns that plan (or HiGHS's better one) with an
honest gap, never ``no_solution``; the start's time counts against the limit. With a time limit
and >= 2 threads, a second process improves that start meanwhile by re-solving windows of the
model exactly (:mod:`siting._side_search`, :mod:`siting._lns`) while HiGHS, on the other thread,
raises the bound; when HiGHS stops at its limit the cheaper of the two plans is returned.
A max-coverage model (``kind: max_coverage``) gets its start from
:func:`siting._warmstart.coverage_start` (greedy max coverage within the budget or site count,
the window search, then a MILP restricted to the chosen sites), and — under a time limit — an
upper bound of its own: the LP-dual bound (:mod:`siting._mclp_bound`) of the model with every
rule but coverage and the limits dropped; the reported gap uses the tighter of it and HiGHS's.

Tighter LP (``cuts=True``): each ZJ-BEDS row gets its mixed-integer rounding rows (``beds_mir``,
:mod:`siting._cuts`). They hold for every plan that meets the row, so the optimum is unchanged, but the LP
no longer buys a fraction of a module: at 200k cells × 20k sites the 60 s gap fell from 1.43 % to
0.34 % and 50k cells × 5k sites is proven optimal within the minute (bench/RESULTS.md, "Fifth session").
On request (``cuts={"mir", "hull"}``) each unit also gets its count hull rows (``beds_hull``): the
least beds n new sites can hold is not convex in n (230 beds: 2 sites hold 250, 3 hold 260, 4 hold
240), and the rows give the LP the convex envelope instead of a mix of counts and sizes no plan has.
They raise the root LP at 50k from 2.0112e10 to 2.0202e10 CNY (optimum 2.0285e10), yet HiGHS solved
slower with them (10k: 29.9 s vs 14.8 s over seeds 0–2; 50k: gap 0.091 % vs 0.007 % at 60 s; 200k:
0.272 % vs 0.283 %), so they are not on by default (bench/RESULTS.md, "Sixth session").

Reductions (coverage rows, ``reduce=True``): rows already met by an existing site that cannot
close are dropped; identical rows are merged (their elderly summed); in a hard covering, a
cell reached by exactly one site forces that site open, rows holding a forced site are
dropped, and rows that strictly contain another row are dropped (:mod:`siting._reduce`, in
bounded blocks). ``ModelIndex.meta["reductions"]`` counts each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse

from . import _cuts, _reduce
from . import solve as _solve_mod
from . import units as units_mod
from .solve import MilpProblem, SolveResult, SolverOptions

LEX_REL_TOL = 1e-7  # a later stage may lose at most this share of the earlier objective
LEX_ABS_TOL = 1e-6
HASH_SEED = 20210402
TIE_BREAK_MIN_S = 10.0  # each tie-break stage may take this long, or TIE_BREAK_FACTOR × the primary solve
TIE_BREAK_FACTOR = 1.0
LP_GUIDE_MIN_CANDIDATES = 2_000  # below this HiGHS finds good plans unaided; the LP guide is not worth it
LP_GUIDE_SHARE = 0.2  # the guiding LP may take at most this share of the time limit
COVERAGE_START_SHARE = 0.6  # max coverage: the start (greedy, windows, completion MILP): share of the limit
COVERAGE_START_CAP_S = 30.0  # ... or this long without a limit
SIDE_SEARCH_MIN_CANDIDATES = 2_000  # below this HiGHS alone proves optimality; no second process
SIDE_SEARCH_MIN_S = 10.0  # a shorter limit leaves the side search no time after its start-up
SIDE_SEARCH_MARGIN_S = 1.0  # the side search is due this long before the primary stage's limit

CUT_FAMILIES = frozenset({"mir", "hull"})  # rows implied by ZJ-BEDS (siting._cuts): MIR, count hull
DEFAULT_CUTS = frozenset({"mir"})  # cuts=True; the hull rows lift the LP but slowed the solve (bench/RESULTS.md)
_Stage = tuple[str, np.ndarray, Literal["min", "max"]]  # (name, objective vector, sense) of a lexicographic stage


@dataclass(frozen=True)
class SolverInfo:
    name: str
    status: str  # optimal | time_limit | infeasible | no_solution
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """The chosen plan and everything the report needs to explain it.

    new_sites: site (int column of the reach matrix), site_id, beds, cost, unit_id,
        nursing_beds, dementia_beds (when those rules are enforced).
    existing: site, site_id, name, action ("kept" | "expanded" | "closed"), beds_before,
        beds_added, beds_after, beds_assumed, cost.
    open_before / open_after: bool per site (existing open before; all open after).
    covered_before / covered_after: bool per demand cell (a cell with no radius is False).
    uncoverable: bool per demand cell — owed a radius, but no site at all within it.
    units: unit_id, name, elderly, beds_required, beds_existing, beds_new, deficit_before,
        deficit_after (>= 0 beds short).
    cost_total: CNY; solver: SolverInfo; diagnosis: dict when infeasible (see model docs);
    curve: coverage curve rows (limit, covered_elderly, beds, cost, status) when asked for.
    """

    objective_kind: str
    new_sites: pd.DataFrame
    existing: pd.DataFrame
    open_before: np.ndarray
    open_after: np.ndarray
    covered_before: np.ndarray
    covered_after: np.ndarray
    uncoverable: np.ndarray
    units: pd.DataFrame
    cost_total: float
    solver: SolverInfo
    diagnosis: dict[str, Any] | None = None
    curve: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- index maps


@dataclass(frozen=True)
class ModelIndex:
    """Where everything lives in a built :class:`MilpProblem` (tests and reports read it).

    Column arrays hold column numbers (``-1`` where a variable does not exist); ``cand`` and
    ``exist`` hold site numbers (columns of the reach matrix). Objective vectors have one entry
    per column: ``cost`` (CNY, plus ``cost_offset``), ``count`` (new sites), ``covered``
    (elderly, plus ``covered_offset``), ``score`` (tie-break), ``deficit`` (beds short).
    """

    n_cols: int
    sizes: np.ndarray
    cand: np.ndarray
    exist: np.ndarray
    col_x: np.ndarray
    col_y: np.ndarray  # (n_cand, n_sizes)
    col_o: np.ndarray  # -1: fixed open
    col_m: np.ndarray
    col_w: np.ndarray
    col_nurse: np.ndarray  # per candidate, then per existing (expansion)
    col_dementia: np.ndarray
    col_cov: np.ndarray
    col_deficit: np.ndarray
    col_g: np.ndarray  # neighbour transfers, one per (g_site, g_unit) pair
    g_site: np.ndarray
    g_unit: np.ndarray
    cost: np.ndarray
    cost_offset: float
    count: np.ndarray
    covered: np.ndarray
    covered_offset: float
    score: np.ndarray
    deficit: np.ndarray
    need: np.ndarray  # bool per cell: owed a radius and some site within it
    uncoverable: np.ndarray
    unit_ids: np.ndarray
    beds_required: np.ndarray
    subdistricts: np.ndarray
    fixed_beds: np.ndarray  # per site, beds always there (existing fixed open)
    rows: dict[str, tuple[int, int]]
    meta: dict[str, Any]
    order: np.ndarray = field(default_factory=lambda: np.zeros(0))  # last tie-break: site index (integers)


class _Cols:
    """Column collector: each family is appended as one vectorised block."""

    def __init__(self) -> None:
        self.n = 0
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, n: int, *, cost: Any = 0.0, lb: Any = 0.0, ub: Any = 1.0, integer: bool = True) -> np.ndarray:
        idx = np.arange(self.n, self.n + n, dtype=np.int64)
        self.parts.append(tuple(np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()
                                for v in (cost, lb, ub, np.full(n, float(integer)))))
        self.n += n
        return idx

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.parts:
            z = np.zeros(0)
            return z, z, z, z.astype(bool)
        c, lb, ub, integ = (np.concatenate([p[i] for p in self.parts]) for i in range(4))
        return c, lb, ub, integ.astype(bool)


class _Rows:
    """Row collector in COO form; ``add`` takes local row numbers of one block."""

    def __init__(self) -> None:
        self.n = 0
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.blocks: dict[str, tuple[int, int]] = {}

    def add(self, name: str, n: int, rows: Any, cols: Any, vals: Any, lb: Any, ub: Any) -> None:
        if n == 0:
            return
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        vals = np.broadcast_to(np.asarray(vals, dtype=float), rows.shape)
        keep = cols >= 0
        self.r.append(rows[keep] + self.n)
        self.c.append(cols[keep])
        self.v.append(vals[keep])
        self.lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (n,)).copy())
        self.ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (n,)).copy())
        start = self.blocks.get(name, (self.n, self.n))[0]
        self.blocks[name] = (start, self.n + n)
        self.n += n

    def matrix(self, n_cols: int) -> tuple[sparse.csr_array, np.ndarray, np.ndarray]:
        if self.n == 0:
            return sparse.csr_array((0, n_cols)), np.zeros(0), np.zeros(0)
        coo = sparse.coo_array((np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))),
                               shape=(self.n, n_cols))
        a = coo.tocsr()
        a.sum_duplicates()
        return a, np.concatenate(self.lb), np.concatenate(self.ub)


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _Inputs:
    """Plain arrays pulled from the contracts once (so rule functions stay short)."""

    elderly: np.ndarray
    has_radius: np.ndarray
    pattern: sparse.csr_array  # bool cells × sites
    dist: sparse.csr_array
    is_exist: np.ndarray
    beds: np.ndarray
    site_unit: np.ndarray  # index into unit_ids, -1 outside
    site_sub: np.ndarray  # subdistrict name per site
    open_cost: np.ndarray
    near_hospital: np.ndarray
    unit_ids: np.ndarray
    unit_elderly: np.ndarray


def _inputs(demand: Any, sites: Any, reach: Any) -> _Inputs:
    cells, table, units = demand.cells, sites.table, demand.units
    radius = cells["radius_m"].to_numpy(dtype=float)
    dist = sparse.csr_array(reach.dist)
    dist.sort_indices()
    pattern = sparse.csr_array((np.ones(dist.nnz, dtype=bool), dist.indices, dist.indptr), shape=dist.shape)
    unit_ids = units["unit_id"].astype(str).to_numpy()
    pos = {u: i for i, u in enumerate(unit_ids)}
    site_unit = np.array([pos.get(str(u), -1) for u in table["unit_id"].fillna("")], dtype=np.int64)
    cost_open = (table["cost_open"].to_numpy(dtype=float) if "cost_open" in table
                 else np.full(len(table), np.nan))
    hosp = (table["near_hospital"].fillna(False).to_numpy(dtype=bool) if "near_hospital" in table
            else np.zeros(len(table), dtype=bool))
    sub = (table["subdistrict"].fillna("").astype(str).to_numpy() if "subdistrict" in table
           else np.full(len(table), "", dtype=object))
    return _Inputs(
        elderly=cells["elderly"].to_numpy(dtype=float),
        has_radius=np.isfinite(radius) & (radius > 0),
        pattern=pattern, dist=dist,
        is_exist=(table["kind"] == "existing").to_numpy(),
        beds=table["beds"].fillna(0).to_numpy(dtype=float),
        site_unit=site_unit, site_sub=sub, open_cost=cost_open, near_hospital=hosp,
        unit_ids=unit_ids, unit_elderly=units["elderly"].to_numpy(dtype=float),
    )


def beds_ratio(rules: Any) -> float | None:
    """beds_per_10k of the enforced ZJ-BEDS rule (``None`` when no bed rule is enforced)."""
    enforced = rules.by_kind("beds_per_unit", enforced_only=True)
    if not enforced:
        return None
    return float(enforced[0].params.get("beds_per_10k", 300))


def beds_required(unit_elderly: np.ndarray, ratio: float | None) -> np.ndarray:
    """ceil(ratio × elderly / 10,000) per unit (ZJ-BEDS); zeros when no rule."""
    if ratio is None:
        return np.zeros(len(unit_elderly), dtype=np.int64)
    return units_mod.beds_required(unit_elderly, ratio)  # one ZJ-BEDS rounding for demand and model


# ----------------------------------------------------------------------------- coverage reduction


def merge_identical_rows(m: sparse.csr_array) -> tuple[sparse.csr_array, np.ndarray]:
    """Merge rows with the same column set (exact, :mod:`siting._reduce`); returns
    (unique rows in first-appearance order, row → unique row)."""
    if m.shape[0] == 0:
        return m, np.zeros(0, dtype=np.int64)
    gid = _reduce.identical_row_groups(_reduce.binary_csr(m))
    first = np.full(int(gid.max()) + 1, m.shape[0], dtype=np.int64)
    np.minimum.at(first, gid, np.arange(m.shape[0]))
    order = np.argsort(first, kind="stable")  # keep first-appearance order (determinism)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return m[first[order]], rank[gid]


def dominated_rows(m: sparse.csr_array) -> np.ndarray:
    """Rows whose column set strictly contains another row's (redundant in a covering).

    Rows must be distinct (merge first); computed in bounded blocks by :mod:`siting._reduce`.
    """
    return _reduce.dominated_rows(_reduce.binary_csr(m))


@dataclass(frozen=True)
class _Cover:
    """Coverage rows after reduction: matrix over sites, weights, forced sites, stats."""

    matrix: sparse.csr_array  # rows × sites (bool)
    weight: np.ndarray  # elderly per row
    cell_row: np.ndarray  # per cell: its row, -1 none
    forced: np.ndarray  # site numbers that must open
    offset: float  # elderly always covered (fixed-open existing)
    stats: dict[str, int]


def _cover_rows(inp: _Inputs, fixed_open: np.ndarray, *, hard: bool, capacitated: bool,
                reduce: bool) -> _Cover:
    """Coverage rows for ZJ-R500/ZJ-R1000 cells, reduced when ``reduce``."""
    n_in_reach = np.diff(inp.pattern.indptr)
    need = inp.has_radius & (n_in_reach > 0)
    pre = (inp.pattern @ fixed_open.astype(np.int32)) > 0
    rows = need if capacitated else need & ~pre
    offset = 0.0 if capacitated else float(inp.elderly[need & pre].sum())
    cells = np.flatnonzero(rows)
    m = inp.pattern[cells]  # without capacities, fixed-open sites never appear in these rows
    stats = {"cells_needing_cover": int(need.sum()), "cover_rows_before": len(cells)}
    cell_row = np.full(len(inp.elderly), -1, dtype=np.int64)
    weight = inp.elderly[cells]
    forced = np.zeros(0, dtype=np.int64)
    if reduce and len(cells):
        m, inv = merge_identical_rows(m)
        weight = np.bincount(inv, weights=weight, minlength=m.shape[0])
        cell_row[cells] = inv
        if hard:
            m, weight, cell_row, forced = _force_and_dominate(m, weight, cell_row, inp, capacitated, stats)
    else:
        cell_row[cells] = np.arange(len(cells))
    stats["cover_rows_after"] = m.shape[0]
    stats["forced_sites"] = len(forced)
    return _Cover(m, weight, cell_row, forced, offset, stats)


def _force_and_dominate(m: sparse.csr_array, weight: np.ndarray, cell_row: np.ndarray, inp: _Inputs,
                        capacitated: bool, stats: dict[str, int]) -> tuple[Any, Any, Any, Any]:
    """Hard covering only: open sites that alone reach a cell; drop satisfied and dominated rows."""
    nnz = np.diff(m.indptr)
    forced = np.unique(m.indices[m.indptr[:-1][nnz == 1]])
    keep = np.ones(m.shape[0], dtype=bool)
    if not capacitated:
        if len(forced):
            is_forced = np.zeros(m.shape[1], dtype=np.int32)
            is_forced[forced] = 1
            keep &= (m @ is_forced) == 0
        dom = dominated_rows(m)
        stats["dominated_rows"] = int(dom.sum())
        keep &= ~dom
    new_pos = np.cumsum(keep) - 1
    mapped = np.where(cell_row >= 0, cell_row, 0)
    cell_row = np.where((cell_row >= 0) & keep[mapped], new_pos[mapped], -1)
    return m[np.flatnonzero(keep)], weight[keep], cell_row, forced


# ----------------------------------------------------------------------------- builder


@dataclass
class _Build:
    """Mutable state while one problem is built (columns, rows, objective vectors)."""

    cols: _Cols
    rows: _Rows
    inp: _Inputs
    sizes: np.ndarray
    cand: np.ndarray
    exist: np.ndarray
    col_x: np.ndarray
    col_y: np.ndarray
    col_o: np.ndarray
    col_m: np.ndarray
    col_w: np.ndarray
    exp_beds: int
    fixed_beds: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)

    def site_beds_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(site, column, beds) triples: the variable part of each site's beds."""
        k = len(self.sizes)
        s = [np.repeat(self.cand, k)]
        c = [self.col_y.ravel()]
        v = [np.tile(self.sizes.astype(float), len(self.cand))]
        var_o = self.col_o >= 0
        s.append(self.exist[var_o])
        c.append(self.col_o[var_o])
        v.append(self.inp.beds[self.exist[var_o]])
        has_m = self.col_m >= 0
        s.append(self.exist[has_m])
        c.append(self.col_m[has_m])
        v.append(np.full(int(has_m.sum()), float(self.exp_beds)))
        return np.concatenate(s), np.concatenate(c), np.concatenate(v)

    def open_col(self) -> np.ndarray:
        """Per site: the column saying it is open (-1: existing fixed open)."""
        out = np.full(len(self.inp.beds), -1, dtype=np.int64)
        out[self.cand] = self.col_x
        out[self.exist] = self.col_o
        return out


def _site_columns(b_cols: _Cols, inp: _Inputs, scenario: Any, rules: Any) -> dict[str, Any]:
    """x, y, o, m, w columns with their costs (CNY)."""
    costs, ex, sizes = scenario.costs, scenario.existing_facilities, np.array(scenario.modules.sizes)
    cand, exist = np.flatnonzero(~inp.is_exist), np.flatnonzero(inp.is_exist)
    site_cost = np.where(np.isfinite(inp.open_cost[cand]), inp.open_cost[cand], costs.site)
    hosp_rule = bool(rules.by_kind("hospital_preference", enforced_only=True))
    if hosp_rule and costs.hospital_bonus > 0:
        site_cost = np.maximum(site_cost - costs.hospital_bonus * inp.near_hospital[cand], 0.0)
    col_x = b_cols.add(len(cand), cost=site_cost)
    y_cost = np.tile(costs.bed * sizes + costs.module, len(cand))
    col_y = b_cols.add(len(cand) * len(sizes), cost=y_cost).reshape(len(cand), len(sizes))
    col_o = np.full(len(exist), -1, dtype=np.int64)
    if ex.allow_close and len(exist):
        col_o = b_cols.add(len(exist), cost=-costs.close)
    n_mod = ex.max_expansion_modules if ex.allow_expand else 0
    col_m = col_w = np.full(len(exist), -1, dtype=np.int64)
    if n_mod > 0 and len(exist):
        col_m = b_cols.add(len(exist), cost=costs.expansion_bed * scenario.modules.expansion_beds + costs.module,
                           ub=n_mod)
        col_w = b_cols.add(len(exist), cost=costs.expansion_fixed)
    offset = costs.close * int((col_o >= 0).sum())
    return {"cand": cand, "exist": exist, "sizes": sizes, "col_x": col_x, "col_y": col_y,
            "col_o": col_o, "col_m": col_m, "col_w": col_w, "cost_offset": offset, "n_mod": n_mod}


def _link_rows(b: _Build, n_mod: int) -> None:
    """sum_k y_jk = x_j; m_e <= M w_e; w_e <= o_e."""
    nc, k = b.col_y.shape
    r = np.repeat(np.arange(nc), k + 1)
    c = np.concatenate([b.col_y, b.col_x[:, None]], axis=1).ravel()
    v = np.tile(np.r_[np.ones(k), -1.0], nc)
    b.rows.add("size", nc, r, c, v, 0.0, 0.0)
    has = b.col_m >= 0
    ne = int(has.sum())
    if ne:
        e = np.arange(ne)
        b.rows.add("expansion", ne, np.r_[e, e], np.r_[b.col_m[has], b.col_w[has]],
                   np.r_[np.ones(ne), -float(n_mod) * np.ones(ne)], -np.inf, 0.0)
        var_o = b.col_o[has] >= 0
        if var_o.any():
            n = int(var_o.sum())
            b.rows.add("expand_open", n, np.r_[np.arange(n), np.arange(n)],
                       np.r_[b.col_w[has][var_o], b.col_o[has][var_o]], np.r_[np.ones(n), -np.ones(n)],
                       -np.inf, 0.0)


def _cover_block(b: _Build, cover: _Cover, kind: str) -> np.ndarray:
    """ZJ-R500/ZJ-R1000 rows: hard (min_cost) or with a cov_r indicator (max_coverage)."""
    m = cover.matrix.tocoo()
    open_col = b.open_col()
    n = cover.matrix.shape[0]
    if kind == "min_cost":
        b.rows.add("cover", n, m.row, open_col[m.col], 1.0, 1.0, np.inf)
        return np.full(0, -1, dtype=np.int64)
    col_cov = b.cols.add(n, ub=1.0, integer=False)
    b.rows.add("cover", n, np.r_[m.row, np.arange(n)], np.r_[open_col[m.col], col_cov],
               np.r_[np.ones(m.nnz), -np.ones(n)], 0.0, np.inf)
    return col_cov


def _capacity_block(b: _Build, cover: _Cover, kind: str, ratio: float) -> np.ndarray:
    """Capacitated coverage: a_rs on reach pairs; sum_r a_rs <= beds_s × 10,000 / ratio."""
    m = cover.matrix.tocoo()
    n = cover.matrix.shape[0]
    col_a = b.cols.add(m.nnz, ub=cover.weight[m.row], integer=False)
    col_cov = np.full(0, -1, dtype=np.int64)
    if kind == "min_cost":
        b.rows.add("serve", n, m.row, col_a, 1.0, cover.weight, np.inf)
    else:
        col_cov = b.cols.add(n, ub=1.0, integer=False)
        b.rows.add("serve", n, np.r_[m.row, np.arange(n)], np.r_[col_a, col_cov],
                   np.r_[np.ones(m.nnz), -cover.weight], 0.0, np.inf)
    per_bed = 10_000.0 / ratio
    sites_used = np.unique(m.col)
    pos = np.full(len(b.inp.beds), -1, dtype=np.int64)
    pos[sites_used] = np.arange(len(sites_used))
    ts, tc, tv = b.site_beds_terms()
    t = pos[ts] >= 0
    b.rows.add("capacity", len(sites_used), np.r_[pos[m.col], pos[ts[t]]], np.r_[col_a, tc[t]],
               np.r_[np.ones(m.nnz), -per_bed * tv[t]], -np.inf, per_bed * b.fixed_beds[sites_used])
    return col_cov


def _neighbour_pairs(demand: Any, sites: Any, inp: _Inputs, distance_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(site, unit) pairs: site in another unit, within ``distance_m`` of the unit's polygon."""
    import shapely

    pts = shapely.points(sites.table["x"].to_numpy(float), sites.table["y"].to_numpy(float))
    s_list, u_list = [], []
    for u, geom in enumerate(demand.units.geometry.to_numpy()):  # ~20 units, vectorised over sites
        d = shapely.distance(pts, geom)
        hit = np.flatnonzero((d <= distance_m) & (inp.site_unit >= 0) & (inp.site_unit != u))
        s_list.append(hit)
        u_list.append(np.full(len(hit), u, dtype=np.int64))
    return np.concatenate(s_list), np.concatenate(u_list)


def _beds_block(b: _Build, req: np.ndarray, pairs: tuple[np.ndarray, np.ndarray] | None,
                deficit_obj: bool, cuts: frozenset[str] = DEFAULT_CUTS) -> tuple[np.ndarray, np.ndarray]:
    """ZJ-BEDS rows: beds located in unit u (+ neighbour transfers) >= required_u; the rows they imply
    (``cuts``: MIR, count hull; :mod:`siting._cuts`)."""
    inp, nu = b.inp, len(req)
    ts, tc, tv = b.site_beds_terms()
    tu = inp.site_unit[ts]
    in_unit = tu >= 0
    const = np.bincount(inp.site_unit[inp.site_unit >= 0], weights=b.fixed_beds[inp.site_unit >= 0], minlength=nu)
    r, c, v = [tu[in_unit]], [tc[in_unit]], [tv[in_unit]]
    col_g = np.zeros(0, dtype=np.int64)
    if pairs is not None and len(pairs[0]):
        ps, pu = pairs
        col_g = b.cols.add(len(ps), ub=np.inf, integer=True)
        r += [pu, inp.site_unit[ps]]
        c += [col_g, col_g]
        v += [np.ones(len(ps)), -np.ones(len(ps))]
        _transfer_rows(b, ps, col_g, ts, tc, tv)
    col_def = np.zeros(0, dtype=np.int64)
    if deficit_obj:
        col_def = b.cols.add(nu, ub=np.inf, integer=False)
        r.append(np.arange(nu))
        c.append(col_def)
        v.append(np.ones(nu))
    rr, cc, vv = np.concatenate(r), np.concatenate(c), np.concatenate(v)
    b.rows.add("beds", nu, rr, cc, vv, req - const, np.inf)
    if not deficit_obj and cuts:  # every column of a beds row is then a non-negative integer
        rows = sparse.csr_array((vv, (rr, cc)), shape=(nu, b.cols.n))
        _, lb, ub, integer = b.cols.arrays()
        if "mir" in cuts:
            _add_rows(b, "beds_mir", *_beds_mir_rows(b, rows, req - const, integer))
        if "hull" in cuts:
            group = np.full(b.cols.n, -1, dtype=np.int64)
            group[b.col_y] = np.arange(len(b.cand))[:, None]  # a candidate's module columns: one site
            _add_rows(b, "beds_hull", *_cuts.count_hull_rows(rows, req - const, group, lb, ub, integer))
    return col_g, col_def


def _cut_families(cuts: bool | Collection[str]) -> frozenset[str]:
    """``True`` -> the default families (MIR), ``False`` -> none, else the named ones (checked)."""
    if isinstance(cuts, bool):
        return DEFAULT_CUTS if cuts else frozenset()
    out = frozenset(cuts)
    if not out <= CUT_FAMILIES:
        raise ValueError(f"unknown cut families {sorted(out - CUT_FAMILIES)}; use {sorted(CUT_FAMILIES)}")
    return out


def _beds_mir_rows(b: _Build, rows: sparse.csr_array, rhs: np.ndarray,
                   integer: np.ndarray) -> tuple[sparse.csr_array, np.ndarray]:
    """MIR rows of the ZJ-BEDS rows (:mod:`siting._cuts`): divisors from module and expansion beds;
    a row with a continuous column gets none (y, o, m, g are integer)."""
    divisors = _cuts.mir_divisors(np.r_[b.sizes.astype(float), float(b.exp_beds) if (b.col_m >= 0).any() else 0.0])
    return _cuts.mir_rows(rows, rhs, integer, divisors)


def _add_rows(b: _Build, name: str, m: sparse.csr_array, rhs: np.ndarray) -> None:
    """Block ``name`` of rows ``m z >= rhs`` (rows implied by ZJ-BEDS: MIR, count hull)."""
    coo = m.tocoo()
    b.rows.add(name, m.shape[0], coo.row, coo.col, coo.data, rhs, np.inf)


def _transfer_rows(b: _Build, ps: np.ndarray, col_g: np.ndarray, ts: np.ndarray, tc: np.ndarray,
                   tv: np.ndarray) -> None:
    """sum_u g_su <= beds_s: each bed counted once (in its own unit or one neighbour)."""
    sites_used = np.unique(ps)
    pos = np.full(len(b.inp.beds), -1, dtype=np.int64)
    pos[sites_used] = np.arange(len(sites_used))
    t = pos[ts] >= 0
    b.rows.add("transfer", len(sites_used), np.r_[pos[ps], pos[ts[t]]], np.r_[col_g, tc[t]],
               np.r_[np.ones(len(ps)), -tv[t]], -np.inf, b.fixed_beds[sites_used])


def _subdistrict_block(b: _Build, rules: Any, subdistricts: np.ndarray) -> dict[str, Any]:
    """one_per_subdistrict / min_institutions: open institutions (of at least min_beds) per area.

    one_per_subdistrict counts per subdistrict (ZJ-TOWNCTR-like rules, CX-EMBED, WH-CENTRE);
    min_institutions counts over the whole study area (DWK-DISABLED).
    """
    out: dict[str, Any] = {}
    sub_pos = {s: i for i, s in enumerate(subdistricts)}
    site_sub = np.array([sub_pos.get(s, -1) for s in b.inp.site_sub], dtype=np.int64)
    for rule in rules.by_kind("one_per_subdistrict", enforced_only=True):
        out[rule.id] = _count_rows(b, rule, f"subdistrict:{rule.id}", site_sub, len(subdistricts))
    whole = np.where(site_sub >= 0, 0, -1)
    for rule in rules.by_kind("min_institutions", enforced_only=True):
        out[rule.id] = _count_rows(b, rule, f"study_area:{rule.id}", whole, 1)
    return out


def _count_rows(b: _Build, rule: Any, name: str, group: np.ndarray, n_groups: int) -> dict[str, Any]:
    """Rows: per group, open institutions of >= min_beds (existing kept + new) >= min_institutions."""
    need = float(rule.params.get("min_institutions", 1) or 1)
    min_beds = float(rule.params.get("min_beds") or 0)
    ok_size = b.sizes >= min_beds
    cand_grp = np.repeat(group[b.cand], int(ok_size.sum()))
    cand_col = b.col_y[:, ok_size].ravel()
    ex_ok = (b.inp.beds[b.exist] >= min_beds) & (group[b.exist] >= 0)
    var = ex_ok & (b.col_o >= 0)
    const = np.bincount(group[b.exist][ex_ok & (b.col_o < 0)], minlength=n_groups)
    r = np.r_[cand_grp, group[b.exist][var]]
    c = np.r_[cand_col, b.col_o[var]]
    keep = r >= 0
    b.rows.add(name, n_groups, r[keep], c[keep], 1.0, need - const, np.inf)
    return {"min_institutions": need, "min_beds": min_beds or None}


def _share_block(b: _Build, name: str, n_rows_rhs: Any, share: float | None) -> np.ndarray:
    """Integer special beds (nursing or dementia) per new site and per expansion, <= their beds.

    With ``share``: sum special >= share × beds added (new sites + expansions).
    Otherwise: sum special >= the fixed number ``n_rows_rhs``.
    """
    nc, k = b.col_y.shape
    has_m = b.col_m >= 0
    col = b.cols.add(nc + int(has_m.sum()), ub=np.inf, integer=True)
    cn, ce = col[:nc], col[nc:]
    j = np.arange(nc)
    b.rows.add(f"{name}_site", nc, np.r_[j, np.repeat(j, k)], np.r_[cn, b.col_y.ravel()],
               np.r_[np.ones(nc), -np.tile(b.sizes.astype(float), nc)], -np.inf, 0.0)
    e = np.arange(len(ce))
    b.rows.add(f"{name}_expansion", len(ce), np.r_[e, e], np.r_[ce, b.col_m[has_m]],
               np.r_[np.ones(len(ce)), -float(b.exp_beds) * np.ones(len(ce))], -np.inf, 0.0)
    if share is None:
        b.rows.add(name, 1, np.zeros(len(col)), col, 1.0, n_rows_rhs, np.inf)
    else:
        # the share applies to the beds this plan adds (new sites + expansions): the type mix of
        # existing beds is not in the data, and assuming it is 0 would force needless building
        tc = np.r_[b.col_y.ravel(), b.col_m[has_m]]
        tv = np.r_[np.tile(b.sizes.astype(float), nc), float(b.exp_beds) * np.ones(len(ce))]
        b.rows.add(name, 1, np.zeros(len(col) + len(tc)), np.r_[col, tc], np.r_[np.ones(len(col)), -share * tv],
                   0.0, np.inf)
    return col


def _site_scores(inp: _Inputs, need: np.ndarray) -> np.ndarray:
    """Per site: elderly-weighted mean distance (m) of the cells it reaches; far when none.

    A tiny per-site increment makes equal scores distinct (deterministic ties).
    """
    w = np.where(need, inp.elderly, 0.0)
    num = inp.dist.T @ w
    den = inp.pattern.T.astype(float) @ w
    far = float(inp.dist.data.max()) * 2 if inp.dist.nnz else 1.0
    score = np.where(den > 0, num / np.where(den > 0, den, 1.0), far)
    return score + np.arange(len(score)) * 1e-3 * max(far, 1.0) / max(len(score), 1)


def build_problem(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, *, reduce: bool = True,
                  kind: str | None = None, budget: float | None = None,
                  n_sites: int | None = None, cuts: bool | Collection[str] = True,
                  ) -> tuple[MilpProblem, ModelIndex]:
    """Build the sparse MILP of a scenario (see the module docstring for the formulation).

    ``kind``/``budget``/``n_sites`` override the scenario's objective (coverage-curve points,
    diagnosis). ``reduce=False`` keeps every coverage row (tests compare both); ``cuts=False``
    leaves out the rows implied by ZJ-BEDS (``beds_mir``, ``beds_hull``; the benchmark's ``nocuts``
    ablation); ``cuts={"mir", "hull"}`` adds the count hull rows (``beds_hull``; the ``hull`` variant).
    """
    obj = scenario.objective
    kind = kind or obj.kind
    budget = obj.budget if budget is None and kind == "max_coverage" else budget
    n_sites = obj.n_sites if n_sites is None and kind == "max_coverage" else n_sites
    inp = _inputs(demand, sites, reach)
    cols, rows = _Cols(), _Rows()
    sc = _site_columns(cols, inp, scenario, rules)
    fixed_open = inp.is_exist.copy()
    fixed_open[sc["exist"][sc["col_o"] >= 0]] = False
    b = _Build(cols, rows, inp, sc["sizes"], sc["cand"], sc["exist"], sc["col_x"], sc["col_y"], sc["col_o"],
               sc["col_m"], sc["col_w"], scenario.modules.expansion_beds, np.where(fixed_open, inp.beds, 0.0))
    _link_rows(b, sc["n_mod"])
    ratio = beds_ratio(rules)
    capacitated = bool(scenario.rules.capacitated)
    cover = _cover_rows(inp, fixed_open, hard=kind == "min_cost", capacitated=capacitated, reduce=reduce)
    col_cov = (_capacity_block(b, cover, kind, ratio or 300.0) if capacitated  # ZJ-R500/ZJ-R1000
               else _cover_block(b, cover, kind))
    req = beds_required(inp.unit_elderly, ratio)
    col_def = col_g = g_site = g_unit = np.zeros(0, dtype=np.int64)
    meta: dict[str, Any] = {"rules_enforced": {}, "assumptions": [], "reductions": cover.stats}
    if ratio is not None:
        pairs = None
        dist_m = scenario.rules.neighbour_beds_distance_m
        if dist_m is not None:
            pairs = _neighbour_pairs(demand, sites, inp, float(dist_m))
            meta["neighbour_beds"] = {"distance_m": float(dist_m), "pairs": len(pairs[0]),
                                      "note": "ZJ-BEDS: beds of a site in a neighbouring unit within "
                                              f"{dist_m:g} m of a unit may count for it, each bed once"}
        deficit_obj = kind == "max_coverage" and obj.beds_rule == "objective"
        col_g, col_def = _beds_block(b, req, pairs, deficit_obj, _cut_families(cuts))
        if pairs is not None:
            g_site, g_unit = pairs
        beds_id = rules.by_kind("beds_per_unit", enforced_only=True)[0].id
        meta["rules_enforced"][beds_id] = (
            f"beds per unit >= ceil({ratio:g} × elderly / 10,000)"
            + (" (second objective: minimise total deficit)" if deficit_obj else " (constraint)"))
    for band_rule in {band.rule_id for band in rules.bands if band.radius_m or band.radius_min}:
        meta["rules_enforced"][band_rule] = ("capacitated coverage within the owed radius" if capacitated
                                             else ("hard coverage" if kind == "min_cost"
                                                   else "coverage maximised"))
    subdistricts = np.array(sorted({str(s) for s in demand.units.get("subdistrict", pd.Series(dtype=str))
                                    if str(s)}), dtype=object)
    for rid, how in _subdistrict_block(b, rules, subdistricts).items():
        meta["rules_enforced"][rid] = f"one open institution per subdistrict: {how}"
    col_nurse = col_dem = np.zeros(0, dtype=np.int64)
    for rule in rules.by_kind("nursing_share", enforced_only=True)[:1]:
        share = float(rule.params.get("share", 0.0))
        col_nurse = _share_block(b, "nursing", 0.0, share)
        meta["rules_enforced"][rule.id] = f"nursing beds >= {share:g} × beds added by the plan"
        meta["assumptions"].append(f"{rule.id} applies to the beds the plan adds: the nursing share of "
                                   "existing beds is not in the data")
    for rule in rules.by_kind("dementia_beds", enforced_only=True)[:1]:
        need_d = math.ceil(float(rule.params.get("per_10k", 0.0)) * inp.unit_elderly.sum() / 10_000.0 - 1e-9)
        col_dem = _share_block(b, "dementia", need_d, None)
        meta["rules_enforced"][rule.id] = f"dementia beds >= {need_d} (whole plan)"
        meta["assumptions"].append("existing institutions have 0 dementia-care beds (no data)")
    if rules.by_kind("hospital_preference", enforced_only=True):
        meta["rules_enforced"][rules.by_kind("hospital_preference", enforced_only=True)[0].id] = (
            f"site cost reduced by {scenario.costs.hospital_bonus:g} next to a hospital")
    meta["hard_rules"], meta["objective_rules"] = _rule_roles(meta["rules_enforced"], rules, kind, obj.beds_rule)
    c_cost, lb, ub, integ = cols.arrays()
    n = cols.n
    col_of_site = b.open_col()
    forced_cols = col_of_site[cover.forced]
    lb[forced_cols[forced_cols >= 0]] = 1.0
    count = np.zeros(n)
    count[b.col_x] = 1.0
    covered = np.zeros(n)
    if len(col_cov):
        covered[col_cov] = cover.weight
    deficit = np.zeros(n)
    deficit[col_def] = 1.0
    if budget is not None:
        rows.add("budget", 1, np.zeros(n), np.arange(n), c_cost, -np.inf, budget - sc["cost_offset"])
    if n_sites is not None:
        rows.add("n_sites", 1, np.zeros(len(b.col_x)), b.col_x, 1.0, -np.inf, float(n_sites))
    A, rlb, rub = rows.matrix(n)
    need = inp.has_radius & (np.diff(inp.pattern.indptr) > 0)
    idx = ModelIndex(
        n_cols=n, sizes=b.sizes, cand=b.cand, exist=b.exist, col_x=b.col_x, col_y=b.col_y, col_o=b.col_o,
        col_m=b.col_m, col_w=b.col_w, col_nurse=col_nurse, col_dementia=col_dem, col_cov=col_cov,
        col_deficit=col_def, col_g=col_g, g_site=g_site, g_unit=g_unit, cost=c_cost,
        cost_offset=float(sc["cost_offset"]), count=count,
        covered=covered, covered_offset=cover.offset, score=_score_vector(b, need, n), order=_order_vector(b, n),
        deficit=deficit,
        need=need, uncoverable=inp.has_radius & ~need, unit_ids=inp.unit_ids, beds_required=req,
        subdistricts=subdistricts, fixed_beds=b.fixed_beds, rows=dict(rows.blocks),
        meta={**meta, "kind": kind, "unit_elderly_total": float(inp.unit_elderly.sum()), "budget": budget,
              "n_sites": n_sites, "capacitated": capacitated,
              "expansion_beds": int(scenario.modules.expansion_beds),
              "model_size": {"rows": A.shape[0], "cols": n, "nonzeros": int(A.nnz),
                             "integer_cols": int(integ.sum())}},
    )
    problem = MilpProblem(c=c_cost, A=A, row_lb=rlb, row_ub=rub, col_lb=lb, col_ub=ub, integrality=integ,
                          sense="min", offset=float(sc["cost_offset"]))
    if kind == "max_coverage":
        problem = replace(problem, c=covered, sense="max", offset=cover.offset)
    return problem, idx


def _rule_roles(enforced: dict[str, str], rules: Any, kind: str, beds_rule: str) -> tuple[list[str], list[str]]:
    """Enforced rule ids split into rows every plan must meet and rules the objective pursues.

    A max-coverage model maximises coverage (the band rules: ZJ-R500, ZJ-R1000) and, with
    ``beds_rule: objective``, minimises the ZJ-BEDS deficit; a cost preference (ZJ-HOSP) is
    neither. The diagnosis uses this to say exactly which rules a least-cost figure covers.
    """
    soft: set[str] = set()
    if kind == "max_coverage":
        soft |= {band.rule_id for band in rules.bands if band.radius_m or band.radius_min}
        if beds_rule == "objective":
            soft |= {r.id for r in rules.by_kind("beds_per_unit", enforced_only=True)}
    cost_only = {r.id for r in rules.by_kind("hospital_preference", enforced_only=True)}
    order = {r.id: i for i, r in enumerate(rules.rules)}  # rule-set order: ZJ-BEDS, ZJ-R500, ZJ-R1000, …
    hard = sorted(set(enforced) - soft - cost_only, key=lambda i: (order.get(i, len(order)), i))
    return hard, sorted(soft & set(enforced), key=lambda i: (order.get(i, len(order)), i))


def _score_vector(b: _Build, need: np.ndarray, n: int) -> np.ndarray:
    """Tie-break objective: site distance score on x_j/w_e, plus a small share per bed placed."""
    s = _site_scores(b.inp, need)
    out = np.zeros(n)
    out[b.col_x] = s[b.cand]
    big = float(b.sizes.max())
    out[b.col_y] = 1e-3 * s[b.cand][:, None] * (b.sizes[None, :] / big)
    has = b.col_m >= 0
    out[b.col_w[has]] = s[b.exist[has]]
    out[b.col_m[has]] = 1e-3 * s[b.exist[has]] * (b.exp_beds / big)
    return out


def _order_vector(b: _Build, n: int) -> np.ndarray:
    """Last tie-break: integer weights by site position, so exact ties (e.g. two identical sites
    swapping module sizes) resolve the same way with every solver; the distance score's own
    differences there can sit below the solvers' tolerances (~1e-7)."""
    out = np.zeros(n)
    big = float(b.sizes.max())
    rank = np.arange(1, len(b.cand) + 1, dtype=float)
    out[b.col_x] = rank * big
    out[b.col_y] = rank[:, None] * b.sizes[None, :].astype(float)
    has = b.col_m >= 0
    rank_e = len(b.cand) + np.arange(1, len(b.exist) + 1, dtype=float)
    out[b.col_w[has]] = rank_e[has] * big
    out[b.col_m[has]] = rank_e[has] * float(b.exp_beds)
    return out


# ----------------------------------------------------------------------------- solving


def solver_options(scenario: Any, *, time_limit_s: float | None = None) -> SolverOptions:
    """The scenario's solver block as :class:`SolverOptions`."""
    s = scenario.solver
    return SolverOptions(name=s.name, time_limit_s=time_limit_s if time_limit_s is not None else s.time_limit_s,
                         mip_gap=s.mip_gap, threads=s.threads, seed=s.seed)


def run_solver(problem: MilpProblem, options: SolverOptions, warm_start: np.ndarray | None = None) -> SolveResult:
    """:func:`siting.solve.solve_milp` with the model's warm-start handling.

    With a start that meets every row (:func:`siting.solve.is_feasible`) the result is never
    worse than the start: a run that stops without a plan, or with a worse one, returns the start
    as a ``time_limit`` incumbent with the solver's bound and the gap recomputed (never "optimal").
    An x whose objective HiGHS misreports is handled by ``solve_milp`` (kept at its true value;
    a claimed optimum re-solved without the start in the time left).
    """
    start = warm_start if warm_start is not None and _solve_mod.is_feasible(problem, warm_start) else None
    res = _solve_mod.solve_milp(problem, options, warm_start=warm_start)
    if start is not None and res.status in ("time_limit", "no_solution"):
        value = float(problem.c @ start + problem.offset)
        worse = res.objective is None or (res.objective > value if problem.sense == "min" else res.objective < value)
        if worse:
            res = replace(res, status="time_limit", x=np.asarray(start, dtype=float), objective=value,
                          gap=_solve_mod._gap(value, res.bound), meta={**res.meta, "incumbent": "warm_start"})
    return res


def _with_row(problem: MilpProblem, coeffs: np.ndarray, lb: float, ub: float) -> MilpProblem:
    """The problem with one more (dense-ish) row ``lb <= coeffs·x <= ub``."""
    nz = np.flatnonzero(coeffs)
    row = sparse.csr_array((coeffs[nz], (np.zeros(len(nz), dtype=np.int64), nz)), shape=(1, len(coeffs)))
    return replace(problem, A=sparse.csr_array(sparse.vstack([problem.A, row], format="csr")),
                   row_lb=np.r_[problem.row_lb, lb], row_ub=np.r_[problem.row_ub, ub])


def solve_lexicographic(problem: MilpProblem, stages: list[_Stage],
                        options: SolverOptions, warm_start: np.ndarray | None = None,
                        ) -> tuple[SolveResult, np.ndarray | None, list[dict[str, Any]]]:
    """Solve stage by stage, each later stage keeping the earlier objectives (within LEX tolerances).

    Returns the first stage's result (status, objective, bound, gap of the primary objective),
    the solution of the last stage that found one, and a log of every stage. A tie-break stage
    gets at most ``max(TIE_BREAK_MIN_S, TIE_BREAK_FACTOR × first-stage seconds)``; if it stops
    early its incumbent is still used (it keeps every earlier objective), and the log says so.
    """
    log: list[dict[str, Any]] = []
    first: SolveResult | None = None
    x: np.ndarray | None = warm_start
    current = problem
    t_start = time.perf_counter()
    for i, (name, vec, sense) in enumerate(stages):
        left = None if options.time_limit_s is None else options.time_limit_s - (time.perf_counter() - t_start)
        if i > 0:
            assert first is not None  # stage 0 is never skipped and always sets it
            cap = max(TIE_BREAK_MIN_S, TIE_BREAK_FACTOR * first.seconds)
            left = cap if left is None else min(cap, left)
        if left is not None and left <= 0.5 and i > 0:
            log.append({"stage": name, "sense": sense, "status": "skipped", "objective": None, "seconds": 0.0})
            continue
        p = replace(current, c=vec, sense=sense, offset=problem.offset if i == 0 else 0.0)
        res = run_solver(p, replace(options, time_limit_s=left), warm_start=x)
        log.append({"stage": name, "sense": sense, "status": res.status, "objective": res.objective,
                    "seconds": round(res.seconds, 3)})
        if i == 0:
            first = res
        if res.x is None:
            x = None if i == 0 else x
            break
        x = res.x
        if res.status != "optimal":
            break
        value = float(vec @ res.x)
        tol = LEX_ABS_TOL + LEX_REL_TOL * abs(value)
        current = _with_row(current, vec, value - tol if sense == "max" else -np.inf,
                            value + tol if sense == "min" else np.inf)
    assert first is not None
    return first, x, log


def _stages(problem: MilpProblem, idx: ModelIndex, scenario: Any) -> list[_Stage]:
    """Primary objective, then (max_coverage with beds_rule objective) deficit, then tie-breaks."""
    stages = [(idx.meta["kind"], problem.c, problem.sense)]
    if len(idx.col_deficit):
        stages.append(("bed_deficit", idx.deficit, "min"))
    stages += [("fewest_sites", idx.count, "min"), ("distance_score", idx.score, "min")]
    if idx.order.size:
        stages.append(("site_order", idx.order, "min"))
    return stages


# ----------------------------------------------------------------------------- solving at scale


def _solve_plan(problem: MilpProblem, idx: ModelIndex, stages: list[_Stage],
                options: SolverOptions, rules: Any) -> tuple[SolveResult, np.ndarray | None, list[dict[str, Any]]]:
    """Solve the stages on the compact problem (redundant share block left out) from a greedy start."""
    from . import _warmstart

    t0 = time.perf_counter()
    limit0 = options.time_limit_s
    small, keep, fill = compact_problem(problem, idx, rules)
    view = _warmstart.coverage_view(problem, idx)  # None unless an uncapacitated max-coverage model
    if view is not None:
        cap = COVERAGE_START_CAP_S if options.time_limit_s is None else COVERAGE_START_SHARE * options.time_limit_s
        start = _warmstart.coverage_start(problem, idx, time_limit_s=cap, view=view)
    else:  # min_cost (greedy_start is None for any other model)
        start = _warmstart.greedy_start(problem, idx, _lp_guide(small, idx, fill, options))
    t_start = time.perf_counter() - t0
    if options.time_limit_s is not None:  # the limit bounds the whole solve, the start included
        if t_start >= options.time_limit_s:
            start = None  # it came too late to count as found within the limit
        options = replace(options, time_limit_s=max(options.time_limit_s - t_start, 0.0))
    small_stages = [(name, vec[keep], sense) for name, vec, sense in stages]
    own = _own_coverage_bound(problem, idx, start, options, limit0, view)
    if own is not None and options.time_limit_s is not None:
        options = replace(options, time_limit_s=max(options.time_limit_s - own[1], 0.0))
    side = _start_side_search(small, idx, options, None if start is None else start[keep])
    if side is not None:
        options = replace(options, threads=options.threads - 1)  # the other core runs the side search
    first: SolveResult | None = None
    found = None
    try:
        first, xs, log = solve_lexicographic(small, small_stages, options,
                                             warm_start=None if start is None else start[keep])
    finally:  # the side plan only matters when the primary stage was cut short by its limit
        if side is not None:
            found = side.collect() if first is not None and first.status == "time_limit" else None
            side.stop()
    assert first is not None
    if found is not None:
        first, xs, log = _take_side_result(small, first, xs, log, *found)
    if first.status == "time_limit" and xs is not None and idx.meta.get("kind") == "max_coverage":
        first, xs = _count_every_reached_row(problem, idx, small, keep, fill, first, xs, log)
    if own is not None and first.status == "time_limit" and first.objective is not None and (
            first.bound is None or own[0] < first.bound):
        first = replace(first, bound=own[0], gap=_solve_mod._gap(first.objective, own[0]),
                        meta={**first.meta, "bound_from": "lp_duals"})
        if log:
            log[0]["own_bound"] = own[0]
    if log:
        log[0]["warm_start"] = None if start is None else {
            "objective": float(problem.c @ start + problem.offset), "seconds": round(t_start, 3)}
    return first, None if xs is None else fill(xs), log


def _count_every_reached_row(problem: MilpProblem, idx: ModelIndex, small: MilpProblem, keep: np.ndarray,
                             fill: Any, first: SolveResult, xs: np.ndarray,
                             log: list[dict[str, Any]]) -> tuple[SolveResult, np.ndarray]:
    """A time-limited max-coverage incumbent may leave a reached row's indicator below 1 (feasible,
    not optimal); raise each to what its open sites allow, so the objective is the plan's coverage."""
    a, b = idx.rows.get("cover", (0, 0))
    if idx.meta.get("capacitated") or not len(idx.col_cov) or b <= a:
        return first, xs
    x = fill(xs)
    reached = np.asarray(problem.A[a:b] @ x).ravel() + x[idx.col_cov]  # sum of the row's open sites
    x[idx.col_cov] = np.minimum(1.0, np.maximum(x[idx.col_cov], np.round(reached, 9)))
    lifted = x[keep]
    value = float(small.c @ lifted + small.offset)
    if first.objective is None or value <= first.objective + 1e-9 or not _solve_mod.is_feasible(small, lifted):
        return first, xs
    if log:
        log[0]["objective"] = value
    return replace(first, x=lifted, objective=value, gap=_solve_mod._gap(value, first.bound)), lifted


def _own_coverage_bound(problem: MilpProblem, idx: ModelIndex, start: np.ndarray | None,
                        options: SolverOptions, limit: float | None,
                        view: Any = None) -> tuple[float, float] | None:
    """(upper bound on covered elderly, seconds) for a time-limited max-coverage model; else None.

    Every rule but coverage and the site limits is dropped (a relaxation: the model's
    :func:`siting._warmstart.coverage_view`, each candidate at least its site plus its cheapest
    module), and :func:`siting._mclp_bound.coverage_bound` bounds that MCLP, within
    ``siting._mclp_bound.TIME_SHARE`` of the whole time ``limit`` (its LP needs 8–9 s at
    200k × 20k). Not valid when a column may earn money (closing an institution, a negative cost)
    or when coverage is capacitated: then None. At 200k × 20k HiGHS's own bound stays trivial.
    """
    from . import _warmstart
    from ._mclp_bound import TIME_SHARE, coverage_bound

    if limit is None or start is None or np.any(idx.cost < 0) or np.any(idx.col_o >= 0):
        return None
    view = view if view is not None else _warmstart.coverage_view(problem, idx)
    if view is None:
        return None
    t = time.perf_counter()
    res = coverage_bound(view.A, view.w, start[idx.col_x[view.cols]] > 0.5, n_sites=view.n_left,
                         budget=None if view.b_left is None else max(view.b_left, 0.0), cost=view.cost,
                         time_limit_s=min(TIME_SHARE * limit, options.time_limit_s or 0.0),
                         threads=options.threads)
    return problem.offset + view.met_weight + res.bound, time.perf_counter() - t


def _start_side_search(small: MilpProblem, idx: ModelIndex, options: SolverOptions, start: np.ndarray | None):
    """Start the window search (:mod:`siting._side_search`) beside HiGHS when it can pay; else None.

    At scale only (>= SIDE_SEARCH_MIN_CANDIDATES candidates), hard covering (min_cost), every
    column integer, HiGHS with >= 2 threads and a time limit (the worker needs a deadline).
    """
    from . import _side_search

    if (start is None or options.name != "highs" or options.time_limit_s is None or options.threads < 2
            or idx.meta.get("kind") != "min_cost" or len(idx.col_x) < SIDE_SEARCH_MIN_CANDIDATES
            or not np.all(small.integrality) or options.time_limit_s < SIDE_SEARCH_MIN_S):
        return None
    return _side_search.SideSearch.start(small, start, time_limit_s=options.time_limit_s - SIDE_SEARCH_MARGIN_S)


def _take_side_result(small: MilpProblem, first: SolveResult, xs: np.ndarray | None, log: list[dict[str, Any]],
                      x: np.ndarray, stats: dict) -> tuple[SolveResult, np.ndarray | None, list[dict[str, Any]]]:
    """Use the side search's plan when it is feasible and cheaper than the time-limited incumbent."""
    value = float(small.c @ x + small.offset)
    better = first.objective is None or value < first.objective - 1e-9 * max(1.0, abs(value))
    used = better and _solve_mod.is_feasible(small, x)
    if log:
        log[0]["side_search"] = {**stats, "objective": value, "used": bool(used)}
    if not used:
        return first, xs, log
    first = replace(first, x=x, objective=value, gap=_solve_mod._gap(value, first.bound),
                    meta={**first.meta, "incumbent": "side_search"})
    if log:
        log[0]["objective"] = value
    return first, x, log


def _lp_guide(small: MilpProblem, idx: ModelIndex, fill: Any, options: SolverOptions) -> np.ndarray | None:
    """x_j of the LP relaxation (per candidate) to guide the greedy start; None when not worth it.

    Only for hard covering at scale (>= LP_GUIDE_MIN_CANDIDATES): there the LP-guided greedy is
    ~2 % cheaper than the plain one (200k cells × 20k sites), for about a second of HiGHS.
    """
    if idx.meta.get("kind") != "min_cost" or len(idx.col_x) < LP_GUIDE_MIN_CANDIDATES or options.name != "highs":
        return None  # (CBC through PuLP would spend longer building the LP than HiGHS solving it)
    limit = None if options.time_limit_s is None else LP_GUIDE_SHARE * options.time_limit_s
    lp = run_solver(replace(small, integrality=np.zeros_like(small.integrality)),
                    replace(options, time_limit_s=limit))
    if lp.status != "optimal" or lp.x is None:
        return None
    return fill(lp.x)[idx.col_x]


def compact_problem(problem: MilpProblem, idx: ModelIndex, rules: Any) -> tuple[MilpProblem, np.ndarray, Any]:
    """The problem without the nursing-share block when it can never bind; and the way back.

    ZJ-NURSE-like rules (``nursing_share``, share <= 1) only ask that nursing beds, each at most
    its site's beds, sum to >= share × beds added: ``n = ceil(share × beds)`` per site always
    meets them and no objective reads n. So the block (one integer column and one row per
    candidate and expansion) is solved afterwards in closed form instead of inside the MILP —
    at city scale it is a third of the rows and doubles HiGHS's presolve time.
    Returns (problem, kept-column mask, ``fill(x_small) -> x_full``).
    """
    keep = np.ones(problem.A.shape[1], dtype=bool)
    share_rules = rules.by_kind("nursing_share", enforced_only=True)[:1]
    share = float(share_rules[0].params.get("share", 0.0)) if share_rules else None
    blocks = ("nursing_site", "nursing_expansion", "nursing")
    if (share is None or not 0.0 <= share <= 1.0 or not len(idx.col_nurse)
            or any(b not in idx.rows for b in blocks[::2])):
        return problem, keep, lambda xs: xs
    keep[idx.col_nurse] = False
    drop = np.zeros(problem.A.shape[0], dtype=bool)
    for name in blocks:
        a, b = idx.rows.get(name, (0, 0))
        drop[a:b] = True
    kc, kr = np.flatnonzero(keep), np.flatnonzero(~drop)
    small = replace(problem, A=sparse.csr_array(problem.A[kr][:, kc]), row_lb=problem.row_lb[kr],
                    row_ub=problem.row_ub[kr], c=problem.c[kc], col_lb=problem.col_lb[kc],
                    col_ub=problem.col_ub[kc], integrality=problem.integrality[kc], row_names=None,
                    col_names=None)

    def fill(xs: np.ndarray) -> np.ndarray:
        x = np.zeros(problem.A.shape[1])
        x[kc] = xs
        xr = np.round(x)
        nc = len(idx.cand)
        beds = xr[idx.col_y] @ idx.sizes.astype(float) if idx.col_y.size else np.zeros(0)
        has_m = idx.col_m >= 0
        exp = xr[idx.col_m[has_m]] * float(idx.meta.get("expansion_beds", 0) or 0)
        x[idx.col_nurse[:nc]] = np.ceil(share * beds - 1e-9)  # ZJ-NURSE, per site, closed form
        x[idx.col_nurse[nc:]] = np.ceil(share * exp - 1e-9)
        return x

    return small, keep, fill


# ----------------------------------------------------------------------------- plan


def plan(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, *, reduce: bool = True,
         cuts: bool | Collection[str] = True) -> Plan:
    """Build and solve the planning model of a scenario.

    Never raises for an infeasible plan: returns a Plan with ``solver.status == "infeasible"``
    and a JSON-serialisable ``diagnosis`` (see :mod:`siting.diagnose`). ``reduce=False`` keeps
    every coverage row (see :func:`build_problem`; the benchmark's ``noreduce`` ablation);
    ``cuts=False`` leaves out the rows implied by ZJ-BEDS (``nocuts``); ``{"mir", "hull"}`` adds the
    count hull rows (``hull``).
    """
    from . import diagnose as dg

    t0 = time.perf_counter()
    problem, idx = build_problem(scenario, rules, demand, sites, reach, reduce=reduce, cuts=cuts)
    options = solver_options(scenario)
    found = dg.structural(scenario, rules, demand, sites, reach, idx)
    if found["problems"]:
        info = SolverInfo("presolve", "infeasible", None, None, None, time.perf_counter() - t0)
        return _empty_plan(scenario, idx, demand, sites, reach, info, dg.finish(found))
    first, x, log = _solve_plan(problem, idx, _stages(problem, idx, scenario), options, rules)
    complete = all(s["status"] == "optimal" for s in log)
    info = SolverInfo(first.solver, first.status, first.objective, first.bound, first.gap,
                      time.perf_counter() - t0, {"stages": log, "time_limit_s": options.time_limit_s,
                                                 "mip_gap": options.mip_gap, "tie_break_complete": complete})
    if x is None:
        diagnosis = None
        if first.status == "infeasible":
            diagnosis = dg.finish(dg.deeper(found, scenario, rules, demand, sites, reach, idx, _limit_probe))
        return _empty_plan(scenario, idx, demand, sites, reach, info, diagnosis)
    curve = _curve(scenario, rules, demand, sites, reach) if _wants_curve(scenario) else None
    return _extract(scenario, idx, demand, sites, reach, x, info, curve)


def _limit_probe(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, what: str) -> float | None:
    """Least cost (``what="cost"``) or fewest new sites (``"count"``) meeting every rule but the limit."""
    kind = scenario.objective.kind
    p, idx = build_problem(scenario, rules, demand, sites, reach, kind=kind, budget=None, n_sites=None)
    if kind == "max_coverage":
        p = replace(p, row_lb=p.row_lb, row_ub=p.row_ub)
        p = _drop_limit_rows(p, idx)
    vec = idx.cost if what == "cost" else idx.count
    res = run_solver(replace(p, c=vec, sense="min", offset=idx.cost_offset if what == "cost" else 0.0),
                     solver_options(scenario))
    return res.objective if res.status == "optimal" else None


def _drop_limit_rows(p: MilpProblem, idx: ModelIndex) -> MilpProblem:
    """Relax the budget and n_sites rows (diagnosis: what would the limits have to be?)."""
    lb, ub = p.row_lb.copy(), p.row_ub.copy()
    for name in ("budget", "n_sites"):
        if name in idx.rows:
            a, b = idx.rows[name]
            lb[a:b], ub[a:b] = -np.inf, np.inf
    return replace(p, row_lb=lb, row_ub=ub)


def _wants_curve(scenario: Any) -> bool:
    obj = scenario.objective
    return obj.kind == "max_coverage" and bool(obj.coverage_curve)


def _curve(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any) -> pd.DataFrame:
    """Coverage curve: each limit solved exactly (max coverage, then least cost at that coverage)."""
    obj = scenario.objective
    by_sites = obj.n_sites is not None and obj.budget is None
    rows = []
    options = solver_options(scenario)
    inp = _inputs(demand, sites, reach)
    for limit in obj.coverage_curve or []:
        kw = {"n_sites": int(limit)} if by_sites else {"budget": float(limit)}
        p, idx = build_problem(scenario, rules, demand, sites, reach, kind="max_coverage", **kw)
        first, x, _ = solve_lexicographic(p, [("max_coverage", p.c, "max"), ("least_cost", idx.cost, "min")],
                                          options)
        total = float(demand.cells["elderly"].to_numpy()[idx.need].sum())
        if x is None:
            rows.append({"limit": limit, "covered_elderly": np.nan, "covered_share": np.nan, "new_sites": 0,
                         "new_beds": 0, "cost": np.nan, "status": first.status})
            continue
        xr = np.round(x)
        cov = float(inp.elderly[_covered(inp.pattern, _open_after(idx, inp, xr), inp.has_radius)].sum())
        beds = float(xr[idx.col_y.ravel()] @ np.tile(idx.sizes, len(idx.cand))) if idx.col_y.size else 0.0
        rows.append({"limit": limit, "covered_elderly": cov, "covered_share": cov / total if total else 1.0,
                     "new_sites": int(np.round(x[idx.col_x]).sum()), "new_beds": int(beds),
                     "cost": float(idx.cost @ np.round(x) + idx.cost_offset), "status": first.status})
    return pd.DataFrame(rows, columns=["limit", "covered_elderly", "covered_share", "new_sites", "new_beds",
                                       "cost", "status"])


def _open_after(idx: ModelIndex, inp: _Inputs, xr: np.ndarray) -> np.ndarray:
    """Per site: open in the solution (existing kept, candidates opened)."""
    out = inp.is_exist.copy()
    var = idx.col_o >= 0
    out[idx.exist[var]] = xr[idx.col_o[var]] > 0.5
    out[idx.cand] = xr[idx.col_x] > 0.5
    return out


def _covered(reach_pattern: sparse.csr_array, open_sites: np.ndarray, has_radius: np.ndarray) -> np.ndarray:
    return has_radius & ((reach_pattern @ open_sites.astype(np.int32)) > 0)


def _extract(scenario: Any, idx: ModelIndex, demand: Any, sites: Any, reach: Any, x: np.ndarray,
             info: SolverInfo, curve: pd.DataFrame | None) -> Plan:
    """Turn a solution vector into the Plan tables."""
    x = np.where(np.isfinite(x), x, 0.0)
    xr = np.round(x)
    inp = _inputs(demand, sites, reach)
    table = sites.table
    new_sites = _new_sites_table(scenario, idx, table, xr)
    existing = _existing_table(scenario, idx, table, xr)
    open_after = _open_after(idx, inp, xr)
    units = _units_table(idx, demand, inp, existing, new_sites, xr)
    cov_after = _covered(inp.pattern, open_after, inp.has_radius)
    meta = {**idx.meta, "covered_elderly_after": float(inp.elderly[cov_after].sum()),
            "elderly_needing_cover": float(inp.elderly[idx.need].sum()),
            "uncoverable_elderly": float(inp.elderly[idx.uncoverable].sum())}
    return Plan(objective_kind=idx.meta["kind"], new_sites=new_sites, existing=existing,
                open_before=inp.is_exist.copy(), open_after=open_after,
                covered_before=_covered(inp.pattern, inp.is_exist, inp.has_radius), covered_after=cov_after,
                uncoverable=idx.uncoverable.copy(), units=units, cost_total=float(idx.cost @ xr + idx.cost_offset),
                solver=info, curve=curve, meta=meta)


def _new_sites_table(scenario: Any, idx: ModelIndex, table: pd.DataFrame, xr: np.ndarray) -> pd.DataFrame:
    opened = xr[idx.col_x] > 0.5 if len(idx.col_x) else np.zeros(0, dtype=bool)
    k = np.argmax(xr[idx.col_y], axis=1) if idx.col_y.size else np.zeros(0, dtype=np.int64)
    j = np.flatnonzero(opened)
    site = idx.cand[j]
    beds = idx.sizes[k[j]] if len(j) else np.zeros(0, dtype=np.int64)
    cost = idx.cost[idx.col_x[j]] + idx.cost[idx.col_y[j, k[j]]] if len(j) else np.zeros(0)
    out = pd.DataFrame({
        "site": site.astype(np.int64), "site_id": table["site_id"].to_numpy()[site],
        "beds": beds.astype(np.int64), "cost": cost.astype(float),
        "unit_id": table["unit_id"].to_numpy()[site],
        "subdistrict": table["subdistrict"].to_numpy()[site] if "subdistrict" in table else "",
        "x": table["x"].to_numpy(float)[site], "y": table["y"].to_numpy(float)[site],
    })
    if len(idx.col_nurse):
        out["nursing_beds"] = xr[idx.col_nurse[: len(idx.cand)]][j].astype(np.int64)
    if len(idx.col_dementia):
        out["dementia_beds"] = xr[idx.col_dementia[: len(idx.cand)]][j].astype(np.int64)
    return out


def _existing_table(scenario: Any, idx: ModelIndex, table: pd.DataFrame, xr: np.ndarray) -> pd.DataFrame:
    e = idx.exist
    eb = scenario.modules.expansion_beds
    kept, mods = np.ones(len(e), dtype=bool), np.zeros(len(e))
    kept[idx.col_o >= 0] = xr[idx.col_o[idx.col_o >= 0]] > 0.5
    mods[idx.col_m >= 0] = xr[idx.col_m[idx.col_m >= 0]]
    action = np.where(~kept, "closed", np.where(mods > 0, "expanded", "kept"))
    before = table["beds"].fillna(0).to_numpy(dtype=np.int64)[e]
    added = (mods * eb).astype(np.int64)
    c = scenario.costs
    cost = np.where(mods > 0, c.expansion_fixed + mods * (c.expansion_bed * eb + c.module), 0.0)
    cost = np.where(kept, cost, c.close)
    assumed = table["beds_assumed"].to_numpy(dtype=bool)[e] if "beds_assumed" in table else np.zeros(len(e), bool)
    out = pd.DataFrame({
        "site": e.astype(np.int64), "site_id": table["site_id"].to_numpy()[e],
        "name": table["name"].to_numpy()[e] if "name" in table else "", "action": action,
        "beds_before": before, "beds_added": added, "beds_after": np.where(kept, before + added, 0),
        "beds_assumed": assumed, "cost": cost.astype(float), "unit_id": table["unit_id"].to_numpy()[e],
    })
    if len(idx.col_nurse):
        added_nursing = np.zeros(len(e), dtype=np.int64)
        added_nursing[idx.col_m >= 0] = xr[idx.col_nurse[len(idx.cand):]]
        out["nursing_beds_added"] = added_nursing
    return out


def _units_table(idx: ModelIndex, demand: Any, inp: _Inputs, existing: pd.DataFrame, new_sites: pd.DataFrame,
                 xr: np.ndarray) -> pd.DataFrame:
    nu = len(idx.unit_ids)

    def per_unit(site: np.ndarray, beds: np.ndarray) -> np.ndarray:
        u = inp.site_unit[site]
        return np.bincount(u[u >= 0], weights=np.asarray(beds, float)[u >= 0], minlength=nu)

    ex_site = existing["site"].to_numpy(np.int64)
    b_exist = per_unit(ex_site, existing["beds_before"].to_numpy())
    b_kept = per_unit(ex_site, np.where(existing["action"] == "closed", 0, existing["beds_before"]))
    b_new = per_unit(ex_site, existing["beds_added"].to_numpy()) + per_unit(
        new_sites["site"].to_numpy(np.int64), new_sites["beds"].to_numpy())
    net = np.zeros(nu)
    if len(idx.col_g):
        g = xr[idx.col_g]
        net += np.bincount(idx.g_unit, weights=g, minlength=nu)
        net -= np.bincount(inp.site_unit[idx.g_site], weights=g, minlength=nu)
    req = idx.beds_required.astype(float)
    units = demand.units
    return pd.DataFrame({
        "unit_id": idx.unit_ids, "name": units["name"].to_numpy() if "name" in units else idx.unit_ids,
        "elderly": inp.unit_elderly, "beds_required": idx.beds_required,
        "beds_existing": b_exist.astype(np.int64), "beds_kept": b_kept.astype(np.int64),
        "beds_new": b_new.astype(np.int64), "beds_neighbour_net": net.astype(np.int64),
        "beds_after": (b_kept + b_new + net).astype(np.int64),
        "deficit_before": np.maximum(req - b_exist, 0).astype(np.int64),
        "deficit_after": np.maximum(req - (b_kept + b_new + net), 0).astype(np.int64),
    })


def _empty_plan(scenario: Any, idx: ModelIndex, demand: Any, sites: Any, reach: Any, info: SolverInfo,
                diagnosis: dict[str, Any] | None) -> Plan:
    """A Plan that changes nothing (infeasible / no solution): before == after, with the diagnosis."""
    x = np.zeros(idx.n_cols)
    x[idx.col_o[idx.col_o >= 0]] = 1.0
    p = _extract(scenario, idx, demand, sites, reach, x, info, None)
    return replace(p, diagnosis=diagnosis, cost_total=0.0)
