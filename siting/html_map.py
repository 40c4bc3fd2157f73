"""An interactive map as one self-contained HTML file (inline SVG, a few lines of script).

No tiles and no external script: it opens offline, in any browser, and a reviewer can zoom
(mouse wheel), pan (drag) and hover any cell or institution to read its numbers and rules.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from . import export
from ._report_html import round_parts

WIDTH = 1000.0
COLOURS = {"covered": "#91cf9a", "not covered": "#f5a623", "uncoverable": "#d7191c", "no radius": "#e0e0e0"}

SCRIPT = """
const svg = document.querySelector('svg'); let vb = svg.viewBox.baseVal, drag = null;
svg.addEventListener('wheel', e => { e.preventDefault(); const k = e.deltaY > 0 ? 1.2 : 1 / 1.2;
  const p = svg.createSVGPoint(); p.x = e.clientX; p.y = e.clientY;
  const q = p.matrixTransform(svg.getScreenCTM().inverse());
  vb.x = q.x - (q.x - vb.x) * k; vb.y = q.y - (q.y - vb.y) * k; vb.width *= k; vb.height *= k; });
svg.addEventListener('mousedown', e => { drag = [e.clientX, e.clientY]; });
window.addEventListener('mouseup', () => { drag = null; });
svg.addEventListener('mousemove', e => { if (!drag) return;
  const s = vb.width / svg.clientWidth; vb.x -= (e.clientX - drag[0]) * s; vb.y -= (e.clientY - drag[1]) * s;
  drag = [e.clientX, e.clientY]; });
"""


def _project(bounds: tuple[float, float, float, float]) -> tuple[float, Any]:
    x0, y0, x1, y1 = bounds
    scale = WIDTH / max(x1 - x0, 1.0)
    return (y1 - y0) * scale, lambda x, y: ((x - x0) * scale, (y1 - y) * scale)


def _path(geom: Any, to: Any) -> str:
    parts = []
    for poly in getattr(geom, "geoms", [geom]):
        for ring in [poly.exterior, *poly.interiors]:
            xy = np.asarray(ring.coords)
            px, py = to(xy[:, 0], xy[:, 1])
            parts.append("M" + " L".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True)) + " Z")
    return " ".join(parts)


def _cell_class(row: Any) -> str:
    if row.uncoverable:
        return "uncoverable"
    if row.radius_m != row.radius_m:  # NaN: the band owes no radius
        return "no radius"
    return "covered" if row.covered_after else "not covered"


def _title(*lines: str) -> str:
    return "<title>" + html.escape("\n".join(lines)) + "</title>"


def draw_html(path: Path, scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any, plan: Any) -> Path:
    """Write ``path`` (an .html file) with units, cells by coverage after the plan, and institutions."""
    layers = export.build_layers(scenario, rules, demand, sites, reach, plan)
    units, cells = layers["planning_units"], layers["demand_cells"]
    height, to = _project(tuple(shapely.bounds(shapely.union_all(units.geometry.to_numpy()))))
    body: list[str] = []
    for row in cells.itertuples():
        cls = _cell_class(row)
        x0, y0, x1, y1 = row.geometry.bounds
        (a, b), (c, d) = to(x0, y1), to(x1, y0)
        body.append(f'<rect x="{a:.1f}" y="{b:.1f}" width="{c - a:.1f}" height="{d - b:.1f}" '
                    f'fill="{COLOURS[cls]}">' + _title(
                        f"cell {row.cell_id}: {row.elderly:,.0f} elderly, {row.density_km2:,.0f}/km² ({row.band})",
                        f"owed: {'—' if row.radius_m != row.radius_m else f'{row.radius_m:,.0f} m'} ({row.rule_id})",
                        f"{cls}; nearest open institution after: "
                        + ("—" if row.dist_after_m != row.dist_after_m else f"{row.dist_after_m:,.0f} m")) + "</rect>")
    beds_rule = rules.kind_ids("beds_per_unit")
    owed = (lambda row: f"beds required {row.beds_req} [{beds_rule}]") if beds_rule else (
        lambda _row: f"no beds rule in rule set {rules.name}")
    elderly = round_parts(units["elderly"].to_numpy(dtype=float))  # as in the report's units table
    for row, n in zip(units.itertuples(), elderly, strict=True):
        body.append(f'<path d="{_path(row.geometry, to)}" fill="none" stroke="#222" stroke-width="1.2">'
                    + _title(f"{row.name} ({row.unit_id}): {n:,} elderly",
                             f"{owed(row)}; existing {row.beds_exist}; new {row.beds_new}",
                             f"deficit before {row.deficit_bef}, after {row.deficit_aft}") + "</path>")
    for name, colour, shape in (("facilities_existing", "#1f3a93", "rect"), ("facilities_new", "#8e44ad", "circle")):
        for row in layers[name].itertuples():
            px, py = to(row.geometry.x, row.geometry.y)
            label = (f"{row.name} ({row.fac_id}): {row.beds} beds" + (" (assumed)" if row.beds_assumed else "")
                     + f", {row.action}" if name == "facilities_existing"
                     else f"new institution {row.site_id}: {row.beds} beds, cost {row.cost:,.0f} CNY")
            mark = (f'<rect x="{px - 5:.1f}" y="{py - 5:.1f}" width="10" height="10"' if shape == "rect"
                    else f'<circle cx="{px:.1f}" cy="{py:.1f}" r="5"')
            body.append(f'{mark} fill="{colour}" stroke="white">' + _title(label) + f"</{shape}>")
    legend = " · ".join(f'<span style="color:{c}">■</span> {k}' for k, c in COLOURS.items())
    title = html.escape(f"{scenario.title or scenario.name} — rule set {rules.name}, {reach.mode} distance")
    doc = (f"<!DOCTYPE html><html lang='zh'><head><meta charset='utf-8'><title>{title}</title>"
           "<style>body{font-family:'Noto Sans CJK SC','Microsoft YaHei','PingFang SC','Source Han Sans SC',"
           "sans-serif;margin:1em} svg{border:1px solid #999;width:100%;height:80vh;cursor:grab}</style>"
           "</head><body>"
           f"<h2>{title}</h2><p>{legend} · <span style='color:#1f3a93'>■</span> existing · "
           "<span style='color:#8e44ad'>●</span> new. Wheel to zoom, drag to pan, hover for numbers. "
           "© OpenStreetMap contributors.</p>"
           f"<svg viewBox='0 0 {WIDTH:.0f} {height:.0f}' xmlns='http://www.w3.org/2000/svg'>"
           + "".join(body) + f"</svg><script>{SCRIPT}</script></body></html>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
