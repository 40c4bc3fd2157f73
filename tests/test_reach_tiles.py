"""Network reach on local subgraphs (tiles) equals the whole-graph search exactly (issue 8).

The reference is ``reach.network_matrix(..., whole_graph=True)`` (Dijkstra on the whole graph, the former
implementation); the tiled ``reach.network_matrix`` must give the same sparsity pattern and
the same distances on random small graphs (some edges shorter than their straight line, to
exercise the widening of the local disc), the Hangzhou walk and drive graphs, and a
medium synthetic street grid.
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from siting import reach as reach_mod
from siting import scenario as scenario_mod
from siting._layers import read_layer
from siting.network import StreetGraph, load_graph, snap

CRS = "EPSG:4549"
BENCH = Path(__file__).resolve().parents[1] / "bench"


# ---------------------------------------------------------------- helpers


def _street_graph(xy: np.ndarray, u: np.ndarray, v: np.ndarray, length: np.ndarray, *,
                  directed: bool) -> StreetGraph:
    """A StreetGraph straight from arrays (shortest of parallel edges, both ways if undirected)."""
    if not directed:
        u, v, length = np.r_[u, v], np.r_[v, u], np.r_[length, length]
    n = len(xy)
    adj = sparse.coo_array((length, (u, v)), shape=(n, n)).tocsr()  # parallel edges summed: avoid them
    adj.indices = adj.indices.astype(np.int32)
    adj.indptr = adj.indptr.astype(np.int32)
    from scipy.sparse import csgraph

    _, comp = csgraph.connected_components(adj, directed=True, connection="weak")
    return StreetGraph(path=Path("test.graphml"), sha256="0" * 64, node_ids=np.arange(n).astype(str).astype(object),
                       xy=np.asarray(xy, float), adj=adj, directed=directed, graph_crs=CRS, crs=CRS,
                       component=comp, main=int(np.bincount(comp).argmax()))


def _both(graph: StreetGraph, cell_xy: np.ndarray, radius: np.ndarray, site_xy: np.ndarray,
          snap_limit_m: float = 300.0) -> tuple[sparse.csr_array, dict, dict]:
    """Tiled and whole-graph reach; asserts they are identical; returns the tiled one and both infos."""
    cs = snap(graph, cell_xy, limit_m=snap_limit_m)
    ss = snap(graph, site_xy, limit_m=snap_limit_m)
    got, info = reach_mod.network_matrix(graph, cs, radius, ss, n_sites=len(site_xy))
    want, ref = reach_mod.network_matrix(graph, cs, radius, ss, n_sites=len(site_xy), whole_graph=True)
    assert got.shape == want.shape
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.data, want.data, rtol=0, atol=1e-9)
    assert info["dijkstra_from"] == ref["dijkstra_from"] and info["dijkstra_sources"] == ref["dijkstra_sources"]
    return got, info, ref


def _lattice_edges(nx_: int, ny_: int) -> tuple[np.ndarray, np.ndarray]:
    """Right and up neighbours plus one diagonal per square of an nx × ny lattice (row-major ids)."""
    ids = np.arange(nx_ * ny_).reshape(ny_, nx_)
    right = (ids[:, :-1].ravel(), ids[:, 1:].ravel())
    up = (ids[:-1, :].ravel(), ids[1:, :].ravel())
    diag = (ids[:-1, :-1].ravel(), ids[1:, 1:].ravel())
    return np.r_[right[0], up[0], diag[0]], np.r_[right[1], up[1], diag[1]]


# ---------------------------------------------------------------- random small graphs


@st.composite
def street_cases(draw):
    nx_, ny_ = draw(st.integers(2, 14)), draw(st.integers(2, 14))
    spacing = draw(st.sampled_from([60.0, 120.0, 250.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    directed = draw(st.booleans())
    short_share = draw(st.sampled_from([0.0, 0.1, 0.5]))  # edges shorter than their straight line
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(nx_) * spacing, np.arange(ny_) * spacing)
    xy = np.c_[gx.ravel(), gy.ravel()] + rng.uniform(-0.3, 0.3, (nx_ * ny_, 2)) * spacing
    u, v = _lattice_edges(nx_, ny_)
    keep = rng.random(u.size) < 0.8
    u, v = u[keep], v[keep]
    if directed:  # each street one-way (either way) or two-way
        way = rng.integers(0, 3, u.size)
        u, v = np.r_[u[way != 1], v[way != 0]], np.r_[v[way != 1], u[way != 0]]
    straight = np.hypot(*(xy[u] - xy[v]).T)
    factor = np.where(rng.random(u.size) < short_share, rng.uniform(0.55, 1.0, u.size),
                      rng.uniform(1.0, 1.6, u.size))
    length = np.maximum(straight * factor, 1e-6)
    n_cells, n_sites = draw(st.integers(1, 80)), draw(st.integers(1, 40))
    extent = np.array([nx_, ny_]) * spacing
    cell_xy = rng.uniform(-100, extent + 100, (n_cells, 2))
    site_xy = rng.uniform(-100, extent + 100, (n_sites, 2))
    radius = rng.choice([150.0, 250.0, 500.0, 1000.0, np.nan], n_cells)
    return _street_graph(xy, u, v, length, directed=directed), cell_xy, radius, site_xy


@settings(max_examples=200, deadline=None)
@given(case=street_cases(), tile_reaches=st.sampled_from([0.2, 1.0, reach_mod.TILE_REACHES]))
def test_tiles_equal_whole_graph_on_random_graphs(case, tile_reaches):
    """Small tiles too (0.2 search distances), so that paths near a subgraph's edge are exercised."""
    graph, cell_xy, radius, site_xy = case
    with mock.patch.object(reach_mod, "TILE_REACHES", tile_reaches):
        got, info, _ = _both(graph, cell_xy, radius, site_xy)
    if info["dijkstra_sources"]:
        assert info["dijkstra_search"] == "tiles"
        assert info["edge_length_ratio_min"] >= 0.55 * (1 - 1e-12)
    assert (got.data >= reach_mod.MIN_STORED_DISTANCE_M).all()


def test_widening_keeps_paths_that_leave_the_plain_disc():
    """Edges at 0.6 × their straight line: a 900 m path reaches a cell 1.5 km away (straight)."""
    xy = np.c_[np.arange(0.0, 3001.0, 250.0), np.zeros(13)]
    u = np.arange(12)
    graph = _street_graph(xy, u, u + 1, np.full(12, 150.0), directed=False)
    assert reach_mod.length_ratio(graph) == pytest.approx(0.6)
    cell_xy = np.array([[1500.0, 0.0], [3000.0, 0.0]])  # 6 and 12 edges from the site: 900 m, 1800 m
    got, info, _ = _both(graph, cell_xy, np.array([1000.0, 1000.0]), np.array([[0.0, 0.0]]))
    assert info["dijkstra_search"] == "tiles"
    assert got.toarray()[:, 0].tolist() == [pytest.approx(900.0), 0.0]


def test_widening_is_needed(monkeypatch):
    """Without the 1 / ratio widening the same case loses the 900 m pair (the test above can fail)."""
    xy = np.c_[np.arange(0.0, 3001.0, 250.0), np.zeros(13)]
    u = np.arange(12)
    graph = _street_graph(xy, u, u + 1, np.full(12, 150.0), directed=False)
    monkeypatch.setattr(reach_mod, "length_ratio", lambda g: 1.0)
    cs = snap(graph, np.array([[1500.0, 0.0]]), limit_m=300)
    ss = snap(graph, np.array([[0.0, 0.0]]), limit_m=300)
    got, _ = reach_mod.network_matrix(graph, cs, np.array([1000.0]), ss, n_sites=1)
    assert got.nnz == 0


def test_tiny_edge_between_far_nodes_falls_back_to_whole_graph(caplog):
    """A 1 µm edge joining nodes 5 km apart: the local search would be wrong, so the whole graph is searched."""
    xy = np.array([[0.0, 0.0], [200.0, 0.0], [5000.0, 0.0], [5200.0, 0.0]])
    graph = _street_graph(xy, np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([200.0, 1e-6, 200.0]),
                          directed=False)
    got, info, _ = _both(graph, np.array([[0.0, 0.0]]), np.array([500.0]), np.array([[5200.0, 0.0]]))
    assert info["dijkstra_search"].startswith("whole graph: edge length ratio")
    assert got.toarray()[0, 0] == pytest.approx(400.0)
    assert "searching the whole graph" in caplog.text


def test_nothing_to_search_returns_empty():
    xy = np.array([[0.0, 0.0], [100.0, 0.0]])
    graph = _street_graph(xy, np.array([0]), np.array([1]), np.array([100.0]), directed=False)
    got, info, _ = _both(graph, np.array([[0.0, 0.0]]), np.array([np.nan]), np.array([[100.0, 0.0]]))
    assert got.nnz == 0 and got.shape == (1, 1) and info["dijkstra_sources"] == 0


def test_never_searches_the_whole_graph_at_once(monkeypatch):
    """Memory: every Dijkstra call gets a subgraph far smaller than the graph (never sources × all nodes)."""
    rng = np.random.default_rng(5)
    nx_ = ny_ = 120  # 120 × 120 nodes 100 m apart: a 12 km square
    gx, gy = np.meshgrid(np.arange(nx_) * 100.0, np.arange(ny_) * 100.0)
    xy = np.c_[gx.ravel(), gy.ravel()] + rng.uniform(-20, 20, (nx_ * ny_, 2))
    u, v = _lattice_edges(nx_, ny_)
    graph = _street_graph(xy, u, v, np.hypot(*(xy[u] - xy[v]).T), directed=False)
    calls = []
    real = reach_mod.csgraph.dijkstra

    def spy(m, *a, **k):
        out = real(m, *a, **k)
        calls.append((m.shape[0], out.size))
        return out

    monkeypatch.setattr(reach_mod.csgraph, "dijkstra", spy)
    cell_xy = rng.uniform(0, 12_000, (8000, 2))
    radius = rng.choice([500.0, 1000.0], 8000)
    site_xy = rng.uniform(0, 12_000, (400, 2))
    cs, ss = snap(graph, cell_xy, limit_m=300), snap(graph, site_xy, limit_m=300)
    got, info = reach_mod.network_matrix(graph, cs, radius, ss, n_sites=400)
    assert got.nnz > 1000 and info["dijkstra_search"] == "tiles"
    assert calls and max(n for n, _ in calls) <= graph.n_nodes / 4
    assert max(n for n, _ in calls) == info["subgraph_nodes_max"]
    assert sum(size for _, size in calls) < info["dijkstra_sources"] * graph.n_nodes / 4


# ---------------------------------------------------------------- the Hangzhou graphs


@pytest.fixture(scope="module")
def shangcheng_points(default_scenario_path):
    """The default scenario's area: 100 m lattice of cells (radii 500/1000 m), 400 m lattice of sites."""
    sc = scenario_mod.load(default_scenario_path)
    units = read_layer(sc.planning_units.layer, field="planning_units.layer", crs=CRS)
    area = shapely.union_all(units.geometry.to_numpy())
    x0, y0, x1, y1 = area.bounds
    gx, gy = np.meshgrid(np.arange(x0 + 50, x1, 100.0), np.arange(y0 + 50, y1, 100.0))
    inside = shapely.contains_xy(area, gx.ravel(), gy.ravel())
    cell_xy = np.c_[gx.ravel()[inside], gy.ravel()[inside]]
    radius = np.where((np.arange(len(cell_xy)) % 3) == 0, 1000.0, 500.0)
    sx, sy = np.meshgrid(np.arange(x0 + 100, x1, 400.0), np.arange(y0 + 100, y1, 400.0))
    keep = shapely.contains_xy(area, sx.ravel(), sy.ravel())
    return sc, cell_xy, radius, np.c_[sx.ravel()[keep], sy.ravel()[keep]]


@pytest.mark.parametrize("kind", ["walk", "drive"])
def test_hangzhou_tiles_equal_whole_graph(shangcheng_points, hangzhou, tmp_path, kind):
    """Real OSM graphs (walk: two-way; drive: one-way streets), searched from sites and from cells."""
    sc, cell_xy, radius, site_xy = shangcheng_points
    graph = load_graph(hangzhou / f"street_network_{kind}.graphml", crs=CRS, cache_dir=tmp_path / "graphs")
    ratio = reach_mod.length_ratio(graph)
    assert 0.99 < ratio <= 1.0  # geodesic lengths a little below projected straight lines
    got, info, _ = _both(graph, cell_xy, radius, site_xy, sc.distance.network.snap_limit_m)
    assert info["dijkstra_from"] == "sites" and info["dijkstra_search"] == "tiles" and got.nnz > 1000
    assert info["tiles"] > 4 and info["subgraph_nodes_max"] < graph.n_nodes / 2
    few = slice(0, None, 40)  # fewer distinct cell nodes than site nodes: search from the cells
    _, info, _ = _both(graph, cell_xy[few], radius[few], site_xy, sc.distance.network.snap_limit_m)
    assert info["dijkstra_from"] == "cells" and info["dijkstra_search"] == "tiles"


# ---------------------------------------------------------------- a medium synthetic grid


def test_synthetic_10k_street_grid(tmp_path):
    """bench/_instances.py: the 10k-cell instance on its jittered 100 m street lattice (~10k nodes)."""
    sys.path.insert(0, str(BENCH))
    import _instances  # type: ignore[import-not-found]

    try:
        _instances.make_instance_path()
    except FileNotFoundError as exc:
        pytest.skip(f"shared benchmark generator not available: {exc}")
    _instances.ensure_instance(10_000, 1_000)
    inst = _instances.load_instance(10_000, 1_000)
    path = _instances.street_grid(inst, tmp_path / "streets_10000.graphml", spacing_m=100)
    graph = load_graph(path, crs=inst.meta["crs"], cache_dir=tmp_path / "graphs")
    radius = np.where(inst.radius > 0, inst.radius, np.nan)
    got, info, _ = _both(graph, inst.dem_xy, radius, inst.cand_xy)
    assert info["dijkstra_search"] == "tiles" and info["subgraph_nodes_max"] < graph.n_nodes / 4
    assert got.nnz > 10_000
