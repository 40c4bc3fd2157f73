"""Helpers for the bad-input tables: scenario mutation, a tiny synthetic world, output snapshots.

``make_world(root)`` writes a small but complete data set (three 1 km² planning units in
EPSG:4549, a census table, land use, two existing institutions with bed counts, a candidate
layer and a street graph) plus ``world.yaml`` pointing to it with relative paths; ``siting run``
on it takes a few seconds, so run-level tests can corrupt one piece at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import yaml
from pyproj import Transformer
from shapely.geometry import Point, box
from typer.testing import CliRunner, Result

from siting.cli import app

CRS = "EPSG:4549"
X0, Y0 = 500_000.0, 3_340_000.0  # near 117°E, 30.2°N in CGCS2000 / 3-degree GK CM 120E
runner = CliRunner()


# ---------------------------------------------------------------- scenario dicts


def default_raw(default_scenario_path: Path) -> dict[str, Any]:
    """The default scenario as a plain dict (to mutate)."""
    return yaml.safe_load(default_scenario_path.read_text(encoding="utf-8"))


def write_yaml(folder: Path, raw: dict[str, Any] | str, name: str = "s.yaml") -> Path:
    """Write a scenario dict (or raw text) as UTF-8 YAML; return its path."""
    path = folder / name
    text = raw if isinstance(raw, str) else yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def set_key(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set ``a.b.c`` in a nested dict, creating parents."""
    node = raw
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return raw


def del_key(raw: dict[str, Any], dotted: str) -> dict[str, Any]:
    """Delete ``a.b.c`` from a nested dict."""
    node = raw
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node[k]
    del node[keys[-1]]
    return raw


def shp_without_crs(folder: Path, hangzhou: Path) -> Path:
    """Three subdistricts as a Shapefile whose .prj was deleted (a layer with no CRS)."""
    gdf = gpd.read_file(hangzhou / "subdistricts.gpkg").iloc[:3]
    shp = folder / "nocrs.shp"
    gdf[["subdistrict", "osm_id", "geometry"]].to_file(shp)
    shp.with_suffix(".prj").unlink()
    return shp


# ---------------------------------------------------------------- the synthetic world


UNITS = (("U1", "清波街道", "330102"), ("U2", "湖滨街道", "330102"), ("U3", "小营街道", "330103"))
FACILITIES = (("F1", "清波颐养院", 20, 300.0, 400.0), ("F2", "湖滨福利院", 10, 1500.0, 600.0))
CENSUS = (("330102", "上城区", 4000), ("330103", "下城区", 2500))


def world_units() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"unit_id": [u[0] for u in UNITS], "name": [u[1] for u in UNITS], "adcode": [u[2] for u in UNITS]},
        geometry=[box(X0 + i * 1000, Y0, X0 + (i + 1) * 1000, Y0 + 1000) for i in range(len(UNITS))],
        crs=CRS,
    )


def world_facilities() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"fac_id": [f[0] for f in FACILITIES], "name": [f[1] for f in FACILITIES],
         "beds": [f[2] for f in FACILITIES]},
        geometry=[Point(X0 + f[3], Y0 + f[4]) for f in FACILITIES], crs=CRS,
    )


def world_candidates() -> gpd.GeoDataFrame:
    cx, cy = np.meshgrid(np.arange(X0 + 150, X0 + 3000, 300), np.arange(Y0 + 150, Y0 + 1000, 300))
    return gpd.GeoDataFrame({"cand_id": [f"C{i:02d}" for i in range(cx.size)]},
                            geometry=gpd.points_from_xy(cx.ravel(), cy.ravel()), crs=CRS)


def world_landuse() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"landuse": ["residential", "residential", "commercial"]},
        geometry=[box(X0 + 100, Y0 + 100, X0 + 1400, Y0 + 900), box(X0 + 1600, Y0 + 100, X0 + 2900, Y0 + 900),
                  box(X0 + 1400, Y0, X0 + 1600, Y0 + 1000)],
        crs=CRS,
    )


def census_frame() -> pd.DataFrame:
    return pd.DataFrame({"adcode": [c[0] for c in CENSUS], "county": [c[1] for c in CENSUS],
                         "pop_60plus": [c[2] for c in CENSUS]})


def write_graphml(path: Path, *, spacing_m: float = 100.0, with_length: bool = True,
                  coords_crs: str = "EPSG:4326", declared_crs: str = "epsg:4326") -> Path:
    """A street lattice over the world in the osmnx GraphML layout (EPSG:4326 x/y, edge length).

    ``coords_crs`` is the CRS node x/y are written in and ``declared_crs`` the graph's ``crs``
    attribute; making them differ gives a graph whose coordinates do not match its CRS.
    """
    to_ll = Transformer.from_crs(CRS, coords_crs, always_xy=True)
    nx_, ny_ = int(3000 / spacing_m) + 1, int(1000 / spacing_m) + 1
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">',
             '<key id="d0" for="graph" attr.name="crs" attr.type="string"/>',
             '<key id="d1" for="node" attr.name="x" attr.type="string"/>',
             '<key id="d2" for="node" attr.name="y" attr.type="string"/>']
    if with_length:
        lines.append('<key id="d3" for="edge" attr.name="length" attr.type="string"/>')
    lines += ['<graph edgedefault="directed">', f'<data key="d0">{declared_crs}</data>']
    for j in range(ny_):
        for i in range(nx_):
            lon, lat = to_ll.transform(X0 + i * spacing_m, Y0 + j * spacing_m)
            lines.append(f'<node id="{j * nx_ + i}"><data key="d1">{lon:.7f}</data>'
                         f'<data key="d2">{lat:.7f}</data></node>')
    for j in range(ny_):
        for i in range(nx_):
            a = j * nx_ + i
            for b in ([a + 1] if i + 1 < nx_ else []) + ([a + nx_] if j + 1 < ny_ else []):
                for u, v in ((a, b), (b, a)):
                    length = f'<data key="d3">{spacing_m:.3f}</data>' if with_length else ""
                    lines.append(f'<edge source="{u}" target="{v}">{length}</edge>')
    lines += ["</graph>", "</graphml>"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def world_raw() -> dict[str, Any]:
    """The synthetic world's scenario (paths relative to the world folder)."""
    units = {"path": "units.gpkg", "layer": "units"}
    return {
        "version": 1,
        "name": "world",
        "title": "合成小城 · synthetic world",
        "study_area": dict(units),
        "demand": {"source": "census",
                   "census": {"table": "census.csv", "code_field": "adcode", "units": dict(units),
                              "unit_code_field": "adcode"},
                   "weights": {"landuse": {"path": "landuse.gpkg", "layer": "landuse"}}},
        "grid": {"cell_size_m": 100, "crs": CRS},
        "planning_units": {"mode": "polygons", "layer": dict(units), "id_field": "unit_id", "name_field": "name"},
        "existing_facilities": {"layer": {"path": "facilities.gpkg", "layer": "facilities"},
                                "id_field": "fac_id", "name_field": "name", "beds_field": "beds"},
        "candidates": {"mode": "layer", "layer": {"path": "candidates.gpkg", "layer": "candidates"},
                       "id_field": "cand_id"},
        "distance": {"mode": "euclidean"},
        "solver": {"name": "highs", "time_limit_s": 60},
        "outputs": {"formats": ["gpkg"], "maps": {"png": False, "pdf": False}},
    }


def make_world(root: Path, name: str = "world.yaml", raw: dict[str, Any] | None = None) -> Path:
    """Write the synthetic world's data and scenario into ``root``; return the scenario path."""
    root.mkdir(parents=True, exist_ok=True)
    world_units().to_file(root / "units.gpkg", layer="units")
    world_landuse().to_file(root / "landuse.gpkg", layer="landuse")
    world_facilities().to_file(root / "facilities.gpkg", layer="facilities")
    world_candidates().to_file(root / "candidates.gpkg", layer="candidates")
    census_frame().to_csv(root / "census.csv", index=False, encoding="utf-8")
    write_graphml(root / "streets.graphml")
    return write_yaml(root, raw if raw is not None else world_raw(), name)


# ---------------------------------------------------------------- output folders


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (folders listed with '<dir>')."""
    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def make_previous_output(folder: Path) -> dict[str, str]:
    """An earlier run's output folder with a sentinel file; returns its snapshot."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SENTINEL.txt").write_text("earlier results — must survive\n", encoding="utf-8")
    (folder / "summary.json").write_text('{"earlier": true}\n', encoding="utf-8")
    (folder / "tables").mkdir(exist_ok=True)
    (folder / "tables" / "new_sites.csv").write_text("site_id,beds\nC01,30\n", encoding="utf-8")
    return snapshot(folder)


def leftovers(parent: Path, name: str) -> list[str]:
    """Temporary or parked siblings an atomic write may leave next to ``parent/name``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# ---------------------------------------------------------------- running the CLI


def invoke(args: Sequence[str]) -> Result:
    """``siting ARGS`` in-process; stderr and stdout together in ``result.output``."""
    return runner.invoke(app, list(args))


def assert_clean_failure(result: Result, code: int, words: Sequence[str]) -> None:
    """Exit ``code``, first line ``error: …``, every word present, no traceback, no internal error."""
    out = result.output
    assert result.exit_code == code, f"exit {result.exit_code} (wanted {code}):\n{out}"
    assert "Traceback" not in out, out
    assert "internal error" not in out, out
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert errors, f"no 'error:' line in:\n{out}"
    for word in words:
        assert word in out, f"{word!r} not in:\n{out}"


def summary_numbers(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json without run-to-run noise (solver seconds)."""
    clean = {k: v for k, v in summary.items()}
    if isinstance(clean.get("solver"), dict):
        clean["solver"] = {k: v for k, v in clean["solver"].items() if k != "seconds"}
    return clean


