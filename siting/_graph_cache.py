"""Binary cache of parsed street graphs: one uncompressed ``.npz`` per GraphML file content.

Parsing a city-scale GraphML (800k nodes, 2.9M edges) takes ~25 s; reading the parsed arrays
back takes well under a second. The cache is keyed by the file's sha256 and :data:`FORMAT`, so
an edited file gets a new entry and a format change never reads an old one. It holds the node
ids, the node x/y in the graph's own CRS (before projection), the deduplicated adjacency (CSR
``indptr``/``indices``/``data``, the shortest of parallel edges, both ways for an undirected
file: building it costs ~1 s at city scale, so it is stored rather than recomputed), whether
the file is directed and its ``crs`` text. No pickle: node ids are int64 when every id is a
canonical decimal integer, else a fixed-width unicode array, and are only stored if they
round-trip exactly.

A cache file that is missing, truncated, corrupt or inconsistent is ignored (and rewritten by
the caller); a cache that cannot be written is a warning. Nothing here raises.

The cache is bounded: after each write the least recently used entries (a read refreshes an
entry's mtime) are deleted until the entries total at most ``$SITING_GRAPH_CACHE_MB`` (default
1024 MB; an 800k-node city grid takes 57 MB). The entry just written is always kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

log = logging.getLogger(__name__)

FORMAT = "siting-graph-v1"
ENV_DISABLE = "SITING_NO_GRAPH_CACHE"
ENV_MAX_MB = "SITING_GRAPH_CACHE_MB"
DEFAULT_MAX_MB = 1024.0
STALE_TMP_S = 3600.0  # a temporary file untouched this long belongs to a killed writer
_KEYS = frozenset({"format", "sha256", "node_ids", "x", "y", "indptr", "indices", "data", "directed",
                   "graph_crs"})
_FLOAT = np.dtype(np.float64)


@dataclass(frozen=True)
class ParsedGraph:
    """A street graph as read from its file, before projection and component labelling.

    node_ids: object array of the GraphML node ids (str), in file order.
    x, y: node coordinates in the graph's CRS (``crs_text``), float64.
    adj: CSR (n × n) metres, shortest parallel edge, canonical (sorted, no duplicates).
    """

    node_ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    adj: sparse.csr_array
    directed: bool
    crs_text: str


def index_dtype(n_nodes: int, n_edges: int) -> np.dtype:
    """Index dtype of an adjacency: int32 (what scipy's csgraph works on) unless it overflows."""
    return np.dtype(np.int32 if max(n_nodes, n_edges) < np.iinfo(np.int32).max else np.int64)


def enabled() -> bool:
    """False when ``$SITING_NO_GRAPH_CACHE`` is set to 1/true/yes/on."""
    return os.environ.get(ENV_DISABLE, "").strip().lower() not in ("1", "true", "yes", "on")


def max_bytes() -> int:
    """The cache's size cap from ``$SITING_GRAPH_CACHE_MB`` (a number >= 0), else the default."""
    text = os.environ.get(ENV_MAX_MB, "").strip()
    if text:
        try:
            mb = float(text)
            if mb >= 0 and np.isfinite(mb):
                return int(mb * 2**20)
        except ValueError:
            pass
        log.warning("$%s=%r is not a number of megabytes >= 0; using %g", ENV_MAX_MB, text, DEFAULT_MAX_MB)
    return int(DEFAULT_MAX_MB * 2**20)


def prune(cache_dir: Path, keep: Path, limit: int) -> list[Path]:
    """Delete the least recently used cache entries until they total <= ``limit`` bytes.

    Only files named like cache entries (any format version) are counted or deleted; ``keep``
    never is. Oldest mtime first, ties by name. Temporary files a killed writer left behind
    (untouched for ``STALE_TMP_S``) are deleted too. Returns the deleted paths.
    """
    removed: list[Path] = []
    now = time.time()
    for f in Path(cache_dir).glob(".siting-graph-*.npz.tmp"):
        with contextlib.suppress(OSError):
            if now - f.stat().st_mtime > STALE_TMP_S:
                f.unlink()
                removed.append(f)
    entries = []
    for f in Path(cache_dir).glob("siting-graph-*.npz"):
        with contextlib.suppress(OSError):
            st = f.stat()
            entries.append((st.st_mtime, f.name, st.st_size, f))
    total = sum(e[2] for e in entries)
    for _, _, size, f in sorted(entries):
        if total <= limit:
            break
        if f == Path(keep):
            continue
        try:
            f.unlink()
        except OSError as exc:
            log.warning("%s: cannot delete an old graph cache entry (%s)", f, exc)
            continue
        total -= size
        removed.append(f)
    return removed


def cache_file(cache_dir: Path, sha256: str) -> Path:
    """Where the parsed graph of a file with this sha256 is stored."""
    return Path(cache_dir) / f"{FORMAT}-{sha256}.npz"


# ---------------------------------------------------------------- node ids


def _encode_ids(ids: np.ndarray) -> np.ndarray | None:
    """int64 if every id is a canonical decimal integer, else fixed-width unicode; None if neither
    round-trips exactly (then the graph is not cached)."""
    text = ids.astype(str)
    with contextlib.suppress(ValueError, OverflowError):
        as_int = text.astype(np.int64)
        if np.array_equal(as_int.astype(str), text):
            return as_int
    return text if np.array_equal(text.astype(object), ids) else None


def _decode_ids(stored: np.ndarray) -> np.ndarray:
    return stored.astype(str).astype(object)


# ---------------------------------------------------------------- read


def _scalar_text(z: np.lib.npyio.NpzFile, key: str) -> str:
    arr = z[key]
    if arr.shape != () or arr.dtype.kind != "U":
        raise ValueError(f"`{key}` is not a text scalar")
    return str(arr)


def _check_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n: int) -> None:
    """Raise ValueError unless (indptr, indices, data) is a canonical n × n CSR."""
    itype = index_dtype(n, indices.size)
    if indptr.dtype != itype or indices.dtype != itype or data.dtype != _FLOAT:
        raise ValueError("adjacency arrays have unexpected dtypes")
    if indptr.shape != (n + 1,) or indices.ndim != 1 or data.shape != indices.shape:
        raise ValueError("adjacency arrays have inconsistent shapes")
    if indptr[0] != 0 or indptr[-1] != indices.size or (np.diff(indptr) < 0).any():
        raise ValueError("adjacency indptr is not a valid row pointer")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError("adjacency indices out of range")
    rising = np.diff(indices) > 0
    row_start = np.zeros(indices.size, dtype=bool)
    row_start[indptr[1:-1][indptr[1:-1] < indices.size]] = True
    if not (rising | row_start[1:]).all():
        raise ValueError("adjacency indices are not sorted and unique within rows")


def _read_arrays(path: Path, sha256: str) -> ParsedGraph:
    """Read and check one cache file; ValueError/KeyError/OSError etc. if it is not usable."""
    with np.load(path, allow_pickle=False) as z:
        if set(z.files) != _KEYS:
            raise ValueError(f"keys {sorted(z.files)}")
        if _scalar_text(z, "format") != FORMAT or _scalar_text(z, "sha256") != sha256:
            raise ValueError("format version or sha256 differ")
        ids, x, y = z["node_ids"], z["x"], z["y"]
        n = ids.shape[0] if ids.ndim == 1 else -1
        if n < 1 or not (ids.dtype == np.int64 or ids.dtype.kind == "U"):
            raise ValueError("node ids are not a non-empty int64 or unicode vector")
        if x.dtype != _FLOAT or y.dtype != _FLOAT or x.shape != (n,) or y.shape != (n,):
            raise ValueError("node x/y are not float64 vectors of the node count")
        indptr, indices, data = z["indptr"], z["indices"], z["data"]
        _check_csr(indptr, indices, data, n)
        if data.size == 0:
            raise ValueError("no edges")
        directed = z["directed"]
        if directed.shape != () or directed.dtype != np.bool_:
            raise ValueError("`directed` is not a boolean scalar")
        adj = sparse.csr_array((data, indices, indptr), shape=(n, n))
        return ParsedGraph(node_ids=_decode_ids(ids), x=x, y=y, adj=adj, directed=bool(directed),
                           crs_text=_scalar_text(z, "graph_crs"))


def read(path: Path, sha256: str) -> ParsedGraph | None:
    """The cached graph at ``path`` if it is there and sound, else None (a warning if unsound)."""
    if not path.is_file():
        return None
    try:
        graph = _read_arrays(path, sha256)
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: the last to be pruned
        return graph
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("%s: unusable graph cache (%s); parsing the GraphML again", path, exc)
        return None


# ---------------------------------------------------------------- write


def write(path: Path, sha256: str, graph: ParsedGraph) -> bool:
    """Store a validated graph through a temporary file and os.replace; False if not written.

    A cache that cannot be written is a warning, not an error: the graph itself is fine.
    """
    ids = _encode_ids(graph.node_ids)
    if ids is None:
        log.warning("%s: node ids do not round-trip through a fixed-width array; not cached", path)
        return False
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz.tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, format=np.array(FORMAT), sha256=np.array(sha256), node_ids=ids,
                     x=np.ascontiguousarray(graph.x, dtype=np.float64),
                     y=np.ascontiguousarray(graph.y, dtype=np.float64),
                     indptr=graph.adj.indptr, indices=graph.adj.indices, data=graph.adj.data,
                     directed=np.array(bool(graph.directed)), graph_crs=np.array(graph.crs_text))
        os.replace(tmp, path)
        for old in prune(path.parent, path, max_bytes()):
            log.info("%s: deleted (graph cache over $%s)", old, ENV_MAX_MB)
        return True
    except OSError as exc:
        log.warning("%s: cannot write the graph cache (%s); continuing without it", path, exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False
