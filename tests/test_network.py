"""Street graphs: GraphML reading, snapping and radius-bounded network distances.

Truth: tiny hand-made graphs written as real GraphML files by ``osmnx.save_graphml``,
compared with networkx shortest paths; the Hangzhou walk graph compared with osmnx's loader.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import networkx as nx
import numpy as np
import osmnx as ox
import pytest

from siting._errors import DataError
from siting.network import Snap, load_graph, snap
from siting.reach import MIN_STORED_DISTANCE_M, network_matrix

CRS = "EPSG:4549"
LON0, LAT0 = 120.15, 30.25
DEG_X = 1.0 / 96_200.0  # ~1 m in longitude at 30.25° N
DEG_Y = 1.0 / 110_850.0  # ~1 m in latitude


def _graph(nodes: dict[int, tuple[float, float]], edges: list[tuple[int, int, float]], *,
           both_ways: bool = True, crs: str = "epsg:4326") -> nx.MultiDiGraph:
    """A MultiDiGraph with node x/y (lon/lat from metre offsets) and edge lengths."""
    g = nx.MultiDiGraph(crs=crs)
    for n, (mx, my) in nodes.items():
        g.add_node(n, x=LON0 + mx * DEG_X, y=LAT0 + my * DEG_Y)
    for u, v, length in edges:
        g.add_edge(u, v, length=length)
        if both_ways:
            g.add_edge(v, u, length=length)
    return g


def _save(g: nx.MultiDiGraph, tmp_path: Path, name: str = "g.graphml") -> Path:
    path = tmp_path / name
    ox.save_graphml(g, path)
    return path


def _line(tmp_path: Path) -> Path:
    """0 — 1 — 2 — 3 — 4, 100 m apart, lengths 100 m (a parallel 0→1 edge of 150 m is ignored)."""
    g = _graph({i: (100.0 * i, 0.0) for i in range(5)}, [(i, i + 1, 100.0) for i in range(4)])
    g.add_edge(0, 1, length=150.0)
    return _save(g, tmp_path, "line.graphml")


def _grid(tmp_path: Path, seed: int = 3) -> tuple[Path, nx.MultiDiGraph]:
    """A 6 × 6 grid, 100 m spacing, lengths 100–160 m (winding streets), some one-way."""
    rng = np.random.default_rng(seed)
    nodes = {r * 6 + c: (100.0 * c, 100.0 * r) for r in range(6) for c in range(6)}
    g = nx.MultiDiGraph(crs="epsg:4326")
    for n, (mx, my) in nodes.items():
        g.add_node(n, x=LON0 + mx * DEG_X, y=LAT0 + my * DEG_Y)
    for r, c in itertools.product(range(6), range(6)):
        for dr, dc in ((0, 1), (1, 0)):
            if r + dr < 6 and c + dc < 6:
                u, v = r * 6 + c, (r + dr) * 6 + c + dc
                length = float(rng.uniform(100, 160))
                g.add_edge(u, v, length=length)
                if rng.random() > 0.15:  # 15 % one-way streets
                    g.add_edge(v, u, length=length)
    return _save(g, tmp_path, "grid.graphml"), g


def _points_at(path_nodes: list[int], g: nx.MultiDiGraph, jitter_m: float, rng) -> np.ndarray:
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    xy = np.array([tr.transform(g.nodes[n]["x"], g.nodes[n]["y"]) for n in path_nodes])
    return xy + rng.uniform(-jitter_m, jitter_m, xy.shape)


# ---------------------------------------------------------------- reading


def test_line_graph_reads_and_keeps_shortest_parallel_edge(tmp_path):
    graph = load_graph(_line(tmp_path), crs=CRS)
    assert graph.n_nodes == 5
    assert graph.adj[[0], [1]][0] == pytest.approx(100.0)  # not the 150 m parallel edge
    assert graph.adj.nnz == 8
    xy = graph.xy
    assert np.hypot(*(xy[1] - xy[0])) == pytest.approx(100.0, rel=2e-3)  # projected metres


def test_line_graph_distances_match_networkx(tmp_path):
    graph = load_graph(_line(tmp_path), crs=CRS)
    cells = snap(graph, graph.xy[[0, 4]] + [[0.0, 30.0], [0.0, -10.0]], limit_m=50)
    sites = snap(graph, graph.xy[[2]] + [[0.0, 20.0]], limit_m=50)
    dist, _ = network_matrix(graph, cells, np.array([500.0, 220.0]), sites, n_sites=1)
    assert dist[[0], [0]][0] == pytest.approx(30.0 + 200.0 + 20.0, abs=0.5)
    assert dist.nnz == 1  # cell 1: 10 + 200 + 20 = 230 m > 220 m
    dist2, _ = network_matrix(graph, cells, np.array([500.0, 240.0]), sites, n_sites=1)
    assert dist2[[1], [0]][0] == pytest.approx(10.0 + 200.0 + 20.0, abs=0.5)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("from_cells", [False, True])
def test_grid_graph_matches_networkx(tmp_path, seed, from_cells):
    """Every pair within radius is stored as offset + path + offset, cell → site (one-way aware),
    whichever side the search starts from (the side with fewer distinct nodes)."""
    path, g = _grid(tmp_path, seed)
    graph = load_graph(path, crs=CRS)
    rng = np.random.default_rng(seed)
    cell_pool = rng.choice(36, 4 if from_cells else 30, replace=False)
    cell_nodes = [int(n) for n in rng.choice(cell_pool, 20, replace=True)]
    site_nodes = [int(n) for n in rng.choice(36, 25 if from_cells else 7, replace=False)]
    cell_xy = _points_at(cell_nodes, g, 8.0, rng)
    site_xy = _points_at(site_nodes, g, 8.0, rng)
    radius = rng.choice([300.0, 450.0, np.nan], size=20, p=[0.4, 0.4, 0.2])
    cs, ss = snap(graph, cell_xy, limit_m=50), snap(graph, site_xy, limit_m=50)
    assert np.array_equal(graph.node_ids[cs.node].astype(int), cell_nodes)
    dist, info = network_matrix(graph, cs, radius, ss, n_sites=len(site_xy))
    assert info["dijkstra_from"] == ("cells" if from_cells else "sites")
    expected = {}
    for c, cn in enumerate(cell_nodes):
        if not np.isfinite(radius[c]):
            continue
        lengths = nx.single_source_dijkstra_path_length(g, cn, weight="length")
        for s, sn in enumerate(site_nodes):
            if sn in lengths:
                d = cs.offset_m[c] + lengths[sn] + ss.offset_m[s]
                if d <= radius[c]:
                    expected[(c, s)] = max(d, MIN_STORED_DISTANCE_M)
    coo = dist.tocoo()
    got = {(int(r), int(c)): v for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)}
    assert expected, "the instance should have reachable pairs"
    assert got.keys() == expected.keys()
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=1e-6)


def test_one_way_street_is_walked_cell_to_site(tmp_path):
    """0 → 1 one-way 100 m; back 1 → 0 via 2 (300 m): cell at 0, site at 1 is 100 m, reverse 300 m."""
    g = _graph({0: (0, 0), 1: (100, 0), 2: (50, 80)},
               [(0, 1, 100.0), (1, 2, 150.0), (2, 0, 150.0)], both_ways=False)
    graph = load_graph(_save(g, tmp_path), crs=CRS)
    at0, at1 = snap(graph, graph.xy[[0]], limit_m=5), snap(graph, graph.xy[[1]], limit_m=5)
    d01, _ = network_matrix(graph, at0, np.array([1000.0]), at1, n_sites=1)
    d10, _ = network_matrix(graph, at1, np.array([1000.0]), at0, n_sites=1)
    assert d01.toarray()[0, 0] == pytest.approx(100.0)
    assert d10.toarray()[0, 0] == pytest.approx(300.0)


def test_disconnected_pair_is_unreachable_and_labelled(tmp_path):
    g = _graph({0: (0, 0), 1: (100, 0), 2: (1000, 0), 3: (1100, 0), 4: (1200, 0)},
               [(0, 1, 100.0), (2, 3, 100.0), (3, 4, 100.0)])
    graph = load_graph(_save(g, tmp_path), crs=CRS)
    assert not graph.on_main(np.array([0]))[0]
    assert graph.on_main(np.array([2, 3, 4])).all()
    cells = snap(graph, graph.xy[[0, 2]], limit_m=5)
    sites = snap(graph, graph.xy[[1, 4]], limit_m=5)
    dist, _ = network_matrix(graph, cells, np.array([5000.0, 5000.0]), sites, n_sites=2)
    assert dist.toarray() == pytest.approx(np.array([[100.0, 0.0], [0.0, 200.0]]))


def test_snap_limit_marks_far_points(tmp_path):
    graph = load_graph(_line(tmp_path), crs=CRS)
    s = snap(graph, graph.xy[[0, 3]] + [[0.0, 299.0], [0.0, 301.0]], limit_m=300)
    assert isinstance(s, Snap)
    assert s.snapped.tolist() == [True, False]
    assert s.unsnapped().tolist() == [1]


# ---------------------------------------------------------------- bad input


def test_missing_graph_file(tmp_path):
    with pytest.raises(DataError, match=r"graph file not found.*distance\.network\.graph"):
        load_graph(tmp_path / "nope.graphml", crs=CRS)


@pytest.mark.parametrize("content", ["just text, not xml", "<html><body/></html>", ""])
def test_not_graphml(tmp_path, content):
    path = tmp_path / "bad.graphml"
    path.write_text(content)
    with pytest.raises(DataError, match="not a GraphML file"):
        load_graph(path, crs=CRS)


def test_gpkg_given_as_graph(hangzhou):
    with pytest.raises(DataError, match="not a GraphML file"):
        load_graph(hangzhou / "subdistricts.gpkg", crs=CRS)


def test_graph_without_length(tmp_path):
    g = _graph({0: (0, 0), 1: (100, 0)}, [])
    g.add_edge(0, 1, highway="footway")
    with pytest.raises(DataError, match="no `length`"):
        load_graph(_save(g, tmp_path), crs=CRS)


def test_graph_with_a_missing_length(tmp_path):
    g = _graph({0: (0, 0), 1: (100, 0), 2: (200, 0)}, [(0, 1, 100.0)])
    g.add_edge(1, 2, highway="footway")
    with pytest.raises(DataError, match=r"1 edge\(s\) lack a valid `length`"):
        load_graph(_save(g, tmp_path), crs=CRS)


def test_metres_in_a_graph_that_says_degrees(tmp_path):
    g = nx.MultiDiGraph(crs="epsg:4326")
    g.add_node(0, x=515_000.0, y=3_350_000.0)
    g.add_node(1, x=515_100.0, y=3_350_000.0)
    g.add_edge(0, 1, length=100.0)
    with pytest.raises(DataError, match="look like metres"):
        load_graph(_save(g, tmp_path), crs=CRS)


def test_degrees_in_a_graph_that_says_metres(tmp_path):
    g = _graph({0: (0, 0), 1: (100, 0)}, [(0, 1, 100.0)], crs="EPSG:32651")
    with pytest.raises(DataError, match="look like degrees"):
        load_graph(_save(g, tmp_path), crs=CRS)


def test_projected_graph_is_accepted(tmp_path):
    g = _graph({0: (0, 0), 1: (100, 0)}, [(0, 1, 100.0)])
    gp = ox.project_graph(g, to_crs="EPSG:32651")
    graph = load_graph(_save(gp, tmp_path), crs=CRS)
    assert np.hypot(*(graph.xy[1] - graph.xy[0])) == pytest.approx(100.0, rel=2e-3)


# ---------------------------------------------------------------- the real graph


def test_hangzhou_walk_graph_matches_osmnx_loader(hangzhou):
    path = hangzhou / "street_network_walk.graphml"
    graph = load_graph(path, crs=CRS)
    g = ox.load_graphml(path)
    assert graph.n_nodes == g.number_of_nodes()
    assert graph.directed
    index = {str(n): i for i, n in enumerate(graph.node_ids)}
    rng = np.random.default_rng(0)
    edges = list(g.edges(keys=False))
    for k in rng.choice(len(edges), 300, replace=False):
        u, v = edges[k]
        shortest = min(d["length"] for d in g.get_edge_data(u, v).values())
        assert graph.adj[[index[str(u)]], [index[str(v)]]][0] == pytest.approx(shortest)
    pairs = {(index[str(u)], index[str(v)]) for u, v in edges}
    assert graph.adj.nnz == len(pairs)
    assert (graph.component == graph.main).all()  # the file holds the largest component only
