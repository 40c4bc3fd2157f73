"""Demand from a population raster or from counted points, summed onto the grid.

Raster: each pixel is split into ``s × s`` equal sub-pixels (``s`` chosen so a sub-pixel is at
most a quarter of a grid cell), each carrying 1/s² of the pixel's value; sub-pixel centres are
projected to the working CRS and summed into the cell they fall in. This approximates an
area-weighted split of every pixel over the cells it overlaps, conserves the raster total
exactly, and keeps only sub-pixels whose centre lies inside the study area.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import rasterio.windows
import shapely
from pyproj import Transformer
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds

from ._errors import DataError
from ._grid import Grid
from ._layers import read_layer

SUB_PER_CELL = 4  # a sub-pixel is at most cell / 4 wide
CHUNK_PIXELS = 200_000  # pixels subdivided at a time (bounds memory)


def _inside(grid: Grid, cover: np.ndarray, area: shapely.Geometry, x: np.ndarray, y: np.ndarray,
            rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Points inside the study area: by cell where the cell is wholly in or out, else exactly."""
    ok = grid.inside(rows, cols)
    c = np.zeros(len(x))
    c[ok] = cover[rows[ok], cols[ok]]
    keep = c >= 1.0 - 1e-12
    edge = (c > 0) & ~keep
    if edge.any():
        keep[edge] = shapely.contains_xy(area, x[edge], y[edge])
    return keep


def raster_on_grid(spec, grid: Grid, crs: str, cover: np.ndarray, area: shapely.Geometry,
                   field: str = "demand.raster") -> tuple[np.ndarray, dict]:
    """Sum a population raster onto the grid inside the study area (see module doc)."""
    path = Path(spec.path)
    if not path.exists():
        raise DataError(f"{path}: raster not found (scenario field `{field}.path`)")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise DataError(f"{path}: not a readable raster (scenario field `{field}.path`): {exc}") from None
    with src:
        if src.crs is None:
            raise DataError(f"{path}: raster has no CRS (scenario field `{field}.path`)",
                            hints=("assign one, e.g. `gdal_edit.py -a_srs EPSG:4326 file.tif`",))
        if spec.band > src.count:
            raise DataError(f"{path}: has {src.count} band(s), scenario asks for band {spec.band} "
                            f"(`{field}.band`)")
        ab = transform_bounds(crs, src.crs, *area.bounds, densify_pts=21)
        if not _overlaps(ab, src.bounds):
            raise DataError(f"{path}: the raster does not overlap the study area "
                            f"(scenario fields `{field}` and `study_area`)",
                            hints=("check that both cover the same place and their CRS is right",))
        win = _window(rasterio.windows.from_bounds(*ab, transform=src.transform), src.width, src.height)
        values = src.read(spec.band, window=win, masked=True).astype(float)
        tr = src.window_transform(win)
        src_crs = src.crs
    valid = ~np.ma.getmaskarray(values) & np.isfinite(values.filled(np.nan))
    if not valid.any():
        raise DataError(f"{path}: every pixel over the study area is nodata (scenario field `{field}`)",
                        hints=("check the raster's nodata value and that it covers the study area",))
    data = values.filled(0.0)
    if (data[valid] < 0).any():
        raise DataError(f"{path}: negative population values (min {data[valid].min():g}) "
                        f"(scenario field `{field}`)", hints=("set negative fill values as nodata",))
    to_grid = Transformer.from_crs(src_crs, crs, always_xy=True)
    s = _subdivision(tr, to_grid, grid.cell_m)
    rr, cc = np.nonzero(valid & (data > 0))
    out = np.zeros(grid.shape)
    for i in range(0, len(rr), CHUNK_PIXELS):
        _add_pixels(out, rr[i:i + CHUNK_PIXELS], cc[i:i + CHUNK_PIXELS], data, tr, s, to_grid,
                    grid, cover, area)
    info = {"raster": str(path), "raster_crs": str(src_crs), "subpixels_per_pixel": s * s,
            "raster_total_in_window": float(data[valid].sum()),
            "aggregation": f"each pixel split into {s}×{s} sub-pixels by centre (≈ area split)"}
    return out, info


def _window(w, width: int, height: int) -> rasterio.windows.Window:
    """Whole-pixel window holding ``w``, clipped to the raster."""
    c0, r0 = max(0, math.floor(w.col_off)), max(0, math.floor(w.row_off))
    c1 = min(width, math.ceil(w.col_off + w.width))
    r1 = min(height, math.ceil(w.row_off + w.height))
    return rasterio.windows.Window(c0, r0, max(c1 - c0, 1), max(r1 - r0, 1))


def _overlaps(a: tuple[float, ...], b) -> bool:
    return not (a[2] <= b.left or a[0] >= b.right or a[3] <= b.bottom or a[1] >= b.top)


def _subdivision(tr, to_grid: Transformer, cell_m: float) -> int:
    """Sub-pixels per pixel side so that a sub-pixel is ≤ cell / SUB_PER_CELL in metres."""
    x, y = to_grid.transform([tr.c, tr.c + tr.a, tr.c], [tr.f, tr.f, tr.f + tr.e])
    size = max(math.hypot(x[1] - x[0], y[1] - y[0]), math.hypot(x[2] - x[0], y[2] - y[0]))
    return max(1, math.ceil(SUB_PER_CELL * size / cell_m))


def _add_pixels(out, rr, cc, data, tr, s, to_grid, grid, cover, area) -> None:
    frac = (np.arange(s) + 0.5) / s
    fr, fc = np.meshgrid(frac, frac, indexing="ij")
    pr = (rr[:, None] + fr.ravel()[None, :]).ravel()
    pc = (cc[:, None] + fc.ravel()[None, :]).ravel()
    val = np.repeat(data[rr, cc] / (s * s), s * s)
    lon = tr.c + pc * tr.a + pr * tr.b
    lat = tr.f + pc * tr.d + pr * tr.e
    x, y = to_grid.transform(lon, lat)
    rows, cols = grid.rowcol(x, y)
    keep = _inside(grid, cover, area, x, y, rows, cols)
    np.add.at(out, (rows[keep], cols[keep]), val[keep])


def points_on_grid(spec, grid: Grid, crs: str, cover: np.ndarray, area: shapely.Geometry,
                   field: str = "demand.points") -> tuple[np.ndarray, dict]:
    """Sum counted demand points inside the study area into their cells."""
    pts = read_layer(spec, field=field, crs=crs, geometry="point", required_fields=[spec.count_field])
    counts = pd.to_numeric(pts[spec.count_field], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(counts) | (counts < 0)
    if bad.any():
        first = pts[spec.count_field].iloc[int(np.flatnonzero(bad)[0])]
        raise DataError(f"{spec.path}: {int(bad.sum())} point(s) with a missing, non-numeric or negative "
                        f"`{spec.count_field}` (first: {first!r}) (scenario field `{field}.count_field`)")
    geoms = shapely.centroid(pts.geometry.to_numpy())  # a point, or the middle of a multipoint
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    rows, cols = grid.rowcol(x, y)
    keep = _inside(grid, cover, area, x, y, rows, cols)
    if not keep.any():
        raise DataError(f"{spec.path}: no demand point lies inside the study area "
                        f"(scenario fields `{field}` and `study_area`)",
                        hints=("check that both cover the same place and their CRS is right",))
    out = np.zeros(grid.shape)
    np.add.at(out, (rows[keep], cols[keep]), counts[keep])
    info = {"points": str(spec.path), "points_inside": int(keep.sum()), "points_outside": int((~keep).sum()),
            "points_total": float(counts.sum())}
    return out, info
