"""City-scale benchmark: siting against PySAL spopt 0.7 on the shared synthetic cities (issue 8).

Every case runs in a fresh subprocess, so the peak memory (``ru_maxrss`` of the child, plus
its own children such as a CBC process) is per tool and per case. siting and spopt run on the
same instance in the same run; the ratio spopt ÷ siting is only taken within one run.

    python bench/run_bench.py --sizes 2000,10000 --problems lscp,mclp
    python bench/run_bench.py --sizes 50000 --problems lscp --spopt-once
    python bench/run_bench.py --sizes 200000 --problems full,full-network --no-spopt

Problems: ``lscp`` (set cover: every cell owed a radius — ZJ-R500 / ZJ-R1000 — reached, fewest
sites), ``mclp`` (p = M/10 sites, maximise covered elderly), ``full`` (the planning model:
band radii + ZJ-BEDS per ~10k-elderly unit + existing institutions + 60/100/150-bed modules,
default-scenario costs, ``siting.model.plan``), ``full-network`` (same, network reach on a
synthetic street grid), ``full-budget`` (the planning model with ``kind: max_coverage``: most elderly
reached within BUDGET_PER_CELL × N CNY, ZJ-BEDS as a second objective).
Variants (ablations): ``plain`` = one MILP on the unreduced matrix via
``siting.solve.solve_milp`` (no reductions, no decomposition, no warm start); ``no_<lever>`` = the
default path with one lever of ``siting.optimize.Levers`` switched off (``_LEVERS`` lists those
that apply to each problem; e.g. ``no_window_search``, ``no_components``); ``noreduce`` =
``plan(reduce=False)`` for the full model; ``nocuts`` = ``plan(cuts=False)`` (no rows implied by
ZJ-BEDS, ``siting._cuts``); ``hull`` = ``plan(cuts={"mir", "hull"})`` (MIR and count hull rows);
``nostart`` = full-budget without the max-coverage start (``siting._warmstart.coverage_start``) and its own bound.

spopt: ``LSCP/MCLP.from_cost_matrix`` on the dense 0/1 matrix (1 = beyond the cell's own
radius) with ``service_radius=0.5``, solved by PuLP's HiGHS (``--spopt-solver highs``, the
default: same engine as siting) or CBC; ``solve(results=False)`` (skips spopt's allocation
tables, which only favours spopt).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _instances as inst_mod  # noqa: E402

PROBLEMS = ("lscp", "mclp", "full", "full-network", "full-budget")
_LEVERS = {"lscp": ("identical_rows", "dominated_rows", "dominated_cols", "forced_cols", "components", "warm_start"),
           "mclp": ("identical_rows", "dominated_cols", "singleton_rows", "warm_start", "window_search", "own_bound")}
_VARIANTS = {"lscp": ("plain", *(f"no_{lv}" for lv in _LEVERS["lscp"])),
             "mclp": ("plain", *(f"no_{lv}" for lv in _LEVERS["mclp"])),
             "full": ("noreduce", "nocuts", "hull"), "full-network": ("noreduce", "nocuts", "hull"),
             "full-budget": ("nostart",)}
BUDGET_PER_CELL = 100_000.0  # full-budget: CNY per demand cell (5e9 at 50k, 2e10 at 200k: about half the cells owed
# a radius can be reached)
ALL_VARIANTS = tuple(dict.fromkeys(v for vs in _VARIANTS.values() for v in vs))
MCLP_LIMIT_S = 120.0
FULL_LIMIT_S = 300.0
OBJ_RTOL = 1e-6


# ----------------------------------------------------------------------------- child side


def _peak_mb() -> float:
    """Peak resident memory (MB) of this process and of the processes it waited for (CBC)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its waited-for children (contention-proof-ish)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _siting_cover(case: dict, inst: Any) -> dict:
    from siting.optimize import Levers, solve_max_coverage, solve_set_cover

    t = time.perf_counter()
    cov = inst_mod.sparse_coverage(inst)
    t_reach = time.perf_counter() - t
    off = case["variant"].removeprefix("no_") if case["variant"].startswith("no_") else None
    kw = {"solver": case["solver"], "threads": case["threads"], "seed": case.get("seed", 0),
          "levers": Levers(**({off: False} if off else {}))}
    if case["problem"] == "lscp":
        res = solve_set_cover(cov, **kw)
    else:
        res = solve_max_coverage(cov, inst.elderly[inst.required], n_sites=inst.p, time_limit=MCLP_LIMIT_S, **kw)
    s = res.stats
    t_build = s.get("t_setup", 0.0) + s.get("t_reduce", 0.0) + s.get("t_components", 0.0)
    return {"t_reach": t_reach, "t_build": t_build, "t_solve": res.seconds - t_build,
            "status": res.status, "objective": res.objective, "gap": res.gap, "n_selected": int(res.selected.size),
            "nnz": int(cov.nnz), "stats": {k: v for k, v in s.items() if isinstance(v, (int, float))}}


def _siting_plain(case: dict, inst: Any) -> dict:
    """Ablation: one MILP on the unreduced matrix (no reductions, components, warm start)."""
    from scipy import sparse

    from siting.solve import MilpProblem, SolverOptions, solve_milp

    t = time.perf_counter()
    cov = inst_mod.sparse_coverage(inst)
    t_reach = time.perf_counter() - t
    t = time.perf_counter()
    a = sparse.csr_array(cov, dtype=np.float64)
    a.data[:] = 1.0
    n, m = a.shape
    opts = SolverOptions(name=case["solver"], threads=case["threads"], seed=case.get("seed", 0),
                         time_limit_s=MCLP_LIMIT_S if case["problem"] == "mclp" else None)
    if case["problem"] == "lscp":
        prob = MilpProblem(c=np.ones(m), A=a, row_lb=np.ones(n), row_ub=np.full(n, np.inf), col_lb=np.zeros(m),
                           col_ub=np.ones(m), integrality=np.ones(m, bool))
    else:
        w = inst.elderly[inst.required]
        big = sparse.bmat([[-a, sparse.eye_array(n, format="csr")],
                           [sparse.csr_array(np.ones((1, m))), None]], format="csr")
        prob = MilpProblem(c=np.r_[np.zeros(m), w], A=sparse.csr_array(big), row_lb=np.full(n + 1, -np.inf),
                           row_ub=np.r_[np.zeros(n), inst.p], col_lb=np.zeros(m + n), col_ub=np.ones(m + n),
                           integrality=np.r_[np.ones(m, bool), np.zeros(n, bool)], sense="max")
    t_build = time.perf_counter() - t
    res = solve_milp(prob, opts)
    sel = np.flatnonzero(res.x[:m] > 0.5) if res.x is not None else np.zeros(0, int)
    obj = res.objective
    if res.x is not None and case["problem"] == "mclp":  # recompute covered weight exactly
        obj = float(inst.elderly[inst.required][np.asarray(a[:, sel].sum(axis=1)).ravel() > 0].sum())
    return {"t_reach": t_reach, "t_build": t_build, "t_solve": res.seconds, "status": res.status,
            "objective": obj, "gap": res.gap, "n_selected": int(sel.size), "nnz": int(a.nnz), "stats": {}}


def _spopt(case: dict, inst: Any) -> dict:
    import pulp
    from spopt.locate import LSCP, MCLP

    t = time.perf_counter()
    cost = inst_mod.dense_cost01(inst)
    t_reach = time.perf_counter() - t
    t = time.perf_counter()
    w = inst.elderly[inst.required]
    if case["problem"] == "lscp":
        model = LSCP.from_cost_matrix(cost, service_radius=0.5)
    else:
        model = MCLP.from_cost_matrix(cost, w, service_radius=0.5, p_facilities=inst.p)
    t_build = time.perf_counter() - t
    limit = None if case["problem"] == "lscp" else MCLP_LIMIT_S
    solver = (pulp.HiGHS(msg=False, timeLimit=limit, threads=2) if case["spopt_solver"] == "highs"
              else pulp.PULP_CBC_CMD(msg=False, timeLimit=limit, threads=2))
    t = time.perf_counter()
    model.solve(solver, results=False)
    t_solve = time.perf_counter() - t
    sel = np.array([j for j, v in enumerate(model.fac_vars) if (v.value() or 0) > 0.5], dtype=np.int64)
    covered = (cost[:, sel] <= 0.5).any(axis=1) if sel.size else np.zeros(cost.shape[0], bool)
    obj = float(sel.size) if case["problem"] == "lscp" else float(w[covered].sum())
    status = {1: "optimal", 0: "time_limit", -1: "infeasible"}.get(model.problem.status, str(model.problem.status))
    if case["problem"] == "lscp" and not covered.all():
        status = "invalid"
    return {"t_reach": t_reach, "t_build": t_build, "t_solve": t_solve, "status": status, "objective": obj,
            "gap": None, "n_selected": int(sel.size), "nnz": int((cost <= 0.5).sum()), "stats": {}}


def _full(case: dict, inst: Any) -> dict:
    from siting import model as sm

    network = case["problem"] == "full-network"
    graph_path = None
    t_graph = 0.0
    if network:
        t = time.perf_counter()
        name = f"streets_{inst.n}_{case['street_m']:g}m.graphml"
        graph_path = inst_mod.street_grid(inst, inst_mod.INSTANCE_DIR / name, spacing_m=case["street_m"])
        t_graph = time.perf_counter() - t
    pi = inst_mod.planning_inputs(inst, network_graph=graph_path)
    t = time.perf_counter()
    reach, reach_info = _full_reach(pi, network)
    t_reach = time.perf_counter() - t
    scen = pi.scenario.model_copy(update={"solver": pi.scenario.solver.model_copy(
        update={"name": case["solver"], "time_limit_s": case.get("time_limit") or FULL_LIMIT_S,
                "threads": case["threads"], "seed": case.get("seed", pi.scenario.solver.seed)})})
    if case["problem"] == "full-budget":
        scen = scen.model_copy(update={"objective": scen.objective.model_copy(update={
            "kind": "max_coverage", "budget": BUDGET_PER_CELL * inst.n, "beds_rule": "objective",
            "coverage_curve": None})})
    if case["variant"] == "nostart":
        from siting import _warmstart

        _warmstart.coverage_start = lambda *a, **k: None  # ablation only, in this child process
    t = time.perf_counter()
    reduce = case["variant"] != "noreduce"
    cuts: bool | set[str] = {"nocuts": False, "hull": {"mir", "hull"}}.get(case["variant"], True)
    problem, idx = sm.build_problem(scen, pi.rules, pi.demand, pi.sites, reach, reduce=reduce, cuts=cuts)
    t_build = time.perf_counter() - t
    del problem, idx
    t = time.perf_counter()
    plan = sm.plan(scen, pi.rules, pi.demand, pi.sites, reach, reduce=reduce, cuts=cuts)
    t_plan = time.perf_counter() - t
    stages = plan.solver.options.get("stages", [])
    primary = stages[0]["seconds"] if stages else None
    return {"t_reach": t_reach, "t_build": t_build, "t_solve": t_plan - t_build, "status": plan.solver.status,
            "seed": scen.solver.seed,
            "objective": plan.solver.objective, "gap": plan.solver.gap, "n_selected": len(plan.new_sites),
            "nnz": int(reach.dist.nnz),
            "stats": {"t_prep": pi.seconds, "t_graph_write": t_graph, "t_plan": t_plan, "t_primary_stage": primary,
                      "units": len(pi.demand.units), "existing": int(pi.sites.n_existing),
                      "cost_total": plan.cost_total, "stages": stages, **reach_info,
                      "reductions": plan.meta.get("reductions", {}),
                      "deficit_after": int(plan.units["deficit_after"].sum()) if len(plan.units) else 0,
                      "diagnosis": plan.diagnosis is not None}}


def _full_reach(pi: Any, network: bool) -> tuple[Any, dict]:
    """Reach for the full model: KD-tree (euclidean) or snap + bounded Dijkstra (network)."""
    from siting import reach as sr

    cells = pi.demand.cells
    radius = cells["radius_m"].to_numpy(np.float64)
    cxy = cells[["x", "y"]].to_numpy(np.float64)
    sxy = inst_mod.site_xy(pi.sites)
    if not network:
        return sr.Reach(dist=sr.euclidean_matrix(cxy, radius, sxy), mode="euclidean"), {}
    from siting.network import load_graph, snap

    spec = pi.scenario.distance.network
    t = time.perf_counter()
    g = load_graph(spec.graph, crs=pi.scenario.grid.crs)
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    cs, ss = snap(g, cxy, limit_m=spec.snap_limit_m), snap(g, sxy, limit_m=spec.snap_limit_m)
    dist, info = sr.network_matrix(g, cs, radius, ss, n_sites=len(sxy))
    t_search = time.perf_counter() - t
    return sr.Reach(dist=dist, mode="network"), {"t_graph_load": t_load, "t_snap_dijkstra": t_search,
                                                  "graph_nodes": g.n_nodes, "graph_edges": int(g.adj.nnz), **info}


def _preimport(case: dict) -> None:
    """Import the tool's modules before any clock starts (import time is reported apart)."""
    if case["tool"] == "spopt":
        import pulp  # noqa: F401
        import spopt.locate  # noqa: F401
        from scipy.spatial import distance  # noqa: F401
    else:
        import siting.model
        import siting.optimize
        import siting.reach  # noqa: F401


def run_child(case: dict) -> dict:
    """Run one case in this (fresh) process; return its measurements."""
    t0 = time.perf_counter()
    _preimport(case)
    t_import = time.perf_counter() - t0
    inst = inst_mod.load_instance(case["n"], case["m"])
    base = _peak_mb()
    cpu0 = _cpu_s()
    if case["tool"] == "spopt":
        out = _spopt(case, inst)
    elif case["problem"].startswith("full"):
        out = _full(case, inst)
    elif case["variant"] == "plain":
        out = _siting_plain(case, inst)
    else:
        out = _siting_cover(case, inst)
    out["t_total"] = out["t_reach"] + out["t_build"] + out["t_solve"]
    out["cpu_s"] = _cpu_s() - cpu0
    out["rss_base_mb"] = base
    out["peak_mb"] = _peak_mb()
    out["peak_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["peak_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # CBC, side search
    out["wall_child_s"] = time.perf_counter() - t0
    out["t_import"] = t_import
    out.setdefault("seed", case.get("seed", 0))  # the solver seed this child used (spopt's PuLP gets none)
    return out


# ----------------------------------------------------------------------------- parent side


def spawn(case: dict, timeout: float | None) -> dict:
    """Run ``case`` in a fresh interpreter; status "timeout"/"crashed" when it does not finish."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(case)]
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "t_total": time.perf_counter() - t, "objective": None}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        err = (p.stderr or "").strip().splitlines()[-3:]
        return {"status": "crashed", "returncode": p.returncode, "error": " | ".join(err),
                "t_total": time.perf_counter() - t, "objective": None}
    return json.loads(lines[-1])


def _median_of(runs: list[dict]) -> dict:
    """Median stage times over repeats (peak memory: the largest); other fields from the median run."""
    ok = [r for r in runs if "t_reach" in r]
    if not ok:
        return runs[0]
    order = sorted(ok, key=lambda r: r["t_total"])
    out = dict(order[len(order) // 2])
    for k in ("t_reach", "t_build", "t_solve", "t_total", "cpu_s"):
        vals = [r[k] for r in ok if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
    out["peak_mb"] = max(r["peak_mb"] for r in ok)
    out["t_total_runs"] = [round(r["t_total"], 3) for r in ok]
    return out


def machine() -> dict:
    with contextlib.suppress(OSError):
        load = os.getloadavg()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "mem_gib": round(mem, 1), "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_start": [round(x, 2) for x in load]}


def save(out: Path, records: list[dict]) -> None:
    """Merge records into the JSON file (locked; other runs may write it at the same time)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"siting_bench_{key}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(out.read_text()) if out.exists() else []
        keys = {_record_key(r) for r in records}
        old = [r for r in old if _record_key(r) not in keys]
        out.write_text(json.dumps(old + records, indent=1, default=float))


def _record_key(r: dict) -> tuple:
    """One record per run, case, solver and thread count."""
    return (r["run_id"], r["n"], r["problem"], r["tool"], r["variant"], r["solver"], r.get("threads", 2))


def check_agreement(records: list[dict]) -> list[str]:
    """Same objective for every tool that finished optimally on the same (size, problem)."""
    notes = []
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["n"], r["problem"]), []).append(r)
    for (n, prob), rs in groups.items():
        opt = [r for r in rs if r.get("status") == "optimal" and r.get("objective") is not None]
        if len(opt) < 2:
            continue
        ref = opt[0]["objective"]
        bad = [r for r in opt if abs(r["objective"] - ref) > OBJ_RTOL * max(1.0, abs(ref))]
        for r in rs:
            r["agree"] = not bad if r in opt else None
        notes.append(f"{n} {prob}: " + ("objectives agree" if not bad else "OBJECTIVES DIFFER: " +
                                         ", ".join(f"{r['tool']}/{r['variant']}={r['objective']}" for r in opt)))
    return notes


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def _gap(g: float | None) -> str:
    return "-" if g is None else f"{100 * g:.3f} %"


def table(records: list[dict]) -> str:
    """Markdown table; ratio = spopt ÷ siting total time within the same run (the run column: its id)."""
    head = ("| run | N×M | problem | tool | reach s | build s | solve s | total s | cpu s | peak MB | status "
            "| objective | gap | spopt ÷ siting (wall / cpu) |")
    lines = [head, "|" + "---|" * 14]
    for r in records:
        ratio = "-"
        if r["tool"] == "siting" and r["variant"] == "default":
            sp = [q for q in records if q["tool"] == "spopt" and q["n"] == r["n"] and q["problem"] == r["problem"]
                  and q["run_id"] == r["run_id"] and q.get("t_total")]
            if sp and r.get("t_total"):
                ratio = f"{sp[0]['t_total'] / r['t_total']:.1f}×"
                if sp[0].get("cpu_s") and r.get("cpu_s"):
                    ratio += f" / {sp[0]['cpu_s'] / r['cpu_s']:.1f}×"
                if sp[0]["status"] == "timeout":
                    ratio = "> " + ratio + " (spopt killed)"
        tool = r["tool"] + ("" if r["variant"] == "default" else f" ({r['variant']})")
        if r["tool"] == "siting" and r.get("threads", 2) != 2:
            tool += f" {r['threads']} thread"
        if r.get("seeds"):
            tool += f" seeds {min(r['seeds'])}–{max(r['seeds'])}"
        obj = r.get("objective")
        lines.append(
            f"| {r.get('run_id', '-')} | {r['n']}×{r['m']} | {r['problem']} | {tool} [{r['solver']}] "
            f"| {_fmt(r.get('t_reach'))} "
            f"| {_fmt(r.get('t_build'))} | {_fmt(r.get('t_solve'))} | {_fmt(r.get('t_total'))} "
            f"| {_fmt(r.get('cpu_s'))} | {_fmt(r.get('peak_mb'), '.0f')} | {r['status']} | {_fmt(obj, '.6g')} "
            f"| {_gap(r.get('gap'))} | {ratio} |")
    return "\n".join(lines)


def cases_for(args: argparse.Namespace, n: int) -> list[dict]:
    m = n // 10
    base = {"n": n, "m": m, "solver": args.solver[0], "threads": args.threads[0], "spopt_solver": args.spopt_solver,
            "street_m": args.street_m, "time_limit": args.time_limit}
    out = []
    for prob in args.problems:
        variants = ["default"] + [v for v in args.variants if v in _VARIANTS[prob]]
        out += [{**base, "problem": prob, "tool": "siting", "variant": v} for v in variants]
        out += [{**base, "problem": prob, "tool": "siting", "variant": "default", "solver": sv, "threads": th}
                for sv in args.solver for th in args.threads if (sv, th) != (args.solver[0], args.threads[0])]
        if not args.no_spopt and prob in ("lscp", "mclp"):
            out.append({**base, "problem": prob, "tool": "spopt", "variant": "default", "solver": args.spopt_solver})
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="2000,10000", help="N values (M = N/10), comma separated")
    ap.add_argument("--problems", default="lscp,mclp", help=f"comma separated of {','.join(PROBLEMS)}")
    ap.add_argument("--repeat", type=int, default=3, help="siting runs per case (median)")
    ap.add_argument("--spopt-once", action="store_true", help="run spopt once per case, not --repeat times")
    ap.add_argument("--vary-seed", action="store_true", help="siting's repeat k uses solver seed k for its main "
                    "MILPs, so the median is over branch-and-bound search paths (tells a lever's effect from luck)")
    ap.add_argument("--spopt-timeout", type=float, default=1800.0, help="seconds before a spopt child is killed")
    ap.add_argument("--no-spopt", action="store_true")
    ap.add_argument("--solver", default="highs", help="siting's MILP solver(s): highs, cbc or highs,cbc (the "
                    "first runs every variant; the others run the default path, in the same run)")
    ap.add_argument("--spopt-solver", default="highs", choices=["highs", "cbc"], help="PuLP solver given to spopt")
    ap.add_argument("--threads", default="2", help="solver threads, e.g. 2 or 2,1 (as --solver: the first for "
                    "every variant, the others for the default path)")
    ap.add_argument("--variants", default="", help="ablations: plain or no_<lever> (lscp/mclp; levers: "
                    + "; ".join(f"{k}: {', '.join(v)}" for k, v in _LEVERS.items())
                    + "), noreduce, nocuts or hull (full), nostart (full-budget), or all_levers (every no_<lever>)")
    ap.add_argument("--street-m", type=float, default=100.0, help="street lattice spacing, full-network")
    ap.add_argument("--time-limit", type=float, default=FULL_LIMIT_S, help="full model: solver limit (s)")
    ap.add_argument("--report", action="store_true", help="print the table of --out (every run) and exit")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    a = ap.parse_args(argv)
    a.sizes = [int(s) for s in str(a.sizes).split(",") if s]
    a.problems = [p for p in a.problems.split(",") if p]
    a.variants = [v for v in a.variants.split(",") if v]
    a.solver = [v for v in str(a.solver).split(",") if v]
    if not a.solver or any(v not in ("highs", "cbc") for v in a.solver):
        ap.error(f"--solver {a.solver}: use highs, cbc or both, comma separated")
    try:
        a.threads = [int(v) for v in str(a.threads).split(",") if v]
    except ValueError:
        a.threads = []
    if not a.threads or min(a.threads) < 1:
        ap.error("--threads: whole numbers >= 1, comma separated")
    if "all_levers" in a.variants:
        a.variants = [v for v in a.variants if v != "all_levers"] + [v for v in ALL_VARIANTS if v.startswith("no_")]
    bad = [p for p in a.problems if p not in PROBLEMS] + [v for v in a.variants if v not in ALL_VARIANTS]
    if bad:
        ap.error(f"unknown problem/variant {bad}; problems: {', '.join(PROBLEMS)}; variants: {', '.join(ALL_VARIANTS)}")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child)), default=float))
        return 0
    if args.report:
        records = sorted(json.loads(args.out.read_text()), key=lambda r: (r["n"], PROBLEMS.index(r["problem"]),
                                                                          r["run_id"], r["tool"] != "siting"))
        print(table(records))
        return 0
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    info = {"run_id": run_id, "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv[1:], **machine()}
    records: list[dict] = []
    for n in args.sizes:
        inst_mod.ensure_instance(n)
        for case in cases_for(args, n):
            reps = 1 if case["tool"] == "spopt" and args.spopt_once else args.repeat
            timeout = args.spopt_timeout if case["tool"] == "spopt" else 3600
            vary = args.vary_seed and case["tool"] == "siting"
            seeds = list(range(reps)) if vary else [None] * reps
            # a failed child returns no seed: the one it was given stands in
            runs = [{"seed": k, **spawn(case if k is None else {**case, "seed": k}, timeout)} for k in seeds]
            rec = {**case, **_median_of(runs), "run_id": run_id, "machine": info, "repeats": reps}
            rec["median_seed"] = rec.pop("seed", None)  # the run whose status, objective and gap are reported
            rec["repeat_runs"] = [{"seed": r.get("seed"), "status": r.get("status"), "t_total": r.get("t_total")}
                                  for r in runs]
            if vary:
                rec["seeds"] = seeds
            records.append(rec)
            print(f"# {n} {case['problem']} {case['tool']}/{case['variant']}: {rec['status']} "
                  f"total={_fmt(rec.get('t_total'))}s peak={_fmt(rec.get('peak_mb'), '.0f')}MB "
                  f"obj={rec.get('objective')}", flush=True)
            save(args.out, records)
    notes = check_agreement(records)
    save(args.out, records)
    print(table(records))
    for line in notes:
        print("#", line)
    return 1 if any("DIFFER" in x for x in notes) else 0


if __name__ == "__main__":
    sys.exit(main())
