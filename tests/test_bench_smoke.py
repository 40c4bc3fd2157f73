"""Smoke test of the city-scale benchmark runner (bench/run_bench.py) at its smallest size.

The 2,000-cell × 200-site synthetic city (shared/bench/make_instance.py): siting's set-cover
optimum (ZJ-R500 / ZJ-R1000 coverage, fewest sites) must equal an independent solve of the
same sparse matrix with scipy.optimize.milp, and — when spopt is installed (bench extra) —
spopt's optimum in the same run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import _instances  # noqa: E402
import run_bench  # noqa: E402

N = 2000


@pytest.fixture(scope="module")
def instance() -> _instances.Instance:
    try:
        _instances.make_instance_path()
    except FileNotFoundError as exc:
        pytest.skip(f"shared benchmark generator not available: {exc}")
    _instances.ensure_instance(N)
    return _instances.load_instance(N)


def scipy_set_cover(inst: _instances.Instance) -> float:
    """Fewest sites covering every required row, by scipy's own HiGHS MILP (independent path)."""
    cov = _instances.sparse_coverage(inst)
    n, m = cov.shape
    res = milp(np.ones(m), constraints=LinearConstraint(cov.astype(float), lb=np.ones(n), ub=np.inf),
               integrality=np.ones(m), bounds=Bounds(0, 1))
    assert res.status == 0
    return float(round(res.fun))


def run(tmp_path: Path, *extra: str) -> list[dict]:
    out = tmp_path / "results.json"
    rc = run_bench.main(["--sizes", str(N), "--problems", "lscp", "--repeat", "1", "--out", str(out), *extra])
    assert rc == 0
    return json.loads(out.read_text())


def test_instance_is_the_shared_generator(instance: _instances.Instance) -> None:
    assert instance.dem_xy.shape == (N, 2)
    assert instance.cand_xy.shape == (N // 10, 2)
    assert instance.meta["n_required"] == len(instance.required)
    assert set(np.unique(instance.radius)) <= {0.0, 500.0, 1000.0}


def test_lscp_siting_matches_scipy_milp(instance: _instances.Instance, tmp_path: Path) -> None:
    recs = run(tmp_path, "--no-spopt")
    (rec,) = [r for r in recs if r["tool"] == "siting"]
    assert rec["status"] == "optimal"
    assert rec["objective"] == scipy_set_cover(instance)
    assert rec["n_selected"] == rec["objective"]
    assert rec["peak_mb"] >= rec["rss_base_mb"] > 0  # ru_maxrss: the peak may predate the clock
    assert rec["t_total"] == pytest.approx(rec["t_reach"] + rec["t_build"] + rec["t_solve"], rel=1e-6, abs=1e-6)


def test_levers_solvers_and_threads_in_one_run(instance: _instances.Instance, tmp_path: Path) -> None:
    """Each lever off, CBC and one thread: one record each, same run, all at scipy's optimum."""
    recs = run(tmp_path, "--no-spopt", "--variants", "all_levers,plain", "--solver", "highs,cbc", "--threads", "2,1")
    got = {(r["variant"], r["solver"], r["threads"]) for r in recs}
    levers = {f"no_{lv}" for lv in run_bench._LEVERS["lscp"]}
    assert got == ({(v, "highs", 2) for v in levers | {"default", "plain"}}
                   | {("default", "highs", 1), ("default", "cbc", 2), ("default", "cbc", 1)})
    assert len({r["run_id"] for r in recs}) == 1
    assert {r["objective"] for r in recs} == {scipy_set_cover(instance)}
    assert all(r["status"] == "optimal" and r["agree"] is True for r in recs)


def test_vary_seed_gives_each_repeat_its_own_seed(instance: _instances.Instance, tmp_path: Path) -> None:
    """--vary-seed: repeat k's child reports seed k; the optimum does not move."""
    recs = run(tmp_path, "--no-spopt", "--repeat", "2", "--vary-seed", "--variants", "plain")
    assert {r["variant"] for r in recs} == {"default", "plain"}
    for r in recs:
        assert r["seeds"] == [0, 1] and len(r["t_total_runs"]) == 2
        assert [q["seed"] for q in r["repeat_runs"]] == [0, 1] and r["median_seed"] in (0, 1)
        assert r["objective"] == scipy_set_cover(instance)
    assert "seeds 0–1" in run_bench.table(recs)


def test_full_model_variants_reach_the_same_optimum(instance: _instances.Instance, tmp_path: Path) -> None:
    """The full planning model with its reductions or its ZJ-BEDS MIR rows left out, or the count hull
    rows added: same optimum."""
    recs = run(tmp_path, "--no-spopt", "--problems", "full", "--variants", "noreduce,nocuts,hull")
    assert {r["variant"] for r in recs} == {"default", "noreduce", "nocuts", "hull"}
    assert all(r["status"] == "optimal" for r in recs)
    assert max(r["objective"] for r in recs) == pytest.approx(min(r["objective"] for r in recs), rel=1e-9)


NO_SPOPT = importlib.util.find_spec("spopt") is None


@pytest.mark.skipif(NO_SPOPT, reason="spopt is a bench extra (pip install -e .[bench])")
def test_lscp_spopt_agrees_in_the_same_run(instance: _instances.Instance, tmp_path: Path) -> None:
    recs = run(tmp_path, "--spopt-once")
    by_tool = {r["tool"]: r for r in recs}
    assert by_tool["spopt"]["status"] == by_tool["siting"]["status"] == "optimal"
    assert by_tool["spopt"]["objective"] == by_tool["siting"]["objective"] == scipy_set_cover(instance)
    assert by_tool["siting"]["agree"] is True
    assert by_tool["spopt"]["run_id"] == by_tool["siting"]["run_id"]


def test_table_reports_ratio_within_one_run() -> None:
    base = {"n": N, "m": N // 10, "problem": "lscp", "variant": "default", "solver": "highs", "status": "optimal",
            "t_reach": 0.1, "t_build": 0.1, "t_solve": 0.8, "objective": 7.0, "gap": 0.0, "peak_mb": 100.0}
    recs = [{**base, "tool": "siting", "run_id": "a", "t_total": 1.0, "cpu_s": 1.0},
            {**base, "tool": "spopt", "run_id": "a", "t_total": 30.0, "cpu_s": 20.0},
            {**base, "tool": "spopt", "run_id": "b", "t_total": 99.0, "cpu_s": 99.0}]
    text = run_bench.table(recs)
    assert "30.0× / 20.0×" in text
    assert "99.0×" not in text
    assert [line.split(" | ")[0] for line in text.splitlines()[2:]] == ["| a", "| a", "| b"]
    notes = run_bench.check_agreement([{**recs[0]}, {**recs[1], "objective": 8.0}])
    assert "DIFFER" in notes[0]
