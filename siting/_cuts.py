"""Mixed-integer rounding (MIR) rows implied by the ZJ-BEDS rows: same integer plans, a tighter LP.

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

import numpy as np
from scipy import sparse

_TOL_BEDS = 1e-6  # beds: a right-hand side this close to a multiple of d gives no cut


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
