"""Real runs of shipped scenarios: report.md, tables/*.csv, summary.json, layers and maps agree (user audit).

Each number a reviewer reads must be the same wherever it is printed, name the active rule
set's own rule ids, and say what it rests on. One run per scenario, shared by the tests.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import jsonschema
import pytest
from matplotlib.figure import Figure

from siting import _fonts, api, export, maps, report

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads(report.SCHEMA_PATH.read_text(encoding="utf-8"))
OTHER_RULE_SETS = ("dawukou", "weihai", "ningxia")  # rule sets that neither are nor extend Zhejiang's


Run = tuple[api.RunResult, Path]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """``runs(name)``: the shipped scenario ``name`` run once for the module, with its output folder."""
    done: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "out"
            done[name] = (api.run(REPO / "scenarios" / f"{name}.yaml", out=out), out)
        return done[name]

    return get


@pytest.fixture(scope="module")
def default(runs: Callable[[str], Run]) -> Run:
    return runs("hangzhou_shangcheng")


@pytest.fixture(params=OTHER_RULE_SETS)
def other(request: pytest.FixtureRequest, runs: Callable[[str], Run]) -> Run:
    return runs(f"hangzhou_shangcheng_{request.param}")


def _md(out: Path) -> str:
    return (out / "report.md").read_text(encoding="utf-8")


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def _csv(out: Path, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((out / "tables" / f"{name}.csv").read_bytes().decode("utf-8-sig"))))


def _section(md: str, title: str) -> str:
    """The text of the report section whose heading contains ``title``."""
    parts = re.split(r"^## \d+\. ", md, flags=re.M)
    return next(p for p in parts if title in p.splitlines()[0])


def _table(text: str) -> list[dict[str, str]]:
    """The first Markdown table of ``text``, rows keyed by the English end of each header."""
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    heads = [h.strip() for h in lines[0].strip("|").split(" | ")]
    return [dict(zip(heads, [c.strip() for c in ln.strip("|").split(" | ")], strict=True)) for ln in lines[1:]]


def _col(row: dict[str, str], english: str) -> str:
    return next(v for k, v in row.items() if k.endswith(english))


def _n(text: str) -> int:
    return int(text.replace(",", ""))


def _texts(fig: Figure) -> str:
    found = [t.get_text() for t in fig.texts] + [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    for ax in fig.axes:
        found += [t.get_text() for t in ax.texts] + [ax.get_title(), ax.get_xlabel()]
    return "\n".join(found)


def _map_texts(res: api.RunResult) -> dict[str, str]:
    layers = export.build_layers(res.scenario, res.rules, res.demand, res.sites, res.reach, res.plan)
    with _fonts.cjk_rc():
        return {m.__name__: _texts(m(layers, res.scenario, res.rules, res.demand, res.reach))
                for m in (maps.map_density_bands, maps.map_coverage, maps.map_bed_deficit)}


# ---------------------------------------------------------------- default scenario (zhejiang-2021)


def test_same_quantity_prints_the_same_everywhere(default: Run) -> None:
    """Defect 2: one rounding — bands, coverage, reach, units, rule rows and summary.json agree."""
    _, out = default
    md, s = _md(out), _summary(out)
    jsonschema.validate(s, SCHEMA, cls=jsonschema.Draft202012Validator)
    rules = {r["id"]: r for r in s["rules"]}
    for title in ("Demand by density band", "Coverage before vs after"):
        rows = {r["密度分区 Band"]: r for r in _table(_section(md, title))}
        for name, b in s["bands"].items():
            assert _n(_col(rows[name], "Elderly")) == b["elderly"]
            assert _n(_col(rows[name], "Covered after")) == b["covered_after"]
            assert _n(_col(rows[name], "Uncoverable")) == b["uncoverable"]
            assert b["covered_after"] + b["uncoverable"] <= b["elderly"]
    assert sum(b["elderly"] for b in s["bands"].values()) == s["elderly_total"] == 86_927
    for name, rid in (("high", "ZJ-R500"), ("medium", "ZJ-R1000")):
        b = s["bands"][name]
        assert f"{b['covered_after']:,} of {b['elderly']:,} elderly in band {name}" in rules[rid]["detail"]
    reach = _table(_section(md, "Reach before the plan"))
    assert [r["密度分区 Band"] for r in reach] == [b.name for b in default[0].rules.bands]  # rule-set order
    assert [_n(_col(r, "Elderly")) for r in reach] == [s["bands"][b.name]["elderly"] for b in default[0].rules.bands]
    units = _table(_section(md, "Planning units"))
    assert [_n(_col(r, "Resident elderly")) for r in units[:-1]] == [u["elderly"] for u in s["planning_units"]]
    assert _n(_col(units[-1], "Resident elderly")) == s["elderly_total"]
    low, high = min(u["elderly"] for u in s["planning_units"]), max(u["elderly"] for u in s["planning_units"])
    assert f"{low:,}–{high:,} elderly" in rules["ZJ-UNIT"]["detail"]
    assert f"uncoverable elderly: {s['uncoverable_elderly']:,}." in md


def test_newly_reached_parts_never_exceed_their_site_total(default: Run) -> None:
    """Defect 2: per-site splits by rule add up to the site's total, in the report and the CSV."""
    _, out = default
    for row in _table(_section(_md(out), "New institutions")):
        parts = [_n(p.split(": ")[1]) for p in _col(row, "By rule").split("; ")]
        assert sum(parts) == _n(_col(row, "Newly reached elderly")), row
    csv_rows = _csv(out, "new_facilities")
    assert {"newly_covered_ZJ-R500", "newly_covered_ZJ-R1000"} <= set(csv_rows[0])
    for row in csv_rows:
        assert int(row["newly_covered_ZJ-R500"]) + int(row["newly_covered_ZJ-R1000"]) == int(
            row["newly_covered_elderly"])


def test_beds_after_the_plan_reconcile_with_the_units_table(default: Run) -> None:
    """Defect 3: the 4,290 of ZJ-INSTBEDS / ZJ-NURSE = the units table's beds + those outside the study area."""
    _, out = default
    s = _summary(out)
    in_units = sum(u["beds_existing"] + u["beds_new"] for u in s["planning_units"])
    outside = [e for e in s["existing_facilities"] if not e["unit_id"] and e["action"] != "closed"]
    total = in_units + sum(e["beds_after"] for e in outside)
    want = (f"{total:,} = {in_units:,} in the planning units (units table) + "
            f"{sum(e['beds_after'] for e in outside):,} at {len(outside)} institution(s) outside the study area")
    assert want == "4,290 = 3,890 in the planning units (units table) + 400 at 4 institution(s) outside the study area"
    rules = {r["id"]: r for r in s["rules"]}
    assert want in rules["ZJ-INSTBEDS"]["detail"] and want in rules["ZJ-NURSE"]["detail"]


def test_nursing_rule_states_its_assumption_and_nursing_beds_are_exported(default: Run) -> None:
    """Defect 4: ZJ-NURSE is 'met on an assumption'; the 2,214 nursing beds are in the summary, CSV and layers."""
    _, out = default
    s, md = _summary(out), _md(out)
    nurse = next(r for r in s["rules"] if r["id"] == "ZJ-NURSE")
    assert nurse["status"] == "met" and "existing beds" in nurse["assumption"]
    assert "| ZJ-NURSE | enforced | ✓ met on an assumption 假设下满足 |" in md
    typed = sum(f["nursing_beds"] for f in s["new_facilities"])
    assert f"beds the plan adds: {typed:,} of 3,690 nursing-type" in nurse["detail"]
    assert sum(int(r["nursing_beds"]) for r in _csv(out, "new_facilities")) == typed
    assert gpd.read_file(out / "layers.gpkg", layer="facilities_new")["nursing_beds"].sum() == typed
    assert gpd.read_file(out / "shp" / "facilities_new.shp")["nurs_beds"].sum() == typed


def test_off_network_sites_are_listed_and_uncoverable_advice_says_why(default: Run) -> None:
    """Defect 5: the note's pointer leads to a real table; the advice names the nearby site that does not reach."""
    res, out = default
    md = _md(out)
    assert "sites_unsnapped" not in md and "listed in tables/off_network.csv" in md
    listed = {r["id"] for r in _csv(out, "off_network") if r["what"] == "site"}
    assert listed == set(res.sites.table["site_id"].iloc[res.reach.sites_unsnapped].astype(str))
    r500 = next(r for r in _summary(out)["rules"] if r["id"] == "ZJ-R500")["detail"]
    assert re.search(r"the nearest site, G\d+, is 100 m away in a straight line but more than 500 m along "
                     r"the walk network", r500)


def test_assumptions_are_listed_once_and_sections_are_readable(default: Run) -> None:
    """Defect 6: no duplicate notes, no raw Python dicts, ZJ-UNIT coherent, the legend counts what is drawn."""
    res, out = default
    md = _md(out)
    notes = _section(md, "Assumptions")
    assert notes.count("candidate(s) added") == 1 and "27 + 5 in 2 passes" in notes
    assert "ASSUMED bed counts" not in notes and notes.count("[assumed_beds]") == 1
    assert "{'" not in md and "[{" not in md
    assert "| ZJ-UNIT | reported | – n/a 不适用 |" in md
    legend = _map_texts(res)["map_density_bands"]
    assert "现有机构 existing institution (2 shown; 4 outside the map)" in legend


# ---------------------------------------------------------------- rule sets other than Zhejiang's


def test_other_rule_sets_name_their_own_rules_or_say_none_applies(other: Run) -> None:
    """Defect 1: no `None`, `[]`, `nan`, empty `()` or Zhejiang id in the report, tables or maps."""
    res, out = other
    md = _md(out)
    jsonschema.validate(_summary(out), SCHEMA, cls=jsonschema.Draft202012Validator)
    for bad in ("None", "[]", "nan", "()", "{'", "ZJ-"):
        assert bad not in md, bad
    for path in (out / "tables").glob("*.csv"):
        assert "ZJ-" not in path.read_text(encoding="utf-8-sig"), path.name
    for name, text in _map_texts(res).items():
        assert "ZJ-" not in text and "()" not in text and "0/0" not in text, name
    if not res.rules.by_kind("beds_per_unit"):
        assert "has no beds-per-elderly rule" in _section(md, "Planning units")


def test_dawukou_statuses_are_honest(runs: Callable[[str], Run]) -> None:
    """Defects 1, 4: no radius rule → the coverage map says so; DWK-NURSE / DWK-DISABLED rest on assumptions."""
    res, out = runs("hangzhou_shangcheng_dawukou")
    rules = {r["id"]: r for r in _summary(out)["rules"]}
    for rid in ("DWK-NURSE", "DWK-DISABLED"):
        assert rules[rid]["status"] == "met" and rules[rid]["assumption"], rid
    assert "360 of the 600 existing beds (60 %)" in rules["DWK-NURSE"]["assumption"]
    cover = _map_texts(res)["map_coverage"]
    assert "no radius rule applies" in cover and "100.0%" not in cover
    assert "no detour measured" in _section(_md(out), "Reach before the plan")
