"""Street networks: read an osmnx GraphML file into a projected scipy graph, snap points to it.

The GraphML is parsed directly (``xml.etree.ElementTree.iterparse``, only node ``x``/``y`` and
edge ``length``): about 5× faster than ``osmnx.load_graphml`` on the 19k-node Hangzhou walk
graph, and every problem (missing file, not GraphML, no ``length``, coordinates that do not
match the declared CRS) becomes a :class:`DataError` naming the file and the fix.

Distances are the edges' ``length`` (metres, geodesic as osmnx computes them); node
coordinates are projected to the working CRS only for snapping and straight-line offsets.

A parsed graph is cached (:mod:`siting._graph_cache`, keyed by the file's sha256) under
``.cache/siting/graphs`` of the working directory: the second load of an 800k-node city grid
takes under a second instead of ~30 s. ``SITING_NO_GRAPH_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from . import _graph_cache
from ._data import sha256_file
from ._errors import DataError
from ._graph_cache import ParsedGraph

log = logging.getLogger(__name__)

GRAPHML_NS = "{http://graphml.graphdrawing.org/xmlns}"
MIN_EDGE_LENGTH_M = 1e-6  # scipy's csgraph may drop explicit zeros: a 0 m edge is stored as 1 µm
FIELD = "distance.network.graph"


@dataclass(frozen=True)
class StreetGraph:
    """A street network as a sparse adjacency (metres) with projected node coordinates.

    adj: CSR (n × n), adj[u, v] = shortest parallel edge u → v in metres.
    xy: (n, 2) node coordinates in the working CRS (metres).
    component: weakly connected component label per node; ``main`` is the largest one.
    """

    path: Path
    sha256: str
    node_ids: np.ndarray
    xy: np.ndarray
    adj: sparse.csr_array
    directed: bool
    graph_crs: str
    crs: str
    component: np.ndarray
    main: int

    @property
    def n_nodes(self) -> int:
        return int(self.xy.shape[0])

    def on_main(self, nodes: np.ndarray) -> np.ndarray:
        """True where a node belongs to the largest weakly connected component."""
        return self.component[nodes] == self.main


@dataclass(frozen=True)
class Snap:
    """Nearest node of each point and the straight-line offset to it (metres)."""

    node: np.ndarray
    offset_m: np.ndarray
    snapped: np.ndarray  # offset within the snap limit

    def unsnapped(self) -> np.ndarray:
        return np.flatnonzero(~self.snapped)


# ---------------------------------------------------------------- GraphML parsing


def _tag(elem: ET.Element) -> str:
    return elem.tag.removeprefix(GRAPHML_NS)


Nodes = list[tuple[str, "str | None", "str | None"]]  # id, x, y as text
Edges = list[tuple[str, str, "str | None"]]  # source, target, length as text


class _HashingReader:
    """A binary file that updates a sha256 with every byte read (hash and parse in one pass)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        block = self._fh.read(size)
        self.hash.update(block)
        return block


def _parse(path: Path, source: _HashingReader) -> tuple[dict[str, str], Nodes, Edges, bool]:
    """Return graph attributes, nodes (id, x, y) and edges (u, v, length) of a GraphML file."""
    keys: dict[str, tuple[str, str]] = {}
    graph_attrs: dict[str, str] = {}
    nodes: Nodes = []
    edges: Edges = []
    directed = True
    root_seen = False
    for event, elem in ET.iterparse(source, events=("start", "end")):
        tag = _tag(elem)
        if event == "start":
            if not root_seen:
                root_seen = True
                if tag != "graphml":
                    raise DataError(f"{path}: not a GraphML file (root element <{tag}>) "
                                    f"(scenario field `{FIELD}`)",
                                    hints=("save the network with osmnx.save_graphml",))
            elif tag == "graph":
                directed = elem.get("edgedefault", "directed") == "directed"
            continue
        if tag == "key":
            keys[elem.get("id", "")] = (elem.get("for", ""), elem.get("attr.name", ""))
        elif tag == "node":
            data = {keys.get(d.get("key", ""), ("", ""))[1]: d.text for d in elem}
            nodes.append((elem.get("id", ""), data.get("x"), data.get("y")))
            elem.clear()
        elif tag == "edge":
            data = {keys.get(d.get("key", ""), ("", ""))[1]: d.text for d in elem}
            edges.append((elem.get("source", ""), elem.get("target", ""), data.get("length")))
            elem.clear()
        elif tag == "data" and elem.get("key") in keys and keys[elem.get("key", "")][0] == "graph":
            graph_attrs[keys[elem.get("key", "")][1]] = elem.text or ""
    if not any(f == "edge" and n == "length" for f, n in keys.values()):
        raise DataError(f"{path}: edges have no `length` attribute (scenario field `{FIELD}`)",
                        hints=("add it with osmnx.distance.add_edge_lengths(G) and save again",))
    return graph_attrs, nodes, edges, directed


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: graph file not found (scenario field `{FIELD}`)",
                        hints=("check the path; relative paths start at the scenario file's folder",))


def graph_sha256(path: str | Path) -> str:
    """sha256 of a graph file (the reach cache key), without parsing it."""
    _require_file(Path(path))
    return sha256_file(Path(path))


def _read_graphml(path: Path) -> tuple[dict[str, str], Nodes, Edges, bool, str]:
    """Parse a GraphML file; also return the sha256 of exactly the bytes parsed."""
    _require_file(path)
    try:
        with open(path, "rb") as fh:
            source = _HashingReader(fh)
            parsed = _parse(path, source)
            while source.read(1 << 20):  # hash any bytes after the closing tag too
                pass
        return (*parsed, source.hash.hexdigest())
    except ET.ParseError as exc:
        raise DataError(f"{path}: not a GraphML file ({exc}) (scenario field `{FIELD}`)",
                        hints=("give an osmnx GraphML file (osmnx.save_graphml)",)) from None


def _as_float(values: list[str | None], what: str, path: Path) -> np.ndarray:
    try:
        out = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: {what} is not a number ({exc}) (scenario field `{FIELD}`)") from None
    return out


# ---------------------------------------------------------------- checks and projection


def _graph_crs(attrs: dict[str, str], path: Path) -> CRS:
    text = attrs.get("crs")
    if not text:
        raise DataError(f"{path}: the graph has no `crs` attribute (scenario field `{FIELD}`)",
                        hints=("osmnx graphs carry one; set G.graph['crs'] = 'epsg:4326' and save again",))
    try:
        return CRS.from_user_input(text)
    except CRSError:
        raise DataError(f"{path}: unknown graph CRS {text!r} (scenario field `{FIELD}`)") from None


def _check_coordinates(x: np.ndarray, y: np.ndarray, crs: CRS, path: Path) -> None:
    """Refuse node coordinates that cannot be in the CRS the graph declares."""
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError(f"{path}: {int((~np.isfinite(x) | ~np.isfinite(y)).sum())} node(s) lack x/y "
                        f"(scenario field `{FIELD}`)")
    looks_degrees = bool(np.abs(x).max() <= 180.0 and np.abs(y).max() <= 90.0)
    if crs.is_geographic and not looks_degrees:
        raise DataError(
            f"{path}: the graph says {crs.to_string()} (degrees) but node x/y look like metres "
            f"(e.g. x={x[np.abs(x).argmax()]:.1f}) (scenario field `{FIELD}`)",
            hints=("the graph was projected but its `crs` attribute was not updated; "
                   "set G.graph['crs'] to the projected CRS, or save the unprojected graph",),
        )
    spread = max(np.ptp(x), np.ptp(y)) if x.size > 1 else 0.0
    if crs.is_projected and looks_degrees and spread < 5.0:
        raise DataError(
            f"{path}: the graph says {crs.to_string()} (metres) but node x/y look like degrees "
            f"(x in [{x.min():.4f}, {x.max():.4f}]) (scenario field `{FIELD}`)",
            hints=("set G.graph['crs'] = 'epsg:4326' for lon/lat coordinates and save again",),
        )


def _project(x: np.ndarray, y: np.ndarray, src: CRS, dst: str) -> np.ndarray:
    if src == CRS.from_user_input(dst):
        return np.column_stack([x, y])
    px, py = Transformer.from_crs(src, dst, always_xy=True).transform(x, y)
    return np.column_stack([px, py])


def _adjacency(u: np.ndarray, v: np.ndarray, length: np.ndarray, n: int, directed: bool) -> sparse.csr_array:
    """Canonical CSR adjacency with the shortest of parallel edges (an undirected file gets both ways)."""
    if not directed:
        u, v, length = np.concatenate([u, v]), np.concatenate([v, u]), np.concatenate([length, length])
    order = np.lexsort((length, v, u))
    u, v, length = u[order], v[order], length[order]
    first = np.ones(u.size, dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    length = np.maximum(length[first], MIN_EDGE_LENGTH_M)
    u, v = u[first], v[first]
    # int32 indices, as csgraph wants them: otherwise every Dijkstra call casts a copy (~1 s at city scale)
    itype = _graph_cache.index_dtype(n, u.size)
    indptr = np.zeros(n + 1, dtype=itype)
    np.cumsum(np.bincount(u, minlength=n), out=indptr[1:])
    return sparse.csr_array((length, v.astype(itype), indptr), shape=(n, n))


def _edge_arrays(path: Path, edges: Edges, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge endpoints (node positions) and lengths (m), refusing unknown nodes and bad lengths."""
    try:
        u = np.fromiter((index[e[0]] for e in edges), dtype=np.int64, count=len(edges))
        v = np.fromiter((index[e[1]] for e in edges), dtype=np.int64, count=len(edges))
    except KeyError as exc:
        raise DataError(f"{path}: an edge refers to node {exc.args[0]!r}, which is not in the graph "
                        f"(scenario field `{FIELD}`)") from None
    length = _as_float([e[2] for e in edges], "an edge length", path)
    bad = ~np.isfinite(length) | (length < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: {int(bad.sum())} edge(s) lack a valid `length`, e.g. {edges[i][0]}→{edges[i][1]} "
            f"length={edges[i][2]!r} (scenario field `{FIELD}`)",
            hints=("recompute lengths with osmnx.distance.add_edge_lengths(G) and save again",),
        )
    return u, v, length


def _parse_graph(path: Path) -> tuple[ParsedGraph, CRS, str]:
    """Parse and check a GraphML file: the graph, its CRS and the sha256 of the bytes parsed."""
    attrs, nodes, edges, directed, digest = _read_graphml(path)
    if not nodes or not edges:
        raise DataError(f"{path}: the graph has {len(nodes)} node(s) and {len(edges)} edge(s) "
                        f"(scenario field `{FIELD}`)", hints=("give a non-empty street network",))
    gcrs = _graph_crs(attrs, path)
    ids = np.array([n[0] for n in nodes], dtype=object)
    x = _as_float([n[1] for n in nodes], "a node x", path)
    y = _as_float([n[2] for n in nodes], "a node y", path)
    _check_coordinates(x, y, gcrs, path)
    u, v, length = _edge_arrays(path, edges, {nid: i for i, nid in enumerate(ids)})
    adj = _adjacency(u, v, length, len(ids), directed)
    return ParsedGraph(node_ids=ids, x=x, y=y, adj=adj, directed=directed, crs_text=attrs["crs"]), gcrs, digest


def _check_cached(graph: ParsedGraph, path: Path) -> CRS:
    """The parser's checks (CRS, coordinates, lengths) again on cached arrays; their CRS."""
    gcrs = _graph_crs({"crs": graph.crs_text}, path)
    _check_coordinates(graph.x, graph.y, gcrs, path)
    if not (np.isfinite(graph.adj.data).all() and (graph.adj.data >= MIN_EDGE_LENGTH_M).all()):
        raise DataError(f"{path}: cached edge lengths are not finite and positive")
    return gcrs


def _from_cache(cache_file: Path, sha256: str, path: Path) -> tuple[ParsedGraph, CRS] | None:
    """The cached parse of ``path`` if there and sound; a cache failing the parser's checks is ignored."""
    cached = _graph_cache.read(cache_file, sha256)
    if cached is None:
        return None
    try:
        return cached, _check_cached(cached, path)
    except DataError as exc:
        log.warning("%s: cached graph fails a check (%s); parsing the GraphML again", cache_file, exc)
        return None


def _street_graph(path: Path, sha256: str, graph: ParsedGraph, gcrs: CRS, crs: str) -> StreetGraph:
    """Project the nodes to the working CRS and label weakly connected components."""
    _, labels = csgraph.connected_components(graph.adj, directed=True, connection="weak")
    return StreetGraph(
        path=path, sha256=sha256, node_ids=graph.node_ids, xy=_project(graph.x, graph.y, gcrs, crs),
        adj=graph.adj, directed=graph.directed, graph_crs=gcrs.to_string(), crs=crs, component=labels,
        main=int(np.bincount(labels).argmax()),
    )


def default_graph_cache_dir() -> Path:
    """Where parsed graphs are cached unless told otherwise: ``./.cache/siting/graphs``."""
    return Path.cwd() / ".cache" / "siting" / "graphs"


def load_graph(path: str | Path, *, crs: str, sha256: str | None = None,
               cache_dir: Path | None = None) -> StreetGraph:
    """Read an osmnx GraphML street network into a projected :class:`StreetGraph`.

    The parsed graph is cached by the file's sha256 (a second load skips the XML); set
    ``SITING_NO_GRAPH_CACHE=1`` to always parse. A cached graph equals the parsed one exactly.

    Parameters
    ----------
    path
        GraphML file written by ``osmnx.save_graphml`` (nodes with ``x``/``y`` in the graph's
        ``crs``; edges with ``length`` in metres).
    crs
        Working CRS (metres) the node coordinates are projected to.
    sha256
        The file's sha256 if the caller already has it (it keys the cache).
    cache_dir
        Folder of the parsed-graph cache; default ``./.cache/siting/graphs``.
    """
    path = Path(path)
    use_cache = _graph_cache.enabled()
    folder = Path(cache_dir) if cache_dir is not None else default_graph_cache_dir()
    if use_cache:
        _require_file(path)
        sha256 = sha256 or sha256_file(path)
        hit = _from_cache(_graph_cache.cache_file(folder, sha256), sha256, path)
        if hit is not None:
            return _street_graph(path, sha256, hit[0], hit[1], crs)
    parsed, gcrs, digest = _parse_graph(path)
    if sha256 is not None and digest != sha256:
        log.warning("%s: the file changed while it was read (sha256 %s…, expected %s…)",
                    path, digest[:12], sha256[:12])
    if use_cache:
        _graph_cache.write(_graph_cache.cache_file(folder, digest), digest, parsed)
    return _street_graph(path, digest, parsed, gcrs, crs)


def snap(graph: StreetGraph, xy: np.ndarray, *, limit_m: float) -> Snap:
    """Snap points (metres, working CRS) to their nearest node; beyond ``limit_m`` is unsnapped."""
    tree = cKDTree(graph.xy)
    if len(xy) == 0:
        return Snap(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool))
    offset, node = tree.query(np.asarray(xy, dtype=np.float64), k=1)
    return Snap(node=node.astype(np.int64), offset_m=offset, snapped=offset <= limit_m)
