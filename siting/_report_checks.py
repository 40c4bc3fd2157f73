"""Rule checks for the report: every rule of the rule set, checked against the plan's numbers.

One function per rule kind; each returns a :class:`Check` with status
``met`` | ``not_met`` | ``not_applicable`` and, when a ``met`` rests on something the data
does not show (the type of existing beds, what an institution can do), the assumption it
rests on. Enforced rules are checked against the plan (ZJ-BEDS met iff no unit is short
after; ZJ-R500 met iff every coverable cell of its band is covered after); reported rules are
computed where the data allows (ZJ-NURSE, ZJ-DEMENTIA, ZJ-INSTBEDS); out-of-scope rules are
``not_applicable`` with their reason.

Counts of elderly are summed over the unrounded cells and rounded once
(:func:`~siting._report_html.round_count`); the parts of a whole (bands of the study area,
covered / uncoverable elderly of a band, units of the study area) are rounded together
(:func:`~siting._report_html.round_parts`), so every table and sentence prints the same number
for the same quantity and parts add up to their total.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._report_html import round_count, round_parts


class Check(NamedTuple):
    """The outcome of one rule check.

    ``assumption``: what a ``met`` rests on that the data does not show ("" when nothing);
    ``applied``: how the rule was applied in this run when it differs from the rule set's
    status (ZJ-UNIT with units given as polygons is reported, not enforced); "" otherwise.
    """

    status: str
    detail: str
    assumption: str = ""
    applied: str = ""


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
    """A count for sentences: thousands separators, rounded once (elderly are fractional)."""
    return f"{round_count(value):,}"


def _ceil(x: float) -> int:
    """ceil that ignores float noise (0.03 × 1000 is 30, not 31)."""
    return math.ceil(round(x, 9))


def band_radius_m(band: Any, scenario: Any) -> float | None:
    """The band's owed radius in metres (a time radius converted at the scenario speed)."""
    return band.radius_at(scenario.speed_kmh())


# ---------------------------------------------------------------- counts (one rounding)


def elderly_total(ctx: Ctx) -> int:
    """All elderly on the grid, rounded once."""
    return round_count(math.fsum(ctx.demand.cells["elderly"].to_numpy(dtype=float)))


def band_counts(ctx: Ctx) -> dict[str, dict[str, int]]:
    """Per band (rule-set order): elderly and its covered / uncoverable parts, rounded together.

    ``elderly`` of the bands add up to :func:`elderly_total`; within a band, ``covered_after``
    + ``missed`` (coverable, not covered) + ``uncoverable`` add up to ``elderly``;
    ``covered_before`` (shown alone) is rounded once and never exceeds ``elderly``.
    """
    cells, plan = ctx.demand.cells, ctx.plan
    elderly = cells["elderly"].to_numpy(dtype=float)
    band_of = cells["band"].to_numpy()
    names = [b.name for b in ctx.rules.bands]
    masks = [band_of == n for n in names]
    raw = [math.fsum(elderly[m]) for m in masks]
    every_cell = bool(np.logical_or.reduce(masks).all()) if masks else False
    out = {}
    for name, m, total, e in zip(names, masks, round_parts(raw, elderly_total(ctx) if every_cell else None), raw,
                                 strict=True):
        after, unc = math.fsum(elderly[m & plan.covered_after]), math.fsum(elderly[m & plan.uncoverable])
        cov_after, unc_n, missed = round_parts([after, unc, max(0.0, e - after - unc)], total)
        before = min(round_count(math.fsum(elderly[m & plan.covered_before])), total)
        out[name] = {"elderly": total, "covered_before": before, "covered_after": cov_after,
                     "uncoverable": unc_n, "missed": missed}
    return out


def unit_counts(ctx: Ctx) -> dict[str, int]:
    """Elderly per planning unit (by unit id), rounded together so they add up to their total."""
    units = ctx.plan.units.sort_values("unit_id")
    raw = units["elderly"].to_numpy(dtype=float)
    return dict(zip(units["unit_id"].astype(str), round_parts(raw), strict=True))


@dataclass(frozen=True)
class Beds:
    """Institutional beds after the plan, split so a reviewer can reconcile them with the units table."""

    total: int
    in_units: int  # at institutions inside a planning unit (the units table: existing + new)
    outside: int  # at institutions kept outside every planning unit (outside the study area)
    n_outside: int
    added: int  # beds the plan adds (new institutions + expansions)
    kept: int  # beds of existing institutions before the plan, kept open (total - added)
    kept_assumed: int  # … of which at institutions whose bed count is assumed

    def sentence(self) -> str:
        """"4,290 = 3,890 in the planning units (units table) + 400 at 4 institution(s) outside the study area"."""
        if not self.outside:
            return f"all {self.total:,} are in the planning units (units table)"
        return (f"{self.total:,} = {self.in_units:,} in the planning units (units table) + {self.outside:,} at "
                f"{self.n_outside} institution(s) outside the study area")


def beds_after(ctx: Ctx) -> Beds:
    """Beds of every institution open after the plan, inside and outside the planning units."""
    plan = ctx.plan
    units = set(plan.units["unit_id"].astype(str))
    ex = plan.existing[plan.existing["action"] != "closed"] if len(plan.existing) else plan.existing
    new = plan.new_sites
    site_unit = ctx.sites.table["unit_id"].astype(str).to_numpy()
    ex_in = np.isin(site_unit[ex["site"].to_numpy(dtype=np.int64)], list(units)) if len(ex) else np.zeros(0, bool)
    after = ex["beds_after"].to_numpy(dtype=np.int64) if len(ex) else np.zeros(0, np.int64)
    added_ex = int(ex["beds_added"].sum()) if len(ex) else 0
    new_beds = new["beds"].to_numpy(dtype=np.int64) if len(new) else np.zeros(0, np.int64)
    new_in = new["unit_id"].astype(str).isin(units).to_numpy() if len(new) else np.zeros(0, bool)
    total = int(after.sum() + new_beds.sum())
    inside = int(after[ex_in].sum() + new_beds[new_in].sum())
    assumed = ex["beds_assumed"].astype(bool).to_numpy() if len(ex) else np.zeros(0, bool)
    before = ex["beds_before"].to_numpy(dtype=np.int64) if len(ex) else np.zeros(0, np.int64)
    return Beds(total=total, in_units=inside, outside=total - inside,
                n_outside=int((~ex_in).sum()) + int((~new_in).sum()),
                added=added_ex + int(new_beds.sum()), kept=total - added_ex - int(new_beds.sum()),
                kept_assumed=int(before[assumed].sum()))


# ---------------------------------------------------------------- per kind


def _check_unit_size(ctx: Ctx, rule: Any) -> Check:
    target = float(rule.params.get("elderly_per_unit", 10_000))
    counts = unit_counts(ctx)
    spec = ctx.scenario.planning_units
    span = (f"{len(counts)} units, {min(counts.values()):,}–{max(counts.values()):,} elderly "
            f"(target {fmt_n(target)} per unit)") if counts else "no planning units"
    if spec.mode == "auto":
        return Check("met", f"units delineated automatically at about {fmt_n(target)} elderly: {span}")
    beds = ctx.rules.kind_ids("beds_per_unit")
    scaled = (f"the bed requirement is scaled by each unit's own elderly ({beds})" if beds
              else f"rule set {ctx.rules.name} has no beds-per-elderly rule to scale")
    return Check("not_applicable", f"not applied: units given as polygons ({spec.layer.path.name}), so their "
                                   f"size comes from the layer; {span}; {scaled}", applied="reported")


def _check_beds_per_unit(ctx: Ctx, rule: Any) -> Check:
    per_10k = float(rule.params.get("beds_per_10k", 0))
    units = ctx.plan.units.sort_values("unit_id")
    short = units[units["deficit_after"] > 0]
    head = f"{per_10k:g} beds per 10,000 elderly in each of {len(units)} units"
    if short.empty:
        return Check("met", f"{head}: no unit is short after the plan")
    parts = [f"{r.unit_id} {r.name} short {fmt_n(r.deficit_after)} beds (needs {fmt_n(r.beds_required)}, "
             f"has {fmt_n(r.beds_required - r.deficit_after)})" for r in short.itertuples()]
    return Check("not_met", f"{head}: {len(short)} unit(s) short — " + "; ".join(parts))


def uncoverable_groups(ctx: Ctx, mask: np.ndarray, whole: int | None = None) -> pd.DataFrame:
    """Uncoverable cells under ``mask`` grouped by unit: cells, elderly, elderly-weighted centre.

    Also the nearest site to any cell of the group (``nearest_site``, straight-line
    ``nearest_m``) and how many of its cells lie off the street network (``off_network``), to say
    why no site reaches them. ``elderly`` is rounded once, the groups together to ``whole``.
    """
    cols = ["unit_id", "unit_name", "cells", "elderly", "x", "y", "nearest_site", "nearest_m", "off_network"]
    cells = ctx.demand.cells
    sel = ctx.plan.uncoverable & mask
    if not sel.any():
        return pd.DataFrame(columns=cols)
    near_id, near_m = nearest_site(ctx, sel)
    off = np.zeros(len(cells), dtype=bool)
    off[np.asarray(ctx.reach.cells_unsnapped, dtype=np.int64)] = True
    sub = pd.DataFrame({"unit_id": cells["unit_id"].to_numpy()[sel],
                        "unit_name": cells["unit_name"].to_numpy()[sel],
                        "elderly": cells["elderly"].to_numpy()[sel],
                        "wx": (cells["x"] * cells["elderly"]).to_numpy()[sel],
                        "wy": (cells["y"] * cells["elderly"]).to_numpy()[sel],
                        "near_id": near_id, "near_m": near_m, "off": off[sel]})
    sub = sub.sort_values(["near_m", "near_id"], kind="stable")
    g = sub.groupby(["unit_id", "unit_name"], sort=True).agg(
        cells=("elderly", "size"), elderly=("elderly", "sum"), wx=("wx", "sum"), wy=("wy", "sum"),
        nearest_site=("near_id", "first"), nearest_m=("near_m", "first"), off_network=("off", "sum"))
    g["x"] = (g["wx"] / g["elderly"].where(g["elderly"] > 0, 1.0)).round(0)
    g["y"] = (g["wy"] / g["elderly"].where(g["elderly"] > 0, 1.0)).round(0)
    g["elderly"] = round_parts(g["elderly"].to_numpy(dtype=float), whole)
    return g.drop(columns=["wx", "wy"]).reset_index()[cols]


def _nearest(ctx: Ctx, mask: np.ndarray, among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(site row, straight-line metres) of the nearest site (``among``: a bool mask of the sites
    to consider; default all) to each masked cell; empty arrays when there is no such site."""
    from scipy.spatial import cKDTree

    t = ctx.sites.table
    rows = np.arange(len(t)) if among is None else np.flatnonzero(among)
    if not mask.any() or rows.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    d, j = cKDTree(t[["x", "y"]].to_numpy()[rows]).query(ctx.demand.cells[["x", "y"]].to_numpy()[mask])
    return rows[np.asarray(j)], np.asarray(d, dtype=float)


def nearest_site(ctx: Ctx, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Id of and straight-line metres to the nearest site (any kind) of each masked cell."""
    rows, d = _nearest(ctx, mask)
    if rows.size == 0:
        n = int(mask.sum())
        return np.full(n, "", dtype=object), np.full(n, np.nan)
    return ctx.sites.table["site_id"].astype(str).to_numpy()[rows], d


def reach_advice(ctx: Ctx, group: Any, radius: float) -> str:
    """Where to add a candidate for an uncoverable group, and why the nearest site does not reach it."""
    where = f"add candidates near ({group.x:.0f}, {group.y:.0f})"
    if not group.nearest_site or not np.isfinite(group.nearest_m):
        return f"{where}: there is no site at all"
    near = f"the nearest site, {group.nearest_site}, is {group.nearest_m:,.0f} m away in a straight line"
    if ctx.reach.mode != "network" or group.nearest_m > radius:
        return f"{where}: {near}, beyond the {radius:g} m radius"
    net = ctx.scenario.distance.network
    kind = getattr(net, "kind", "street")
    if group.off_network == group.cells:
        return (f"{where}: {near}, but the cell(s) lie more than {net.snap_limit_m:g} m from the {kind} network "
                "or on a street island, so no site reaches them along it")
    return (f"{where}, on the cells' own side: {near} but more than {radius:g} m along the {kind} network "
            "(the streets go around something between them — water, rail or a closed compound)")


def _check_band_radius(ctx: Ctx, rule: Any) -> Check:
    bands = [b for b in ctx.rules.bands if b.rule_id == rule.id]
    if not bands:
        return Check("not_applicable", "no density band cites this rule in the rule set")
    cells = ctx.demand.cells
    in_band = cells["band"].isin([b.name for b in bands]).to_numpy()
    radius = band_radius_m(bands[0], ctx.scenario)
    if not in_band.any():
        return Check("not_applicable", f"no cell falls in band {', '.join(b.name for b in bands)}")
    if radius is None:
        return Check("not_applicable", f"band {bands[0].name} owes no radius in rule set {ctx.rules.name}")
    counts = band_counts(ctx)
    n = {k: sum(counts[b.name][k] for b in bands) for k in ("elderly", "covered_after", "uncoverable", "missed")}
    missed = in_band & ~ctx.plan.uncoverable & ~ctx.plan.covered_after
    detail = (f"{n['covered_after']:,} of {n['elderly']:,} elderly in band {bands[0].name} have an institution "
              f"within {radius:g} m after the plan ({ctx.reach.mode})")
    if missed.any():
        detail += f"; {int(missed.sum())} coverable cell(s) ({n['missed']:,} elderly) left uncovered"
    groups = uncoverable_groups(ctx, in_band, n["uncoverable"])
    if len(groups):
        where = "; ".join(f"{r.unit_id} {r.unit_name}: {r.cells} cell(s), {r.elderly:,} elderly — "
                          f"{reach_advice(ctx, r, radius)}" for r in groups.itertuples())
        detail += f"; uncoverable (no site at all within {radius:g} m): {n['uncoverable']:,} elderly — {where}"
    return Check("not_met" if missed.any() else "met", detail)


def _check_no_radius(ctx: Ctx, rule: Any) -> Check:
    bands = [b for b in ctx.rules.bands if b.rule_id == rule.id]
    cells = ctx.demand.cells
    in_band = cells["band"].isin([b.name for b in bands]).to_numpy()
    counts = band_counts(ctx)
    n, eld = int(in_band.sum()), sum(counts[b.name]["elderly"] for b in bands)
    dist = nearest_open_distance(ctx, in_band)
    far = f"; straight-line distance to the nearest institution after the plan: median {np.median(dist):,.0f} m, " \
          f"max {dist.max():,.0f} m" if dist.size else ""
    return Check("not_applicable", f"no radius is owed: {n} cell(s), {eld:,} elderly in this band{far}")


def nearest_open_distance(ctx: Ctx, mask: np.ndarray) -> np.ndarray:
    """Straight-line metres from each masked cell to the nearest site open after the plan."""
    return _nearest(ctx, mask, np.asarray(ctx.plan.open_after, dtype=bool))[1]


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
        return Check("not_met", f"{head}; without: {', '.join(short)}")
    return Check("met", f"{head}: all have one")


def _check_min_institutions(ctx: Ctx, rule: Any) -> Check:
    need = int(rule.params.get("min_institutions", 1) or 1)
    subs = set(ctx.demand.cells["subdistrict"].astype(str))
    inst = _institutions_after(ctx)
    inside = int(inst["subdistrict"].astype(str).isin(subs).sum())
    head = f"≥ {need} institution(s) in the study area; {inside} after the plan"
    if inside < need:
        return Check("not_met", head)
    return Check("met", head, assumption=(
        f"at least {need} of the {inside} institution(s) in the study area meet the rule as written "
        f"(“{rule.title}”): the data does not record what each institution can do"))


def _nursing_added(ctx: Ctx) -> int | None:
    """Nursing-type beds among the beds the plan adds (new sites + expansions); None when not modelled."""
    new, ex = ctx.plan.new_sites, ctx.plan.existing
    if "nursing_beds" not in new.columns:
        return None
    added = int(new["nursing_beds"].sum())
    if len(ex) and "nursing_beds_added" in ex.columns:
        added += int(ex["nursing_beds_added"].sum())
    return added


def _check_nursing_share(ctx: Ctx, rule: Any) -> Check:
    share = float(rule.params.get("share", 0))
    beds = beds_after(ctx)
    need = _ceil(share * beds.total)
    head = (f"nursing-type beds required: ceil({share:g} × {beds.total:,} beds after the plan) = {need:,}; "
            f"{beds.sentence()}")
    got = _nursing_added(ctx) if rule.status == "enforced" else None
    if got is None:
        return Check("not_applicable", f"{head}; not checked: the data has no nursing-bed counts")
    added = (f"beds the plan adds: {got:,} of {beds.added:,} nursing-type (enforced: "
             f"≥ ceil({share:g} × {beds.added:,}) = {_ceil(share * beds.added):,})" if beds.added
             else "the plan adds no beds")
    rest = need - got
    if rest <= 0:
        return Check("met", f"{head}; {added}: enough without the existing beds")
    kept = f"{beds.kept:,} existing beds"
    if beds.kept_assumed:
        kept += (" (their counts are themselves assumed)" if beds.kept_assumed >= beds.kept
                 else f" (counts assumed for {beds.kept_assumed:,} of them)")
    if rest > beds.kept:
        return Check("not_met", f"{head}; {added}; {rest:,} more would have to come from the {kept}: "
                                "more than there are")
    pct = 100.0 * rest / beds.kept
    return Check("met", f"{head}; {added}; {'the other' if got else 'all'} {rest:,} must come from the {kept}, "
                        "whose type is not in the data", assumption=(
                 f"at least {rest:,} of the {beds.kept:,} existing beds ({pct:.0f} %) are nursing-type; the data has "
                 "no nursing-bed counts for existing institutions"))


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
            return Check("not_met", f"{head}; short in {', '.join(short)}")
        return Check("met", f"{head}; provided by the new institutions")
    return Check("not_applicable", f"{head}; not checked: the data has no dementia-bed counts")


def _check_beds_per_1000(ctx: Ctx, rule: Any) -> Check:
    per_1000 = float(rule.params.get("per_1000", 0))
    elderly = elderly_total(ctx)
    beds = beds_after(ctx)
    rate = beds.total / elderly * 1000 if elderly > 0 else 0.0
    status = "met" if rate >= per_1000 else "not_met"
    detail = (f"{beds.total:,} institutional beds after the plan for {elderly:,} elderly = {rate:.1f} per 1,000 "
              f"(target {per_1000:g}); {beds.sentence()}")
    if beds.outside and elderly > 0:
        detail += f"; counting only the {beds.in_units:,} in the units: {beds.in_units / elderly * 1000:.1f} per 1,000"
    return Check(status, detail)


def _check_min_module(ctx: Ctx, rule: Any) -> Check:
    min_beds = float(rule.params.get("min_beds", 0))
    new = ctx.plan.new_sites
    if new.empty:
        return Check("not_applicable", "no new institution in the plan")
    small = new[new["beds"] < min_beds]
    if len(small):
        return Check("not_met", f"{len(small)} new institution(s) below {min_beds:g} beds: "
                                + ", ".join(sorted(small["site_id"].astype(str))))
    return Check("met", f"all {len(new)} new institutions have ≥ {min_beds:g} beds (smallest {new['beds'].min():g})")


def _check_hospital(ctx: Ctx, rule: Any) -> Check:
    new = ctx.plan.new_sites
    t = ctx.sites.table
    if new.empty or "near_hospital" not in t.columns:
        return Check("not_applicable", "preference only; no new institution or no hospital data")
    near = int(t["near_hospital"].to_numpy()[new["site"].to_numpy()].sum())
    return Check("not_applicable", f"preference only: {near} of {len(new)} new institutions next to a hospital")


def _check_spread(ctx: Ctx, rule: Any) -> Check:
    inst = _institutions_after(ctx)
    if inst.empty:
        return Check("not_applicable", "no institution after the plan")
    return Check("not_applicable", (f"preference only: {len(inst)} institutions after the plan, "
                                    f"{inst['beds'].mean():.0f} beds on average, largest {inst['beds'].max():.0f}"))


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
        return Check("not_applicable", f"superseded by {superseded}" + (f" — {rule.reason}" if rule.reason else ""))
    if rule.status == "out_of_scope":
        return Check("not_applicable", f"out of scope: {rule.reason}")
    fn = CHECKS.get(rule.kind or "")
    if fn is None:
        why = f": {rule.reason}" if rule.reason else ""
        return Check("not_applicable", f"not checked by the plan (kind {rule.kind or 'none'}){why}")
    return fn(ctx, rule)
