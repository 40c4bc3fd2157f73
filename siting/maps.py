"""Maps of a run (matplotlib, Agg): density bands, coverage before/after, bed deficit.

Three maps, each as PNG (at ``dpi``) and PDF, drawn in the working (projected, metre) CRS:

* ``map_density_bands`` — density bands (ZJ-R500 / ZJ-R1000 / ZJ-LOW …), existing and new
  institutions, and their service areas (circles in euclidean mode, reached cells in
  network mode; see :mod:`siting.export`);
* ``map_coverage`` — cells covered before vs after the plan, uncovered cells in red;
* ``map_bed_deficit`` — beds short of ZJ-BEDS per planning unit, before vs after.

Rule ids in titles and legends are the active rule set's (never a Zhejiang id under another
rule set); a rule set without a radius or beds rule gets a map that says so.

Every map has a title (scenario title and rule set), a subtitle with the distance mode,
a legend, a scale bar, a north arrow, planning-unit boundaries and labels, and the
"© OpenStreetMap contributors" attribution. Output bytes are stable: fixed figure size
and axes positions, no dates in PNG/PDF metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import geopandas as gpd
import numpy as np
import shapely
from matplotlib import patheffects
from matplotlib.collections import PolyCollection
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from pyproj import CRS, Transformer

from . import export
from ._errors import DataError
from ._fonts import cjk_rc

ATTRIBUTION = "© OpenStreetMap contributors (ODbL)"
BAND_COLOURS = ("#c0392b", "#f39c12", "#f7e9a0", "#dcdcdc")  # densest first; spare for more bands
COVER_COLOURS = {"no_radius": "#e6e6e6", "covered": "#8fd19e", "not_covered": "#f5a623",
                 "uncoverable": "#d0021b"}
EXISTING_STYLE: dict[str, Any] = {"marker": "s", "color": "#1f3a93", "markersize": 7, "markeredgecolor": "white"}
NEW_STYLE: dict[str, Any] = {"marker": "^", "color": "#8e44ad", "markersize": 9, "markeredgecolor": "white"}
CLOSED_STYLE: dict[str, Any] = {"marker": "X", "color": "#555555", "markersize": 8, "markeredgecolor": "white"}
HALO = [patheffects.withStroke(linewidth=2.5, foreground="white")]
MIN_MARKER_PT = 2.5  # smallest site marker on a crowded city-scale map
AREAS_IN_FULL = 300  # service-area outlines drawn at full weight up to this many; thinner beyond
SINGLE_SIZE = (11.0, 9.0)  # inches
DOUBLE_SIZE = (15.0, 8.6)
MAP_NAMES = ("map_density_bands", "map_coverage", "map_bed_deficit")


# ---------------------------------------------------------------- furniture


def nice_length(span_m: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^k metres) of at most a fifth of ``span_m``."""
    if not span_m > 0:
        raise DataError(f"map extent has zero width ({span_m!r} m); is the demand grid empty?")
    target = span_m / 5.0
    power = 10.0 ** math.floor(math.log10(target))
    return max(s * power for s in (1.0, 2.0, 5.0) if s * power <= target)


def _length_label(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def draw_scale_bar(ax: Any, extent: tuple[float, float, float, float]) -> float:
    """Two-segment black/white scale bar in the lower left; returns its length in metres."""
    x0, y0, x1, y1 = extent
    length = nice_length(x1 - x0)
    h = 0.008 * max(x1 - x0, y1 - y0)
    bx, by = x0 + 0.04 * (x1 - x0), y0 + 0.02 * (y1 - y0) + 1.5 * h
    ax.add_patch(Rectangle((bx - 0.1 * length, by - 1.2 * h), 1.25 * length, 5.5 * h, facecolor="white",
                           edgecolor="none", alpha=0.8, zorder=19))
    for k, colour in enumerate(("black", "white")):
        ax.add_patch(Rectangle((bx + k * length / 2, by), length / 2, h, facecolor=colour,
                               edgecolor="black", linewidth=0.8, zorder=20))
    for x, text in ((bx, "0"), (bx + length, _length_label(length))):
        ax.text(x, by + 1.6 * h, text, ha="center", va="bottom", fontsize=8, zorder=20, path_effects=HALO)
    return length


def grid_north_angle(crs: Any, x: float, y: float) -> float:
    """Angle (degrees, clockwise from map up) of true north at (x, y) of a projected CRS."""
    to_geo = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    to_map = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    lon, lat = to_geo.transform(x, y)
    nx, ny = to_map.transform(lon, min(lat + 0.01, 89.999))
    return math.degrees(math.atan2(nx - x, ny - y))


def draw_north_arrow(ax: Any, angle_deg: float) -> None:
    """A north arrow in the upper right, rotated to true north, of fixed size in points."""
    from matplotlib.transforms import offset_copy

    half = 16.0  # points
    sx, sy = half * math.sin(math.radians(angle_deg)), half * math.cos(math.radians(angle_deg))
    centre = offset_copy(ax.transAxes, fig=ax.figure, x=-22.0, y=-48.0, units="points")
    tip = offset_copy(centre, fig=ax.figure, x=sx, y=sy, units="points")
    tail = offset_copy(centre, fig=ax.figure, x=-sx, y=-sy, units="points")
    ax.annotate("", xy=(1.0, 1.0), xycoords=tip, xytext=(1.0, 1.0), textcoords=tail,
                arrowprops={"arrowstyle": "-|>,head_width=0.5,head_length=0.9", "color": "black",
                            "linewidth": 1.8}, zorder=20)
    ax.text(1.0, 1.0, "N 北", transform=offset_copy(ax.transAxes, fig=ax.figure, x=-22.0, y=-6.0,
                                                    units="points"),
            ha="center", va="top", fontsize=10, zorder=20, path_effects=HALO)


def draw_units(ax: Any, units: gpd.GeoDataFrame, *, labels: bool = True, lw: float = 1.2) -> None:
    """Planning-unit boundaries, and their names at a point inside each unit.

    Past 50 units the lines thin (by the square root of the count, to 0.4 pt) so a city's
    hundreds of units do not hide the cells they frame.
    """
    lw = max(0.4, lw * min(1.0, float(np.sqrt(50 / max(len(units), 1)))))
    units.boundary.plot(ax=ax, color="#333333", linewidth=lw, zorder=10)
    if labels:
        place_unit_labels(ax, units, [str(n) for n in units["name"]])


def place_unit_labels(ax: Any, units: gpd.GeoDataFrame, texts: list[str]) -> list[Any]:
    """Label each unit at a point inside it; larger units first, a label that would overlap
    one already placed is dropped (the layers and the report still carry every unit)."""
    size = 8.5 if len(units) <= 12 else 7
    order = np.argsort(-units.geometry.area.to_numpy(), kind="stable")
    points = units.geometry.representative_point().to_numpy()
    placed: list[Any] = []
    boxes = np.empty((len(order), 4))  # x0, y0, x1, y1 (display units) of the labels kept so far
    renderer = _renderer(ax.figure)
    for i in order:
        t = ax.text(points[i].x, points[i].y, texts[i], ha="center", va="center", fontsize=size, zorder=19,
                    color="#222222", linespacing=1.15, path_effects=HALO)
        b = t.get_window_extent(renderer)
        x0, x1, y0, y1 = min(b.x0, b.x1), max(b.x0, b.x1), min(b.y0, b.y1), max(b.y0, b.y1)
        kept = boxes[: len(placed)]  # Bbox.overlaps, against every kept box at once
        if np.any((x0 <= kept[:, 2]) & (kept[:, 0] <= x1) & (y0 <= kept[:, 3]) & (kept[:, 1] <= y1)):
            t.remove()
        else:
            boxes[len(placed)] = (x0, y0, x1, y1)
            placed.append(t)
    return placed


def _renderer(fig: Figure) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    return canvas.get_renderer()


def draw_cells(ax: Any, cells: gpd.GeoDataFrame, colours: np.ndarray, *, zorder: int = 1) -> None:
    """Cells as one PolyCollection (fast at city scale; rasterized in the PDF to keep it small)."""
    rings = shapely.get_exterior_ring(shapely.get_parts(cells.geometry.to_numpy()))
    parts_idx = shapely.get_parts(cells.geometry.to_numpy(), return_index=True)[1]
    verts = [shapely.get_coordinates(r) for r in rings]
    coll = PolyCollection(verts, facecolors=np.asarray(colours)[parts_idx], edgecolors="none",
                          zorder=zorder, rasterized=True)
    ax.add_collection(coll)


def _map_extent(demand: Any, pad: float = 0.04) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = np.asarray(demand.units.total_bounds, dtype=float)
    cx0, cy0, cx1, cy1 = np.asarray(demand.cells.total_bounds, dtype=float) if len(demand.cells) else (
        x0, y0, x1, y1)
    x0, y0, x1, y1 = min(x0, cx0), min(y0, cy0), max(x1, cx1), max(y1, cy1)
    dx, dy = (x1 - x0) * pad, (y1 - y0) * pad
    return x0 - dx, y0 - dy, x1 + dx, y1 + dy


def _frame(ax: Any, extent: tuple[float, float, float, float], crs: Any) -> None:
    x0, y0, x1, y1 = extent
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("white")
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.apply_aspect()  # final axes box now, so label overlap checks measure the real layout
    draw_scale_bar(ax, extent)
    draw_north_arrow(ax, grid_north_angle(crs, (x0 + x1) / 2, (y0 + y1) / 2))


def _mode_text(scenario: Any, reach: Any) -> str:
    if reach.mode == "network":
        net = getattr(scenario.distance, "network", None)
        kind = {"walk": "步行 walk", "drive": "车行 drive"}.get(getattr(net, "kind", ""), "")
        return f"距离 distance: 沿路网 along the OSM street network ({kind})"
    return "距离 distance: 直线 straight-line (euclidean)"


def _titles(fig: Figure, what: str, scenario: Any, rules: Any, reach: Any, crs: Any) -> None:
    head = scenario.title or scenario.name
    fig.text(0.5, 0.975, f"{what}\n{head} · 规则 rule set {rules.name}", ha="center", va="top",
             fontsize=13, linespacing=1.5)
    epsg = CRS.from_user_input(crs).to_epsg()
    fig.text(0.5, 0.897, f"{_mode_text(scenario, reach)} · {rules.title_zh} · CRS EPSG:{epsg}",
             ha="center", va="top", fontsize=9.5, color="#444444")
    fig.text(0.99, 0.008, ATTRIBUTION, ha="right", va="bottom", fontsize=8, color="#444444")


def _site_xy(layer: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    return layer.geometry.x.to_numpy(), layer.geometry.y.to_numpy()


def _plot_points(ax: Any, layer: gpd.GeoDataFrame, style: dict[str, Any], label: str) -> Line2D:
    x, y = _site_xy(layer)
    (line,) = ax.plot(x, y, linestyle="none", zorder=18, label=label, **scaled_marker(ax, style, len(layer)))
    return line


def scaled_marker(ax: Any, style: dict[str, Any], n: int) -> dict[str, Any]:
    """``style`` with markers shrunk when ``n`` points would bury the map under them.

    City-scale plans open thousands of sites: the marker is at most half the mean spacing of
    ``n`` points spread over the axes (in points), never below MIN_MARKER_PT; a few sites keep the
    legend's size. The white edge thins with it so small markers keep their colour.
    """
    box = ax.get_position()
    w_in, h_in = box.width * ax.figure.get_figwidth(), box.height * ax.figure.get_figheight()
    spacing_pt = 72.0 * float(np.sqrt(w_in * h_in / max(n, 1)))
    size = float(np.clip(0.5 * spacing_pt, MIN_MARKER_PT, style["markersize"]))
    if size >= style["markersize"]:
        return dict(style)  # a few sites: drawn exactly as the legend shows them
    return {**style, "markersize": size, "markeredgewidth": min(1.0, 0.12 * size)}


# ---------------------------------------------------------------- the three maps


def _band_label(band: Any, speed_kmh: float) -> str:
    sign = "≥" if band.lower_inclusive else ">"
    dens = "其余 rest" if band.lower_km2 is None else f"{sign}{band.lower_km2:g}/km²"
    radius = band.radius_at(speed_kmh)
    reach = f"{radius:g} m" if radius is not None else "无半径 no radius"
    return f"{band.label_zh} {band.name} {dens} · {reach} ({band.rule_id})"


def map_density_bands(layers: dict[str, gpd.GeoDataFrame], scenario: Any, rules: Any, demand: Any,
                      reach: Any) -> Figure:
    """Map (a): density bands, existing and new institutions, their service areas."""
    fig = Figure(figsize=SINGLE_SIZE)
    ax = fig.add_axes((0.03, 0.14, 0.94, 0.74))
    extent = _map_extent(demand)
    speed = scenario.speed_kmh()
    names = [b.name for b in rules.bands]
    colour_of = {n: BAND_COLOURS[min(i, len(BAND_COLOURS) - 1)] for i, n in enumerate(names)}
    cells = layers["demand_cells"]
    draw_cells(ax, cells, np.array([colour_of.get(b, "#ffffff") for b in cells["band"]]))
    handles: list[Any] = [Patch(facecolor=colour_of[b.name], edgecolor="none", label=_band_label(b, speed))
                          for b in rules.bands]
    areas = layers["service_areas"]
    styles: tuple[Literal["-", "--", ":", "-."], ...] = ("-", "--", ":", "-.")
    for i, (name, radius, _rule) in enumerate(export._radius_bands(rules, speed)):
        sub = areas[areas["band"] == name]
        if len(sub):  # thousands of circles at city scale: thinner and lighter so the bands show
            crowd = min(1.0, float(np.sqrt(AREAS_IN_FULL / len(areas))))
            sub.boundary.plot(ax=ax, color="#1f3a93", linewidth=max(0.2, 0.8 * crowd), alpha=max(0.35, crowd),
                              linestyle=styles[i % 4], zorder=12)
        kind = "圆 circle" if reach.mode != "network" else "可达网格 cells reached"
        handles.append(Line2D([], [], color="#1f3a93", linewidth=0.8, linestyle=styles[i % 4],
                              label=f"服务范围 service area {radius:g} m ({kind})"))
    draw_units(ax, demand.units, labels=False)
    for key, style, what in (("facilities_existing", EXISTING_STYLE, "现有机构 existing institution"),
                             ("facilities_new", NEW_STYLE, "新建机构 new institution")):
        _plot_points(ax, layers[key], style, "")
        handles.append(Line2D([], [], linestyle="none", label=f"{what} ({_shown_count(layers[key], extent)})",
                              **style))
    handles.append(Line2D([], [], color="#333333", linewidth=1.2,
                          label=f"规划单元 planning unit{_ids(rules, 'unit_size')}"))
    _frame(ax, extent, demand.cells.crs)
    place_unit_labels(ax, demand.units, [str(n) for n in demand.units["name"]])
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.025), ncol=2, fontsize=8.5,
               frameon=False, title="老年人口密度分区 density band (elderly/km²) · 服务半径 owed radius",
               title_fontsize=9)
    _titles(fig, "老年人口密度分区与养老机构 · Density bands and institutions", scenario, rules, reach,
            demand.cells.crs)
    return fig


def _cover_class(cells: gpd.GeoDataFrame, covered: np.ndarray) -> np.ndarray:
    out = np.where(cells["radius_m"].isna(), "no_radius", "not_covered").astype(object)
    out[covered] = "covered"
    out[cells["uncoverable"].to_numpy()] = "uncoverable"
    return out


def _cover_stats(cells: gpd.GeoDataFrame, covered: np.ndarray) -> str:
    """"12/918 格 cells · 3.7% of owed elderly"; plainly none when no cell is owed a radius."""
    owed = cells["radius_m"].notna().to_numpy()
    elderly = cells["elderly"].to_numpy()
    total = elderly[owed].sum()
    if not owed.any() or total <= 0:
        return "无服务半径要求 no cell is owed a radius"
    share = 100.0 * elderly[owed & covered].sum() / total
    return f"{int((owed & covered).sum())}/{int(owed.sum())} 格 cells · {share:.1f}% 老年人 of owed elderly"


def _shown_count(layer: gpd.GeoDataFrame, extent: tuple[float, float, float, float]) -> str:
    """"6", or "2 shown; 4 outside the map" when some points fall outside the map extent."""
    x, y = _site_xy(layer)
    x0, y0, x1, y1 = extent
    inside = int(((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)).sum())
    return str(len(layer)) if inside == len(layer) else f"{inside} shown; {len(layer) - inside} outside the map"


def _ids(rules: Any, kind: str) -> str:
    """" (ZJ-UNIT)": the rule set's rule ids of ``kind`` for a label, "" when it has none."""
    ids = rules.kind_ids(kind)
    return f" ({ids})" if ids else ""


def map_coverage(layers: dict[str, gpd.GeoDataFrame], scenario: Any, rules: Any, demand: Any,
                 reach: Any) -> Figure:
    """Map (b): coverage before vs after the plan (two panels); uncovered cells in red/orange."""
    fig = Figure(figsize=DOUBLE_SIZE)
    cells = layers["demand_cells"]
    extent = _map_extent(demand)
    ex, new = layers["facilities_existing"], layers["facilities_new"]
    owed = rules.radius_ids(scenario.speed_kmh())
    free = rules.radius_ids(scenario.speed_kmh(), owed=False)
    panels = (("规划前 before", "covered_before", ex, None), ("规划后 after", "covered_after",
                                                             ex[ex["action"] != "closed"], new))
    for k, (label, column, exist, built) in enumerate(panels):
        ax = fig.add_axes((0.015 + k * 0.495, 0.15, 0.48, 0.68))
        covered = cells[column].to_numpy()
        classes = _cover_class(cells, covered)
        draw_cells(ax, cells, np.array([COVER_COLOURS[c] for c in classes]))
        draw_units(ax, demand.units, labels=False)
        _plot_points(ax, exist, EXISTING_STYLE, "")
        if built is not None:
            _plot_points(ax, built, NEW_STYLE, "")
            _plot_points(ax, ex[ex["action"] == "closed"], CLOSED_STYLE, "")
        _frame(ax, extent, demand.cells.crs)
        place_unit_labels(ax, demand.units, [str(n) for n in demand.units["name"]])
        ax.set_title(f"{label}: {_cover_stats(cells, covered)}", fontsize=11)
    handles = [
        Patch(facecolor=COVER_COLOURS["covered"], label="已覆盖 covered (institution within the owed radius)"),
        Patch(facecolor=COVER_COLOURS["not_covered"], label="未覆盖 not covered"),
        Patch(facecolor=COVER_COLOURS["uncoverable"], label="无法覆盖 uncoverable (no site within radius)"),
        Patch(facecolor=COVER_COLOURS["no_radius"], label="无半径 no radius owed" + (f" ({free})" if free else "")),
        Line2D([], [], linestyle="none", label="现有机构 existing institution", **EXISTING_STYLE),
        Line2D([], [], linestyle="none", label="新建机构 new institution", **NEW_STYLE),
        Line2D([], [], linestyle="none", label="关闭 closed", **CLOSED_STYLE),
        Line2D([], [], color="#333333", linewidth=1.2, label="规划单元 planning unit"),
    ]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.025), ncol=4, fontsize=8.5,
               frameon=False)
    what = f"({owed})" if owed else f"— 规则集 {rules.name} 无服务半径规则 no radius rule applies"
    _titles(fig, f"服务半径覆盖 · Coverage before vs after {what}", scenario, rules, reach, demand.cells.crs)
    return fig


def map_bed_deficit(layers: dict[str, gpd.GeoDataFrame], scenario: Any, rules: Any, demand: Any,
                    reach: Any) -> Figure:
    """Map (c): beds short of the beds rule (ZJ-BEDS) per planning unit, before vs after (shared colour scale).

    A rule set without a beds-per-elderly rule owes no beds: the map says so instead of "met".
    """
    fig = Figure(figsize=DOUBLE_SIZE)
    units = layers["planning_units"]
    beds_rule = rules.kind_ids("beds_per_unit")
    ok = "达标 met" if beds_rule else "无床位要求 none owed"
    extent = _map_extent(demand)
    top = max(1, int(units[["deficit_bef", "deficit_aft"]].to_numpy().max(initial=0)))
    bounds = _deficit_bounds(top)
    cmap = ListedColormap(cast("list[str | tuple[float, float, float, float]]",
                               ["#f2f2f2", *[_reds(i, len(bounds) - 2) for i in range(len(bounds) - 2)]]))
    norm = BoundaryNorm(bounds, cmap.N)
    for k, (label, column) in enumerate((("规划前 before", "deficit_bef"), ("规划后 after", "deficit_aft"))):
        ax = fig.add_axes((0.015 + k * 0.495, 0.17, 0.48, 0.66))
        units.plot(ax=ax, column=column, cmap=cmap, norm=norm, edgecolor="#333333", linewidth=1.2)
        _frame(ax, extent, demand.cells.crs)
        texts = [f"{n}\n缺 {int(v)} 床 short" if v > 0 else f"{n}\n{ok}"
                 for n, v in zip(units["name"], units[column], strict=True)]
        place_unit_labels(ax, units, texts)
        ax.set_title(f"{label}: 缺口合计 total short {int(units[column].sum())} 床 beds", fontsize=11)
    cax = fig.add_axes((0.3, 0.085, 0.4, 0.025), label="colorbar")
    sm = _scalar_mappable(cmap, norm)
    bar = fig.colorbar(sm, cax=cax, orientation="horizontal", spacing="uniform")
    ratio = rules.param("beds_per_unit", "beds_per_10k")
    bar.set_label(f"床位缺口 beds short of {beds_rule} ({ratio:g} beds per 10,000 elderly)" if beds_rule else
                  f"规则集 rule set {rules.name} has no beds-per-elderly rule: no unit owes beds", fontsize=9)
    bar.set_ticks([0.25, *bounds[2:]])
    bar.set_ticklabels([f"0 {ok}", *[f"{b:.0f}" for b in bounds[2:-1]], f"{top}"])
    bar.ax.tick_params(labelsize=8)
    what = f"({beds_rule})" if beds_rule else f"— 规则集 {rules.name} 无床位规则 no beds rule"
    _titles(fig, f"规划单元床位缺口 · Bed deficit per planning unit {what}", scenario, rules, reach,
            demand.cells.crs)
    return fig


def _deficit_bounds(top: int) -> list[float]:
    """Class breaks: 0 (met) then round steps up to ``top``."""
    step = nice_length(float(top)) if top >= 5 else 1.0
    edges = [0.0, 0.5]
    value = step
    while value < top:
        edges.append(value)
        value += step
    edges.append(max(float(top), edges[-1] + 1.0) + 0.5)
    return edges


def _reds(i: int, n: int) -> tuple[float, float, float, float]:
    from matplotlib import colormaps

    return colormaps["Reds"](0.25 + 0.7 * (i / max(n - 1, 1)))


def _scalar_mappable(cmap: Any, norm: Any) -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


# ---------------------------------------------------------------- saving


def _save(fig: Figure, stem: Path, *, png: bool, pdf: bool, dpi: int) -> list[Path]:
    """Write PNG and/or PDF with no dates in the metadata (stable bytes)."""
    out = []
    if png:
        path = stem.with_suffix(".png")
        fig.savefig(path, dpi=dpi, metadata={"Software": None})
        out.append(path)
    if pdf:
        path = stem.with_suffix(".pdf")
        fig.savefig(path, dpi=dpi, metadata={"CreationDate": None, "ModDate": None, "Creator": "siting",
                                             "Producer": None})
        out.append(path)
    return out


def draw_maps(out_dir: Path, scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, plan: Any,
              *, png: bool = True, pdf: bool = True, dpi: int = 200) -> list[Path]:
    """Draw the three maps into ``out_dir``; return the files written (sorted)."""
    if demand.cells.crs is None or not CRS.from_user_input(demand.cells.crs).is_projected:
        raise DataError(f"maps need a projected (metre) CRS; the demand grid has {demand.cells.crs!r}",
                        hints=("set `grid.crs` in the scenario, e.g. EPSG:4549",))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layers = export.build_layers(scenario, rules, demand, sites, reach, plan)
    makers: dict[str, Callable[..., Figure]] = {
        "map_density_bands": map_density_bands, "map_coverage": map_coverage,
        "map_bed_deficit": map_bed_deficit,
    }
    written: list[Path] = []
    with cjk_rc():
        for name in MAP_NAMES:
            fig = makers[name](layers, scenario, rules, demand, reach)
            written += _save(fig, out_dir / name, png=png, pdf=pdf, dpi=dpi)
        curve = getattr(plan, "curve", None)
        if curve is not None and len(curve):
            written += _save(chart_coverage_curve(curve, scenario, rules, reach), out_dir / "chart_coverage_curve",
                             png=png, pdf=pdf, dpi=dpi)
    return sorted(written)


def chart_coverage_curve(curve: Any, scenario: Any, rules: Any, reach: Any) -> Figure:
    """Covered elderly (share of those owed a radius) and new beds against the limit, one exact solve a point."""
    by_sites = scenario.objective.n_sites is not None and scenario.objective.budget is None
    ok = curve[curve["status"].isin(["optimal", "time_limit"])]
    x = ok["limit"].to_numpy(dtype=float) / (1.0 if by_sites else 1e6)
    fig = Figure(figsize=(8, 5.2))
    ax = fig.add_axes((0.1, 0.14, 0.78, 0.68))
    ax.plot(x, 100 * ok["covered_share"].to_numpy(dtype=float), "o-", color="#1a9850",
            label=f"覆盖率 covered share ({rules.radius_ids(scenario.speed_kmh())})")
    ax.set_ylim(0, 100)
    ax.set_ylabel("覆盖老年人比例 elderly covered within their radius (%)")
    ax.set_xlabel("新建机构数 new sites allowed" if by_sites else "预算 budget (百万元 million CNY)")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.bar(x, ok["new_beds"].to_numpy(dtype=float), width=0.35 * (np.ptp(x) / max(len(x), 1) or 1),
            color="#4575b4", alpha=0.35, label="新增床位 new beds")
    ax2.set_ylabel("新增床位 new beds")
    ax.set_zorder(ax2.get_zorder() + 1)  # the coverage line over the bed bars
    ax.patch.set_visible(False)
    for xi, row in zip(x, ok.itertuples(), strict=True):
        ax.annotate(f"{row.covered_share:.0%}", (xi, 100 * row.covered_share), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, cast("list[str]", [h.get_label() for h in handles]), loc="lower right", fontsize=8)
    fig.suptitle(f"覆盖曲线 · Coverage curve — {scenario.title or scenario.name}", fontsize=11)
    fig.text(0.5, 0.9, f"rule set {rules.name} · {_mode_text(scenario, reach)} · each point solved exactly",
             ha="center", fontsize=8, color="0.3")
    return fig
