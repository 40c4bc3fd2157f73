"""Command line: ``siting run | validate | rules | schema | init | prepare``.

Exit codes: 0 success; 2 invalid input (one line naming file, field and fix); 3 no plan: the
rules cannot be met (or no solution within the time limit) — one line naming the scenario file,
the field, the measured figure and the fix; the report goes to ``<out>.diagnosis`` and ``<out>``
is left as it was. ``--debug`` shows tracebacks; otherwise no traceback ever reaches the user.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.text import Text

from ._errors import SitingError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Plan elderly-care institutions (养老机构) against planning rules (default: zhejiang-2021).",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        warnings.filterwarnings("ignore")


def _fail(exc: BaseException) -> None:
    """Print one line (plus hints) and exit with the error's code; traceback only with --debug."""
    if _state["debug"]:
        raise exc
    if isinstance(exc, SitingError):
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        for hint in exc.hints:
            err.print(f"hint: {hint}", markup=False)
        raise typer.Exit(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        err.print("interrupted; earlier outputs are untouched", markup=False)
        raise typer.Exit(130)
    if isinstance(exc, MemoryError):
        err.print("error: out of memory; try a larger grid.cell_size_m or a smaller study area", markup=False)
        raise typer.Exit(1)
    err.print(f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              markup=False)
    err.print("hint: this is a bug in siting — rerun with --debug and report the traceback", markup=False)
    raise typer.Exit(1)


@app.command()
def run(
    scenario: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(help="scenario YAML (default: scenarios/hangzhou_shangcheng.yaml)"),
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="output folder (default: from the scenario)")] = None,  # noqa: UP045
    solver: Annotated[Optional[str], typer.Option("--solver", help="highs | cbc")] = None,  # noqa: UP045
    time_limit: Annotated[Optional[float], typer.Option("--time-limit", help="solver time limit, seconds")] = None,  # noqa: UP045
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Build demand, reach and the plan; write reports, GIS layers, maps and the run record."""
    from . import api

    t0 = time.perf_counter()

    def progress(stage: str) -> None:
        if not quiet:
            err.print(f"[dim]{time.perf_counter() - t0:6.1f}s[/] {stage} …", markup=True)

    try:
        res = api.run(scenario, out=out, solver=solver, time_limit=time_limit, progress=progress,
                      argv=sys.argv)
    except BaseException as exc:
        if isinstance(exc, typer.Exit):
            raise
        _fail(exc)
        return
    _print_outcome(res, quiet)
    raise typer.Exit(res.exit_code)


MAX_PROBLEMS_SHOWN = 3  # the console shows this many diagnosis sentences; the report has all


def _print_outcome(res: Any, quiet: bool) -> None:
    if res.exit_code:
        _print_no_plan(res)
        return
    if quiet:
        return
    plan, info = res.plan, res.plan.solver
    new = plan.new_sites
    beds = int(new["beds"].sum()) if "beds" in getattr(new, "columns", []) else 0
    gap_txt = f", gap {info.gap:.3%}" if info.gap else ""
    err.print(f"[bold green]{info.status}[/]{gap_txt}: {len(new)} new institution(s), {beds} new beds, "
              f"cost {plan.cost_total:,.0f} CNY → {res.out_dir}", markup=True)


def _print_no_plan(res: Any) -> None:
    """Exit 3: one error line naming the scenario file, the field, the figure and the fix; where the report is.

    The sentences come from the diagnosis (:mod:`siting.diagnose`), which measured them.
    """
    sc = res.scenario
    source = sc.source_path or sc.name
    if res.plan.solver.status == "no_solution":
        lines = [f"solver.time_limit_s: no plan found within the solver time limit ({sc.solver.time_limit_s:g} s)"
                 " — raise `solver.time_limit_s` or use --time-limit"]
    else:
        summary = (res.plan.diagnosis or {}).get("summary") or ["no plan meets every rule with these candidates"]
        lines = [f"the rules cannot be met: {summary[0]}", *(f"also: {x}" for x in summary[1:MAX_PROBLEMS_SHOWN])]
        if len(summary) > MAX_PROBLEMS_SHOWN:
            lines.append(f"… {len(summary) - MAX_PROBLEMS_SHOWN} more in the report")
    err.print(Text.assemble(("error:", "bold red"), f" {source}: {lines[0]}"))
    for line in lines[1:]:
        err.print(line, markup=False)
    err.print(f"diagnosis written to {res.out_dir} (a run without a plan never writes to {sc.output_dir()})",
              markup=False)


@app.command()
def validate(
    scenarios: Annotated[list[Path], typer.Argument(help="scenario YAML file(s)")],
) -> None:
    """Check scenario files and the data they point to (layers, CRS, fields, counts) without solving."""
    from . import api

    for path in scenarios:
        try:
            notes = api.validate(path)
        except BaseException as exc:
            _fail(exc)
            return
        err.print(f"[green]ok[/] {path}", markup=True)
        for note in notes:
            err.print(f"  note: {note}", markup=False)


@app.command()
def rules(
    rule_set: Annotated[Optional[str], typer.Option("--rule-set", help="one preset (default: all)")] = None,  # noqa: UP045
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """List the rule presets: ids, values, status (enforced / reported / out of scope), sources."""
    from . import rules as rules_mod

    try:
        if fmt not in ("table", "json"):
            raise SitingError(f"--format must be 'table' or 'json', got {fmt!r}")
        names = [rule_set] if rule_set else rules_mod.available_rule_sets()
        sets = [rules_mod.load_rule_set(n) for n in names]
        typer.echo(rules_mod.format_rules(sets, fmt))  # type: ignore[arg-type]
    except BaseException as exc:
        if isinstance(exc, typer.Exit):
            raise
        _fail(exc)


@app.command()
def schema(
    out: Annotated[Optional[Path], typer.Option("--out", help="write to a file instead of stdout")] = None,  # noqa: UP045
) -> None:
    """Print the JSON Schema of scenario files (editors use it to validate YAML)."""
    from .scenario import json_schema

    text = json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="scenario name (file NAME.yaml)")],
    directory: Annotated[Path, typer.Option("--dir", help="folder to write into")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented scenario template NAME.yaml to edit."""
    from .template import render_template

    try:
        target = directory / f"{name}.yaml"
        if target.exists() and not force:
            raise SitingError(f"{target}: already exists", hints=("use --force to overwrite",))
        text = render_template(name)
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except BaseException as exc:
        if isinstance(exc, typer.Exit):
            raise
        _fail(exc)
        return
    err.print(f"wrote {target}; edit it, then: siting validate {target}", markup=False)


@app.command()
def prepare(
    place: Annotated[str, typer.Option("--place", help='a place name osmnx can geocode, e.g. "上城区, 杭州市"')],
    out: Annotated[Path, typer.Option("--out", help="folder for the layers")] = Path("prepared"),
) -> None:
    """Download OSM layers and street networks for a place (needs internet; not used at run time)."""
    try:
        from .prepare import prepare_place

        for path in prepare_place(place, out):
            err.print(f"wrote {path}", markup=False)
    except BaseException as exc:
        if isinstance(exc, typer.Exit):
            raise
        _fail(exc)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
