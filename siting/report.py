"""What a planner and a reviewer read: summary.json, the gap report (Markdown + HTML) and CSV tables.

Every number in the report names the rule that produced it (ZJ-BEDS, ZJ-R500 …) in a
rule-id column or in its header — the active rule set's ids, or words saying no such rule
applies. Counts of elderly are rounded once, by the rule in :mod:`siting._report_checks`, and
the tables, sentences, CSV and summary.json print the same integers. Assumptions come first.
``summary.json`` has stable, sorted keys and is byte-identical across runs of the same inputs
except ``solver.seconds`` (the only timing in it; timings and timestamps otherwise live in
``manifest.json``).
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
    round_count,
    round_parts,
)
from .sites import ASSUMED_BEDS_NOTE

SUMMARY_NAME = "summary.json"
SCHEMA_PATH = Path(__file__).with_name("summary.schema.json")
TABLES = ("bands", "reach", "planning_units", "rules", "new_facilities", "existing_facilities", "uncoverable",
          "off_network")
STATUS_ZH = {"met": "满足", "not_met": "未满足", "not_applicable": "不适用", "met_assumed": "假设下满足"}
STATUS_LABEL = {"met": "✓ met 满足", "not_met": "✗ NOT MET 未满足", "not_applicable": "– n/a 不适用",
                "met_assumed": "✓ met on an assumption 假设下满足"}
SPECIAL_BEDS = (("nursing_beds", "nursing_share", "护理型床位", "Nursing-type beds"),
                ("dementia_beds", "dementia_beds", "认知障碍床位", "Dementia-care beds"))


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
    """One entry per rule of the rule set, in rule-set order: id, applied, status, detail, title.

    ``assumption`` is there when a ``met`` rests on something the data does not show.
    """
    ctx = _ctx(scenario, rules, demand, sites, reach, plan)
    out = []
    for rule in rules.rules:
        check = chk.check_rule(ctx, rule)
        entry = {"id": rule.id, "applied": check.applied or rule.status, "status": check.status,
                 "detail": check.detail, "title": rule.title}
        out.append({**entry, "assumption": check.assumption} if check.assumption else entry)
    return out


def _band_rows(ctx: chk.Ctx) -> dict[str, dict[str, Any]]:
    cells = ctx.demand.cells
    counts = chk.band_counts(ctx)
    out = {}
    for band in ctx.rules.bands:
        n = counts[band.name]
        out[band.name] = {
            "elderly": n["elderly"], "cells": int((cells["band"] == band.name).sum()),
            "radius_m": _r(chk.band_radius_m(band, ctx.scenario)), "rule_id": band.rule_id,
            "covered_before": n["covered_before"], "covered_after": n["covered_after"],
            "uncoverable": n["uncoverable"],
        }
    return out


def _unit_rows(ctx: chk.Ctx) -> list[dict[str, Any]]:
    elderly = chk.unit_counts(ctx)
    rows = []
    for r in ctx.plan.units.sort_values("unit_id").itertuples():
        rows.append({"id": str(r.unit_id), "name": str(r.name), "elderly": elderly[str(r.unit_id)],
                     "beds_required": int(r.beds_required), "beds_existing": int(r.beds_existing),
                     "beds_new": int(r.beds_new), "deficit_before": int(r.deficit_before),
                     "deficit_after": int(r.deficit_after)})
    return rows


def _new_rows(ctx: chk.Ctx) -> list[dict[str, Any]]:
    """New institutions; nursing / dementia beds when the model types them (rule enforced)."""
    t = ctx.sites.table
    new = ctx.plan.new_sites
    special = [key for key, *_ in SPECIAL_BEDS if key in new.columns]
    rows = []
    for r in new.itertuples():
        rows.append({"id": str(r.site_id), "x": _r(t["x"].iat[r.site]), "y": _r(t["y"].iat[r.site]),
                     "beds": int(r.beds), "unit_id": str(r.unit_id), "cost": _r(r.cost, 2),
                     **{key: int(getattr(r, key)) for key in special}})
    return sorted(rows, key=lambda d: d["id"])


def _existing_rows(ctx: chk.Ctx) -> list[dict[str, Any]]:
    t = ctx.sites.table
    ex = ctx.plan.existing
    typed = "nursing_beds_added" in ex.columns
    rows = []
    for r in ex.itertuples():
        rows.append({"id": str(r.site_id), "name": str(r.name), "unit_id": str(t["unit_id"].iat[r.site]),
                     "action": str(r.action), "beds_before": int(r.beds_before),
                     "beds_added": int(r.beds_added), "beds_after": int(r.beds_after),
                     "beds_assumed": bool(r.beds_assumed), "cost": _r(r.cost, 2),
                     **({"nursing_beds_added": int(r.nursing_beds_added)} if typed else {})})
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
        if len(assumed) and ASSUMED_BEDS_NOTE in str(note):  # said above, with the names
            continue
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
    bands = _band_rows(ctx)
    new_beds = float(plan.new_sites["beds"].sum()) + float(plan.existing["beds_added"].sum()
                                                          if len(plan.existing) else 0)
    return {
        "scenario": scenario.name,
        "rule_set": rules.name,
        "rule_set_version": str(rules.version),
        "objective": plan.objective_kind,
        "crs": demand.crs,
        "distance_mode": reach.mode,
        "elderly_total": chk.elderly_total(ctx),
        "bands": bands,
        "planning_units": _unit_rows(ctx),
        "new_facilities": _new_rows(ctx),
        "existing_facilities": _existing_rows(ctx),
        "new_beds": round(new_beds),
        "cost_total": _r(plan.cost_total, 2),
        "uncoverable_elderly": sum(b["uncoverable"] for b in bands.values()),
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


def _reach_section(ctx: chk.Ctx) -> tuple[Section, Table]:
    """Per band, before solving: who has an existing institution / any candidate within the owed radius.

    Bands in rule-set order; elderly and uncoverable elderly rounded as in the other tables.
    """
    from .reach import reach_summary

    frame = reach_summary(ctx.demand, ctx.sites, ctx.reach).set_index("band")
    counts = chk.band_counts(ctx)
    rows = []
    for band in ctx.rules.bands:
        if band.name not in frame.index:
            continue
        r, total = frame.loc[band.name], counts[band.name]["elderly"]
        unc = float(r["uncoverable_elderly"])
        rows.append({**r.to_dict(), "band": band.name, "elderly": total,
                     "uncoverable_elderly": round_parts([unc, max(0.0, float(r["elderly"]) - unc)], total)[0]})
    pct = lambda v: f_pct(None if v is None else 100 * v)  # noqa: E731
    cols = (Col("band", "密度分区", "Band"), Col("rule_id", "规则", "Rule"), Col("n_cells", "网格数", "Cells", f_int),
            Col("elderly", "老年人", "Elderly", f_int),
            Col("share_existing", "现有机构可达", "Share with an existing institution in reach", pct),
            Col("share_candidate", "候选点可达", "Share with a candidate site in reach", pct),
            Col("uncoverable_elderly", "无法覆盖", "Uncoverable elderly (no site in reach)", f_int))
    table = Table(cols, tuple(rows), csv="reach",
                  caption=f"before solving; distance: {_detour_text(ctx)}; shares are of the band's elderly, "
                          "within the radius its rule owes (empty: the band owes no radius)")
    return Section("可达性", "Reach before the plan", tables=(table,)), table


def _detour_text(ctx: chk.Ctx) -> str:
    """The distance mode, with the median network detour when one was measured."""
    meta = ctx.reach.meta
    if ctx.reach.mode != "network":
        return ctx.reach.mode
    head = f"network ({meta.get('network_kind', 'walk')})"
    detour = meta.get("detour_ratio_median")
    if detour is not None and math.isfinite(detour):
        return f"{head}, median detour network ÷ straight line {detour:.2f}"
    return f"{head}; no detour measured (no cell is owed a radius, so no cell–site pair was searched)"


def _curve_section(summary: dict, radius_ids: str) -> tuple[Section, Table] | None:
    rows = summary.get("coverage_curve")
    if not rows:
        return None
    cols = (Col("limit", "限额", "Limit (budget CNY or sites)", f_int),
            Col("covered_elderly", f"覆盖老年人 [{radius_ids}]", "Covered elderly", f_int),
            Col("covered_share", "覆盖率", "Covered share", lambda v: f_pct(None if v is None else 100 * v)),
            Col("new_sites", "新建机构", "New sites", f_int), Col("new_beds", "新增床位", "New beds", f_int),
            Col("cost", "费用(假设)", "Cost (assumed)", f_int), Col("status", "求解状态", "Solver status"))
    table = Table(cols, tuple(rows), csv="coverage_curve",
                  caption="each point solved exactly: most elderly covered within their band radius under the "
                          "limit, then least cost at that coverage; the beds rule as in the scenario's objective")
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


def _tag(rule_id: str) -> str:
    """" [ZJ-BEDS]" for a column header, "" when the rule set has no such rule."""
    return f" [{rule_id}]" if rule_id else ""


def _units_table(ctx: chk.Ctx, summary: dict) -> Table:
    beds_rule = ctx.rules.kind_ids("beds_per_unit")
    per_10k = ctx.rules.param("beds_per_unit", "beds_per_10k")
    rows = [{"unit_id": u["id"], "name": u["name"], "elderly": u["elderly"], "rule_id": beds_rule,
             "beds_required": u["beds_required"], "beds_existing": u["beds_existing"],
             "beds_new": u["beds_new"], "deficit_before": u["deficit_before"],
             "deficit_after": u["deficit_after"]} for u in summary["planning_units"]]
    keys = ("elderly", "beds_required", "beds_existing", "beds_new", "deficit_before", "deficit_after")
    total = {"unit_id": "合计 Total", **{k: sum(r[k] or 0 for r in rows) for k in keys}}
    ruled = f_int if beds_rule else (lambda _v: "—")
    cols = (Col("unit_id", "规划单元", "Planning unit"), Col("name", "名称", "Name"),
            Col("elderly", "常住老年人", "Resident elderly", f_int), Col("rule_id", "规则", "Rule"),
            Col("beds_required", f"需配床位{_tag(beds_rule)}", "Beds required", ruled),
            Col("beds_existing", "现有床位", "Existing beds", f_int),
            Col("beds_new", "新增床位", "New beds", f_int),
            Col("deficit_before", f"缺口(现状){_tag(beds_rule)}", "Deficit before", ruled),
            Col("deficit_after", f"缺口(规划后){_tag(beds_rule)}", "Deficit after", ruled))
    if beds_rule:
        cap = (f"{beds_rule}: beds required = ceil({per_10k:g} / 10,000 × resident elderly); "
               "new beds = new institutions + expansions; deficit = max(0, required − beds)")
    else:
        cap = (f"rule set {ctx.rules.name} has no beds-per-elderly rule: no unit owes a number of beds (—); "
               "new beds = new institutions + expansions")
    return Table(cols, tuple(rows), csv="planning_units", total=total, caption=cap)


def _rules_table(ctx: chk.Ctx, summary: dict) -> Table:
    rows = []
    for check in summary["rules"]:
        rule = ctx.rules.rule(check["id"])
        assumed = check["status"] == "met" and bool(check.get("assumption"))
        rows.append({"id": rule.id, "applied": check["applied"], "status": check["status"],
                     "status_zh": STATUS_ZH["met_assumed" if assumed else check["status"]], "title": rule.title,
                     "quote_zh": rule.quote_zh, "source": rule.source, "section": rule.section or "",
                     "detail": check["detail"], "assumption": check.get("assumption", "")})
    cols = (Col("id", "规则", "Rule"), Col("applied", "执行方式", "Applied as"),
            Col("status", "结果", "Status", f_status), Col("status_zh", "结果(中文)", "Status (zh)"),
            Col("title", "内容", "Title"), Col("quote_zh", "原文", "Quoted sentence"),
            Col("source", "来源文件", "Source seed file"), Col("section", "章节", "Section"),
            Col("detail", "核查", "Detail"), Col("assumption", "所依假设", "Rests on (assumption)"))
    return Table(cols, tuple(rows), csv="rules")


def _newly_covered(ctx: chk.Ctx) -> dict[int, dict[str, float]]:
    """Per new site column: elderly within its reach that no site covered before, by band rule (unrounded)."""
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


def _new_table(ctx: chk.Ctx, summary: dict) -> tuple[Table, Table]:
    """The table shown and the CSV: newly reached elderly rounded once per site, the per-rule parts
    rounded together so they add up to it (one numeric CSV column per radius rule)."""
    beds_rule = ctx.rules.kind_ids("beds_per_unit")
    radius_rules = [b.rule_id for b in ctx.rules.bands if chk.band_radius_m(b, ctx.scenario) is not None]
    radius_rules = list(dict.fromkeys(radius_rules))
    names = dict(zip(ctx.plan.units["unit_id"].astype(str), ctx.plan.units["name"].astype(str), strict=False))
    fresh = _newly_covered(ctx)
    col_of = dict(zip(ctx.plan.new_sites["site_id"].astype(str), ctx.plan.new_sites["site"].astype(int),
                      strict=False))
    rows = []
    for f in summary["new_facilities"]:
        got = fresh.get(col_of[f["id"]], {})
        by_rule = {rid: got[rid] for rid in sorted(got, key=lambda r: (r not in radius_rules, radius_rules.index(r)
                                                                       if r in radius_rules else 0, r))}
        total = round_count(math.fsum(by_rule.values()))
        parts = dict(zip(by_rule, round_parts(list(by_rule.values()), total), strict=True))
        rows.append({**f, "site_id": f["id"], "unit_name": names.get(f["unit_id"], ""),
                     "newly_covered_elderly": total,
                     "newly_covered_by_rule": "; ".join(f"{k}: {v:,}" for k, v in parts.items()),
                     **{f"newly_covered_{rid}": parts.get(rid, 0) for rid in radius_rules}})
    special = [Col(key, f"{zh}{_tag(ctx.rules.kind_ids(kind))}", en, f_int) for key, kind, zh, en in SPECIAL_BEDS
               if any(key in f for f in summary["new_facilities"])]
    head = (Col("site_id", "编号", "Site"), Col("x", "X", "x (m)", f_int), Col("y", "Y", "y (m)", f_int),
            Col("unit_id", "规划单元", "Planning unit"), Col("unit_name", "名称", "Unit name"),
            Col("beds", f"床位{_tag(beds_rule)}", "Beds", f_int), *special,
            Col("cost", "费用(假设)", "Cost (assumed)", f_int))
    if not radius_rules:
        cap = (f"coordinates in {ctx.demand.crs}; rule set {ctx.rules.name} owes no radius, so no elderly are "
               "counted as newly reached")
        return Table(head, tuple(rows), caption=cap), Table(head, tuple(rows), csv="new_facilities", caption=cap)
    head = (*head, Col("newly_covered_elderly", "新覆盖老年人", "Newly reached elderly", f_int))
    cap = (f"coordinates in {ctx.demand.crs}; newly reached = elderly within the site's owed radius that no "
           "institution reached before the plan (a cell reached by two new sites counts for both); the parts by "
           "rule add up to it")
    shown = Table((*head, Col("newly_covered_by_rule", "按规则", "By rule")), tuple(rows), caption=cap)
    per_rule = tuple(Col(f"newly_covered_{rid}", f"新覆盖 [{rid}]", f"Newly reached [{rid}]", f_int)
                     for rid in radius_rules)
    return shown, Table((*head, *per_rule), tuple(rows), csv="new_facilities", caption=cap)


def _existing_table(ctx: chk.Ctx, summary: dict) -> tuple[Table, Table]:
    """The table shown (labels in both languages) and the one written as CSV (raw values)."""
    action_zh = {"kept": "保留 kept", "expanded": "扩建 expanded", "closed": "关闭 closed"}
    rows = [{**e, "site_id": e["id"], "action_label": action_zh.get(e["action"], e["action"]),
             "beds_assumed_label": "假设 assumed" if e["beds_assumed"] else "已知 known"}
            for e in summary["existing_facilities"]]
    cols = (Col("site_id", "编号", "Site"), Col("name", "名称", "Name"),
            Col("unit_id", "规划单元", "Planning unit"), Col("action", "措施", "Action"),
            Col("beds_before", "现有床位", "Beds before", f_int),
            Col("beds_added", "扩建床位", "Beds added", f_int),
            *([Col("nursing_beds_added", f"扩建护理型床位{_tag(ctx.rules.kind_ids('nursing_share'))}",
                   "Nursing-type beds added", f_int)] if any("nursing_beds_added" in r for r in rows) else []),
            Col("beds_after", "规划后床位", "Beds after", f_int),
            Col("beds_assumed", "床位数来源", "Bed count"), Col("cost", "费用(假设)", "Cost (assumed)", f_int))
    md_cols = tuple(Col("action_label", c.zh, c.en) if c.key == "action" else
                    Col("beds_assumed_label", c.zh, c.en) if c.key == "beds_assumed" else c for c in cols)
    return Table(md_cols, tuple(rows)), Table(cols, tuple(rows), csv="existing_facilities")


def _uncoverable_rows(ctx: chk.Ctx) -> list[dict[str, Any]]:
    cells = ctx.demand.cells
    mask = np.asarray(ctx.plan.uncoverable, dtype=bool)
    if not mask.any():
        return []
    near_id, near_m = chk.nearest_site(ctx, mask)
    sub = cells.loc[mask, ["cell_id", "x", "y", "unit_id", "unit_name", "band", "rule_id", "radius_m",
                           "elderly"]]
    rows = [{"cell_id": int(r.cell_id), "x": _r(r.x), "y": _r(r.y), "unit_id": str(r.unit_id),
             "unit_name": str(r.unit_name), "band": str(r.band), "rule_id": str(r.rule_id),
             "radius_m": _r(r.radius_m), "elderly": _r(r.elderly), "nearest_site": str(i), "nearest_site_m": _r(d)}
            for r, i, d in zip(sub.itertuples(), near_id, near_m, strict=True)]
    return sorted(rows, key=lambda d: d["cell_id"])


def _uncoverable_section(ctx: chk.Ctx, rows: list[dict[str, Any]]) -> tuple[Section, Table]:
    """Uncoverable cells grouped by band and unit with where to add candidates; the full CSV table."""
    cols = (Col("cell_id", "网格", "Cell"), Col("x", "X", "x (m)", f_int), Col("y", "Y", "y (m)", f_int),
            Col("unit_id", "规划单元", "Planning unit"), Col("unit_name", "名称", "Unit name"),
            Col("band", "密度分区", "Band"), Col("rule_id", "规则", "Rule"),
            Col("radius_m", "服务半径", "Radius", f_m), Col("elderly", "老年人", "Elderly", f_int),
            Col("nearest_site", "最近站点", "Nearest site"),
            Col("nearest_site_m", "最近站点(直线)", "Nearest site (straight line)", f_m))
    full = Table(cols, tuple(rows), csv="uncoverable")
    if not rows:
        return Section("无法覆盖", "What remains uncoverable", paragraphs=(
            "每个有服务半径要求的网格都至少有一个候选或现有站点 · Every cell owed a radius has at least one "
            "existing or candidate site within it.",)), full
    bullets = []
    counts = chk.band_counts(ctx)
    for band in ctx.rules.bands:
        m = (ctx.demand.cells["band"] == band.name).to_numpy()
        radius = chk.band_radius_m(band, ctx.scenario)
        if radius is None:
            continue
        for g in chk.uncoverable_groups(ctx, m, counts[band.name]["uncoverable"]).itertuples():
            bullets.append(f"{band.rule_id}: no site within {radius:g} m of {g.cells} cell(s) "
                           f"({g.elderly:,} elderly) in {g.unit_id} {g.unit_name} — {chk.reach_advice(ctx, g, radius)}")
    shown = rows[:30]
    note = (f"showing 30 of {len(rows)} cells, largest first in tables/uncoverable.csv",) if len(rows) > 30 else ()
    return Section("无法覆盖", "What remains uncoverable", paragraphs=(
        "这些网格在其服务半径内没有任何现有或候选站点，任何方案都无法覆盖 · These cells have no existing or "
        f"candidate site within their owed radius ({ctx.reach.mode} distance), so no plan can reach them; "
        "they are excluded from the coverage requirement and listed here. The nearest site is measured in a "
        "straight line; what counts is the distance in the run's mode.",),
        bullets=tuple(bullets), tables=(Table(cols, tuple(shown)),), after=note), full


def _off_network_table(ctx: chk.Ctx) -> Table:
    """Cells and sites the street network cannot serve (network mode; empty otherwise)."""
    reach, meta = ctx.reach, ctx.reach.meta
    net = getattr(ctx.scenario.distance, "network", None)
    far = (f"more than {meta.get('snap_limit_m', getattr(net, 'snap_limit_m', 0)):g} m from the "
           f"{meta.get('network_kind', 'street')} network")
    rows: list[dict[str, Any]] = []
    cells, t = ctx.demand.cells, ctx.sites.table
    island = {"cell": set(meta.get("cells_on_island", ())), "site": set(meta.get("sites_on_island", ()))}
    for what, idx in (("site", reach.sites_unsnapped), ("cell", reach.cells_unsnapped)):
        for i in np.asarray(idx, dtype=np.int64):
            src = t.iloc[i] if what == "site" else cells.iloc[i]
            rows.append({"what": what, "id": str(src["site_id"] if what == "site" else int(src["cell_id"])),
                         "kind": str(src["kind"]) if what == "site" else "demand cell",
                         "name": str(src.get("name", "") or "") if what == "site" else "",
                         "unit_id": str(src.get("unit_id", "") or ""), "x": _r(src["x"]), "y": _r(src["y"]),
                         "reason": "on a street island cut off from the main network" if int(i) in island[what]
                         else far})
    cols = (Col("what", "类型", "What"), Col("id", "编号", "Id"), Col("kind", "种类", "Kind"),
            Col("name", "名称", "Name"), Col("unit_id", "规划单元", "Planning unit"),
            Col("x", "X", "x (m)", f_int), Col("y", "Y", "y (m)", f_int), Col("reason", "原因", "Why"))
    return Table(cols, tuple(rows), csv="off_network",
                 caption="no network reach for these (reported, not dropped): a site here covers no cell, a cell "
                         "here is owed a radius no site reaches")


def _solver_section(ctx: chk.Ctx, summary: dict) -> Section:
    s = summary["solver"]
    opts = ctx.plan.solver.options
    status_zh = {"optimal": "最优 optimal", "time_limit": "达到时间上限 time limit reached",
                 "infeasible": "不可行 infeasible", "no_solution": "无解 no solution"}
    bullets = [f"求解器 Solver: {s['name']}", f"状态 Status: {status_zh.get(s['status'], s['status'])}",
               f"目标 Objective ({ctx.plan.objective_kind}): {_num(s['objective'])}",
               f"下界/上界 Bound: {_num(s['bound'])}", f"相对间隙 Gap: {_gap(s['gap'])}",
               f"用时 Time: {s['seconds']} s (not compared between runs; see manifest.json)"]
    tables: list[Table] = []
    for key, value in sorted(opts.items()):
        _spread(f"选项 Option {key}", _without_seconds(value), bullets, tables)
    return Section("求解", "Solver", bullets=tuple(bullets), tables=tuple(tables))


def _without_seconds(value: Any) -> Any:
    """An option value without its ``seconds`` (stage timings live in manifest.json, so reruns match)."""
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list | tuple):
        return [_without_seconds(v) for v in value]
    return value


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:,.4f}".rstrip("0").rstrip(".")


def _gap(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def _diagnosis_section(diag: dict[str, Any]) -> Section:
    """What cannot be met, by how much, and what to change (from :mod:`siting.diagnose`).

    ``summary`` (a sentence or a list of sentences) comes first; the other values as
    :func:`_spread` lays them out; empty values are left out.
    """
    paragraphs: list[str] = []
    bullets: list[str] = []
    tables: list[Table] = []
    summary = diag.get("summary") or diag.get("message") or []
    paragraphs += [summary] if isinstance(summary, str) else [str(x) for x in summary]
    for key in sorted(k for k in diag if k not in ("summary", "message", "status")):
        _spread(key, diag[key], bullets, tables)
    return Section("不可行诊断", "Why no plan meets the rules", paragraphs=tuple(paragraphs),
                   bullets=tuple(bullets), tables=tuple(tables))


def _is_records(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, dict) for v in value)


def _spread(key: str, value: Any, bullets: list[str], tables: list[Table]) -> None:
    """Lay out one value as readable text: a list of records becomes a table, a mapping one bullet
    ``key: a = 1; b = 2`` (its lists of records tables of their own), anything else one bullet."""
    if value is None or (isinstance(value, list | tuple | dict | str) and not value):
        return
    if _is_records(value):
        tables.append(_records_table(key, value))
    elif isinstance(value, dict):
        flat = {k: v for k, v in value.items() if not _is_records(v)}
        if flat:
            bullets.append(f"{key}: " + _plain(dict(sorted(flat.items()))))
        for k, v in sorted(value.items()):
            if _is_records(v):
                tables.append(_records_table(f"{key}: {k}", v))
    else:
        bullets.append(f"{key}: {_plain(value)}")


def _records_table(caption: str, records: list[dict[str, Any]]) -> Table:
    """Records as a table: columns in first-seen order (a rule id first), values as plain text."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    keys.sort(key=lambda k: k not in ("rule_id", "rule"))
    rows = tuple({k: _plain(r.get(k)) for k in keys} for r in records)
    return Table(tuple(Col(k, "", k, f_str) for k in keys), rows, caption=caption)


def _plain(v: Any, *, nested: bool = False) -> str:
    """A value as text: numbers with separators, lists comma-joined, mappings ``a = 1; b = 2``
    (in parentheses when inside another value)."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    if isinstance(v, dict):
        text = "; ".join(f"{k} = {_plain(x, nested=True)}" for k, x in v.items())
        return f"({text})" if nested else text
    if isinstance(v, list | tuple):
        return ", ".join(_plain(x, nested=True) for x in v)
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


def _distance_section(ctx: chk.Ctx, off_network: Table) -> Section:
    sc, reach = ctx.scenario, ctx.reach
    bullets = [f"距离方式 Distance mode: {reach.mode} "
               f"({'直线 straight line' if reach.mode == 'euclidean' else '沿街道网络 along the street network'})",
               f"坐标系 CRS: {ctx.demand.crs}"]
    net = sc.distance.network
    tables: tuple[Table, ...] = ()
    if reach.mode == "network" and net is not None:
        listed = "; listed below and in tables/off_network.csv" if off_network.rows else ""
        bullets += [f"路网 Network: {net.graph.name} ({net.kind}), speed {net.speed_kmh:g} km/h, "
                    f"snap limit {net.snap_limit_m:g} m",
                    f"未接入路网的网格 Cells off the network: {len(reach.cells_unsnapped)}; "
                    f"sites off the network: {len(reach.sites_unsnapped)} (reported, not dropped{listed})"]
        shown = off_network.rows[:30]
        tables = (Table(off_network.cols, shown, caption=off_network.caption),) if shown else ()
    return Section("距离", "Distance mode", bullets=tuple(bullets), tables=tables)


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
    assumed = [r["id"] for r in summary["rules"] if r["status"] == "met" and r.get("assumption")]
    lines.append(f"新增床位 New beds: {summary['new_beds']:,}; 费用 Cost (assumed): "
                 f"{summary['cost_total']:,.0f} {sc.costs.currency}; 未满足规则 rules not met: "
                 f"{', '.join(not_met) or 'none'}"
                 + (f"; 假设下满足 met only on an assumption: {', '.join(assumed)}" if assumed else "")
                 + f"; 无法覆盖 uncoverable elderly: {summary['uncoverable_elderly']:,}.")
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
    new_md, new_csv = _new_table(ctx, summary)
    ex_md, ex_csv = _existing_table(ctx, summary)
    off_network = _off_network_table(ctx)
    unc_section, unc_csv = _uncoverable_section(ctx, _uncoverable_rows(ctx))
    status = f" (solver {summary['solver']['status']}, gap {_gap(summary['solver']['gap'])})"
    reach_sec, reach_tab = _reach_section(ctx)
    sections += [
        demand, reach_sec,
        Section("覆盖", "Coverage before vs after" + status, tables=(_coverage_only(ctx, demand.tables[0]),)),
        Section("规划单元", "Planning units", tables=(units,)),
        Section("规则核查", "Rules", tables=(_rules_md(rules),)),
        Section("新建机构", "New institutions" + status, tables=(new_md,)),
        Section("现有机构", "Existing institutions", tables=(ex_md,)),
        unc_section, _solver_section(ctx, summary), _distance_section(ctx, off_network),
    ]
    curve = _curve_section(summary, ctx.rules.radius_ids(ctx.scenario.speed_kmh()))
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
    tables = [demand.tables[0], reach_tab, units, rules, new_csv, ex_csv, unc_csv, off_network]
    return doc, tables + ([curve[1]] if curve else [])


def _coverage_only(ctx: chk.Ctx, t: Table) -> Table:
    keep = ("band", "rule_id", "radius_m", "elderly", "covered_before", "covered_before_pct", "covered_after",
            "covered_after_pct", "uncoverable")
    free = [b for b in ctx.rules.bands if chk.band_radius_m(b, ctx.scenario) is None]
    owed = (f"; band(s) {', '.join(f'{b.name} ({b.rule_id})' for b in free)} owe no radius, so they are never "
            "counted as covered" if free else "")
    return Table(tuple(c for c in t.cols if c.key in keep), t.rows,
                 caption="covered = at least one institution open within the band's radius (rule id per row)" + owed)


def _rules_md(t: Table) -> Table:
    """The rules table as shown: a ``met`` resting on an assumption says so in its status."""
    drop = ("status_zh", "section")
    rows = tuple({**r, "status": "met_assumed"} if r["status"] == "met" and r["assumption"] else r for r in t.rows)
    return Table(tuple(c for c in t.cols if c.key not in drop), rows, caption=t.caption)


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

