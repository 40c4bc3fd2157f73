"""Reach: which site serves which demand cell, straight-line or along the street network.

STUB — contract only; implemented under issue 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import sparse

MIN_STORED_DISTANCE_M = 1e-3  # a site at the cell centre is stored as 1 mm, never as 0


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


def build(scenario: Any, demand: Any, sites: Any, *, cache_dir: Any = None) -> Reach:
    """Reach of a scenario's sites over its demand cells (cached by input hashes)."""
    raise NotImplementedError("not implemented yet: reach")
