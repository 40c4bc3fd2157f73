"""The greedy MIP start (siting._warmstart): feasible, never better than the optimum, exact bed repair."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_model import (
    HYP,
    PRESET,
    RULES,
    Tiny,
    brute_force,
    line_instance,
    make_scenario,
    scipy_optimum,
    tiny_instances,
)

from siting import _warmstart, model
from siting.solve import SolverOptions


@HYP
@given(t=tiny_instances(), n_mod=st.integers(0, 2), guided=st.booleans(), seed=st.integers(0, 99))
def test_start_is_feasible_whenever_a_plan_exists_and_never_beats_the_optimum(t: Tiny, n_mod: int, guided: bool,
                                                                                 seed: int) -> None:
    sc = make_scenario(existing_facilities={"max_expansion_modules": n_mod})
    truth = brute_force(t, sc)
    problem, idx = model.build_problem(sc, RULES, *t.objects())
    guide = np.random.default_rng(seed).random(len(idx.col_x)) if guided else None  # any guide in [0, 1]
    x = _warmstart.greedy_start(problem, idx, guide)
    if truth is None:
        assert x is None
        return
    assert x is not None
    assert _warmstart.is_feasible(problem, x)
    assert problem.c @ x + problem.offset >= truth[0] - 1e-3


def test_start_on_the_line_instance_covers_and_meets_beds() -> None:
    t = line_instance()
    sc = make_scenario()
    problem, idx = model.build_problem(sc, RULES, *t.objects())
    x = _warmstart.greedy_start(problem, idx)
    assert x is not None and _warmstart.is_feasible(problem, x)
    assert x[idx.col_x].sum() >= 2  # the 2 km line needs at least two new 500 m sites besides x=0


def test_is_feasible_rejects_a_plan_that_opens_nothing() -> None:
    problem, _ = model.build_problem(make_scenario(), RULES, *line_instance().objects())
    assert not _warmstart.is_feasible(problem, np.zeros(problem.A.shape[1]))


def test_no_cover_start_for_max_coverage() -> None:
    sc = make_scenario(objective={"kind": "max_coverage", "budget": 5e6})
    problem, idx = model.build_problem(sc, RULES, *line_instance().objects())
    assert _warmstart.greedy_start(problem, idx) is None
    cost_problem, cost_idx = model.build_problem(make_scenario(), RULES, *line_instance().objects())
    assert _warmstart.coverage_start(cost_problem, cost_idx) is None  # and no coverage start for min_cost


def _max_cover(limit: str, value: float, beds_rule: str):
    objective = {"kind": "max_coverage", limit: value, "beds_rule": beds_rule}
    return make_scenario(objective=objective)


@HYP
@given(t=tiny_instances(), budget=st.sampled_from([1e6, 3e6, 6e6, 2e7]), n_sites=st.integers(1, 3),
       by_count=st.booleans(), beds_rule=st.sampled_from(["objective", "constraint"]))
def test_coverage_start_is_feasible_and_the_own_bound_holds(t: Tiny, budget: float, n_sites: int, by_count: bool,
                                                            beds_rule: str) -> None:
    sc = _max_cover("n_sites" if by_count else "budget", n_sites if by_count else budget, beds_rule)
    problem, idx = model.build_problem(sc, RULES, *t.objects())
    truth = scipy_optimum(problem)  # scipy's own HiGHS on the same model: most elderly covered
    if beds_rule == "constraint":  # then brute force reads the same rules
        bf = brute_force(t, sc)
        assert (truth is None) == (bf is None) and (bf is None or abs(bf[0] - truth) < 1e-6)
    x = _warmstart.coverage_start(problem, idx)
    if truth is None:
        assert x is None
    if x is None:  # also when the plan restricted to the greedy's sites cannot meet the other rules
        return
    assert _warmstart.is_feasible(problem, x)
    assert problem.c @ x + problem.offset <= truth + 1e-6  # a plan, never better than the optimum
    own = model._own_coverage_bound(problem, idx, x, SolverOptions(time_limit_s=10.0), 10.0)
    assert own is not None
    assert own[0] >= truth - 1e-6  # a bound: never below the optimum


def test_coverage_start_on_the_line_instance_opens_within_the_budget() -> None:
    t = line_instance()
    for limit, value in (("budget", 5e6), ("n_sites", 1)):
        sc = _max_cover(limit, value, "objective")
        problem, idx = model.build_problem(sc, RULES, *t.objects())
        x = _warmstart.coverage_start(problem, idx)
        assert x is not None and _warmstart.is_feasible(problem, x)
        assert x[idx.col_x].sum() >= 1  # the budget buys a site, and the greedy opens it
        assert problem.c @ x + problem.offset <= scipy_optimum(problem) + 1e-6


def test_no_own_bound_when_closing_earns_money() -> None:
    t = line_instance()
    objective = {"kind": "max_coverage", "budget": 5e6, "beds_rule": "objective"}
    sc = make_scenario(objective=objective, existing_facilities={"allow_close": True}, costs={"close": 100_000})
    problem, idx = model.build_problem(sc, RULES, *t.objects())
    assert np.any(idx.col_o >= 0)  # an institution may close: the relaxation would not be a bound
    x = _warmstart.coverage_start(problem, idx)
    assert x is not None  # so the guard, not a missing start, is what says no
    assert model._own_coverage_bound(problem, idx, x, SolverOptions(time_limit_s=10.0), 10.0) is None
    keep = make_scenario(objective=objective)
    problem, idx = model.build_problem(keep, RULES, *t.objects())
    x = _warmstart.coverage_start(problem, idx)
    assert model._own_coverage_bound(problem, idx, x, SolverOptions(time_limit_s=10.0), 10.0) is not None


def _stopped_budget_plan(monkeypatch, alter):
    """plan() on the line instance under a budget, its primary stage cut short: ``alter(small, first, x)``
    returns the (result, x) the solver is made to hand back. Returns (plan, full problem, index)."""
    t = line_instance()
    sc = make_scenario(objective={"kind": "max_coverage", "budget": 5e6, "beds_rule": "objective"})
    problem, idx = model.build_problem(sc, RULES, *t.objects())
    real = model.solve_lexicographic

    def stopped(small, stages, options, warm_start=None):
        first, x, log = real(small, stages[:1], options, warm_start=warm_start)
        first, x = alter(small, replace(first, status="time_limit"), x.copy())
        return first, x, log

    monkeypatch.setattr(model, "solve_lexicographic", stopped)
    return model.plan(sc, RULES, *t.objects()), problem, idx


def test_plan_reports_the_own_bound_when_the_solver_stops_with_a_weaker_one(monkeypatch) -> None:
    """The wiring in model._solve_plan: a time-limited max-coverage solve keeps the tighter bound."""
    def weak_bound(small, first, x):
        return replace(first, bound=float(np.abs(small.c).sum() + small.offset + 1.0), gap=1.0), x  # as at 200k

    p, problem, _ = _stopped_budget_plan(monkeypatch, weak_bound)
    truth = scipy_optimum(problem)
    assert p.solver.status == "time_limit"
    assert truth - 1e-6 <= p.solver.bound < float(np.abs(problem.c).sum() + problem.offset)
    assert p.solver.gap == pytest.approx((p.solver.bound - p.solver.objective) / p.solver.objective)
    assert p.solver.options["stages"][0]["own_bound"] == pytest.approx(p.solver.bound)


@pytest.mark.parametrize("seed", range(20))
def test_bed_knapsack_is_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(rng.integers(1, 5)):
        opts = [(0.0, 0.0, [])] + [(float(rng.choice([30, 60, 90, 150])), float(rng.integers(1, 20)), [])
                                   for _ in range(rng.integers(1, 4))]
        groups.append({"clear": [], "options": opts})
    need = float(rng.integers(1, 400))
    best = None
    for pick in itertools.product(*[range(len(g["options"])) for g in groups]):
        beds = sum(g["options"][k][0] for g, k in zip(groups, pick, strict=True))
        cost = sum(g["options"][k][1] for g, k in zip(groups, pick, strict=True))
        if beds >= need and (best is None or cost < best):
            best = cost
    choice = _warmstart._knapsack(groups, need)
    if best is None:
        assert choice is None
        return
    assert choice is not None
    beds = sum(g["options"][k][0] for g, k in zip(groups, choice, strict=True))
    cost = sum(g["options"][k][1] for g, k in zip(groups, choice, strict=True))
    assert beds >= need
    assert cost == pytest.approx(best)


def test_compact_problem_drops_the_nursing_block_and_fill_meets_it() -> None:
    t = replace(line_instance(), radius=np.full(20, np.nan), elderly=np.full(20, 100.0))
    sc = make_scenario()
    problem, idx = model.build_problem(sc, PRESET, *t.objects())  # ZJ-NURSE 0.58 enforced
    small, keep, fill = model.compact_problem(problem, idx, PRESET)
    assert small.A.shape[0] < problem.A.shape[0] and not keep[idx.col_nurse].any()
    res = model.run_solver(small, SolverOptions(time_limit_s=30))
    x = fill(res.x)
    assert _warmstart.is_feasible(problem, x)  # every nursing row of the full model holds
    assert problem.c @ x == pytest.approx(res.objective - small.offset)


def test_run_solver_never_returns_less_than_the_start() -> None:
    """A run cut short (time limit 0) returns the start as a time_limit incumbent, never no_solution."""
    problem, idx = model.build_problem(make_scenario(), RULES, *line_instance().objects())
    x = _warmstart.greedy_start(problem, idx)
    res = model.run_solver(problem, SolverOptions(time_limit_s=0.0), warm_start=x)
    assert res.x is not None and res.status in ("time_limit", "optimal")
    assert res.objective <= problem.c @ x + problem.offset + 1e-6
    assert res.objective == pytest.approx(problem.c @ res.x + problem.offset)


def test_time_limited_max_coverage_counts_every_reached_row(monkeypatch) -> None:
    """An incumbent may leave a reached row's indicator at 0; the plan's objective must not."""
    def understated(small, first, x):
        x[small.c > 0] = 0.0  # the row indicators (only they carry the objective): still feasible
        return replace(first, x=x, objective=float(small.c @ x + small.offset), gap=None), x

    p, _, idx = _stopped_budget_plan(monkeypatch, understated)
    assert p.solver.status == "time_limit"
    assert p.solver.objective == pytest.approx(p.meta["covered_elderly_after"])
    assert p.solver.objective > float(idx.covered_offset)  # the open sites' rows are counted again
