"""Determinism: the same scenario run twice gives the same results (issue 9).

summary.json is compared whole except ``solver.seconds``; report.md except its timing lines;
every CSV and the GeoPackage byte for byte (the export writes no timestamps), and the layers
read back. The second run in the same folder reuses the reach cache, a third in another folder
computes it again: all three agree.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio
import pytest
import yaml
from _badcases import invoke, make_world, summary_numbers, world_raw, write_yaml

TIMING = re.compile(r"'seconds': [0-9.e-]+|Time: [0-9.]+ s|\"seconds\": [0-9.e-]+")


def _run(scenario: Path, out: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    result = invoke(["run", str(scenario), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _layers(path: Path) -> dict[str, Any]:
    return {name: gpd.read_file(path, layer=name) for name, _ in pyogrio.list_layers(path)}


def _assert_same(a: Path, b: Path) -> None:
    sa = json.loads((a / "summary.json").read_text(encoding="utf-8"))
    sb = json.loads((b / "summary.json").read_text(encoding="utf-8"))
    assert summary_numbers(sa) == summary_numbers(sb)
    ra = TIMING.sub("", (a / "report.md").read_text(encoding="utf-8"))
    rb = TIMING.sub("", (b / "report.md").read_text(encoding="utf-8"))
    assert ra == rb
    csvs = sorted(p.relative_to(a) for p in a.rglob("*.csv"))
    assert csvs and csvs == sorted(p.relative_to(b) for p in b.rglob("*.csv"))
    for rel in csvs:
        assert _digest(a / rel) == _digest(b / rel), rel
    la, lb = _layers(a / "layers.gpkg"), _layers(b / "layers.gpkg")
    assert la.keys() == lb.keys() and la
    for name in la:
        assert la[name].crs == lb[name].crs, name
        assert la[name].equals(lb[name]), name  # same rows, order, attributes, geometries
    assert _digest(a / "layers.gpkg") == _digest(b / "layers.gpkg")


@pytest.mark.parametrize("mode", ["euclidean", "network"])
def test_two_runs_give_identical_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    make_world(tmp_path / "world")
    raw = world_raw()
    if mode == "network":
        raw["distance"] = {"mode": "network", "network": {"graph": "streets.graphml"}}
    scenario = write_yaml(tmp_path / "world", raw, f"{mode}.yaml")
    first = _run(scenario, tmp_path / "a", tmp_path / "cwd1", monkeypatch)
    second = _run(scenario, tmp_path / "b", tmp_path / "cwd1", monkeypatch)  # reach cache hit
    third = _run(scenario, tmp_path / "c", tmp_path / "cwd2", monkeypatch)  # cache computed again
    summary = json.loads((first / "summary.json").read_text(encoding="utf-8"))
    assert summary["new_beds"] > 0  # a plan with something in it, not two empty outputs
    _assert_same(first, second)
    _assert_same(first, third)


@pytest.mark.slow
def test_real_data_run_is_deterministic(tmp_path: Path, default_scenario_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """One subdistrict of the real data (湖滨街道), along the real walking network, twice."""
    raw = yaml.safe_load(default_scenario_path.read_text(encoding="utf-8"))
    raw["study_area"]["where"] = {"subdistrict": "湖滨街道"}
    raw["planning_units"]["layer"]["where"] = {"subdistrict": "湖滨街道"}
    raw["outputs"] = {"formats": ["gpkg"], "maps": {"png": False, "pdf": False}}
    scenario = write_yaml(tmp_path, raw, "hubin.yaml")
    first = _run(scenario, tmp_path / "a", tmp_path / "cwd1", monkeypatch)
    second = _run(scenario, tmp_path / "b", tmp_path / "cwd2", monkeypatch)
    _assert_same(first, second)


def test_an_earlier_solve_with_other_threads_does_not_change_the_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    import highspy

    request.addfinalizer(lambda: highspy.Highs.resetGlobalScheduler(True))  # leave no 1-thread scheduler behind
    make_world(tmp_path / "world")
    one = write_yaml(tmp_path / "world", {**world_raw(), "solver": {"name": "highs", "threads": 1}}, "one.yaml")
    two = write_yaml(tmp_path / "world", {**world_raw(), "solver": {"name": "highs", "threads": 2}}, "two.yaml")
    _run(one, tmp_path / "a", tmp_path / "cwd", monkeypatch)
    _run(two, tmp_path / "b", tmp_path / "cwd", monkeypatch)  # same process, other thread count
    _assert_same(tmp_path / "a", tmp_path / "b")
