"""Covering models (LSCP / MCLP) and their reductions: brute force, both solvers, spopt, planted optima."""

from __future__ import annotations

import itertools
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from siting import _reduce as R
from siting import optimize
from siting._errors import DataError, InfeasibleError, SitingError
from siting.optimize import Levers, read_scp, solve_max_coverage, solve_set_cover
from siting.solve import MAX_SEED

FIXTURES = Path(__file__).parent / "fixtures"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# brute force references


def brute_set_cover(D: np.ndarray, cost: np.ndarray, fixed: np.ndarray) -> float:
    need = D.any(axis=1)
    best = np.inf
    for mask in range(1 << D.shape[1]):
        sel = np.array([(mask >> j) & 1 for j in range(D.shape[1])], dtype=bool)
        if sel[fixed].all() and (D[:, sel].any(axis=1) | ~need).all():
            best = min(best, float(cost[sel].sum()))
    return best


def brute_max_cover(D, w, cost, fixed, n_sites=None, budget=None) -> float:
    best = -1.0
    m = D.shape[1]
    for mask in range(1 << m):
        sel = np.array([(mask >> j) & 1 for j in range(m)], dtype=bool)
        if not sel[fixed].all():
            continue
        if n_sites is not None and sel.sum() > n_sites:
            continue
        if budget is not None and cost[sel].sum() > budget + 1e-9:
            continue
        best = max(best, float(w[D[:, sel].any(axis=1)].sum()))
    return best


@st.composite
def instances(draw, max_cols: int = 10):
    n = draw(st.integers(1, 18))
    m = draw(st.integers(1, max_cols))
    bits = draw(st.lists(st.booleans(), min_size=n * m, max_size=n * m))
    D = np.array(bits, dtype=bool).reshape(n, m)
    cost = np.array(draw(st.lists(st.integers(0, 6), min_size=m, max_size=m)), dtype=float)
    w = np.array(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)), dtype=float)
    fixed = np.array(sorted(draw(st.sets(st.integers(0, m - 1), max_size=2))), dtype=np.int64)
    return D, cost, w, fixed


# ---------------------------------------------------------------------------------------------
# set cover


@SETTINGS
@given(instances())
def test_set_cover_matches_brute_force(inst):
    D, cost, _, fixed = inst
    res = solve_set_cover(sparse.csr_array(D), cost, fixed_open=fixed)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(brute_set_cover(D, cost, fixed))
    sel = np.zeros(D.shape[1], bool)
    sel[res.selected] = True
    assert sel[fixed].all()
    assert (D[:, sel].any(axis=1) | ~D.any(axis=1)).all()
    assert res.objective == pytest.approx(cost[sel].sum())
    assert np.array_equal(res.uncoverable, np.flatnonzero(~D.any(axis=1)))


@SETTINGS
@given(instances(max_cols=9))
def test_set_cover_highs_and_cbc_agree(inst):
    D, cost, _, fixed = inst
    a = solve_set_cover(sparse.csr_array(D), cost, fixed_open=fixed, solver="highs")
    b = solve_set_cover(sparse.csr_array(D), cost, fixed_open=fixed, solver="cbc")
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective)


def test_set_cover_unit_cost_counts_sites():
    # rows 0-1 need column 0 or 1; row 2 only column 2: optimum = 2 sites
    D = sparse.csr_array(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]]))
    res = solve_set_cover(D)
    assert res.objective == 2
    assert res.selected.tolist() == [0, 2]
    assert res.uncoverable.tolist() == [3]


ONE_LEVER_OFF = [Levers(**{f: False}) for f in Levers.__dataclass_fields__]
NO_LEVERS = Levers(**{f: False for f in Levers.__dataclass_fields__})


@SETTINGS
@given(instances(max_cols=9), st.sampled_from([*ONE_LEVER_OFF, NO_LEVERS]))
def test_set_cover_levers_off_keep_the_optimum(inst, levers):
    """Each lever (and all of them off) changes only the time, never the optimum (brute force)."""
    D, cost, _, fixed = inst
    res = solve_set_cover(sparse.csr_array(D), cost, fixed_open=fixed, levers=levers)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(brute_set_cover(D, cost, fixed))


def test_set_cover_levers_off_are_not_applied():
    """Switched-off reductions are not counted; without components the core is one MILP."""
    rng = np.random.default_rng(3)
    D = sparse.csr_array(rng.random((60, 25)) < 0.12)
    on = solve_set_cover(D)
    assert on.stats["identical_rows"] + on.stats["dominated_rows"] > 0
    off = solve_set_cover(D, levers=Levers(identical_rows=False, dominated_rows=False, dominated_cols=False,
                                           forced_cols=False, components=False))
    assert off.stats["identical_rows"] == off.stats["dominated_rows"] == 0
    assert off.stats["dominated_cols"] == off.stats["forced_cols"] == 0
    assert off.stats["milps"] == 1
    assert off.stats["rows_reduced"] == off.stats["rows_after_fixed"] > on.stats["rows_reduced"]
    assert off.objective == on.objective


# ---------------------------------------------------------------------------------------------
# max coverage


def start_always(on: bool):
    """Tiny cores are below MCLP_START_MIN_COLS: lower it so the start / window-search path is tested too."""
    return mock.patch.object(optimize, "MCLP_START_MIN_COLS", 0 if on else optimize.MCLP_START_MIN_COLS)


@SETTINGS
@given(instances(), st.integers(0, 4), st.booleans())
def test_max_coverage_n_sites_matches_brute_force(inst, p, with_start):
    D, cost, w, fixed = inst
    p = max(p, fixed.size)
    with start_always(with_start):
        res = solve_max_coverage(sparse.csr_array(D), w, n_sites=p, fixed_open=fixed)
    assert res.stats.get("start_passed", True) is with_start or res.stats.get("cols_reduced") == 0
    assert res.status == "optimal"
    assert res.objective == pytest.approx(brute_max_cover(D, w, cost, fixed, n_sites=p))
    assert res.selected.size <= p
    assert np.isin(fixed, res.selected).all()


@SETTINGS
@given(instances(), st.integers(0, 12), st.booleans())
def test_max_coverage_budget_matches_brute_force(inst, budget, with_start):
    D, cost, w, fixed = inst
    budget = max(budget, cost[fixed].sum())
    for solver in ("highs", "cbc"):
        with start_always(with_start):
            res = solve_max_coverage(sparse.csr_array(D), w, budget=budget, cost=cost, fixed_open=fixed,
                                     solver=solver)
        assert res.status == "optimal"
        assert res.objective == pytest.approx(brute_max_cover(D, w, cost, fixed, budget=budget))
        assert cost[res.selected].sum() <= budget + 1e-9


@SETTINGS
@given(instances(max_cols=9), st.integers(1, 3))
def test_max_coverage_highs_and_cbc_agree(inst, p):
    D, _, w, _ = inst
    a = solve_max_coverage(sparse.csr_array(D), w, n_sites=p, solver="highs")
    b = solve_max_coverage(sparse.csr_array(D), w, n_sites=p, solver="cbc")
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective)


@SETTINGS
@given(instances(max_cols=9), st.integers(1, 4), st.sampled_from([*ONE_LEVER_OFF, NO_LEVERS]))
def test_max_coverage_levers_off_keep_the_optimum(inst, p, levers):
    D, cost, w, fixed = inst
    p = max(p, fixed.size)
    with start_always(True):
        res = solve_max_coverage(sparse.csr_array(D), w, n_sites=p, fixed_open=fixed, levers=levers, time_limit=30)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(brute_max_cover(D, w, cost, fixed, n_sites=p))


@SETTINGS
@given(instances(max_cols=9), st.integers(1, 4), st.integers(0, MAX_SEED), st.sampled_from(["highs", "cbc"]))
def test_any_solver_seed_keeps_the_optimum(inst, p, seed, solver):
    """The seed changes the solver's search path (the benchmark varies it), never the optimum."""
    D, cost, w, fixed = inst
    p = max(p, fixed.size)
    res = solve_max_coverage(sparse.csr_array(D), w, n_sites=p, fixed_open=fixed, solver=solver, seed=seed)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(brute_max_cover(D, w, cost, fixed, n_sites=p))
    lscp = solve_set_cover(sparse.csr_array(D), cost, fixed_open=fixed, solver=solver, seed=seed)
    assert lscp.objective == pytest.approx(brute_set_cover(D, cost, fixed))


def test_scenario_seed_bound_is_the_solvers() -> None:
    """A scenario's solver.seed is bounded as the solver helper's (scenario.py writes the number out)."""
    from siting.scenario import SolverSpec

    le = [m.le for m in SolverSpec.model_fields["seed"].metadata if hasattr(m, "le")]
    assert le == [MAX_SEED]


def test_seed_reaches_the_main_milps(monkeypatch):
    """Every main MILP of both solvers gets the caller's seed (the real solver runs; its options are recorded)."""
    seen: list[int] = []
    real = optimize.solve_milp

    def recording(problem, options, **kw):
        seen.append(options.seed)
        return real(problem, options, **kw)

    monkeypatch.setattr(optimize, "solve_milp", recording)
    monkeypatch.setattr(optimize, "MCLP_START_MIN_COLS", 0)
    rng = np.random.default_rng(11)
    D = sparse.csr_array(rng.random((120, 30)) < 0.08)
    solve_set_cover(D, seed=7, levers=Levers(components=False))
    n_cover = len(seen)
    solve_max_coverage(D, rng.integers(1, 50, 120).astype(float), n_sites=5, seed=7, time_limit=30)
    assert n_cover >= 1 and len(seen) > n_cover and set(seen) == {7}


def test_max_coverage_levers_off_are_not_applied(monkeypatch):
    monkeypatch.setattr(optimize, "MCLP_START_MIN_COLS", 0)
    rng = np.random.default_rng(5)
    D = sparse.csr_array(rng.random((80, 20)) < 0.1)
    D = sparse.csr_array(sparse.vstack([D, D[:10]]))  # ten identical rows for sure
    w = rng.integers(1, 50, D.shape[0]).astype(float)
    on = solve_max_coverage(D, w, n_sites=4)
    assert on.stats["identical_rows"] >= 10 and on.stats["singleton_rows_folded"] > 0
    off = solve_max_coverage(D, w, n_sites=4, levers=Levers(identical_rows=False, dominated_cols=False,
                                                            singleton_rows=False, window_search=False))
    assert off.stats["identical_rows"] == off.stats["dominated_cols"] == off.stats["singleton_rows_folded"] == 0
    assert "t_window_search" in on.stats and "t_window_search" not in off.stats
    assert off.objective == pytest.approx(on.objective)


def test_max_coverage_fixed_open_over_limit_is_infeasible():
    D = sparse.csr_array(np.eye(3))
    with pytest.raises(InfeasibleError, match="fixed_open holds 2 sites but n_sites=1"):
        solve_max_coverage(D, np.ones(3), n_sites=1, fixed_open=[0, 1])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"cost": [1, 2]}, "`cost` has shape"),
    ({"cost": [1, -1, 1]}, "`cost` must be >= 0"),
    ({"fixed_open": [5]}, "outside 0..2"),
    ({"solver": "gurobi"}, "unknown"),
    ({"time_limit": 0}, "time_limit must be > 0"),
    ({"threads": 0}, "threads must be a whole number >= 1"),
    ({"seed": -1}, "seed must be a whole number in 0"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"seed": 2**31 - 1}, "seed must be a whole number in 0..2147483646"),
])
def test_bad_input_raises_siting_error(kwargs, match):
    with pytest.raises(SitingError, match=match):
        solve_set_cover(sparse.csr_array(np.eye(3)), **kwargs)


def test_dense_input_is_refused():
    with pytest.raises(DataError, match=r"scipy\.sparse"):
        solve_set_cover(np.eye(3))


# ---------------------------------------------------------------------------------------------
# reductions against the unreduced problem


def random_cover(seed: int, n: int = 60, m: int = 14, density: float = 0.2) -> sparse.csr_array:
    A = sparse.random(n, m, density=density, random_state=seed, format="csr")
    A = R.binary_csr(A)
    return A[np.flatnonzero(R.row_degree(A) > 0)]


@pytest.mark.parametrize("seed", range(6))
def test_reduce_set_cover_keeps_optimum(seed):
    A = random_cover(seed)
    cost = np.random.default_rng(seed).integers(1, 5, A.shape[1]).astype(float)
    red = R.reduce_set_cover(A, cost)
    D = A.toarray() > 0
    full = brute_set_cover(D, cost, np.zeros(0, np.int64))
    core = brute_set_cover(red.A.toarray() > 0, cost[red.cols], np.zeros(0, np.int64)) if red.A.shape[1] else 0
    assert full == pytest.approx(cost[red.forced].sum() + core)
    assert not np.isin(red.forced, red.cols).any()


def test_identical_rows_merged_with_summed_weight():
    A = R.binary_csr(sparse.csr_array(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1], [1, 1, 1]])))
    A2, kept, w = R.merge_identical_rows(A, np.array([1.0, 2.0, 3.0, 4.0]))
    assert kept.tolist() == [0, 1, 3]
    assert w.tolist() == [4.0, 2.0, 4.0]
    assert A2.shape == (3, 3)


def test_identical_row_groups_detects_every_pair_exactly():
    A = random_cover(3, n=300, m=6, density=0.3)
    gid = R.identical_row_groups(A)
    D = A.toarray()
    for i, j in itertools.combinations(range(0, A.shape[0], 7), 2):
        assert (gid[i] == gid[j]) == bool((D[i] == D[j]).all())


def test_dominated_rows_and_cols():
    # row 2 ⊇ row 0 → dominated; col 1 ⊆ col 0 at equal cost → dominated; identical cols 2,3 → keep 2
    A = R.binary_csr(sparse.csr_array(np.array([[1, 0, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0]])))
    assert R.dominated_rows(A).tolist() == [False, False, True]
    assert R.dominated_cols(A, np.ones(4)).tolist() == [False, True, False, True]
    # a cheaper subset column is not dominated
    assert R.dominated_cols(A, np.array([2.0, 1.0, 1.0, 1.0])).tolist() == [False, False, False, True]


def test_components_split_independent_blocks():
    A = R.binary_csr(sparse.block_diag([np.ones((2, 2)), np.ones((3, 1)), np.ones((1, 2))], format="csr"))
    k, rl, cl = R.components(A)
    assert k == 3
    assert rl.tolist() == [0, 0, 1, 1, 1, 2]
    assert cl.tolist() == [0, 0, 1, 2, 2]


@pytest.mark.parametrize("seed", range(4))
def test_greedy_cover_is_feasible_and_not_better_than_optimum(seed):
    A = random_cover(seed, n=80, m=12)
    cost = np.random.default_rng(seed).integers(1, 5, A.shape[1]).astype(float)
    g = R.greedy_cover(A, cost)
    assert (A.toarray()[:, g].any(axis=1)).all()
    assert cost[g].sum() >= solve_set_cover(A, cost).objective - 1e-9


def test_decomposed_solve_equals_monolithic_milp():
    """Many independent blocks: the per-component solve must equal one MILP over everything."""
    from siting.solve import MilpProblem, solve_milp

    rng = np.random.default_rng(7)
    blocks = [sparse.random(30, 12, density=0.25, random_state=int(s), format="csr") for s in rng.integers(0, 1e6, 25)]
    A = R.binary_csr(sparse.block_diag(blocks, format="csr"))
    A = A[np.flatnonzero(R.row_degree(A) > 0)]
    cost = rng.integers(1, 9, A.shape[1]).astype(float)
    n, m = A.shape
    mono = solve_milp(MilpProblem(c=cost, A=sparse.csr_array(A, dtype=float), row_lb=np.ones(n),
                                  row_ub=np.full(n, np.inf), col_lb=np.zeros(m), col_ub=np.ones(m),
                                  integrality=np.ones(m, bool)))
    res = solve_set_cover(A, cost)
    assert res.stats["components"] > 1
    assert res.objective == pytest.approx(mono.objective)


# ---------------------------------------------------------------------------------------------
# OR-Library format with planted optima


@pytest.mark.parametrize("name", ["planted_scp_a", "planted_scp_b"])
@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_planted_optimum_found(name, solver):
    cov, cost = read_scp(FIXTURES / f"{name}.txt")
    optimum = float((FIXTURES / f"{name}.opt").read_text())
    res = solve_set_cover(cov, cost, solver=solver)
    assert res.status == "optimal"
    assert res.objective == optimum


@pytest.mark.parametrize("name", ["planted_scp_a", "planted_scp_b"])
def test_planted_optimum_unreduced_milp(name):
    """Without our reductions: the plain MILP from the parsed file must reach the planted optimum."""
    from siting.solve import MilpProblem, SolverOptions, solve_milp

    cov, cost = read_scp(FIXTURES / f"{name}.txt")
    n, m = cov.shape
    prob = MilpProblem(c=cost, A=sparse.csr_array(cov, dtype=float), row_lb=np.ones(n),
                       row_ub=np.full(n, np.inf), col_lb=np.zeros(m), col_ub=np.ones(m),
                       integrality=np.ones(m, bool))
    for solver in ("highs", "cbc"):
        res = solve_milp(prob, SolverOptions(name=solver))
        assert res.status == "optimal"
        assert res.objective == pytest.approx(float((FIXTURES / f"{name}.opt").read_text()))


def test_read_scp_rejects_truncated_file(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("3 2\n1 1\n1 1\n2 1 2\n")
    with pytest.raises(DataError, match="truncated"):
        read_scp(p)


# ---------------------------------------------------------------------------------------------
# spopt cross-check (test/bench-only dependency)


def _spopt_instance(seed: int, n: int = 40, m: int = 10, radius: float = 3.0):
    rng = np.random.default_rng(seed)
    dem, fac = rng.uniform(0, 10, (n, 2)), rng.uniform(0, 10, (m, 2))
    dist = np.hypot(dem[:, None, 0] - fac[None, :, 0], dem[:, None, 1] - fac[None, :, 1])
    keep = (dist <= radius).any(axis=1)
    return dist[keep], rng.integers(1, 20, int(keep.sum())).astype(float), radius


@pytest.mark.parametrize("seed", range(3))
def test_matches_spopt(seed):
    spopt_locate = pytest.importorskip("spopt.locate")
    import pulp

    dist, w, radius = _spopt_instance(seed)
    cov = sparse.csr_array(dist <= radius)
    lscp = spopt_locate.LSCP.from_cost_matrix(dist, radius).solve(pulp.PULP_CBC_CMD(msg=False))
    assert solve_set_cover(cov).objective == pytest.approx(lscp.problem.objective.value())
    mclp = spopt_locate.MCLP.from_cost_matrix(dist, w, radius, p_facilities=3).solve(pulp.PULP_CBC_CMD(msg=False))
    open_ = np.array([bool(round(v.varValue)) for v in mclp.fac_vars])
    spopt_cov = float(w[(dist[:, open_] <= radius).any(axis=1)].sum())
    assert solve_max_coverage(cov, w, n_sites=3).objective == pytest.approx(spopt_cov)
