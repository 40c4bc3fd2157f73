"""Diagnosis of infeasible plans: which unit, which subdistrict, which limit — with the numbers."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from test_model import PRESET, RULES, line_instance, make_scenario, rules_with

from siting import diagnose as dg
from siting import model


def _found(t, sc, rules=RULES):
    objs = t.objects()
    _, idx = model.build_problem(sc, rules, *objs)
    return dg.structural(sc, rules, *objs, idx), idx


def test_unit_shortfall_counts_existing_expansion_and_largest_module() -> None:
    t = replace(line_instance(), elderly=np.full(20, 1000.0))  # 300 beds required per unit
    sc = make_scenario(existing_facilities={"max_expansion_modules": 2})
    found, _ = _found(t, sc)
    u0, u1 = found["units"]
    assert (u0["unit_id"], u0["beds_max_achievable"], u0["shortfall"]) == ("U0", 60 + 60 + 2 * 60, 60)
    assert (u1["unit_id"], u1["beds_max_achievable"], u1["shortfall"]) == ("U1", 3 * 60, 120)
    assert u0["rule"] == "ZJ-BEDS"


def test_larger_modules_remove_the_shortfall() -> None:
    t = replace(line_instance(), elderly=np.full(20, 1000.0))
    found, _ = _found(t, make_scenario(modules={"sizes": [30, 60, 150]}))
    assert found["units"] == []  # U0: 60+60+2×150 = 420, U1: 450 ≥ 300


def test_neighbour_beds_enter_the_achievable_maximum() -> None:
    t = replace(line_instance(), elderly=np.r_[np.full(10, 10.0), np.full(10, 1000.0)])  # U1 needs 300
    plain, _ = _found(t, make_scenario())
    assert [u["unit_id"] for u in plain["units"]] == ["U1"]
    near, _ = _found(t, make_scenario(rules={"neighbour_beds_distance_m": 5000}))
    assert near["units"] == []  # U0's 60+60 + 2×60 can be counted for U1


def test_subdistrict_without_eligible_site() -> None:
    t = replace(line_instance(), elderly=np.full(20, 10.0))
    rules = rules_with({"id": "CX-EMBED", "kind": "one_per_subdistrict", "params": {"min_beds": 100}})
    found, _ = _found(t, make_scenario(), rules)  # no module reaches 100 beds; existing has 60
    assert [(s["subdistrict"], s["eligible_sites"]) for s in found["subdistricts"]] == [("S0", 0), ("S1", 0)]
    found_ok, _ = _found(t, make_scenario(modules={"sizes": [30, 100]}), rules)
    assert found_ok["subdistricts"] == []


def test_uncoverable_cells_listed_with_location() -> None:
    t = line_instance()
    t = replace(t, cell_xy=np.r_[t.cell_xy, [[7000.0, 300.0]]], elderly=np.r_[t.elderly, 42.0],
                radius=np.r_[t.radius, 1000.0], cell_unit=np.r_[t.cell_unit, 1])
    found, _ = _found(t, make_scenario())
    unc = found["uncoverable"]
    assert unc["count"] == 1 and unc["elderly"] == 42.0
    cell = unc["cells"][0]
    assert (cell["cell_id"], cell["x"], cell["y"], cell["radius_m"], cell["rule_id"]) == (
        20, 7000.0, 300.0, 1000.0, "ZJ-R1000")
    assert found["problems"] == []  # excluded from the model, not a cause of infeasibility


def test_nursing_share_never_blocks_a_plan_with_enough_existing_beds() -> None:
    """Nursing share applies to added beds: a unit met by existing beds needs no new ones."""
    t = replace(line_instance(), elderly=np.full(20, 10.0), beds=np.array([500]),
                site_xy=line_instance().site_xy[:1], is_exist=np.array([True]), site_unit=np.array([0]),
                radius=np.full(20, np.nan))
    sc = make_scenario(existing_facilities={"allow_expand": False})
    found, _ = _found(t, sc, PRESET)
    assert found["special_beds"] == []
    p = model.plan(sc, PRESET, *t.objects())
    assert p.solver.status in ("optimal", "infeasible")
    if p.solver.status == "infeasible":  # only for reasons other than ZJ-NURSE
        assert not any("ZJ-NURSE" in s for s in p.diagnosis["summary"])


def test_n_sites_too_small_gives_the_least_count() -> None:
    t = replace(line_instance(), elderly=np.full(20, 1000.0))  # 300 beds per unit
    sc = make_scenario(modules={"sizes": [30, 150]}, objective={"kind": "max_coverage", "n_sites": 1})
    p = model.plan(sc, RULES, *t.objects())
    assert p.solver.status == "infeasible"
    q = next(q for q in p.diagnosis["problems"] if q["rule"] == "objective.n_sites")
    # U0: 60 existing + 60 expansion + 150 + 30 → 2 sites; U1: 150 + 150 → 2 sites
    assert q["min_n_sites"] == 4
    sc4 = make_scenario(modules={"sizes": [30, 150]}, objective={"kind": "max_coverage", "n_sites": 4})
    ok = model.plan(sc4, RULES, *t.objects())
    assert ok.solver.status == "optimal"


@pytest.mark.parametrize("elderly", [1000.0, 2000.0])
def test_diagnosis_is_json_and_has_a_sentence_per_problem(elderly: float) -> None:
    t = replace(line_instance(), elderly=np.full(20, elderly))
    p = model.plan(make_scenario(), RULES, *t.objects())
    d = json.loads(json.dumps(p.diagnosis))
    assert d["status"] == "infeasible"
    assert len(d["summary"]) == len(d["problems"]) >= 1
    assert all("beds" in s for s in d["summary"])
    assert p.cost_total == 0 and len(p.new_sites) == 0 and (p.open_after == p.open_before).all()


def _limit_sentence(p: model.Plan, rule: str) -> tuple[dict, str]:
    d = p.diagnosis
    i = next(i for i, q in enumerate(d["problems"]) if q["rule"] == rule)
    return d["problems"][i], d["summary"][i]


def test_budget_sentence_names_the_rules_its_least_cost_covers() -> None:
    """max_coverage holds only ZJ-BEDS as a hard limit: its least cost is not the cost of every rule."""
    t = replace(line_instance(), elderly=np.full(20, 200.0))  # 60 beds per unit
    p = model.plan(make_scenario(objective={"kind": "max_coverage", "budget": 1_000_000}), RULES, *t.objects())
    q, sentence = _limit_sentence(p, "objective.budget")
    assert (q["hard_rules"], q["objective_rules"]) == (["ZJ-BEDS"], ["ZJ-R500", "ZJ-R1000"])
    assert sentence.startswith("objective.budget: 1,000,000 CNY is below 7,000,000 CNY, the least cost of meeting "
                               "the rules a max_coverage model holds as hard limits (ZJ-BEDS; ZJ-R500, ZJ-R1000 "
                               "are objectives, met as far as the limit allows)")
    assert sentence.endswith("raise objective.budget to at least 7,000,000, or set objective.beds_rule: objective "
                             "(ZJ-BEDS then becomes a second objective)")
    assert "every rule" not in sentence
    every = model.plan(make_scenario(), RULES, *t.objects())  # min_cost: coverage is a hard rule too
    assert every.solver.status == "optimal" and every.cost_total > q["min_budget"]


def test_budget_sentence_without_a_hard_beds_rule() -> None:
    """beds_rule: objective makes ZJ-BEDS soft: the hard rule left (CX-EMBED) is named, no beds fix offered."""
    t = replace(line_instance(), elderly=np.full(20, 10.0))  # S1 has no existing site: one new site needed
    rules = rules_with({"id": "CX-EMBED", "kind": "one_per_subdistrict", "params": {}})
    sc = make_scenario(objective={"kind": "max_coverage", "beds_rule": "objective", "budget": 1.0})
    q, sentence = _limit_sentence(model.plan(sc, rules, *t.objects()), "objective.budget")
    assert q["hard_rules"] == ["CX-EMBED"] and q["beds_rule"] is None
    assert "hard limits (CX-EMBED; ZJ-BEDS, ZJ-R500, ZJ-R1000 are objectives, met as far as the limit allows)" \
        in sentence
    assert sentence.endswith("raise objective.budget to at least 4,000,000")


def test_n_sites_sentence_names_the_rules_and_the_fix() -> None:
    t = replace(line_instance(), elderly=np.full(20, 1000.0))
    sc = make_scenario(modules={"sizes": [30, 150]}, objective={"kind": "max_coverage", "n_sites": 1})
    _, sentence = _limit_sentence(model.plan(sc, RULES, *t.objects()), "objective.n_sites")
    assert sentence.startswith("objective.n_sites: 1 is below 4, the fewest new sites meeting the rules a "
                               "max_coverage model holds as hard limits (ZJ-BEDS;")
    assert "raise objective.n_sites to at least 4, or set objective.beds_rule: objective" in sentence


def test_special_bed_shortfall_sentence_names_figures_and_fields() -> None:
    """A dementia-bed shortfall reads as figures and the fields to change, never as a raw dict."""
    p = {"rule": "ZJ-DEMENTIA", "what": "dementia beds", "required": 1200, "max_new_beds": 950}
    text = dg.finish({"problems": [p]})["summary"][0]
    assert text.startswith("ZJ-DEMENTIA: 1,200 dementia beds are required")
    assert "950 new beds" in text and "modules.sizes" in text and "{" not in text
