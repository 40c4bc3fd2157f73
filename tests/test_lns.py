"""Window search for max coverage (siting._lns): never worse, keeps the count, exact on one window."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import sparse

from siting import _lns as L
from siting import _reduce as R
from siting.optimize import solve_max_coverage


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
    C = L.site_graph(sparse.csr_array(D))
    assert C[0, 1] == 1 and C[0, 2] == 0 and C[1, 1] == 0
    assert L.window(C, 2, 3).tolist() == [1, 2, 3]
    assert L.window(C, 0, 3).tolist() == [0, 1, 2]
    assert L.window(C, 0, 99).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", range(8))
def test_one_window_over_every_site_is_exact(seed):
    A, D, w = random_cover(seed)
    k = 3
    start = R.greedy_max_cover(R.binary_csr(A), w, k, None, np.ones(A.shape[1]))
    res = L.improve_by_windows(R.binary_csr(A), w, start, size=A.shape[1])
    assert res.chosen.sum() == start.sum()
    # the site graph of these dense instances is connected, so the window is the whole problem
    assert res.objective == pytest.approx(brute_best(D, w, int(start.sum())))
    assert res.objective == pytest.approx(covered(D, w, res.chosen))


@pytest.mark.parametrize("seed", range(8))
def test_small_windows_never_worsen_and_keep_the_count(seed):
    A, D, w = random_cover(100 + seed, n=150, m=40, density=0.06)
    start = np.zeros(40, dtype=bool)
    start[np.random.default_rng(seed).choice(40, 6, replace=False)] = True
    res = L.improve_by_windows(R.binary_csr(A), w, start, size=5)
    assert res.chosen.sum() == 6
    assert res.objective >= covered(D, w, start) - 1e-9
    assert res.start_objective == pytest.approx(covered(D, w, start))
    assert res.objective == pytest.approx(covered(D, w, res.chosen))
    assert res.objective <= solve_max_coverage(A, w, n_sites=6).objective + 1e-9  # never above the optimum


def test_improves_a_poor_start_and_is_deterministic():
    A, _, w = random_cover(7, n=300, m=60, density=0.04)
    start = np.zeros(60, dtype=bool)
    start[:8] = True  # an arbitrary, poor selection
    a = L.improve_by_windows(R.binary_csr(A), w, start, size=12)
    b = L.improve_by_windows(R.binary_csr(A), w, start, size=12)
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


def test_window_search_keeps_the_max_coverage_optimum():
    A, w = spatial_instance()
    on = solve_max_coverage(A, w, n_sites=12)
    off = solve_max_coverage(A, w, n_sites=12, window_search=False)
    assert on.status == off.status == "optimal"
    assert on.objective == pytest.approx(off.objective)
    assert on.stats["window_search_windows"] > 0
    assert on.stats["window_search_gain"] >= 0
    assert "window_search_windows" not in off.stats
