"""Rows implied by the ZJ-BEDS rows — mixed-integer rounding (MIR) rows and count hull rows: the same
integer plans, a tighter LP. (Count hull rows: see the comment above :func:`count_hull_rows`.)

A ZJ-BEDS row reads ``sum_i a_i z_i >= b`` over non-negative integer columns (module choices with
a_i = the module's beds, expansion modules, closable existing institutions, bed transfers). Its
LP relaxation lets a unit short of 310 beds buy 2.07 modules of 150 beds and pay for 2.07 sites;
every real plan opens whole sites, so the LP bound sits far below the cheapest plan and the
solver spends its time proving that gap away. For a divisor d > 0 with f = frac(b / d) > 0 and
f_i = frac(a_i / d), mixed-integer rounding gives

    sum_i c_i z_i >= ceil(b / d),   c_i = ceil(a_i / d) - max(0, f - f_i) / f   (c_i = a_i / d when f_i = 0)

which every non-negative integer z meeting the row also meets (the MIR inequality of Nemhauser and
Wolsey, Integer and Combinatorial Optimization, II.1.7, applied to -a z <= -b); the LP point often
does not. Divisors: each bed value v (module sizes, the expansion module), v / 2, and the beds of
any two modules together (v + w, 2v): a unit of ~10,000 elderly owes ~300 beds, so divisors near
that count (200, 250, 300 with modules 60/100/150) say how many sites a unit needs. Measured on
the benchmark cities (bench/RESULTS.md, "Fifth session"): the root LP of the full planning model
at 50k cells rises from 1.9656e10 to 2.0112e10 CNY (best plan 2.0285e10); at 200k × 20k HiGHS's
bound after 60 s rises from 65.52e9 to 66.21e9 (no start, 2 threads). Halves, thirds and quarters
instead of the sums lift the root LP more (2.0143e10) but the 60 s bound less (66.06e9).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import sparse

_TOL_BEDS = 1e-6  # beds: a right-hand side this close to a multiple of d gives no cut
_MAX_OTHER_SUMS = 4096  # count hull rows: distinct bed sums of a unit's other integer columns kept exactly


def mir_divisors(bed_values: np.ndarray | list[float]) -> np.ndarray:
    """Sorted distinct divisors of the positive bed values v: v, v / 2 and every v + w (w = v too)."""
    v = np.unique(np.asarray(bed_values, dtype=np.float64))
    v = v[v > 0]
    pairs = (v[:, None] + v[None, :])[np.triu_indices(len(v))]
    return np.unique(np.round(np.r_[v, v / 2.0, pairs], 9))


def mir_row(a: np.ndarray, b: float, d: float) -> tuple[np.ndarray, float] | None:
    """MIR coefficients and right-hand side of ``a z >= b`` (z >= 0 integer) for divisor ``d``.

    ``c_i = floor(a_i / d) + min(f_i, f) / f``: the form above without its special case, so a
    coefficient moves smoothly with a_i and floating noise in a_i can only weaken the cut. None
    when ``b`` is within ``_TOL_BEDS`` of a multiple of ``d`` (rounding would add nothing or
    rest on noise).
    """
    q = b / d
    f = q - np.floor(q)
    if f * d < _TOL_BEDS or (1.0 - f) * d < _TOL_BEDS:
        return None
    ad = np.asarray(a, dtype=np.float64) / d
    fa = ad - np.floor(ad)
    return np.floor(ad) + np.minimum(fa, f) / f, float(np.ceil(q))


def mir_rows(rows: sparse.csr_array, rhs: np.ndarray, integer: np.ndarray,
             divisors: np.ndarray) -> tuple[sparse.csr_array, np.ndarray]:
    """MIR rows (``>= rhs``) of every row of ``rows z >= rhs`` whose columns are all integer.

    :func:`mir_row`'s formula, vectorised over the rows (one pass per divisor). ``integer`` flags
    the integer columns (their lower bounds must be >= 0: the caller's duty). Rows with a
    continuous column or rhs <= 0 give nothing; a cut equal to one already made for the same row
    (same coefficients over its rhs) is dropped, and zero coefficients are not stored. Cuts come
    row by row, in divisor order. Returns (cut matrix with the rows' column count, cut rhs).
    """
    rows = sparse.csr_array(rows)
    n = rows.shape[0]
    rhs = np.asarray(rhs, dtype=np.float64)
    nnz_row = np.diff(rows.indptr)
    row_of = np.repeat(np.arange(n), nnz_row)
    continuous = np.bincount(row_of, weights=~integer[rows.indices], minlength=n) > 0
    ok = (rhs > 0) & (nnz_row > 0) & ~continuous
    salt = np.random.default_rng(0).random(rows.nnz)  # fingerprint of a cut's normalised coefficients
    cut_row, cut_rhs, cut_key, ent_cut, ent_col, ent_val = [], [], [], [], [], []
    n_cuts = 0
    for d in np.asarray(divisors, dtype=np.float64):
        q = rhs / d
        f = q - np.floor(q)
        live = ok & (f * d >= _TOL_BEDS) & ((1.0 - f) * d >= _TOL_BEDS)
        at = np.flatnonzero(live[row_of])
        r = row_of[at]
        ad = rows.data[at] / d
        coef = np.floor(ad) + np.minimum(ad - np.floor(ad), f[r]) / f[r]
        lr = np.flatnonzero(live)
        local = np.full(n, -1, dtype=np.int64)
        local[lr] = np.arange(lr.size) + n_cuts
        key = np.bincount(r, weights=np.round(coef / np.ceil(q[r]), 9) * salt[at], minlength=n)
        cut_row.append(lr)
        cut_rhs.append(np.ceil(q[lr]))
        cut_key.append(key[lr])
        ent_cut.append(local[r])
        ent_col.append(rows.indices[at])
        ent_val.append(coef)
        n_cuts += lr.size
    if n_cuts == 0:
        return sparse.csr_array((0, rows.shape[1])), np.zeros(0)
    c_row, c_rhs, c_key = np.concatenate(cut_row), np.concatenate(cut_rhs), np.concatenate(cut_key)
    e_cut, e_col, e_val = np.concatenate(ent_cut), np.concatenate(ent_col), np.concatenate(ent_val)
    first = np.unique(np.c_[c_row, c_key], axis=0, return_index=True)[1]  # per row and fingerprint: 1st divisor
    keep = np.zeros(n_cuts, dtype=bool)
    keep[first] = True
    order = np.flatnonzero(keep)[np.argsort(c_row[keep], kind="stable")]  # by row, then divisor
    new_id = np.full(n_cuts, -1, dtype=np.int64)
    new_id[order] = np.arange(order.size)
    e = (new_id[e_cut] >= 0) & (e_val != 0.0)  # e.g. a transfer out (a = -1) often rounds to 0: not stored
    m = sparse.csr_array((e_val[e], (new_id[e_cut[e]], e_col[e])), shape=(order.size, rows.shape[1]))
    return m, c_rhs[order]


# ----------------------------------------------------------------------------- count hull rows
#
# A unit's new modules relate two integers: how many sites n it opens and how many beds they hold.
# With modules of 60/100/150 beds a unit short of R = 240 beds can open 2 sites (250 beds, the
# least sum >= R), 3 (260) or 4 (240): the least beds B(n) for n sites is not convex in n, and the
# LP takes a mix (e.g. 3 sites with 240 beds) no plan can have. Every plan has beds >= B(n) >= the
# lower convex envelope of the points (n, B(n)); each edge of that envelope is one row
# ``sum_i (a_i - slope) y_i >= B(n1) - slope * n1`` over the unit's module columns y_i (a_i their
# beds), and ``sum_i y_i >= n_min`` bounds the count from below. Together these rows are the LP
# hull of the unit's (sites, beds) pairs: measured at 50k cells the root LP rises from 2.0112e10
# (MIR rows) to 2.0202e10 CNY (optimum 2.0285e10). HiGHS nevertheless solved the benchmark cities
# slower with them, so siting.model adds them only on request (bench/RESULTS.md, "Sixth session").


def _least_sums(sizes: tuple[float, ...], n_max: int, need: float,
                extra: np.ndarray | None = None) -> np.ndarray:
    """B(n) for n = 0..n_max: the least total of n modules (sizes with repetition) plus one of the
    sorted sums ``extra`` (default: 0 only) that is >= need; inf when none reaches it."""
    out = np.full(n_max + 1, np.inf)
    other = np.zeros(1) if extra is None else np.asarray(extra, dtype=np.float64)
    sums = np.zeros(1)
    size_arr = np.asarray(sizes, dtype=np.float64)
    for n in range(n_max + 1):
        if n > 0:
            sums = np.unique(np.round((sums[:, None] + size_arr[None, :]).ravel(), 9))
        i = np.searchsorted(other, need - sums - _TOL_BEDS)
        ok = i < other.size
        if ok.any():
            out[n] = float(np.min(sums[ok] + other[i[ok]]))
    return out


def _bounded_sums(values: np.ndarray, lb: np.ndarray, ub: np.ndarray, cap: int) -> np.ndarray | None:
    """Sorted distinct sums of ``values[i] * k_i`` over integers lb_i <= k_i <= ub_i; None past ``cap``."""
    sums = np.zeros(1)
    for v, lo, hi in zip(values, lb, ub, strict=True):
        steps = v * np.arange(round(lo), round(hi) + 1, dtype=np.float64)
        sums = np.unique(np.round((sums[:, None] + steps[None, :]).ravel(), 9))
        if sums.size > cap:
            return None
    return sums


def _lower_hull(xs: np.ndarray, ys: np.ndarray) -> list[int]:
    """Indices of the lower convex hull of points sorted by x (monotone chain)."""
    hull: list[int] = []
    for k in range(len(xs)):
        while len(hull) >= 2:
            i, j = hull[-2], hull[-1]
            if (ys[j] - ys[i]) * (xs[k] - xs[i]) >= (ys[k] - ys[i]) * (xs[j] - xs[i]) - 1e-9:
                hull.pop()  # j lies on or above the chord i-k
            else:
                break
        hull.append(k)
    return hull


def count_hull_rows(rows: sparse.csr_array, rhs: np.ndarray, group: np.ndarray, col_lb: np.ndarray,
                    col_ub: np.ndarray, integer: np.ndarray | None = None,
                    ) -> tuple[sparse.csr_array, np.ndarray]:
    """Count hull rows (``>= rhs``) of every row ``rows z >= rhs`` (see the comment above).

    ``group`` holds, per column, the site a module column belongs to (-1: any other column); a
    site opens at most one module, so the number of its module columns at 1 is its site count.
    Other columns with a positive coefficient, integer (``integer``) and bounded — expansion
    modules, closable institutions — join the row as they are: B(n) then is the least total of n
    modules plus any of their sums (up to _MAX_OTHER_SUMS distinct sums). Any other column is
    taken at its most helpful bound and left out of the row (a row with an unbounded helpful
    column gives nothing). B(n) uses the union of a row's module sizes, so it can only be lower
    than a site's own choice would allow: the rows hold for every plan. n runs up to the row's
    site count, or to the first n whose smallest modules already meet the row (beyond it the
    envelope rises by the smallest module per site, which every plan meets anyway).
    """
    rows = sparse.csr_array(rows)
    out_r: list[np.ndarray] = []
    out_c: list[np.ndarray] = []
    out_v: list[np.ndarray] = []
    out_rhs: list[float] = []
    for u in range(rows.shape[0]):
        cols = rows.indices[rows.indptr[u]:rows.indptr[u + 1]]
        a = rows.data[rows.indptr[u]:rows.indptr[u + 1]]
        mod = group[cols] >= 0
        if not mod.any() or np.any(a[mod] <= 0):
            continue
        oc, oa = cols[~mod], a[~mod]
        item = (oa > 0) & np.isfinite(col_ub[oc]) & (integer[oc] if integer is not None else False)
        extra = _bounded_sums(oa[item], col_lb[oc[item]], col_ub[oc[item]], _MAX_OTHER_SUMS)
        if extra is None:  # too many combinations: every other column at its most helpful bound
            item[:] = False
            extra = np.zeros(1)
        rest = ~item
        other_max = float(np.sum(np.maximum(oa[rest] * col_lb[oc[rest]], oa[rest] * col_ub[oc[rest]])))
        need = float(rhs[u]) - other_max
        if not np.isfinite(need) or need <= _TOL_BEDS:
            continue
        sizes = tuple(np.unique(np.round(a[mod], 9)))
        n_sites = np.unique(group[cols[mod]]).size
        n_max = min(n_sites, max(int(np.ceil(need / sizes[0] - 1e-9)), 0) + 1)
        least = _least_sums(sizes, n_max, need, extra)
        ns = np.flatnonzero(np.isfinite(least))
        if ns.size == 0:
            continue  # no plan meets the row: the model is infeasible, which the solver reports
        hull = _lower_hull(ns.astype(np.float64), least[ns])
        ym, am = cols[mod], a[mod]
        if ns[0] > 0:  # at least n_min sites
            out_r.append(np.full(ym.size, len(out_rhs)))
            out_c.append(ym)
            out_v.append(np.ones(ym.size))
            out_rhs.append(float(ns[0]))
        for i, j in itertools.pairwise(hull):
            n1, n2 = float(ns[i]), float(ns[j])
            slope = (least[ns[j]] - least[ns[i]]) / (n2 - n1)
            coef, cut_rhs = am - slope, float(least[ns[i]] - slope * n1)
            if cut_rhs <= _TOL_BEDS and np.all(coef >= 0):  # met by every plan (e.g. slope = smallest module)
                continue
            out_r.append(np.full(ym.size + int(item.sum()), len(out_rhs)))
            out_c.append(np.r_[ym, oc[item]])
            out_v.append(np.r_[coef, oa[item]])
            out_rhs.append(cut_rhs)
    if not out_rhs:
        return sparse.csr_array((0, rows.shape[1])), np.zeros(0)
    r, c, v = np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_v)
    nz = v != 0.0
    return (sparse.csr_array((v[nz], (r[nz], c[nz])), shape=(len(out_rhs), rows.shape[1])),
            np.asarray(out_rhs))
