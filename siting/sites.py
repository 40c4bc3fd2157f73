"""Sites: existing institutions and candidate sites for new ones, one table.

STUB — contract only; implemented under issue 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd


@dataclass(frozen=True)
class Sites:
    """Every site the model may use; row i is column i of the reach matrix.

    table columns: site_id (str, unique), kind ("existing" | "candidate"), name (str),
        x, y (metres, working CRS), geometry (Point), beds (int; 0 for candidates),
        beds_assumed (bool), unit_id (str or "" when outside every planning unit),
        subdistrict (str), cost_open (float, CNY; candidates), near_hospital (bool).
    Existing sites come first, then candidates, each sorted by site_id (determinism).
    """

    table: gpd.GeoDataFrame
    crs: str
    meta: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def n_existing(self) -> int:
        return int((self.table["kind"] == "existing").sum())


def build(scenario: Any, demand: Any) -> Sites:
    """Load existing facilities and candidate sites (a layer, or generated)."""
    raise NotImplementedError("not implemented yet: sites")
