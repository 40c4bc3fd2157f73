"""What a planner and a reviewer read: summary.json, the gap report (Markdown + HTML) and CSV tables.

Every number in the report names the rule that produced it (ZJ-BEDS, ZJ-R500 …) in a
rule-id column or in its header. Assumptions come first. ``summary.json`` has stable, sorted
keys and is byte-identical across runs of the same inputs except ``solver.seconds`` (the
only timing in it; timings and timestamps otherwise live in ``manifest.json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _report_checks as chk
from ._report_html import (
    Col,
    Doc,
    Section,
    Table,
    f_int,
    f_m,
    f_pct,
    f_str,
    render_csv,
    render_html,
    render_md,
)

SUMMARY_NAME = "summary.json"
SCHEMA_PATH = Path(__file__).with_name("summary.schema.json")
TABLES = ("bands", "reach", "planning_units", "rules", "new_facilities", "existing_facilities", "uncoverable")
STATUS_ZH = {"met": "满足", "not_met": "未满足", "not_applicable": "不适用"}
STATUS_LABEL = {"met": "✓ met 满足", "not_met": "✗ NOT MET 未满足", "not_applicable": "– n/a 不适用"}


def f_status(v: Any) -> str:
    """A rule status as shown in the report (the CSV keeps the raw value)."""
    return STATUS_LABEL.get(str(v), str(v))


def _r(value: Any, nd: int = 1) -> float | None:
    """Round for output; NaN/None become None (JSON null)."""
    if value is None:
        return None
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else round(v, nd) + 0.0


def _ctx(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, plan: Any) -> chk.Ctx:
    return chk.Ctx(scenario, rules, demand, sites, reach, plan)


# ---------------------------------------------------------------- summary


def rule_checks(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, plan: Any) -> list[dict]:
    """One entry per rule of the rule set, in rule-set order: id, applied, status, detail, title."""
    ctx = _ctx(scenario, rules, demand, sites, reach, plan)
    out = []
    for rule in rules.rules:
        status, detail = chk.check_rule(ctx, rule)
        out.append({"id": rule.id, "applied": rule.status, "status": status, "detail": detail,
                    "title": rule.title})
    return out


def _band_rows(ctx: chk.Ctx) -> dict[str, dict[str, Any]]:
    cells, plan = ctx.demand.cells, ctx.plan
    elderly = cells["elderly"].to_numpy(dtype=float)
    out = {}
    for band in ctx.rules.bands:
        m = (cells["band"] == band.name).to_numpy()
        out[band.name] = {
            "elderly": _r(elderly[m].sum()), "cells": int(m.sum()),
            "radius_m": _r(chk.band_radius_m(band, ctx.scenario)), "rule_id": band.rule_id,
            "covered_before": _r(elderly[m & plan.covered_before].sum()),
            "covered_after": _r(elderly[m & plan.covered_after].sum()),
            "uncoverable": _r(elderly[m & plan.uncoverable].sum()),
        }
    return out


def _unit_rows(plan: Any) -> list[dict[str, Any]]:
    rows = []
    for r in plan.units.sort_values("unit_id").itertuples():
        rows.append({"id": str(r.unit_id), "name": str(r.name), "elderly": _r(r.elderly),
                     "beds_required": int(r.beds_required), "beds_existing": int(r.beds_existing),
                     "beds_new": int(r.beds_new), "deficit_before": int(r.deficit_before),
                     "deficit_after": int(r.deficit_after)})
    return rows


def _new_rows(ctx: chk.Ctx) -> list[dict[str, Any]]:
    t = ctx.sites.table
    rows = []
    for r in ctx.plan.new_sites.itertuples():
        rows.append({"id": str(r.site_id), "x": _r(t["x"].iat[r.site]), "y": _r(t["y"].iat[r.site]),
                     "beds": int(r.beds), "unit_id": str(r.unit_id), "cost": _r(r.cost, 2)})
    return sorted(rows, key=lambda d: d["id"])


def _existing_rows(ctx: chk.Ctx) -> list[dict[str, Any]]:
    t = ctx.sites.table
    rows = []
    for r in ctx.plan.existing.itertuples():
        rows.append({"id": str(r.site_id), "name": str(r.name), "unit_id": str(t["unit_id"].iat[r.site]),
                     "action": str(r.action), "beds_before": int(r.beds_before),
                     "beds_added": int(r.beds_added), "beds_after": int(r.beds_after),
                     "beds_assumed": bool(r.beds_assumed), "cost": _r(r.cost, 2)})
    return sorted(rows, key=lambda d: d["id"])


def _assumptions(ctx: chk.Ctx) -> list[dict[str, str]]:
    """What the numbers rest on that is not measured: assumed beds, costs, partial census units …"""
    sc, out = ctx.scenario, []
    ex = ctx.plan.existing
    assumed = ex[ex["beds_assumed"].astype(bool)] if len(ex) else ex
    if len(assumed):
        names = ", ".join(f"{r.name or r.site_id} ({r.beds_before})" for r in assumed.sort_values(
            "site_id").itertuples())
        out.append({"kind": "assumed_beds", "detail": (
            f"{len(assumed)} of {len(ex)} existing institutions have no bed count; "
            f"{sc.existing_facilities.default_beds} beds assumed each (existing_facilities.default_beds): "
            f"{names}")})
    c = sc.costs
    out.append({"kind": "assumed_costs", "detail": (
        f"costs are planning assumptions in {c.currency}: new site {c.site:,.0f}, per new bed {c.bed:,.0f}, "
        f"expansion {c.expansion_fixed:,.0f} + {c.expansion_bed:,.0f} per bed, per module {c.module:,.0f}")})
    notes = " ".join(map(str, (*ctx.demand.notes, *ctx.sites.notes)))
    census = ctx.demand.census
    if census is not None and len(census) and "partial" in census.columns:
        for r in census[census["partial"].astype(bool)].sort_values("code").itertuples():
            if str(r.code) in notes:  # the demand builder already explains it in a note
                continue
            out.append({"kind": "partial_census_unit", "detail": (
                f"census unit {r.name} ({r.code}) lies partly outside the study area: {r.elderly_inside:,.0f} "
                f"of {r.count:,.0f} elderly placed on the grid ({r.weight_share_inside:.1%} of its weight)")})
    if "OpenStreetMap" not in notes:
        out += _facility_source(ctx)
    if ctx.reach.mode == "euclidean":
        out.append({"kind": "distance", "detail": (
            "distances are straight-line; the rule text (500米内 / 1000米内) does not say straight-line or "
            "walking — rerun with `distance.mode: network` to compare")})
    for note in (*ctx.demand.notes, *ctx.sites.notes, *ctx.reach.meta.get("notes", ())):
        out.append({"kind": "note", "detail": str(note)})
    return out


def _facility_source(ctx: chk.Ctx) -> list[dict[str, str]]:
    spec = ctx.scenario.existing_facilities
    if spec.layer is None:
        return [{"kind": "facilities_layer", "detail": "green-field plan: no existing institutions considered"}]
    osm = ctx.sites.meta.get("existing_source") == "osm" or spec.id_field.startswith("osm")
    if not osm:
        return []
    return [{"kind": "facilities_layer", "detail": (
        f"existing institutions come from OpenStreetMap ({spec.layer.path.name}), which is incomplete for "
        "elderly-care institutions in China: missing institutions make deficits look larger")}]


def _solver_dict(plan: Any) -> dict[str, Any]:
    s = plan.solver
    return {"name": s.name, "status": s.status, "objective": _r(s.objective, 4), "bound": _r(s.bound, 4),
            "gap": _r(s.gap, 6), "seconds": _r(s.seconds, 3)}


def build_summary(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, plan: Any) -> dict:
    """The machine-readable result (validated by ``summary.schema.json``)."""
    ctx = _ctx(scenario, rules, demand, sites, reach, plan)
    elderly = demand.cells["elderly"].to_numpy(dtype=float)
    new_beds = float(plan.new_sites["beds"].sum()) + float(plan.existing["beds_added"].sum()
                                                          if len(plan.existing) else 0)
    return {
        "scenario": scenario.name,
        "rule_set": rules.name,
        "rule_set_version": str(rules.version),
        "objective": plan.objective_kind,
        "crs": demand.crs,
        "distance_mode": reach.mode,
        "elderly_total": _r(elderly.sum()),
        "bands": _band_rows(ctx),
        "planning_units": _unit_rows(plan),
        "new_facilities": _new_rows(ctx),
        "existing_facilities": _existing_rows(ctx),
        "new_beds": round(new_beds),
        "cost_total": _r(plan.cost_total, 2),
        "uncoverable_elderly": _r(elderly[plan.uncoverable].sum()),
        "rules": rule_checks(scenario, rules, demand, sites, reach, plan),
        "solver": _solver_dict(plan),
        "assumptions": _assumptions(ctx),
        "overrides": [_jsonable(o) for o in rules.overrides],
        "diagnosis": _jsonable(plan.diagnosis) if plan.diagnosis else None,
        "coverage_curve": _curve_rows(plan),
    }


def _curve_rows(plan: Any) -> list[dict] | None:
    """The coverage curve (objective.coverage_curve): each limit solved exactly, or None."""
    curve = getattr(plan, "curve", None)
    if curve is None:
        return None
    return [{k: _jsonable(v) for k, v in row.items()} for row in curve.to_dict(orient="records")]


def _reach_section(ctx: Any) -> tuple[Section, Table]:
    """Per band, before solving: who has an existing institution / any candidate within the owed radius."""
    from .reach import reach_summary

    frame = reach_summary(ctx.demand, ctx.sites, ctx.reach)
    pct = lambda v: f_pct(None if v is None else 100 * v)  # noqa: E731
    cols = (Col("band", "密度分区", "Band"), Col("rule_id", "规则", "Rule"), Col("n_cells", "网格数", "Cells", f_int),
            Col("elderly", "老年人", "Elderly", f_int),
            Col("share_existing", "现有机构可达", "Share with an existing institution in reach", pct),
            Col("share_candidate", "候选点可达", "Share with a candidate site in reach", pct),
            Col("uncoverable_elderly", "无法覆盖", "Uncoverable elderly (no site in reach)", f_int))
    meta = ctx.reach.meta
    detour = meta.get("detour_ratio_median")
    how = (f"network ({meta.get('network_kind', 'walk')}), median detour network ÷ straight line "
           f"{detour:.2f}" if ctx.reach.mode == "network" and detour else ctx.reach.mode)
    table = Table(cols, tuple(frame.to_dict(orient="records")), csv="reach",
                  caption=f"before solving; distance: {how}; shares are of the band's elderly, within the radius "
                          "its rule owes")
    return Section("可达性", "Reach before the plan", tables=(table,)), table


def _curve_section(summary: dict) -> tuple[Section, Table] | None:
    rows = summary.get("coverage_curve")
    if not rows:
        return None
    cols = (Col("limit", "限额", "Limit (budget CNY or sites)", f_int),
            Col("covered_elderly", "覆盖老年人 [ZJ-R500/ZJ-R1000]", "Covered elderly", f_int),
            Col("covered_share", "覆盖率", "Covered share", lambda v: f_pct(None if v is None else 100 * v)),
            Col("new_sites", "新建机构", "New sites", f_int), Col("new_beds", "新增床位", "New beds", f_int),
            Col("cost", "费用(假设)", "Cost (assumed)", f_int), Col("status", "求解状态", "Solver status"))
    table = Table(cols, tuple(rows), csv="coverage_curve",
                  caption="each point solved exactly: most elderly covered within their band radius under the "
                          "limit, then least cost at that coverage; ZJ-BEDS as in the scenario's objective")
    return Section("覆盖曲线", "Coverage curve", tables=(table,)), table


def _jsonable(value: Any) -> Any:
    """Plain JSON types (numpy scalars → Python, NaN → None, tuples → lists, keys → str)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return _r(value, 6)
    return value if value is None or isinstance(value, str) else str(value)


def dumps_summary(summary: dict) -> str:
    """summary.json text: sorted keys, UTF-8 characters kept, 2-space indent, final newline."""
    return json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False) + "\n"


# ---------------------------------------------------------------- report document

def _pct(part: float | None, whole: float | None) -> float | None:
    return None if not whole else 100.0 * (part or 0.0) / whole


def _band_table(ctx: chk.Ctx, summary: dict) -> Table:
    rows = []
    for band in ctx.rules.bands:
        b = summary["bands"][band.name]
        lower = "—" if band.lower_km2 is None else f"{'≥' if band.lower_inclusive else '>'} {band.lower_km2:g}"
        rows.append({"band": band.name, "label_zh": band.label_zh, "rule_id": band.rule_id,
                     "density_km2": lower, "radius_m": b["radius_m"], "cells": b["cells"],
                     "elderly": b["elderly"], "covered_before": b["covered_before"],
                     "covered_before_pct": _pct(b["covered_before"], b["elderly"]),
                     "covered_after": b["covered_after"],
                     "covered_after_pct": _pct(b["covered_after"], b["elderly"]),
                     "uncoverable": b["uncoverable"]})
    cols = (Col("band", "密度分区", "Band"), Col("label_zh", "名称", "Label"), Col("rule_id", "规则", "Rule"),
            Col("density_km2", "老年人密度 (人/km²)", "Elderly density /km²"),
            Col("radius_m", "服务半径", "Radius", f_m), Col("cells", "网格数", "Cells", f_int),
            Col("elderly", "老年人", "Elderly", f_int),
            Col("covered_before", "覆盖(现状)", "Covered before", f_int),
            Col("covered_before_pct", "覆盖率(现状)", "Before %", f_pct),
            Col("covered_after", "覆盖(规划后)", "Covered after", f_int),
            Col("covered_after_pct", "覆盖率(规划后)", "After %", f_pct),
            Col("uncoverable", "无法覆盖", "Uncoverable", f_int))
    total = {"band": "合计 Total", "cells": sum(r["cells"] for r in rows),
             "elderly": sum(r["elderly"] or 0 for r in rows)}
    return Table(cols, tuple(rows), csv="bands", total=total)


def _units_table(ctx: chk.Ctx, summary: dict) -> Table:
    beds_rule = next((r.id for r in ctx.rules.by_kind("beds_per_unit")), "")
    per_10k = ctx.rules.param("beds_per_unit", "beds_per_10k")
    rows = [{"unit_id": u["id"], "name": u["name"], "elderly": u["elderly"], "rule_id": beds_rule,
             "beds_required": u["beds_required"], "beds_existing": u["beds_existing"],
             "beds_new": u["beds_new"], "deficit_before": u["deficit_before"],
             "deficit_after": u["deficit_after"]} for u in summary["planning_units"]]
    keys = ("elderly", "beds_required", "beds_existing", "beds_new", "deficit_before", "deficit_after")
    total = {"unit_id": "合计 Total", **{k: sum(r[k] or 0 for r in rows) for k in keys}}
    cols = (Col("unit_id", "规划单元", "Planning unit"), Col("name", "名称", "Name"),
            Col("elderly", "常住老年人", "Resident elderly", f_int), Col("rule_id", "规则", "Rule"),
            Col("beds_required", f"需配床位 [{beds_rule}]", "Beds required", f_int),
            Col("beds_existing", "现有床位", "Existing beds", f_int),
            Col("beds_new", "新增床位", "New beds", f_int),
            Col("deficit_before", f"缺口(现状) [{beds_rule}]", "Deficit before", f_int),
            Col("deficit_after", f"缺口(规划后) [{beds_rule}]", "Deficit after", f_int))
    cap = (f"{beds_rule}: beds required = ceil({per_10k} / 10,000 × resident elderly); "
           "new beds = new institutions + expansions; deficit = max(0, required − beds)")
    return Table(cols, tuple(rows), csv="planning_units", total=total, caption=cap)


def _rules_table(ctx: chk.Ctx, summary: dict) -> Table:
    rows = []
    for check in summary["rules"]:
        rule = ctx.rules.rule(check["id"])
        rows.append({"id": rule.id, "applied": rule.status, "status": check["status"],
                     "status_zh": STATUS_ZH[check["status"]], "title": rule.title,
                     "quote_zh": rule.quote_zh, "source": rule.source, "section": rule.section or "",
                     "detail": check["detail"]})
    cols = (Col("id", "规则", "Rule"), Col("applied", "执行方式", "Applied as"),
            Col("status", "结果", "Status", f_status), Col("status_zh", "结果(中文)", "Status (zh)"),
            Col("title", "内容", "Title"), Col("quote_zh", "原文", "Quoted sentence"),
            Col("source", "来源文件", "Source seed file"), Col("section", "章节", "Section"),
            Col("detail", "核查", "Detail"))
    return Table(cols, tuple(rows), csv="rules")


def _newly_covered(ctx: chk.Ctx) -> dict[int, dict[str, float]]:
    """Per new site column: elderly within its reach that no site covered before, by band rule."""
    csc = ctx.reach.dist.tocsc()
    cells = ctx.demand.cells
    fresh = ~np.asarray(ctx.plan.covered_before, dtype=bool)
    rule_of = cells["rule_id"].to_numpy()
    elderly = cells["elderly"].to_numpy(dtype=float)
    out: dict[int, dict[str, float]] = {}
    for j in ctx.plan.new_sites["site"].astype(int):
        rows = csc.indices[csc.indptr[j]:csc.indptr[j + 1]]
        rows = rows[fresh[rows]]
        s = pd.Series(elderly[rows]).groupby(rule_of[rows]).sum()
        out[int(j)] = {str(k): float(v) for k, v in sorted(s.items())}
    return out


def _new_table(ctx: chk.Ctx, summary: dict) -> Table:
    beds_rule = next((r.id for r in ctx.rules.by_kind("beds_per_unit")), "")
    names = dict(zip(ctx.plan.units["unit_id"].astype(str), ctx.plan.units["name"].astype(str), strict=False))
    fresh = _newly_covered(ctx)
    col_of = dict(zip(ctx.plan.new_sites["site_id"].astype(str), ctx.plan.new_sites["site"].astype(int),
                      strict=False))
    rows = []
    for f in summary["new_facilities"]:
        by_rule = fresh.get(col_of[f["id"]], {})
        rows.append({**f, "site_id": f["id"], "unit_name": names.get(f["unit_id"], ""),
                     "newly_covered_elderly": _r(sum(by_rule.values())),
                     "newly_covered_by_rule": "; ".join(f"{k}: {v:,.0f}" for k, v in by_rule.items())})
    cols = (Col("site_id", "编号", "Site"), Col("x", "X", "x (m)", f_int), Col("y", "Y", "y (m)", f_int),
            Col("unit_id", "规划单元", "Planning unit"), Col("unit_name", "名称", "Unit name"),
            Col("beds", f"床位 [{beds_rule}]", "Beds", f_int),
            Col("cost", "费用(假设)", "Cost (assumed)", f_int),
            Col("newly_covered_elderly", "新覆盖老年人", "Newly reached elderly", f_int),
            Col("newly_covered_by_rule", "按规则", "By rule"))
    cap = (f"coordinates in {ctx.demand.crs}; newly reached = elderly within the site's owed radius that no "
           "institution reached before the plan (a cell reached by two new sites counts for both)")
    return Table(cols, tuple(rows), csv="new_facilities", caption=cap)


def _existing_table(summary: dict) -> tuple[Table, Table]:
    """The table shown (labels in both languages) and the one written as CSV (raw values)."""
    action_zh = {"kept": "保留 kept", "expanded": "扩建 expanded", "closed": "关闭 closed"}
    rows = [{**e, "site_id": e["id"], "action_label": action_zh.get(e["action"], e["action"]),
             "beds_assumed_label": "假设 assumed" if e["beds_assumed"] else "已知 known"}
            for e in summary["existing_facilities"]]
    cols = (Col("site_id", "编号", "Site"), Col("name", "名称", "Name"),
            Col("unit_id", "规划单元", "Planning unit"), Col("action", "措施", "Action"),
            Col("beds_before", "现有床位", "Beds before", f_int),
            Col("beds_added", "扩建床位", "Beds added", f_int), Col("beds_after", "规划后床位", "Beds after", f_int),
            Col("beds_assumed", "床位数来源", "Bed count"), Col("cost", "费用(假设)", "Cost (assumed)", f_int))
    md_cols = tuple(Col("action_label", c.zh, c.en) if c.key == "action" else
                    Col("beds_assumed_label", c.zh, c.en) if c.key == "beds_assumed" else c for c in cols)
    return Table(md_cols, tuple(rows)), Table(cols, tuple(rows), csv="existing_facilities")


def _uncoverable_rows(ctx: chk.Ctx) -> list[dict[str, Any]]:
    cells = ctx.demand.cells
    mask = np.asarray(ctx.plan.uncoverable, dtype=bool)
    if not mask.any():
        return []
    nearest = _nearest_any_site(ctx, mask)
    sub = cells.loc[mask, ["cell_id", "x", "y", "unit_id", "unit_name", "band", "rule_id", "radius_m",
                           "elderly"]]
    rows = [{"cell_id": int(r.cell_id), "x": _r(r.x), "y": _r(r.y), "unit_id": str(r.unit_id),
             "unit_name": str(r.unit_name), "band": str(r.band), "rule_id": str(r.rule_id),
             "radius_m": _r(r.radius_m), "elderly": _r(r.elderly), "nearest_site_m": _r(d)}
            for r, d in zip(sub.itertuples(), nearest, strict=True)]
    return sorted(rows, key=lambda d: d["cell_id"])


def _nearest_any_site(ctx: chk.Ctx, mask: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    xy = ctx.sites.table[["x", "y"]].to_numpy()
    if len(xy) == 0:
        return np.full(int(mask.sum()), np.nan)
    d, _ = cKDTree(xy).query(ctx.demand.cells[["x", "y"]].to_numpy()[mask])
    return np.asarray(d, dtype=float)


def _uncoverable_section(ctx: chk.Ctx, rows: list[dict[str, Any]]) -> tuple[Section, Table]:
    """Uncoverable cells grouped by band and unit with where to add candidates; the full CSV table."""
    cols = (Col("cell_id", "网格", "Cell"), Col("x", "X", "x (m)", f_int), Col("y", "Y", "y (m)", f_int),
            Col("unit_id", "规划单元", "Planning unit"), Col("unit_name", "名称", "Unit name"),
            Col("band", "密度分区", "Band"), Col("rule_id", "规则", "Rule"),
            Col("radius_m", "服务半径", "Radius", f_m), Col("elderly", "老年人", "Elderly", f_int),
            Col("nearest_site_m", "最近站点(直线)", "Nearest site (straight line)", f_m))
    full = Table(cols, tuple(rows), csv="uncoverable")
    if not rows:
        return Section("无法覆盖", "What remains uncoverable", paragraphs=(
            "每个有服务半径要求的网格都至少有一个候选或现有站点 · Every cell owed a radius has at least one "
            "existing or candidate site within it.",)), full
    bullets = []
    for band in ctx.rules.bands:
        m = (ctx.demand.cells["band"] == band.name).to_numpy()
        radius = chk.band_radius_m(band, ctx.scenario)
        for g in chk.uncoverable_groups(ctx, m).itertuples():
            bullets.append(f"{band.rule_id}: no candidate within {radius:g} m of {g.cells} cell(s) "
                           f"({g.elderly:,.0f} elderly) in {g.unit_id} {g.unit_name} — add candidates near "
                           f"({g.x:.0f}, {g.y:.0f})")
    shown = rows[:30]
    note = (f"showing 30 of {len(rows)} cells, largest first in tables/uncoverable.csv",) if len(rows) > 30 else ()
    return Section("无法覆盖", "What remains uncoverable", paragraphs=(
        "这些网格在其服务半径内没有任何现有或候选站点，任何方案都无法覆盖 · These cells have no existing or "
        f"candidate site within their owed radius ({ctx.reach.mode} distance), so no plan can reach them; "
        "they are excluded from the coverage requirement and listed here.",),
        bullets=tuple(bullets), tables=(Table(cols, tuple(shown)),), after=note), full


def _solver_section(ctx: chk.Ctx, summary: dict) -> Section:
    s = summary["solver"]
    opts = ctx.plan.solver.options
    status_zh = {"optimal": "最优 optimal", "time_limit": "达到时间上限 time limit reached",
                 "infeasible": "不可行 infeasible", "no_solution": "无解 no solution"}
    bullets = [f"求解器 Solver: {s['name']}", f"状态 Status: {status_zh.get(s['status'], s['status'])}",
               f"目标 Objective ({ctx.plan.objective_kind}): {_num(s['objective'])}",
               f"下界/上界 Bound: {_num(s['bound'])}", f"相对间隙 Gap: {_gap(s['gap'])}",
               f"用时 Time: {s['seconds']} s (not compared between runs; see manifest.json)"]
    bullets += [f"选项 Option {k}: {v}" for k, v in sorted(opts.items())]
    return Section("求解", "Solver", bullets=tuple(bullets))


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:,.4f}".rstrip("0").rstrip(".")


def _gap(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def _diagnosis_section(diag: dict[str, Any]) -> Section:
    """What cannot be met, by how much, and what to change (from :mod:`siting.diagnose`).

    ``summary`` (a sentence or a list of sentences) comes first; lists of records become
    tables; other values become bullets; empty values are left out.
    """
    paragraphs, bullets, tables = [], [], []
    summary = diag.get("summary") or diag.get("message") or []
    paragraphs += [summary] if isinstance(summary, str) else [str(x) for x in summary]
    for key in sorted(k for k in diag if k not in ("summary", "message", "status")):
        value = diag[key]
        if value in (None, [], {}, ""):
            continue
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            keys = sorted({k for v in value for k in v}, key=lambda k: (k not in ("rule_id", "rule"), k))
            rows = tuple({k: _plain(v.get(k)) for k in keys} for v in value)
            tables.append(Table(tuple(Col(k, "", k, f_str) for k in keys), rows, caption=key))
        elif isinstance(value, dict):
            bullets.append(f"{key}: " + "; ".join(f"{k} = {_plain(v)}" for k, v in sorted(value.items())))
        else:
            bullets.append(f"{key}: {_plain(value)}")
    return Section("不可行诊断", "Why no plan meets the rules", paragraphs=tuple(paragraphs),
                   bullets=tuple(bullets), tables=tuple(tables))


def _plain(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    if isinstance(v, list | tuple):
        return ", ".join(_plain(x) for x in v)
    return "" if v is None else str(v)


def _demand_section(ctx: chk.Ctx, summary: dict) -> Section:
    sc, meta = ctx.scenario, ctx.demand.meta
    d = sc.density
    method = (f"kernel: elderly within {d.radius_m:g} m of each cell / land km² in that circle"
              if d.method == "kernel" else "zone: elderly of the zone / land km² of the zone")
    paras = (
        f"来源 Source: {sc.demand.source} ({meta.get('age', sc.demand.census.age if sc.demand.census else '60+')}"
        f" resident elderly, 常住老年人); grid {ctx.demand.cell_size_m:g} m in {ctx.demand.crs}; "
        f"{summary['elderly_total']:,.0f} elderly in {len(ctx.demand.cells):,} cells.",
        f"密度方法 Density method: {method}. 密度分区 Bands from rule set {ctx.rules.name} "
        f"(thresholds and radii below; each band cites its rule).",
    )
    return Section("需求", "Demand by density band", paragraphs=paras, tables=(_band_table(ctx, summary),))


def _distance_section(ctx: chk.Ctx) -> Section:
    sc, reach = ctx.scenario, ctx.reach
    bullets = [f"距离方式 Distance mode: {reach.mode} "
               f"({'直线 straight line' if reach.mode == 'euclidean' else '沿街道网络 along the street network'})",
               f"坐标系 CRS: {ctx.demand.crs}"]
    net = sc.distance.network
    if reach.mode == "network" and net is not None:
        bullets += [f"路网 Network: {net.graph.name} ({net.kind}), speed {net.speed_kmh:g} km/h, "
                    f"snap limit {net.snap_limit_m:g} m",
                    f"未接入路网的网格 Cells off the network: {len(reach.cells_unsnapped)}; "
                    f"sites off the network: {len(reach.sites_unsnapped)} (reported, not dropped)"]
    return Section("距离", "Distance mode", bullets=tuple(bullets))


def _lead(ctx: chk.Ctx, summary: dict) -> tuple[str, ...]:
    s = summary["solver"]
    sc = ctx.scenario
    lines = [f"情景 Scenario: {sc.name}; 规则集 Rule set: {ctx.rules.name} ({ctx.rules.title_zh}, "
             f"version {ctx.rules.version}); 距离 Distance: {ctx.reach.mode}; 目标 Objective: "
             f"{ctx.plan.objective_kind}; 求解 Solver: {s['name']} {s['status']}, gap {_gap(s['gap'])}."]
    if s["status"] == "infeasible":
        lines.append("无可行方案 NO FEASIBLE PLAN: the rules cannot all be met with these candidates and limits. "
                     "See 'Why no plan meets the rules'; the 'after' figures below are not a valid plan.")
    elif s["status"] == "time_limit":
        lines.append(f"达到时间上限 TIME LIMIT: the plan below is the best found, within {_gap(s['gap'])} of the "
                     "optimum (gap); costs and coverage may improve with a longer time limit.")
    elif s["status"] == "no_solution":
        lines.append("无解 NO SOLUTION: the solver found no plan within its limits.")
    not_met = [r["id"] for r in summary["rules"] if r["status"] == "not_met"]
    lines.append(f"新增床位 New beds: {summary['new_beds']:,}; 费用 Cost (assumed): "
                 f"{summary['cost_total']:,.0f} {sc.costs.currency}; 未满足规则 rules not met: "
                 f"{', '.join(not_met) or 'none'}; 无法覆盖 "
                 f"uncoverable elderly: {summary['uncoverable_elderly']:,.0f}.")
    return tuple(lines)


def build_document(summary: dict, ctx: chk.Ctx, maps_dir: Path | None = None) -> tuple[Doc, list[Table]]:
    """The gap report as a :class:`Doc`, plus every table written as CSV."""
    bullets = tuple(f"[{a['kind']}] {a['detail']}" for a in summary["assumptions"])
    overrides = tuple(f"{o.get('rule')}: {o.get('set')} — reason: {o.get('reason')}" for o in summary["overrides"])
    sections = [Section("假设", "Assumptions", bullets=bullets + tuple(f"[override] {o}" for o in overrides))]
    if summary.get("diagnosis"):
        sections.append(_diagnosis_section(summary["diagnosis"]))
    demand = _demand_section(ctx, summary)
    units, rules = _units_table(ctx, summary), _rules_table(ctx, summary)
    new = _new_table(ctx, summary)
    ex_md, ex_csv = _existing_table(summary)
    unc_section, unc_csv = _uncoverable_section(ctx, _uncoverable_rows(ctx))
    status = f" (solver {summary['solver']['status']}, gap {_gap(summary['solver']['gap'])})"
    reach_sec, reach_tab = _reach_section(ctx)
    sections += [
        demand, reach_sec,
        Section("覆盖", "Coverage before vs after" + status, tables=(_coverage_only(demand.tables[0]),)),
        Section("规划单元", "Planning units", tables=(units,)),
        Section("规则核查", "Rules", tables=(_rules_md(rules),)),
        Section("新建机构", "New institutions" + status, tables=(new,)),
        Section("现有机构", "Existing institutions", tables=(ex_md,)),
        unc_section, _solver_section(ctx, summary), _distance_section(ctx),
    ]
    curve = _curve_section(summary)
    if curve is not None:
        sections.append(curve[0])
    images = tuple(sorted(maps_dir.glob("*.png"))) if maps_dir is not None and maps_dir.is_dir() else ()
    if images:
        sections.append(Section("地图", "Maps", images=images))
    sections.append(Section("数据来源", "Data credits", paragraphs=(
        "Map data © OpenStreetMap contributors (ODbL 1.0) where the scenario uses OSM layers; census figures: "
        "7th national population census (2020).",)))
    title = f"养老机构布局缺口报告 · Elderly-care institution gap report — {ctx.scenario.title or ctx.scenario.name}"
    doc = Doc(title=title, lead=_lead(ctx, summary), sections=tuple(sections))
    return doc, [demand.tables[0], reach_tab, units, rules, new, ex_csv, unc_csv] + ([curve[1]] if curve else [])


def _coverage_only(t: Table) -> Table:
    keep = ("band", "rule_id", "radius_m", "elderly", "covered_before", "covered_before_pct", "covered_after",
            "covered_after_pct", "uncoverable")
    return Table(tuple(c for c in t.cols if c.key in keep), t.rows,
                 caption="covered = at least one institution open within the band's radius (rule id per row); "
                         "the low band owes no radius, so it is never counted as covered")


def _rules_md(t: Table) -> Table:
    drop = ("status_zh", "section")
    return Table(tuple(c for c in t.cols if c.key not in drop), t.rows, caption=t.caption)


def _write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8"))
    return path


def write_reports(out_dir: Path, summary: dict, scenario: Any, rules: Any, demand: Any, sites: Any,
                  reach: Any, plan: Any, maps_dir: Path | None = None) -> list[Path]:
    """Write report.md, report.html, tables/*.csv (UTF-8 with BOM) and summary.json; return the paths."""
    out_dir = Path(out_dir)
    ctx = _ctx(scenario, rules, demand, sites, reach, plan)
    doc, tables = build_document(summary, ctx, maps_dir)
    paths = [_write(out_dir / "report.md", render_md(doc, out_dir)),
             _write(out_dir / "report.html", render_html(doc))]
    paths += [_write(out_dir / "tables" / f"{t.csv}.csv", render_csv(t), bom=True) for t in tables]
    paths.append(_write(out_dir / SUMMARY_NAME, dumps_summary(summary)))
    return paths

