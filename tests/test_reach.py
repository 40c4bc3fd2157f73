"""Reach: straight-line against brute force, network against networkx and the real graph,
the cache, the summaries and every bad input."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import osmnx as ox
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from siting import reach as reach_mod
from siting import scenario as scenario_mod
from siting._errors import DataError
from siting._layers import read_layer
from siting.demand import DemandGrid
from siting.reach import MIN_STORED_DISTANCE_M, Reach, euclidean_matrix, reach_summary, uncoverable_cells
from siting.scenario import DistanceSpec, NetworkSpec
from siting.sites import Sites

CRS = "EPSG:4549"


# ---------------------------------------------------------------- builders


def _demand(x, y, radius, *, elderly=None, band=None, units=None, study_area=None) -> DemandGrid:
    x, y, radius = (np.asarray(a, dtype=float) for a in (x, y, radius))
    n = x.size
    band = np.asarray(band if band is not None else np.where(np.isnan(radius), "low", "high"))
    rule = np.select([radius == 500, radius == 1000], ["ZJ-R500", "ZJ-R1000"], "ZJ-LOW")
    cells = gpd.GeoDataFrame(
        {"cell_id": np.arange(n, dtype=np.int64), "x": x, "y": y,
         "elderly": np.ones(n) if elderly is None else np.asarray(elderly, float),
         "band": band, "radius_m": radius, "rule_id": rule, "unit_id": ""},
        geometry=gpd.points_from_xy(x, y).buffer(50, cap_style="square"), crs=CRS)
    empty = gpd.GeoDataFrame({"unit_id": []}, geometry=[], crs=CRS)
    return DemandGrid(cells=cells, units=units if units is not None else empty,
                      study_area=study_area if study_area is not None else empty,
                      census=pd.DataFrame(), crs=CRS, cell_size_m=100.0)


def _sites(x, y, kind=None) -> Sites:
    x, y = np.asarray(x, float), np.asarray(y, float)
    kind = np.asarray(kind if kind is not None else ["candidate"] * x.size)
    table = gpd.GeoDataFrame({"site_id": [f"S{i:03d}" for i in range(x.size)], "kind": kind, "x": x, "y": y},
                             geometry=gpd.points_from_xy(x, y), crs=CRS)
    return Sites(table=table, crs=CRS)


@pytest.fixture(scope="module")
def scenario(default_scenario_path):
    return scenario_mod.load(default_scenario_path)


def _euclidean(scenario):
    return scenario.model_copy(update={"distance": DistanceSpec(mode="euclidean")})


def _network(scenario, graph: Path, snap_limit_m: float = 300.0, kind: str = "walk"):
    spec = NetworkSpec(graph=graph, kind=kind, snap_limit_m=snap_limit_m)
    return scenario.model_copy(update={"distance": DistanceSpec(mode="network", network=spec)})


def _brute(cell_xy, radius, site_xy) -> dict[tuple[int, int], float]:
    d = np.hypot(cell_xy[:, None, 0] - site_xy[None, :, 0], cell_xy[:, None, 1] - site_xy[None, :, 1])
    r, c = np.nonzero(d <= np.nan_to_num(radius, nan=-1.0)[:, None])
    return {(int(i), int(j)): max(float(d[i, j]), MIN_STORED_DISTANCE_M) for i, j in zip(r, c, strict=True)}


def _as_dict(m) -> dict[tuple[int, int], float]:
    coo = m.tocoo()
    return {(int(i), int(j)): float(v) for i, j, v in zip(coo.row, coo.col, coo.data, strict=True)}


def _same_up_to_boundary(got: dict, want: dict, cell_xy, radius, site_xy) -> None:
    """Equal, except pairs within 1e-6 m of the radius where float rounding may differ."""
    for key in set(got) ^ set(want):
        i, j = key
        assert abs(np.hypot(*(cell_xy[i] - site_xy[j])) - radius[i]) < 1e-6, key
    for key in set(got) & set(want):
        assert got[key] == pytest.approx(want[key], abs=1e-7)


# ---------------------------------------------------------------- euclidean


coords = st.floats(0, 3000, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(st.tuples(coords, coords, st.sampled_from([500.0, 1000.0, np.nan, 250.0])),
                   min_size=1, max_size=60),
    sites=st.lists(st.tuples(coords, coords), min_size=1, max_size=30),
)
def test_euclidean_matches_brute_force(cells, sites):
    cell_xy = np.array([(x, y) for x, y, _ in cells], dtype=float)
    radius = np.array([r for *_, r in cells], dtype=float)
    site_xy = np.array(sites, dtype=float)
    m = euclidean_matrix(cell_xy, radius, site_xy)
    assert m.shape == (len(cells), len(sites))
    assert (m.data >= MIN_STORED_DISTANCE_M).all()
    _same_up_to_boundary(_as_dict(m), _brute(cell_xy, radius, site_xy), cell_xy, radius, site_xy)


def test_euclidean_many_distinct_radii_and_coincident_points():
    rng = np.random.default_rng(7)
    cell_xy = rng.uniform(0, 5000, (800, 2))
    site_xy = np.vstack([rng.uniform(0, 5000, (150, 2)), cell_xy[:5]])  # 5 sites on cell centres
    radius = rng.uniform(100, 1500, 800)  # 800 distinct radii → bucketed
    radius[rng.random(800) < 0.2] = np.nan
    radius[:5] = 300.0
    m = euclidean_matrix(cell_xy, radius, site_xy)
    assert len(reach_mod._radius_groups(radius)) <= reach_mod.MAX_RADIUS_GROUPS
    _same_up_to_boundary(_as_dict(m), _brute(cell_xy, radius, site_xy), cell_xy, radius, site_xy)
    for i in range(5):
        assert m[[i], [150 + i]][0] == MIN_STORED_DISTANCE_M


# ---------------------------------------------------------------- build + cache


def test_build_euclidean_and_cache(tmp_path, scenario):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(500_000, 505_000, (2, 400))
    radius = rng.choice([500.0, 1000.0, np.nan], 400)
    demand = _demand(x, y, radius)
    sites = _sites(*rng.uniform(500_000, 505_000, (2, 60)))
    sc = _euclidean(scenario)
    first = reach_mod.build(sc, demand, sites, cache_dir=tmp_path)
    assert first.mode == "euclidean" and first.meta["cache_hit"] is False
    assert first.dist.shape == (400, 60)
    want = _brute(np.c_[x, y], radius, sites.table[["x", "y"]].to_numpy())
    _same_up_to_boundary(_as_dict(first.dist), want, np.c_[x, y], radius, sites.table[["x", "y"]].to_numpy())
    # other costs: same reach, from the cache, identical arrays
    sc2 = sc.model_copy(update={"costs": sc.costs.model_copy(update={"site": 1.0})})
    second = reach_mod.build(sc2, demand, sites, cache_dir=tmp_path)
    assert second.meta["cache_hit"] is True
    for a in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(first.dist, a), getattr(second.dist, a))
    # a changed radius misses
    radius2 = radius.copy()
    radius2[np.flatnonzero(np.isfinite(radius))[0]] = 750.0
    third = reach_mod.build(sc, _demand(x, y, radius2), sites, cache_dir=tmp_path)
    assert third.meta["cache_hit"] is False
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_corrupt_cache_is_recomputed(tmp_path, scenario):
    demand = _demand([500_000.0], [3_340_000.0], [500.0])
    sites = _sites([500_100.0], [3_340_000.0])
    first = reach_mod.build(_euclidean(scenario), demand, sites, cache_dir=tmp_path)
    Path(first.meta["cache_file"]).write_bytes(b"not an npz")
    again = reach_mod.build(_euclidean(scenario), demand, sites, cache_dir=tmp_path)
    assert again.meta["cache_hit"] is False
    assert again.dist.toarray()[0, 0] == pytest.approx(100.0)


def test_no_site_within_reach_of_anything(tmp_path, scenario):
    demand = _demand([500_000.0, 500_100.0], [3_340_000.0] * 2, [500.0, 1000.0])
    sites = _sites([510_000.0], [3_340_000.0])
    with pytest.raises(DataError, match=r"no site lies within the owed radius \(500 m, 1000 m\)"):
        reach_mod.build(_euclidean(scenario), demand, sites, cache_dir=tmp_path)


def test_nothing_owed_is_not_an_error(tmp_path, scenario):
    demand = _demand([500_000.0], [3_340_000.0], [np.nan])
    r = reach_mod.build(_euclidean(scenario), demand, _sites([510_000.0], [3_340_000.0]), cache_dir=tmp_path)
    assert r.dist.nnz == 0


def test_empty_sites(tmp_path, scenario):
    demand = _demand([500_000.0], [3_340_000.0], [500.0])
    with pytest.raises(DataError, match="there are no sites"):
        reach_mod.build(_euclidean(scenario), demand, _sites([], []), cache_dir=tmp_path)


def test_crs_mismatch_between_cells_and_sites(tmp_path, scenario):
    demand = _demand([500_000.0], [3_340_000.0], [500.0])
    sites = _sites([500_000.0], [3_340_000.0])
    sites = Sites(table=sites.table.set_crs("EPSG:32651", allow_override=True), crs="EPSG:32651")
    with pytest.raises(DataError, match="demand cells are in EPSG:4549 but sites in EPSG:32651"):
        reach_mod.build(_euclidean(scenario), demand, sites, cache_dir=tmp_path)


def test_default_cache_dir_is_under_working_dir(tmp_path, scenario, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demand = _demand([500_000.0], [3_340_000.0], [500.0])
    reach_mod.build(_euclidean(scenario), demand, _sites([500_010.0], [3_340_000.0]))
    assert len(list((tmp_path / ".cache" / "siting" / "reach").glob("*.npz"))) == 1


# ---------------------------------------------------------------- network via build


def _tiny_graph(tmp_path: Path) -> Path:
    """A line of 6 nodes 200 m apart (lengths 200 m) plus a 2-node island 3 km away."""
    from pyproj import Transformer

    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    g = nx.MultiDiGraph(crs="epsg:4326")
    pts = {i: (500_000.0 + 200.0 * i, 3_340_000.0) for i in range(6)}
    pts.update({10: (503_000.0, 3_343_000.0), 11: (503_200.0, 3_343_000.0)})
    for n, (x, y) in pts.items():
        lon, lat = to_ll.transform(x, y)
        g.add_node(n, x=lon, y=lat)
    for u, v in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (10, 11)]:
        g.add_edge(u, v, length=200.0)
        g.add_edge(v, u, length=200.0)
    path = tmp_path / "tiny.graphml"
    ox.save_graphml(g, path)
    return path


def test_build_network_on_tiny_graph(tmp_path, scenario):
    graph = _tiny_graph(tmp_path)
    # cells at nodes 0, 5 (+30 m off the street), island node 10, and one 1 km off the network
    demand = _demand([500_000.0, 501_000.0, 503_000.0, 501_000.0],
                     [3_340_030.0, 3_340_000.0, 3_343_000.0, 3_341_000.0], [1000.0, 500.0, 500.0, 1000.0])
    sites = _sites([500_400.0, 503_200.0], [3_339_990.0, 3_343_000.0])
    r = reach_mod.build(_network(scenario, graph), demand, sites, cache_dir=tmp_path / "c")
    dense = r.dist.toarray()
    assert dense[0, 0] == pytest.approx(30 + 400 + 10, abs=0.5)  # offsets + two edges
    assert dense[1, 0] == 0  # 600 + 10 > 500
    assert dense[2, 1] == pytest.approx(200.0, abs=0.5)  # island to island works
    assert dense[3].sum() == 0
    assert r.cells_unsnapped.tolist() == [2, 3]  # island cell, far cell
    assert r.sites_unsnapped.tolist() == [1]  # island site
    assert r.meta["cells_on_island"] == [2] and r.meta["n_cells_beyond_snap_limit"] == 1
    assert r.meta["notes"] == [
        "1 cell(s) lie more than 300 m from the walk network: no network reach for them "
        "(listed in tables/off_network.csv)",
        "1 cell(s) snap to a street island cut off from the main walk network (listed in tables/off_network.csv)",
        "1 site(s) snap to a street island cut off from the main walk network (listed in tables/off_network.csv)",
    ]
    assert r.meta["graph_sha256"] and r.meta["speed_kmh"] == 4.5 and r.meta["mode"] == "network"
    again = reach_mod.build(_network(scenario, graph), demand, sites, cache_dir=tmp_path / "c")
    assert again.meta["cache_hit"] and np.array_equal(again.cells_unsnapped, r.cells_unsnapped)
    other = reach_mod.build(_network(scenario, graph, snap_limit_m=2000), demand, sites, cache_dir=tmp_path / "c")
    assert other.meta["cache_hit"] is False and other.cells_unsnapped.tolist() == [2]


def test_network_graph_far_from_everything(tmp_path, scenario):
    graph = _tiny_graph(tmp_path)
    demand = _demand([600_000.0], [3_340_000.0], [500.0])
    with pytest.raises(DataError, match="no cell and no site lies within 300 m of the street network"):
        reach_mod.build(_network(scenario, graph), demand, _sites([600_100.0], [3_340_000.0]),
                        cache_dir=tmp_path)


def test_network_missing_graph(tmp_path, scenario):
    demand = _demand([500_000.0], [3_340_000.0], [500.0])
    with pytest.raises(DataError, match="graph file not found"):
        reach_mod.build(_network(scenario, tmp_path / "missing.graphml"), demand,
                        _sites([500_000.0], [3_340_000.0]), cache_dir=tmp_path)


# ---------------------------------------------------------------- summaries


def test_reach_summary_and_uncoverable_by_hand():
    demand = _demand([0, 100, 200, 5000, 9000], [0] * 5, [500, 500, 1000, 1000, np.nan],
                     elderly=[10, 20, 30, 40, 50], band=["high", "high", "medium", "medium", "low"])
    sites = _sites([0, 200], [0, 0], kind=["existing", "candidate"])
    r = Reach(dist=euclidean_matrix(demand.cells[["x", "y"]].to_numpy(), demand.cells["radius_m"].to_numpy(),
                                    sites.table[["x", "y"]].to_numpy()), mode="euclidean")
    s = reach_summary(demand, sites, r).set_index("band")
    assert s.loc["high", "elderly"] == 30 and s.loc["high", "share_existing"] == 1.0
    assert s.loc["high", "share_candidate"] == 1.0  # cell 0: 200 m, cell 1: 100 m
    assert s.loc["medium", "share_existing"] == pytest.approx(30 / 70)
    assert s.loc["medium", "uncoverable_elderly"] == 40
    assert np.isnan(s.loc["low", "share_existing"]) and s.loc["low", "uncoverable_elderly"] == 0
    u = uncoverable_cells(demand, r)
    assert u["cell_id"].tolist() == [3]
    assert u["hint"].iloc[0] == "add candidates near (5000, 0)"


# ---------------------------------------------------------------- the Hangzhou walk graph


@pytest.fixture(scope="module")
def hangzhou_run(scenario, tmp_path_factory):
    """100 m lattice over old Shangcheng (~2.6k cells), radii 500/1000 m, lattice of sites."""
    units = read_layer(scenario.planning_units.layer, field="planning_units.layer", crs=CRS)
    area = shapely.union_all(units.geometry.to_numpy())
    x0, y0, x1, y1 = area.bounds
    gx, gy = np.meshgrid(np.arange(x0 + 50, x1, 100.0), np.arange(y0 + 50, y1, 100.0))
    inside = shapely.contains_xy(area, gx.ravel(), gy.ravel())
    x, y = gx.ravel()[inside], gy.ravel()[inside]
    radius = np.where((np.arange(x.size) % 3) == 0, 1000.0, 500.0)
    sx, sy = np.meshgrid(np.arange(x0 + 100, x1, 400.0), np.arange(y0 + 100, y1, 400.0))
    keep = shapely.contains_xy(area, sx.ravel(), sy.ravel())
    demand, sites = _demand(x, y, radius), _sites(sx.ravel()[keep], sy.ravel()[keep])
    r = reach_mod.build(scenario, demand, sites, cache_dir=tmp_path_factory.mktemp("reach"))
    return demand, sites, r


def test_hangzhou_network_is_never_shorter_than_straight_line(hangzhou_run):
    demand, sites, r = hangzhou_run
    assert r.mode == "network" and r.dist.nnz > 1000
    coo = r.dist.tocoo()
    rng = np.random.default_rng(0)
    pick = rng.choice(coo.nnz, 400, replace=False)
    cxy = demand.cells[["x", "y"]].to_numpy()[coo.row[pick]]
    sxy = sites.table[["x", "y"]].to_numpy()[coo.col[pick]]
    straight = np.hypot(*(cxy - sxy).T)
    # the path is geodesic edge length, the offsets straight lines: ≥ straight line up to the
    # projection's scale error (< 1e-3 here)
    assert (coo.data[pick] >= straight * (1 - 1e-3) - 1e-6).all()
    ratio = r.meta["detour_ratio_median"]
    print(f"median detour ratio (network / straight line): {ratio:.3f} over {r.meta['detour_pairs']} pairs")
    assert 1.05 < ratio < 2.5


def test_hangzhou_network_matches_networkx_on_sample(hangzhou_run, hangzhou):
    """Independent check: networkx Dijkstra on the graph as osmnx loads it."""
    from pyproj import Transformer
    from scipy.spatial import cKDTree

    demand, sites, r = hangzhou_run
    g = ox.load_graphml(hangzhou / "street_network_walk.graphml")
    ids = list(g.nodes)
    to_m = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    tree = cKDTree(np.column_stack(to_m.transform([g.nodes[n]["x"] for n in ids], [g.nodes[n]["y"] for n in ids])))
    cells = demand.cells[["x", "y"]].to_numpy()
    sxy = sites.table[["x", "y"]].to_numpy()
    c_off, c_idx = tree.query(cells)
    c_nodes = [ids[i] for i in c_idx]
    radius = demand.cells["radius_m"].to_numpy()
    reverse = g.reverse(copy=False)  # distances cell → site = from the site on the reversed graph
    rng = np.random.default_rng(1)
    for j in rng.choice(len(sxy), 3, replace=False):
        s_off, s_idx = tree.query(sxy[j])
        s_node = ids[s_idx]
        back = nx.single_source_dijkstra_path_length(reverse, s_node, cutoff=1000, weight="length")
        want = np.array([c_off[i] + back.get(c_nodes[i], np.inf) + s_off for i in range(len(cells))])
        got = r.dist[:, [j]].toarray().ravel()
        ok = (want <= radius) & (c_off <= 300) & (s_off <= 300)
        assert ok.sum() > 10
        differ = (got > 0) != ok
        assert (np.abs(want - radius)[differ] < 1e-6).all()  # only on the radius itself
        assert got[ok] == pytest.approx(want[ok], abs=1e-6)


def test_cache_file_is_written_atomically(tmp_path, scenario, monkeypatch, caplog):
    """A failing write leaves no file behind (temp file + os.replace) and the run goes on."""
    demand = _demand([500_000.0], [3_340_000.0], [500.0])

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    r = reach_mod.build(_euclidean(scenario), demand, _sites([500_010.0], [3_340_000.0]), cache_dir=tmp_path)
    assert r.dist.nnz == 1
    assert "cannot write the reach cache (disk full)" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_network_graph_cache_sits_beside_the_reach_cache(tmp_path, scenario, monkeypatch):
    """build(cache_dir=X) caches the parsed graph in X/../graphs, not under the working directory."""
    monkeypatch.delenv("SITING_NO_GRAPH_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    graph = _tiny_graph(tmp_path)
    demand = _demand([500_000.0], [3_340_030.0], [1000.0])
    r = reach_mod.build(_network(scenario, graph), demand, _sites([500_400.0], [3_339_990.0]),
                        cache_dir=tmp_path / "run" / "reach")
    assert r.dist.nnz == 1 and r.meta["dijkstra_search"] == "tiles"
    assert len(list((tmp_path / "run" / "graphs").iterdir())) == 1
    assert not (tmp_path / ".cache").exists()
