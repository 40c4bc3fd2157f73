"""Parsed-graph cache: a cached load equals a parsed load exactly, and a bad cache is never an error.

Truth: the same file loaded with the cache off (``SITING_NO_GRAPH_CACHE=1``, the GraphML
parser) — the Hangzhou walk graph and small hand-written GraphML files (directed, undirected,
integer and text node ids). A cache hit is proven by replacing the GraphML with junk and
passing the old sha256: only the cache can then give the graph back. Caches go to tmp_path.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from siting import _graph_cache
from siting._data import sha256_file
from siting._errors import DataError
from siting.network import MIN_EDGE_LENGTH_M, StreetGraph, load_graph

CRS = "EPSG:4549"
LON0, LAT0 = 120.15, 30.25
DEG = 1.0 / 100_000.0  # ~1 m (good enough for hand-written graphs)


def _graphml(path: Path, nodes: dict[str, tuple[float, float]], edges: list[tuple[str, str, float]], *,
             directed: bool = True, crs: str = "epsg:4326") -> Path:
    """Write a GraphML file in osmnx's layout by hand: node x/y (lon/lat from metres), edge length."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">',
             '<key id="d0" for="graph" attr.name="crs" attr.type="string"/>',
             '<key id="d1" for="node" attr.name="x" attr.type="string"/>',
             '<key id="d2" for="node" attr.name="y" attr.type="string"/>',
             '<key id="d3" for="edge" attr.name="length" attr.type="string"/>',
             f'<graph edgedefault="{"directed" if directed else "undirected"}">',
             f'<data key="d0">{crs}</data>']
    for nid, (mx, my) in nodes.items():
        lines.append(f'<node id="{nid}"><data key="d1">{LON0 + mx * DEG!r}</data>'
                     f'<data key="d2">{LAT0 + my * DEG!r}</data></node>')
    for u, v, length in edges:
        lines.append(f'<edge source="{u}" target="{v}"><data key="d3">{length!r}</data></edge>')
    lines += ["</graph>", "</graphml>"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _square(tmp_path: Path, *, ids: tuple[str, ...] = ("10", "11", "12", "13", "99"), directed: bool = True,
            last_length: float = 130.0, name: str = "square.graphml") -> Path:
    """A 100 m square a→b→c→d (one parallel a→b edge, a 0 m edge) and an island node e→d."""
    a, b, c, d, e = ids
    nodes = {a: (0.0, 0.0), b: (100.0, 0.0), c: (100.0, 100.0), d: (0.0, 100.0), e: (900.0, 900.0)}
    edges = [(a, b, 100.0), (a, b, 150.0), (b, c, 100.0), (c, d, 100.0), (d, a, 0.0), (e, e, last_length)]
    return _graphml(tmp_path / name, nodes, edges, directed=directed)


def _parsed(path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> StreetGraph:
    """The graph as the GraphML parser reads it (cache off)."""
    monkeypatch.setenv(_graph_cache.ENV_DISABLE, "1")
    graph = load_graph(path, crs=CRS, cache_dir=cache_dir)
    monkeypatch.delenv(_graph_cache.ENV_DISABLE)
    return graph


def _assert_same(got: StreetGraph, want: StreetGraph) -> None:
    assert got.node_ids.dtype == want.node_ids.dtype == object
    assert got.node_ids.tolist() == want.node_ids.tolist()
    assert all(type(i) is str for i in got.node_ids)
    assert got.xy.dtype == want.xy.dtype
    assert np.array_equal(got.xy, want.xy)
    for part in ("data", "indices", "indptr"):
        g, w = getattr(got.adj, part), getattr(want.adj, part)
        assert g.dtype == w.dtype, part
        assert np.array_equal(g, w), part
    assert got.adj.shape == want.adj.shape
    assert np.array_equal(got.component, want.component)
    assert got.main == want.main
    assert (got.directed, got.graph_crs, got.crs, got.sha256) == (want.directed, want.graph_crs, want.crs,
                                                                   want.sha256)


def _junk_in_place(path: Path) -> str:
    """Replace a GraphML file with junk; return the sha256 it had (only a cache can serve it now)."""
    digest = sha256_file(path)
    path.write_bytes(b"not a graph any more")
    return digest


def _cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


# ---------------------------------------------------------------- equality and hits


def test_hangzhou_walk_graph_cached_equals_parsed(hangzhou, tmp_path, monkeypatch):
    path = hangzhou / "street_network_walk.graphml"
    cache = tmp_path / "graphs"
    want = _parsed(path, monkeypatch, cache)
    assert _cache_files(cache) == []
    first = load_graph(path, crs=CRS, cache_dir=cache)  # parses, writes the cache
    (entry,) = _cache_files(cache)
    assert entry.name == f"{_graph_cache.FORMAT}-{sha256_file(path)}.npz"
    written = entry.stat()
    second = load_graph(path, crs=CRS, cache_dir=cache)
    # read, not rewritten (a rewrite replaces the file: a new inode); the read refreshes the mtime
    assert entry.stat().st_ino == written.st_ino
    assert entry.stat().st_mtime_ns >= written.st_mtime_ns
    _assert_same(first, want)
    _assert_same(second, want)
    with np.load(entry, allow_pickle=False) as z:
        assert z["node_ids"].dtype == np.int64  # OSM ids are integers


def test_hangzhou_copy_is_served_from_the_cache(hangzhou, tmp_path, monkeypatch):
    path = tmp_path / "walk.graphml"
    shutil.copyfile(hangzhou / "street_network_walk.graphml", path)
    want = _parsed(path, monkeypatch, tmp_path / "graphs")
    load_graph(path, crs=CRS, cache_dir=tmp_path / "graphs")
    digest = _junk_in_place(path)
    _assert_same(load_graph(path, crs=CRS, sha256=digest, cache_dir=tmp_path / "graphs"), want)


@pytest.mark.parametrize("directed", [True, False])
@pytest.mark.parametrize("ids", [("10", "11", "12", "13", "99"),
                                 ("n1", "节点", "007", "-4", "a b"),
                                 ("0", "-9223372036854775808", "9223372036854775807", "1", "2"),
                                 ("1", "2", "3", "4", "9223372036854775808")])
def test_small_graph_cached_equals_parsed(tmp_path, monkeypatch, directed, ids):
    path = _square(tmp_path, ids=ids, directed=directed)
    cache = tmp_path / "graphs"
    want = _parsed(path, monkeypatch, cache)
    assert want.adj[[0], [1]][0] == 100.0  # the shortest parallel edge
    assert want.adj[[3], [0]][0] == MIN_EDGE_LENGTH_M  # 0 m stored as 1 µm
    assert want.directed is directed
    assert want.adj.indices.dtype == want.adj.indptr.dtype == np.int32  # what csgraph works on, no cast
    load_graph(path, crs=CRS, cache_dir=cache)
    digest = _junk_in_place(path)
    _assert_same(load_graph(path, crs=CRS, sha256=digest, cache_dir=cache), want)


@pytest.mark.parametrize(("ids", "dtype"), [
    (["10", "11", "-3", "0"], "int64"),
    (["007", "1"], "<U3"),
    (["+1", "2"], "<U2"),
    (["1", "9223372036854775808"], "<U19"),
    (["1", "1.0"], "<U3"),
    (["n1", "节点"], "<U2"),
])
def test_node_ids_are_stored_as_int64_only_when_they_round_trip(tmp_path, ids, dtype):
    nodes = {nid: (100.0 * k, 0.0) for k, nid in enumerate(ids)}
    path = _graphml(tmp_path / "ids.graphml", nodes, [(ids[0], ids[1], 100.0)])
    load_graph(path, crs=CRS, cache_dir=tmp_path / "graphs")
    (entry,) = _cache_files(tmp_path / "graphs")
    with np.load(entry, allow_pickle=False) as z:
        assert str(z["node_ids"].dtype) == dtype
    graph = load_graph(path, crs=CRS, sha256=_junk_in_place(path), cache_dir=tmp_path / "graphs")
    assert graph.node_ids.tolist() == ids


def test_changed_file_gets_a_new_entry(tmp_path):
    cache = tmp_path / "graphs"
    path = _square(tmp_path, last_length=130.0)
    before = load_graph(path, crs=CRS, cache_dir=cache)
    _square(tmp_path, last_length=170.0)
    after = load_graph(path, crs=CRS, cache_dir=cache)
    assert before.sha256 != after.sha256
    assert [p.name for p in _cache_files(cache)] == sorted(
        f"{_graph_cache.FORMAT}-{g.sha256}.npz" for g in (before, after))
    assert before.adj[[4], [4]][0] == 130.0
    assert after.adj[[4], [4]][0] == 170.0


def test_default_cache_dir_is_under_the_working_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    graph = load_graph(_square(tmp_path), crs=CRS)
    (entry,) = _cache_files(tmp_path / ".cache" / "siting" / "graphs")
    assert graph.sha256 in entry.name


# ---------------------------------------------------------------- bad caches


def _rewrite_npz(entry: Path, **changes: np.ndarray) -> None:
    with np.load(entry, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(entry, **arrays)


CORRUPTIONS = {
    "empty": lambda e: e.write_bytes(b""),
    "truncated": lambda e: e.write_bytes(e.read_bytes()[: e.stat().st_size // 2]),
    "junk": lambda e: e.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8),
    "pickle": lambda e: _rewrite_npz(e, node_ids=np.array([object()] * 5, dtype=object)),
    "old format": lambda e: _rewrite_npz(e, format=np.array("siting-graph-v0")),
    "other sha256": lambda e: _rewrite_npz(e, sha256=np.array("0" * 64)),
    "missing key": lambda e: _rewrite_npz(e, directed=None),
    "extra key": lambda e: _rewrite_npz(e, extra=np.zeros(3)),
    "short x": lambda e: _rewrite_npz(e, x=np.zeros(4)),
    "float32 y": lambda e: _rewrite_npz(e, y=np.zeros(5, dtype=np.float32)),
    "index out of range": lambda e: _rewrite_npz(e, indices=np.array([1, 1, 2, 3, 7], dtype=np.int32)),
    "int64 indices": lambda e: _rewrite_npz(e, indices=np.array([1, 2, 3, 0, 4], dtype=np.int64),
                                            indptr=np.array([0, 1, 2, 3, 4, 5], dtype=np.int64)),
    "unsorted row": lambda e: _rewrite_npz(e, indptr=np.array([0, 2, 3, 4, 5, 5], dtype=np.int32),
                                           indices=np.array([1, 0, 2, 0, 4], dtype=np.int32)),
    "bad indptr": lambda e: _rewrite_npz(e, indptr=np.array([0, 1, 2, 3, 4, 9], dtype=np.int32)),
    "negative length": lambda e: _rewrite_npz(e, data=-np.ones(5)),
    "nan coordinate": lambda e: _rewrite_npz(e, x=np.full(5, np.nan)),
    "metres in degrees": lambda e: _rewrite_npz(e, x=np.full(5, 500_000.0)),
    "unknown crs": lambda e: _rewrite_npz(e, graph_crs=np.array("epsg:0")),
    "directed as text": lambda e: _rewrite_npz(e, directed=np.array("yes")),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_bad_cache_file_is_ignored_and_rewritten(tmp_path, monkeypatch, caplog, kind):
    path = _square(tmp_path)
    cache = tmp_path / "graphs"
    want = _parsed(path, monkeypatch, cache)
    load_graph(path, crs=CRS, cache_dir=cache)
    (entry,) = _cache_files(cache)
    assert _graph_cache.read(entry, want.sha256) is not None
    CORRUPTIONS[kind](entry)
    with caplog.at_level(logging.WARNING):
        got = load_graph(path, crs=CRS, cache_dir=cache)
    _assert_same(got, want)
    assert "parsing the GraphML again" in caplog.text
    assert _cache_files(cache) == [entry]  # no stray temporary files
    assert _graph_cache.read(entry, want.sha256) is not None  # rewritten sound
    _assert_same(load_graph(path, crs=CRS, sha256=_junk_in_place(path), cache_dir=cache), want)


def test_unwritable_cache_dir_is_a_warning(tmp_path, caplog):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        graph = load_graph(_square(tmp_path), crs=CRS, cache_dir=blocker / "graphs")
    assert graph.n_nodes == 5
    assert "cannot write the graph cache" in caplog.text


def test_cache_zip_holds_no_pickle(tmp_path):
    load_graph(_square(tmp_path, ids=("n1", "节点", "007", "-4", "a b")), crs=CRS, cache_dir=tmp_path / "g")
    (entry,) = _cache_files(tmp_path / "g")
    with zipfile.ZipFile(entry) as zf:
        assert sorted(zf.namelist()) == sorted(f"{k}.npy" for k in _graph_cache._KEYS)
    with np.load(entry, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


# ---------------------------------------------------------------- the switch and parse errors


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_env_var_turns_the_cache_off(tmp_path, monkeypatch, value):
    path = _square(tmp_path)
    cache = tmp_path / "graphs"
    monkeypatch.setenv(_graph_cache.ENV_DISABLE, value)
    load_graph(path, crs=CRS, cache_dir=cache)
    assert _cache_files(cache) == []  # nothing written
    monkeypatch.delenv(_graph_cache.ENV_DISABLE)
    load_graph(path, crs=CRS, cache_dir=cache)
    assert len(_cache_files(cache)) == 1
    digest = _junk_in_place(path)
    monkeypatch.setenv(_graph_cache.ENV_DISABLE, value)
    with pytest.raises(DataError, match="not a GraphML file"):  # the parser runs, the cache is not read
        load_graph(path, crs=CRS, sha256=digest, cache_dir=cache)


def test_env_var_zero_keeps_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(_graph_cache.ENV_DISABLE, "0")
    load_graph(_square(tmp_path), crs=CRS, cache_dir=tmp_path / "graphs")
    assert len(_cache_files(tmp_path / "graphs")) == 1


@pytest.mark.parametrize(("content", "match"), [
    ("<graphml/>", "no `length`"),
    ('<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><key id="d3" for="edge" attr.name="length"/>'
     '<graph/></graphml>', r"0 node\(s\) and 0 edge\(s\)"),
    ("<graphml><unclosed>", "not a GraphML file"),
])
def test_invalid_files_are_never_cached(tmp_path, content, match):
    path = tmp_path / "bad.graphml"
    path.write_text(content, encoding="utf-8")
    for _ in range(2):  # the second time too: nothing was cached
        with pytest.raises(DataError, match=match):
            load_graph(path, crs=CRS, cache_dir=tmp_path / "graphs")
    assert _cache_files(tmp_path / "graphs") == []


def test_bad_length_raises_with_and_without_a_cache(tmp_path, monkeypatch):
    path = _graphml(tmp_path / "neg.graphml", {"0": (0.0, 0.0), "1": (100.0, 0.0)}, [("0", "1", -5.0)])
    for disabled in (False, True):
        if disabled:
            monkeypatch.setenv(_graph_cache.ENV_DISABLE, "1")
        with pytest.raises(DataError, match=r"1 edge\(s\) lack a valid `length`"):
            load_graph(path, crs=CRS, cache_dir=tmp_path / "graphs")
    assert _cache_files(tmp_path / "graphs") == []


# ---------------------------------------------------------------- size cap (least recently used out)


def _entries_by_length(cache: Path, tmp_path: Path, lengths: list[float]) -> list[Path]:
    """One cache entry per edited square (each a different file content), oldest first by mtime."""
    made = []
    for k, length in enumerate(lengths):
        graph = load_graph(_square(tmp_path, last_length=length), crs=CRS, cache_dir=cache)
        entry = _graph_cache.cache_file(cache, graph.sha256)
        os.utime(entry, (1_000_000 + k, 1_000_000 + k))
        made.append(entry)
    return made


def test_cache_over_its_cap_drops_the_least_recently_used(tmp_path, monkeypatch):
    cache = tmp_path / "graphs"
    old, mid = _entries_by_length(cache, tmp_path, [110.0, 120.0])
    size = old.stat().st_size
    other = cache / "notes.txt"
    other.write_text("not a cache entry")
    load_graph(_square(tmp_path, last_length=110.0), crs=CRS, cache_dir=cache)  # a hit: `old` is now recent
    assert old.stat().st_mtime > mid.stat().st_mtime
    monkeypatch.setenv(_graph_cache.ENV_MAX_MB, str(2.5 * size / 2**20))  # room for two entries
    new = load_graph(_square(tmp_path, last_length=140.0), crs=CRS, cache_dir=cache)
    assert sorted(_cache_files(cache)) == sorted([old, _graph_cache.cache_file(cache, new.sha256)])
    assert other.is_file()  # only cache entries are ever deleted


def test_cache_cap_zero_keeps_only_the_entry_just_written(tmp_path, monkeypatch):
    cache = tmp_path / "graphs"
    _entries_by_length(cache, tmp_path, [110.0, 120.0])
    monkeypatch.setenv(_graph_cache.ENV_MAX_MB, "0")
    new = load_graph(_square(tmp_path, last_length=150.0), crs=CRS, cache_dir=cache)
    assert _cache_files(cache) == [_graph_cache.cache_file(cache, new.sha256)]


def test_stale_temporary_files_of_a_killed_writer_are_deleted(tmp_path):
    """A write killed between mkstemp and os.replace leaves a .npz.tmp; the next write sweeps it once stale."""
    cache = tmp_path / "graphs"
    cache.mkdir()
    stale = cache / ".siting-graph-v1-abc.x1y2.npz.tmp"
    fresh = cache / ".siting-graph-v1-def.z3w4.npz.tmp"  # maybe another process writing right now
    for f in (stale, fresh):
        f.write_bytes(b"partial")
    old = time.time() - _graph_cache.STALE_TMP_S - 60
    os.utime(stale, (old, old))
    load_graph(_square(tmp_path, last_length=130.0), crs=CRS, cache_dir=cache)
    assert not stale.exists()
    assert fresh.exists()


@pytest.mark.parametrize("value", ["lots", "-5", "nan"])
def test_bad_cache_cap_is_a_warning_and_the_default(monkeypatch, caplog, value):
    monkeypatch.setenv(_graph_cache.ENV_MAX_MB, value)
    with caplog.at_level(logging.WARNING):
        assert _graph_cache.max_bytes() == int(_graph_cache.DEFAULT_MAX_MB * 2**20)
    assert _graph_cache.ENV_MAX_MB in caplog.text
