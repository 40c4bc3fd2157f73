"""Elderly density per km² of land around each grid cell (kernel or zone), and its bands.

Density sets the band a cell falls in (ZJ-R500 > 3000/km², ZJ-R1000 1000–3000/km², ZJ-LOW
below, in the zhejiang-2021 rule set) and so the radius it is owed. Land excludes water, so
a lakeside block is not diluted by the lake.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from ._errors import ScenarioError

ROUND_DECIMALS = 6  # FFT round-off must not push 3000.0 into "> 3000"


def disk_kernel(radius_m: float, cell_m: float) -> np.ndarray:
    """0/1 kernel of the cells whose centre lies within ``radius_m`` of the centre cell's."""
    m = int(np.floor(radius_m / cell_m + 1e-9))
    off = np.arange(-m, m + 1) * cell_m
    dy, dx = np.meshgrid(off, off, indexing="ij")
    return (dx * dx + dy * dy <= radius_m * radius_m + 1e-6).astype(float)


def _convolve(raster: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    if kernel.size == 1:
        return raster * kernel.item()
    out = fftconvolve(raster, kernel, mode="same")
    return np.where(out > 1e-9 * max(1.0, float(np.abs(raster).max(initial=0.0))), out, 0.0)


def kernel_density(elderly: np.ndarray, land_km2: np.ndarray, *, radius_m: float, cell_m: float) -> np.ndarray:
    """Elderly within ``radius_m`` of each cell centre ÷ land km² within it (per km²).

    Both sums run over the cells whose centres lie within the radius (a disk kernel),
    computed for the whole raster at once by FFT convolution. Cells with no land around
    them get 0. Elderly and land outside the study area are not on the raster, so the
    ratio is taken over the study area only.
    """
    if elderly.shape != land_km2.shape:
        raise ValueError(f"elderly {elderly.shape} and land {land_km2.shape} rasters differ in shape")
    kernel = disk_kernel(radius_m, cell_m)
    num = _convolve(elderly, kernel)
    den = _convolve(land_km2, kernel)
    dens = np.divide(num, den, out=np.zeros_like(num), where=den > 1e-12)
    return np.round(dens, ROUND_DECIMALS)


def zone_density(zone: np.ndarray, elderly: np.ndarray, land_km2: np.ndarray, n_zones: int) -> np.ndarray:
    """Elderly of each cell's zone ÷ the zone's land km² (``zone`` = zone index per cell)."""
    e = np.bincount(zone, weights=elderly, minlength=n_zones)
    land = np.bincount(zone, weights=land_km2, minlength=n_zones)
    per_zone = np.divide(e, land, out=np.zeros_like(e), where=land > 1e-12)
    return np.round(per_zone[zone], ROUND_DECIMALS)


def band_columns(density_km2: np.ndarray, rules, *, speed_kmh: float) -> dict[str, np.ndarray]:
    """Band name, owed radius (m, NaN for none) and rule id per cell, from the rule set only."""
    idx = np.asarray(rules.band_index(density_km2), dtype=int)
    names = np.array([b.name for b in rules.bands] + [""], dtype=object)
    radii = np.array([np.nan if b.radius_at(speed_kmh) is None else float(b.radius_at(speed_kmh))
                      for b in rules.bands] + [np.nan])
    rule_ids = np.array([b.rule_id for b in rules.bands] + [""], dtype=object)
    return {"band": names[idx], "radius_m": radii[idx], "rule_id": rule_ids[idx]}


def check_cell_size(rules, *, cell_m: float, speed_kmh: float, where: str = "grid.cell_size_m") -> None:
    """A cell larger than the smallest owed radius would blur the rule it is checked against."""
    radii = [r for b in rules.bands if (r := b.radius_at(speed_kmh)) is not None]
    if radii and cell_m > min(radii):
        band = min((b for b in rules.bands if b.radius_at(speed_kmh) is not None),
                   key=lambda b: b.radius_at(speed_kmh))
        raise ScenarioError(
            f"`{where}` = {cell_m:g} m is larger than the smallest band radius "
            f"({band.radius_at(speed_kmh):g} m, band {band.name!r}, {band.rule_id})",
            hints=(f"use cells of at most {min(radii):g} m (100 m is the default)",),
        )


def band_shares(band: np.ndarray, elderly: np.ndarray, rules) -> dict[str, dict[str, float]]:
    """Cells and elderly per band, as counts and shares (for ``meta`` and the report)."""
    total_cells, total_e = max(len(band), 1), max(float(elderly.sum()), 1e-12)
    out: dict[str, dict[str, float]] = {}
    for b in rules.bands:
        hit = band == b.name
        e = float(elderly[hit].sum())
        out[b.name] = {"rule_id": b.rule_id, "cells": int(hit.sum()), "cell_share": hit.sum() / total_cells,
                       "elderly": e, "elderly_share": e / total_e}
    return out
