"""Planning units (ZJ-UNIT): given polygons, or contiguous regions of about 10,000 elderly.

Each unit owes ``ceil(beds_per_10k × elderly / 10,000)`` institutional beds (ZJ-BEDS).
Auto units grow greedily on the rook adjacency of the grid cells inside the study area,
from deterministic seeds, each inside one subdistrict when ``within`` is given.
"""

from __future__ import annotations

import heapq
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ._errors import ScenarioError
from ._grid import Grid

BEDS_RULE = "ZJ-BEDS"


def assign_by_centre(x: np.ndarray, y: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """Index of the polygon containing each point; points outside every polygon: the nearest.

    Ties (a point on a shared edge, overlapping polygons) go to the lowest index.
    """
    pts = shapely.points(x, y)
    tree = shapely.STRtree(polygons)
    out = np.full(len(pts), -1, dtype=np.int64)
    ip, ig = tree.query(pts, predicate="intersects")
    if len(ip):
        order = np.lexsort((ig, ip))
        ip, ig = ip[order], ig[order]
        first = np.r_[True, ip[1:] != ip[:-1]]
        out[ip[first]] = ig[first]
    rest = np.flatnonzero(out < 0)
    if len(rest):
        jp, jg = tree.query_nearest(pts[rest], all_matches=True)
        order = np.lexsort((jg, jp))
        jp, jg = jp[order], jg[order]
        first = np.r_[True, jp[1:] != jp[:-1]]
        out[rest[jp[first]]] = jg[first]
    return out


def beds_required(elderly: np.ndarray, beds_per_10k: float) -> np.ndarray:
    """ZJ-BEDS: ceil(beds_per_10k × elderly / 10,000), with a tolerance for float round-off."""
    raw = np.asarray(elderly, dtype=float) * float(beds_per_10k) / 10_000.0
    return np.ceil(np.round(raw, 6)).astype(np.int64)


def rook_neighbours(rows: np.ndarray, cols: np.ndarray, n_cols: int) -> list[np.ndarray]:
    """For each cell (by position), the positions of its rook neighbours among the cells."""
    ids = rows.astype(np.int64) * n_cols + cols
    pos = pd.Series(np.arange(len(ids)), index=ids)
    out_src, out_dst = [], []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nid = (rows + dr).astype(np.int64) * n_cols + (cols + dc)
        valid = (cols + dc >= 0) & (cols + dc < n_cols)
        hit = pos.reindex(nid[valid]).to_numpy()
        src = np.flatnonzero(valid)
        ok = ~np.isnan(hit)
        out_src.append(src[ok])
        out_dst.append(hit[ok].astype(np.int64))
    src, dst = np.concatenate(out_src), np.concatenate(out_dst)
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    split = np.searchsorted(src, np.arange(len(ids) + 1))
    return [dst[split[i]:split[i + 1]] for i in range(len(ids))]


def _components(neigh: list[np.ndarray], members: np.ndarray) -> list[np.ndarray]:
    """Connected components (sorted positions) of the cells ``members`` under ``neigh``."""
    inside = set(members.tolist())
    seen: set[int] = set()
    comps = []
    for start in members.tolist():
        if start in seen:
            continue
        stack, comp = [start], []
        seen.add(start)
        while stack:
            c = stack.pop()
            comp.append(c)
            for n in neigh[c].tolist():
                if n in inside and n not in seen:
                    seen.add(n)
                    stack.append(n)
        comps.append(np.array(sorted(comp), dtype=np.int64))
    return comps


def _seeds(x: np.ndarray, y: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """k seed positions: farthest-point start, then a few weighted k-means steps (deterministic)."""
    pts = np.column_stack([x, y])
    cand = np.flatnonzero(w > 0) if (w > 0).any() else np.arange(len(w))
    centroid = np.average(pts[cand], axis=0, weights=w[cand] if w[cand].sum() > 0 else None)
    seeds = [cand[np.argmax(((pts[cand] - centroid) ** 2).sum(1))]]
    d = ((pts[cand] - pts[seeds[0]]) ** 2).sum(1)
    while len(seeds) < k:
        nxt = cand[int(np.argmax(d))]
        seeds.append(nxt)
        d = np.minimum(d, ((pts[cand] - pts[nxt]) ** 2).sum(1))
    centres = pts[seeds].astype(float)
    for _ in range(10):
        lab = np.argmin(((pts[cand, None, :] - centres[None]) ** 2).sum(2), axis=1)
        for j in range(k):
            m = lab == j
            if m.any() and w[cand][m].sum() > 0:
                centres[j] = np.average(pts[cand][m], axis=0, weights=w[cand][m])
    chosen: list[np.intp] = []
    for c in centres:
        dd = ((pts[cand] - c) ** 2).sum(1)
        dd[np.isin(cand, chosen)] = np.inf
        chosen.append(cand[int(np.argmin(dd))])
    return np.array(chosen, dtype=np.int64)


def grow_regions(comp: np.ndarray, neigh: list[np.ndarray], x: np.ndarray, y: np.ndarray,
                 w: np.ndarray, k: int) -> dict[int, int]:
    """Split one connected set of cells into k contiguous regions of similar weight.

    The region with the least weight so far takes its unassigned neighbour nearest to its
    seed; a region with no free neighbour stops. Returns position → region (0..k-1).
    """
    seeds = _seeds(x[comp], y[comp], w[comp], k)
    seeds = comp[seeds]
    label: dict[int, int] = {}
    inside = set(comp.tolist())
    frontier: list[list[tuple[float, int]]] = [[] for _ in range(k)]
    totals = np.zeros(k)
    for j, s in enumerate(sorted(seeds.tolist())):
        label[s] = j
        totals[j] = w[s]
    heap = [(totals[j], j) for j in range(k)]
    for s, j in list(label.items()):
        for n in neigh[s].tolist():
            if n in inside:
                heapq.heappush(frontier[j], (math.hypot(x[n] - x[s], y[n] - y[s]), n))
    seed_of = {j: s for s, j in label.items()}
    heapq.heapify(heap)
    while heap:
        _, j = heapq.heappop(heap)
        while frontier[j] and frontier[j][0][1] in label:
            heapq.heappop(frontier[j])
        if not frontier[j]:
            continue
        _, c = heapq.heappop(frontier[j])
        label[c] = j
        totals[j] += w[c]
        s = seed_of[j]
        for n in neigh[c].tolist():
            if n in inside and n not in label:
                heapq.heappush(frontier[j], (math.hypot(x[n] - x[s], y[n] - y[s]), n))
        heapq.heappush(heap, (totals[j], j))
    return label


def auto_regions(grid: Grid, rows: np.ndarray, cols: np.ndarray, elderly: np.ndarray,
                 group: np.ndarray, target: float) -> tuple[np.ndarray, list[str]]:
    """Region label per cell (int, -1 none) with unit ids, for cells grouped by subdistrict.

    Each (group, connected component) holding elderly gets max(1, round(E / target)) regions;
    components without elderly join the nearest region of their group (noted by the caller).
    """
    if target <= 0:
        raise ScenarioError(f"`planning_units.target_elderly` must be > 0, got {target!r}")
    neigh = rook_neighbours(rows, cols, grid.n_cols)
    x, y = grid.centres(rows, cols)
    label = np.full(len(rows), -1, dtype=np.int64)
    ids: list[str] = []
    for g in sorted(set(group.tolist())):
        members = np.flatnonzero(group == g)
        n_before = len(ids)
        for comp in _components(neigh, members):
            e = float(elderly[comp].sum())
            if e <= 0:
                continue
            k = min(len(comp), max(1, round(e / target)))
            lab = grow_regions(comp, neigh, x, y, elderly, k)
            base = len(ids)
            ids.extend(f"{g}-{base - n_before + j + 1:02d}" for j in range(k))
            for pos, j in lab.items():
                label[pos] = base + j
        _attach_leftovers(members, label, x, y)
    return label, ids


def _attach_leftovers(members: np.ndarray, label: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """Cells of a group left without a region (no elderly in their component) join the nearest."""
    done = members[label[members] >= 0]
    todo = members[label[members] < 0]
    if len(done) == 0 or len(todo) == 0:
        return
    tree = shapely.STRtree(shapely.points(x[done], y[done]))
    idx = tree.query_nearest(shapely.points(x[todo], y[todo]), return_distance=False, all_matches=False)
    label[todo[idx[0]]] = label[done[idx[1]]]


def units_frame(unit_ids: list[str], names: list[str], subdistricts: list[str], geoms: np.ndarray,
                elderly: np.ndarray, beds_per_10k: float, crs: str) -> gpd.GeoDataFrame:
    """The planning-unit table of :class:`~siting.demand.DemandGrid` (ZJ-BEDS per unit)."""
    gdf = gpd.GeoDataFrame(
        {"unit_id": unit_ids, "name": names, "subdistrict": subdistricts,
         "area_km2": shapely.area(geoms) / 1e6, "elderly": np.asarray(elderly, dtype=float),
         "beds_required": beds_required(elderly, beds_per_10k), "rule_id": BEDS_RULE},
        geometry=list(geoms), crs=crs,
    )
    return gdf.sort_values("unit_id", kind="stable").reset_index(drop=True)
