"""manifest.json: what a run read, with which software and settings, how long it took, what it wrote.

The manifest is the only output holding timings and timestamps, so every other output of a
run can be compared byte for byte. Input and output files are listed with their sha256;
output paths are relative to the output folder (the run writes into a temporary folder that
is renamed at the end).
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ._data import sha256_file

MANIFEST_NAME = "manifest.json"
PACKAGES = ("siting", "numpy", "scipy", "pandas", "geopandas", "shapely", "pyogrio", "pyproj", "pulp",
            "highspy", "osmnx", "networkx", "matplotlib", "pydantic")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _file_entry(path: Path, base: Path | None = None) -> dict[str, Any]:
    path = Path(path)
    shown = path
    if base is not None:
        try:
            shown = path.resolve().relative_to(base.resolve())
        except ValueError:
            shown = path
    return {"path": shown.as_posix(), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _scenario_entry(scenario: Any) -> dict[str, Any]:
    src = getattr(scenario, "source_path", None)
    sha = getattr(scenario, "source_sha256", None)
    if src is not None and sha is None and Path(src).is_file():
        sha = sha256_file(Path(src))
    return {"name": scenario.name, "path": None if src is None else Path(src).as_posix(), "sha256": sha}


def _solver_entry(scenario: Any, plan: Any) -> dict[str, Any]:
    s = plan.solver
    options = dict(s.options) if s.options else scenario.solver.model_dump()
    return {"name": s.name, "options": options, "status": s.status, "objective": s.objective,
            "bound": s.bound, "gap": s.gap, "seconds": s.seconds}


def build_manifest(out_dir: Path, *, scenario: Any, rules: Any, inputs: list[Path], timings: dict[str, float],
                   plan: Any, outputs: list[Path], argv: list[str] | None = None,
                   started: datetime | None = None, finished: datetime | None = None) -> dict[str, Any]:
    """The manifest as a dict (see :func:`write_manifest`)."""
    out_dir = Path(out_dir)
    finished = finished or datetime.now(timezone.utc)
    started = started or finished
    outs = sorted({Path(p) for p in outputs if Path(p).is_file() and Path(p).name != MANIFEST_NAME})
    return {
        "siting_version": package_versions()["siting"],
        "scenario": _scenario_entry(scenario),
        "rule_set": {"name": rules.name, "version": str(rules.version),
                     "overrides": [dict(o) for o in rules.overrides]},
        "inputs": [_file_entry(p) for p in sorted({Path(p) for p in inputs})],
        "packages": package_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine()},
        "solver": _solver_entry(scenario, plan),
        "seed": scenario.solver.seed,
        "timings_s": {k: round(float(v), 3) for k, v in sorted(timings.items())},
        "argv": list(sys.argv if argv is None else argv),
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "outputs": [_file_entry(p, out_dir) for p in outs],
    }


def write_manifest(out_dir: Path, *, scenario: Any, rules: Any, inputs: list[Path], timings: dict[str, float],
                   plan: Any, outputs: list[Path], argv: list[str] | None = None,
                   started: datetime | None = None) -> Path:
    """Write ``out_dir/manifest.json`` (inputs and outputs with sha256, versions, timings); return its path.

    ``started`` defaults to ``finished`` minus the sum of the stage timings.
    """
    from datetime import timedelta

    finished = datetime.now(timezone.utc)
    if started is None:
        total = float(timings.get("total", sum(v for k, v in timings.items() if k != "total")))
        started = finished - timedelta(seconds=total)
    data = build_manifest(out_dir, scenario=scenario, rules=rules, inputs=inputs, timings=timings, plan=plan,
                          outputs=outputs, argv=argv, started=started, finished=finished)
    path = Path(out_dir) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n",
                    encoding="utf-8")
    return path
