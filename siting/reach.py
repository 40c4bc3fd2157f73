"""Reach: which site serves which demand cell, straight-line or along the street network.

A cell owed a radius (ZJ-R500: 500 m, ZJ-R1000: 1000 m; NaN for ZJ-LOW) is reached by every
site within that radius. The relation is a sparse cells × sites CSR of distances in metres —
never an N × M array:

* euclidean: a KD-tree per distinct radius (``cKDTree.sparse_distance_matrix``);
* network: cells and sites snapped to the nearest street node (offset added as a straight
  line, capped at ``snap_limit_m``), then radius-bounded Dijkstra (scipy ``csgraph``) from the
  side with fewer distinct nodes. Distances are for an older person travelling
  **from the cell to the institution** (a directed drive graph is searched backwards from
  the sites, forwards from the cells).

Local subgraphs (why a city-scale search takes seconds, not minutes): scipy's Dijkstra
fills an n_sources × n_nodes array per call even with ``limit``, so searching the whole
800k-node graph costs ~20 s. Instead the source nodes are bucketed into square tiles of side
3 ``D`` (``TILE_REACHES``; ``D`` = the largest search distance, widened as below); each
tile's sources search only the subgraph of the nodes inside their bounding box grown by
their own ``D`` (at most 5 D × 5 D: ~2.5k nodes on a 100 m street grid at D = 1 km), so no
array is ever sources × whole graph. Tiles of one ``D`` cost twice as much at city scale
(the fixed cost per tile dominates); larger ones gain nothing.

This is exact: with ``ratio`` = min over edges of length ÷ straight line between the
projected end nodes, a path of network length L never
gets further than L / ratio from its start, so every path within the search limit lies in
the subgraph and Dijkstra there finds the same distances. ``D`` = limit / ratio, widened by
1e-9 relative + 1 µm for rounding. osmnx's geodesic lengths can be a little below projected
distances (ratio ~0.999); a graph with ratio < 0.5 (e.g. a 1 µm edge joining far-apart
nodes) falls back to the whole-graph search, and ``meta["dijkstra_search"]`` says so.

Results are cached as ``.npz`` keyed by the hashes of what determines them (cell coordinates
and radii, site coordinates, mode, graph sha256, snap limit), so a re-run with other costs
does not recompute them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from ._errors import DataError
from .network import Snap, StreetGraph, graph_sha256, load_graph, snap

log = logging.getLogger(__name__)

MIN_STORED_DISTANCE_M = 1e-3  # a site at the cell centre is stored as 1 mm, never as 0
CACHE_VERSION = "reach-v2"  # v2: snap notes point to tables/off_network.csv
MAX_RADIUS_GROUPS = 32  # more distinct radii are bucketed, queried at the bucket maximum
DIJKSTRA_BLOCK = 20_000_000  # float64 entries per Dijkstra chunk (sources × nodes), ~160 MB
DETOUR_MIN_STRAIGHT_M = 100.0  # detour ratios only for pairs at least this far apart
MIN_LENGTH_RATIO = 0.5  # below (edge length ÷ straight line) the local search would be too wide: whole graph
TILE_EPS_REL, TILE_EPS_M = 1e-9, 1e-6  # widening of the local disc for floating-point rounding
MAX_TILES_PER_SIDE = 2048  # tiles grow on a huge extent so the bucket index stays small
TILE_REACHES = 3.0  # tile side in search distances D: subgraph (3 + 2)² D², ~20 sources a tile at city density


@dataclass(frozen=True)
class Reach:
    """Sparse coverage relation between demand cells (rows) and sites (columns).

    dist: scipy.sparse CSR (n_cells × n_sites), float64 metres; an entry is stored iff the
        site lies within the cell's owed radius (in the run's distance mode); values are
        >= MIN_STORED_DISTANCE_M so the sparsity pattern is the coverage relation.
    mode: "euclidean" | "network" — the model never looks at it; reports do.
    cells_unsnapped / sites_unsnapped: row/column indices further than the snapping limit
        from the network (network mode), or on a disconnected island; reported, not dropped.
    meta: graph file, snap limit, speed, detour statistics, timings, cache key/hit.
    """

    dist: sparse.csr_array
    mode: Literal["euclidean", "network"]
    cells_unsnapped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sites_unsnapped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def covers(self) -> sparse.csr_array:
        """Boolean coverage matrix with the same pattern as ``dist``."""
        m = self.dist.copy()
        m.data = np.ones_like(m.data, dtype=bool)
        return m


# ---------------------------------------------------------------- inputs


def _cell_arrays(demand: Any) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (n, 2) and owed radii (NaN = none) from a DemandGrid."""
    cells = demand.cells
    missing = [c for c in ("x", "y", "radius_m") if c not in cells.columns]
    if missing:
        raise DataError(f"demand cells lack column(s) {missing}; build them with siting.demand.build")
    xy = cells[["x", "y"]].to_numpy(np.float64)
    radius = pd.to_numeric(cells["radius_m"], errors="coerce").to_numpy(np.float64)
    if not np.isfinite(xy).all():
        raise DataError("demand cells have missing x/y coordinates")
    radius = np.where(radius > 0, radius, np.nan)  # 0 or negative: no radius owed
    return xy, radius


def _site_arrays(sites: Any) -> np.ndarray:
    table = sites.table
    if len(table) == 0:
        raise DataError(
            "there are no sites (no existing institution and no candidate)",
            hints=("give `existing_facilities.layer`, or candidates (`candidates.mode: generate` "
                   "with land use, or `candidates.layer`)",),
        )
    xy = table[["x", "y"]].to_numpy(np.float64)
    if not np.isfinite(xy).all():
        raise DataError("sites have missing x/y coordinates")
    return xy


def _check_crs(demand: Any, sites: Any) -> None:
    from pyproj import CRS

    if CRS.from_user_input(demand.crs) != CRS.from_user_input(sites.crs):
        raise DataError(f"demand cells are in {demand.crs} but sites in {sites.crs}",
                        hints=("build both from the same scenario (grid.crs)",))


# ---------------------------------------------------------------- euclidean


def _radius_groups(radius: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Cells grouped by owed radius: (query radius, cell indices); NaN radii left out."""
    owed = np.flatnonzero(np.isfinite(radius))
    if owed.size == 0:
        return []
    values = np.unique(radius[owed])
    if values.size > MAX_RADIUS_GROUPS:  # many distinct radii (per-cell times): bucket them
        edges = np.quantile(radius[owed], np.linspace(0, 1, MAX_RADIUS_GROUPS + 1))
        bucket = np.searchsorted(edges[1:-1], radius[owed], side="right")  # 0 … groups-1
    else:
        bucket = np.searchsorted(values, radius[owed])
    groups = []
    for b in np.unique(bucket):
        idx = owed[bucket == b]
        groups.append((float(radius[idx].max()), idx))
    return groups


def euclidean_matrix(cell_xy: np.ndarray, radius: np.ndarray, site_xy: np.ndarray) -> sparse.csr_array:
    """Straight-line distances (m) of every site within each cell's radius, as CSR."""
    n, m = len(cell_xy), len(site_xy)
    site_tree = cKDTree(site_xy)
    rows, cols, vals = [], [], []
    for r_max, idx in _radius_groups(radius):
        pairs = cKDTree(cell_xy[idx]).sparse_distance_matrix(site_tree, r_max, output_type="ndarray")
        i = idx[pairs["i"]]
        keep = pairs["v"] <= radius[i]
        rows.append(i[keep])
        cols.append(pairs["j"][keep])
        vals.append(pairs["v"][keep])
    return _to_csr(rows, cols, vals, (n, m))


def _to_csr(rows: list, cols: list, vals: list, shape: tuple[int, int]) -> sparse.csr_array:
    if not rows:
        return sparse.csr_array(shape, dtype=np.float64)
    r = np.concatenate(rows).astype(np.int64)
    c = np.concatenate(cols).astype(np.int64)
    v = np.maximum(np.concatenate(vals).astype(np.float64), MIN_STORED_DISTANCE_M)
    out = sparse.csr_array((v, (r, c)), shape=shape)
    out.sum_duplicates()
    out.sort_indices()
    return out


# ---------------------------------------------------------------- network


def _group_by_node(node: np.ndarray, members: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR-like grouping: members at node u are order[ptr[u]:ptr[u+1]]."""
    order = members[np.argsort(node[members], kind="stable")]
    ptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(node[members], minlength=n_nodes), out=ptr[1:])
    return ptr, order


def _expand(keys: np.ndarray, ptr: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key node, its members: (position in ``keys``, member index) pairs."""
    counts = ptr[keys + 1] - ptr[keys]
    rep = np.repeat(np.arange(keys.size), counts)
    first = np.repeat(ptr[keys] - (np.cumsum(counts) - counts), counts)
    return rep, order[first + np.arange(rep.size)]


@dataclass(frozen=True)
class _Side:
    """One side of the search (cells or sites): snapped node, offset and usable members."""

    node: np.ndarray
    offset: np.ndarray
    members: np.ndarray


@dataclass(frozen=True)
class _Search:
    """A prepared network search: sources, their budgets, targets and how to turn paths into pairs.

    Dijkstra runs from ``src_nodes`` over ``adj`` (``graph.adj`` from cells, its transpose from
    sites, so a path is always cell → site); a source node may search ``node_budget`` metres
    less the smallest target offset.
    """

    src: _Side
    tgt: _Side
    from_sites: bool
    adj: sparse.csr_array
    radius: np.ndarray
    node_budget: np.ndarray
    src_nodes: np.ndarray
    tgt_nodes: np.ndarray
    src_group: tuple[np.ndarray, np.ndarray]
    tgt_group: tuple[np.ndarray, np.ndarray]
    min_tgt_off: float

    def limit(self, nodes: np.ndarray) -> float:
        """Dijkstra ``limit`` for a batch of source nodes (metres of path)."""
        return float(self.node_budget[nodes].max()) - self.min_tgt_off

    def pairs(self, nodes: np.ndarray, r: np.ndarray, t_node: np.ndarray,
              path: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cell, site, distance) of the member pairs behind node paths ``nodes[r]`` → ``t_node``."""
        src, tgt = self.src, self.tgt
        t_rep, t_mem = _expand(t_node, *self.tgt_group)
        near = path[t_rep] + tgt.offset[t_mem] <= self.node_budget[nodes[r[t_rep]]]  # necessary
        t_rep, t_mem = t_rep[near], t_mem[near]
        s_rep, s_mem = _expand(nodes[r[t_rep]], *self.src_group)
        d = path[t_rep][s_rep] + tgt.offset[t_mem][s_rep] + src.offset[s_mem]
        cell, site = (t_mem[s_rep], s_mem) if self.from_sites else (s_mem, t_mem[s_rep])
        keep = d <= self.radius[cell]
        return cell[keep], site[keep], d[keep]


def _prepare(graph: StreetGraph, cell_snap: Snap, radius: np.ndarray, site_snap: Snap) -> _Search | None:
    """Pick the search side (fewer distinct nodes) and each source node's budget; None if nothing to do."""
    cells = _Side(cell_snap.node, cell_snap.offset_m,
                  np.flatnonzero(cell_snap.snapped & np.isfinite(radius)))
    sites = _Side(site_snap.node, site_snap.offset_m, np.flatnonzero(site_snap.snapped))
    if cells.members.size == 0 or sites.members.size == 0:
        return None
    from_sites = np.unique(sites.node[sites.members]).size <= np.unique(cells.node[cells.members]).size
    src, tgt = (sites, cells) if from_sites else (cells, sites)
    adj = graph.adj.T.tocsr() if from_sites else graph.adj  # path cell → site either way
    budget = np.full(len(src.node), -np.inf)  # how far a source member may search
    budget[src.members] = (np.nanmax(radius[cells.members]) if from_sites
                           else radius[src.members]) - src.offset[src.members]
    node_budget = np.full(graph.n_nodes, -np.inf)
    np.maximum.at(node_budget, src.node[src.members], budget[src.members])
    src_nodes = np.unique(src.node[src.members])
    src_nodes = src_nodes[node_budget[src_nodes] >= 0]
    return _Search(
        src=src, tgt=tgt, from_sites=bool(from_sites), adj=adj, radius=radius, node_budget=node_budget,
        src_nodes=src_nodes, tgt_nodes=np.unique(tgt.node[tgt.members]),
        src_group=_group_by_node(src.node, src.members, graph.n_nodes),
        tgt_group=_group_by_node(tgt.node, tgt.members, graph.n_nodes),
        min_tgt_off=float(tgt.offset[tgt.members].min()),
    )


def _search_whole(search: _Search, n_nodes: int) -> tuple[list, list, list]:
    """Reference search: Dijkstra on the whole graph, ``DIJKSTRA_BLOCK // n_nodes`` sources a call."""
    chunk = max(1, DIJKSTRA_BLOCK // n_nodes)
    rows, cols, vals = [], [], []
    for start in range(0, search.src_nodes.size, chunk):
        nodes = search.src_nodes[start:start + chunk]
        limit = search.limit(nodes)
        if limit < 0:
            continue
        dist = csgraph.dijkstra(search.adj, directed=True, indices=nodes, limit=limit)[:, search.tgt_nodes]
        r, j = np.nonzero(np.isfinite(dist))
        path = dist[r, j]
        del dist
        cell, site, d = search.pairs(nodes, r, search.tgt_nodes[j], path)
        rows.append(cell)
        cols.append(site)
        vals.append(d)
    return rows, cols, vals


# ---------------------------------------------------------------- network, local subgraphs


def length_ratio(graph: StreetGraph) -> float:
    """Smallest edge ``length`` ÷ straight line between its projected end nodes (edges with straight > 0).

    A path of network length L then never strays further than L / ratio (straight line) from
    its start, which makes the local search exact. 1.0 when no edge has a measurable straight line.
    """
    adj = graph.adj
    u = np.repeat(np.arange(graph.n_nodes), np.diff(adj.indptr))
    straight = np.hypot(*(graph.xy[u] - graph.xy[adj.indices]).T)
    ok = straight > 0
    if not ok.any():
        return 1.0
    return float(np.min(adj.data[ok] / straight[ok]))


def _disc_radius(limit: float, ratio: float) -> float:
    """Straight-line reach of a path of at most ``limit`` metres, widened for rounding."""
    return limit / ratio * (1 + TILE_EPS_REL) + TILE_EPS_M


@dataclass(frozen=True)
class _Tiles:
    """Nodes bucketed into square tiles: the nodes of tile (x, y) are ``order[ptr[k]:ptr[k+1]]``, k = x·ny + y."""

    size: float
    origin: np.ndarray
    shape: tuple[int, int]
    key: np.ndarray
    order: np.ndarray
    ptr: np.ndarray

    @classmethod
    def build(cls, xy: np.ndarray, size: float) -> _Tiles:
        origin = xy.min(axis=0)
        size = max(size, float(np.ptp(xy, axis=0).max()) / MAX_TILES_PER_SIDE, 1e-3)
        cell = np.floor((xy - origin) / size).astype(np.int64)
        nx_, ny_ = (int(v) + 1 for v in cell.max(axis=0))
        key = cell[:, 0] * ny_ + cell[:, 1]
        order = np.argsort(key, kind="stable")
        ptr = np.zeros(nx_ * ny_ + 1, dtype=np.int64)
        np.cumsum(np.bincount(key, minlength=nx_ * ny_), out=ptr[1:])
        return cls(size, origin, (nx_, ny_), key, order, ptr)

    def nodes_near(self, xy: np.ndarray, members: np.ndarray, reach: float) -> np.ndarray:
        """Nodes within the bounding box of ``members`` widened by ``reach`` (a superset of their discs)."""
        lo = xy[members].min(axis=0) - reach
        hi = xy[members].max(axis=0) + reach
        (x0, y0), (x1, y1) = (np.clip(np.floor((b - self.origin) / self.size).astype(np.int64), 0,
                                      np.array(self.shape) - 1) for b in (lo, hi))
        ny_ = self.shape[1]
        near = np.concatenate([self.order[self.ptr[x * ny_ + y0]:self.ptr[x * ny_ + y1 + 1]]
                               for x in range(x0, x1 + 1)])
        p = xy[near]
        return near[((p >= lo) & (p <= hi)).all(axis=1)]


def _subgraph(adj: sparse.csr_array, sub: np.ndarray, pos: np.ndarray) -> sparse.csr_array:
    """Rows/columns ``sub`` of ``adj`` (``pos`` maps a node to its place in ``sub``, -1 elsewhere)."""
    counts = adj.indptr[sub + 1] - adj.indptr[sub]  # the out-edges of each node of sub: adj.data[at]
    row = np.repeat(np.arange(sub.size), counts)
    at = np.repeat(adj.indptr[sub] - (np.cumsum(counts) - counts), counts) + np.arange(row.size)
    col = pos[adj.indices[at]]
    keep = col >= 0
    indptr = np.zeros(sub.size + 1, dtype=np.int32)
    np.cumsum(np.bincount(row[keep], minlength=sub.size), out=indptr[1:])
    return sparse.csr_array((adj.data[at[keep]], col[keep].astype(np.int32), indptr), shape=(sub.size, sub.size))


def _tile_batches(search: _Search, tiles: _Tiles) -> list[np.ndarray]:
    """Source nodes grouped by tile, in tile order (deterministic)."""
    key = tiles.key[search.src_nodes]
    order = np.argsort(key, kind="stable")
    cut = np.flatnonzero(np.diff(key[order])) + 1
    return np.split(search.src_nodes[order], cut)


def _search_tiles(search: _Search, xy: np.ndarray, ratio: float) -> tuple[list, list, list, dict[str, Any]]:
    """Dijkstra per tile of sources on the subgraph of nodes within their reach (exact; see module doc)."""
    if search.src_nodes.size == 0:
        return [], [], [], {"tile_m": None, "tiles": 0, "subgraph_nodes_max": 0}
    reach_max = _disc_radius(search.limit(search.src_nodes), ratio)
    tiles = _Tiles.build(xy, TILE_REACHES * reach_max)
    pos = np.full(len(xy), -1, dtype=np.int64)
    is_tgt = np.zeros(len(xy), dtype=bool)
    is_tgt[search.tgt_nodes] = True
    rows, cols, vals = [], [], []
    n_tiles, sub_max = 0, 0
    for batch in _tile_batches(search, tiles):
        limit = search.limit(batch)
        if limit < 0:
            continue
        sub = tiles.nodes_near(xy, batch, _disc_radius(limit, ratio))
        pos[sub] = np.arange(sub.size)
        m = _subgraph(search.adj, sub, pos)
        local_tgt = np.flatnonzero(is_tgt[sub])
        chunk = max(1, DIJKSTRA_BLOCK // sub.size)
        for start in range(0, batch.size, chunk):
            nodes = batch[start:start + chunk]
            dist = csgraph.dijkstra(m, directed=True, indices=pos[nodes], limit=search.limit(nodes))
            dist = dist[:, local_tgt]
            r, j = np.nonzero(np.isfinite(dist))
            cell, site, d = search.pairs(nodes, r, sub[local_tgt[j]], dist[r, j])
            rows.append(cell)
            cols.append(site)
            vals.append(d)
        pos[sub] = -1
        n_tiles, sub_max = n_tiles + 1, max(sub_max, int(sub.size))
    info = {"tile_m": round(tiles.size, 3), "tiles": n_tiles, "subgraph_nodes_max": sub_max}
    return rows, cols, vals, info


def network_matrix(
    graph: StreetGraph, cell_snap: Snap, radius: np.ndarray, site_snap: Snap, *, n_sites: int,
    whole_graph: bool = False,
) -> tuple[sparse.csr_array, dict[str, Any]]:
    """Network distances cell → site within each cell's radius, as CSR (n_cells × n_sites).

    Dijkstra runs from the side with fewer distinct snapped nodes, bounded by the largest
    radius less the snap offsets; a distance is offset(cell) + path + offset(site). Sources
    are searched per tile on the local subgraph of the nodes they can reach (same result as
    the whole graph); a graph with an edge much shorter than its straight line (length ratio
    < ``MIN_LENGTH_RATIO``) is searched whole, as is every graph with ``whole_graph`` (the
    reference the tests compare the tiles with).
    """
    shape = (len(radius), n_sites)
    info: dict[str, Any] = {"dijkstra_sources": 0, "dijkstra_from": None}
    search = _prepare(graph, cell_snap, radius, site_snap)
    if search is None:
        return sparse.csr_array(shape, dtype=np.float64), info
    ratio = None if whole_graph else length_ratio(graph)
    if ratio is not None and np.isfinite(ratio) and ratio >= MIN_LENGTH_RATIO:
        rows, cols, vals, tile_info = _search_tiles(search, graph.xy, ratio)
        info.update(edge_length_ratio_min=ratio, dijkstra_search="tiles", **tile_info)
    else:
        rows, cols, vals = _search_whole(search, graph.n_nodes)
        info["dijkstra_search"] = "whole graph"
        if ratio is not None:
            log.warning("%s: an edge is %.3g × its straight line (< %g): searching the whole graph (slower)",
                        graph.path, ratio, MIN_LENGTH_RATIO)
            info.update(edge_length_ratio_min=ratio, dijkstra_search=(
                f"whole graph: edge length ratio {ratio:.3g} < {MIN_LENGTH_RATIO:g} makes local subgraphs inexact"))
    info.update(dijkstra_sources=int(search.src_nodes.size),
                dijkstra_from="sites" if search.from_sites else "cells")
    return _to_csr(rows, cols, vals, shape), info


def _detour_median(dist: sparse.csr_array, cell_xy: np.ndarray, site_xy: np.ndarray) -> tuple[float, int]:
    """Median network ÷ straight-line distance over stored pairs at least 100 m apart."""
    coo = dist.tocoo()
    straight = np.hypot(*(cell_xy[coo.row] - site_xy[coo.col]).T)
    ok = straight >= DETOUR_MIN_STRAIGHT_M
    if not ok.any():
        return float("nan"), 0
    return float(np.median(coo.data[ok] / straight[ok])), int(ok.sum())


def _snap_notes(cell_snap: Snap, site_snap: Snap, cells_island: np.ndarray, sites_island: np.ndarray,
                spec: Any) -> list[str]:
    """Sentences for the report about cells/sites the network could not serve.

    The report lists them (``Reach.cells_unsnapped`` / ``sites_unsnapped``) in its table
    ``tables/off_network.csv``, which the sentences point to.
    """
    notes = []
    for what, s, island in (("cell", cell_snap, cells_island), ("site", site_snap, sites_island)):
        far = int((~s.snapped).sum())
        if far:
            notes.append(f"{far} {what}(s) lie more than {spec.snap_limit_m:g} m from the {spec.kind} "
                         "network: no network reach for them (listed in tables/off_network.csv)")
        if island.size:
            notes.append(f"{island.size} {what}(s) snap to a street island cut off from the main "
                         f"{spec.kind} network (listed in tables/off_network.csv)")
    return notes


def _network_reach(scenario: Any, cell_xy: np.ndarray, radius: np.ndarray,
                   site_xy: np.ndarray, graph: StreetGraph) -> Reach:
    spec = scenario.distance.network
    t0 = time.perf_counter()
    cell_snap = snap(graph, cell_xy, limit_m=spec.snap_limit_m)
    site_snap = snap(graph, site_xy, limit_m=spec.snap_limit_m)
    if not cell_snap.snapped.any() and not site_snap.snapped.any():
        raise DataError(
            f"{graph.path}: no cell and no site lies within {spec.snap_limit_m:g} m of the street "
            "network (scenario field `distance.network.graph`)",
            hints=("the graph covers another place, or its CRS is wrong; check the file",),
        )
    cells_island = np.flatnonzero(cell_snap.snapped & ~graph.on_main(cell_snap.node))
    sites_island = np.flatnonzero(site_snap.snapped & ~graph.on_main(site_snap.node))
    t1 = time.perf_counter()
    dist, info = network_matrix(graph, cell_snap, radius, site_snap, n_sites=len(site_xy))
    t2 = time.perf_counter()
    detour, n_pairs = _detour_median(dist, cell_xy, site_xy)
    notes = _snap_notes(cell_snap, site_snap, cells_island, sites_island, spec)
    for note in notes:
        log.warning(note)
    meta = {
        "notes": notes,
        "graph": str(graph.path), "graph_sha256": graph.sha256, "graph_crs": graph.graph_crs,
        "network_kind": spec.kind, "direction": "cell to site (older person travels to the institution)",
        "snap_limit_m": spec.snap_limit_m, "speed_kmh": spec.speed_kmh,
        "n_cells_beyond_snap_limit": int((~cell_snap.snapped).sum()),
        "n_sites_beyond_snap_limit": int((~site_snap.snapped).sum()),
        "cells_on_island": cells_island.tolist(), "sites_on_island": sites_island.tolist(),
        "snap_offset_median_m": float(np.median(cell_snap.offset_m)) if len(cell_xy) else float("nan"),
        "detour_ratio_median": detour, "detour_pairs": n_pairs,
        "seconds_snap": t1 - t0, "seconds_dijkstra": t2 - t1, **info,
    }
    return Reach(
        dist=dist, mode="network",
        cells_unsnapped=np.union1d(cell_snap.unsnapped(), cells_island).astype(np.int64),
        sites_unsnapped=np.union1d(site_snap.unsnapped(), sites_island).astype(np.int64),
        meta=meta,
    )


# ---------------------------------------------------------------- cache


def cache_key(cell_xy: np.ndarray, radius: np.ndarray, site_xy: np.ndarray, *, mode: str,
              graph_sha256: str = "", snap_limit_m: float = 0.0) -> str:
    """sha256 of everything that determines a reach matrix (not costs, not speeds)."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    for arr in (cell_xy, radius, site_xy):
        a = np.ascontiguousarray(arr, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(f"|{mode}|{graph_sha256}|{float(snap_limit_m)!r}".encode())
    return h.hexdigest()


def _cache_load(path: Path) -> Reach | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            dist = sparse.csr_array((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
            meta = json.loads(str(z["meta"]))
            mode = str(z["mode"])
            if mode not in ("euclidean", "network"):
                raise ValueError(f"unknown mode {mode!r}")
            return Reach(dist=dist, mode=cast(Literal["euclidean", "network"], mode),
                         cells_unsnapped=z["cells_unsnapped"], sites_unsnapped=z["sites_unsnapped"], meta=meta)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s: unreadable reach cache (%s); recomputing", path, exc)
        return None


def _cache_save(path: Path, reach: Reach) -> None:
    """Write the cache through a temporary file and os.replace (never half-written).

    A cache that cannot be written is a warning, not an error: the reach itself is fine.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, data=reach.dist.data, indices=reach.dist.indices, indptr=reach.dist.indptr,
                     shape=np.array(reach.dist.shape), mode=np.array(reach.mode),
                     cells_unsnapped=reach.cells_unsnapped, sites_unsnapped=reach.sites_unsnapped,
                     meta=np.array(json.dumps(reach.meta, default=str)))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("%s: cannot write the reach cache (%s); continuing without it", path, exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# ---------------------------------------------------------------- public


def _no_reach_error(mode: str, radius: np.ndarray) -> DataError:
    radii = ", ".join(f"{r:g} m" for r in np.unique(radius[np.isfinite(radius)]))
    return DataError(
        f"no site lies within the owed radius ({radii}) of any demand cell ({mode} distance)",
        hints=("add candidates near the elderly (candidates.generate.spacing_m, landuse_values), "
               "or check that sites and cells are in the same place and CRS",),
    )


def build(scenario: Any, demand: Any, sites: Any, *, cache_dir: Any = None) -> Reach:
    """Reach of a scenario's sites over its demand cells (cached by input hashes).

    ``scenario.distance.mode`` picks straight-line or network distance; the result's ``meta``
    records mode, graph file and sha256, snap limit, walking speed, detour ratio and timings.
    ``cache_dir`` holds the reach ``.npz`` files (default ``./.cache/siting/reach``); the
    parsed street graph is cached beside it, in ``cache_dir/../graphs``.
    """
    t0 = time.perf_counter()
    _check_crs(demand, sites)
    cell_xy, radius = _cell_arrays(demand)
    site_xy = _site_arrays(sites)
    mode = scenario.distance.mode
    key_extra: dict[str, Any] = {}
    if mode == "network":
        spec = scenario.distance.network
        key_extra = {"graph_sha256": graph_sha256(spec.graph), "snap_limit_m": spec.snap_limit_m}
    key = cache_key(cell_xy, radius, site_xy, mode=mode, **key_extra)
    cache_path = Path(cache_dir if cache_dir is not None else Path.cwd() / ".cache" / "siting" / "reach")
    cache_path = cache_path / f"{key}.npz"
    cached = _cache_load(cache_path)
    if cached is not None:
        meta = {**cached.meta, "cache_hit": True, "cache_file": str(cache_path),
                "seconds_total": time.perf_counter() - t0}
        return Reach(cached.dist, cached.mode, cached.cells_unsnapped, cached.sites_unsnapped, meta)
    if mode == "network":
        t1 = time.perf_counter()
        graph_cache = Path(cache_dir).parent / "graphs" if cache_dir is not None else None
        graph = load_graph(spec.graph, crs=demand.crs, sha256=key_extra["graph_sha256"], cache_dir=graph_cache)
        t_load = time.perf_counter() - t1
        reach = _network_reach(scenario, cell_xy, radius, site_xy, graph)
        reach.meta["seconds_load_graph"] = t_load
    else:
        t1 = time.perf_counter()
        reach = Reach(dist=euclidean_matrix(cell_xy, radius, site_xy), mode="euclidean",
                      meta={"seconds_euclidean": time.perf_counter() - t1})
    if reach.dist.nnz == 0 and np.isfinite(radius).any():
        raise _no_reach_error(mode, radius)
    meta = {"mode": mode, **reach.meta, "n_cells": len(cell_xy), "n_sites": len(site_xy),
            "nnz": int(reach.dist.nnz), "cache_key": key, "cache_hit": False,
            "cache_file": str(cache_path), "seconds_total": time.perf_counter() - t0}
    reach = Reach(reach.dist, reach.mode, reach.cells_unsnapped, reach.sites_unsnapped, meta)
    _cache_save(cache_path, reach)
    return reach


def reach_summary(demand: Any, sites: Any, reach: Reach) -> pd.DataFrame:
    """Per density band: elderly, share reached by an existing / a candidate site, uncoverable.

    Shares are of the band's elderly within its owed radius (ZJ-R500 / ZJ-R1000); a band
    without a radius (ZJ-LOW) gets NaN shares.
    """
    cells = demand.cells
    kind = sites.table["kind"].to_numpy()
    cov = reach.covers.astype(np.int8)
    has_existing = (cov @ (kind == "existing").astype(np.int8)) > 0
    has_candidate = (cov @ (kind == "candidate").astype(np.int8)) > 0
    owed = np.isfinite(pd.to_numeric(cells["radius_m"], errors="coerce").to_numpy(np.float64))
    elderly = cells["elderly"].to_numpy(np.float64) if "elderly" in cells else np.ones(len(cells))
    frame = pd.DataFrame({
        "band": cells["band"].astype(str).to_numpy() if "band" in cells else "all",
        "rule_id": cells["rule_id"].astype(str).to_numpy() if "rule_id" in cells else "",
        "elderly": elderly, "owed": owed,
        "e_existing": elderly * has_existing, "e_candidate": elderly * has_candidate,
        "e_uncoverable": elderly * (owed & ~(has_existing | has_candidate)),
    })
    g = frame.groupby(["band", "rule_id"], sort=True)
    out = g[["elderly", "e_existing", "e_candidate", "e_uncoverable"]].sum()
    out["n_cells"] = g.size()
    out["radius_owed"] = g["owed"].any()
    out = out.reset_index()
    out["share_existing"] = np.where(out["radius_owed"], out["e_existing"] / out["elderly"], np.nan)
    out["share_candidate"] = np.where(out["radius_owed"], out["e_candidate"] / out["elderly"], np.nan)
    out = out.rename(columns={"e_uncoverable": "uncoverable_elderly"})
    return out[["band", "rule_id", "n_cells", "elderly", "share_existing", "share_candidate",
                "uncoverable_elderly"]]


def uncoverable_cells(demand: Any, reach: Reach) -> pd.DataFrame:
    """Cells owed a radius with no site at all within it, with a hint where to add candidates."""
    cells = demand.cells
    radius = pd.to_numeric(cells["radius_m"], errors="coerce").to_numpy(np.float64)
    n_sites = np.diff(reach.dist.indptr)
    bad = np.flatnonzero(np.isfinite(radius) & (radius > 0) & (n_sites == 0))
    cols = [c for c in ("cell_id", "x", "y", "band", "rule_id", "radius_m", "elderly", "unit_id")
            if c in cells.columns]
    out = pd.DataFrame(cells.iloc[bad][cols]).reset_index(drop=True)
    out["hint"] = [f"add candidates near ({x:.0f}, {y:.0f})" for x, y in zip(out["x"], out["y"], strict=True)]
    return out
