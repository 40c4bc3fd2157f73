"""The Python API the CLI and the notebooks share: load, validate, prepare, solve, write.

``run(path)`` is ``siting run``: scenario → rules → demand → sites → reach → plan → outputs,
timing each stage, writing the output folder atomically (``<out>.diagnosis`` instead when no plan
is found), and returning everything computed so a notebook can look at any stage.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import scenario as scenario_mod
from ._atomic import atomic_dir
from ._errors import DataError, ScenarioError, SitingError
from .rules import RuleSet, load_rule_set
from .scenario import LayerRef, Scenario

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
DIAGNOSIS_SUFFIX = ".diagnosis"  # <out>.diagnosis: the report of a run that found no plan


@dataclass
class RunResult:
    """Everything one run computed, plus where it was written."""

    scenario: Scenario
    rules: RuleSet
    demand: Any = None
    sites: Any = None
    reach: Any = None
    plan: Any = None
    out_dir: Path | None = None
    outputs: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when a plan was found; 3 when none was (infeasible rules or no solution in the time limit)."""
        status = getattr(getattr(self.plan, "solver", None), "status", None)
        return 3 if status in ("infeasible", "no_solution") else 0


def diagnosis_dir(out_dir: Path) -> Path:
    """Where a run without a plan (exit 3) writes its report: ``<out>.diagnosis``, next to ``<out>``.

    A failed run must leave an earlier run's outputs as they were, so its diagnosis never goes
    into the output folder itself; it is written atomically like every output folder.
    """
    out_dir = Path(out_dir)
    return out_dir.with_name(f"{out_dir.name}{DIAGNOSIS_SUFFIX}")


def default_scenario_path() -> Path:
    """``scenarios/hangzhou_shangcheng.yaml`` of the checkout (``siting run`` with no argument)."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        cand = base / "scenarios" / scenario_mod.DEFAULT_SCENARIO
        if cand.exists():
            return cand
    raise DataError(
        f"no scenario given and scenarios/{scenario_mod.DEFAULT_SCENARIO} not found",
        hints=("run from the repository folder, or give a scenario: siting run path/to/x.yaml",),
    )


def load(path: str | Path | None = None, **overrides: Any) -> Scenario:
    """Load a scenario (the default one when ``path`` is None), applying CLI-style overrides.

    ``overrides``: ``out`` (output folder), ``solver`` (highs|cbc), ``time_limit`` (seconds).
    """
    sc = scenario_mod.load(path if path is not None else default_scenario_path())
    return _with_overrides(sc, **overrides)


def _with_overrides(sc: Scenario, out: Path | None = None, solver: str | None = None,
                    time_limit: float | None = None) -> Scenario:
    solver_upd: dict[str, Any] = {}
    if solver is not None:
        solver_upd["name"] = solver
    if time_limit is not None:
        solver_upd["time_limit_s"] = time_limit
    data = sc.model_dump()
    if solver_upd:
        data["solver"] = {**data["solver"], **solver_upd}
    if out is not None:
        data["outputs"] = {**data["outputs"], "dir": Path(out).resolve()}
    if not solver_upd and out is None:
        return sc
    try:
        new = Scenario.model_validate(data, context={"base_dir": None})
    except ValidationError as exc:  # a bad --solver / --time-limit value
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ScenarioError(f"command-line option for `{where}`: {first['msg']} (got {first.get('input')!r})",
                            hints=("see `siting run --help`",)) from None
    return new.model_copy(update={"source_path": sc.source_path, "source_sha256": sc.source_sha256})


def rules_of(sc: Scenario) -> RuleSet:
    """The scenario's rule set with its overrides applied (RuleError on unknown ids)."""
    return load_rule_set(sc.rules.set, sc.rules.overrides)


def input_files(model: BaseModel) -> list[Path]:
    """Every file path the scenario points to (for hashing and validation), sorted, unique."""
    found: set[Path] = set()

    def walk(value: Any) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                if name in ("source_path", "dir"):
                    continue
                walk(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, Path):
            found.add(value)

    walk(model)
    return sorted(found)


@contextmanager
def _stage(name: str, timings: dict[str, float], progress: Progress | None) -> Iterator[None]:
    if progress:
        progress(name)
    t0 = time.perf_counter()
    try:
        yield
    except NotImplementedError as exc:
        raise SitingError(f"{exc}", hints=("this stage is owned by an open issue",)) from None
    finally:
        timings[name] = round(time.perf_counter() - t0, 3)


def compute(sc: Scenario, *, progress: Progress | None = None,
            timings: dict[str, float] | None = None) -> RunResult:
    """Run every computing stage (no files written): rules, demand, sites, reach, plan."""
    from . import demand as demand_mod
    from . import model as model_mod
    from . import reach as reach_mod
    from . import sites as sites_mod

    timings = {} if timings is None else timings
    with _stage("rules", timings, progress):
        rules = rules_of(sc)
    res = RunResult(scenario=sc, rules=rules, timings=timings)
    with _stage("demand", timings, progress):
        res.demand = demand_mod.build(sc, rules)
    with _stage("sites", timings, progress):
        res.sites = sites_mod.build(sc, res.demand)
    with _stage("reach", timings, progress):
        res.reach = reach_mod.build(sc, res.demand, res.sites, cache_dir=_cache_dir())
        for _ in range(2):  # generated candidates: fill the cells no site reaches, then measure again
            gaps = _unreached_cells(sc, res.demand, res.reach)
            if gaps.size == 0:
                break
            res.sites = sites_mod.add_gap_candidates(sc, res.demand, res.sites, gaps)
            res.reach = reach_mod.build(sc, res.demand, res.sites, cache_dir=_cache_dir())
    with _stage("solve", timings, progress):
        res.plan = model_mod.plan(sc, rules, res.demand, res.sites, res.reach)
    return res


def _unreached_cells(sc: Scenario, demand: Any, reach: Any) -> Any:
    """Cells owed a radius with no site in reach (only when candidates are generated with fill_gaps)."""
    import numpy as np

    if sc.candidates.mode != "generate" or not sc.candidates.generate.fill_gaps:
        return np.zeros(0, dtype=np.int64)
    owed = demand.cells["radius_m"].notna().to_numpy()
    reached = np.diff(reach.dist.indptr) > 0
    unsnapped = np.zeros(len(owed), dtype=bool)
    unsnapped[np.asarray(reach.cells_unsnapped, dtype=np.int64)] = True
    return np.flatnonzero(owed & ~reached & ~unsnapped)


def _cache_dir() -> Path:
    return Path.cwd() / ".cache" / "siting" / "reach"


def write_outputs(res: RunResult, out_dir: Path, *, progress: Progress | None = None,
                  argv: list[str] | None = None) -> list[Path]:
    """Write summary, reports, tables, GIS layers, maps and the manifest into ``out_dir``."""
    from . import export, manifest, maps, report

    sc, args = res.scenario, (res.scenario, res.rules, res.demand, res.sites, res.reach, res.plan)
    outputs: list[Path] = []
    if sc.outputs.maps.png or sc.outputs.maps.pdf:
        with _stage("maps", res.timings, progress):
            outputs += maps.draw_maps(out_dir / "maps", *args, png=sc.outputs.maps.png,
                                      pdf=sc.outputs.maps.pdf, dpi=sc.outputs.maps.dpi)
    if sc.outputs.maps.html:
        from .html_map import draw_html

        with _stage("html map", res.timings, progress):
            outputs.append(draw_html(out_dir / "maps" / "map.html", *args))
    with _stage("layers", res.timings, progress):
        outputs += export.write_layers(out_dir, *args, formats=tuple(sc.outputs.formats), crs=sc.outputs.crs)
    with _stage("report", res.timings, progress):
        summary = report.build_summary(*args)
        outputs += report.write_reports(out_dir, summary, *args, maps_dir=out_dir / "maps")
    res.timings["total"] = round(sum(v for k, v in res.timings.items() if k != "total"), 3)
    outputs.append(manifest.write_manifest(
        out_dir, scenario=sc, rules=res.rules, inputs=[p for p in input_files(sc) if p.is_file()],
        timings=res.timings, plan=res.plan, outputs=outputs, argv=argv if argv is not None else sys.argv,
    ))
    return outputs


def run(path: str | Path | Scenario | None = None, *, out: Path | None = None, solver: str | None = None,
        time_limit: float | None = None, progress: Progress | None = None,
        argv: list[str] | None = None) -> RunResult:
    """``siting run``: compute a plan and write every output atomically into the output folder.

    A run without a plan (exit code 3) writes its report, diagnosis included, into
    :func:`diagnosis_dir` instead and leaves the output folder untouched.
    """
    if isinstance(path, Scenario):
        sc = _with_overrides(path, out=out, solver=solver, time_limit=time_limit)
    else:
        timings0: dict[str, float] = {}
        with _stage("load", timings0, progress):
            sc = load(path, out=out, solver=solver, time_limit=time_limit)
    timings: dict[str, float] = {} if isinstance(path, Scenario) else timings0
    res = compute(sc, progress=progress, timings=timings)
    final = sc.output_dir() if res.exit_code == 0 else diagnosis_dir(sc.output_dir())
    with atomic_dir(final) as tmp:
        outputs = write_outputs(res, tmp, progress=progress, argv=argv)
    res.out_dir = final
    res.outputs = [final / p.relative_to(tmp) for p in outputs]
    return res


def validate(path: str | Path) -> list[str]:
    """Check a scenario file and the data it points to, without solving; return notes.

    Raises a :class:`SitingError` for the first problem found.
    """
    from . import _checks, _layers

    sc = scenario_mod.load(path)
    notes: list[str] = []
    rules = rules_of(sc)
    crs = sc.grid.crs
    layers: list[tuple[str, LayerRef, str]] = [("study_area", sc.study_area, "polygon")]
    if sc.demand.census:
        layers.append(("demand.census.units", sc.demand.census.units, "polygon"))
    w = sc.demand.weights
    if sc.demand.source == "census":
        layers += [(f"demand.weights.{k}", getattr(w, k), "polygon") for k in ("buildings", "landuse")
                   if getattr(w, k) is not None]
    if sc.demand.points:
        layers.append(("demand.points", sc.demand.points, "point"))
    if sc.planning_units.layer:
        layers.append(("planning_units.layer", sc.planning_units.layer, "polygon"))
    if sc.existing_facilities.layer:
        layers.append(("existing_facilities.layer", sc.existing_facilities.layer, "point"))
    if sc.candidates.mode == "layer" and sc.candidates.layer:
        layers.append(("candidates.layer", sc.candidates.layer, "point"))
    if sc.density.zones:
        layers.append(("density.zones", sc.density.zones, "polygon"))
    frames = {}
    for field_name, ref, geom in layers:
        required = _required_fields(sc, field_name)
        gdf = _layers.read_layer(ref, field=field_name, crs=crs, geometry=geom, required_fields=required)
        frames[field_name] = gdf
        notes += gdf.attrs.get("notes", [])
    _check_layer_values(sc, frames)
    if sc.demand.census:
        _check_census(sc)
    if sc.demand.raster:
        _check_file(sc.demand.raster.path, "demand.raster.path")
    notes += _checks.data_checks(sc, frames)  # extents overlap, census codes, graph parses, GCJ-02
    from .density import check_cell_size

    check_cell_size(rules, cell_m=sc.grid.cell_size_m, speed_kmh=sc.speed_kmh())
    return notes


def _required_fields(sc: Scenario, field_name: str) -> list[str]:
    if field_name == "demand.census.units" and sc.demand.census:
        return [sc.demand.census.unit_code_field]
    if field_name == "planning_units.layer":
        return [sc.planning_units.id_field, sc.planning_units.name_field]
    if field_name == "existing_facilities.layer":
        ef = sc.existing_facilities
        return [ef.id_field, ef.name_field] + ([ef.beds_field] if ef.beds_field else [])
    if field_name == "candidates.layer":
        c = sc.candidates
        return [c.id_field] + ([c.cost_field] if c.cost_field else [])
    if field_name == "demand.points" and sc.demand.points:
        return [sc.demand.points.count_field]
    return []


def _check_layer_values(sc: Scenario, frames: dict[str, Any]) -> None:
    """Counts and beds must be numbers ≥ 0; facility ids unique."""
    ef = sc.existing_facilities
    fac = frames.get("existing_facilities.layer")
    if fac is not None:
        assert ef.layer is not None  # validate() reads this layer, and puts it in frames, only when it is set
        ids = fac[ef.id_field].astype(str)
        dup = sorted(ids[ids.duplicated()].unique())
        if dup:
            raise DataError(f"{ef.layer.path}: duplicate facility ids in `{ef.id_field}`: {', '.join(dup[:5])}",
                            hints=("each facility needs its own id",))
        if ef.beds_field:
            _check_non_negative(fac, ef.beds_field, ef.layer.path, "existing_facilities.beds_field",
                                allow_null=ef.default_beds is not None)
    pts = frames.get("demand.points")
    if pts is not None and sc.demand.points:
        _check_non_negative(pts, sc.demand.points.count_field, sc.demand.points.path, "demand.points.count_field")


def _check_non_negative(df: Any, col: str, path: Path, field_name: str, allow_null: bool = False) -> None:
    import pandas as pd

    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce")
    bad_text = num.isna() & raw.notna()
    if bad_text.any():
        raise DataError(f"{path}: `{col}` holds text where a number is needed "
                        f"(e.g. {raw[bad_text].iloc[0]!r}; scenario field `{field_name}`)",
                        hints=("write plain numbers, e.g. 120",))
    if num.isna().any() and not allow_null:
        raise DataError(f"{path}: `{col}` is empty or NaN in {int(num.isna().sum())} row(s) "
                        f"(scenario field `{field_name}`)")
    if (num < 0).any():
        raise DataError(f"{path}: `{col}` is negative ({num[num < 0].iloc[0]:g}; scenario field `{field_name}`)",
                        hints=("counts and beds must be ≥ 0",))


def _check_census(sc: Scenario) -> None:
    from . import _layers

    c = sc.demand.census
    assert c is not None
    table = _layers.read_table(c.table, field="demand.census.table")
    for col in (c.code_field, c.count_column):
        if col not in table.columns:
            raise DataError(f"{c.table}: column {col!r} missing (scenario field `demand.census`)",
                            hints=("columns: " + ", ".join(table.columns),))
    _check_non_negative(table, c.count_column, c.table, "demand.census.count_field")


def _check_file(path: Path, field_name: str) -> None:
    if not Path(path).exists():
        raise DataError(f"{path}: file not found (scenario field `{field_name}`)")

