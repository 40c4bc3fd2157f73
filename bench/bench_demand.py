"""Benchmark: the 100 m demand grid of the whole hangzhou_westlake area (23 subdistricts).

The default scenario without the `where` filters on study_area and planning_units
(133.6 km²; old 江干/下城/拱墅/西湖 only partly inside). Target: < 10 s.

    python bench/bench_demand.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from siting import demand, scenario

REPO = Path(__file__).resolve().parents[1]


def whole_area(s: scenario.Scenario) -> scenario.Scenario:
    pu = s.planning_units
    return s.model_copy(update={
        "study_area": s.study_area.model_copy(update={"where": None}),
        "planning_units": pu.model_copy(update={"layer": pu.layer.model_copy(update={"where": None})}),
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    s = whole_area(scenario.load(REPO / "scenarios" / "hangzhou_shangcheng.yaml"))
    times, d = [], None
    for _ in range(args.repeat):
        t = time.perf_counter()
        d = demand.build(s)
        times.append(time.perf_counter() - t)
    assert d is not None
    print(f"hangzhou_westlake demand grid: {d.meta['study_area_km2']:.1f} km², cell {d.cell_size_m:g} m, "
          f"grid {d.meta['grid_shape'][0]}×{d.meta['grid_shape'][1]}, {len(d.cells)} cells with elderly, "
          f"{len(d.units)} units, {d.cells.elderly.sum():,.0f} elderly")
    print(f"build time: median {statistics.median(times):.2f} s of {args.repeat} "
          f"({', '.join(f'{t:.2f}' for t in times)}); target < 10 s")


if __name__ == "__main__":
    main()
