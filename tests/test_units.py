"""Planning units (ZJ-UNIT): assignment by centre, ZJ-BEDS requirement, contiguous auto units."""

from __future__ import annotations

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry import box

from siting import units as pu
from siting._grid import Grid


def test_assign_by_centre_inside_nearest_and_ties():
    polys = np.array([box(0, 0, 10, 10), box(10, 0, 20, 10)])
    idx = pu.assign_by_centre(np.array([5.0, 15.0, 10.0, 30.0, -3.0]), np.array([5.0, 5.0, 5.0, 5.0, 5.0]),
                              polys)
    assert list(idx) == [0, 1, 0, 1, 0]


def test_beds_required_zj_beds():
    got = pu.beds_required(np.array([10_000.0, 10_001.0, 0.0, 3333.3333333333, 86_927.0]), 300)
    assert list(got) == [300, 301, 0, 100, 2608]


def _square(n: int) -> tuple[Grid, np.ndarray, np.ndarray]:
    grid = Grid(0.0, n * 100.0, 100.0, n, n)
    rows, cols = np.indices((n, n))
    return grid, rows.ravel(), cols.ravel()


def _contiguous(label: np.ndarray, rows, cols, shape) -> bool:
    for j in np.unique(label[label >= 0]):
        mask = np.zeros(shape, dtype=bool)
        mask[rows[label == j], cols[label == j]] = True
        if ndimage.label(mask)[1] != 1:  # rook connectivity (default structure)
            return False
    return True


def test_auto_regions_contiguous_balanced_deterministic():
    grid, rows, cols = _square(12)
    e = np.ones(len(rows))
    label, ids = pu.auto_regions(grid, rows, cols, e, np.full(len(rows), "S", dtype=object), 36.0)
    assert len(ids) == 4 and (label >= 0).all()
    sizes = np.bincount(label)
    assert sizes.sum() == 144 and sizes.min() >= 24 and sizes.max() <= 48
    assert _contiguous(label, rows, cols, grid.shape)
    again, _ = pu.auto_regions(grid, rows, cols, e, np.full(len(rows), "S", dtype=object), 36.0)
    assert (again == label).all()


def test_auto_regions_stay_inside_groups():
    grid, rows, cols = _square(10)
    group = np.where(cols < 4, "西", "东").astype(object)
    e = np.where(rows < 5, 3.0, 0.0)
    label, ids = pu.auto_regions(grid, rows, cols, e, group, 30.0)
    for j in range(len(ids)):
        assert len(set(group[label == j])) == 1
    assert sorted(i.split("-")[0] for i in ids) == ["东"] * 3 + ["西"] * 2  # 90/30 and 60/30
    assert _contiguous(label, rows, cols, grid.shape)


def test_auto_regions_disconnected_piece_without_elderly_joins_nearest():
    grid, rows, cols = _square(6)
    keep = ~((cols == 2) | (cols == 3))  # two blocks of 2 columns apart
    rows, cols = rows[keep], cols[keep]
    e = np.where(cols < 2, 1.0, 0.0)  # only the west block has elderly
    label, ids = pu.auto_regions(grid, rows, cols, e, np.full(len(rows), "S", dtype=object), 100.0)
    assert len(ids) == 1 and (label == 0).all()


def test_units_frame_areas():
    geoms = np.array([box(0, 0, 1000, 1000), box(0, 0, 500, 1000)])
    f = pu.units_frame(["b", "a"], ["B", "A"], ["s", "s"], geoms, np.array([100.0, 0.0]), 300, "EPSG:4549")
    assert list(f.unit_id) == ["a", "b"] and list(f.area_km2) == [0.5, 1.0]
    assert list(f.beds_required) == [0, 3] and shapely.area(f.geometry.iloc[0]) == 5e5
