"""Reading the vector layers a scenario points to, with checks at the boundary.

Every layer enters through :func:`read_layer`: the file exists and is a GIS file, the layer
exists, the filter's fields exist, rows remain, a CRS is present, null geometries are dropped
and invalid ones repaired (both reported as notes), and the result is in the working CRS.
Problems raise :class:`DataError` naming the scenario field, the file and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from ._errors import DataError

log = logging.getLogger(__name__)

VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml", ".sqlite"}
TABLE_SUFFIXES = {".csv", ".txt", ".tsv"}
LONLAT_COLUMNS = (("lon", "lat"), ("lng", "lat"), ("longitude", "latitude"), ("x", "y"))


def _where_mask(df: pd.DataFrame, where: dict[str, Any], field: str, path: Path) -> np.ndarray:
    """Rows whose fields equal the given values (or are in the given lists)."""
    mask = np.ones(len(df), dtype=bool)
    for col, wanted in where.items():
        if col not in df.columns:
            raise DataError(
                f"{path}: `{field}.where` names field {col!r}, which the layer does not have",
                hints=("fields: " + ", ".join(map(str, df.columns.drop("geometry", errors="ignore"))),),
            )
        values = wanted if isinstance(wanted, list) else [wanted]
        series = df[col]
        hit = series.isin(values).to_numpy()
        if not hit.any():  # tolerate 330102 vs "330102" and True vs "True"
            as_text = series.astype(str).str.strip().str.lower()
            hit = as_text.isin([str(v).strip().lower() for v in values]).to_numpy()
        mask &= hit
    return mask


def norm_code(values: pd.Series) -> pd.Series:
    """Census codes as text: 330102, 330102.0 and ' 330102' all read '330102'."""
    return values.astype(str).str.strip().str.replace(r"\.0+$", "", regex=True)


def read_table(path: Path, *, field: str) -> pd.DataFrame:
    """Read a CSV table as text-safe columns, trying UTF-8 then GBK (common in Chinese offices)."""
    if not path.exists():
        raise DataError(f"{path}: file not found (scenario field `{field}`)",
                        hints=("check the path; relative paths start at the scenario file's folder",))
    last: Exception | None = None
    for enc in ("utf-8-sig", "gb18030"):
        try:
            df = pd.read_csv(path, encoding=enc, dtype=str, keep_default_na=False, na_values=[""])
        except UnicodeDecodeError as exc:
            last = exc
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: not a readable CSV table (scenario field `{field}`): {exc}") from None
        if enc != "utf-8-sig":
            log.warning("%s: read as GBK/GB18030; consider saving it as UTF-8", path)
            df.attrs["encoding"] = "gb18030"
        return df
    raise DataError(
        f"{path}: neither UTF-8 nor GBK text (scenario field `{field}`): {last}",
        hints=("convert it, e.g. iconv -f <encoding> -t UTF-8 in.csv > out.csv",),
    )


def _points_from_table(df: pd.DataFrame, path: Path, field: str) -> gpd.GeoDataFrame:
    lower = {c.lower(): c for c in df.columns}
    for xname, yname in LONLAT_COLUMNS:
        if xname in lower and yname in lower:
            x = pd.to_numeric(df[lower[xname]], errors="coerce")
            y = pd.to_numeric(df[lower[yname]], errors="coerce")
            crs = "EPSG:4326" if xname != "x" else None
            if crs is None:
                raise DataError(f"{path}: a CSV with x/y columns has no CRS (scenario field `{field}`)",
                                hints=("give lon/lat columns in WGS84, or convert it to a GeoPackage",))
            return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(x, y), crs=crs)
    raise DataError(
        f"{path}: is a table without coordinates, but `{field}` needs a GIS layer",
        hints=("give a GeoPackage/Shapefile/GeoJSON, or a CSV with lon and lat columns (WGS84)",),
    )


def _open(path: Path, layer: str | None, field: str) -> gpd.GeoDataFrame:
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return _points_from_table(read_table(path, field=f"{field}.path"), path, field)
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises DataSourceError & co; say what the file is not
        raise DataError(
            f"{path}: not a readable GIS file (scenario field `{field}.path`): {str(exc).splitlines()[0]}",
            hints=("expected a GeoPackage, Shapefile or GeoJSON",),
        ) from None
    if layer is not None and layer not in layers:
        raise DataError(f"{path}: has no layer {layer!r} (scenario field `{field}.layer`)",
                        hints=("layers in this file: " + ", ".join(layers),))
    if layer is None and len(layers) > 1:
        raise DataError(f"{path}: holds {len(layers)} layers; say which in `{field}.layer`",
                        hints=("layers in this file: " + ", ".join(layers),))
    try:
        return gpd.read_file(path, layer=layer or (layers[0] if layers else None), engine="pyogrio")
    except Exception as exc:
        raise DataError(f"{path}: cannot read layer {layer!r} (scenario field `{field}`): "
                        f"{str(exc).splitlines()[0]}") from None


def read_layer(
    ref: Any,
    *,
    field: str,
    crs: str,
    geometry: str | None = None,
    required_fields: Iterable[str] = (),
) -> gpd.GeoDataFrame:
    """Read a scenario :class:`~siting.scenario.LayerRef` into the working CRS, checked.

    ``field`` is the scenario key path (``"study_area"``, ``"existing_facilities.layer"``) used
    in messages; ``geometry`` ("polygon" | "point") restricts geometry types. Notes about
    repaired or dropped rows are in ``gdf.attrs["notes"]``.
    """
    path = Path(ref.path)
    if not path.exists():
        raise DataError(f"{path}: file not found (scenario field `{field}.path`)",
                        hints=("check the path; relative paths start at the scenario file's folder",))
    gdf = _open(path, getattr(ref, "layer", None), field)
    notes: list[str] = []
    missing = [f for f in required_fields if f not in gdf.columns]
    if missing:
        raise DataError(
            f"{path}: field(s) {', '.join(map(repr, missing))} missing (scenario field `{field}`)",
            hints=("fields in this layer: " + ", ".join(map(str, gdf.columns.drop("geometry"))),),
        )
    where = getattr(ref, "where", None)
    if where:
        gdf = gdf.loc[_where_mask(gdf, where, field, path)]
    if gdf.empty:
        what = "the filter `where` matched no row" if where else "the layer is empty"
        raise DataError(f"{path}: {what} (scenario field `{field}`)",
                        hints=("check the layer and the filter values",))
    if gdf.crs is None:
        raise DataError(f"{path}: layer has no CRS (scenario field `{field}`)",
                        hints=("assign one, e.g. `ogr2ogr -a_srs EPSG:4326 out.gpkg in.gpkg`",))
    null = gdf.geometry.isna() | gdf.geometry.is_empty
    if null.any():
        notes.append(f"{path.name}: dropped {int(null.sum())} row(s) without geometry ({field})")
        gdf = gdf.loc[~null]
        if gdf.empty:
            raise DataError(f"{path}: every row has an empty geometry (scenario field `{field}`)")
    gdf = _check_geometry_type(gdf, geometry, path, field)
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        notes.append(f"{path.name}: repaired {int(invalid.sum())} invalid geometr(y/ies) with "
                     f"shapely.make_valid ({field})")
        gdf = gdf.copy()
        gdf.loc[invalid, "geometry"] = shapely.make_valid(gdf.geometry[invalid].to_numpy())
    if geometry == "polygon":
        gdf = _keep_areas(gdf, path, field, notes)
    gdf = gdf.to_crs(crs).reset_index(drop=True)
    gdf.attrs["notes"] = notes
    for note in notes:
        log.warning(note)
    return gdf


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygon parts of a geometry (make_valid may return a collection with lines and points)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _keep_areas(gdf: gpd.GeoDataFrame, path: Path, field: str, notes: list[str]) -> gpd.GeoDataFrame:
    """Keep polygon parts only; drop rows without area (a flat or collapsed polygon), with a note."""
    geoms = np.array([_polygonal(g) for g in gdf.geometry.to_numpy()], dtype=object)
    flat = shapely.area(geoms) <= 0
    if flat.all():
        raise DataError(f"{path}: every polygon has zero area (scenario field `{field}`)",
                        hints=("the polygons are flat or collapsed lines; redraw them or check the file",))
    gdf = gdf.copy()
    gdf[gdf.geometry.name] = gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs)
    if flat.any():
        notes.append(f"{path.name}: dropped {int(flat.sum())} polygon(s) with zero area ({field})")
        gdf = gdf.loc[~flat]
    return gdf


def _check_geometry_type(gdf: gpd.GeoDataFrame, geometry: str | None, path: Path, field: str) -> gpd.GeoDataFrame:
    if geometry is None:
        return gdf
    types = set(gdf.geom_type.unique())
    allowed = {"polygon": {"Polygon", "MultiPolygon"}, "point": {"Point", "MultiPoint"}}[geometry]
    if geometry == "point" and types - allowed and types & {"Polygon", "MultiPolygon"}:
        # facilities mapped as areas: use a point inside each
        gdf = gdf.copy()
        gdf["geometry"] = gdf.geometry.representative_point()
        return gdf
    if not types & allowed or types - allowed - {"GeometryCollection"}:
        raise DataError(f"{path}: expected {geometry} geometries for `{field}`, found {sorted(types)}")
    return gdf


def check_overlap(a: gpd.GeoDataFrame, b_bounds: tuple[float, float, float, float], *, what: str,
                  field: str) -> None:
    """Raise if ``a`` (study area) does not intersect the bounding box of a data layer."""
    box = shapely.box(*b_bounds)
    if not a.geometry.intersects(box).any():
        raise DataError(f"the study area does not overlap {what} (scenario field `{field}`)",
                        hints=("check that both layers cover the same place and their CRS is right",))
