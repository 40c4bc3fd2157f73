"""The commented scenario template written by ``siting init NAME``."""

from __future__ import annotations

TEMPLATE = """\
# yaml-language-server: $schema=https://siting.example/scenario.schema.v1.json
# Scenario {name!r} for siting. Every key is explained; delete what you do not need.
# Paths are relative to this file; ${{VAR}} and ~ expand. ${{SITING_DATA}} is the data root
# ($SITING_DATA, else a ../shared/data folder next to the checkout).
# Check it with:   siting validate {name}.yaml        Run it with:   siting run {name}.yaml
version: 1                      # schema version of this file
name: {name}                    # short id: outputs go to out/{name}/
title: {name}                   # shown on maps and reports (Chinese is fine)

study_area:                     # polygons whose union is the planned area
  path: ${{SITING_DATA}}/hangzhou_westlake/subdistricts.gpkg
  layer: subdistricts
  where: {{district_2020_census: 上城区}}   # keep only matching rows (optional)

demand:                         # where the resident elderly (常住老年人) are
  source: census                # census | raster | points
  census:
    table: ${{SITING_DATA}}/hangzhou_westlake/census2020_districts.csv
    code_field: adcode
    age: "60+"                  # 60+ (ZJ rules) or 65+
    units:                      # polygons carrying the census code of their unit
      path: ${{SITING_DATA}}/hangzhou_westlake/subdistricts.gpkg
      layer: subdistricts
    unit_code_field: adcode_2020_census
  weights:                      # dasymetric weights: residential buildings, else residential land
    buildings:
      path: ${{SITING_DATA}}/hangzhou_westlake/buildings.gpkg
      layer: buildings
    landuse:
      path: ${{SITING_DATA}}/hangzhou_westlake/landuse.gpkg
      layer: landuse
  # raster: {{path: pop60plus.tif}}           # with source: raster
  # points: {{path: points.gpkg, count_field: elderly}}   # with source: points

grid:
  cell_size_m: 100              # cell side (m); no larger than the smallest owed radius
  crs: EPSG:4549                # projected working CRS (CGCS2000 / GK CM 120E for Hangzhou)

density:                        # elderly per km² of land, which decides each cell's band
  method: kernel                # kernel (within radius_m) | zone (per polygon in `zones`)
  radius_m: 500

planning_units:                 # ZJ-UNIT: units that must each hold enough beds (ZJ-BEDS)
  mode: polygons                # polygons | auto (contiguous units of ~10,000 elderly)
  layer:
    path: ${{SITING_DATA}}/hangzhou_westlake/subdistricts.gpkg
    layer: subdistricts
    where: {{district_2020_census: 上城区}}
  id_field: osm_id
  name_field: subdistrict

existing_facilities:            # institutions today (omit `layer` for a green field)
  layer:
    path: ${{SITING_DATA}}/hangzhou_westlake/elderly_facilities.gpkg
    where: {{include_default: true}}
  id_field: osm_id
  name_field: name
  # beds_field: beds            # a field with bed counts; empty values use default_beds
  default_beds: 100             # ASSUMED where unknown — listed first in the report
  allow_expand: true
  allow_close: false
  max_expansion_modules: 2

candidates:                     # where new institutions may go
  mode: generate                # generate | layer
  generate:
    spacing_m: 200
    landuse_values: [residential, commercial, retail]
  # layer: {{path: candidates.gpkg}}   # with mode: layer
  # id_field: id

distance:                       # straight-line or along streets; the report says which
  mode: euclidean               # euclidean | network
  # network:
  #   graph: ${{SITING_DATA}}/hangzhou_westlake/street_network_walk.graphml
  #   kind: walk
  #   speed_kmh: 4.5            # for walking-time rules (NX-15MIN)
  #   snap_limit_m: 300

rules:
  set: zhejiang-2021            # `siting rules` lists the presets
  overrides: []                 # e.g. - {{rule: ZJ-R500, set: {{radius_m: 600}}, reason: "…"}}

objective:
  kind: min_cost                # min_cost (meet every rule) | max_coverage (needs budget or n_sites)
  # budget: 50000000
  # n_sites: 10
  # coverage_curve: [10000000, 20000000, 40000000]

costs:                          # CNY; ASSUMED planning figures unless you have better ones
  site: 3000000
  bed: 120000
  expansion_fixed: 500000
  expansion_bed: 100000

modules:
  sizes: [30, 60, 100, 150, 200]   # beds of a new institution (CX-EMBED: at least 30)
  expansion_beds: 30

solver:
  name: highs                   # highs | cbc
  time_limit_s: 300
  mip_gap: 0.0
  threads: 2
  seed: 0

outputs:
  # dir: out/{name}
  formats: [gpkg, shp, geojson]
  crs: EPSG:4549                # export CRS (GeoJSON is always EPSG:4326)
  maps: {{png: true, pdf: true, dpi: 200}}
"""


def render_template(name: str) -> str:
    """A commented scenario for ``name`` that validates against the schema."""
    import re

    from ._errors import ScenarioError

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ScenarioError(f"scenario name {name!r}: use letters, digits, '_', '-', '.' only",
                            hints=("the name becomes the output folder",))
    return TEMPLATE.format(name=name)
