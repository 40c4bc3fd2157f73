"""Kernel and zone density (elderly per km² of land) and density bands from the rule set."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from scipy.spatial import cKDTree

from siting import density as dens
from siting._errors import ScenarioError
from siting.rules import load_rule_set

CELL = 100.0
CELL_KM2 = 0.01


def test_disk_kernel_counts_cells_within_radius():
    k = dens.disk_kernel(500, CELL)
    assert k.shape == (11, 11)
    assert int(k.sum()) == sum(1 for i in range(-5, 6) for j in range(-5, 6) if i * i + j * j <= 25) == 81
    assert dens.disk_kernel(50, CELL).shape == (1, 1)


def test_uniform_density_everywhere_including_edges():
    e = np.full((30, 40), 30.0)
    d = dens.kernel_density(e, np.full(e.shape, CELL_KM2), radius_m=500, cell_m=CELL)
    assert np.allclose(d, 3000.0)


def test_water_is_not_land():
    """Elderly only on the west half (40/cell); the east half is water (no land, no elderly):
    shore cells must read 4000/km², not diluted by the water."""
    e = np.zeros((20, 20))
    land = np.zeros((20, 20))
    e[:, :10], land[:, :10] = 40.0, CELL_KM2
    d = dens.kernel_density(e, land, radius_m=500, cell_m=CELL)
    assert np.allclose(d[:, :10], 4000.0)
    assert np.allclose(d[:, 15:], 0.0)  # nothing within 500 m


def test_kernel_matches_brute_force_kdtree():
    rng = np.random.default_rng(7)
    e = rng.gamma(1.0, 20.0, size=(25, 31)) * (rng.random((25, 31)) > 0.3)
    land = rng.uniform(0.002, CELL_KM2, size=e.shape)
    d = dens.kernel_density(e, land, radius_m=430, cell_m=CELL)
    rr, cc = np.indices(e.shape)
    pts = np.column_stack([cc.ravel() * CELL, rr.ravel() * CELL])
    tree = cKDTree(pts)
    expect = np.array([e.ravel()[n].sum() / land.ravel()[n].sum()
                       for n in tree.query_ball_point(pts, 430 + 1e-6)])
    assert np.allclose(d.ravel(), expect, rtol=1e-9, atol=1e-6)


def test_zone_density():
    zone = np.array([0, 0, 1, 1, 1])
    e = np.array([10.0, 30.0, 5.0, 5.0, 0.0])
    land = np.array([0.01, 0.01, 0.01, 0.01, 0.01])
    assert np.allclose(dens.zone_density(zone, e, land, 2), [2000, 2000, 333.333333, 333.333333, 333.333333])


def _band_shares_at(radius_m: float, ramp: np.ndarray, rules) -> dict[str, float]:
    d = dens.kernel_density(ramp, np.full(ramp.shape, CELL_KM2), radius_m=radius_m, cell_m=CELL)
    band = dens.band_columns(d.ravel(), rules, speed_kmh=4.5)["band"]
    return {b.name: float((band == b.name).mean()) for b in rules.bands}


def test_band_shares_monotone_in_kernel_radius():
    """On a 1-cell-tall strip with a linear ramp of elderly (0 … 6000/km² west → east) and
    uniform land, the kernel density of cell j is the mean of the ramp over the window
    [j − m, j + m] clipped to the strip. Unclipped it is the cell's own value; clipped on
    the east (dense) side it is (j − m + J) / 2 scaled, which falls as m grows; clipped on
    the west side it rises; both clipped it is the strip mean. So a larger radius pulls
    every cell towards the strip mean (3000/km²) without crossing it: cells above the
    "high" threshold (> 3000) can only leave the high band, cells below 1000 can only leave
    the low band. Hence, as the radius grows, the high share and the low share are
    non-increasing and the medium share is non-decreasing — and they do change.
    """
    rules = load_rule_set("zhejiang-2021")
    n = 201
    ramp = (np.arange(n) * (60.0 / (n - 1)))[None, :]  # elderly per cell: 0 … 60 (0 … 6000/km²)
    radii = [100, 500, 1000, 2000, 4000, 8000, 12000, 20000]
    shares = [_band_shares_at(r, ramp, rules) for r in radii]
    high = [s["high"] for s in shares]
    low = [s["low"] for s in shares]
    medium = [s["medium"] for s in shares]
    assert all(a >= b for a, b in pairwise(high))
    assert all(a >= b for a, b in pairwise(low))
    assert all(a <= b for a, b in pairwise(medium))
    assert high[0] > high[-1] and low[0] > low[-1] and medium[-1] == 1.0


def test_band_columns_thresholds_from_rules():
    rules = load_rule_set("zhejiang-2021")
    cols = dens.band_columns(np.array([3000.0, 3000.000001, 1000.0, 999.99, 0.0]), rules, speed_kmh=4.5)
    assert list(cols["band"]) == ["medium", "high", "medium", "low", "low"]
    assert list(cols["rule_id"]) == ["ZJ-R1000", "ZJ-R500", "ZJ-R1000", "ZJ-LOW", "ZJ-LOW"]
    assert cols["radius_m"][1] == 500 and np.isnan(cols["radius_m"][3])


def test_cell_size_check():
    rules = load_rule_set("zhejiang-2021")
    dens.check_cell_size(rules, cell_m=500, speed_kmh=4.5)
    with pytest.raises(ScenarioError, match="smallest band radius"):
        dens.check_cell_size(rules, cell_m=501, speed_kmh=4.5)


def test_band_shares_sum():
    rules = load_rule_set("zhejiang-2021")
    band = np.array(["high", "high", "low"], dtype=object)
    s = dens.band_shares(band, np.array([10.0, 20.0, 10.0]), rules)
    assert s["high"]["elderly_share"] == pytest.approx(0.75) and s["medium"]["cells"] == 0
