"""The regular demand grid: geometry of cells, ids, and which cells touch the study area.

Cells are squares of side ``cell_m`` aligned on multiples of ``cell_m`` in the working CRS,
numbered row-major from the north-west corner (row 0 is the northernmost row), so that
``cell_id = row * n_cols + col`` is stable for a given study area and cell size, and the
grid is also a raster (north-up) for convolutions and rasterio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine


@dataclass(frozen=True)
class Grid:
    """A north-up grid of ``n_rows`` × ``n_cols`` square cells; ``x0, y0`` is the NW corner."""

    x0: float
    y0: float
    cell_m: float
    n_rows: int
    n_cols: int

    @classmethod
    def covering(cls, bounds: tuple[float, float, float, float], cell_m: float) -> Grid:
        """The smallest aligned grid covering ``bounds`` (minx, miny, maxx, maxy)."""
        minx, miny, maxx, maxy = bounds
        x0 = math.floor(minx / cell_m) * cell_m
        y0 = math.ceil(maxy / cell_m) * cell_m
        n_cols = max(1, math.ceil((maxx - x0) / cell_m))
        n_rows = max(1, math.ceil((y0 - miny) / cell_m))
        return cls(float(x0), float(y0), float(cell_m), int(n_rows), int(n_cols))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    @property
    def transform(self) -> Affine:
        """Affine transform of the grid as a raster (rasterio convention)."""
        return Affine(self.cell_m, 0.0, self.x0, 0.0, -self.cell_m, self.y0)

    @property
    def cell_km2(self) -> float:
        return self.cell_m * self.cell_m / 1e6

    def centres(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell centre coordinates (metres)."""
        x = self.x0 + (np.asarray(cols) + 0.5) * self.cell_m
        y = self.y0 - (np.asarray(rows) + 0.5) * self.cell_m
        return x, y

    def boxes(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Square cell polygons (shapely array)."""
        xmin = self.x0 + np.asarray(cols) * self.cell_m
        ymax = self.y0 - np.asarray(rows) * self.cell_m
        return shapely.box(xmin, ymax - self.cell_m, xmin + self.cell_m, ymax)

    def cell_ids(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return np.asarray(rows, dtype=np.int64) * self.n_cols + np.asarray(cols, dtype=np.int64)

    def rowcol(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the cell holding each point (may fall outside the grid)."""
        cols = np.floor((np.asarray(x) - self.x0) / self.cell_m).astype(np.int64)
        rows = np.floor((self.y0 - np.asarray(y)) / self.cell_m).astype(np.int64)
        return rows, cols

    def inside(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return (rows >= 0) & (rows < self.n_rows) & (cols >= 0) & (cols < self.n_cols)


def area_on_grid(grid: Grid, geom: shapely.Geometry | np.ndarray | None) -> np.ndarray:
    """Area (m²) of ``geom`` falling in each grid cell, as an (n_rows, n_cols) raster.

    The polygon parts are paired with the cells their bounding boxes span (vectorised, no
    loop over cells); a pair where the part contains the cell counts the full cell, a
    part inside a single cell counts its own area, and only the rest are intersected.
    Areas of overlapping parts add up, so pass a dissolved geometry (or an array of
    non-overlapping polygons).
    """
    out = np.zeros(grid.shape, dtype=float)
    if geom is None or (isinstance(geom, shapely.Geometry) and geom.is_empty):
        return out
    parts = shapely.get_parts(shapely.get_parts(geom))  # flatten collections
    parts = parts[shapely.get_type_id(parts) == 3]  # polygons only
    if len(parts) == 0:
        return out
    b = shapely.bounds(parts)
    c0 = np.floor((b[:, 0] - grid.x0) / grid.cell_m).astype(np.int64)
    c1 = np.ceil((b[:, 2] - grid.x0) / grid.cell_m).astype(np.int64)
    r0 = np.floor((grid.y0 - b[:, 3]) / grid.cell_m).astype(np.int64)
    r1 = np.ceil((grid.y0 - b[:, 1]) / grid.cell_m).astype(np.int64)
    c0, r0 = np.maximum(c0, 0), np.maximum(r0, 0)
    c1, r1 = np.minimum(np.maximum(c1, c0 + 1), grid.n_cols), np.minimum(np.maximum(r1, r0 + 1), grid.n_rows)
    ok = (c1 > c0) & (r1 > r0)
    parts, c0, c1, r0, r1 = parts[ok], c0[ok], c1[ok], r0[ok], r1[ok]
    nc, nr = c1 - c0, r1 - r0
    single = (nc == 1) & (nr == 1)
    np.add.at(out, (r0[single], c0[single]), shapely.area(parts[single]))
    multi = np.flatnonzero(~single)
    if len(multi) == 0:
        return out
    counts = (nc * nr)[multi]
    pidx = np.repeat(multi, counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = r0[pidx] + k // nc[pidx]
    cols = c0[pidx] + k % nc[pidx]
    boxes = grid.boxes(rows, cols)
    shapely.prepare(parts)
    hit = shapely.intersects(parts[pidx], boxes)
    full = np.zeros(len(boxes), dtype=bool)
    full[hit] = shapely.contains_properly(parts[pidx[hit]], boxes[hit])
    edge = hit & ~full
    areas = np.zeros(len(boxes))
    areas[full] = grid.cell_m**2
    areas[edge] = shapely.area(shapely.intersection(parts[pidx[edge]], boxes[edge]))
    np.add.at(out, (rows, cols), areas)
    return out


def cover_fraction(grid: Grid, area: shapely.Geometry | None) -> np.ndarray:
    """Share (0..1) of each cell's area inside ``area`` (an (n_rows, n_cols) raster)."""
    return np.clip(area_on_grid(grid, area) / grid.cell_m**2, 0.0, 1.0)
