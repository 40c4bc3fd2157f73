"""A planner's mistake never costs them a traceback or their last results (issue 9).

One table of bad inputs. Each case is run through the real CLI (in-process, typer's CliRunner):
``siting validate`` (where the case is visible without solving) and ``siting run --out PREV``
where PREV is an earlier output folder with a sentinel file. Every case must exit with the
error's code, print an ``error:`` line naming the field/file, print no traceback, and leave
PREV byte-identical with no temporary siblings.

Cases built on the default scenario touch only the scenario file; cases built on the synthetic
world (``tests/_badcases.py``) corrupt one data file at a time and run in a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from _badcases import (
    CRS,
    X0,
    Y0,
    assert_clean_failure,
    census_frame,
    default_raw,
    del_key,
    invoke,
    leftovers,
    make_previous_output,
    make_world,
    set_key,
    shp_without_crs,
    snapshot,
    world_candidates,
    world_facilities,
    world_raw,
    world_units,
    write_graphml,
    write_yaml,
)
from shapely.geometry import Point, Polygon, box


@dataclass
class Ctx:
    """Where a case may write: ``tmp`` (scratch), ``world`` (synthetic data folder), real data."""

    tmp: Path
    world: Path
    hangzhou: Path


Mutate = Callable[[dict[str, Any], Ctx], "dict[str, Any] | str"]


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, which commands see it, exit code, words the output names."""

    id: str
    base: str  # "default" (the shipped scenario) or "world" (synthetic data)
    mutate: Mutate
    words: tuple[str, ...]
    code: int = 2
    commands: tuple[str, ...] = ("validate", "run")
    extra: tuple[str, ...] = ()  # extra CLI options for `run`


# ---------------------------------------------------------------- data corruptions (world)


def _units_with(ctx: Ctx, name: str, frame: gpd.GeoDataFrame) -> str:
    frame.to_file(ctx.world / name, layer="units")
    return name


def _facilities_with(ctx: Ctx, raw: dict[str, Any], **cols: list[Any]) -> dict[str, Any]:
    fac = world_facilities()
    for col, values in cols.items():
        fac[col] = values
    fac.to_file(ctx.world / "facilities_bad.gpkg", layer="facilities")
    return set_key(raw, "existing_facilities.layer.path", "facilities_bad.gpkg")


def _census_with(ctx: Ctx, raw: dict[str, Any], frame: pd.DataFrame | None = None, data: bytes | None = None
                 ) -> dict[str, Any]:
    path = ctx.world / "census_bad.csv"
    if data is not None:
        path.write_bytes(data)
    else:
        assert frame is not None
        frame.to_csv(path, index=False)
    return set_key(raw, "demand.census.table", "census_bad.csv")


def _census_value(ctx: Ctx, raw: dict[str, Any], value: Any) -> dict[str, Any]:
    frame = census_frame().astype({"pop_60plus": object})
    frame.loc[0, "pop_60plus"] = value
    return _census_with(ctx, raw, frame)


def _zero_area(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    units = world_units().iloc[:1].copy()
    units["geometry"] = [Polygon([(X0, Y0), (X0 + 500, Y0), (X0 + 1000, Y0)])]  # a flat triangle
    return set_key(raw, "study_area", {"path": _units_with(ctx, "flat.gpkg", units), "layer": "units"})


def _far_away(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    units = world_units()
    units["geometry"] = units.geometry.translate(100_000, 0)  # 100 km east of every data layer
    return set_key(raw, "study_area", {"path": _units_with(ctx, "far.gpkg", units), "layer": "units"})


def _empty_layer(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    return set_key(raw, "study_area", {"path": _units_with(ctx, "empty.gpkg", world_units().iloc[:0]),
                                       "layer": "units"})


def _all_null_geometry(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    units = world_units()
    units["geometry"] = None
    units = gpd.GeoDataFrame(units, geometry="geometry", crs=CRS)
    return set_key(raw, "study_area", {"path": _units_with(ctx, "nullgeom.gpkg", units), "layer": "units"})


def _text_as_gpkg(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    (ctx.world / "fake.gpkg").write_text("this is not a GeoPackage\n", encoding="utf-8")
    return set_key(raw, "study_area", {"path": "fake.gpkg"})


def _points_as_study_area(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    return set_key(raw, "study_area", {"path": "candidates.gpkg", "layer": "candidates"})


def _xy_csv_facilities(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    fac = world_facilities()
    table = pd.DataFrame({"fac_id": fac.fac_id, "name": fac.name, "beds": fac.beds,
                          "x": fac.geometry.x, "y": fac.geometry.y})
    table.to_csv(ctx.world / "facilities_xy.csv", index=False)
    return set_key(raw, "existing_facilities.layer", {"path": "facilities_xy.csv"})


def _unit_code_not_in_census(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    units = world_units()
    units.loc[2, "adcode"] = "330199"
    name = _units_with(ctx, "units_code.gpkg", units)
    return set_key(raw, "demand.census.units", {"path": name, "layer": "units"})


def _duplicate_candidates(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    cands = world_candidates()
    cands.loc[1, "cand_id"] = cands.loc[0, "cand_id"]
    cands.to_file(ctx.world / "cands_dup.gpkg", layer="candidates")
    return set_key(raw, "candidates.layer.path", "cands_dup.gpkg")


def _candidate_named_like_facility(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    cands = world_candidates()
    cands.loc[0, "cand_id"] = "F1"
    cands.to_file(ctx.world / "cands_clash.gpkg", layer="candidates")
    return set_key(raw, "candidates.layer.path", "cands_clash.gpkg")


def _candidates_far_away(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    cands = world_candidates()
    cands["geometry"] = cands.geometry.translate(0, 50_000)
    cands.to_file(ctx.world / "cands_far.gpkg", layer="candidates")
    raw = set_key(raw, "candidates.layer.path", "cands_far.gpkg")
    return set_key(raw, "existing_facilities", {})  # no facility either: nothing can serve anyone


def _network(raw: dict[str, Any], graph: str) -> dict[str, Any]:
    return set_key(raw, "distance", {"mode": "network", "network": {"graph": graph}})


def _graph_truncated(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    full = write_graphml(ctx.world / "full.graphml").read_bytes()
    (ctx.world / "cut.graphml").write_bytes(full[: len(full) // 2])
    return _network(raw, "cut.graphml")


def _graph_not_xml(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    (ctx.world / "junk.graphml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return _network(raw, "junk.graphml")


def _graph_no_length(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    write_graphml(ctx.world / "nolength.graphml", with_length=False)
    return _network(raw, "nolength.graphml")


def _graph_wrong_crs(raw: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    # metres (EPSG:4549) declared as degrees: x ≈ 500000 is no longitude
    write_graphml(ctx.world / "wrongcrs.graphml", coords_crs=CRS, declared_crs="epsg:4326")
    return _network(raw, "wrongcrs.graphml")


def _overrides(*ovs: dict[str, Any]) -> Mutate:
    return lambda r, c: set_key(r, "rules.overrides", list(ovs))


def _d(fn: Callable[[dict[str, Any], Path, Path], Any]) -> Mutate:
    """Adapt a (raw, tmp, hangzhou) mutation of the scenario-level table."""
    return lambda r, c: fn(r, c.tmp, c.hangzhou)


# ---------------------------------------------------------------- the table


S = "default"
W = "world"
CASES: list[Case] = [
    # --- the scenario file itself (first 15 moved here from test_scenario_cli.py) ---
    Case("unknown_key", S, _d(lambda r, t, h: set_key(r, "grid.cell_sise_m", 100)),
         ("cell_sise_m", "did you mean 'cell_size_m'")),
    Case("wrong_type", S, _d(lambda r, t, h: set_key(r, "grid.cell_size_m", "hundred")),
         ("grid.cell_size_m", "hundred")),
    Case("missing_required", S, _d(lambda r, t, h: del_key(r, "study_area")), ("study_area", "missing")),
    Case("unknown_rule_set", S, _d(lambda r, t, h: set_key(r, "rules.set", "zhejiang-2012")),
         ("zhejiang-2012", "zhejiang-2021")),
    Case("override_without_reason", S, _overrides({"rule": "ZJ-R500", "set": {"radius_m": 600}}),
         ("rules.overrides[0].reason",)),
    Case("negative_cost", S, _d(lambda r, t, h: set_key(r, "costs.site", -5)), ("costs.site", "-5")),
    Case("negative_cell_size", S, _d(lambda r, t, h: set_key(r, "grid.cell_size_m", -100)), ("grid.cell_size_m",)),
    Case("negative_override_radius", S,
         _overrides({"rule": "ZJ-R500", "set": {"radius_m": -1}, "reason": "test"}), ("ZJ-R500",)),
    Case("path_missing", S, _d(lambda r, t, h: set_key(r, "study_area.path", str(t / "nope.gpkg"))),
         ("nope.gpkg", "not found")),
    Case("layer_without_crs", S, _d(lambda r, t, h: set_key(r, "study_area", {"path": str(shp_without_crs(t, h))})),
         ("nocrs.shp", "no CRS")),
    Case("field_missing", S, _d(lambda r, t, h: set_key(r, "planning_units.name_field", "jiedao")),
         ("jiedao", "missing")),
    Case("geographic_grid_crs", S, _d(lambda r, t, h: set_key(r, "grid.crs", "EPSG:4326")),
         ("grid.crs", "geographic")),
    Case("unknown_solver", S, _d(lambda r, t, h: set_key(r, "solver.name", "gurobi")), ("solver.name", "gurobi")),
    Case("time_limit_zero", S, _d(lambda r, t, h: set_key(r, "solver.time_limit_s", 0)), ("solver.time_limit_s",)),
    Case("empty_modules", S, _d(lambda r, t, h: set_key(r, "modules.sizes", [])), ("modules.sizes",)),
    # --- more scenario-level mistakes ---
    Case("yaml_syntax_error", S, lambda r, c: "version: 1\nname: x\nstudy_area:\n  path: [a.gpkg\n",
         ("YAML syntax error", "s.yaml:")),
    Case("yaml_tab_indent", S, lambda r, c: "version: 1\nname: x\nstudy_area:\n\tpath: a.gpkg\n",
         ("YAML syntax error", "s.yaml:4")),
    Case("yaml_not_a_mapping", S, lambda r, c: "- version: 1\n- name: x\n", ("expected a mapping",)),
    Case("empty_file", S, lambda r, c: "", ("empty",)),
    Case("unknown_top_key", S, _d(lambda r, t, h: set_key(r, "soler", {"name": "highs"})),
         ("soler", "did you mean 'solver'")),
    Case("schema_version", S, _d(lambda r, t, h: set_key(r, "version", 2)), ("version",)),
    Case("bad_name", S, _d(lambda r, t, h: set_key(r, "name", "上城 区")), ("name",)),
    Case("bool_as_text", S, _d(lambda r, t, h: set_key(r, "outputs.maps.png", "maybe")),
         ("outputs.maps.png", "maybe")),
    Case("module_size_text", S, _d(lambda r, t, h: set_key(r, "modules.sizes", ["thirty", 60])),
         ("modules.sizes", "thirty")),
    Case("module_size_zero", S, _d(lambda r, t, h: set_key(r, "modules.sizes", [0, 60])), ("modules.sizes",)),
    Case("cell_size_zero", S, _d(lambda r, t, h: set_key(r, "grid.cell_size_m", 0)), ("grid.cell_size_m",)),
    Case("cell_size_huge", S, _d(lambda r, t, h: set_key(r, "grid.cell_size_m", 100_000)), ("grid.cell_size_m",)),
    Case("cell_size_above_radius", W, lambda r, c: set_key(r, "grid.cell_size_m", 800),
         ("cell_size_m", "800")),
    Case("density_radius_zero", S, _d(lambda r, t, h: set_key(r, "density.radius_m", 0)), ("density.radius_m",)),
    Case("budget_negative", S, _d(lambda r, t, h: set_key(r, "objective", {"kind": "max_coverage", "budget": -1})),
         ("objective.budget",)),
    Case("max_coverage_without_limit", S, _d(lambda r, t, h: set_key(r, "objective", {"kind": "max_coverage"})),
         ("budget", "n_sites")),
    Case("mip_gap_above_one", S, _d(lambda r, t, h: set_key(r, "solver.mip_gap", 1.5)), ("solver.mip_gap",)),
    Case("seed_beyond_c_int", S, _d(lambda r, t, h: set_key(r, "solver.seed", 2**31)), ("solver.seed", "2147483646")),
    Case("unknown_output_crs", S, _d(lambda r, t, h: set_key(r, "outputs.crs", "EPSG:999999")),
         ("outputs.crs", "EPSG:999999")),
    Case("unset_env_var", S, _d(lambda r, t, h: set_key(r, "study_area.path", "${NO_SUCH_VAR_4242}/a.gpkg")),
         ("study_area.path", "NO_SUCH_VAR_4242")),
    Case("override_blank_reason", S, _overrides({"rule": "ZJ-R500", "set": {"radius_m": 600}, "reason": "   "}),
         ("reason",)),
    Case("override_unknown_rule", S, _overrides({"rule": "ZJ-R600", "set": {"radius_m": 600}, "reason": "test"}),
         ("ZJ-R600",)),
    Case("override_zero_radius", S, _overrides({"rule": "ZJ-R1000", "set": {"radius_m": 0}, "reason": "test"}),
         ("ZJ-R1000",)),
    Case("threshold_inversion", S,
         _overrides({"rule": "ZJ-R500", "set": {"lower_km2": 500}, "reason": "test inversion"}),
         ("ZJ-R500", "inconsistent")),
    Case("cli_unknown_solver", W, lambda r, c: r, ("gurobi",), commands=("run",), extra=("--solver", "gurobi")),
    Case("cli_time_limit_negative", W, lambda r, c: r, ("time_limit_s",), commands=("run",),
         extra=("--time-limit", "-5")),
    # --- data files: wrong, missing, inconsistent (synthetic world) ---
    Case("csv_where_gpkg_expected", W, lambda r, c: set_key(r, "study_area", {"path": "census.csv"}),
         ("census.csv", "study_area", "without coordinates")),
    Case("text_file_named_gpkg", W, _text_as_gpkg, ("fake.gpkg", "study_area.path", "not a readable GIS file")),
    Case("layer_missing", W, lambda r, c: set_key(r, "study_area.layer", "nope"),
         ("units.gpkg", "'nope'", "study_area.layer", "units")),
    Case("where_field_missing", W, lambda r, c: set_key(r, "study_area.where", {"district": "上城区"}),
         ("'district'", "study_area.where")),
    Case("where_matches_nothing", W, lambda r, c: set_key(r, "study_area.where", {"name": "不存在街道"}),
         ("study_area", "matched no row")),
    Case("empty_layer", W, _empty_layer, ("empty.gpkg", "study_area", "empty")),
    Case("all_geometries_null", W, _all_null_geometry, ("nullgeom.gpkg", "study_area")),
    Case("points_where_polygons_expected", W, _points_as_study_area, ("candidates.gpkg", "study_area", "polygon")),
    Case("zero_area_study_area", W, _zero_area, ("flat.gpkg", "study_area")),
    Case("study_area_far_from_data", W, _far_away, ("study area", "overlap"),),
    Case("csv_xy_without_crs", W, _xy_csv_facilities, ("facilities_xy.csv", "existing_facilities", "no CRS")),
    Case("facility_field_missing", W, lambda r, c: set_key(r, "existing_facilities.beds_field", "capacity"),
         ("'capacity'", "existing_facilities")),
    Case("duplicate_facility_ids", W, lambda r, c: _facilities_with(c, r, fac_id=["F1", "F1"]),
         ("facilities_bad.gpkg", "duplicate", "F1")),
    Case("negative_beds", W, lambda r, c: _facilities_with(c, r, beds=[-5, 10]),
         ("facilities_bad.gpkg", "beds", "-5")),
    Case("nan_beds_without_default", W, lambda r, c: _facilities_with(c, r, beds=[None, 10]),
         ("facilities_bad.gpkg", "beds")),
    Case("beds_as_text", W, lambda r, c: _facilities_with(c, r, beds=["一百", "10"]),
         ("facilities_bad.gpkg", "beds", "一百")),
    Case("census_count_negative", W, lambda r, c: _census_value(c, r, -10), ("census_bad.csv", "pop_60plus")),
    Case("census_count_text", W, lambda r, c: _census_value(c, r, "很多"), ("census_bad.csv", "很多")),
    Case("census_count_nan", W, lambda r, c: _census_value(c, r, ""), ("census_bad.csv", "pop_60plus")),
    Case("census_column_missing", W, lambda r, c: set_key(r, "demand.census.code_field", "code"),
         ("census.csv", "'code'")),
    Case("census_code_missing", W, _unit_code_not_in_census, ("census.csv", "330199"),),
    Case("census_binary", W, lambda r, c: _census_with(c, r, data=b"\xff\xfe\x00\xff" * 64 + b"\x81\x30\xff\n" * 8),
         ("census_bad.csv", "demand.census.table")),
    Case("census_utf16", W, lambda r, c: _census_with(c, r, data=census_frame().to_csv(index=False)
                                                      .encode("utf-16")),
         ("census_bad.csv",)),
    Case("duplicate_candidate_ids", W, _duplicate_candidates, ("cand_id", "duplicate", "C00"),
         commands=("run",)),
    Case("candidate_id_equals_facility", W, _candidate_named_like_facility, ("F1", "unique"),
         commands=("run",)),
    Case("sites_far_from_demand", W, _candidates_far_away, ("no site lies within", "candidates"), commands=("run",)),
    Case("graph_missing", W, lambda r, c: _network(r, "nope.graphml"), ("nope.graphml", "distance.network.graph")),
    Case("graph_truncated", W, _graph_truncated, ("cut.graphml", "distance.network.graph"),),
    Case("graph_not_xml", W, _graph_not_xml, ("junk.graphml", "distance.network.graph")),
    Case("graph_no_length", W, _graph_no_length, ("nolength.graphml", "length"),),
    Case("graph_coordinates_not_in_crs", W, _graph_wrong_crs, ("wrongcrs.graphml",), commands=("run",)),
    # --- rules that cannot be met (exit 3): the diagnosis goes to "<out>.diagnosis", never into <out> ---
    Case("infeasible_budget", W, lambda r, c: set_key(r, "objective", {"kind": "max_coverage", "budget": 1}),
         ("s.yaml", "objective.budget", "28,000,000", "(ZJ-BEDS, ZJ-NURSE;", "objective.beds_rule: objective",
          "earlier run.diagnosis"), code=3, commands=("run",)),
    Case("infeasible_unit_beds", W, lambda r, c: set_key(r, "modules.sizes", [1]),
         ("s.yaml", "ZJ-BEDS", "modules.sizes", "earlier run.diagnosis"), code=3, commands=("run",)),
]
IDS = [c.id for c in CASES]
assert len(set(IDS)) == len(IDS), "duplicate case ids"


@pytest.fixture
def ctx(tmp_path: Path, hangzhou: Path, monkeypatch: pytest.MonkeyPatch) -> Ctx:
    monkeypatch.chdir(tmp_path)  # the reach cache and default outputs go under the test folder
    return Ctx(tmp=tmp_path, world=tmp_path / "world", hangzhou=hangzhou)


def _scenario_for(case: Case, ctx: Ctx, default_scenario_path: Path) -> Path:
    if case.base == W:
        make_world(ctx.world)
        return write_yaml(ctx.world, case.mutate(world_raw(), ctx), "s.yaml")
    return write_yaml(ctx.tmp, case.mutate(default_raw(default_scenario_path), ctx), "s.yaml")


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_fails_clearly_and_keeps_earlier_results(ctx: Ctx, default_scenario_path: Path,
                                                           case: Case) -> None:
    scenario = _scenario_for(case, ctx, default_scenario_path)
    prev = ctx.tmp / "earlier run"
    before = make_previous_output(prev)
    if "validate" in case.commands:
        assert_clean_failure(invoke(["validate", str(scenario)]), case.code, case.words)
    if "run" in case.commands:
        result = invoke(["run", str(scenario), "--out", str(prev), "--quiet", *case.extra])
        assert_clean_failure(result, case.code, case.words)
    assert snapshot(prev) == before, "the earlier output folder changed"
    assert leftovers(ctx.tmp, prev.name) == [], "temporary output folders left behind"


# ---------------------------------------------------------------- the scenario file, outside the table


def test_scenario_file_missing_and_folder(tmp_path: Path) -> None:
    assert_clean_failure(invoke(["validate", str(tmp_path / "nope.yaml")]), 2, ("nope.yaml", "not found"))
    assert_clean_failure(invoke(["run", str(tmp_path), "--out", str(tmp_path / "o")]), 2, ("folder",))
    assert not (tmp_path / "o").exists()


def test_scenario_saved_as_gbk_says_utf8(tmp_path: Path, default_scenario_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes(default_scenario_path.read_text(encoding="utf-8").encode("gb18030"))
    assert_clean_failure(invoke(["validate", str(path)]), 2, ("gbk.yaml", "UTF-8"))


def test_output_path_not_writable(ctx: Ctx) -> None:
    """--out below a regular file: one line naming the folder; the file is untouched."""
    scenario = make_world(ctx.world)
    blocker = ctx.tmp / "a file.txt"
    blocker.write_text("keep me\n", encoding="utf-8")
    result = invoke(["run", str(scenario), "--out", str(blocker / "out"), "--quiet"])
    assert_clean_failure(result, 2, ("a file.txt", "output folder"))
    assert blocker.read_text(encoding="utf-8") == "keep me\n"


def test_subprocess_data_error_has_no_traceback(ctx: Ctx) -> None:
    """The console script end to end on a data-stage error: exit 2, one error line, no traceback."""
    make_world(ctx.world)
    scenario = write_yaml(ctx.world, _far_away(world_raw(), ctx), "far.yaml")
    prev = ctx.tmp / "prev"
    before = make_previous_output(prev)
    proc = subprocess.run([sys.executable, "-m", "siting.cli", "run", str(scenario), "--out", str(prev)],
                          capture_output=True, text=True, timeout=300, cwd=ctx.tmp)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")], proc.stderr
    assert snapshot(prev) == before


# ---------------------------------------------------------------- rules that cannot be met (exit 3)


def test_infeasible_budget_keeps_earlier_outputs_and_names_the_budget(ctx: Ctx, default_scenario_path: Path) -> None:
    """The audit case: the default scenario as max coverage under 1,000,000 CNY with ZJ-BEDS a constraint.

    The earlier outputs stay byte-identical; the diagnosis goes to ``<out>.diagnosis``; the one
    error line names the file, ``objective.budget``, the least cost of the hard rules and both fixes.
    """
    raw = set_key(default_raw(default_scenario_path), "objective",
                  {"kind": "max_coverage", "budget": 1_000_000, "beds_rule": "constraint"})
    raw["outputs"] = {"formats": ["gpkg"], "maps": {"png": False, "pdf": False, "html": False}}
    scenario = write_yaml(ctx.tmp, raw, "bad.yaml")
    prev = ctx.tmp / "out"
    before = make_previous_output(prev)
    result = invoke(["run", str(scenario), "--out", str(prev), "--quiet"])
    assert_clean_failure(result, 3, (
        f"error: {scenario}: the rules cannot be met: objective.budget: 1,000,000 CNY is below 343,000,000 CNY, "
        "the least cost of meeting the rules a max_coverage model holds as hard limits (ZJ-BEDS, ZJ-NURSE; "
        "ZJ-R500, ZJ-R1000 are objectives, met as far as the limit allows) — raise objective.budget to at least "
        "343,000,000, or set objective.beds_rule: objective",
        f"diagnosis written to {ctx.tmp / 'out.diagnosis'}"))
    assert "with the given candidates" not in result.output
    assert snapshot(prev) == before, "the earlier output folder changed"
    assert leftovers(ctx.tmp, "out") == [], "temporary output folders left behind"
    summary = json.loads((ctx.tmp / "out.diagnosis" / "summary.json").read_text(encoding="utf-8"))
    assert summary["solver"]["status"] == "infeasible"
    assert summary["diagnosis"]["problems"][0]["hard_rules"] == ["ZJ-BEDS", "ZJ-NURSE"]
    report = (ctx.tmp / "out.diagnosis" / "report.md").read_text(encoding="utf-8")
    assert "least cost of meeting the rules a max_coverage model holds as hard limits (ZJ-BEDS" in report
    assert "least cost meeting every rule" not in report


# ---------------------------------------------------------------- inputs that must WORK (with a note)


def _run_ok(scenario: Path, out: Path) -> dict[str, Any]:
    result = invoke(["run", str(scenario), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def _notes_text(summary: dict[str, Any]) -> str:
    return json.dumps(summary.get("assumptions", []), ensure_ascii=False)


def test_path_with_spaces_and_chinese_characters_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    world = tmp_path / "规划 数据 (2024)" / "上城 区"
    scenario = make_world(world, name="老上城 方案.yaml")
    assert invoke(["validate", str(scenario)]).exit_code == 0
    out = tmp_path / "输出 结果" / "第 1 次"
    summary = _run_ok(scenario, out)
    assert summary["elderly_total"] == pytest.approx(6500, abs=1)
    assert (out / "layers.gpkg").is_file() and (out / "report.md").is_file()
    assert leftovers(out.parent, out.name) == []


def test_gbk_census_table_reads_like_utf8(ctx: Ctx) -> None:
    """A census CSV saved as GBK (common in Chinese offices) gives the same demand as UTF-8."""
    scenario = make_world(ctx.world)
    utf8 = _run_ok(scenario, ctx.tmp / "utf8")
    gbk = ctx.world / "census_gbk.csv"
    gbk.write_bytes(census_frame().to_csv(index=False).encode("gbk"))
    assert "上城区".encode("gbk") in gbk.read_bytes()
    raw = set_key(world_raw(), "demand.census.table", "census_gbk.csv")
    gbk_summary = _run_ok(write_yaml(ctx.world, raw, "gbk.yaml"), ctx.tmp / "gbk")
    assert gbk_summary["elderly_total"] == utf8["elderly_total"] == pytest.approx(6500)
    assert gbk_summary["planning_units"] == utf8["planning_units"]


def test_null_geometries_are_dropped_with_a_note(ctx: Ctx) -> None:
    make_world(ctx.world)
    fac = world_facilities()
    extra = gpd.GeoDataFrame({"fac_id": ["F3"], "name": ["无坐标院"], "beds": [40]}, geometry=[None], crs=CRS)
    pd.concat([fac, extra], ignore_index=True).to_file(ctx.world / "fac_null.gpkg", layer="facilities")
    raw = set_key(world_raw(), "existing_facilities.layer.path", "fac_null.gpkg")
    scenario = write_yaml(ctx.world, raw, "null.yaml")
    result = invoke(["validate", str(scenario)])
    assert result.exit_code == 0, result.output
    assert "dropped 1 row(s) without geometry" in result.output
    summary = _run_ok(scenario, ctx.tmp / "out")
    assert [f["id"] for f in summary["existing_facilities"]] == ["F1", "F2"]


def test_self_intersecting_polygon_is_repaired_with_a_note(ctx: Ctx) -> None:
    make_world(ctx.world)
    units = world_units()
    x1, y1 = X0 + 1000, Y0 + 1000
    units.loc[0, "geometry"] = Polygon([(X0, Y0), (x1, y1), (x1, Y0), (X0, y1)])  # a bow tie
    assert not units.geometry.iloc[0].is_valid
    units.to_file(ctx.world / "bowtie.gpkg", layer="units")
    raw = world_raw()
    for key in ("study_area", "planning_units.layer", "demand.census.units"):
        raw = set_key(raw, key, {"path": "bowtie.gpkg", "layer": "units"})
    scenario = write_yaml(ctx.world, raw, "bowtie.yaml")
    result = invoke(["validate", str(scenario)])
    assert result.exit_code == 0, result.output
    assert "repaired 1 invalid geometr" in result.output and "make_valid" in result.output
    summary = _run_ok(scenario, ctx.tmp / "out")
    assert "repaired" in _notes_text(summary) or "repaired" in (ctx.tmp / "out" / "report.md").read_text("utf-8")


def test_nan_beds_with_default_are_assumed(ctx: Ctx) -> None:
    make_world(ctx.world)
    raw = _facilities_with(ctx, world_raw(), beds=[None, 10])
    raw = set_key(raw, "existing_facilities.default_beds", 25)
    summary = _run_ok(write_yaml(ctx.world, raw, "dflt.yaml"), ctx.tmp / "out")
    beds = {f["id"]: (f["beds_before"], f["beds_assumed"]) for f in summary["existing_facilities"]}
    assert beds == {"F1": (25, True), "F2": (10, False)}


def test_gcj02_shifted_facilities_are_flagged(hangzhou: Path) -> None:
    """Real facilities moved into GCJ-02 (as Chinese map apps give them) are flagged; as given, not."""
    from siting import sites

    fac = gpd.read_file(hangzhou / "elderly_facilities.gpkg")
    pad = np.array([-0.01, -0.01, 0.01, 0.01])
    bld = gpd.read_file(hangzhou / "buildings.gpkg", bbox=tuple(fac.total_bounds + pad))
    fac = fac.to_crs(CRS)
    bld = bld.to_crs(CRS)
    assert sites.gcj02_suspicion(fac.geometry, bld.geometry) is None
    ll = fac.geometry.to_crs("EPSG:4326")
    glon, glat = sites.wgs84_to_gcj02(ll.x.to_numpy(), ll.y.to_numpy())
    shifted = gpd.GeoSeries(gpd.points_from_xy(glon, glat), crs="EPSG:4326").to_crs(CRS)
    note = sites.gcj02_suspicion(shifted, bld.geometry)
    assert note is not None and "GCJ-02" in note


def test_point_and_box_helpers_are_consistent() -> None:
    """The synthetic world's facilities lie inside its units (guards the fixtures themselves)."""
    units = world_units()
    assert all(units.geometry.union_all().contains(p) for p in world_facilities().geometry)
    assert box(X0, Y0, X0 + 3000, Y0 + 1000).equals(units.geometry.union_all().envelope)
    assert isinstance(world_facilities().geometry.iloc[0], Point)


# ---------------------------------------------------------------- siting._checks (cross-layer, before solving)


def _frames(scenario: Path) -> tuple[Any, dict[str, gpd.GeoDataFrame]]:
    from siting import _layers
    from siting import scenario as scenario_mod

    sc = scenario_mod.load(scenario)
    refs = {"study_area": sc.study_area, "demand.census.units": sc.demand.census.units,
            "planning_units.layer": sc.planning_units.layer, "existing_facilities.layer": sc.existing_facilities.layer}
    return sc, {k: _layers.read_layer(v, field=k, crs=sc.grid.crs) for k, v in refs.items()}


@pytest.mark.parametrize("case_id", ["study_area_far_from_data", "census_code_missing", "graph_truncated",
                                     "graph_no_length", "graph_coordinates_not_in_crs"])
def test_data_checks_catch_cross_layer_problems(ctx: Ctx, default_scenario_path: Path, case_id: str) -> None:
    from siting import _checks
    from siting._errors import DataError

    case = next(c for c in CASES if c.id == case_id)
    sc, frames = _frames(_scenario_for(case, ctx, default_scenario_path))
    with pytest.raises(DataError) as info:
        _checks.data_checks(sc, frames)
    for word in case.words:
        assert word in str(info.value)


def test_data_checks_pass_the_good_world(ctx: Ctx) -> None:
    from siting import _checks

    make_world(ctx.world)
    raw = set_key(world_raw(), "distance", {"mode": "network", "network": {"graph": "streets.graphml"}})
    sc, frames = _frames(write_yaml(ctx.world, raw, "net.yaml"))
    assert _checks.data_checks(sc, frames) == []
