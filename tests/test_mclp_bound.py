"""Our own max-coverage bound (siting._mclp_bound): never below the optimum, equal to the LP bound.

Checked against brute force on tiny cases and against scipy's simplex LP (an independent solve of
the relaxation) on larger ones, and wired through ``solve_max_coverage``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import linprog

from siting import _mclp_bound as B
from siting import optimize
from siting.optimize import solve_max_coverage


def random_cover(seed: int, n: int = 40, m: int = 9, density: float = 0.2):
    rng = np.random.default_rng(seed)
    D = rng.random((n, m)) < density
    w = rng.integers(1, 50, n).astype(float)
    col_w = rng.integers(0, 20, m).astype(float)
    cost = rng.integers(1, 5, m).astype(float)
    return D, w, col_w, cost


def brute_best(D, w, col_w, cost, p, budget) -> float:
    m = D.shape[1]
    best = 0.0
    for k in range(m + 1):
        for c in itertools.combinations(range(m), k):
            cols = list(c)
            if (p is not None and k > p) or (budget is not None and cost[cols].sum() > budget):
                continue
            best = max(best, float(col_w[cols].sum() + w[D[:, cols].any(axis=1)].sum()))
    return best


def lp_value(D, w, col_w, cost, p, budget) -> float:
    """LP relaxation by scipy's dual simplex: max col_w·x + w·y, y_i <= sum_j D_ij x_j, limits."""
    n, m = D.shape
    rows = [np.hstack([-D.astype(float), np.eye(n)])]
    rhs = [np.zeros(n)]
    if p is not None:
        rows.append(np.r_[np.ones(m), np.zeros(n)][None])
        rhs.append([p])
    if budget is not None:
        rows.append(np.r_[cost, np.zeros(n)][None])
        rhs.append([budget])
    res = linprog(-np.r_[col_w, w], A_ub=np.vstack(rows), b_ub=np.concatenate(rhs), bounds=(0, 1),
                  method="highs-ds")
    assert res.status == 0
    return -res.fun


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("p", "budget"), [(2, None), (None, 5.0), (3, 6.0)])
def test_bound_is_never_below_the_brute_force_optimum(seed, p, budget):
    D, w, col_w, cost = random_cover(seed)
    chosen = np.zeros(D.shape[1], dtype=bool)
    res = B.coverage_bound(sparse.csr_array(D.astype(np.int8)), w, chosen, col_w=col_w, n_sites=p,
                           budget=budget, cost=cost)
    opt = brute_best(D, w, col_w, cost, p, budget)
    assert res.bound >= opt - 1e-9
    assert res.bound <= res.start_bound + 1e-9
    lp = lp_value(D, w, col_w, cost, p, budget)
    assert res.bound >= lp - 1e-6 * lp  # no Lagrangian value lies below the LP bound


@pytest.mark.parametrize("seed", range(4))
def test_bound_equals_lp_bound_with_a_count_limit(seed):
    D, w, col_w, cost = random_cover(100 + seed, n=400, m=60, density=0.05)
    chosen = np.zeros(60, dtype=bool)
    chosen[:5] = True
    res = B.coverage_bound(sparse.csr_array(D.astype(np.int8)), w, chosen, col_w=col_w, n_sites=6)
    lp = lp_value(D, w, col_w, cost, 6, None)
    assert res.lp_bound is not None
    assert res.bound == pytest.approx(lp, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_first_bound_is_at_least_as_tight_as_the_submodular_one(seed):
    D, w, col_w, cost = random_cover(7 + seed, n=80, m=12)
    chosen = np.zeros(12, dtype=bool)
    chosen[[1, 4]] = True
    reached = D[:, chosen].any(axis=1)
    fresh = (D & ~reached[:, None]).T.astype(float) @ w  # weight each site reaches beyond S
    gains = np.sort(np.where(chosen, 0.0, col_w + fresh))[::-1]
    submodular = col_w[chosen].sum() + w[reached].sum() + gains[:3].sum()  # f(S) + 3 largest gains
    expected = w[reached].sum() + np.sort(col_w + fresh)[::-1][:3].sum()  # L(u), u = w off S's rows
    res = B.coverage_bound(sparse.csr_array(D.astype(np.int8)), w, chosen, col_w=col_w, n_sites=3,
                           time_limit_s=0.0)
    assert res.start_bound == pytest.approx(expected, rel=1e-8)  # within the 1e-9 safety pad
    assert expected <= submodular + 1e-9
    assert res.lp_bound is None  # no time for the LP: the first bound stands
    assert res.bound == pytest.approx(expected, rel=1e-8)
    assert res.bound >= brute_best(D, w, col_w, cost, 3, None) - 1e-9


def test_lp_duals_come_back_after_a_solve_with_other_threads():
    """HiGHS keeps one thread scheduler per process; the LP must not fail after a 1-thread solve."""
    D, w, col_w, _ = random_cover(5, n=200, m=30, density=0.08)
    A = sparse.csr_array(D.astype(np.int8))
    solve_max_coverage(A, w, n_sites=3)  # its last HiGHS solve runs on 2 threads
    res = B.coverage_bound(A, w, np.zeros(30, dtype=bool), col_w=col_w, n_sites=4, threads=1)
    assert res.lp_bound is not None
    assert res.lp_bound == pytest.approx(lp_value(D, w, col_w, None, 4, None), rel=1e-6)


def test_solve_max_coverage_reports_the_tighter_bound(monkeypatch):
    D, w, _, _ = random_cover(3, n=300, m=40, density=0.06)
    A = sparse.csr_array(D.astype(np.int8))
    exact = solve_max_coverage(A, w, n_sites=5)
    assert exact.status == "optimal" and "own_bound" not in exact.stats  # no limit: no own bound
    res = solve_max_coverage(A, w, n_sites=5, time_limit=30)
    assert res.stats["own_bound"] >= exact.objective - 1e-9
    assert res.bound is not None and exact.objective - 1e-9 <= res.bound
    assert res.objective == pytest.approx(exact.objective)
    assert "bound_from" not in res.stats  # HiGHS proved it: its bound (the optimum) is the tighter one

    # the MILP stops without a bound of its own (as at 200k × 20k): ours is reported
    real = optimize._mclp_milp

    def no_bound(*args, **kwargs):
        x, _, obj, _ = real(*args, **kwargs)
        return x, "time_limit", obj, None

    monkeypatch.setattr(optimize, "_mclp_milp", no_bound)
    cut = solve_max_coverage(A, w, n_sites=5, time_limit=30)
    assert cut.status == "time_limit" and cut.stats["bound_from"] == "lp_duals"
    assert cut.bound == pytest.approx(cut.stats["own_bound"])
    assert exact.objective - 1e-9 <= cut.bound <= float(w.sum())
    assert cut.gap == pytest.approx((cut.bound - cut.objective) / cut.objective)
