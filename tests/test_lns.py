"""Window search for max coverage (siting._lns): never worse, keeps the count, exact on one window."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import sparse

from siting import _lns as L
from siting import _reduce as R
from siting import optimize as O
from siting.optimize import Levers, solve_max_coverage


def random_cover(seed: int, n: int = 60, m: int = 12, density: float = 0.15):
    rng = np.random.default_rng(seed)
    D = rng.random((n, m)) < density
    w = rng.integers(1, 50, n).astype(float)
    return sparse.csr_array(D.astype(np.int8)), D, w


def brute_best(D: np.ndarray, w: np.ndarray, k: int) -> float:
    return max(float(w[D[:, list(c)].any(axis=1)].sum()) for c in itertools.combinations(range(D.shape[1]), k))


def covered(D: np.ndarray, w: np.ndarray, chosen: np.ndarray) -> float:
    return float(w[D[:, chosen].any(axis=1)].sum())


def test_window_is_seed_and_nearest_neighbours():
    # a chain of sites 0-1-2-3-4 (site i and i+1 share row i)
    D = np.zeros((4, 5), dtype=np.int8)
    for i in range(4):
        D[i, i] = D[i, i + 1] = 1
    C = L.column_graph(sparse.csr_array(D))
    assert C[0, 1] == 1 and C[0, 2] == 0 and C[1, 1] == 0
    assert L.window(C, 2, 3).tolist() == [1, 2, 3]
    assert L.window(C, 0, 3).tolist() == [0, 1, 2]
    assert L.window(C, 0, 99).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", range(8))
def test_one_window_over_every_site_is_exact(seed):
    A, D, w = random_cover(seed)
    k = 3
    start = R.greedy_max_cover(R.binary_csr(A), w, k, None, np.ones(A.shape[1]))
    res = L.improve_by_windows(R.binary_csr(A), w, start, sizes=(A.shape[1],))
    assert res.chosen.sum() == start.sum()
    # the site graph of these dense instances is connected, so the window is the whole problem
    assert res.objective == pytest.approx(brute_best(D, w, int(start.sum())))
    assert res.objective == pytest.approx(covered(D, w, res.chosen))


@pytest.mark.parametrize("seed", range(8))
def test_small_windows_never_worsen_and_keep_the_count(seed):
    A, D, w = random_cover(100 + seed, n=150, m=40, density=0.06)
    start = np.zeros(40, dtype=bool)
    start[np.random.default_rng(seed).choice(40, 6, replace=False)] = True
    res = L.improve_by_windows(R.binary_csr(A), w, start, sizes=(5,))
    assert res.chosen.sum() == 6
    assert res.objective >= covered(D, w, start) - 1e-9
    assert res.start_objective == pytest.approx(covered(D, w, start))
    assert res.objective == pytest.approx(covered(D, w, res.chosen))
    assert res.objective <= solve_max_coverage(A, w, n_sites=6).objective + 1e-9  # never above the optimum


def brute_best_budget(D: np.ndarray, w: np.ndarray, cost: np.ndarray, budget: float) -> float:
    m = D.shape[1]
    return max(covered(D, w, np.array(c, dtype=int)) for k in range(m + 1) for c in itertools.combinations(range(m), k)
               if cost[list(c)].sum() <= budget + 1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_budget_windows_stay_within_the_budget_and_are_exact_on_one_window(seed):
    A, D, w = random_cover(200 + seed, n=50, m=10, density=0.2)
    cost = np.random.default_rng(seed).integers(1, 5, 10).astype(float)
    budget = 6.0
    start = R.greedy_max_cover(R.binary_csr(A), w, None, budget, cost)
    res = L.improve_by_windows(R.binary_csr(A), w, start, sizes=(10,), cost=cost, budget=budget)
    assert cost[res.chosen].sum() <= budget + 1e-9
    assert res.objective >= covered(D, w, start) - 1e-9
    assert res.objective == pytest.approx(covered(D, w, res.chosen))
    assert res.objective == pytest.approx(brute_best_budget(D, w, cost, budget))  # one window: exact
    small = L.improve_by_windows(R.binary_csr(A), w, start, sizes=(3,), cost=cost, budget=budget)
    assert cost[small.chosen].sum() <= budget + 1e-9 and small.objective >= covered(D, w, start) - 1e-9


def test_improves_a_poor_start_and_is_deterministic():
    A, _, w = random_cover(7, n=300, m=60, density=0.04)
    start = np.zeros(60, dtype=bool)
    start[:8] = True  # an arbitrary, poor selection
    a = L.improve_by_windows(R.binary_csr(A), w, start, sizes=(12,))
    b = L.improve_by_windows(R.binary_csr(A), w, start, sizes=(12,))
    assert a.objective > a.start_objective
    assert a.improvements >= 1
    assert np.array_equal(a.chosen, b.chosen)


def spatial_instance(seed: int = 3):
    """A 40 × 40 grid of cells, 150 random sites reaching 3 cells around them (a small synthetic city)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(40.0), np.arange(40.0))
    cells = np.c_[gx.ravel(), gy.ravel()]
    w = rng.poisson(20 * np.exp(-((cells - 20) ** 2).sum(axis=1) / 200.0)) + 1.0
    sites = rng.random((150, 2)) * 40
    pairs = cKDTree(cells).query_ball_point(sites, r=3.0)
    rows = np.concatenate(pairs)
    cols = np.repeat(np.arange(150), [len(p) for p in pairs])
    return sparse.csr_array((np.ones(rows.size), (rows, cols)), shape=(len(cells), 150)), w


def test_window_search_keeps_the_max_coverage_optimum(monkeypatch):
    monkeypatch.setattr(O, "MCLP_START_MIN_COLS", 0)  # a 150-site core: the start search would be skipped
    A, w = spatial_instance()
    on = solve_max_coverage(A, w, n_sites=12)
    off = solve_max_coverage(A, w, n_sites=12, levers=Levers(window_search=False))
    assert on.status == off.status == "optimal"
    assert on.objective == pytest.approx(off.objective)
    assert on.stats["window_search_windows"] > 0
    assert on.stats["window_search_gain"] >= 0
    assert "window_search_windows" not in off.stats


def test_small_max_coverage_core_gets_no_start(monkeypatch):
    """Below MCLP_START_MIN_COLS core sites HiGHS gets no start and no window search runs (faster there)."""
    A, w = spatial_instance()
    small = solve_max_coverage(A, w, n_sites=12)
    assert small.stats["start_passed"] is False and "window_search_windows" not in small.stats
    monkeypatch.setattr(O, "MCLP_START_MIN_COLS", 0)
    big = solve_max_coverage(A, w, n_sites=12)
    assert big.stats["start_passed"] is True and big.stats["window_search_windows"] > 0
    assert small.objective == pytest.approx(big.objective)


# ---------------------------------------------------------------------------- generic window search


def facility_milp(seed: int = 0, n_rows: int = 60, n_sites: int = 25):
    """A small set cover with costs and a capacity-like knapsack row: min cost, every row reached."""
    from siting.solve import MilpProblem

    rng = np.random.default_rng(seed)
    D = (rng.random((n_rows, n_sites)) < 0.12).astype(float)
    D[np.arange(n_rows), rng.integers(0, n_sites, n_rows)] = 1.0  # every row coverable
    cap = rng.integers(1, 4, n_sites).astype(float)
    A = sparse.csr_array(np.vstack([D, cap]))
    c = rng.integers(3, 12, n_sites).astype(float)
    lb = np.r_[np.ones(n_rows), [8.0]]
    return MilpProblem(c=c, A=A, row_lb=lb, row_ub=np.full(n_rows + 1, np.inf), col_lb=np.zeros(n_sites),
                       col_ub=np.ones(n_sites), integrality=np.ones(n_sites, dtype=bool))


def feasible(p, x) -> bool:
    act = p.A @ x
    return bool(np.all(act >= p.row_lb - 1e-9) and np.all(act <= p.row_ub + 1e-9))


@pytest.mark.parametrize("seed", range(6))
def test_milp_windows_never_worse_and_exact_on_one_window(seed):
    from siting.solve import solve_milp

    p = facility_milp(seed)
    x0 = np.ones(p.A.shape[1])  # everything open: feasible, expensive
    small, _ = L.improve_milp_by_windows(p, x0, sizes=(4,))
    assert feasible(p, small) and p.c @ small <= p.c @ x0
    whole, st = L.improve_milp_by_windows(p, x0, sizes=(p.A.shape[1],))
    best = solve_milp(p)
    assert best.status == "optimal"
    assert feasible(p, whole)
    assert p.c @ whole == pytest.approx(best.objective)  # the knapsack row joins every column: one window
    assert st["improvements"] >= 1 and st["gain"] == pytest.approx(p.c @ whole - p.c @ x0)


def test_milp_windows_skip_what_they_cannot_handle():
    from dataclasses import replace

    p = facility_milp(1)
    x0 = np.ones(p.A.shape[1])
    x, st = L.improve_milp_by_windows(replace(p, sense="max"), x0)
    assert np.array_equal(x, x0) and st["windows"] == 0


def test_side_search_process_returns_a_better_feasible_plan():
    from siting._side_search import SideSearch

    p = facility_milp(2)
    x0 = np.ones(p.A.shape[1])
    side = SideSearch.start(p, x0, time_limit_s=20.0)
    assert side is not None
    found = side.collect(grace_s=60.0)
    assert found is not None
    x, stats = found
    assert feasible(p, x) and p.c @ x < p.c @ x0
    assert stats["windows"] >= 1
    assert not side.folder.exists()  # its temporary folder is removed


def test_side_search_stop_kills_the_worker():
    from siting._side_search import SideSearch

    p = facility_milp(3)
    side = SideSearch.start(p, np.ones(p.A.shape[1]), time_limit_s=20.0)
    assert side is not None
    side.stop()
    assert side.proc.poll() is not None and not side.folder.exists()


def test_plan_takes_the_side_plan_only_when_feasible_and_cheaper():
    from siting.model import _take_side_result
    from siting.solve import SolveResult

    p = facility_milp(4)
    x0 = np.ones(p.A.shape[1])
    first = SolveResult(status="time_limit", x=x0, objective=float(p.c @ x0), bound=float(p.c.min()), gap=0.5,
                        seconds=1.0, solver="highs")
    better, _ = L.improve_milp_by_windows(p, x0, sizes=(p.A.shape[1],))
    log = [{"stage": "min_cost", "objective": first.objective}]
    res, xs, log = _take_side_result(p, first, x0, log, better, {"windows": 1})
    assert res.objective == pytest.approx(p.c @ better) and np.array_equal(xs, better)
    assert res.status == "time_limit" and res.gap == pytest.approx((res.objective - first.bound) / res.objective)
    assert log[0]["side_search"]["used"] is True
    bad = np.zeros(p.A.shape[1])  # cheapest of all, but covers nothing
    res2, xs2, log2 = _take_side_result(p, first, x0, [{"stage": "min_cost"}], bad, {"windows": 1})
    assert res2 is first and np.array_equal(xs2, x0) and log2[0]["side_search"]["used"] is False
