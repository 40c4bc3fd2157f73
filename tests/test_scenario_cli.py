"""Scenario schema, loader and CLI front door (issue 3): good files pass, bad ones fail clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import yaml
from typer.testing import CliRunner

from siting import scenario as scenario_mod
from siting._errors import ScenarioError
from siting.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _default_raw(default_scenario_path: Path) -> dict[str, Any]:
    return yaml.safe_load(default_scenario_path.read_text(encoding="utf-8"))


def _write(tmp_path: Path, raw: dict[str, Any] | str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    text = raw if isinstance(raw, str) else yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def _set(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    node = raw
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return raw


def _del(raw: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = raw
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node[k]
    del node[keys[-1]]
    return raw


def test_default_scenario_loads_with_expanded_paths(default_scenario_path: Path, data_dir: Path) -> None:
    sc = scenario_mod.load(default_scenario_path)
    assert sc.name == "hangzhou_shangcheng"
    assert sc.rules.set == "zhejiang-2021"
    assert sc.study_area.path == data_dir / "hangzhou_westlake" / "subdistricts.gpkg"
    assert sc.distance.mode == "network"
    assert sc.modules.sizes == [30, 60, 100, 150, 200]
    assert sc.source_sha256 and len(sc.source_sha256) == 64


def test_relative_paths_resolve_against_the_scenario_file(tmp_path: Path, default_scenario_path: Path) -> None:
    raw = _set(_default_raw(default_scenario_path), "study_area.path", "layers/area.gpkg")
    sc = scenario_mod.load(_write(tmp_path, raw))
    assert sc.study_area.path == tmp_path / "layers" / "area.gpkg"


def test_unset_variable_names_the_field(tmp_path: Path, default_scenario_path: Path) -> None:
    raw = _set(_default_raw(default_scenario_path), "study_area.path", "${NO_SUCH_VAR_4242}/a.gpkg")
    with pytest.raises(ScenarioError, match=r"study_area\.path.*NO_SUCH_VAR_4242"):
        scenario_mod.load(_write(tmp_path, raw))


def test_committed_json_schema_is_current() -> None:
    committed = json.loads((REPO / "scenarios" / "scenario.schema.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(scenario_mod.json_schema()))
    assert "version" in committed["properties"]


def test_every_shipped_scenario_validates() -> None:
    paths = sorted((REPO / "scenarios").glob("*.yaml"))
    assert paths, "no scenarios shipped"
    result = runner.invoke(app, ["validate", *map(str, paths)])
    assert result.exit_code == 0, result.output


def test_init_template_validates(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "demo_plan", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo_plan.yaml").exists()
    sc = scenario_mod.load(tmp_path / "demo_plan.yaml")
    assert sc.name == "demo_plan"
    again = runner.invoke(app, ["init", "demo_plan", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output


def _no_shp_crs(tmp_path: Path, hangzhou: Path) -> Path:
    gdf = gpd.read_file(hangzhou / "subdistricts.gpkg").iloc[:3]
    shp = tmp_path / "nocrs.shp"
    gdf[["subdistrict", "osm_id", "geometry"]].to_file(shp)
    shp.with_suffix(".prj").unlink()
    return shp


# (case id, mutation, expected exit code, words the one-line message must contain)
BAD_CASES: list[tuple[str, Any, list[str]]] = [
    ("unknown_key", lambda r, t, h: _set(r, "grid.cell_sise_m", 100), ["cell_sise_m", "did you mean 'cell_size_m'"]),
    ("wrong_type", lambda r, t, h: _set(r, "grid.cell_size_m", "hundred"), ["grid.cell_size_m", "hundred"]),
    ("missing_required", lambda r, t, h: _del(r, "study_area"), ["study_area", "missing"]),
    ("unknown_rule_set", lambda r, t, h: _set(r, "rules.set", "zhejiang-2012"), ["zhejiang-2012", "zhejiang-2021"]),
    ("override_without_reason", lambda r, t, h: _set(r, "rules.overrides",
                                                    [{"rule": "ZJ-R500", "set": {"radius_m": 600}}]),
     ["rules.overrides[0].reason"]),
    ("negative_cost", lambda r, t, h: _set(r, "costs.site", -5), ["costs.site", "-5"]),
    ("negative_cell_size", lambda r, t, h: _set(r, "grid.cell_size_m", -100), ["grid.cell_size_m"]),
    ("negative_override_radius", lambda r, t, h: _set(r, "rules.overrides",
                                                     [{"rule": "ZJ-R500", "set": {"radius_m": -1},
                                                       "reason": "test"}]), ["ZJ-R500"]),
    ("path_missing", lambda r, t, h: _set(r, "study_area.path", str(t / "nope.gpkg")), ["nope.gpkg", "not found"]),
    ("layer_without_crs", lambda r, t, h: _set(r, "study_area", {"path": str(_no_shp_crs(t, h))}),
     ["nocrs.shp", "no CRS"]),
    ("field_missing", lambda r, t, h: _set(r, "planning_units.name_field", "jiedao"), ["jiedao", "missing"]),
    ("geographic_grid_crs", lambda r, t, h: _set(r, "grid.crs", "EPSG:4326"), ["grid.crs", "geographic"]),
    ("unknown_solver", lambda r, t, h: _set(r, "solver.name", "gurobi"), ["solver.name", "gurobi"]),
    ("time_limit_zero", lambda r, t, h: _set(r, "solver.time_limit_s", 0), ["solver.time_limit_s"]),
    ("empty_modules", lambda r, t, h: _set(r, "modules.sizes", []), ["modules.sizes"]),
]


@pytest.mark.parametrize("case,mutate,words", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_exits_2_with_one_clear_line(tmp_path: Path, default_scenario_path: Path, hangzhou: Path,
                                               case: str, mutate: Any, words: list[str]) -> None:
    raw = mutate(_default_raw(default_scenario_path), tmp_path, hangzhou)
    path = _write(tmp_path, raw)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    out = result.output
    assert "Traceback" not in out
    first = out.splitlines()[0]
    assert first.startswith("error:")
    for word in words:
        assert word in out, f"{word!r} not in {out!r}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_yaml_syntax_error_gives_line_number(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\nname: x\nstudy_area:\n  path: [a.gpkg\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "YAML syntax error" in result.output and "s.yaml:" in result.output


def test_empty_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(_write(tmp_path, ""))])
    assert result.exit_code == 2 and "empty" in result.output


def test_cli_subprocess_has_no_traceback(tmp_path: Path) -> None:
    """The installed console script, end to end: one line, exit 2, no traceback."""
    path = _write(tmp_path, "version: 1\nname: x\nbogus: 1\n")
    proc = subprocess.run([sys.executable, "-m", "siting.cli", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "bogus" in proc.stderr


def test_schema_command_prints_json() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["properties"]["version"]["const"] == 1 or "version" in schema["required"]
