"""Build the data layers of a place from OpenStreetMap (needs internet access).

``prepare_place("杭州市西湖区", out_dir)`` downloads with osmnx what the shipped Hangzhou
case holds (see ``data/README.md`` and ``shared/data/SOURCES.md``) and writes the same file
names, layers and columns:

- ``subdistricts.gpkg`` (layer ``subdistricts``): OSM ``boundary=administrative admin_level=8``
  polygons (街道/乡镇) inside the place — the planning units and census joins;
- ``study_area.geojson`` (their union) and ``data_extent.geojson`` (study area + buffer);
- ``street_network_walk.graphml`` / ``street_network_drive.graphml`` (osmnx walk/drive
  graphs cut to the data extent; the drive graph with ``speed_kph`` and ``travel_time``);
- ``buildings.gpkg``, ``landuse.gpkg`` (the dasymetric weights of the demand);
- ``elderly_facilities.gpkg`` / ``.csv``: ``amenity=social_facility`` and nursing homes,
  classified by name and tags (``include_default`` only for elderly-care institutions).

The census table (``census2020_districts.csv``) does not come from OSM: the planner adds it.
All output is © OpenStreetMap contributors, ODbL 1.0.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import pandas as pd
from shapely.geometry.base import BaseGeometry

from ._errors import DataError

T = TypeVar("T")
CRS_OUT = "EPSG:4326"
_EMPTY = gpd.GeoDataFrame(geometry=[], crs=CRS_OUT)
SUBDISTRICT_TAGS: dict[str, bool | str | list[str]] = {"boundary": "administrative", "admin_level": "8"}
FACILITY_TAGS: dict[str, bool | str | list[str]] = {
    "amenity": ["social_facility", "nursing_home"],
    "social_facility": ["nursing_home", "assisted_living", "group_home"],
    "healthcare": "nursing_home",
}
SENIOR = {"senior", "seniors", "elderly", "old_age"}
# name keywords → (kind, confidence), checked in order (first hit wins)
NAME_KINDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("儿童",), "child_welfare", "high"),
    (("疗养院",), "sanatorium", "high"),
    (("干休所",), "retired_cadre_rest_home", "medium"),
    (("居家养老", "照料中心", "日间照料"), "community_home_care_centre", "high"),
    (("活动中心", "老年大学"), "senior_activity_centre", "high"),
    (("公司",), "care_company_office", "high"),
    (("养老院", "敬老院", "福利院", "颐养中心", "老年公寓", "护理院", "养护院", "康养中心"),
     "elderly_care_institution", "high"),
)


def prepare_place(place: str, out_dir: Path, *, buffer_m: float = 1000.0, timeout_s: float = 180.0,
                  overwrite: bool = False) -> list[Path]:
    """Download the OSM layers of ``place`` into ``out_dir``; return the files written.

    Raises ``DataError`` when there is no internet access, the place is not found, or
    ``out_dir`` already holds the files and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite=overwrite)
    with _osmnx_settings(timeout_s=timeout_s, cache_dir=out_dir / "osmnx_cache"):
        import osmnx as ox

        place_gdf = _fetch(place, "the place boundary", lambda: ox.geocode_to_gdf(place))
        place_poly = place_gdf.to_crs(CRS_OUT).union_all()
        raw_units = _fetch(place, "admin_level=8 boundaries",
                           lambda: ox.features_from_polygon(place_poly, SUBDISTRICT_TAGS), empty=_EMPTY)
        units = subdistricts_table(raw_units, place_poly)
        study = study_area_table(units, place, place_poly)
        extent = data_extent_table(study, buffer_m=buffer_m)
        ext_poly = extent.geometry.iloc[0]
        walk = _fetch(place, "the walking network", lambda: ox.graph_from_polygon(ext_poly, network_type="walk"))
        drive = _fetch(place, "the driving network",
                       lambda: ox.graph_from_polygon(ext_poly, network_type="drive"))
        drive = ox.routing.add_edge_travel_times(ox.routing.add_edge_speeds(drive))
        raw_bldg = _fetch(place, "buildings", lambda: ox.features_from_polygon(ext_poly, {"building": True}))
        raw_lu = _fetch(place, "land use", lambda: ox.features_from_polygon(ext_poly, {"landuse": True}),
                        empty=_EMPTY)
        raw_fac = _fetch(place, "social facilities",
                         lambda: ox.features_from_polygon(ext_poly, FACILITY_TAGS), empty=_EMPTY)
        out_dir.mkdir(parents=True, exist_ok=True)
        walk_path, drive_path = out_dir / "street_network_walk.graphml", out_dir / "street_network_drive.graphml"
        ox.save_graphml(walk, walk_path)
        ox.save_graphml(drive, drive_path)
    facilities = facilities_table(raw_fac, study, units)
    written = [walk_path, drive_path]
    written += _write_gpkg(units, out_dir / "subdistricts.gpkg", "subdistricts")
    written += _write_geojson(study, out_dir / "study_area.geojson")
    written += _write_geojson(extent, out_dir / "data_extent.geojson")
    written += _write_gpkg(buildings_table(raw_bldg, ext_poly), out_dir / "buildings.gpkg", "buildings")
    written += _write_gpkg(landuse_table(raw_lu), out_dir / "landuse.gpkg", "landuse")
    written += _write_gpkg(facilities, out_dir / "elderly_facilities.gpkg", "elderly_facilities")
    csv_path = out_dir / "elderly_facilities.csv"
    facilities.drop(columns="geometry").to_csv(csv_path, index=False, encoding="utf-8")
    return sorted([*written, csv_path])


# --- network access ----------------------------------------------------------------------------


@contextlib.contextmanager
def _osmnx_settings(*, timeout_s: float, cache_dir: Path) -> Iterator[None]:
    """Set osmnx's timeout and cache folder for one call, then restore them (osmnx keeps globals)."""
    import osmnx as ox

    saved = (ox.settings.requests_timeout, ox.settings.cache_folder)
    ox.settings.requests_timeout = timeout_s
    ox.settings.cache_folder = cache_dir
    try:
        yield
    finally:
        ox.settings.requests_timeout, ox.settings.cache_folder = saved


def _fetch(place: str, what: str, call: Callable[[], T], *, empty: T | None = None) -> T:
    """Run one osmnx download; turn its network and empty-answer failures into ``DataError``.

    ``empty`` is returned instead when OSM has no matching features and none is a valid answer.
    """
    import requests
    from osmnx._errors import InsufficientResponseError, ResponseStatusCodeError

    try:
        return call()
    except requests.exceptions.RequestException as exc:
        raise DataError(
            f"`siting prepare` needs internet access to download OSM data for {place!r} "
            f"({what}): could not reach {_host(exc)} ({type(exc).__name__})",
            hints=("run it on a machine with internet access, or point the scenario at existing data "
                   "($SITING_DATA, see data/README.md)",),
        ) from None
    except InsufficientResponseError as exc:
        if empty is not None:
            return empty
        raise DataError(f"OpenStreetMap has no {what} for {place!r}: {_first_line(exc)}",
                        hints=("check the place name, e.g. '西湖区, 杭州市, 浙江省, 中国'",)) from None
    except ResponseStatusCodeError as exc:
        raise DataError(f"the OSM server refused the request for {what} of {place!r}: {_first_line(exc)}",
                        hints=("wait a few minutes and run it again",)) from None
    except TypeError as exc:  # geocode_to_gdf: the place is a point, not an area
        raise DataError(f"{place!r} does not geocode to an area ({what}): {_first_line(exc)}",
                        hints=("name a district or city, not an address or a point",)) from None


def _host(exc: Any) -> str:
    """The server a failed request went to (the URL itself is long and percent-encoded)."""
    from urllib.parse import urlsplit

    url = getattr(getattr(exc, "request", None), "url", None)
    return urlsplit(url).hostname or "the OSM servers" if url else "the OSM servers"


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


def _check_out_dir(out_dir: Path, *, overwrite: bool) -> None:
    names = ("subdistricts.gpkg", "buildings.gpkg", "street_network_walk.graphml")
    present = [n for n in names if (out_dir / n).exists()]
    if present and not overwrite:
        raise DataError(f"{out_dir}: already holds {', '.join(present)}",
                        hints=("pass --overwrite, or choose an empty folder",))


# --- shaping the layers (pure, testable offline) -------------------------------------------------


def _osm_keys(raw: gpd.GeoDataFrame) -> tuple[pd.Series, pd.Series]:
    """``osm_type`` and ``osm_id`` from the (element, id) index osmnx returns."""
    idx = raw.index
    if isinstance(idx, pd.MultiIndex) and idx.nlevels == 2:
        return (pd.Series(idx.get_level_values(0), index=raw.index).astype(str),
                pd.Series(idx.get_level_values(1), index=raw.index).astype("int64"))
    return pd.Series("", index=raw.index), pd.Series(range(len(raw)), index=raw.index, dtype="int64")


def _col(raw: pd.DataFrame, key: str) -> pd.Series:
    return raw[key] if key in raw.columns else pd.Series(None, index=raw.index, dtype=object)


def _polygons(raw: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if raw.empty:
        return raw
    return raw[raw.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]


def _metric_crs(gdf: gpd.GeoDataFrame) -> Any:
    return gdf.to_crs(CRS_OUT).estimate_utm_crs()


def subdistricts_table(raw: gpd.GeoDataFrame, place_poly: BaseGeometry) -> gpd.GeoDataFrame:
    """街道/乡镇 polygons whose representative point is inside the place, SOURCES.md columns."""
    cols = ["subdistrict", "name_en", "osm_type", "osm_id", "district_current", "district_2020_census",
            "adcode_2020_census", "area_km2"]
    poly = _polygons(raw)
    if not poly.empty:
        poly = poly[(_col(poly, "admin_level").astype(str) == "8")]
        poly = poly[poly.representative_point().within(place_poly)]
    if poly.empty:
        return gpd.GeoDataFrame(columns=[*cols, "geometry"], geometry="geometry", crs=CRS_OUT)
    osm_type, osm_id = _osm_keys(poly)
    out = gpd.GeoDataFrame({
        "subdistrict": _col(poly, "name"), "name_en": _col(poly, "name:en"),
        "osm_type": osm_type, "osm_id": osm_id,
        "district_current": None, "district_2020_census": None, "adcode_2020_census": None,
    }, geometry=poly.geometry.to_crs(CRS_OUT).values, crs=CRS_OUT)
    out["area_km2"] = out.to_crs(_metric_crs(out)).area / 1e6
    return out[[*cols, "geometry"]].sort_values("osm_id").reset_index(drop=True)


def study_area_table(units: gpd.GeoDataFrame, place: str, place_poly: BaseGeometry) -> gpd.GeoDataFrame:
    """Union of the subdistricts (the place boundary itself when OSM maps none)."""
    geom = units.union_all() if not units.empty else place_poly
    out = gpd.GeoDataFrame({"name": [place], "n_subdistricts": [len(units)], "n_communities": [None]},
                           geometry=[geom], crs=CRS_OUT)
    out["area_km2"] = out.to_crs(_metric_crs(out)).area / 1e6
    return out[["name", "n_subdistricts", "n_communities", "area_km2", "geometry"]]


def data_extent_table(study: gpd.GeoDataFrame, *, buffer_m: float) -> gpd.GeoDataFrame:
    """Study area grown by ``buffer_m`` (metres): facilities and streets just outside still count."""
    metric = study.to_crs(_metric_crs(study))
    geom = metric.buffer(buffer_m).to_crs(CRS_OUT).iloc[0]
    note = f"study area + {buffer_m:g} m buffer; networks, buildings and land use are cut to it"
    return gpd.GeoDataFrame({"name": [study["name"].iloc[0]], "note": [note]}, geometry=[geom], crs=CRS_OUT)


def buildings_table(raw: gpd.GeoDataFrame, extent_poly: BaseGeometry) -> gpd.GeoDataFrame:
    """Building footprints whose representative point is in the extent (SOURCES.md columns)."""
    poly = _polygons(raw)
    poly = poly[poly.representative_point().within(extent_poly)] if not poly.empty else poly
    osm_type, osm_id = _osm_keys(poly)
    out = gpd.GeoDataFrame({
        "osm_type": osm_type, "osm_id": osm_id, "building": _col(poly, "building"),
        "levels": _col(poly, "building:levels"), "height": _col(poly, "height"),
        "name": _col(poly, "name"), "amenity": _col(poly, "amenity"),
    }, geometry=poly.geometry.values, crs=poly.crs or CRS_OUT).to_crs(CRS_OUT)
    out["footprint_m2"] = out.to_crs(_metric_crs(out)).area if len(out) else pd.Series(dtype=float)
    return _geometry_last(out)


def landuse_table(raw: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``landuse=*`` polygons with their area in m²."""
    poly = _polygons(raw)
    osm_type, osm_id = _osm_keys(poly)
    out = gpd.GeoDataFrame({"osm_type": osm_type, "osm_id": osm_id, "landuse": _col(poly, "landuse"),
                            "name": _col(poly, "name")},
                           geometry=poly.geometry.values, crs=poly.crs or CRS_OUT).to_crs(CRS_OUT)
    out["area_m2"] = out.to_crs(_metric_crs(out)).area if len(out) else pd.Series(dtype=float)
    return _geometry_last(out)


def classify_facility(name: str | None, tags: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, confidence, note) of an OSM social facility, from its name first, then its tags.

    Kinds as in SOURCES.md; only ``elderly_care_institution`` is an 养老机构 with beds.
    """
    text = name or ""
    for words, kind, confidence in NAME_KINDS:
        hit = next((w for w in words if w in text), None)
        if hit:
            return kind, confidence, f"name contains {hit!r}"
    facility = str(tags.get("social_facility") or "")
    for_whom = {s.strip() for s in str(tags.get("social_facility:for") or "").split(";")}
    if facility in {"nursing_home", "assisted_living"} or (facility == "group_home" and for_whom & SENIOR):
        return "elderly_care_institution", "medium", f"tagged social_facility={facility}"
    if tags.get("amenity") == "nursing_home" or tags.get("healthcare") == "nursing_home":
        return "elderly_care_institution", "medium", "tagged nursing_home"
    return "uncertain", "low", "neither name nor tags say elderly residential care"


def _tags(row: pd.Series) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "geometry" and not _missing(v)}


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _duplicate_nodes(fac: gpd.GeoDataFrame, osm_type: pd.Series) -> pd.Series:
    """Nodes that lie inside a mapped facility area (the same place mapped twice)."""
    areas = fac[osm_type != "node"]
    areas = areas[areas.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if areas.empty:
        return pd.Series(False, index=fac.index)
    inside = fac.geometry.apply(lambda g: bool(areas.geometry.contains(g).any()))
    return (osm_type == "node") & inside


def facilities_table(raw: gpd.GeoDataFrame, study: gpd.GeoDataFrame,
                     units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Classified facility points with the SOURCES.md columns (``include_default`` = institutions)."""
    fac = raw[raw.geometry.notna()] if not raw.empty else raw
    osm_type, osm_id = _osm_keys(fac)
    tags = [_tags(r) for _, r in fac.iterrows()]
    kinds = [classify_facility(t.get("name"), t) for t in tags]
    dup = _duplicate_nodes(fac, osm_type) if len(fac) else pd.Series(dtype=bool)
    kind = [("duplicate_node" if d else k[0]) for k, d in zip(kinds, dup, strict=True)]
    points = fac.geometry.to_crs(CRS_OUT).representative_point() if len(fac) else gpd.GeoSeries(crs=CRS_OUT)
    addr = [";".join(f"{k.removeprefix('addr:')}={v}" for k, v in t.items() if k.startswith("addr:"))
            for t in tags]
    out = gpd.GeoDataFrame({
        "osm_type": osm_type.values, "osm_id": osm_id.values, "name": [t.get("name") for t in tags],
        "kind": kind, "include_default": [k == "elderly_care_institution" for k in kind],
        "confidence": [k[1] for k in kinds], "note": [k[2] for k in kinds],
        **{c: [t.get(k) for t in tags] for c, k in (
            ("amenity", "amenity"), ("social_facility", "social_facility"),
            ("social_facility_for", "social_facility:for"), ("healthcare", "healthcare"),
            ("capacity", "capacity"), ("beds", "beds"), ("operator", "operator"))},
        "addr": addr,
    }, geometry=points.values, crs=CRS_OUT)
    return _place_facilities(out, tags, study, units)


def _place_facilities(out: gpd.GeoDataFrame, tags: list[dict[str, Any]], study: gpd.GeoDataFrame,
                      units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    metric = _metric_crs(study)
    area = study.to_crs(metric).geometry.iloc[0]
    pts = out.to_crs(metric).geometry
    out["subdistrict"] = None
    if len(out) and not units.empty:
        joined = gpd.sjoin(out[["geometry"]], units[["subdistrict", "geometry"]], how="left",
                           predicate="within")
        out["subdistrict"] = joined.groupby(level=0)["subdistrict"].first().reindex(out.index).values
    out["in_study_area"] = pts.within(area).values if len(out) else []
    out["dist_to_study_area_m"] = pts.distance(area).round(1).values if len(out) else []
    out["lon"], out["lat"] = out.geometry.x, out.geometry.y
    out["tags_json"] = [json.dumps({k: str(v) for k, v in t.items()}, ensure_ascii=False, sort_keys=True)
                        for t in tags]
    return _geometry_last(out.sort_values(["osm_type", "osm_id"]))


def _geometry_last(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns in the shipped layers' order: attributes, then geometry; a fresh 0..n index."""
    cols = [c for c in gdf.columns if c != "geometry"]
    return gdf[[*cols, "geometry"]].reset_index(drop=True)


def _write_gpkg(gdf: gpd.GeoDataFrame, path: Path, layer: str) -> list[Path]:
    gdf.to_file(path, layer=layer, driver="GPKG")
    return [path]


def _write_geojson(gdf: gpd.GeoDataFrame, path: Path) -> list[Path]:
    gdf.to_file(path, driver="GeoJSON")
    return [path]
