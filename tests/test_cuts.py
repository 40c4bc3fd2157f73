"""Rows implied by the ZJ-BEDS rows (siting._cuts): MIR and count hull rows are valid for every
integer point, and they cut the LP."""

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


# ----------------------------------------------------------------------------- count hull rows


def test_least_sums_and_their_lower_hull() -> None:
    """Modules 60/100/150 for 240 beds: 2 sites hold 250, 3 hold 260, 4 hold 240 (not convex in n)."""
    least = _cuts._least_sums((60.0, 100.0, 150.0), 5, 240.0)
    assert least.tolist() == [np.inf, np.inf, 250.0, 260.0, 240.0, 300.0]
    ns = np.arange(2, 6)
    assert [int(ns[i]) for i in _cuts._lower_hull(ns.astype(float), least[2:])] == [2, 4, 5]


def test_count_hull_rows_of_one_unit() -> None:
    """240 beds short, four sites offering 60/100/150 each: n >= 2 and sum (a + 5) y >= 260 (edge 2-4 of the hull)."""
    rows = sparse.csr_array(np.array([[60.0, 100.0, 150.0] * 4]))
    group = np.repeat(np.arange(4), 3)
    m, rhs = _cuts.count_hull_rows(rows, np.array([240.0]), group, np.zeros(12), np.ones(12))
    dense = m.toarray()
    assert rhs.tolist() == [2.0, 260.0]
    assert dense[0].tolist() == [1.0] * 12
    assert dense[1].tolist() == [65.0, 105.0, 155.0] * 4
    lp_point = np.zeros(12)
    lp_point[[0, 3]] = 1.0  # two 60-bed modules ...
    lp_point[8] = 0.8  # ... and 0.8 of a 150-bed module: 240 beds on 2.8 sites
    assert rows.toarray()[0] @ lp_point == pytest.approx(240.0) and dense[0] @ lp_point >= 2.0
    assert dense[1] @ lp_point < 260  # no plan has it: cut off


@settings(max_examples=200, deadline=None)
@given(n_sites=st.integers(1, 4), sizes=st.sets(st.sampled_from([30, 60, 100, 150]), min_size=1, max_size=3),
       need=st.integers(1, 650), exp_ub=st.integers(0, 2), out_ub=st.integers(0, 3), items=st.booleans())
def test_count_hull_rows_hold_for_every_plan_of_the_unit(n_sites: int, sizes: set[int], need: int,
                                                          exp_ub: int, out_ub: int, items: bool) -> None:
    """Brute force: every choice of at most one module per site, expansion modules (30 beds,
    0..exp_ub) and beds sent out (-1 each, 0..out_ub) that meets the row meets every hull row —
    with the expansion modules in the rows (integer columns) or taken at their bound."""
    size_list = sorted(float(v) for v in sizes)
    k = len(size_list)
    a = np.r_[np.tile(size_list, n_sites), 30.0, -1.0]
    group = np.r_[np.repeat(np.arange(n_sites), k), -1, -1]
    ub = np.r_[np.ones(n_sites * k), exp_ub, out_ub]
    m, rhs = _cuts.count_hull_rows(sparse.csr_array(a[None, :]), np.array([float(need)]), group,
                                   np.zeros(a.size), ub, np.ones(a.size, dtype=bool) if items else None)
    dense = m.toarray()
    assert items or not dense[:, -2:].any()  # without items no other column is in a row
    choices = [range(k + 1)] * n_sites  # 0: site closed, i: module i-1
    for pick in itertools.product(*choices):
        for e, o in itertools.product(range(exp_ub + 1), range(out_ub + 1)):
            z = np.zeros(a.size)
            for s, c in enumerate(pick):
                if c:
                    z[s * k + c - 1] = 1.0
            z[-2], z[-1] = e, o
            if a @ z >= need:
                assert np.all(dense @ z >= rhs - 1e-9), (pick, e, o, dense, rhs)


def test_count_hull_rows_take_expansion_modules_into_the_row() -> None:
    """230 beds short, 3 sites, one institution may add up to two 30-bed modules: B(2) = 230
    (200 + 30), B(3) = 240 (180 + 60), so sum (a - 10) y + 30 m >= 210; taken at their bound
    instead, the expansions leave 170 beds and the row is sum (a + 20) y >= 240."""
    a = np.r_[np.tile([60.0, 100.0, 150.0], 3), 30.0]
    group = np.r_[np.repeat(np.arange(3), 3), -1]
    ub = np.r_[np.ones(9), 2.0]
    assert _cuts._least_sums((60.0, 100.0, 150.0), 3, 230.0, np.array([0.0, 30.0, 60.0])).tolist() == [
        np.inf, np.inf, 230.0, 240.0]
    m, rhs = _cuts.count_hull_rows(sparse.csr_array(a[None, :]), np.array([230.0]), group, np.zeros(10), ub,
                                   np.ones(10, dtype=bool))
    assert rhs.tolist() == [2.0, 210.0]
    assert m.toarray()[1].tolist() == [50.0, 90.0, 140.0] * 3 + [30.0]
    m, rhs = _cuts.count_hull_rows(sparse.csr_array(a[None, :]), np.array([230.0]), group, np.zeros(10), ub)
    assert rhs.tolist() == [2.0, 240.0]
    assert m.toarray()[1].tolist() == [80.0, 120.0, 170.0] * 3 + [0.0]


def test_count_hull_rows_skip_unbounded_help_and_met_rows() -> None:
    """A row with an unbounded helpful column (a transfer in) or already met gives nothing."""
    rows = sparse.csr_array(np.array([[60.0, 150.0, 1.0], [60.0, 150.0, 0.0]]))
    group = np.array([0, 0, -1])
    m, rhs = _cuts.count_hull_rows(rows, np.array([200.0, -5.0]), group, np.zeros(3), np.array([1.0, 1.0, np.inf]))
    assert m.shape == (0, 3) and rhs.size == 0


def test_count_hull_rows_lift_the_lp_beyond_the_mir_rows() -> None:
    """Three sites at least (as coverage might ask), 230 beds, 3M per site + 120k per bed: every plan
    holds >= 260 beds on 3 sites or 240 on 4; the LP with the MIR rows gets by with less, the hull rows lift it."""
    sizes = np.array([60.0, 100.0, 150.0])
    n_sites = 4
    a = np.tile(sizes, n_sites)
    cost = 3e6 + 120_000 * a
    group = np.repeat(np.arange(n_sites), 3)
    beds = sparse.csr_array(a[None, :])
    site_rows = np.kron(np.eye(n_sites), np.ones(3))  # one module per site
    mir, mir_rhs = _cuts.mir_rows(beds, np.array([230.0]), np.ones(a.size, bool), _cuts.mir_divisors(sizes))
    hull, hull_rhs = _cuts.count_hull_rows(beds, np.array([230.0]), group, np.zeros(a.size), np.ones(a.size))

    def lp(extra: list[tuple[np.ndarray, np.ndarray]]) -> float:
        a_ub = np.vstack([-a[None, :], -np.ones((1, a.size)), site_rows, *(-m for m, _ in extra)])
        b_ub = np.concatenate([[-230.0, -3.0], np.ones(n_sites), *(-r for _, r in extra)])
        return float(linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=[(0, 1)] * a.size, method="highs").fun)

    best = min(cost @ z for z in (np.array(p, dtype=float) for p in itertools.product((0, 1), repeat=a.size))
               if a @ z >= 230 and z.sum() >= 3 and np.all(site_rows @ z <= 1))
    with_mir = lp([(mir.toarray(), mir_rhs)])
    with_both = lp([(mir.toarray(), mir_rhs), (hull.toarray(), hull_rhs)])
    assert with_mir < with_both <= best * (1 + 1e-9)
    assert with_both - with_mir > 0.5e6  # measured: 37.4M -> 38.4M (best plan 40.2M)
