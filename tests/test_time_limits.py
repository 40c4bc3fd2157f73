"""Time limits (issue 9): too short for optimality → the incumbent, status ``time_limit`` and its
gap in every output; too short for any solution → exit 3 with a clear message.

The instance is the default scenario (old 上城区, 1,080 cells, ~400 candidate sites) with
straight-line distances: the greedy warm start (siting/_warmstart.py) is an incumbent at once,
and HiGHS needs about a second to prove optimality, so 0.3 s stops with a gap.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from _badcases import invoke, write_yaml
from typer.testing import Result

SHORT_S = 0.3  # finds an incumbent, not the proof
TINY_S = 0.001  # not even an incumbent


class Run(NamedTuple):
    result: Result
    out: Path
    summary: dict[str, Any]


def _run(factory: pytest.TempPathFactory, default_scenario_path: Path, limit: float, name: str) -> Run:
    """Run the default scenario (euclidean, GeoPackage only) with ``--time-limit`` in a fresh folder."""
    tmp = factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        return _run_in(tmp, default_scenario_path, limit)


def _run_in(tmp: Path, default_scenario_path: Path, limit: float) -> Run:
    raw = yaml.safe_load(default_scenario_path.read_text(encoding="utf-8"))
    raw["distance"] = {"mode": "euclidean"}
    raw["outputs"] = {"formats": ["gpkg"], "maps": {"png": False, "pdf": False}}
    scenario = write_yaml(tmp, raw, "limited.yaml")
    out = tmp / "out"
    result = invoke(["run", str(scenario), "--out", str(out), "--time-limit", str(limit)])
    if result.exit_code == 3:  # no plan: the report goes beside the output folder, never into it
        assert not out.exists(), result.output
        out = tmp / "out.diagnosis"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8")) if (out / "summary.json").exists() else {}
    return Run(result, out, summary)


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory, default_scenario_path: Path) -> Run:
    return _run(tmp_path_factory, default_scenario_path, SHORT_S, "short")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, default_scenario_path: Path) -> Run:
    return _run(tmp_path_factory, default_scenario_path, TINY_S, "tiny")


def _gap_pct(gap: float) -> str:
    return f"{100 * gap:.2f} %"


def test_short_limit_returns_the_incumbent_with_its_gap(short: Run) -> None:
    assert short.result.exit_code == 0, short.result.output
    solver = short.summary["solver"]
    assert solver["status"] == "time_limit", solver
    assert solver["objective"] is not None and solver["bound"] is not None
    assert 0 < solver["gap"] < 1
    assert solver["bound"] <= solver["objective"]  # min_cost: the bound is below the incumbent
    assert solver["gap"] == pytest.approx((solver["objective"] - solver["bound"]) / solver["objective"], rel=1e-3)
    assert short.summary["cost_total"] == pytest.approx(solver["objective"], rel=1e-9)
    assert short.summary["new_beds"] > 0
    assert solver["seconds"] < SHORT_S + 5.0
    assert "time_limit" in short.result.output and "gap" in short.result.output


def test_gap_is_in_every_output(short: Run) -> None:
    gap = short.summary["solver"]["gap"]
    report = (short.out / "report.md").read_text(encoding="utf-8")
    assert "TIME LIMIT" in report or "time limit" in report
    assert _gap_pct(gap) in report
    html = (short.out / "report.html").read_text(encoding="utf-8")
    assert _gap_pct(gap) in html or re.search(r"gap[^<]{0,40}" + re.escape(f"{100 * gap:.2f}"), html)
    manifest = json.loads((short.out / "manifest.json").read_text(encoding="utf-8"))
    text = json.dumps(manifest)
    assert '"time_limit"' in text and str(round(gap, 4))[:5] in text


def test_too_short_for_any_solution_exits_3(tiny: Run) -> None:
    out = tiny.result.output
    assert tiny.result.exit_code == 3, out
    assert "Traceback" not in out and "internal error" not in out
    assert tiny.summary["solver"]["status"] == "no_solution"
    assert tiny.summary["solver"]["objective"] is None


def test_too_short_message_names_the_time_limit(tiny: Run) -> None:
    out = tiny.result.output
    assert "time limit" in out.lower() and "cannot be met" not in out
    assert "solver.time_limit_s" in out and "limited.yaml" in out and f"written to {tiny.out}" in out
    assert tiny.out.name == "out.diagnosis"
