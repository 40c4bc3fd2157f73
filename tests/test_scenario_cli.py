"""Scenario schema, loader and CLI front door (issue 3): good files pass, bad ones fail clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _badcases import default_raw, set_key, write_yaml
from typer.testing import CliRunner

from siting import scenario as scenario_mod
from siting._errors import ScenarioError
from siting.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_default_scenario_loads_with_expanded_paths(default_scenario_path: Path, data_dir: Path) -> None:
    sc = scenario_mod.load(default_scenario_path)
    assert sc.name == "hangzhou_shangcheng"
    assert sc.rules.set == "zhejiang-2021"
    assert sc.study_area.path == data_dir / "hangzhou_westlake" / "subdistricts.gpkg"
    assert sc.distance.mode == "network"
    assert sc.modules.sizes == [30, 60, 100, 150, 200]
    assert sc.source_sha256 and len(sc.source_sha256) == 64


def test_relative_paths_resolve_against_the_scenario_file(tmp_path: Path, default_scenario_path: Path) -> None:
    raw = set_key(default_raw(default_scenario_path), "study_area.path", "layers/area.gpkg")
    sc = scenario_mod.load(write_yaml(tmp_path, raw))
    assert sc.study_area.path == tmp_path / "layers" / "area.gpkg"


def test_unset_variable_names_the_field(tmp_path: Path, default_scenario_path: Path) -> None:
    raw = set_key(default_raw(default_scenario_path), "study_area.path", "${NO_SUCH_VAR_4242}/a.gpkg")
    with pytest.raises(ScenarioError, match=r"study_area\.path.*NO_SUCH_VAR_4242"):
        scenario_mod.load(write_yaml(tmp_path, raw))


@pytest.mark.parametrize(("key", "typo"), [
    ("distance:", "distanse:"),  # top-level key with a nested block
    ("outputs:", "outptu:"),
    ("name:", "nme:"),  # top-level key with a value on its line
    ("  network:", "  netwrk:"),  # nested key with a nested block
    ("  mode: network", "  modee: network"),
])
def test_misspelled_key_names_its_own_line(tmp_path: Path, default_scenario_path: Path, key: str,
                                           typo: str) -> None:
    """The error points at the misspelled key, not at the first line of the block below it."""
    lines = default_scenario_path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith(key))
    lines[at] = typo + lines[at].removeprefix(key)
    path = write_yaml(tmp_path, "\n".join(lines) + "\n")
    word = typo.strip().split(":")[0]
    with pytest.raises(ScenarioError, match=rf"\.yaml:{at + 1}: (\w+\.)?{word}: unknown key"):
        scenario_mod.load(path)


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


# The table of bad scenario inputs (exit 2, one clear line, nothing written), the YAML syntax error
# and the empty file live in tests/test_bad_inputs.py (issue 9), with the helpers in tests/_badcases.py.


def test_cli_subprocess_has_no_traceback(tmp_path: Path) -> None:
    """The installed console script, end to end: one line, exit 2, no traceback."""
    path = write_yaml(tmp_path, "version: 1\nname: x\nbogus: 1\n")
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
