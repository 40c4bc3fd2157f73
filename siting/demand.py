"""Demand surface: resident elderly on a regular grid, their density, band and owed radius.

STUB — contract only; implemented under issue 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd


@dataclass(frozen=True)
class DemandGrid:
    """The demand grid of one scenario, in the working (projected, metric) CRS.

    cells: one row per grid cell inside the study area holding elderly > 0, columns
        cell_id (int64, stable: row * n_cols + col of the full grid), geometry (square Polygon),
        x, y (cell centre, metres), elderly (float64, fractional, conserved),
        land_km2 (land area of the cell), density_km2 (elderly / km² of land around the cell,
        by the density method), band (band name from the rule set, e.g. "high"),
        radius_m (owed radius in metres; NaN where the band has none), rule_id (the band's
        rule, e.g. "ZJ-R500"), unit_id (str), unit_name (str), subdistrict (str).
    units: planning units (ZJ-UNIT): unit_id (str), name (str), subdistrict (str), geometry,
        area_km2, elderly (float), beds_required (int = ceil(ratio × elderly), ZJ-BEDS), rule_id.
    study_area: the dissolved study area (one row) in the working CRS.
    census: per census unit: code, name, count (census figure), weight_share_inside (0..1),
        elderly_inside (what was spread on the grid), partial (bool).
    meta: method and parameters (density method, radius, cell size, age, source), timings.
    notes: sentences for the report (partial census units, fallbacks used, …).
    """

    cells: gpd.GeoDataFrame
    units: gpd.GeoDataFrame
    study_area: gpd.GeoDataFrame
    census: pd.DataFrame
    crs: str
    cell_size_m: float
    meta: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def build(scenario: Any, rules: Any = None) -> DemandGrid:
    """Build the demand grid of a scenario (see :class:`DemandGrid`)."""
    raise NotImplementedError("not implemented yet: demand")
