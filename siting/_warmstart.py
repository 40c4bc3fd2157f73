"""A feasible incumbent for the hard-covering planning model, fast (MIP start for HiGHS/CBC).

Why: at city scale (10^5 cells × 10^4 sites) the exact solver can spend its whole time limit
before its own heuristics find any plan; a start means a time-limited run still returns a
plan with an honest gap instead of ``no_solution``.

How (min_cost, uncapacitated only — other models get ``None``; max_coverage has its own
:func:`coverage_start`, below):

1. greedy cover over the reduced ZJ-R500/ZJ-R1000 rows: open the candidate covering the most
   still-uncovered rows per CNY of opening it at its smallest module (lazy priority queue);
2. drop redundant openings (every row they cover is covered twice), dearest first;
3. bed repair per planning unit (ZJ-BEDS): an exact multiple-choice knapsack over the unit's
   options — upsize an opened site, expand an existing institution, open another candidate
   of the unit — for the least cost that closes the unit's deficit;
4. fill zero-cost share columns (nursing / dementia beds) at their largest value and check
   the whole vector against every row and bound; a vector that fails is never returned.

Everything is deterministic (ties broken by column number).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import sparse

from siting import _reduce as R
from siting.solve import FEAS_TOL, SolverOptions, is_feasible, solve_milp

COVERAGE_START_SHARES = (1.0, 0.9, 0.75, 0.5)  # of the budget the greedy may spend, tried in turn
WINDOW_SHARE = 0.7  # of the start's time: window search on the greedy plan (the rest: completion MILP)

MAX_NEW_PER_UNIT = 12  # cheapest unopened candidates of a unit offered to the bed repair
GUIDE_ALPHA = (0.05, 1.0)  # LP-guided greedy: cost × (alpha + 1 - x_lp); both tried (measured at 200k × 20k)


def greedy_start(problem: Any, idx: Any, guide: np.ndarray | None = None) -> np.ndarray | None:
    """A feasible column vector for ``problem`` (built by :func:`siting.model.build_problem`), or None.

    ``guide`` (optional, per candidate in [0, 1], e.g. the LP relaxation's x) scales each
    candidate's cost by ``alpha + 1 - guide`` so the greedy follows the LP; several variants
    (with/without the guide, with/without dropping redundant openings) are repaired and the
    cheapest feasible one wins.
    """
    if idx.meta.get("kind") != "min_cost" or idx.meta.get("capacitated") or len(idx.col_g):
        return None
    base = np.zeros(problem.A.shape[1])
    base[idx.col_o[idx.col_o >= 0]] = 1.0  # keep every existing institution open
    base = np.maximum(base, problem.col_lb)  # forced sites (single reach) are opened by their lower bound
    base[~np.isfinite(base)] = 0.0
    scales = [None]
    if guide is not None and len(guide) == len(idx.col_x):
        g = np.clip(np.nan_to_num(np.asarray(guide, dtype=float)), 0.0, 1.0)
        scales += [GUIDE_ALPHA[0] + 1.0 - g, GUIDE_ALPHA[1] + 1.0 - g]
    best: np.ndarray | None = None
    for scale in scales:
        opened = _greedy_cover(problem, idx, base, scale)
        for variant in (opened, _drop_redundant(problem, idx, opened.copy())):
            x = base.copy()
            x[idx.col_x] = variant.astype(float)
            _bed_repair(problem, idx, x)
            _close_spare(problem, idx, x)
            _fill_shares(problem, idx, x)
            if is_feasible(problem, x) and (best is None or problem.c @ x < problem.c @ best - 1e-6):
                best = x
    return best


# ----------------------------------------------------------------------------- cover


def _cover_parts(problem: Any, idx: Any) -> tuple[sparse.csr_array, np.ndarray]:
    """(cover rows × candidates as 0/1 CSR, rows already met by the start's fixed columns)."""
    a, b = idx.rows.get("cover", (0, 0))
    block = sparse.csr_array(problem.A[a:b])
    pos = np.full(problem.A.shape[1], -1, dtype=np.int64)
    pos[idx.col_x] = np.arange(len(idx.col_x))
    coo = block.tocoo()
    on_x = pos[coo.col] >= 0
    m = sparse.csr_array((np.ones(int(on_x.sum()), dtype=np.int32), (coo.row[on_x], pos[coo.col[on_x]])),
                         shape=(b - a, len(idx.col_x)))
    fixed = np.zeros(problem.A.shape[1])
    fixed[idx.col_o[idx.col_o >= 0]] = 1.0
    fixed[idx.col_x] = problem.col_lb[idx.col_x]
    met = (block @ fixed) >= 1.0 - FEAS_TOL
    return m, met


def _open_cost(problem: Any, idx: Any) -> np.ndarray:
    """Per candidate: site cost plus its cheapest module (the least a site can cost)."""
    c = problem.c if problem.sense == "min" else idx.cost
    y = idx.col_y
    return c[idx.col_x] + (c[y].min(axis=1) if y.size else 0.0)


def _greedy_cover(problem: Any, idx: Any, x: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Open candidates greedily (uncovered rows covered per CNY) until every cover row is met.

    A site's CNY is its opening cost less the beds it brings to a unit still short of ZJ-BEDS
    (those beds would be bought anyway), so sites in short units are preferred.
    """
    m, met = _cover_parts(problem, idx)
    opened = x[idx.col_x] > 0.5
    full = np.maximum(_open_cost(problem, idx), 1e-9)
    unit, short, small, per_bed = _bed_credit(problem, idx, x)
    mt = sparse.csr_array(m.T)  # candidate -> rows
    covered = met | ((m @ opened.astype(np.int32)) > 0)
    gain = mt @ (~covered).astype(np.int64)

    factor = np.ones(len(full)) if scale is None else np.maximum(scale, 1e-6)

    def cost(j: int | np.integer) -> float:
        credit = per_bed * min(small, max(short[unit[j]], 0.0)) if unit[j] >= 0 else 0.0
        return max(full[j] - credit, 0.1 * full[j]) * factor[j]

    heap = [(-gain[j] / cost(j), j) for j in np.flatnonzero(gain > 0)]
    heapq.heapify(heap)
    while heap:
        neg, j = heapq.heappop(heap)
        if opened[j]:
            continue
        rows = mt.indices[mt.indptr[j]:mt.indptr[j + 1]]
        g = int((~covered[rows]).sum())
        if g == 0:
            continue
        key = g / cost(j)
        if -neg > key * (1 + 1e-12):  # stale key (gain fell or credit used up): push back
            heapq.heappush(heap, (-key, j))
            continue
        opened[j] = True
        covered[rows] = True
        if unit[j] >= 0:
            short[unit[j]] -= small
    return opened  # a row left uncovered makes the start fail the feasibility check


def _bed_credit(problem: Any, idx: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(unit per candidate, beds short per unit, smallest module, CNY per bed of the largest module)."""
    nc = len(idx.col_x)
    if "beds" not in idx.rows or not idx.col_y.size:
        return np.full(nc, -1, dtype=np.int64), np.zeros(1), 0.0, 0.0
    a, b = idx.rows["beds"]
    beds = sparse.csr_array(problem.A[a:b])
    unit = _column_unit(beds, problem.A.shape[1])[idx.col_y[:, 0]]
    xs = x.copy()
    k0 = np.argmin(problem.c[idx.col_y], axis=1)
    on = np.flatnonzero(xs[idx.col_x] > 0.5)
    xs[idx.col_y[on, k0[on]]] = 1.0
    short = problem.row_lb[a:b] - beds @ xs
    big = int(np.argmax(idx.sizes))
    per_bed = float(np.median(problem.c[idx.col_y[:, big]])) / float(idx.sizes[big])
    return unit, short, float(idx.sizes.min()), per_bed


def _drop_redundant(problem: Any, idx: Any, opened: np.ndarray) -> np.ndarray:
    """Close opened candidates all of whose rows stay covered without them (dearest first)."""
    m, met = _cover_parts(problem, idx)
    lb = problem.col_lb[idx.col_x] > 0.5
    mt = sparse.csr_array(m.T)
    count = (m @ opened.astype(np.int32)) + met.astype(np.int32) * 2
    cost = _open_cost(problem, idx)
    for j in sorted(np.flatnonzero(opened & ~lb), key=lambda j: (-cost[j], j)):
        rows = mt.indices[mt.indptr[j]:mt.indptr[j + 1]]
        if np.all(count[rows] >= 2):
            opened[j] = False
            count[rows] -= 1
    return opened


def _close_spare(problem: Any, idx: Any, x: np.ndarray) -> None:
    """Close opened candidates (dearest first) whose rows stay covered and whose unit keeps its beds."""
    m, met = _cover_parts(problem, idx)
    mt = sparse.csr_array(m.T)
    opened = x[idx.col_x] > 0.5
    count = (m @ opened.astype(np.int32)) + met.astype(np.int32) * 2
    unit, slack = np.full(len(idx.col_x), -1, dtype=np.int64), np.zeros(1)
    if "beds" in idx.rows and idx.col_y.size:
        a, b = idx.rows["beds"]
        beds = sparse.csr_array(problem.A[a:b])
        unit = _column_unit(beds, problem.A.shape[1])[idx.col_y[:, 0]]
        slack = beds @ x - problem.row_lb[a:b]
    sizes = idx.sizes.astype(float)
    cost = problem.c[idx.col_x] + (problem.c[idx.col_y] * x[idx.col_y]).sum(axis=1)
    lb = problem.col_lb[idx.col_x] > 0.5
    for j in sorted(np.flatnonzero(opened & ~lb), key=lambda j: (-cost[j], j)):
        rows = mt.indices[mt.indptr[j]:mt.indptr[j + 1]]
        own = float(sizes @ x[idx.col_y[j]]) if idx.col_y.size else 0.0
        if np.all(count[rows] >= 2) and (unit[j] < 0 or slack[unit[j]] >= own - FEAS_TOL):
            count[rows] -= 1
            if unit[j] >= 0:
                slack[unit[j]] -= own
            x[idx.col_x[j]] = 0.0
            x[idx.col_y[j]] = 0.0


# ----------------------------------------------------------------------------- beds (ZJ-BEDS)


def _bed_repair(problem: Any, idx: Any, x: np.ndarray) -> None:
    """Per unit: the cheapest module sizes / expansions / extra sites closing the bed deficit."""
    x[idx.col_y] = 0.0
    if idx.col_y.size:
        cheapest = np.argmin(problem.c[idx.col_y], axis=1)
        j = np.flatnonzero(x[idx.col_x] > 0.5)
        x[idx.col_y[j, cheapest[j]]] = 1.0
    if "beds" not in idx.rows:
        return
    a, b = idx.rows["beds"]
    beds = sparse.csr_array(problem.A[a:b])
    short = problem.row_lb[a:b] - beds @ x
    unit_of = _column_unit(beds, problem.A.shape[1])
    for u in np.flatnonzero(short > FEAS_TOL):
        groups = _unit_options(problem, idx, x, unit_of, u)
        choice = _knapsack(groups, float(short[u]))
        if choice is None:
            continue
        for grp, k in zip(groups, choice, strict=True):
            for col in grp["clear"]:
                x[col] = 0.0
            for col, val in grp["options"][k][2]:
                x[col] = val


def _column_unit(beds: sparse.csr_array, n_cols: int) -> np.ndarray:
    """Per column: the unit whose bed row holds it (-1: none)."""
    coo = beds.tocoo()
    out = np.full(n_cols, -1, dtype=np.int64)
    out[coo.col] = coo.row
    return out


def _unit_options(problem: Any, idx: Any, x: np.ndarray, unit_of: np.ndarray,
                  u: int | np.integer) -> list[dict[str, Any]]:
    """Option groups of unit ``u``: (extra beds, extra cost, column values) per choice, choice 0 = as is."""
    c, sizes = problem.c, idx.sizes.astype(float)
    groups: list[dict[str, Any]] = []
    in_u = unit_of[idx.col_y[:, 0]] == u if idx.col_y.size else np.zeros(0, dtype=bool)
    is_open = x[idx.col_x] > 0.5
    for j in np.flatnonzero(in_u & is_open):
        k0 = int(np.argmax(x[idx.col_y[j]]))
        opts = [(sizes[k] - sizes[k0], c[idx.col_y[j, k]] - c[idx.col_y[j, k0]], [(idx.col_y[j, k], 1.0)])
                for k in range(len(sizes))]
        opts.sort(key=lambda o: o[0] != 0.0)  # "as is" first
        groups.append({"clear": list(idx.col_y[j]), "options": [o for o in opts if o[0] >= 0.0]})
    closed = np.flatnonzero(in_u & ~is_open & (problem.col_ub[idx.col_x] > 0.5))
    site_cost = c[idx.col_x[closed]] + c[idx.col_y[closed]].min(axis=1) if len(closed) else np.zeros(0)
    for j in closed[np.lexsort((closed, site_cost))][:MAX_NEW_PER_UNIT]:
        opts = [(0.0, 0.0, [])] + [(sizes[k], c[idx.col_x[j]] + c[idx.col_y[j, k]],
                                    [(idx.col_x[j], 1.0), (idx.col_y[j, k], 1.0)]) for k in range(len(sizes))]
        groups.append({"clear": [], "options": opts})
    for e in np.flatnonzero(idx.col_m >= 0):
        cm, cw = idx.col_m[e], idx.col_w[e]
        if unit_of[cm] != u or (idx.col_o[e] >= 0 and x[idx.col_o[e]] < 0.5):
            continue
        per = problem.A[[idx.rows["beds"][0] + u]][:, [cm]].toarray().item()
        opts = [(0.0, 0.0, [(cm, 0.0), (cw, 0.0)])] + [
            (per * m, c[cm] * m + c[cw], [(cm, float(m)), (cw, 1.0)]) for m in range(1, int(problem.col_ub[cm]) + 1)]
        groups.append({"clear": [], "options": opts})
    return groups


def _knapsack(groups: list[dict[str, Any]], need: float) -> list[int] | None:
    """Multiple-choice covering knapsack: one option per group, beds >= need, least cost (exact DP).

    States count beds gained in steps of the gcd of all bed values, capped at the need.
    """
    vals = np.round(np.abs([o[0] for g in groups for o in g["options"]] + [need])).astype(np.int64)
    step = float(np.gcd.reduce(vals[vals > 0])) if (vals > 0).any() else 1.0
    cap = int(np.ceil(need / step - 1e-9))
    dp = np.full(cap + 1, np.inf)
    dp[0] = 0.0
    back: list[tuple[np.ndarray, np.ndarray]] = []
    for g in groups:
        new, arg, prev = np.full(cap + 1, np.inf), np.zeros(cap + 1, np.int64), np.zeros(cap + 1, np.int64)
        for k, (beds, cost, _) in enumerate(g["options"]):
            cand, src = _shift(dp, round(beds / step), cap)
            better = cand + cost < new - 1e-9
            new[better] = cand[better] + cost
            arg[better], prev[better] = k, src[better]
        back.append((arg, prev))
        dp = new
    if not np.isfinite(dp[cap]):
        return None
    choice, s = [], cap
    for arg, prev in reversed(back):
        choice.append(int(arg[s]))
        s = int(prev[s])
    return choice[::-1]


def _shift(dp: np.ndarray, sh: int, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Cost to reach each state after gaining ``sh`` steps (capped at ``cap``), and its source state."""
    states = np.arange(cap + 1)
    if sh == 0:
        return dp.copy(), states
    cand, src = np.full(cap + 1, np.inf), np.zeros(cap + 1, np.int64)
    if sh < cap:
        cand[sh:cap] = dp[: cap - sh]
        src[sh:cap] = states[: cap - sh]
    lo = max(cap - sh, 0)
    t = lo + int(np.argmin(dp[lo:]))
    cand[cap], src[cap] = dp[t], t
    return cand, src


def _fill_shares(problem: Any, idx: Any, x: np.ndarray) -> None:
    """Nursing / dementia beds (zero cost): as many as each site's rows allow (all its beds)."""
    for name, cols in (("nursing", idx.col_nurse), ("dementia", idx.col_dementia)):
        if not len(cols):
            continue
        x[cols] = 0.0
        for block in (f"{name}_site", f"{name}_expansion"):
            if block not in idx.rows:
                continue
            a, b = idx.rows[block]
            rows = sparse.csr_array(problem.A[a:b])
            own = rows.multiply(sparse.csr_array(np.isin(np.arange(problem.A.shape[1]), cols)[None, :]))
            own = sparse.csr_array(own).tocoo()
            room = problem.row_ub[a:b] - rows @ x  # the share column is 0 here, so this is its room
            x[own.col] = np.floor(room[own.row] / own.data + FEAS_TOL).clip(0)


# ----------------------------------------------------------------------------- max coverage


@dataclass(frozen=True)
class CoverageView:
    """The max-coverage model seen as an MCLP over the candidates a plan may open.

    Built once per solve (:func:`coverage_view`) and shared by the start and the own bound.
    """

    A: sparse.csr_array  # live cover rows (not met by the columns every plan keeps) × allowed candidates, 0/1
    w: np.ndarray  # weight (elderly) per live row
    cost: np.ndarray  # per allowed candidate: site + cheapest module (the least it can cost)
    cols: np.ndarray  # allowed candidates, as positions in idx.col_x
    forced: np.ndarray  # bool per candidate: held open by its lower bound
    met_weight: float  # weight of the rows already met by forced sites and existing institutions
    n_left: int | None  # new sites the plan may still add
    b_left: float | None  # CNY the plan may still spend


def coverage_view(problem: Any, idx: Any) -> CoverageView | None:
    """The MCLP view of an uncapacitated max-coverage model; None for any other model.

    Rows already met count closable existing institutions as open, as the start keeps them.
    """
    if (idx.meta.get("kind") != "max_coverage" or idx.meta.get("capacitated") or not len(idx.col_cov)
            or not len(idx.col_x)):
        return None
    m, met = _cover_parts(problem, idx)
    w = idx.covered[idx.col_cov].astype(float)
    cols = np.flatnonzero(problem.col_ub[idx.col_x] > 0.5)
    live = np.flatnonzero(~met & (w > 0))
    lb = np.where(np.isfinite(problem.col_lb), problem.col_lb, 0.0)
    n_sites, budget = idx.meta.get("n_sites"), idx.meta.get("budget")
    return CoverageView(
        A=R.binary_csr(m[live][:, cols]), w=w[live], cost=_open_cost(problem, idx)[cols], cols=cols,
        forced=problem.col_lb[idx.col_x] > 0.5, met_weight=float(w[met].sum()),
        n_left=None if n_sites is None else max(0, int(n_sites) - round(float(lb[idx.col_x].sum()))),
        b_left=None if budget is None else float(budget) - idx.cost_offset - float(idx.cost @ lb))


def coverage_greedy(view: CoverageView, share: float = 1.0, window_s: float = 0.0,
                    swap_s: float = 5.0) -> np.ndarray:
    """Bool per candidate: greedy max coverage (weight per CNY of its least cost under a budget),
    spending at most ``share`` of the budget left; with a site count only, swaps improve it; then
    for up to ``window_s`` the window search (:func:`siting._lns.improve_by_windows`) re-solves
    neighbourhoods of sites exactly, keeping the count or the budget."""
    from siting._lns import WINDOW_SIZES, improve_by_windows

    v = view
    b = None if v.b_left is None else max(0.0, share * v.b_left)
    pick = R.greedy_max_cover(v.A, v.w, v.n_left, b, v.cost)
    if b is None and v.n_left is not None:
        pick = R.improve_max_cover(v.A, v.w, pick, time_limit_s=swap_s)
    if window_s > 0 and (b is not None or v.n_left is not None):
        pick = improve_by_windows(v.A, v.w, pick, sizes=WINDOW_SIZES, time_limit_s=window_s,
                                  cost=None if b is None else v.cost, budget=b,
                                  keep_count=v.n_left is not None).chosen
    out = v.forced.copy()
    out[v.cols[pick]] = True
    return out


def coverage_start(problem: Any, idx: Any, *, time_limit_s: float = 30.0,
                   view: CoverageView | None = None) -> np.ndarray | None:
    """A feasible column vector for a max-coverage model, or None.

    Greedy max coverage, improved by the window search, picks the candidates; a MILP restricted
    to them (every other candidate closed) then chooses modules, deficits and shares so every
    row holds. When that fails (the other rules need money too), the greedy spends less of the
    budget and tries again. ``view``: the model's :func:`coverage_view`, if the caller has it.
    Why: at 200k × 20k HiGHS alone returned a plan covering 6.26M of 11.9M elderly in 60 s; the
    greedy covers 8.92M in 0.13 s.
    """
    t0 = time.perf_counter()
    view = view if view is not None else coverage_view(problem, idx)
    if view is None:
        return None
    shares = COVERAGE_START_SHARES if idx.meta.get("budget") is not None else (1.0,)
    for share in shares:
        left = time_limit_s - (time.perf_counter() - t0)
        if left <= 0.1:
            return None
        pick = coverage_greedy(view, share, window_s=WINDOW_SHARE * left if share == shares[0] else 0.0,
                               swap_s=min(5.0, 0.1 * left))
        left = time_limit_s - (time.perf_counter() - t0)  # the completion gets only what is left
        if left <= 0.1:
            return None
        ub = problem.col_ub.copy()
        ub[idx.col_x[~pick]] = 0.0
        res = solve_milp(replace(problem, col_ub=ub), SolverOptions(time_limit_s=left, threads=1))
        if res.x is not None and is_feasible(problem, res.x):
            return res.x
    return None
