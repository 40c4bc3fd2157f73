"""Why a plan is infeasible: the numbers a planner needs to change the scenario.

``structural`` checks, without a solver, what no plan can satisfy: units whose bed
requirement (ZJ-BEDS) exceeds what their sites can hold at the largest module size,
subdistricts with no site for ``one_per_subdistrict``, nursing/dementia totals beyond the
beds that can be built, cells that capacitated coverage cannot serve. ``deeper`` adds the
limits found by solving: the least budget / fewest sites meeting the rules the model holds as
hard limits (in a max-coverage model not the coverage rules, so each sentence names the rules
its figure covers by id). ``finish`` turns the findings into a JSON-serialisable dict with one
sentence per problem.
Uncoverable cells (owed a radius, no site within it) are always listed: they are excluded
from the model, never the cause of an infeasibility.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

MAX_LISTED_CELLS = 200


def _max_site_beds(scenario: Any, idx: Any, n_sites: int, beds: np.ndarray) -> np.ndarray:
    """Most beds each site can hold: existing beds + every expansion module; largest module size."""
    out = np.zeros(n_sites)
    ex = scenario.existing_facilities
    n_mod = ex.max_expansion_modules if ex.allow_expand else 0
    out[idx.exist] = beds[idx.exist] + n_mod * scenario.modules.expansion_beds
    out[idx.cand] = float(max(idx.sizes)) if len(idx.sizes) else 0.0
    return out


def _site_units(sites: Any, idx: Any) -> np.ndarray:
    pos = {u: i for i, u in enumerate(idx.unit_ids)}
    return np.array([pos.get(str(u), -1) for u in sites.table["unit_id"].fillna("")], dtype=np.int64)


def unit_shortfalls(scenario: Any, rules: Any, demand: Any, sites: Any, idx: Any) -> list[dict[str, Any]]:
    """ZJ-BEDS: units whose required beds exceed the most their (and neighbours') sites can hold."""
    beds = sites.table["beds"].fillna(0).to_numpy(dtype=float)
    cap = _max_site_beds(scenario, idx, len(beds), beds)
    su = _site_units(sites, idx)
    nu = len(idx.unit_ids)
    own = np.bincount(su[su >= 0], weights=cap[su >= 0], minlength=nu)
    inflow = np.bincount(idx.g_unit, weights=cap[idx.g_site], minlength=nu) if len(idx.g_site) else np.zeros(nu)
    most = own + inflow
    rule_id = next(iter(r.id for r in rules.by_kind("beds_per_unit", enforced_only=True)), "ZJ-BEDS")
    names = demand.units["name"].astype(str).to_numpy() if "name" in demand.units else idx.unit_ids
    out = []
    for u in np.flatnonzero(idx.beds_required > most + 1e-9):
        n_cand = int(((su == u) & ~(sites.table["kind"] == "existing").to_numpy()).sum())
        out.append({"rule": rule_id, "unit_id": str(idx.unit_ids[u]), "name": str(names[u]),
                    "beds_required": int(idx.beds_required[u]), "beds_max_achievable": int(most[u]),
                    "shortfall": int(idx.beds_required[u] - most[u]), "candidate_sites": n_cand,
                    "largest_module": int(max(idx.sizes)) if len(idx.sizes) else 0,
                    "neighbour_beds_counted": bool(len(idx.g_site))})
    return out


def subdistricts_without_site(rules: Any, sites: Any, idx: Any) -> list[dict[str, Any]]:
    """one_per_subdistrict: subdistricts with fewer eligible sites than the rule asks for."""
    table = sites.table
    sub = table["subdistrict"].fillna("").astype(str).to_numpy() if "subdistrict" in table else None
    out: list[dict[str, Any]] = []
    if sub is None:
        return out
    beds = table["beds"].fillna(0).to_numpy(dtype=float)
    is_exist = (table["kind"] == "existing").to_numpy()
    for rule in rules.by_kind("one_per_subdistrict", enforced_only=True):
        need = int(rule.params.get("min_institutions", 1) or 1)
        min_beds = float(rule.params.get("min_beds") or 0)
        cand_ok = bool(len(idx.sizes)) and max(idx.sizes) >= min_beds
        eligible = np.where(is_exist, beds >= min_beds, cand_ok)
        for s in idx.subdistricts:
            have = int((eligible & (sub == s)).sum())
            if have < need:
                out.append({"rule": rule.id, "subdistrict": str(s), "eligible_sites": have,
                            "min_institutions": need, "min_beds": min_beds or None})
    return out


def special_bed_shortfalls(scenario: Any, rules: Any, sites: Any, idx: Any) -> list[dict[str, Any]]:
    """nursing_share / dementia_beds: totals beyond what new beds could ever provide."""
    beds = sites.table["beds"].fillna(0).to_numpy(dtype=float)
    cap = _max_site_beds(scenario, idx, len(beds), beds)
    new_max = float(cap[idx.cand].sum()) + float((cap[idx.exist] - beds[idx.exist]).sum())
    out = []
    # nursing_share applies to the beds the plan adds, so it can always be met by typing them
    for rule in rules.by_kind("dementia_beds", enforced_only=True)[:1]:
        total = float(idx.meta.get("unit_elderly_total", 0.0))
        need = math.ceil(float(rule.params.get("per_10k", 0.0)) * total / 10_000.0 - 1e-9)
        if need > new_max:
            out.append({"rule": rule.id, "what": "dementia beds", "required": need, "max_new_beds": int(new_max)})
    return out


def capacity_shortfalls(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any,
                        idx: Any) -> list[dict[str, Any]]:
    """Capacitated coverage: cells whose reachable sites cannot hold their elderly even at full size."""
    if not idx.meta.get("capacitated"):
        return []
    from .model import beds_ratio

    per_bed = 10_000.0 / (beds_ratio(rules) or 300.0)
    beds = sites.table["beds"].fillna(0).to_numpy(dtype=float)
    cap = _max_site_beds(scenario, idx, len(beds), beds) * per_bed
    pattern = reach.dist.copy()
    pattern.data[:] = 1.0
    reachable = pattern @ cap
    elderly = demand.cells["elderly"].to_numpy(dtype=float)
    bad = np.flatnonzero(idx.need & (reachable + 1e-9 < elderly))
    cells = demand.cells
    return [{"rule": "capacitated", "cell_id": int(cells["cell_id"].iloc[i]), "elderly": float(elderly[i]),
             "capacity_in_reach": float(reachable[i])} for i in bad[:MAX_LISTED_CELLS]]


def uncoverable_cells(demand: Any, idx: Any) -> dict[str, Any]:
    """Cells owed a radius with no site within it: count, elderly and where they are."""
    cells = demand.cells
    hit = np.flatnonzero(idx.uncoverable)
    cols = [c for c in ("cell_id", "x", "y", "elderly", "radius_m", "rule_id", "unit_id") if c in cells]
    listed = cells.iloc[hit[:MAX_LISTED_CELLS]][cols]
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in listed.to_dict("records")]
    return {"count": len(hit), "elderly": float(cells["elderly"].to_numpy(float)[hit].sum()),
            "cells": rows, "listed": len(rows)}


def structural(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, idx: Any) -> dict[str, Any]:
    """Every infeasibility visible without a solver (``problems`` empty when none)."""
    beds_soft = idx.meta.get("kind") == "max_coverage" and scenario.objective.beds_rule == "objective"
    found: dict[str, Any] = {
        "units": [] if beds_soft else unit_shortfalls(scenario, rules, demand, sites, idx),
        "subdistricts": subdistricts_without_site(rules, sites, idx),
        "special_beds": special_bed_shortfalls(scenario, rules, sites, idx),
        "capacity": capacity_shortfalls(scenario, rules, demand, sites, reach, idx),
        "uncoverable": uncoverable_cells(demand, idx),
        "limits": {},
    }
    found["problems"] = [*found["units"], *found["subdistricts"], *found["special_beds"], *found["capacity"]]
    return found


Probe = Callable[[Any, Any, Any, Any, Any, str], "float | None"]


def _limit_context(scenario: Any, rules: Any, idx: Any) -> dict[str, Any]:
    """Which rules a least-cost (or fewest-sites) figure covers, and whether ZJ-BEDS could be made soft.

    A max-coverage model holds only some rules as hard rows (ZJ-BEDS unless ``beds_rule:
    objective``, subdistrict and special-bed rules); coverage is what the limit buys. The figure
    is the least for those hard rules, not for every rule, and the sentence must say so.
    """
    hard = list(idx.meta.get("hard_rules", []))
    beds = [r.id for r in rules.by_kind("beds_per_unit", enforced_only=True) if r.id in hard]
    can_soften = idx.meta.get("kind") == "max_coverage" and scenario.objective.beds_rule == "constraint"
    return {"kind": idx.meta.get("kind"), "hard_rules": hard,
            "objective_rules": list(idx.meta.get("objective_rules", [])),
            "beds_rule": beds[0] if beds and can_soften else None, "currency": scenario.costs.currency}


def deeper(found: dict[str, Any], scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, idx: Any,
           probe: Probe) -> dict[str, Any]:
    """After the solver says infeasible: is the budget or the site count too small, and by how much?"""
    obj = scenario.objective
    limits: dict[str, Any] = {}
    ctx = _limit_context(scenario, rules, idx)
    if idx.meta.get("budget") is not None:
        least = probe(scenario, rules, demand, sites, reach, "cost")
        limits["budget"] = {"budget": float(idx.meta["budget"]), "min_budget": least}
        if least is not None and least > idx.meta["budget"]:
            found["problems"].append({"rule": "objective.budget", "budget": float(idx.meta["budget"]),
                                      "min_budget": float(least), **ctx})
    if idx.meta.get("n_sites") is not None:
        least = probe(scenario, rules, demand, sites, reach, "count")
        limits["n_sites"] = {"n_sites": int(idx.meta["n_sites"]), "min_n_sites": least}
        if least is not None and least > idx.meta["n_sites"] + 1e-9:
            found["problems"].append({"rule": "objective.n_sites", "n_sites": int(idx.meta["n_sites"]),
                                      "min_n_sites": round(least), **ctx})
    found["limits"] = limits
    if not found["problems"]:
        found["problems"].append({"rule": "combination", "objective": obj.kind,
                                  "note": "no single rule is impossible alone; their combination is"})
    return found


def _covers(p: dict[str, Any]) -> str:
    """Which rules a limit's least figure covers, by id, and which it leaves to the objective."""
    hard = ", ".join(p.get("hard_rules") or []) or "none: only fixed costs"
    text = f"the rules a {p.get('kind')} model holds as hard limits ({hard}"
    soft = ", ".join(p.get("objective_rules") or [])
    return text + (f"; {soft} are objectives, met as far as the limit allows)" if soft else ")")


def _limit_fix(p: dict[str, Any], field: str, least: str) -> str:
    fix = f"raise {field} to at least {least}"
    if p.get("beds_rule"):
        fix += f", or set objective.beds_rule: objective ({p['beds_rule']} then becomes a second objective)"
    return fix


def _limit_sentence(p: dict[str, Any]) -> str:
    """objective.budget / objective.n_sites: the limit, the least that meets the hard rules, the fix."""
    if p["rule"] == "objective.budget":
        cur = p.get("currency", "CNY")
        least = f"{p['min_budget']:,.0f}"
        return (f"objective.budget: {p['budget']:,.0f} {cur} is below {least} {cur}, the least cost of meeting "
                f"{_covers(p)} — {_limit_fix(p, 'objective.budget', least)}")
    least = f"{p['min_n_sites']}"
    return (f"objective.n_sites: {p['n_sites']} is below {least}, the fewest new sites meeting {_covers(p)} — "
            f"{_limit_fix(p, 'objective.n_sites', least)}")


def _sentence(p: dict[str, Any]) -> str:
    rule = p.get("rule")
    if "unit_id" in p and "shortfall" in p:
        return (f"{rule}: unit {p['unit_id']} ({p['name']}) needs {p['beds_required']} beds but its sites can "
                f"hold at most {p['beds_max_achievable']} ({p['shortfall']} short; {p['candidate_sites']} "
                f"candidate sites, largest module {p['largest_module']} beds) — add candidate sites (candidates), "
                "larger module sizes (modules.sizes), or allow neighbouring beds (rules.neighbour_beds_distance_m)")
    if "subdistrict" in p:
        return (f"{rule}: subdistrict {p['subdistrict']} has {p['eligible_sites']} eligible site(s), "
                f"needs {p['min_institutions']} — add a candidate site there")
    if rule in ("objective.budget", "objective.n_sites"):
        return _limit_sentence(p)
    if "cell_id" in p:
        return (f"capacitated coverage: cell {p['cell_id']} has {p['elderly']:.1f} elderly but only "
                f"{p['capacity_in_reach']:.1f} places within reach")
    if "what" in p:
        return (f"{rule}: {p['required']:,} {p['what']} are required but every candidate and expansion built "
                f"at its largest size holds only {p['max_new_beds']:,} new beds — add candidate sites "
                "(candidates), larger module sizes (modules.sizes) or more expansion modules "
                "(existing_facilities.max_expansion_modules)")
    return f"{rule}: {p.get('note', p)}"


def finish(found: dict[str, Any]) -> dict[str, Any]:
    """The diagnosis as a JSON-serialisable dict (status, problems, sentences, uncoverable cells)."""
    problems = found.get("problems", [])
    return {
        "status": "infeasible",
        "problems": problems,
        "summary": [_sentence(p) for p in problems],
        "units": found.get("units", []),
        "subdistricts": found.get("subdistricts", []),
        "special_beds": found.get("special_beds", []),
        "capacity": found.get("capacity", []),
        "limits": found.get("limits", {}),
        "uncoverable": found.get("uncoverable", {}),
    }
