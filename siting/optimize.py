"""Classic covering models on a sparse reach matrix: set cover (LSCP) and max coverage (MCLP).

``coverage`` is a scipy.sparse matrix, rows = demand cells, columns = candidate sites, a stored
nonzero = "site reaches cell" (e.g. within the ZJ-R500 / ZJ-R1000 radius of the cell's band).

- :func:`solve_set_cover` (LSCP): open the cheapest set of sites so every coverable row is
  reached. Exact reductions (identical/dominated rows, dominated/forced columns, see
  ``siting._reduce``), then one MILP per connected component of the reach graph, each warm
  started with a greedy cover.
- :func:`solve_max_coverage` (MCLP): open at most ``n_sites`` sites (and/or within ``budget``)
  to maximise the covered weight (e.g. resident elderly). Identical rows merged, dominated
  columns removed, rows reachable from one site folded into that site's objective; on cores of
  ``MCLP_START_MIN_COLS`` sites or more a greedy + swap warm start, then (count limit) the window
  search of ``siting._lns``, which re-solves neighbourhoods of sites exactly: on the 50k × 5k
  benchmark city it takes the 120 s gap from 1.98 % to 0.41 % (``bench/RESULTS.md``); on smaller
  cores HiGHS alone is faster. Under a time limit, the LP-dual bound of ``siting._mclp_bound``.
  :class:`Levers` switches each of these off, to measure it.

Rows that no column covers are left out of the model and returned in ``uncoverable``.
Both return a frozen :class:`CoverResult`; objective values are exact for status "optimal".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import sparse

from siting import _reduce as R
from siting._errors import DataError, InfeasibleError, SolverError
from siting._lns import WINDOW_SIZES, improve_by_windows, max_cover_problem
from siting._mclp_bound import TIME_SHARE as OWN_BOUND_SHARE
from siting._mclp_bound import coverage_bound
from siting.solve import MAX_SEED, MilpProblem, SolveResult, SolverOptions, Status, solve_milp

SolverName = Literal["highs", "cbc"]
_STATUS_RANK = {"optimal": 0, "time_limit": 1, "no_solution": 2, "infeasible": 3}
_BATCH_COLS = 300  # components with fewer columns than this are solved together in one MILP
# MCLP: below this many core sites HiGHS finds the optimum unaided and the start (greedy + swap + window
# search) only costs its own time: 10k × 1k (811 core sites), medians over seeds 0-2: 26.6 s without it
# (run 20261201T204719), 30.1 s with it (bench/RESULTS.md, fourth session), all optimal. At 50k × 5k
# (4,298) the window search takes the 120 s gap from 1.98 % to 0.41 %.
MCLP_START_MIN_COLS = 2_000


@dataclass(frozen=True)
class Levers:
    """The exact reductions and accelerations the covering solvers use; all on by default.

    Each can be switched off to measure what it buys (``bench/run_bench.py --variants``, figures
    in ``bench/RESULTS.md``): the optimum is the same either way, only time and memory change.
    """

    identical_rows: bool = True  # coverage-signature aggregation: one row per distinct site set (weights summed)
    dominated_rows: bool = True  # LSCP: a row that contains another row is implied by it
    dominated_cols: bool = True  # a site whose rows a no-dearer site also covers is never needed
    forced_cols: bool = True  # LSCP: a row only one site reaches forces that site open
    singleton_rows: bool = True  # MCLP: rows only one site reaches folded into that site's objective weight
    components: bool = True  # LSCP: one MILP per connected component of the reach graph (small ones batched)
    warm_start: bool = True  # greedy plan (MCLP: + swap search) passed to the MILP as its start (off: fallback only)
    window_search: bool = True  # MCLP with a count limit: windows of neighbouring sites re-solved exactly
    own_bound: bool = True  # MCLP under a time limit: Lagrangian bound from the LP duals (siting._mclp_bound)

    def skipped_reductions(self) -> frozenset[str]:
        """Names of the set-cover reduction steps switched off (``siting._reduce.SET_COVER_STEPS``)."""
        return frozenset(k for k in R.SET_COVER_STEPS if not getattr(self, k))


ALL_LEVERS = Levers()


@dataclass(frozen=True)
class CoverResult:
    """Outcome of a covering model.

    selected: sorted column indices opened (fixed_open included). objective: total cost (set
    cover) or covered weight (max coverage). bound: best proven bound on the objective (None when
    the solver gives none). gap: relative |objective - bound| / |objective|. uncoverable: sorted
    row indices no column covers. stats: sizes before/after reductions and seconds per stage.
    """

    selected: np.ndarray
    objective: float
    status: Status
    gap: float | None
    bound: float | None
    seconds: float
    uncoverable: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# input checks


def _coverage(coverage: Any) -> sparse.csr_array:
    if not sparse.issparse(coverage):
        raise DataError(f"coverage must be a scipy.sparse matrix (rows = demand, columns = sites), got "
                        f"{type(coverage).__name__}; build it with reach/cKDTree, never dense")
    if coverage.ndim != 2:
        raise DataError(f"coverage must be 2-D, got shape {coverage.shape}")
    return R.binary_csr(coverage)


def _vector(name: str, value: Any, n: int, default: float | None, *, nonneg: bool = True) -> np.ndarray:
    if value is None:
        return np.full(n, default, dtype=np.float64)
    v = np.asarray(value, dtype=np.float64)
    if v.shape != (n,):
        raise DataError(f"`{name}` has shape {v.shape}, expected ({n},): one value per "
                        f"{'site (column)' if name == 'cost' else 'demand row'}")
    if not np.all(np.isfinite(v)):
        raise DataError(f"`{name}` has NaN or infinite values at {np.flatnonzero(~np.isfinite(v))[:5].tolist()}; "
                        "fill them before solving")
    if nonneg and np.any(v < 0):
        raise DataError(f"`{name}` must be >= 0; negative at {np.flatnonzero(v < 0)[:5].tolist()}")
    return v


def _fixed(fixed_open: Any, m: int) -> np.ndarray:
    if fixed_open is None:
        return np.zeros(0, dtype=np.int64)
    f = np.asarray(fixed_open)
    if f.dtype == bool:
        if f.shape != (m,):
            raise DataError(f"`fixed_open` as a mask must have shape ({m},), got {f.shape}")
        return np.flatnonzero(f)
    f = np.unique(f.astype(np.int64).ravel())
    if f.size and (f[0] < 0 or f[-1] >= m):
        raise DataError(f"`fixed_open` holds site column {int(f[0] if f[0] < 0 else f[-1])}, outside "
                        f"0..{m - 1}; pass column indices of the coverage matrix")
    return f


def _options(solver: str, time_limit: float | None, mip_gap: float, threads: int = 2, seed: int = 0) -> SolverOptions:
    if solver not in ("highs", "cbc"):
        raise SolverError(f"solver {solver!r} is unknown; use 'highs' or 'cbc'")
    if time_limit is not None and not time_limit > 0:
        raise DataError(f"time_limit must be > 0 seconds (or None), got {time_limit!r}")
    if not 0 <= mip_gap < 1:
        raise DataError(f"mip_gap must be in [0, 1), got {mip_gap!r}")
    if int(threads) != threads or threads < 1:
        raise DataError(f"threads must be a whole number >= 1, got {threads!r}")
    if int(seed) != seed or not 0 <= seed <= MAX_SEED:
        raise DataError(f"seed must be a whole number in 0..{MAX_SEED}, got {seed!r}")
    return SolverOptions(name=solver, time_limit_s=time_limit, mip_gap=float(mip_gap),  # type: ignore[arg-type]
                         threads=int(threads), seed=int(seed))


def read_scp(path: Any) -> tuple[sparse.csr_array, np.ndarray]:
    """Read a set-cover instance in Beasley's OR-Library ``scp`` format: (coverage, cost).

    Format: "m n", n column costs, then per row its number of covering columns and their
    1-based numbers (whitespace-separated, line breaks anywhere).
    """
    from pathlib import Path

    p = Path(path)
    try:
        tok = np.array(p.read_text(encoding="ascii").split(), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{p}: cannot read an OR-Library scp file ({exc}); expect whitespace-separated "
                        "numbers") from None
    if tok.size < 2:
        raise DataError(f"{p}: empty scp file; expect 'rows cols' on the first line")
    n, m = int(tok[0]), int(tok[1])
    cost, pos = tok[2:2 + m], 2 + m
    rows, cols = [], []
    for i in range(n):
        if pos >= tok.size:
            raise DataError(f"{p}: row {i + 1} of {n} is missing; the file is truncated")
        k = int(tok[pos])
        js = tok[pos + 1:pos + 1 + k].astype(np.int64) - 1
        if js.size != k or (k and (js.min() < 0 or js.max() >= m)):
            raise DataError(f"{p}: row {i + 1} lists columns outside 1..{m} or is truncated")
        rows.append(np.full(k, i))
        cols.append(js)
        pos += 1 + k
    if cost.size != m or pos != tok.size:
        raise DataError(f"{p}: {tok.size - pos} numbers left over (or costs missing); check 'rows cols'")
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sparse.csr_array((np.ones(r.size, np.int32), (r, c)), shape=(n, m)), cost


# --------------------------------------------------------------------------------------------
# set cover (LSCP)


def solve_set_cover(coverage: Any, cost: Any = None, *, fixed_open: Any = None, solver: SolverName = "highs",
                    time_limit: float | None = None, mip_gap: float = 0.0, threads: int = 2,
                    seed: int = 0, levers: Levers = ALL_LEVERS) -> CoverResult:
    """Cheapest set of sites reaching every coverable demand row (LSCP; ZJ-R500/ZJ-R1000 coverage).

    Parameters
    ----------
    coverage
        Sparse demand × site reach matrix (nonzero = covers).
    cost
        Cost per site (>= 0); None = 1 each, i.e. minimise the number of sites.
    fixed_open
        Site columns that are open anyway (existing institutions); their cost counts.
    solver, time_limit, mip_gap, threads, seed
        MILP solver, wall-clock limit in seconds for the whole call, relative gap, solver threads,
        the random seed of the main MILPs (0..MAX_SEED; same seed, same search path; the benchmark
        varies it to tell a lever's effect from branch-and-bound luck). The window search's small
        node-limited MILPs keep the default seed, so the start is the same whatever the seed.
    levers
        Reductions, decomposition and warm start to use (all by default; see :class:`Levers`).
    """
    t0 = time.perf_counter()
    A = _coverage(coverage)
    n, m = A.shape
    c = _vector("cost", cost, m, 1.0)
    fixed = _fixed(fixed_open, m)
    opts = _options(solver, time_limit, mip_gap, threads, seed)
    deg = R.row_degree(A)
    uncoverable = np.flatnonzero(deg == 0)
    live = (deg > 0) & ~R.rows_covered_by(A, fixed)
    col_live = np.ones(m, dtype=bool)
    col_live[fixed] = False
    rows0, cols0 = np.flatnonzero(live), np.flatnonzero(col_live)
    core = R.binary_csr(A[rows0][:, cols0])
    stats: dict[str, Any] = {"rows": n, "cols": m, "uncoverable": int(uncoverable.size),
                             "fixed_open": int(fixed.size), "rows_after_fixed": int(core.shape[0])}
    stats["t_setup"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    red = R.reduce_set_cover(core, c[cols0], skip=levers.skipped_reductions())
    stats.update(rows_reduced=int(red.A.shape[0]), cols_reduced=int(red.A.shape[1]),
                 forced=int(red.forced.size), reduction_rounds=red.rounds, **red.counts)
    stats["t_reduce"] = time.perf_counter() - t1
    picks, parts = _solve_cover_core(red.A, c[cols0][red.cols], opts, t0, stats, levers)
    chosen = np.zeros(m, dtype=bool)
    chosen[fixed] = True
    chosen[cols0[red.forced]] = True
    chosen[cols0[red.cols[picks]]] = True
    _check_cover(A, chosen, deg)
    obj = float(c[chosen].sum())
    status, bound = _combine(parts, float(c[fixed].sum() + c[cols0[red.forced]].sum()))
    return CoverResult(selected=np.flatnonzero(chosen), objective=obj, status=status,
                       gap=_rel_gap(obj, bound), bound=bound, seconds=time.perf_counter() - t0,
                       uncoverable=uncoverable, stats=stats)


def _solve_cover_core(A: sparse.csr_array, cost: np.ndarray, opts: SolverOptions, t0: float, stats: dict,
                      levers: Levers) -> tuple[np.ndarray, list[tuple[str, float | None, float]]]:
    """Solve the reduced core component by component (or as one MILP); return (picked core columns, parts)."""
    t = time.perf_counter()
    if A.shape[0] == 0:
        stats.update(components=0, milps=0, t_components=0.0, t_greedy=0.0, t_milp=0.0)
        return np.zeros(0, dtype=np.int64), []
    if levers.components:
        k, rlab, clab = R.components(A)
        groups = _component_batches(k, clab)
    else:
        k, rlab, clab = 1, np.zeros(A.shape[0], dtype=np.int64), np.zeros(A.shape[1], dtype=np.int64)
        groups = [np.array([0])]
    stats["components"] = k
    stats["t_components"] = time.perf_counter() - t
    stats["milps"] = len(groups)
    picks: list[np.ndarray] = []
    parts: list[tuple[str, float | None, float]] = []
    tg = tm = 0.0
    for comp_ids in groups:
        rmask, cmask = np.isin(rlab, comp_ids), np.isin(clab, comp_ids)
        sub = R.binary_csr(A[np.flatnonzero(rmask)][:, np.flatnonzero(cmask)])
        subc = cost[cmask]
        ts = time.perf_counter()
        warm = R.greedy_cover(sub, subc) if levers.warm_start else None
        tg += time.perf_counter() - ts
        ts = time.perf_counter()
        x, part = _cover_milp(sub, subc, warm, opts, t0)
        tm += time.perf_counter() - ts
        picks.append(np.flatnonzero(cmask)[x])
        parts.append(part)
    stats.update(t_greedy=tg, t_milp=tm)
    return np.concatenate(picks), parts


def _component_batches(k: int, clab: np.ndarray) -> list[np.ndarray]:
    """Large components alone, small ones together (one MILP each batch; fewer solver start-ups)."""
    size = np.bincount(clab, minlength=k)
    order = np.argsort(-size, kind="stable")
    big = [np.array([i]) for i in order if size[i] >= _BATCH_COLS]
    small = order[size[order] < _BATCH_COLS]
    return big + ([np.sort(small)] if small.size else [])


def _cover_milp(A: sparse.csr_array, cost: np.ndarray, warm: np.ndarray | None, opts: SolverOptions,
                t0: float) -> tuple[np.ndarray, tuple[str, float | None, float]]:
    """One set-cover MILP; falls back to the greedy cover when the time is up or no incumbent.

    ``warm`` None (the warm-start lever off): no start is passed; the greedy cover is then only
    computed if the solver returns no plan.
    """
    n, m = A.shape
    left = None if opts.time_limit_s is None else opts.time_limit_s - (time.perf_counter() - t0)
    if left is not None and left <= 0.01:
        warm = R.greedy_cover(A, cost) if warm is None else warm
        return warm, ("time_limit", None, float(cost[warm].sum()))
    greedy_obj = math.inf if warm is None else float(cost[warm].sum())
    prob = MilpProblem(c=cost, A=sparse.csr_array(A, dtype=np.float64), row_lb=np.ones(n),
                       row_ub=np.full(n, np.inf), col_lb=np.zeros(m), col_ub=np.ones(m),
                       integrality=np.ones(m, dtype=bool))
    res = solve_milp(prob, _with_limit(opts, left), warm_start=None if warm is None else warm.astype(np.float64))
    if res.status == "infeasible":  # cannot happen: every core row has a column
        raise SolverError(f"{res.solver}: a set-cover core with a column on every row came back "
                          "infeasible; please report this instance")
    if res.x is None or res.objective is None or res.objective > greedy_obj + 1e-9:
        warm = R.greedy_cover(A, cost) if warm is None else warm
        return warm, ("time_limit", res.bound, float(cost[warm].sum()))
    return res.x > 0.5, (res.status, res.bound, float(res.objective))


def _with_limit(opts: SolverOptions, left: float | None) -> SolverOptions:
    return SolverOptions(name=opts.name, time_limit_s=left, mip_gap=opts.mip_gap, threads=opts.threads,
                         seed=opts.seed, verbose=opts.verbose)


def _combine(parts: list[tuple[str, float | None, float]], base: float) -> tuple[Status, float | None]:
    """Worst status over the parts; bound = base + sum of part bounds (None if any is missing)."""
    status: Status = "optimal"
    bound: float | None = base
    for st, b, obj in parts:
        if _STATUS_RANK[st] > _STATUS_RANK[status]:
            status = st  # type: ignore[assignment]
        if st == "optimal":
            b = obj if b is None else b
        bound = None if bound is None or b is None else bound + b
    return status, bound


def _rel_gap(obj: float, bound: float | None) -> float | None:
    if bound is None:
        return None
    diff = abs(obj - bound)
    return 0.0 if diff <= 1e-9 else diff / max(abs(obj), 1e-9)


def _check_cover(A: sparse.csr_array, chosen: np.ndarray, deg: np.ndarray) -> None:
    """Guard: every coverable row must be covered by the returned selection."""
    hit = R.rows_covered_by(A, np.flatnonzero(chosen))
    missing = np.flatnonzero((deg > 0) & ~hit)
    if missing.size:
        raise SolverError(f"internal: set cover left coverable rows {missing[:5].tolist()} uncovered; "
                          "please report this instance")


# --------------------------------------------------------------------------------------------
# max coverage (MCLP)


def solve_max_coverage(coverage: Any, weight: Any, *, n_sites: int | None = None, budget: float | None = None,
                       cost: Any = None, fixed_open: Any = None, solver: SolverName = "highs",
                       time_limit: float | None = None, mip_gap: float = 0.0, threads: int = 2,
                       seed: int = 0, levers: Levers = ALL_LEVERS) -> CoverResult:
    """Open at most ``n_sites`` sites (and/or cost within ``budget``) to maximise the covered weight.

    ``n_sites`` and ``budget`` count every open site, ``fixed_open`` included. ``weight`` per
    demand row (>= 0, e.g. resident elderly); ``cost`` per site (>= 0, used with ``budget``).
    objective = total weight of rows reached by at least one selected site. ``levers`` (all by
    default, see :class:`Levers`): row aggregation, dominated sites, folded singleton rows, the
    greedy + swap start, the window search (count limit only) and the own bound. ``solver``,
    ``time_limit``, ``mip_gap``, ``threads``, ``seed``: as :func:`solve_set_cover`.
    """
    t0 = time.perf_counter()
    A = _coverage(coverage)
    n, m = A.shape
    w = _vector("weight", weight, n, None)
    c = _vector("cost", cost, m, 1.0)
    fixed = _fixed(fixed_open, m)
    opts = _options(solver, time_limit, mip_gap, threads, seed)
    p_left, b_left = _mclp_limits(n_sites, budget, fixed, c)
    deg = R.row_degree(A)
    uncoverable = np.flatnonzero(deg == 0)
    got = R.rows_covered_by(A, fixed)
    base = float(w[got].sum())
    col_live = np.ones(m, dtype=bool)
    col_live[fixed] = False
    if budget is not None:
        assert b_left is not None  # _mclp_limits sets it whenever budget is given
        col_live &= c <= b_left + 1e-9
    rows0, cols0 = np.flatnonzero((deg > 0) & ~got & (w > 0)), np.flatnonzero(col_live)
    core = R.binary_csr(A[rows0][:, cols0])
    stats: dict[str, Any] = {"rows": n, "cols": m, "uncoverable": int(uncoverable.size),
                             "fixed_open": int(fixed.size), "rows_after_fixed": int(core.shape[0]),
                             "t_setup": time.perf_counter() - t0}
    x, status, obj, bound = _mclp_core(core, w[rows0], c[cols0], p_left, b_left, opts, t0, stats, levers)
    chosen = np.zeros(m, dtype=bool)
    chosen[fixed] = True
    chosen[cols0[x]] = True
    covered_w = float(w[R.rows_covered_by(A, np.flatnonzero(chosen))].sum())
    if abs(covered_w - (base + obj)) > 1e-6 * max(1.0, abs(covered_w)):
        raise SolverError(f"internal: max coverage objective {base + obj} != recomputed {covered_w}; "
                          "please report this instance")
    bound = None if bound is None else base + bound
    return CoverResult(selected=np.flatnonzero(chosen), objective=covered_w, status=status,
                       gap=_rel_gap(covered_w, bound), bound=bound, seconds=time.perf_counter() - t0,
                       uncoverable=uncoverable, stats=stats)


def _mclp_limits(n_sites: int | None, budget: float | None, fixed: np.ndarray,
                 c: np.ndarray) -> tuple[int | None, float | None]:
    """Sites and budget left after the fixed-open sites; InfeasibleError when they already exceed them."""
    p_left = b_left = None
    if n_sites is not None:
        if int(n_sites) != n_sites or n_sites < 0:
            raise DataError(f"n_sites must be a whole number >= 0, got {n_sites!r}")
        p_left = int(n_sites) - int(fixed.size)
        if p_left < 0:
            raise InfeasibleError(f"fixed_open holds {fixed.size} sites but n_sites={n_sites}; "
                                  "raise n_sites or open fewer sites")
    if budget is not None:
        if not math.isfinite(budget) or budget < 0:
            raise DataError(f"budget must be a finite number >= 0, got {budget!r}")
        b_left = float(budget) - float(c[fixed].sum())
        if b_left < -1e-9:
            raise InfeasibleError(f"fixed_open sites cost {c[fixed].sum():g} > budget {budget:g}; "
                                  "raise the budget or open fewer sites")
    return p_left, b_left


def _mclp_core(A: sparse.csr_array, w: np.ndarray, c: np.ndarray, p: int | None, b: float | None,
               opts: SolverOptions, t0: float, stats: dict, levers: Levers = ALL_LEVERS):
    """Reduce and solve the MCLP core; return (bool per core column, status, objective, bound)."""
    t = time.perf_counter()
    n_in = A.shape[0]
    if levers.identical_rows:
        A, keep, w = R.merge_identical_rows(A, w)
    else:
        keep = np.arange(n_in)
    if levers.dominated_cols:
        dcol = R.dominated_cols(A, c if b is not None else np.ones(A.shape[1]))
    else:
        dcol = np.zeros(A.shape[1], dtype=bool)
    cols = np.flatnonzero(~dcol)
    A = R.binary_csr(A[:, cols])
    single = (R.row_degree(A) == 1) & levers.singleton_rows
    col_w = np.bincount(A.indices[A.indptr[:-1][single]], weights=w[single], minlength=A.shape[1])
    multi = np.flatnonzero(~single)
    Am, wm = R.binary_csr(A[multi]), w[multi]
    stats.update(rows_reduced=int(Am.shape[0]), cols_reduced=int(A.shape[1]),
                 identical_rows=int(n_in - keep.size),
                 dominated_cols=int(dcol.sum()), singleton_rows_folded=int(single.sum()),
                 t_reduce=time.perf_counter() - t)
    t = time.perf_counter()
    warm = R.greedy_max_cover(A, w, p, b, c[cols])
    stats["t_greedy"] = time.perf_counter() - t
    start = levers.warm_start and A.shape[1] >= MCLP_START_MIN_COLS
    if start and b is None and p is not None:  # swap search keeps the count; a budget could overspend
        t = time.perf_counter()
        budget_s = 10.0 if opts.time_limit_s is None else 0.1 * opts.time_limit_s
        warm = R.improve_max_cover(A, w, warm, time_limit_s=budget_s)
        stats["t_local_search"] = time.perf_counter() - t
        if levers.window_search:
            warm = _window_search(A, w, warm, opts, t0, stats)
    own = _own_bound(Am, wm, col_w, c[cols], p, b, warm, opts, t0, stats) if levers.own_bound else None
    t = time.perf_counter()
    x, status, obj, bound = _mclp_milp(Am, wm, col_w, c[cols], p, b, warm, opts, t0, pass_start=start)
    stats["start_passed"] = start
    stats["t_milp"] = time.perf_counter() - t
    if own is not None and (bound is None or own < bound):
        bound = own
        stats["bound_from"] = "lp_duals"  # the solver's own bound was weaker (e.g. root LP unfinished)
    out = np.zeros(c.size, dtype=bool)
    out[cols[x]] = True
    return out, status, obj, bound


def _window_search(A: sparse.csr_array, w: np.ndarray, warm: np.ndarray, opts: SolverOptions, t0: float,
                   stats: dict) -> np.ndarray:
    """Re-solve windows of neighbouring sites exactly (``siting._lns``), small windows then larger ones.

    Gets within a few 0.01 % of the optimum on the benchmark cities, so the MILP starts from a
    near-optimal incumbent. Up to 40 % of the time limit (60 s without one).
    """
    cap = 60.0 if opts.time_limit_s is None else 0.4 * opts.time_limit_s - (time.perf_counter() - t0)
    if cap <= 0:
        return warm
    res = improve_by_windows(A, w, warm, sizes=WINDOW_SIZES, time_limit_s=cap)
    stats.update(t_window_search=res.seconds, window_search_windows=res.windows,
                 window_search_improvements=res.improvements,
                 window_search_gain=res.objective - res.start_objective)
    return res.chosen


def _own_bound(A: sparse.csr_array, w: np.ndarray, col_w: np.ndarray, c: np.ndarray, p: int | None,
               b: float | None, warm: np.ndarray, opts: SolverOptions, t0: float, stats: dict) -> float | None:
    """Our own upper bound (``siting._mclp_bound``) when a time limit may stop the MILP; else None.

    At city scale HiGHS may not finish the root LP within the limit and then reports a trivial
    bound; the Lagrangian bound from the LP's duals keeps the reported gap honest. Up to
    ``OWN_BOUND_SHARE`` of the time limit.
    """
    if opts.time_limit_s is None or A.shape[1] == 0:
        return None
    cap = min(OWN_BOUND_SHARE * opts.time_limit_s, opts.time_limit_s - (time.perf_counter() - t0))
    if cap <= 0.05:
        return None
    res = coverage_bound(A, w, warm, col_w=col_w, n_sites=p, budget=b, cost=c, time_limit_s=cap,
                         threads=opts.threads)
    stats.update(own_bound=res.bound, own_bound_lp=res.lp_bound, own_bound_submodular=res.start_bound,
                 t_own_bound=res.seconds)
    return res.bound


def _mclp_milp(A: sparse.csr_array, w: np.ndarray, col_w: np.ndarray, c: np.ndarray, p: int | None,
               b: float | None, warm: np.ndarray, opts: SolverOptions, t0: float, *, pass_start: bool = True):
    """max col_w·x + w·y  s.t.  y_i <= sum_{j covers i} x_j,  sum x <= p,  c·x <= b;  x binary, y in [0, 1].

    ``warm`` (the greedy plan) is the fallback when the solver returns nothing better; it is
    given to the solver as its start only with ``pass_start``.
    """
    m = A.shape[1]
    prob = max_cover_problem(A, w, col_w=col_w, n_sites=p, budget=b, cost=c)
    y0 = np.minimum(1.0, np.asarray(A @ warm.astype(np.float64)).ravel())
    warm_x = np.concatenate([warm.astype(np.float64), y0])
    greedy_obj = float(col_w[warm].sum() + w @ y0)
    left = None if opts.time_limit_s is None else opts.time_limit_s - (time.perf_counter() - t0)
    if m == 0 or (left is not None and left <= 0.01):
        st: Status = "optimal" if m == 0 else "time_limit"
        return warm, st, greedy_obj, (greedy_obj if m == 0 else None)
    res: SolveResult = solve_milp(prob, _with_limit(opts, left), warm_start=warm_x if pass_start else None)
    if res.status == "infeasible":
        raise SolverError(f"{res.solver}: the max-coverage model came back infeasible although selecting "
                          "nothing is feasible; please report this instance")
    if res.x is None or res.objective is None or res.objective < greedy_obj - 1e-9:
        return warm, "time_limit", greedy_obj, res.bound
    x = res.x[:m] > 0.5
    obj = float(col_w[x].sum() + w @ np.minimum(1.0, np.asarray(A @ x.astype(np.float64)).ravel()))
    return x, res.status, obj, res.bound
