"""The solver adapter: statuses, bounds, offsets, warm starts, errors — on HiGHS and CBC alike."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from scipy import sparse

from siting import solve as S
from siting._errors import SolverError
from siting.solve import MilpProblem, SolveResult, SolverOptions, solve_milp

SOLVERS = ["highs", "cbc"]


def knapsack(sense: str = "max", offset: float = 0.0) -> MilpProblem:
    """max 5a + 4b + 3c  s.t.  2a + 3b + c <= 5,  4a + b + 2c <= 11,  3a + 4b + 2c <= 8; a,b,c >= 0 int.

    Optimum 13 at (2, 0, 1) (Chvátal's textbook example).
    """
    A = sparse.csr_array(np.array([[2.0, 3, 1], [4, 1, 2], [3, 4, 2]]))
    c = np.array([5.0, 4, 3])
    return MilpProblem(c=c if sense == "max" else -c, A=A, row_lb=np.full(3, -np.inf),
                       row_ub=np.array([5.0, 11, 8]), col_lb=np.zeros(3), col_ub=np.full(3, np.inf),
                       integrality=np.ones(3, bool), sense=sense, offset=offset)  # type: ignore[arg-type]


def hard_cover(seed: int = 1, n: int = 400, m: int = 150) -> MilpProblem:
    """A random weighted set cover: HiGHS proves it in ~2 s, a few ms cannot."""
    A = sparse.random(n, m, density=0.04, random_state=seed + 1, format="csr")
    A.data[:] = 1.0
    A = sparse.csr_array(A)
    A = A[np.flatnonzero(np.diff(A.indptr) > 0)]
    n = A.shape[0]
    cost = np.random.default_rng(1).integers(1, 10, m).astype(float)
    return MilpProblem(c=cost, A=A, row_lb=np.ones(n), row_ub=np.full(n, np.inf),
                       col_lb=np.zeros(m), col_ub=np.ones(m), integrality=np.ones(m, bool))


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(("sense", "offset", "expected"), [("max", 0.0, 13.0), ("max", 2.5, 15.5),
                                                           ("min", 1.0, -12.0)])
def test_known_optimum_with_offset(solver, sense, offset, expected):
    res = solve_milp(knapsack(sense, offset), SolverOptions(name=solver))
    assert res.status == "optimal"
    assert res.objective == pytest.approx(expected)
    assert res.bound == pytest.approx(expected)
    assert res.gap == pytest.approx(0.0)
    assert np.allclose(res.x, [2, 0, 1])
    assert res.solver == solver


@pytest.mark.parametrize("solver", SOLVERS)
def test_equality_and_ranged_rows(solver):
    # min x + y  s.t.  x + y == 3 (equality), 1 <= x - y <= 1 (range) -> x = 2, y = 1
    A = sparse.csr_array(np.array([[1.0, 1], [1, -1]]))
    p = MilpProblem(c=np.ones(2), A=A, row_lb=np.array([3.0, 1]), row_ub=np.array([3.0, 1]),
                    col_lb=np.zeros(2), col_ub=np.full(2, 10.0), integrality=np.zeros(2, bool))
    res = solve_milp(p, SolverOptions(name=solver))
    assert res.status == "optimal"
    assert np.allclose(res.x, [2, 1])


@pytest.mark.parametrize("solver", SOLVERS)
def test_infeasible_status(solver):
    # x integer, 0.2 <= x <= 0.8 has no integer point
    p = MilpProblem(c=np.ones(1), A=sparse.csr_array(np.ones((1, 1))), row_lb=np.array([0.2]),
                    row_ub=np.array([0.8]), col_lb=np.zeros(1), col_ub=np.ones(1), integrality=np.ones(1, bool))
    res = solve_milp(p, SolverOptions(name=solver))
    assert res.status == "infeasible"
    assert res.x is None


@pytest.mark.parametrize("solver", SOLVERS)
def test_time_limit_never_reports_optimal(solver):
    p = hard_cover()
    full = solve_milp(p, SolverOptions(name="highs", time_limit_s=60))
    res = solve_milp(p, SolverOptions(name=solver, time_limit_s=0.02))
    assert res.status in ("time_limit", "no_solution")
    if res.status == "time_limit":
        assert res.x is not None
        assert res.objective >= full.objective - 1e-9
        assert (p.A @ res.x >= 1 - 1e-9).all()
        if res.bound is not None:
            assert res.bound <= full.objective + 1e-9
            assert res.gap == pytest.approx((res.objective - res.bound) / res.objective)
    else:
        assert res.x is None and res.objective is None


@pytest.mark.parametrize("solver", SOLVERS)
def test_warm_start_is_an_incumbent_under_a_time_limit(solver):
    p = hard_cover(seed=3)
    warm = np.ones(p.A.shape[1])  # opening everything is feasible
    res = solve_milp(p, SolverOptions(name=solver, time_limit_s=0.02), warm_start=warm)
    assert res.status in ("time_limit", "optimal")
    assert res.objective is not None and res.objective <= p.c @ warm


@pytest.mark.parametrize("solver", SOLVERS)
def test_max_with_warm_start_is_not_taken_as_optimal(solver):
    # CBC 2.10 keeps a MIP start of a -max model as "optimal"; the adapter must not.
    res = solve_milp(knapsack("max"), SolverOptions(name=solver), warm_start=np.zeros(3))
    assert res.status == "optimal"
    assert res.objective == pytest.approx(13.0)


def test_highs_and_cbc_agree_on_random_covers():
    for seed in range(3):
        p = hard_cover(seed=seed, n=120, m=40)
        a = solve_milp(p, SolverOptions(name="highs"))
        b = solve_milp(p, SolverOptions(name="cbc"))
        assert a.status == b.status == "optimal"
        assert a.objective == pytest.approx(b.objective)


def test_bad_shapes_and_names_raise_solver_error():
    p = knapsack()
    with pytest.raises(SolverError, match=r"MilpProblem\.c has shape"):
        solve_milp(MilpProblem(**{**p.__dict__, "c": np.ones(2)}))
    with pytest.raises(SolverError, match="unknown; use 'highs' or 'cbc'"):
        solve_milp(p, SolverOptions(name="gurobi"))  # type: ignore[arg-type]
    with pytest.raises(SolverError, match="warm_start has shape"):
        solve_milp(p, warm_start=np.ones(5))


def test_unbounded_raises_solver_error():
    p = MilpProblem(c=np.ones(1), A=sparse.csr_array((0, 1)), row_lb=np.zeros(0), row_ub=np.zeros(0),
                    col_lb=np.zeros(1), col_ub=np.full(1, np.inf), integrality=np.ones(1, bool), sense="max")
    with pytest.raises(SolverError, match="unbounded"):
        solve_milp(p)


def test_highs_warm_start_never_returns_x_and_objective_that_disagree() -> None:
    """Regression: HiGHS 1.16 returned the MIP start's x (cost 3) with objective 2 on this instance."""
    A = np.array([[0, 0, 0, 0, 0, 1, 1], [1, 0, 0, 0, 1, 0, 1], [1, 0, 0, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0, 1],
                  [0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 0], [1, 0, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1, 0]],
                 dtype=float)
    c = np.array([1, 1, 1, 2, 2, 0, 1.0])
    p = MilpProblem(c=c, A=sparse.csr_array(A), row_lb=np.ones(8), row_ub=np.full(8, np.inf),
                    col_lb=np.zeros(7), col_ub=np.ones(7), integrality=np.ones(7, dtype=bool))
    res = solve_milp(p, SolverOptions(name="highs"), warm_start=np.array([1, 1, 0, 0, 0, 1, 1.0]))
    assert res.status == "optimal"
    assert res.objective == pytest.approx(2.0)
    assert float(c @ res.x) == pytest.approx(2.0)
    assert (A @ res.x >= 1 - 1e-9).all()


def _defect_instance() -> tuple[MilpProblem, np.ndarray]:
    """The regression instance above and the start HiGHS 1.16 misreports (true cost 3, said 2)."""
    A = np.array([[0, 0, 0, 0, 0, 1, 1], [1, 0, 0, 0, 1, 0, 1], [1, 0, 0, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0, 1],
                  [0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 0], [1, 0, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1, 0]],
                 dtype=float)
    p = MilpProblem(c=np.array([1, 1, 1, 2, 2, 0, 1.0]), A=sparse.csr_array(A), row_lb=np.ones(8),
                    row_ub=np.full(8, np.inf), col_lb=np.zeros(7), col_ub=np.ones(7),
                    integrality=np.ones(7, dtype=bool))
    return p, np.array([1, 1, 0, 0, 0, 1, 1.0])


def _misreported(p: MilpProblem, x: np.ndarray, status: str, said: float, bound: float) -> SolveResult:
    return SolveResult(status=status, x=x, objective=said, bound=bound, gap=0.0, seconds=0.0,  # type: ignore[arg-type]
                       solver="highs")


def test_misreported_time_limit_result_is_kept_at_its_true_value_without_a_resolve():
    p, start = _defect_instance()
    said = _misreported(p, start, "time_limit", 2.0, 1.5)
    res = S._after_inconsistent_start(p, SolverOptions(time_limit_s=100.0), said, time.perf_counter())
    assert res.status == "time_limit" and res.objective == pytest.approx(3.0)
    assert res.gap == pytest.approx(0.5) and res.meta.get("objective_recomputed")
    assert "warm_start_discarded" not in res.meta  # no second solve


def test_misreported_optimum_is_resolved_in_the_time_left_only():
    p, start = _defect_instance()
    claimed = _misreported(p, start, "optimal", 2.0, 2.0)
    res = S._after_inconsistent_start(p, SolverOptions(time_limit_s=60.0), claimed, time.perf_counter())
    assert res.status == "optimal" and res.objective == pytest.approx(2.0)  # re-solved: the true optimum
    assert res.meta.get("warm_start_discarded")
    # the limit already spent: no second solve, the start at its true value, never "optimal"
    late = S._after_inconsistent_start(p, SolverOptions(time_limit_s=60.0), claimed, time.perf_counter() - 61.0)
    assert late.status == "time_limit" and late.objective == pytest.approx(3.0)
    assert late.bound == pytest.approx(2.0) and "warm_start_discarded" not in late.meta


def test_misreported_infeasible_x_without_time_left_is_no_solution():
    p, _ = _defect_instance()
    bad = _misreported(p, np.zeros(7), "optimal", 2.0, 2.0)
    res = S._after_inconsistent_start(p, SolverOptions(time_limit_s=1.0), bad, time.perf_counter() - 5.0)
    assert res.status == "no_solution" and res.x is None and res.objective is None


@pytest.mark.parametrize("sense", ["min", "max"])
def test_better_keeps_the_better_plan_and_the_tighter_bound(sense):
    p, _ = _defect_instance()
    p = replace(p, sense=sense)
    good, poor = (3.0, 5.0) if sense == "min" else (5.0, 3.0)
    a = SolveResult(status="time_limit", x=np.ones(7), objective=good, bound=1.0 if sense == "min" else 9.0,
                    gap=None, seconds=0.0, solver="highs")
    b = SolveResult(status="time_limit", x=np.ones(7), objective=poor, bound=2.0 if sense == "min" else 8.0,
                    gap=None, seconds=0.0, solver="highs")
    best = S._better(p, a, b)
    assert best.objective == good
    assert best.bound == (2.0 if sense == "min" else 8.0)
    assert S._better(p, None, b) is b
