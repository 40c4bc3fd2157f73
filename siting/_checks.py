"""Cross-layer checks `siting validate` runs on the data before any solving (issue 9).

Each check looks at layers already read by :func:`siting._layers.read_layer` (``frames``, keyed
by scenario field) and either raises :class:`DataError` naming the field, the file and the fix,
or returns notes. They catch, before a long run, what single-layer checks cannot: layers that do
not cover the study area, census codes the table lacks, a graph file that does not parse, and
facility points that look like GCJ-02 coordinates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely

from ._errors import DataError

# scenario fields whose layer must reach into the study area for the run to mean anything
MUST_OVERLAP = ("demand.census.units", "demand.weights.buildings", "demand.weights.landuse", "demand.points",
                "planning_units.layer", "density.zones")


def _field_path(sc: Any, field_name: str) -> Path | None:
    node: Any = sc
    for part in field_name.split("."):
        node = getattr(node, part, None)
        if node is None:
            return None
    return getattr(node, "path", None)


def check_overlap(sc: Any, frames: dict[str, gpd.GeoDataFrame]) -> None:
    """Every data layer in :data:`MUST_OVERLAP` has a feature touching the study area."""
    study = frames.get("study_area")
    if study is None:
        return
    area = shapely.union_all(study.geometry.to_numpy())
    for field_name in MUST_OVERLAP:
        gdf = frames.get(field_name)
        if gdf is None or gdf.empty:
            continue
        if len(gdf.sindex.query(area, predicate="intersects")) == 0:
            path = _field_path(sc, field_name)
            raise DataError(
                f"{path}: the study area does not overlap this layer (scenario fields `{field_name}` and "
                f"`study_area`); study area bounds {_bounds(area)}, layer bounds {_bounds(gdf.total_bounds)} "
                f"in {sc.grid.crs}",
                hints=("check that both layers cover the same place and that each file's CRS is right",),
            )


def _bounds(b: Any) -> str:
    xs = b.bounds if hasattr(b, "bounds") else tuple(b)
    return "(" + ", ".join(f"{v:.0f}" for v in xs) + ")"


def check_census_codes(sc: Any, frames: dict[str, gpd.GeoDataFrame]) -> None:
    """Every census unit inside the study area has its code exactly once in the census table."""
    from ._layers import norm_code, read_table

    c = sc.demand.census
    units, study = frames.get("demand.census.units"), frames.get("study_area")
    if c is None or units is None or study is None or sc.demand.source != "census":
        return
    table = read_table(c.table, field="demand.census.table")
    if c.code_field not in table.columns:
        raise DataError(f"{c.table}: column {c.code_field!r} missing (scenario field `demand.census.code_field`)",
                        hints=("columns: " + ", ".join(map(str, table.columns)),))
    area = shapely.union_all(study.geometry.to_numpy())
    inside = units.iloc[units.sindex.query(area, predicate="intersects")]
    wanted = sorted(set(norm_code(inside[c.unit_code_field])))
    have = norm_code(table[c.code_field]).value_counts()
    missing = [code for code in wanted if code not in have.index]
    if missing:
        raise DataError(
            f"{c.table}: census code(s) {', '.join(map(repr, missing[:5]))} of units in {c.units.path.name} "
            f"are not in column {c.code_field!r} (scenario fields `demand.census.table` and "
            f"`demand.census.unit_code_field`)",
            hints=("the units' code field and the table's code column must use the same codes",),
        )
    twice = [code for code in wanted if have.get(code, 0) > 1]
    if twice:
        raise DataError(f"{c.table}: census code {twice[0]!r} appears {int(have[twice[0]])} times "
                        f"(scenario field `demand.census.table`)", hints=("keep one row per census unit",))


def check_graph(sc: Any) -> None:
    """A network scenario's graph parses: GraphML, edge lengths, coordinates matching its CRS."""
    if sc.distance.mode != "network" or sc.distance.network is None:
        return
    from .network import load_graph

    load_graph(sc.distance.network.graph, crs=sc.grid.crs)


def gcj02_note(sc: Any, frames: dict[str, gpd.GeoDataFrame]) -> list[str]:
    """A note when existing facilities look like GCJ-02 (Mars) coordinates labelled WGS84."""
    fac, bld = frames.get("existing_facilities.layer"), frames.get("demand.weights.buildings")
    if fac is None or bld is None:
        return []
    from .sites import gcj02_suspicion

    note = gcj02_suspicion(fac.geometry, bld.geometry)
    return [note] if note else []


def data_checks(sc: Any, frames: dict[str, gpd.GeoDataFrame]) -> list[str]:
    """Run every cross-layer check (raising :class:`DataError` on the first problem); return notes."""
    check_overlap(sc, frames)
    check_census_codes(sc, frames)
    check_graph(sc)
    return gcj02_note(sc, frames)
