"""manifest.json: inputs/outputs with sha256, versions, solver, timings — the only place with timings."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from factories import make_small_run

from siting import manifest, report


def _write(tmp_path, argv=("siting", "run", "x.yaml")):
    run = make_small_run()
    src = tmp_path / "input.csv"
    src.write_text("adcode,pop_60plus\n330102,86927\n", encoding="utf-8")
    out = tmp_path / "out"
    outputs = report.write_reports(out, report.build_summary(*run), *run)
    path = manifest.write_manifest(out, scenario=run.scenario, rules=run.rules, inputs=[src],
                                   timings={"demand": 1.23456, "solve": 2.0, "total": 3.23456},
                                   plan=run.plan, outputs=outputs, argv=list(argv))
    return path, src, outputs, json.loads(path.read_text(encoding="utf-8"))


def test_manifest_hashes_inputs_and_outputs(tmp_path):
    path, src, outputs, m = _write(tmp_path)
    assert path.name == "manifest.json"
    assert m["inputs"] == [{"path": src.as_posix(), "bytes": src.stat().st_size,
                            "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}]
    listed = {o["path"]: o["sha256"] for o in m["outputs"]}
    assert set(listed) == {p.relative_to(path.parent).as_posix() for p in outputs}  # relative paths
    assert listed["summary.json"] == hashlib.sha256((path.parent / "summary.json").read_bytes()).hexdigest()


def test_manifest_records_software_solver_and_timings(tmp_path):
    _, _, _, m = _write(tmp_path)
    for name in ("python", "siting", "numpy", "scipy", "geopandas", "shapely", "pyogrio", "pyproj", "pulp",
                 "highspy", "osmnx", "matplotlib"):
        assert m["packages"][name], name
    assert m["rule_set"] == {"name": "zhejiang-2021", "version": "1", "overrides": []}
    assert m["solver"]["name"] == "highs" and m["solver"]["status"] == "optimal"
    assert m["solver"]["options"]["time_limit_s"] == 60.0 and m["solver"]["gap"] == 0.0
    assert m["seed"] == 0
    assert m["timings_s"] == {"demand": 1.235, "solve": 2.0, "total": 3.235}
    assert m["argv"] == ["siting", "run", "x.yaml"]
    started, finished = datetime.fromisoformat(m["started"]), datetime.fromisoformat(m["finished"])
    assert 2 <= (finished - started).total_seconds() <= 5  # started = finished − total
    assert m["scenario"]["name"] == "small_synthetic"


def test_timings_only_in_manifest(tmp_path):
    path, _, _, _ = _write(tmp_path)
    for other in path.parent.rglob("*"):
        if other.is_file() and other.name != "manifest.json":
            text = other.read_bytes().decode("utf-8-sig", errors="replace")
            assert "timings" not in text and "started" not in text, other.name
