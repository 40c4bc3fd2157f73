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

    ``integer`` flags the integer columns (their lower bounds must be >= 0: the caller's duty).
    Rows with a continuous column or rhs <= 0 give nothing; a cut equal to one already made for
    the same row is dropped, and zero coefficients are not stored. Returns (cut matrix with the
    rows' column count, cut rhs).
    """
    rows = sparse.csr_array(rows)
    r_idx: list[np.ndarray] = []
    c_idx: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    out_rhs: list[float] = []
    for r in range(rows.shape[0]):
        lo, hi = rows.indptr[r], rows.indptr[r + 1]
        cols, a, b = rows.indices[lo:hi], rows.data[lo:hi], float(rhs[r])
        if b <= 0 or not len(cols) or not integer[cols].all():
            continue
        seen: set[tuple[float, ...]] = set()
        for d in divisors:
            cut = mir_row(a, b, float(d))
            if cut is None:
                continue
            key = tuple(np.round(cut[0] / cut[1], 9))
            if key in seen:
                continue
            seen.add(key)
            nz = cut[0] != 0.0  # e.g. a transfer out (a = -1) often rounds to 0: not stored
            r_idx.append(np.full(int(nz.sum()), len(out_rhs)))
            c_idx.append(cols[nz])
            vals.append(cut[0][nz])
            out_rhs.append(cut[1])
    if not out_rhs:
        return sparse.csr_array((0, rows.shape[1])), np.zeros(0)
    m = sparse.csr_array((np.concatenate(vals), (np.concatenate(r_idx), np.concatenate(c_idx))),
                         shape=(len(out_rhs), rows.shape[1]))
    return m, np.asarray(out_rhs)
