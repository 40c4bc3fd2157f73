"""Report: summary.json values, schema, rule checks, gap report (md/html), CSV tables, determinism."""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from factories import make_small_run, with_infeasible, with_time_limit

from siting import report

SCHEMA = json.loads(report.SCHEMA_PATH.read_text(encoding="utf-8"))
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def run():
    return make_small_run()


def _summary(run):
    return report.build_summary(*run)


def _write(run, out: Path, maps_dir: Path | None = None) -> list[Path]:
    return report.write_reports(out, _summary(run), *run, maps_dir=maps_dir)


# ---------------------------------------------------------------- summary numbers (hand-computed)


def test_summary_totals_and_bands(run):
    s = _summary(run)
    assert s["scenario"] == "small_synthetic"
    assert s["rule_set"] == "zhejiang-2021"
    assert s["distance_mode"] == "euclidean"
    assert s["elderly_total"] == 2518.0  # 25 high (16×60 + 8×120 + 55), 24×20 medium, 12×5.25 low
    assert s["bands"]["high"] == {"elderly": 1975.0, "cells": 25, "radius_m": 500.0, "rule_id": "ZJ-R500",
                                  "covered_before": s["bands"]["high"]["covered_before"],
                                  "covered_after": 1920.0, "uncoverable": 55.0}
    assert s["bands"]["medium"]["elderly"] == 480.0 and s["bands"]["medium"]["radius_m"] == 1000.0
    assert s["bands"]["low"] == {"elderly": 63.0, "cells": 12, "radius_m": None, "rule_id": "ZJ-LOW",
                                 "covered_before": 0.0, "covered_after": 0.0, "uncoverable": 0.0}
    assert s["uncoverable_elderly"] == 55.0
    assert s["new_beds"] == 120  # 3 new × 30 + one expansion of 30
    assert s["cost_total"] == 23_300_000.0  # 3 × (3e6 + 30 × 1.2e5) + (5e5 + 30 × 1e5)


def test_summary_planning_units(run):
    units = {u["id"]: u for u in _summary(run)["planning_units"]}
    assert [*units] == ["U1", "U2", "U3"]
    assert units["U1"] == {"id": "U1", "name": "清波街道", "elderly": 661.0, "beds_required": 20,
                           "beds_existing": 20, "beds_new": 30, "deficit_before": 0, "deficit_after": 0}
    assert units["U2"]["deficit_before"] == 10 and units["U2"]["deficit_after"] == 0
    assert units["U3"]["beds_required"] == 36  # ceil(0.03 × 1196 = 35.88)
    assert units["U3"]["deficit_after"] == 6


def test_summary_facilities(run):
    s = _summary(run)
    assert s["new_facilities"] == [
        {"id": "C01", "x": 500257.0, "y": 3340043.0, "beds": 30, "unit_id": "U1", "cost": 6_600_000.0},
        {"id": "C02", "x": 500757.0, "y": 3340343.0, "beds": 30, "unit_id": "U2", "cost": 6_600_000.0},
        {"id": "C03", "x": 501057.0, "y": 3340143.0, "beds": 30, "unit_id": "U3", "cost": 6_600_000.0},
    ]
    actions = {e["id"]: (e["action"], e["beds_after"], e["beds_assumed"]) for e in s["existing_facilities"]}
    assert actions == {"E01": ("kept", 20, True), "E02": ("expanded", 40, False)}


def _brute_covered(run, open_ids: set[str]) -> dict[str, float]:
    """Covered elderly per band from raw coordinates (independent of the reach matrix)."""
    cells, t = run.demand.cells, run.sites.table
    xy = t.loc[t["site_id"].isin(open_ids), ["x", "y"]].to_numpy()
    out = {}
    for band in ("high", "medium", "low"):
        sub = cells[cells["band"] == band]
        total = 0.0
        for x, y, rad, eld in sub[["x", "y", "radius_m", "elderly"]].itertuples(index=False):
            if not np.isnan(rad) and (np.hypot(xy[:, 0] - x, xy[:, 1] - y) <= rad).any():
                total += eld
        out[band] = total
    return out


def test_coverage_matches_brute_force(run):
    s = _summary(run)
    before = _brute_covered(run, {"E01", "E02"})
    after = _brute_covered(run, {"E01", "E02", "C01", "C02", "C03"})
    for band in before:
        assert s["bands"][band]["covered_before"] == pytest.approx(before[band])
        assert s["bands"][band]["covered_after"] == pytest.approx(after[band])
    assert before["high"] < after["high"] == 1975.0 - 55.0


def test_summary_has_no_timings_except_solver_seconds(run):
    text = report.dumps_summary(_summary(run))
    assert "timing" not in text and "started" not in text
    assert json.loads(text)["solver"]["seconds"] == 0.42


# ---------------------------------------------------------------- rule checks


def test_every_rule_of_the_rule_set_is_reported(run):
    checks = report.rule_checks(*run)
    assert [c["id"] for c in checks] == run.rules.ids()
    assert {c["status"] for c in checks} <= {"met", "not_met", "not_applicable"}
    for c in checks:
        if run.rules.rule(c["id"]).status == "out_of_scope":
            assert c["status"] == "not_applicable" and c["detail"].startswith("out of scope")


def _check(run, rule_id):
    return next(c for c in report.rule_checks(*run) if c["id"] == rule_id)


def test_beds_rule_not_met_names_the_short_unit(run):
    c = _check(run, "ZJ-BEDS")
    assert c["status"] == "not_met"
    assert "U3 小营街道 short 6 beds (needs 36, has 30)" in c["detail"]


def test_beds_rule_met_without_deficit(run):
    units = run.plan.units.assign(deficit_after=0)
    fixed = run._replace(plan=replace(run.plan, units=units))
    assert _check(fixed, "ZJ-BEDS")["status"] == "met"


def test_radius_rule_met_and_names_uncoverable(run):
    c = _check(run, "ZJ-R500")
    assert c["status"] == "met"
    assert "55 elderly" in c["detail"] and "(501650, 3340050)" in c["detail"]


def test_radius_rule_not_met_when_a_coverable_cell_is_missed(run):
    covered = run.plan.covered_after.copy()
    i = int(np.flatnonzero((run.demand.cells["band"] == "high").to_numpy() & covered)[0])
    covered[i] = False
    broken = run._replace(plan=replace(run.plan, covered_after=covered))
    c = _check(broken, "ZJ-R500")
    assert c["status"] == "not_met" and "1 coverable cell(s)" in c["detail"]


def test_reported_rules_are_computed(run):
    assert "ceil(0.58 × 150 beds after the plan) = 87" in _check(run, "ZJ-NURSE")["detail"]
    dementia = _check(run, "ZJ-DEMENTIA")["detail"]
    assert "U1 2, U2 2, U3 3 (total 7)" in dementia  # ceil(20/10k × 661) = 2, ceil(20/10k × 1196) = 3
    inst = _check(run, "ZJ-INSTBEDS")
    assert inst["status"] == "met" and "59.6 per 1,000" in inst["detail"]  # 150 / 2518 × 1000


def test_low_band_reports_distances(run):
    c = _check(run, "ZJ-LOW")
    assert c["status"] == "not_applicable" and "12 cell(s), 63 elderly" in c["detail"]


# ---------------------------------------------------------------- schema


@pytest.mark.parametrize("variant", ["optimal", "time_limit", "infeasible"])
def test_summary_validates_against_schema(run, variant):
    r = {"optimal": run, "time_limit": with_time_limit(run), "infeasible": with_infeasible(run)}[variant]
    data = json.loads(report.dumps_summary(_summary(r)))
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_schema_rejects_unknown_keys_and_statuses(run):
    data = json.loads(report.dumps_summary(_summary(run)))
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.validate({**data, "surprise": 1}, SCHEMA)
    data["rules"][0]["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError, match="maybe"):
        jsonschema.validate(data, SCHEMA)


# ---------------------------------------------------------------- files


def test_write_reports_lists_every_file(run, tmp_path):
    paths = _write(run, tmp_path)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in paths)
    assert names == sorted(["report.md", "report.html", "summary.json"]
                           + [f"tables/{t}.csv" for t in report.TABLES])
    assert all(p.is_file() for p in paths)


def test_outputs_are_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    pa = _write(make_small_run(), a)
    pb = _write(make_small_run(), b)
    for x, y in zip(pa, pb, strict=True):
        assert x.read_bytes() == y.read_bytes(), x.name


def test_summary_differs_only_in_solver_seconds(run):
    slower = run._replace(plan=replace(run.plan, solver=replace(run.plan.solver, seconds=9.9)))
    a, b = _summary(run), _summary(slower)
    assert a != b
    a["solver"].pop("seconds"), b["solver"].pop("seconds")
    assert report.dumps_summary(a) == report.dumps_summary(b)


def test_chinese_text_intact(run, tmp_path):
    _write(run, tmp_path)
    assert "清波街道" in (tmp_path / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in html and "小营街道" in html and "按1万名常住老年人" in html
    raw = (tmp_path / "summary.json").read_bytes()
    assert "湖滨街道".encode() in raw and b"\\u" not in raw
    for name in report.TABLES:
        data = (tmp_path / "tables" / f"{name}.csv").read_bytes()
        assert data.startswith(b"\xef\xbb\xbf"), name  # BOM so Excel reads UTF-8
    units = (tmp_path / "tables" / "planning_units.csv").read_bytes().decode("utf-8-sig")
    assert "清波街道" in units


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))


def test_csv_columns_are_stable_and_cite_rules(run, tmp_path):
    _write(run, tmp_path)
    t = tmp_path / "tables"
    units = _csv(t / "planning_units.csv")
    assert list(units[0]) == ["unit_id", "name", "elderly", "rule_id", "beds_required", "beds_existing",
                              "beds_new", "deficit_before", "deficit_after"]
    assert {u["rule_id"] for u in units} == {"ZJ-BEDS"}
    assert units[2]["deficit_after"] == "6"
    bands = _csv(t / "bands.csv")
    assert [(b["band"], b["rule_id"]) for b in bands] == [("high", "ZJ-R500"), ("medium", "ZJ-R1000"),
                                                          ("low", "ZJ-LOW")]
    rules = _csv(t / "rules.csv")
    assert [r["id"] for r in rules] == run.rules.ids()
    assert all(r["quote_zh"] and r["source"] for r in rules)
    new = _csv(t / "new_facilities.csv")
    assert [n["site_id"] for n in new] == ["C01", "C02", "C03"]
    assert new[2]["newly_covered_ZJ-R500"] == "360"  # three U3 high cells of 120 elderly
    assert new[2]["newly_covered_ZJ-R1000"] == "0" and "newly_covered_by_rule" not in new[2]  # numbers, not text
    assert _csv(t / "uncoverable.csv")[0]["cell_id"] == "16"
    assert [e["action"] for e in _csv(t / "existing_facilities.csv")] == ["kept", "expanded"]


def test_markdown_sections_and_rule_ids(run, tmp_path):
    _write(run, tmp_path)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads[0] == "## 1. 假设 · Assumptions"  # assumptions first
    for word in ("Demand by density band", "Coverage before vs after", "Planning units", "Rules",
                 "New institutions", "Existing institutions", "What remains uncoverable", "Solver",
                 "Distance mode"):
        assert any(word in h for h in heads), word
    assert "需配床位 [ZJ-BEDS] Beds required" in md
    assert "[assumed_beds]" in md and "清波颐养院 (20)" in md
    assert "no site within 500 m of 1 cell(s) (55 elderly) in U3 小营街道" in md
    assert "add candidates near (501650, 3340050)" in md
    assert "✗ NOT MET 未满足" in md


def test_html_is_self_contained_with_embedded_maps(run, tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "coverage.png").write_bytes(PNG_1PX)
    _write(run, tmp_path / "out", maps_dir=maps)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," + base64.b64encode(PNG_1PX).decode() in html
    assert 'src="http' not in html and "<link" not in html and "<script" not in html
    assert "<style>" in html and html.count("<table>") >= 6
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "![coverage](../maps/coverage.png)" in md


def test_missing_maps_dir_is_fine(run, tmp_path):
    _write(run, tmp_path, maps_dir=tmp_path / "nope")
    assert "Maps" not in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_time_limit_gap_shown_everywhere(run, tmp_path):
    r = with_time_limit(run, gap=0.05)
    paths = report.write_reports(tmp_path, _summary(r), *r)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert md.count("5.00 %") >= 4  # lead, coverage, new institutions, solver
    assert "TIME LIMIT" in md
    assert json.loads(paths[-1].read_text(encoding="utf-8"))["solver"]["gap"] == 0.05
    assert "time_limit" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_infeasible_plan_says_what_to_change(run, tmp_path):
    r = with_infeasible(run)
    s = _summary(r)
    assert s["solver"]["status"] == "infeasible" and s["new_facilities"] == []
    assert s["diagnosis"]["problems"][0]["rule"] == "ZJ-BEDS"
    report.write_reports(tmp_path, s, *r)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "NO FEASIBLE PLAN" in md
    assert "Why no plan meets the rules" in md.split("Demand by density band")[0]  # right after assumptions
    assert "ZJ-BEDS: unit U3 needs 36 beds" in md and "| 36 |" in md  # sentence, then the problems table
    assert "add candidate sites near (501650, 3340050)" in md and "uncoverable: cells = 1; elderly = 55" in md
    assert _check(r, "ZJ-BEDS")["status"] == "not_met"


# ---------------------------------------------------------------- one rounding rule (audit defect 2)


@pytest.mark.parametrize("parts", [[0.6, 0.6], [2206.5], [79440.46, 2.81, 0.0], [1.5, 1.5, 1.0], [0.2] * 9,
                                   [24890.51, 7919.46, 2090.11]])
def test_parts_are_rounded_together_and_add_up(parts):
    from siting._report_html import round_count, round_parts

    got = round_parts(parts)
    assert sum(got) == round_count(sum(parts))  # the printed parts add up to the printed total
    assert all(g <= round_count(sum(parts)) for g in got)
    assert all(abs(g - p) < 1 for g, p in zip(got, parts, strict=True))  # each part moves by less than 1
    assert round_count(2206.5) == 2207 and round_count(24890.49) == 24890  # half up, once


def test_rounded_numbers_agree_between_tables_sentences_and_summary(run, tmp_path):
    s = _summary(run)
    assert sum(b["elderly"] for b in s["bands"].values()) == s["elderly_total"]
    assert sum(u["elderly"] for u in s["planning_units"]) == s["elderly_total"]
    assert all(isinstance(b[k], int) for b in s["bands"].values() for k in ("elderly", "covered_after"))
    high = s["bands"]["high"]
    assert f"{high['covered_after']:,} of {high['elderly']:,} elderly in band high" in _check(run, "ZJ-R500")["detail"]
    _write(run, tmp_path)
    for row in _csv(tmp_path / "tables" / "new_facilities.csv"):
        parts = [int(v) for k, v in row.items() if k.startswith("newly_covered_") and k != "newly_covered_elderly"]
        assert sum(parts) == int(row["newly_covered_elderly"])


# ---------------------------------------------------------------- assumptions behind "met" (audit defect 4)


def _with_nursing(run):
    """The plan as the model writes it when ZJ-NURSE is enforced: nursing beds per new site and expansion."""
    new = run.plan.new_sites.assign(nursing_beds=18)
    existing = run.plan.existing.assign(nursing_beds_added=[0, 18])
    return run._replace(plan=replace(run.plan, new_sites=new, existing=existing))


def test_nursing_rule_met_only_on_an_assumption_says_so(run, tmp_path):
    r = _with_nursing(run)
    c = _check(r, "ZJ-NURSE")  # 150 beds after: ceil(0.58 × 150) = 87; the plan adds 120, 72 nursing
    assert c["status"] == "met"
    assert c["assumption"].startswith("at least 15 of the 30 existing beds (50 %) are nursing-type")
    assert "beds the plan adds: 72 of 120 nursing-type" in c["detail"]
    s = _summary(r)
    assert [f["nursing_beds"] for f in s["new_facilities"]] == [18, 18, 18]
    jsonschema.validate(json.loads(report.dumps_summary(s)), SCHEMA, cls=jsonschema.Draft202012Validator)
    report.write_reports(tmp_path, s, *r)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| ZJ-NURSE | enforced | ✓ met on an assumption 假设下满足 |" in md
    assert "met only on an assumption: ZJ-NURSE" in md and "护理型床位 [ZJ-NURSE] Nursing-type beds" in md
    rules = {row["id"]: row for row in _csv(tmp_path / "tables" / "rules.csv")}
    assert rules["ZJ-NURSE"]["status"] == "met" and rules["ZJ-NURSE"]["assumption"] == c["assumption"]
    assert [row["nursing_beds"] for row in _csv(tmp_path / "tables" / "new_facilities.csv")] == ["18"] * 3
    assert [row["nursing_beds_added"] for row in _csv(tmp_path / "tables" / "existing_facilities.csv")] == ["0", "18"]


def test_nursing_rule_not_met_when_even_all_existing_beds_would_not_do(run):
    r = _with_nursing(run)
    r = r._replace(plan=replace(r.plan, new_sites=r.plan.new_sites.assign(nursing_beds=0)))
    c = _check(r, "ZJ-NURSE")  # 87 needed, 18 added, 30 existing: 69 > 30
    assert c["status"] == "not_met" and "more than there are" in c["detail"] and "assumption" not in c


# ---------------------------------------------------------------- readable sections (audit defects 5, 6)


def test_no_raw_python_dicts_in_solver_and_diagnosis_sections(run, tmp_path):
    r = with_infeasible(run)
    diag = {**r.plan.diagnosis, "limits": {"budget": {"budget": 1e6, "min_budget": 2.5e6}},
            "uncoverable": {"count": 1, "elderly": 55.0, "listed": 1,
                            "cells": [{"cell_id": 16, "x": 501650.0, "elderly": 55.0, "rule_id": "ZJ-R500"}]}}
    stages = [{"stage": "min_cost", "status": "optimal", "objective": 811800000.0,
               "warm_start": {"objective": 818400000.0, "seconds": 0.005}}]
    solver = replace(r.plan.solver, options={**r.plan.solver.options, "stages": stages})
    r = r._replace(plan=replace(r.plan, diagnosis=diag, solver=solver))
    report.write_reports(tmp_path, _summary(r), *r)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "{'" not in md and "[{" not in md
    assert "limits: budget = (budget = 1,000,000; min_budget = 2,500,000)" in md
    assert "*uncoverable: cells*" in md and "| ZJ-R500 | 16 | 501,650 | 55 |" in md
    assert "*选项 Option stages*" in md
    assert "| min_cost | optimal | 811,800,000 | objective = 818,400,000 |" in md  # timings: manifest.json


def test_sites_off_the_network_are_listed_where_the_note_points(run, tmp_path):
    meta = {**run.reach.meta, "snap_limit_m": 300.0, "network_kind": "walk", "sites_on_island": [3]}
    off = run._replace(reach=replace(run.reach, mode="network", sites_unsnapped=np.array([0, 3])), )
    off = off._replace(reach=replace(off.reach, meta=meta))
    report.write_reports(tmp_path, _summary(off), *off)
    rows = _csv(tmp_path / "tables" / "off_network.csv")
    assert [(r["what"], r["id"], r["kind"]) for r in rows] == [("site", "E01", "existing"),
                                                               ("site", "C02", "candidate")]
    assert rows[0]["reason"] == "more than 300 m from the walk network"
    assert rows[1]["reason"] == "on a street island cut off from the main network"


def test_uncoverable_advice_names_the_nearest_site_and_why_it_does_not_reach(run):
    c = _check(run, "ZJ-R500")  # cell 16 at (501650, 3340050): nearest site C03, beyond 500 m
    assert "add candidates near (501650, 3340050): the nearest site, C03" in c["detail"]
    assert "beyond the 500 m radius" in c["detail"]
