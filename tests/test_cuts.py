"""MIR rows of the ZJ-BEDS rows (siting._cuts): valid for every integer point, and they cut the LP."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.optimize import linprog

from siting import _cuts


@settings(max_examples=200, deadline=None)
@given(a=st.lists(st.sampled_from([-1.0, 1.0, 30.0, 60.0, 87.0, 100.0, 150.0]), min_size=1, max_size=4),
       ub=st.integers(1, 3), b=st.integers(1, 700),
       d=st.sampled_from([7.5, 15.0, 20.0, 30.0, 50.0, 60.0, 100.0, 150.0, 210.0, 300.0]))
def test_mir_row_holds_at_every_integer_point_of_the_row(a: list[float], ub: int, b: int, d: float) -> None:
    """Brute force: every z in {0..ub}^n with a·z >= b meets the cut (negative a = transfer out)."""
    a_arr = np.asarray(a)
    cut = _cuts.mir_row(a_arr, float(b), d)
    if cut is None:
        assert b / d == int(b / d)
        return
    coef, rhs = cut
    for z in itertools.product(range(ub + 1), repeat=len(a)):
        z_arr = np.asarray(z, dtype=float)
        if a_arr @ z_arr >= b:
            assert coef @ z_arr >= rhs - 1e-9, (z, coef, rhs)


def test_mir_row_cuts_off_the_fractional_module() -> None:
    """310 beds from 150-bed modules: the LP takes 2.07 modules, the cut asks for 3."""
    coef, rhs = _cuts.mir_row(np.array([150.0]), 310.0, 150.0)
    assert coef.tolist() == [1.0] and rhs == 3.0
    assert coef @ np.array([310 / 150]) < rhs  # the LP point is cut off
    coef, rhs = _cuts.mir_row(np.array([60.0, 100.0, 150.0]), 310.0, 100.0)
    # f = 0.1; 60/100 rounds to 1 - max(0, 0.1-0.6)/0.1 = 1; 150/100 -> 2 - 0 = 2
    assert coef.tolist() == [1.0, 1.0, 2.0] and rhs == 4.0
    assert coef @ np.array([0.0, 3.1, 0.0]) < rhs  # 3.1 hundred-bed modules: cut off too
    assert _cuts.mir_row(np.array([150.0]), 300.0, 150.0) is None  # whole: nothing to round


def test_mir_divisors_are_sizes_their_halves_and_pair_sums() -> None:
    d = _cuts.mir_divisors([60, 150, 0, 60])
    assert d.tolist() == sorted({60.0, 30.0, 150.0, 75.0, 120.0, 210.0, 300.0})


def test_mir_rows_skip_continuous_and_met_rows_and_drop_repeats() -> None:
    rows = sparse.csr_array(np.array([[150.0, 60.0, 0.0], [150.0, 0.0, 1.0], [150.0, 60.0, 0.0], [60.0, 0.0, 0.0]]))
    integer = np.array([True, True, False])
    m, rhs = _cuts.mir_rows(rows, np.array([310.0, 310.0, -10.0, 100.0]), integer, np.array([30.0, 60.0]))
    assert m.shape[1] == 3
    dense = m.toarray()
    assert not dense[:, 2].any()  # row 1 holds the continuous column: no cut from it
    # row 0: one cut per divisor (distinct); row 2 (rhs < 0) none; row 3 (60 z >= 100): d = 30 gives
    # 2 z >= 4 and d = 60 gives z >= 2, the same cut, kept once
    from_row3 = [i for i in range(len(rhs)) if dense[i, 1] == 0 and dense[i, 0] > 0]
    assert len(from_row3) == 1 and dense[from_row3[0], 0] / rhs[from_row3[0]] == 0.5
    assert len(rhs) == 3


def test_mir_row_near_whole_values_stay_valid() -> None:
    """Floating noise (a/d = 1 + 8e-10, b/d = 2 + 1.5e-9) must not cut off z = 2."""
    cut = _cuts.mir_row(np.array([1 + 8e-10]), 2 + 1.5e-9, 1.0)
    assert cut is None or cut[0] @ np.array([2.0]) >= cut[1] - 1e-9
    coef, rhs = _cuts.mir_row(np.array([0.9999999999 * 150]), 310.0, 150.0)
    assert coef[0] == pytest.approx(1.0) and rhs == 3.0


def test_mir_rows_raise_the_lp_of_a_bed_knapsack() -> None:
    """min cost of modules 60/100/150 (cost incl. a fixed 3M per site) for 310 beds: LP bound rises."""
    sizes = np.array([60.0, 100.0, 150.0])
    cost = 3e6 + 120_000 * sizes
    rows = sparse.csr_array(sizes[None, :])
    base = linprog(cost, A_ub=-sizes[None, :], b_ub=[-310.0], bounds=[(0, None)] * 3, method="highs")
    m, rhs = _cuts.mir_rows(rows, np.array([310.0]), np.ones(3, bool), _cuts.mir_divisors(sizes))
    a_ub = np.vstack([-sizes[None, :], -m.toarray()])
    cut = linprog(cost, A_ub=a_ub, b_ub=np.r_[-310.0, -rhs], bounds=[(0, None)] * 3, method="highs")
    best = min(cost @ np.array(z) for z in itertools.product(range(6), repeat=3) if sizes @ np.array(z) >= 310)
    assert base.fun < cut.fun <= best * (1 + 1e-9)
    assert (best - base.fun) / best > 0.05  # the plain LP is 6 % short of the cheapest plan
    assert cut.fun == pytest.approx(best, rel=1e-6)  # here the rounding rows close all of it


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_mir_rows_are_mir_row_applied_row_by_row(seed: int) -> None:
    """The vectorised builder gives exactly the one-row formula's cuts, row by row in divisor order."""
    rng = np.random.default_rng(seed)
    dense = rng.choice([0.0, 0.0, 0.0, -1.0, 1.0, 30.0, 60.0, 87.0, 100.0, 150.0], size=(12, 8))
    rhs = rng.integers(-50, 700, 12).astype(float)
    integer = rng.random(8) > 0.15
    divisors = _cuts.mir_divisors([30, 60, 100, 150])
    m, got_rhs = _cuts.mir_rows(sparse.csr_array(dense), rhs, integer, divisors)
    want, want_rhs = [], []
    for r in range(dense.shape[0]):
        cols = np.flatnonzero(dense[r])
        if rhs[r] <= 0 or not cols.size or not integer[cols].all():
            continue
        seen = set()
        for d in divisors:
            cut = _cuts.mir_row(dense[r, cols], rhs[r], float(d))
            if cut is None or (key := tuple(np.round(cut[0] / cut[1], 9))) in seen:
                continue
            seen.add(key)
            row = np.zeros(dense.shape[1])
            row[cols] = cut[0]
            want.append(row)
            want_rhs.append(cut[1])
    assert got_rhs.tolist() == want_rhs
    assert np.array_equal(m.toarray(), np.array(want).reshape(len(want), dense.shape[1]))
