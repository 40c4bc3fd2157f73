"""Benchmark instances: the shared synthetic cities, their reach, and the full planning inputs.

Instances come from ``shared/bench/make_instance.py``, imported by path and run as is; the
GeoPackage it writes is cached under ``bench/instances/`` (git-ignored) with a ``.npz`` copy
of the arrays so the per-tool subprocesses load in milliseconds.

Reach for the covering benchmarks is sparse (``siting.reach.euclidean_matrix``, a KD-tree per
radius); the spopt side gets what a spopt user builds: a dense distance matrix (``cdist``),
turned into a 0/1 "distance" (0 = within the cell's own radius) because spopt takes one
``service_radius`` for all demand, so per-cell radii (ZJ-R500 / ZJ-R1000) are encoded in the
matrix and solved with ``service_radius=0.5``.

The full planning model (ZJ-R500/ZJ-R1000 + ZJ-BEDS + existing institutions + module sizes) is
built from an instance by :func:`planning_inputs`: planning units are contiguous rectangles of
the grid split by weighted median until each holds about 10,000 elderly (ZJ-UNIT), 1 % of the
candidates become existing institutions of 60–150 beds. :func:`street_grid` writes a synthetic
street lattice (jittered nodes, random missing edges) as an osmnx GraphML for network reach.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from scipy import sparse

REPO = Path(__file__).resolve().parents[1]
INSTANCE_DIR = REPO / "bench" / "instances"
DEFAULT_SEED = 20240601
UNIT_ELDERLY = 10_000  # ZJ-UNIT: a planning unit holds about 10,000 resident elderly
EXISTING_SHARE = 0.01
EXISTING_BEDS = (60, 150)
MODULE_SIZES = [60, 100, 150]


def make_instance_path() -> Path:
    """Where ``make_instance.py`` lives: ``$SITING_DATA/../bench``, else ``shared/bench`` up the tree."""
    tried = []
    env = os.environ.get("SITING_DATA")
    if env:
        tried.append(Path(env).resolve().parent / "bench" / "make_instance.py")
    for parent in [REPO, *REPO.parents]:
        tried.append(parent / "shared" / "bench" / "make_instance.py")
    for p in tried:
        if p.is_file():
            return p
    raise FileNotFoundError(f"make_instance.py not found; looked at {[str(p) for p in tried[:3]]}; "
                            "set SITING_DATA to the shared/data folder")


def make_instance_module() -> ModuleType:
    """Import the shared generator by path (never copied into the repo)."""
    path = make_instance_path()
    spec = importlib.util.spec_from_file_location("make_instance", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@dataclass(frozen=True)
class Instance:
    """Arrays of one synthetic city (metres, EPSG:4549)."""

    n: int
    m: int
    dem_xy: np.ndarray
    elderly: np.ndarray
    radius: np.ndarray  # 0 = no radius owed (ZJ-LOW)
    ix: np.ndarray
    iy: np.ndarray
    cand_xy: np.ndarray
    meta: dict[str, Any]

    @property
    def required(self) -> np.ndarray:
        """Rows owed a radius (ZJ-R500 / ZJ-R1000)."""
        return np.flatnonzero(self.radius > 0)

    @property
    def p(self) -> int:
        return int(self.meta["p_mclp"])


def instance_files(n: int, m: int, outdir: Path = INSTANCE_DIR) -> tuple[Path, Path]:
    return outdir / f"inst_{n}x{m}.gpkg", outdir / f"inst_{n}x{m}.npz"


def ensure_instance(n: int, m: int | None = None, *, seed: int = DEFAULT_SEED, outdir: Path = INSTANCE_DIR) -> Path:
    """Generate (once) the N × M instance with the shared generator; return the .npz path."""
    m = m or n // 10
    gpkg, npz = instance_files(n, m, outdir)
    if npz.exists() and gpkg.exists():
        return npz
    mod = make_instance_module()
    t = time.perf_counter()
    if not gpkg.exists():
        demand, cands, meta = mod.make(n, m, seed)
        mod.save(demand, cands, meta, gpkg)
        meta["gen_s"] = round(time.perf_counter() - t, 2)
        gpkg.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    _write_npz(mod, gpkg, npz)
    return npz


def _write_npz(mod: ModuleType, gpkg: Path, npz: Path) -> None:
    """Arrays from the GeoPackage (through the generator's own ``load``), plus grid indices."""
    import pyogrio

    dem_xy, elderly, radius, cand_xy, meta = mod.load(gpkg)
    d = pyogrio.read_dataframe(gpkg, layer="demand", columns=["ix", "iy"], read_geometry=False)
    tmp = npz.with_suffix(".tmp.npz")
    np.savez(tmp, dem_xy=dem_xy, elderly=elderly, radius=radius, cand_xy=cand_xy,
             ix=d["ix"].to_numpy(np.int32), iy=d["iy"].to_numpy(np.int32), meta=json.dumps(meta))
    tmp.replace(npz)


def load_instance(n: int, m: int | None = None, outdir: Path = INSTANCE_DIR) -> Instance:
    m = m or n // 10
    _, npz = instance_files(n, m, outdir)
    z = np.load(npz, allow_pickle=False)
    return Instance(n=n, m=m, dem_xy=z["dem_xy"], elderly=z["elderly"], radius=z["radius"], ix=z["ix"],
                    iy=z["iy"], cand_xy=z["cand_xy"], meta=json.loads(str(z["meta"])))


# ----------------------------------------------------------------------------- covering reach


def sparse_coverage(inst: Instance) -> sparse.csr_array:
    """Required rows × candidates, stored iff within the row's radius (siting.reach, KD-tree)."""
    from siting.reach import euclidean_matrix

    req = inst.required
    return euclidean_matrix(inst.dem_xy[req], inst.radius[req], inst.cand_xy)


def dense_cost01(inst: Instance) -> np.ndarray:
    """What a spopt user builds: dense cdist, then 0 where within the row's own radius, else 1."""
    from scipy.spatial.distance import cdist

    req = inst.required
    d = cdist(inst.dem_xy[req], inst.cand_xy)
    return (d > inst.radius[req][:, None]).astype(np.float64)


# ----------------------------------------------------------------------------- planning units


def _split(rows: np.ndarray, ix: np.ndarray, iy: np.ndarray, w: np.ndarray, cand_cell: np.ndarray,
           target: float, out: list[np.ndarray]) -> None:
    """Split a rectangle of cells at the weighted median of its longer side until ~``target`` elderly.

    A split is kept only when both halves hold at least 3 candidate sites, so every unit can
    meet ZJ-BEDS (≥ 300 beds per 10,000 elderly) with 150-bed modules.
    """
    stack = [rows]
    while stack:
        r = stack.pop()
        if w[r].sum() <= 1.5 * target:
            out.append(r)
            continue
        span_x, span_y = np.ptp(ix[r]), np.ptp(iy[r])
        key = ix[r] if span_x >= span_y else iy[r]
        order = np.argsort(key, kind="stable")
        cw = np.cumsum(w[r][order])
        cut_val = key[order][min(np.searchsorted(cw, cw[-1] / 2), len(r) - 1)]
        left = key <= cut_val
        if left.all() or not left.any():
            left = key < cut_val
        a, b = r[left], r[~left]
        if len(a) == 0 or len(b) == 0 or cand_cell[a].sum() < 3 or cand_cell[b].sum() < 3:
            out.append(r)
            continue
        stack += [b, a]


def unit_labels(inst: Instance) -> np.ndarray:
    """Unit index per cell: contiguous grid rectangles of about 10,000 elderly (ZJ-UNIT)."""
    nx, ny = inst.meta["grid"]
    cell = inst.meta["cell_m"]
    x0 = inst.dem_xy[:, 0].min() - cell / 2
    y0 = inst.dem_xy[:, 1].min() - cell / 2
    cx = np.clip(((inst.cand_xy[:, 0] - x0) // cell).astype(np.int64), 0, nx - 1)
    cy = np.clip(((inst.cand_xy[:, 1] - y0) // cell).astype(np.int64), 0, ny - 1)
    flat = inst.iy.astype(np.int64) * nx + inst.ix
    pos = np.full(nx * ny, -1, dtype=np.int64)
    pos[flat] = np.arange(len(flat))
    cand_cell = np.bincount(pos[cy * nx + cx], minlength=len(flat))
    parts: list[np.ndarray] = []
    _split(np.arange(len(flat)), inst.ix, inst.iy, inst.elderly, cand_cell, UNIT_ELDERLY, parts)
    parts.sort(key=lambda p: int(p.min()))
    label = np.empty(len(flat), dtype=np.int64)
    for k, p in enumerate(parts):
        label[p] = k
    return label


# ----------------------------------------------------------------------------- planning inputs


@dataclass(frozen=True)
class PlanningInputs:
    scenario: Any
    rules: Any
    demand: Any
    sites: Any
    seconds: float


def _demand_grid(inst: Instance, label: np.ndarray, crs: str) -> Any:
    import geopandas as gpd
    import pandas as pd
    import shapely

    from siting.demand import DemandGrid

    half = inst.meta["cell_m"] / 2
    x, y = inst.dem_xy[:, 0], inst.dem_xy[:, 1]
    radius = np.where(inst.radius > 0, inst.radius, np.nan)
    band = np.array(["low", "mid", "high"], dtype=object)[np.select([inst.radius == 500, inst.radius == 1000],
                                                                    [2, 1], 0)]
    rule = np.array(["ZJ-LOW", "ZJ-R1000", "ZJ-R500"], dtype=object)[np.select(
        [inst.radius == 500, inst.radius == 1000], [2, 1], 0)]
    uid = np.array([f"U{k:05d}" for k in range(label.max() + 1)], dtype=object)
    cells = gpd.GeoDataFrame({
        "cell_id": np.arange(inst.n, dtype=np.int64), "x": x, "y": y, "elderly": inst.elderly,
        "land_km2": np.full(inst.n, (2 * half / 1000) ** 2), "density_km2": inst.elderly / (2 * half / 1000) ** 2,
        "band": band, "radius_m": radius, "rule_id": rule, "unit_id": uid[label], "unit_name": uid[label],
        "subdistrict": "",
    }, geometry=shapely.box(x - half, y - half, x + half, y + half), crs=crs)
    w = np.bincount(label, weights=inst.elderly)
    grp = pd.DataFrame({"u": label, "x0": x - half, "x1": x + half, "y0": y - half, "y1": y + half}).groupby("u")
    ext = grp.agg(x0=("x0", "min"), x1=("x1", "max"), y0=("y0", "min"), y1=("y1", "max"))
    geoms = shapely.box(ext.x0.to_numpy(), ext.y0.to_numpy(), ext.x1.to_numpy(), ext.y1.to_numpy())
    units = gpd.GeoDataFrame({
        "unit_id": uid, "name": uid, "subdistrict": "", "area_km2": shapely.area(geoms) / 1e6, "elderly": w,
        "beds_required": np.ceil(300 * w / 10_000 - 1e-9).astype(np.int64), "rule_id": "ZJ-BEDS",
    }, geometry=geoms, crs=crs)
    area = gpd.GeoDataFrame({"name": ["synthetic"]}, geometry=[shapely.box(*cells.total_bounds)], crs=crs)
    return DemandGrid(cells=cells, units=units, study_area=area, census=pd.DataFrame(), crs=crs,
                      cell_size_m=2 * half, meta={"source": "bench synthetic", **inst.meta})


def _sites(inst: Instance, label: np.ndarray, demand: Any, crs: str, seed: int) -> Any:
    import geopandas as gpd
    import shapely

    from siting.sites import COLUMNS, Sites

    rng = np.random.default_rng([seed, inst.n, 7])
    m = inst.m
    is_exist = np.zeros(m, dtype=bool)
    is_exist[rng.choice(m, size=max(1, round(EXISTING_SHARE * m)), replace=False)] = True
    beds = np.where(is_exist, rng.integers(EXISTING_BEDS[0], EXISTING_BEDS[1] + 1, size=m), 0)
    # unit of each site: the unit of its nearest cell centre (inside the grid = containing cell)
    from scipy.spatial import cKDTree

    _, near = cKDTree(inst.dem_xy).query(inst.cand_xy, k=1)
    unit = demand.cells["unit_id"].to_numpy()[near]
    sid = np.array([f"{'E' if e else 'C'}{j:06d}" for j, e in enumerate(is_exist)], dtype=object)
    order = np.r_[np.flatnonzero(is_exist), np.flatnonzero(~is_exist)]
    x, y = inst.cand_xy[order, 0], inst.cand_xy[order, 1]
    table = gpd.GeoDataFrame({
        "site_id": sid[order], "kind": np.where(is_exist[order], "existing", "candidate"),
        "name": sid[order], "x": x, "y": y, "beds": beds[order].astype(np.int64),
        "beds_assumed": False, "unit_id": unit[order], "subdistrict": "", "cost_open": np.nan,
        "near_hospital": False, "landuse": "",
    }, geometry=shapely.points(x, y), crs=crs)
    return Sites(table=table[COLUMNS], crs=crs, meta={"source": "bench synthetic"})


def planning_inputs(inst: Instance, *, seed: int = DEFAULT_SEED, network_graph: Path | None = None) -> PlanningInputs:
    """Scenario (the default one, module sizes 60/100/150), rules, DemandGrid and Sites of an instance."""
    from siting import scenario as sc
    from siting.rules import load_rule_set

    t = time.perf_counter()
    s = sc.load(REPO / "scenarios" / "hangzhou_shangcheng.yaml")
    upd: dict[str, Any] = {"modules": s.modules.model_copy(update={"sizes": MODULE_SIZES})}
    if network_graph is not None:
        net = s.distance.network.model_copy(update={"graph": network_graph})
        upd["distance"] = s.distance.model_copy(update={"mode": "network", "network": net})
    else:
        upd["distance"] = s.distance.model_copy(update={"mode": "euclidean"})
    s = s.model_copy(update=upd)
    rules = load_rule_set(s.rules.set, s.rules.overrides)
    label = unit_labels(inst)
    demand = _demand_grid(inst, label, s.grid.crs)
    sites = _sites(inst, label, demand, s.grid.crs, seed)
    return PlanningInputs(s, rules, demand, sites, time.perf_counter() - t)


def site_xy(sites: Any) -> np.ndarray:
    return sites.table[["x", "y"]].to_numpy(np.float64)


# ----------------------------------------------------------------------------- street grid


def street_grid(inst: Instance, path: Path, *, spacing_m: float = 100.0, jitter_m: float = 20.0,
                missing: float = 0.1, seed: int = DEFAULT_SEED) -> Path:
    """A synthetic street lattice over the instance's extent, saved with ``osmnx.save_graphml``.

    Nodes every ``spacing_m`` jittered by up to ``jitter_m``; each lattice edge is dropped with
    probability ``missing``; lengths are straight-line metres; both directions (walk graph).
    """
    if path.exists():
        return path
    import networkx as nx
    import osmnx as ox

    xmin, ymin = inst.dem_xy.min(axis=0) - inst.meta["cell_m"] / 2
    xmax, ymax = inst.dem_xy.max(axis=0) + inst.meta["cell_m"] / 2
    nx_, ny_ = int((xmax - xmin) // spacing_m) + 1, int((ymax - ymin) // spacing_m) + 1
    rng = np.random.default_rng([seed, inst.n, 11])
    gx, gy = np.meshgrid(np.arange(nx_), np.arange(ny_), indexing="xy")
    nid = (gy * nx_ + gx).ravel()
    x = xmin + gx.ravel() * spacing_m + rng.uniform(-jitter_m, jitter_m, nid.size)
    y = ymin + gy.ravel() * spacing_m + rng.uniform(-jitter_m, jitter_m, nid.size)
    right = nid[(gx.ravel() < nx_ - 1)]
    up = nid[(gy.ravel() < ny_ - 1)]
    u = np.r_[right, up]
    v = np.r_[right + 1, up + nx_]
    keep = rng.random(u.size) >= missing
    u, v = u[keep], v[keep]
    length = np.hypot(x[u] - x[v], y[u] - y[v])
    g = nx.MultiDiGraph(crs=inst.meta["crs"])
    g.add_nodes_from((int(i), {"x": float(a), "y": float(b)}) for i, a, b in zip(nid, x, y, strict=True))
    g.add_edges_from((int(a), int(b), 0, {"length": float(d)}) for a, b, d in zip(u, v, length, strict=True))
    g.add_edges_from((int(b), int(a), 0, {"length": float(d)}) for a, b, d in zip(u, v, length, strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.graphml")
    ox.save_graphml(g, tmp)
    tmp.replace(path)
    return path
