"""Rule checks for the report: every rule of the rule set, checked against the plan's numbers.

One function per rule kind; each returns ``(status, detail)`` with status
``met`` | ``not_met`` | ``not_applicable``. Enforced rules are checked against the plan
(ZJ-BEDS met iff no unit is short after; ZJ-R500 met iff every coverable cell of its band is
covered after); reported rules are computed where the data allows (ZJ-NURSE, ZJ-DEMENTIA,
ZJ-INSTBEDS); out-of-scope rules are ``not_applicable`` with their reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Check = tuple[str, str]


@dataclass(frozen=True)
class Ctx:
    """What every check may read (arguments of :func:`siting.report.rule_checks`)."""

    scenario: Any
    rules: Any
    demand: Any
    sites: Any
    reach: Any
    plan: Any


def fmt_n(value: float) -> str:
    """A count for sentences: thousands separators, no decimals (elderly are fractional)."""
    return f"{value:,.0f}"


def _ceil(x: float) -> int:
    """ceil that ignores float noise (0.03 × 1000 is 30, not 31)."""
    return math.ceil(round(x, 9))


def band_radius_m(band: Any, scenario: Any) -> float | None:
    """The band's owed radius in metres (a time radius converted at the scenario speed)."""
    return band.radius_at(scenario.speed_kmh())


def total_beds_after(ctx: Ctx) -> float:
    """Beds of every institution open after the plan (existing after changes + new)."""
    ex = ctx.plan.existing
    existing = float(ex.loc[ex["action"] != "closed", "beds_after"].sum()) if len(ex) else 0.0
    return existing + float(ctx.plan.new_sites["beds"].sum()) if len(ctx.plan.new_sites) else existing


# ---------------------------------------------------------------- per kind


def _check_unit_size(ctx: Ctx, rule: Any) -> Check:
    target = float(rule.params.get("elderly_per_unit", 10_000))
    units = ctx.plan.units
    spec = ctx.scenario.planning_units
    span = (f"{len(units)} units, {fmt_n(units['elderly'].min())}–{fmt_n(units['elderly'].max())} elderly "
            f"(target {fmt_n(target)} per unit)") if len(units) else "no planning units"
    if spec.mode == "auto":
        return "met", f"units delineated automatically at about {fmt_n(target)} elderly: {span}"
    return "not_applicable", (f"units given as polygons ({spec.layer.path.name}): {span}; the bed "
                              "requirement is scaled by each unit's own elderly (ZJ-BEDS)")


def _check_beds_per_unit(ctx: Ctx, rule: Any) -> Check:
    per_10k = float(rule.params.get("beds_per_10k", 0))
    units = ctx.plan.units.sort_values("unit_id")
    short = units[units["deficit_after"] > 0]
    head = f"{per_10k:g} beds per 10,000 elderly in each of {len(units)} units"
    if short.empty:
        return "met", f"{head}: no unit is short after the plan"
    parts = [f"{r.unit_id} {r.name} short {fmt_n(r.deficit_after)} beds (needs {fmt_n(r.beds_required)}, "
             f"has {fmt_n(r.beds_required - r.deficit_after)})" for r in short.itertuples()]
    return "not_met", f"{head}: {len(short)} unit(s) short — " + "; ".join(parts)


def uncoverable_groups(ctx: Ctx, mask: np.ndarray) -> pd.DataFrame:
    """Uncoverable cells under ``mask`` grouped by unit: cells, elderly, elderly-weighted centre."""
    cells = ctx.demand.cells
    sel = ctx.plan.uncoverable & mask
    if not sel.any():
        return pd.DataFrame(columns=["unit_id", "unit_name", "cells", "elderly", "x", "y"])
    sub = pd.DataFrame({"unit_id": cells["unit_id"].to_numpy()[sel],
                        "unit_name": cells["unit_name"].to_numpy()[sel],
                        "elderly": cells["elderly"].to_numpy()[sel],
                        "wx": (cells["x"] * cells["elderly"]).to_numpy()[sel],
                        "wy": (cells["y"] * cells["elderly"]).to_numpy()[sel]})
    g = sub.groupby(["unit_id", "unit_name"], sort=True).agg(
        cells=("elderly", "size"), elderly=("elderly", "sum"), wx=("wx", "sum"), wy=("wy", "sum"))
    g["x"] = (g["wx"] / g["elderly"].where(g["elderly"] > 0, 1.0)).round(0)
    g["y"] = (g["wy"] / g["elderly"].where(g["elderly"] > 0, 1.0)).round(0)
    return g.drop(columns=["wx", "wy"]).reset_index()


def _check_band_radius(ctx: Ctx, rule: Any) -> Check:
    bands = [b for b in ctx.rules.bands if b.rule_id == rule.id]
    if not bands:
        return "not_applicable", "no density band cites this rule in the rule set"
    cells = ctx.demand.cells
    in_band = cells["band"].isin([b.name for b in bands]).to_numpy()
    radius = band_radius_m(bands[0], ctx.scenario)
    if not in_band.any():
        return "not_applicable", f"no cell falls in band {', '.join(b.name for b in bands)}"
    elderly = cells["elderly"].to_numpy()
    coverable = in_band & ~ctx.plan.uncoverable
    missed = coverable & ~ctx.plan.covered_after
    cov = float(elderly[in_band & ctx.plan.covered_after].sum())
    tot = float(elderly[in_band].sum())
    detail = (f"{fmt_n(cov)} of {fmt_n(tot)} elderly in band {bands[0].name} have an institution within "
              f"{radius:g} m after the plan ({ctx.reach.mode})")
    if missed.any():
        detail += (f"; {int(missed.sum())} coverable cell(s) ({fmt_n(elderly[missed].sum())} elderly) "
                   "left uncovered")
    groups = uncoverable_groups(ctx, in_band)
    if len(groups):
        where = "; ".join(f"{r.unit_id} {r.unit_name}: {r.cells} cell(s), {fmt_n(r.elderly)} elderly — add "
                          f"candidates near ({r.x:.0f}, {r.y:.0f})" for r in groups.itertuples())
        detail += (f"; uncoverable (no site at all within {radius:g} m): {fmt_n(groups['elderly'].sum())} "
                   f"elderly — {where}")
    return ("not_met" if missed.any() else "met"), detail


def _check_no_radius(ctx: Ctx, rule: Any) -> Check:
    bands = [b for b in ctx.rules.bands if b.rule_id == rule.id]
    cells = ctx.demand.cells
    in_band = cells["band"].isin([b.name for b in bands]).to_numpy()
    n, eld = int(in_band.sum()), float(cells["elderly"].to_numpy()[in_band].sum())
    dist = nearest_open_distance(ctx, in_band)
    far = f"; straight-line distance to the nearest institution after the plan: median {np.median(dist):,.0f} m, " \
          f"max {dist.max():,.0f} m" if dist.size else ""
    return "not_applicable", f"no radius is owed: {n} cell(s), {fmt_n(eld)} elderly in this band{far}"


def nearest_open_distance(ctx: Ctx, mask: np.ndarray) -> np.ndarray:
    """Straight-line metres from each masked cell to the nearest site open after the plan."""
    from scipy.spatial import cKDTree

    t = ctx.sites.table
    open_xy = t[["x", "y"]].to_numpy()[np.asarray(ctx.plan.open_after, dtype=bool)]
    if not mask.any() or len(open_xy) == 0:
        return np.zeros(0)
    d, _ = cKDTree(open_xy).query(ctx.demand.cells[["x", "y"]].to_numpy()[mask])
    return np.asarray(d)


def _institutions_after(ctx: Ctx) -> pd.DataFrame:
    """Institutions open after the plan: subdistrict, unit, beds."""
    t = ctx.sites.table
    rows = []
    ex = ctx.plan.existing
    for r in ex.itertuples():
        if r.action != "closed":
            rows.append((t["subdistrict"].iat[r.site], t["unit_id"].iat[r.site], float(r.beds_after)))
    for r in ctx.plan.new_sites.itertuples():
        rows.append((t["subdistrict"].iat[r.site], t["unit_id"].iat[r.site], float(r.beds)))
    return pd.DataFrame(rows, columns=["subdistrict", "unit_id", "beds"])


def _check_one_per_subdistrict(ctx: Ctx, rule: Any) -> Check:
    need = int(rule.params.get("min_institutions", 1) or 1)
    min_beds = float(rule.params.get("min_beds", 0) or 0)
    subs = sorted(set(ctx.demand.cells["subdistrict"].astype(str)))
    inst = _institutions_after(ctx)
    inst = inst[inst["beds"] >= min_beds]
    counts = inst.groupby("subdistrict").size()
    short = [s for s in subs if int(counts.get(s, 0)) < need]
    head = f"{len(subs)} subdistrict(s), each needs ≥ {need} institution(s) of ≥ {min_beds:g} beds"
    if short:
        return "not_met", f"{head}; without: {', '.join(short)}"
    return "met", f"{head}: all have one"


def _check_min_institutions(ctx: Ctx, rule: Any) -> Check:
    need = int(rule.params.get("min_institutions", 1) or 1)
    subs = set(ctx.demand.cells["subdistrict"].astype(str))
    inst = _institutions_after(ctx)
    inside = int(inst["subdistrict"].astype(str).isin(subs).sum())
    head = f"≥ {need} institution(s) in the study area; {inside} after the plan"
    return ("met" if inside >= need else "not_met"), head


def _check_nursing_share(ctx: Ctx, rule: Any) -> Check:
    share = float(rule.params.get("share", 0))
    beds = total_beds_after(ctx)
    need = _ceil(share * beds)
    head = f"nursing-type beds required: ceil({share:g} × {fmt_n(beds)} beds after the plan) = {need}"
    new = ctx.plan.new_sites
    if rule.status == "enforced" and "nursing_beds" in new.columns:
        new_beds = float(new["beds"].sum())
        need_new, got = _ceil(share * new_beds), float(new["nursing_beds"].sum())
        status = "met" if got >= need_new else "not_met"
        return status, f"{head}; new institutions: {fmt_n(got)} of {fmt_n(new_beds)} beds nursing-type " \
                       f"(≥ {need_new} needed); existing nursing beds are not in the data"
    return "not_applicable", f"{head}; not checked: the data has no nursing-bed counts"


def _check_dementia_beds(ctx: Ctx, rule: Any) -> Check:
    per_10k = float(rule.params.get("per_10k", 0))
    units = ctx.plan.units.sort_values("unit_id")
    need = {r.unit_id: _ceil(per_10k / 10_000 * r.elderly) for r in units.itertuples()}
    head = (f"dementia-care beds required ({per_10k:g} per 10,000 elderly): "
            + ", ".join(f"{u} {n}" for u, n in need.items()) + f" (total {sum(need.values())})")
    new = ctx.plan.new_sites
    if rule.status == "enforced" and "dementia_beds" in new.columns:
        got = new.groupby("unit_id")["dementia_beds"].sum()
        short = [u for u, n in need.items() if float(got.get(u, 0)) < n]
        if short:
            return "not_met", f"{head}; short in {', '.join(short)}"
        return "met", f"{head}; provided by the new institutions"
    return "not_applicable", f"{head}; not checked: the data has no dementia-bed counts"


def _check_beds_per_1000(ctx: Ctx, rule: Any) -> Check:
    per_1000 = float(rule.params.get("per_1000", 0))
    elderly = float(ctx.demand.cells["elderly"].sum())
    beds = total_beds_after(ctx)
    rate = beds / elderly * 1000 if elderly > 0 else 0.0
    status = "met" if rate >= per_1000 else "not_met"
    return status, (f"{fmt_n(beds)} institutional beds after the plan for {fmt_n(elderly)} elderly = "
                    f"{rate:.1f} per 1,000 (target {per_1000:g})")


def _check_min_module(ctx: Ctx, rule: Any) -> Check:
    min_beds = float(rule.params.get("min_beds", 0))
    new = ctx.plan.new_sites
    if new.empty:
        return "not_applicable", "no new institution in the plan"
    small = new[new["beds"] < min_beds]
    if len(small):
        return "not_met", f"{len(small)} new institution(s) below {min_beds:g} beds: " \
                          + ", ".join(sorted(small["site_id"].astype(str)))
    return "met", f"all {len(new)} new institutions have ≥ {min_beds:g} beds (smallest {new['beds'].min():g})"


def _check_hospital(ctx: Ctx, rule: Any) -> Check:
    new = ctx.plan.new_sites
    t = ctx.sites.table
    if new.empty or "near_hospital" not in t.columns:
        return "not_applicable", "preference only; no new institution or no hospital data"
    near = int(t["near_hospital"].to_numpy()[new["site"].to_numpy()].sum())
    return "not_applicable", f"preference only: {near} of {len(new)} new institutions next to a hospital"


def _check_spread(ctx: Ctx, rule: Any) -> Check:
    inst = _institutions_after(ctx)
    if inst.empty:
        return "not_applicable", "no institution after the plan"
    return "not_applicable", (f"preference only: {len(inst)} institutions after the plan, "
                              f"{inst['beds'].mean():.0f} beds on average, largest {inst['beds'].max():.0f}")


CHECKS: dict[str, Callable[[Ctx, Any], Check]] = {
    "unit_size": _check_unit_size,
    "beds_per_unit": _check_beds_per_unit,
    "band_radius": _check_band_radius,
    "no_radius": _check_no_radius,
    "one_per_subdistrict": _check_one_per_subdistrict,
    "min_institutions": _check_min_institutions,
    "nursing_share": _check_nursing_share,
    "dementia_beds": _check_dementia_beds,
    "beds_per_1000": _check_beds_per_1000,
    "min_module": _check_min_module,
    "hospital_preference": _check_hospital,
    "spread": _check_spread,
}


def check_rule(ctx: Ctx, rule: Any) -> Check:
    """Status and detail of one rule (out of scope and superseded rules are not applicable)."""
    superseded = getattr(rule, "superseded_by", None)
    if superseded:
        return "not_applicable", f"superseded by {superseded}" + (f" — {rule.reason}" if rule.reason else "")
    if rule.status == "out_of_scope":
        return "not_applicable", f"out of scope: {rule.reason}"
    fn = CHECKS.get(rule.kind or "")
    if fn is None:
        why = f": {rule.reason}" if rule.reason else ""
        return "not_applicable", f"not checked by the plan (kind {rule.kind or 'none'}){why}"
    return fn(ctx, rule)
