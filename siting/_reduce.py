"""Exact reductions of covering problems (set cover / max coverage) over a CSR coverage matrix.

Rows are demand, columns are candidate sites, a stored nonzero means "column covers row". Every
function here keeps the optimum value unchanged (the one-line argument is in its docstring) and
returns the indices it kept, in the coordinates of its input, so a caller maps a solution back
with ``cols[kept_solution]``. All work is vectorised over the sparse arrays; nothing allocates
an n_rows × n_cols dense array. Pairwise products (A Aᵀ, Aᵀ A) are built in row blocks so the
memory stays bounded.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

_BLOCK_NNZ = 4_000_000  # max stored products per block of a pairwise overlap product


def binary_csr(coverage: sparse.sparray | sparse.spmatrix) -> sparse.csr_array:
    """Return coverage as a canonical 0/1 CSR array (int32, sorted indices, no explicit zeros)."""
    A = sparse.csr_array(coverage, copy=True)
    A.eliminate_zeros()
    A.sum_duplicates()
    A.sort_indices()
    A.data = np.ones(A.nnz, dtype=np.int32)  # int32: overlap products must not overflow
    return A


def row_degree(A: sparse.csr_array) -> np.ndarray:
    return np.diff(A.indptr)


def col_degree(A: sparse.csr_array) -> np.ndarray:
    return np.bincount(A.indices, minlength=A.shape[1])


# --------------------------------------------------------------------------------------------
# identical rows


def identical_row_groups(A: sparse.csr_array) -> np.ndarray:
    """Group id per row; rows with the same set of columns share an id (exact, not just hashed).

    Rows are hashed by (degree, two random 64-bit sums over their columns), then every row is
    checked entry by entry against its group's first row; a (never observed) collision is split off.
    """
    A = binary_csr(A) if not A.has_sorted_indices else A
    n, m = A.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(12345)
    keys = rng.integers(1, 2**63 - 1, size=(2, m), dtype=np.int64).astype(np.uint64)
    rows = np.repeat(np.arange(n), row_degree(A))
    h1 = np.zeros(n, dtype=np.uint64)
    h2 = np.zeros(n, dtype=np.uint64)
    np.add.at(h1, rows, keys[0][A.indices])
    np.add.at(h2, rows, keys[1][A.indices])
    deg = row_degree(A)
    order = np.lexsort((h2, h1, deg))
    new = np.ones(n, dtype=bool)
    new[1:] = (deg[order][1:] != deg[order][:-1]) | (h1[order][1:] != h1[order][:-1]) | \
        (h2[order][1:] != h2[order][:-1])
    gid = np.empty(n, dtype=np.int64)
    gid[order] = np.cumsum(new) - 1
    return _split_collisions(A, gid)


def _split_collisions(A: sparse.csr_array, gid: np.ndarray) -> np.ndarray:
    """Give any row whose columns differ from its group's first row a group of its own."""
    n = A.shape[0]
    first = np.full(gid.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, gid, np.arange(n))
    rep = first[gid]
    deg = row_degree(A)
    pos = np.arange(A.nnz) - np.repeat(A.indptr[:-1], deg)
    rows = np.repeat(np.arange(n), deg)
    same = A.indices == A.indices[A.indptr[rep[rows]] + pos]
    bad = np.unique(rows[~same])
    if bad.size:
        gid = gid.copy()
        gid[bad] = gid.max() + 1 + np.arange(bad.size)
    return gid


def merge_identical_rows(A: sparse.csr_array, weight: np.ndarray | None = None):
    """Keep one row per distinct column set; for max coverage its weight is the group's sum.

    Optimum unchanged: identical rows are covered by exactly the same selections, so one
    constraint (set cover) or one summed-weight row (max coverage) says the same.
    Returns ``(A_kept, kept_rows, weight_kept)``; ``kept_rows`` are the first row of each group.
    """
    gid = identical_row_groups(A)
    n_groups = int(gid.max()) + 1 if gid.size else 0
    first = np.full(n_groups, A.shape[0], dtype=np.int64)
    np.minimum.at(first, gid, np.arange(A.shape[0]))
    kept = np.sort(first)
    w = None
    if weight is not None:
        sums = np.bincount(gid, weights=weight, minlength=n_groups)
        w = sums[gid[kept]]
    return A[kept], kept, w


# --------------------------------------------------------------------------------------------
# dominance


def _overlap_blocks(A: sparse.csr_array, B_T: sparse.csc_array | sparse.csr_array):
    """Yield (start, stop, A[start:stop] @ B_T) in row blocks sized to bound the product's nnz."""
    n = A.shape[0]
    deg = row_degree(A)
    fan = np.asarray(col_degree_of(B_T))
    work = np.zeros(n, dtype=np.int64)
    if A.nnz:
        rows = np.repeat(np.arange(n), deg)
        np.add.at(work, rows, fan[A.indices])
    cum = np.cumsum(work)
    start = 0
    while start < n:
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + _BLOCK_NNZ, side="right"))
        stop = max(stop, start + 1)
        yield start, stop, sparse.csr_array(A[start:stop] @ B_T)
        start = stop


def col_degree_of(B_T: sparse.sparray) -> np.ndarray:
    """Stored entries per row of B_T (the fan-out of a product A @ B_T through each column)."""
    return np.diff(sparse.csr_array(B_T).indptr)


def dominated_rows(A: sparse.csr_array) -> np.ndarray:
    """Bool per row: True when another row's columns are a strict subset of this row's (set cover).

    Optimum unchanged: covering the smaller row B covers A ⊇ B too, so A's constraint is implied;
    strict subsets form a finite order, so every dropped row keeps a minimal subset row.
    """
    deg = row_degree(A)
    drop = np.zeros(A.shape[0], dtype=bool)
    AT = sparse.csr_array(A.T)
    for start, _stop, ov in _overlap_blocks(A, AT):
        r = np.repeat(np.arange(ov.shape[0]), np.diff(ov.indptr)) + start
        k = ov.indices
        hit = (ov.data == deg[k]) & (deg[k] < deg[r])
        drop[np.unique(r[hit])] = True
    return drop


def dominated_cols(A: sparse.csr_array, cost: np.ndarray) -> np.ndarray:
    """Bool per column: True when another column covers a superset at no higher cost.

    Optimum unchanged: swapping a dominated column j for its dominator k keeps every row covered
    and does not raise the cost (set cover) nor lower the covered weight or exceed a count/budget
    limit (max coverage). Ties are broken by (cost, -degree, index), a strict order, so exactly
    one of a set of identical columns stays. Columns covering nothing are dominated too.
    """
    AT = sparse.csr_array(A.T)
    deg = row_degree(AT)
    drop = deg == 0
    for start, _stop, ov in _overlap_blocks(AT, A):
        j = np.repeat(np.arange(ov.shape[0]), np.diff(ov.indptr)) + start
        k = ov.indices
        sup = (ov.data == deg[j]) & (j != k)
        j, k = j[sup], k[sup]
        better = (cost[k] < cost[j]) | ((cost[k] == cost[j]) & (
            (deg[k] > deg[j]) | ((deg[k] == deg[j]) & (k < j))))
        drop[np.unique(j[better])] = True
    return drop


# --------------------------------------------------------------------------------------------
# forced columns and components


def forced_cols(A: sparse.csr_array) -> np.ndarray:
    """Sorted columns that are the only cover of some row (set cover: they must be open).

    Optimum unchanged: every feasible cover contains such a column.
    """
    deg = row_degree(A)
    return np.unique(A.indices[A.indptr[:-1][deg == 1]])


def rows_covered_by(A: sparse.csr_array, cols: np.ndarray) -> np.ndarray:
    """Bool per row: covered by at least one of ``cols``."""
    sel = np.zeros(A.shape[1], dtype=bool)
    sel[np.asarray(cols, dtype=np.int64)] = True
    return np.asarray((A @ sel.astype(np.int32)) > 0).ravel()


def components(A: sparse.csr_array) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components of the bipartite reach graph: (count, label per row, label per column).

    Set cover splits exactly along them: no constraint links two components, so the optimum is
    the sum of the components' optima.
    """
    n = A.shape[0]
    B = sparse.bmat([[None, A], [A.T, None]], format="csr")
    k, lab = csgraph.connected_components(B, directed=False)
    return int(k), lab[:n], lab[n:]


# --------------------------------------------------------------------------------------------
# greedy warm starts


def greedy_cover(A: sparse.csr_array, cost: np.ndarray) -> np.ndarray:
    """Greedy set cover (best newly covered rows per cost, lazy heap), then redundant columns out.

    Every row of A must have a column. Returns a bool per column; a feasible cover, not optimal.
    """
    n, m = A.shape
    C = sparse.csc_array(A)
    covered = np.zeros(n, dtype=bool)
    deg = np.diff(C.indptr)
    heap = [(-deg[j] / max(cost[j], 1e-12), j) for j in range(m) if deg[j] > 0]
    heapq.heapify(heap)
    chosen = np.zeros(m, dtype=bool)
    left = n
    while left and heap:
        _, j = heapq.heappop(heap)
        rows = C.indices[C.indptr[j]:C.indptr[j + 1]]
        gain = int(np.count_nonzero(~covered[rows]))
        if gain == 0:
            continue
        ratio = -gain / max(cost[j], 1e-12)
        if heap and ratio > heap[0][0]:
            heapq.heappush(heap, (ratio, j))
            continue
        chosen[j] = True
        covered[rows] = True
        left -= gain
    return drop_redundant(A, chosen, cost)


def drop_redundant(A: sparse.csr_array, chosen: np.ndarray, cost: np.ndarray,
                   weight: np.ndarray | None = None) -> np.ndarray:
    """Remove chosen columns (dearest first) whose rows all stay covered by other chosen columns.

    The covered set, hence the covered weight, is unchanged; the cost does not rise.
    """
    chosen = chosen.copy()
    C = sparse.csc_array(A)
    count = np.asarray(A @ chosen.astype(np.int32)).ravel()
    for j in sorted(np.flatnonzero(chosen), key=lambda j: (-cost[j], -j)):
        rows = C.indices[C.indptr[j]:C.indptr[j + 1]]
        if weight is not None:
            rows = rows[weight[rows] > 0]
        if np.all(count[rows] >= 2):
            chosen[j] = False
            count[C.indices[C.indptr[j]:C.indptr[j + 1]]] -= 1
    return chosen


def greedy_max_cover(A: sparse.csr_array, weight: np.ndarray, n_sites: int | None,
                     budget: float | None, cost: np.ndarray) -> np.ndarray:
    """Greedy max coverage (lazy heap on covered weight, per cost under a budget); bool per column.

    Respects the count limit and the budget; a (1 - 1/e)-approximate incumbent, not optimal.
    """
    n, m = A.shape
    C = sparse.csc_array(A)
    covered = np.zeros(n, dtype=bool)
    per: Callable[[int], float] = (lambda j: max(cost[j], 1e-12)) if budget is not None else (lambda j: 1.0)
    gains = np.asarray(C.T @ weight).ravel()
    heap = [(-gains[j] / per(j), j) for j in range(m) if gains[j] > 0]
    heapq.heapify(heap)
    chosen = np.zeros(m, dtype=bool)
    spent, count = 0.0, 0
    while heap and (n_sites is None or count < n_sites):
        _, j = heapq.heappop(heap)
        if budget is not None and spent + cost[j] > budget + 1e-9:
            continue
        rows = C.indices[C.indptr[j]:C.indptr[j + 1]]
        gain = float(weight[rows][~covered[rows]].sum())
        if gain <= 0:
            continue
        ratio = -gain / per(j)
        if heap and ratio > heap[0][0]:
            heapq.heappush(heap, (ratio, j))
            continue
        chosen[j] = True
        covered[rows] = True
        spent += cost[j]
        count += 1
    return chosen


@dataclass(frozen=True)
class SetCoverReduction:
    """Result of :func:`reduce_set_cover`: the core left to solve, in input coordinates."""

    A: sparse.csr_array  # core: rows × cols still undecided
    rows: np.ndarray  # input row index of each core row
    cols: np.ndarray  # input column index of each core column
    forced: np.ndarray  # input columns fixed open by the reductions (sorted)
    rounds: int
    counts: dict


SET_COVER_STEPS = ("identical_rows", "dominated_rows", "dominated_cols", "forced_cols")


def reduce_set_cover(A: sparse.csr_array, cost: np.ndarray, *, max_rounds: int = 20,
                     skip: frozenset[str] = frozenset()) -> SetCoverReduction:
    """Apply identical rows, dominated rows, dominated columns and forced columns to a fixpoint.

    Every row of A must have a column. Optimum of the input = cost of ``forced`` + optimum of
    the core (each step is exact, see its docstring). Steps named in ``skip`` (of
    ``SET_COVER_STEPS``) are left out, to measure what each buys (``bench/run_bench.py --variants``).
    """
    if unknown := set(skip) - set(SET_COVER_STEPS):
        raise ValueError(f"unknown reduction steps {sorted(unknown)}; known: {SET_COVER_STEPS}")
    rows = np.arange(A.shape[0])
    cols = np.arange(A.shape[1])
    forced: list[np.ndarray] = []
    counts = {"identical_rows": 0, "dominated_rows": 0, "dominated_cols": 0, "forced_cols": 0,
              "rows_covered_by_forced": 0}
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - rounds reported
        before = A.shape
        if "identical_rows" not in skip:
            A, keep, _ = merge_identical_rows(A)
            counts["identical_rows"] += before[0] - keep.size
            rows = rows[keep]
        if "dominated_rows" not in skip:
            drop = dominated_rows(A)
            counts["dominated_rows"] += int(drop.sum())
            A, rows = A[~drop], rows[~drop]
        if "dominated_cols" not in skip:
            dcol = dominated_cols(A, cost[cols])
            counts["dominated_cols"] += int(dcol.sum())
            A, cols = sparse.csr_array(A[:, ~dcol]), cols[~dcol]
            A.sort_indices()
        f = forced_cols(A) if "forced_cols" not in skip else np.zeros(0, dtype=np.int64)
        if f.size:
            hit = rows_covered_by(A, f)
            counts["forced_cols"] += f.size
            counts["rows_covered_by_forced"] += int(hit.sum())
            forced.append(cols[f])
            keepc = np.ones(A.shape[1], dtype=bool)
            keepc[f] = False
            A, rows = A[~hit], rows[~hit]
            A, cols = sparse.csr_array(A[:, keepc]), cols[keepc]
            A.sort_indices()
        if A.shape == before:
            break
    fz = np.unique(np.concatenate(forced)) if forced else np.zeros(0, dtype=np.int64)
    return SetCoverReduction(A=A, rows=rows, cols=cols, forced=fz, rounds=rounds, counts=counts)


def improve_max_cover(A: sparse.csr_array, weight: np.ndarray, chosen: np.ndarray, *,
                      max_swaps: int = 1000, time_limit_s: float = 10.0, top_k: int = 400) -> np.ndarray:
    """Swap local search (one site out, one in, best improvement first) on a count-limited max coverage.

    Keeps the number of chosen columns; stops at a swap-local optimum, ``max_swaps`` or the time
    limit. Only improves the incumbent (a warm start), never claims optimality. Returns a bool per column.
    """
    import time

    t0 = time.perf_counter()
    chosen = chosen.copy()
    AT = sparse.csr_array(A.T)
    for _ in range(max_swaps):
        if time.perf_counter() - t0 > time_limit_s or not chosen.any() or chosen.all():
            break
        cnt = np.asarray(A @ chosen.astype(np.int32)).ravel()
        gain = np.asarray(AT @ (weight * (cnt == 0))).ravel()
        gain[chosen] = -np.inf
        loss_all = np.asarray(AT @ (weight * (cnt == 1))).ravel()
        sel = np.flatnonzero(chosen)
        once = np.flatnonzero(cnt == 1)
        sub = sparse.csr_array(A[once][:, sel])  # exactly one stored entry per row: its owner
        owner = sub.indices
        W = sparse.csr_array((weight[once], (np.arange(once.size), owner)), shape=(once.size, sel.size))
        cross = sparse.csr_array(sparse.csr_array(A[once]).T @ W)  # (cols × chosen) weight kept by a swap
        k_top = np.argsort(-gain, kind="stable")[:top_k]
        k_top = k_top[np.isfinite(gain[k_top])]
        if k_top.size == 0:
            break
        delta = gain[k_top][:, None] - loss_all[sel][None, :] + cross[k_top].toarray()
        kk, jj = np.unravel_index(int(np.argmax(delta)), delta.shape)
        if delta[kk, jj] <= 1e-9 * max(1.0, float(weight.sum())):
            break
        chosen[sel[jj]] = False
        chosen[k_top[kk]] = True
    return chosen
