"""Benchmark reach building (issue 5); prints the median of 3 runs and the peak memory.

Cases (each runs in its own process so the peak RSS is its own):

* ``hangzhou``: the whole hangzhou_westlake study area (23 subdistricts), a full 100 m lattice of
  cells (band radii 500/1000 m alternating 2:1 — the demand module is not used so the figure
  is about reach only), every generated candidate (spacing 200 m) plus the OSM institutions,
  network mode on the walk graph, cold cache. Target ≤ 15 s.
* ``hangzhou-demand``: the same with the real demand grid of ``hangzhou_westlake.yaml``
  (only cells holding elderly: ~2.7k).
* ``synthetic``: ``make_instance.py 200000 20000`` (200k cells × 20k sites, radii 500/1000 m),
  euclidean mode, cold cache. Target ≤ 10 s and ≤ 2 GB peak RSS.

Usage::

    python bench/bench_reach.py                       # both cases
    python bench/bench_reach.py hangzhou
    python bench/bench_reach.py synthetic --instance /tmp/inst/inst_200000x20000.gpkg
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CRS = "EPSG:4549"


def _demand_like(x, y, radius, units=None, study_area=None):
    import geopandas as gpd
    import pandas as pd

    from siting.demand import DemandGrid

    cells = gpd.GeoDataFrame({"cell_id": np.arange(len(x)), "x": x, "y": y, "radius_m": radius,
                              "elderly": np.ones(len(x))}, geometry=gpd.points_from_xy(x, y), crs=CRS)
    empty = gpd.GeoDataFrame({"unit_id": []}, geometry=[], crs=CRS)
    return DemandGrid(cells=cells, units=units if units is not None else empty,
                      study_area=study_area if study_area is not None else empty,
                      census=pd.DataFrame(), crs=CRS, cell_size_m=100.0)


def _hangzhou_inputs(real_demand: bool):
    import geopandas as gpd
    import shapely

    from siting import demand as demand_mod
    from siting import scenario as scenario_mod
    from siting import sites as sites_mod

    sc = scenario_mod.load(REPO / "scenarios" / "hangzhou_westlake.yaml")
    real = demand_mod.build(sc)
    if real_demand:
        return sc, real, sites_mod.build(sc, real)
    area = shapely.union_all(real.study_area.geometry.to_numpy())
    x0, y0, x1, y1 = area.bounds
    gx, gy = np.meshgrid(np.arange(np.floor(x0 / 100) * 100 + 50, x1, 100.0),
                         np.arange(np.floor(y0 / 100) * 100 + 50, y1, 100.0))
    inside = shapely.contains_xy(area, gx.ravel(), gy.ravel())
    x, y = gx.ravel()[inside], gy.ravel()[inside]
    radius = np.where(np.arange(x.size) % 3 == 0, 1000.0, 500.0)
    demand = _demand_like(x, y, radius, real.units, gpd.GeoDataFrame(geometry=[area], crs=CRS))
    return sc, demand, sites_mod.build(sc, demand)


def _synthetic_inputs(instance: Path):
    import geopandas as gpd

    sys.path.insert(0, "/work/shared/bench")
    import make_instance  # type: ignore[import-not-found]

    from siting import scenario as scenario_mod
    from siting.scenario import DistanceSpec
    from siting.sites import Sites

    dem_xy, _, radius, cand_xy, _ = make_instance.load(instance)
    sc = scenario_mod.load(REPO / "scenarios" / "hangzhou_shangcheng.yaml")
    sc = sc.model_copy(update={"distance": DistanceSpec(mode="euclidean")})
    demand = _demand_like(dem_xy[:, 0], dem_xy[:, 1], np.where(radius > 0, radius, np.nan))
    table = gpd.GeoDataFrame({"site_id": [f"C{i}" for i in range(len(cand_xy))], "kind": "candidate",
                              "x": cand_xy[:, 0], "y": cand_xy[:, 1]},
                             geometry=gpd.points_from_xy(cand_xy[:, 0], cand_xy[:, 1]), crs=CRS)
    return sc, demand, Sites(table=table, crs=CRS)


def run_case(case: str, instance: Path, repeats: int) -> dict:
    from siting import reach as reach_mod

    if case == "synthetic":
        sc, demand, sites = _synthetic_inputs(instance)
    else:
        sc, demand, sites = _hangzhou_inputs(real_demand=case == "hangzhou-demand")
    times, r = [], None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:  # cold cache every run
            t = time.perf_counter()
            r = reach_mod.build(sc, demand, sites, cache_dir=cache)
            times.append(time.perf_counter() - t)
    keep = ("detour_ratio_median", "detour_pairs", "seconds_load_graph", "seconds_dijkstra",
            "dijkstra_from", "dijkstra_sources", "n_cells_beyond_snap_limit", "seconds_euclidean")
    return {
        "case": case, "mode": r.mode, "n_cells": len(demand.cells), "n_sites": len(sites.table),
        "nnz": int(r.dist.nnz), "seconds": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **{k: r.meta[k] for k in keep if k in r.meta},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*", default=["hangzhou", "hangzhou-demand", "synthetic"])
    ap.add_argument("--instance", type=Path, default=Path("/tmp/inst/inst_200000x20000.gpkg"),
                    help="from: python /work/shared/bench/make_instance.py 200000 20000 --out /tmp/inst")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.in_process:
        print(json.dumps(run_case(a.cases[0], a.instance, a.repeats), default=str))
        return
    for case in a.cases:
        out = subprocess.run([sys.executable, __file__, case, "--in-process", "--instance", str(a.instance),
                              "--repeats", str(a.repeats)], capture_output=True, text=True, check=False)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            raise SystemExit(out.returncode)
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
