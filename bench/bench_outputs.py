"""Benchmark: everything `siting run` writes after the solve, at city scale (issue 8).

The full planning model of a synthetic city (``make_instance.py``, as in ``run_bench.py --problems
full``) is solved within ``--time-limit`` and then written as a planner's run writes it: the three
maps (PNG + PDF), the HTML map, the GIS layers (GeoPackage, Shapefile, GeoJSON), the reports and
the manifest. Each size runs in its own process, so the peak memory is that size's.

    python bench/bench_outputs.py --sizes 50000,200000 --time-limit 60
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
STAGES = ("maps", "html map", "layers", "report")


def child(n: int, time_limit: float) -> dict:
    sys.path.insert(0, str(BENCH))
    import _instances as inst_mod
    import run_bench

    from siting import api
    from siting import model as sm

    t = time.perf_counter()
    inst = inst_mod.load_instance(n)
    pi = inst_mod.planning_inputs(inst)
    reach, _ = run_bench._full_reach(pi, False)
    t_inputs = time.perf_counter() - t
    scen = pi.scenario.model_copy(update={"solver": pi.scenario.solver.model_copy(update={"time_limit_s": time_limit})})
    t = time.perf_counter()
    plan = sm.plan(scen, pi.rules, pi.demand, pi.sites, reach)
    t_plan = time.perf_counter() - t
    res = api.RunResult(scenario=scen, rules=pi.rules, demand=pi.demand, sites=pi.sites, reach=reach, plan=plan)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t = time.perf_counter()
        api.write_outputs(res, out, argv=["bench_outputs"])
        t_write = time.perf_counter() - t
        sizes = {p.name: sum(f.stat().st_size for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
                 for p in out.iterdir()}
    return {"n": n, "cells": len(pi.demand.cells), "units": len(pi.demand.units), "new_sites": len(plan.new_sites),
            "status": plan.solver.status, "gap": plan.solver.gap, "t_inputs": t_inputs, "t_plan": t_plan,
            "t_write": t_write, **{f"t_{k}": res.timings.get(k) for k in STAGES},
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "mb": {k: v / 2**20 for k, v in sizes.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50000,200000")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.time_limit)))
        return
    print("| N | units | new sites | solve s (status, gap) | maps s | html map s | layers s | report s | "
          "outputs s | peak MB | GeoPackage MB | maps MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        done = subprocess.run([sys.executable, __file__, "--child", str(n), "--time-limit", str(args.time_limit)],
                              capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        gap = "-" if r["gap"] is None else f"{100 * r['gap']:.3f} %"
        print(f"| {r['n']} | {r['units']} | {r['new_sites']} | {r['t_plan']:.1f} ({r['status']}, {gap}) | "
              f"{r['t_maps']:.1f} | {r['t_html map']:.1f} | {r['t_layers']:.1f} | {r['t_report']:.1f} | "
              f"{r['t_write']:.1f} | {r['peak_mb']:.0f} | {r['mb'].get('layers.gpkg', 0):.0f} | "
              f"{r['mb'].get('maps', 0):.0f} |", flush=True)


if __name__ == "__main__":
    main()
