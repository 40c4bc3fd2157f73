"""Quick benchmark of siting.optimize (LSCP / MCLP) on the shared synthetic instances.

Usage:
    python /work/shared/bench/make_instance.py 10000 1000 --out /tmp/inst
    python bench/bench_cover.py 10000x1000 50000x5000 --inst /tmp/inst [--solver highs] [--mclp-limit 120]

Prints one row per (size, problem): sizes before/after reductions, stage seconds, status,
objective, gap. Rows = demand cells owed a radius (ZJ-R500 / ZJ-R1000 bands), weight = elderly,
MCLP p = M/10 (meta["p_mclp"]). The coverage matrix is built with a cKDTree per radius group.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from siting.optimize import CoverResult, solve_max_coverage, solve_set_cover

MAKE_INSTANCE = Path("/work/shared/bench/make_instance.py")


def load_instance(inst_dir: Path, n: int, m: int):
    """(dem_xy, elderly, radius, cand_xy, meta) via the shared make_instance.load()."""
    spec = importlib.util.spec_from_file_location("make_instance", MAKE_INSTANCE)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.load(inst_dir / f"inst_{n}x{m}.gpkg")


def coverage_matrix(dem_xy: np.ndarray, radius: np.ndarray, cand_xy: np.ndarray) -> sparse.csr_array:
    """Sparse rows (all demand) × candidates within the row's radius; rows with radius 0 stay empty."""
    tree = cKDTree(cand_xy)
    rows, cols = [], []
    for r in np.unique(radius[radius > 0]):
        idx = np.flatnonzero(radius == r)
        hits = tree.query_ball_point(dem_xy[idx], r=float(r))
        lens = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
        rows.append(np.repeat(idx, lens))
        cols.append(np.fromiter((j for h in hits for j in h), dtype=np.int64, count=int(lens.sum())))
    r_, c_ = np.concatenate(rows), np.concatenate(cols)
    return sparse.csr_array((np.ones(r_.size, dtype=np.int32), (r_, c_)), shape=(len(dem_xy), len(cand_xy)))


def row(size: str, problem: str, res: CoverResult, t_build: float) -> str:
    s = res.stats
    stages = " ".join(f"{k[2:]}={v:.2f}" for k, v in s.items() if k.startswith("t_"))
    gap = "-" if res.gap is None else f"{100 * res.gap:.3f}%"
    return (f"{size:>12} {problem:<10} rows {s.get('rows_after_fixed', 0):>6}->{s.get('rows_reduced', 0):<6} "
            f"cols {s['cols']:>5}->{s.get('cols_reduced', 0):<5} build={t_build:.2f} {stages} "
            f"total={res.seconds:.2f}s {res.status:<10} obj={res.objective:.0f} gap={gap} "
            f"sites={res.selected.size}")


def bench(size: str, inst: Path, solver: str, mclp_limit: float, lscp_limit: float, skip_mclp: bool) -> None:
    n, m = (int(v) for v in size.split("x"))
    dem_xy, elderly, radius, cand_xy, meta = load_instance(inst, n, m)
    t = time.perf_counter()
    cov = coverage_matrix(dem_xy, radius, cand_xy)
    t_build = time.perf_counter() - t
    req = np.flatnonzero(radius > 0)
    cov_req = cov[req]
    res = solve_set_cover(cov_req, solver=solver, time_limit=lscp_limit)
    print(row(size, "LSCP", res, t_build), flush=True)
    if skip_mclp:
        return
    p = int(meta["p_mclp"])
    res = solve_max_coverage(cov_req, elderly[req], n_sites=p, solver=solver, time_limit=mclp_limit)
    print(row(size, f"MCLP p={p}", res, t_build), flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="+", help="NxM, e.g. 10000x1000")
    ap.add_argument("--inst", type=Path, default=Path("/tmp/inst"))
    ap.add_argument("--solver", default="highs", choices=["highs", "cbc"])
    ap.add_argument("--mclp-limit", type=float, default=120.0)
    ap.add_argument("--lscp-limit", type=float, default=600.0)
    ap.add_argument("--no-mclp", action="store_true")
    a = ap.parse_args(argv)
    for size in a.sizes:
        bench(size, a.inst, a.solver, a.mclp_limit, a.lscp_limit, a.no_mclp)


if __name__ == "__main__":
    sys.exit(main())
