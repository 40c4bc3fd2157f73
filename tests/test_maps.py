"""Maps: CJK glyphs, furniture (scale bar, north arrow, titles), files, stable bytes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
import warnings
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import matplotlib
import pytest
from factories import make_small_run
from matplotlib.figure import Figure
from PIL import Image

from siting import _fonts, export, maps
from siting._errors import DataError

DPI = 60  # small PNGs keep the suite fast; the default (200) is exercised by the api


@pytest.fixture(scope="module")
def run():
    return make_small_run()


@pytest.fixture(scope="module")
def drawn(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("maps")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = maps.draw_maps(out, *run, dpi=DPI)
    return out, files, [str(w.message) for w in caught]


def _glyph_warnings(texts: list[str], *, cjk: bool) -> list[str]:
    """Render ``texts`` to PNG and PDF (a bare Figure's canvas.draw() renders nothing)."""
    fig = Figure(figsize=(4, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _fonts.cjk_rc() if cjk else contextlib.nullcontext():
            for i, t in enumerate(texts):
                fig.text(0.05, 0.9 - 0.1 * (i % 9), t)
            fig.savefig(io.BytesIO(), format="png")
            fig.savefig(io.BytesIO(), format="pdf")
    return [str(w.message) for w in caught if "Glyph" in str(w.message)]


# ---------------------------------------------------------------- fonts


def test_cjk_font_renders_chinese_without_missing_glyphs():
    texts = ["清波街道 湖滨街道 小营街道", "高密度 >3000/km² · 500 m (ZJ-R500)", "© OpenStreetMap contributors",
             "缺 36 床 short · 达标 met · 规划前/规划后 · N 北 · -12"]
    assert _glyph_warnings(texts, cjk=True) == []


def test_without_the_cjk_context_glyphs_are_missing():
    """Control: the default font has no CJK glyphs, so the test above can fail."""
    assert any("missing from font" in w for w in _glyph_warnings(["清波街道"], cjk=False))


def test_every_real_subdistrict_name_renders(hangzhou):
    names = gpd.read_file(hangzhou / "subdistricts.gpkg", layer="subdistricts")["subdistrict"].tolist()
    assert len(names) == 23
    assert _glyph_warnings(names, cjk=True) == []


def test_fonts_change_no_global_rcparams(drawn):
    assert _fonts.register_cjk_font() == "Noto Sans CJK SC"
    assert "Noto Sans CJK SC" not in matplotlib.rcParams["font.family"]
    assert matplotlib.rcParams["pdf.fonttype"] == matplotlib.rcParamsDefault["pdf.fonttype"]


def test_cjk_font_is_the_mplfonts_noto_file():
    path = _fonts.cjk_font_path()
    assert path.name == "NotoSansCJKsc-Regular.otf" and path.stat().st_size > 1_000_000


# ---------------------------------------------------------------- files


def test_draw_maps_writes_png_and_pdf(drawn):
    out, files, caught = drawn
    assert [p.name for p in files] == sorted(f"{n}.{e}" for n in maps.MAP_NAMES for e in ("pdf", "png"))
    assert not [w for w in caught if "Glyph" in w]
    with Image.open(out / "map_coverage.png") as im:
        assert im.size == (round(maps.DOUBLE_SIZE[0] * DPI), round(maps.DOUBLE_SIZE[1] * DPI))
    with Image.open(out / "map_density_bands.png") as im:
        assert im.size == (round(maps.SINGLE_SIZE[0] * DPI), round(maps.SINGLE_SIZE[1] * DPI))


def test_png_only(run, tmp_path):
    files = maps.draw_maps(tmp_path, *run, pdf=False, dpi=30)
    assert {p.suffix for p in files} == {".png"} and len(files) == 3


def test_pdf_embeds_subset_cjk_font_and_is_small(drawn):
    out, _, _ = drawn
    for name in maps.MAP_NAMES:
        pdf = (out / f"{name}.pdf").read_bytes()
        assert len(pdf) < 400_000, name  # the whole font is 16 MB; only used glyphs go in
        fonts = set(re.findall(rb"/BaseFont /(?:[A-Z]{6}\+)?([\w-]+)", pdf))
        assert b"NotoSansCJKsc-Regular" in fonts, name
        assert b"/Subtype /Type3" in pdf  # see siting._fonts: Type 42 + CFF breaks Acrobat
        assert b"/FontFile2" not in pdf


def test_bytes_are_stable(run, drawn, tmp_path):
    out, files, _ = drawn
    again = maps.draw_maps(tmp_path, *run, dpi=DPI)
    for a, b in zip(files, again, strict=True):
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest(), a.name
    assert b"CreationDate" not in (out / "map_coverage.pdf").read_bytes()


# ---------------------------------------------------------------- furniture


@pytest.mark.parametrize(("span", "want"), [(1700.0, 200.0), (5000.0, 1000.0), (9000.0, 1000.0),
                                            (12_000.0, 2000.0), (26_000.0, 5000.0), (4.0, 0.5)])
def test_nice_length(span, want):
    assert maps.nice_length(span) == want
    assert maps.nice_length(span) <= span / 5


def test_nice_length_rejects_empty_extent():
    with pytest.raises(DataError, match="map extent has zero width"):
        maps.nice_length(0.0)


def test_north_angle_gauss_kruger_and_utm():
    # EPSG:4549 has its central meridian at 120°E: grid north = true north there
    x, y = 500_000.0, 3_340_000.0
    assert abs(maps.grid_north_angle("EPSG:4549", x, y)) < 0.01
    # UTM 51N (CM 123°E) at Hangzhou, 2.85° west of the CM: true north leans east (towards the
    # central meridian) by ≈ (λ0 − λ)·sin φ ≈ 1.4°
    from pyproj import Transformer

    ux, uy = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True).transform(120.15, 30.25)
    want = (123.0 - 120.15) * math.sin(math.radians(30.25))
    assert maps.grid_north_angle("EPSG:32651", ux, uy) == pytest.approx(want, abs=0.05)


def _texts(fig: Figure) -> str:
    found = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        found += [t.get_text() for t in ax.texts] + [ax.get_title()]
    return "\n".join(found)


@pytest.mark.parametrize("maker", [maps.map_density_bands, maps.map_coverage, maps.map_bed_deficit])
def test_each_map_has_title_subtitle_attribution_scale_and_labels(run, maker):
    layers = export.build_layers(*run)
    with _fonts.cjk_rc():
        fig = maker(layers, run.scenario, run.rules, run.demand, run.reach)
    text = _texts(fig)
    assert run.scenario.title in text and "zhejiang-2021" in text
    assert "euclidean" in text and "© OpenStreetMap contributors" in text
    assert "N 北" in text and "200 m" in text  # north arrow, scale bar (small run is 1.7 km wide)
    for name in ("清波街道", "湖滨街道", "小营街道"):
        assert name in text
    colorbar = any(ax.get_label() == "colorbar" for ax in fig.axes)
    assert (maker is maps.map_bed_deficit and colorbar) or len(fig.legends) == 1


def test_network_subtitle(run):
    net = run._replace(reach=replace(run.reach, mode="network"))
    layers = export.build_layers(*net)
    with _fonts.cjk_rc():
        fig = maps.map_density_bands(layers, net.scenario, net.rules, net.demand, net.reach)
    assert "沿路网 along the OSM street network" in _texts(fig)


def test_geographic_crs_is_refused(run, tmp_path):
    cells = run.demand.cells.to_crs("EPSG:4326")
    bad = run._replace(demand=replace(run.demand, cells=cells))
    with pytest.raises(DataError, match="maps need a projected"):
        maps.draw_maps(tmp_path, *bad)
    assert not list(Path(tmp_path).glob("*.png"))


@pytest.mark.parametrize(("n", "shrinks"), [(1, False), (120, False), (2_000, True), (50_000, True)])
def test_site_markers_shrink_only_when_they_would_bury_the_map(n, shrinks):
    fig = Figure(figsize=maps.DOUBLE_SIZE)
    ax = fig.add_axes((0.015, 0.15, 0.48, 0.68))
    style = maps.scaled_marker(ax, maps.NEW_STYLE, n)
    size = style["markersize"]
    assert maps.MIN_MARKER_PT <= size <= maps.NEW_STYLE["markersize"]
    assert (size < maps.NEW_STYLE["markersize"]) == shrinks
    assert style["marker"] == maps.NEW_STYLE["marker"] and style["color"] == maps.NEW_STYLE["color"]
    if n == 50_000:
        assert size == maps.MIN_MARKER_PT


def test_a_few_sites_keep_the_style_unchanged():
    fig = Figure(figsize=maps.SINGLE_SIZE)
    ax = fig.add_axes((0.03, 0.14, 0.94, 0.74))
    assert maps.scaled_marker(ax, maps.EXISTING_STYLE, 200) == maps.EXISTING_STYLE


def _legend(fig: Figure) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def test_density_legend_counts_what_is_drawn(run):
    """An institution outside the map extent is not counted as drawn (audit: "existing institution (6)", 2 drawn)."""
    from shapely.geometry import Point

    t = run.sites.table.copy()
    t.loc[t["site_id"] == "E01", ["x", "y"]] = (520_000.0, 3_340_000.0)  # 20 km east of the study area
    t.loc[t["site_id"] == "E01", "geometry"] = Point(520_000.0, 3_340_000.0)
    far = run._replace(sites=replace(run.sites, table=t))
    with _fonts.cjk_rc():
        fig = maps.map_density_bands(export.build_layers(*far), far.scenario, far.rules, far.demand, far.reach)
    labels = _legend(fig)
    assert "现有机构 existing institution (1 shown; 1 outside the map)" in labels
    assert "新建机构 new institution (3)" in labels and "规划单元 planning unit (ZJ-UNIT)" in labels


def test_map_labels_cite_the_active_rule_set(run):
    """Rule ids come from the rule set: none of Zhejiang's under another set, and plain words when none applies."""
    from siting.rules import load_rule_set

    other = load_rule_set("dawukou-2023")  # one band without a radius, no beds rule
    cells = run.demand.cells.assign(band="all", rule_id="DWK-CENTRE", radius_m=float("nan"))
    plan = replace(run.plan, covered_before=run.plan.covered_before & False,
                   covered_after=run.plan.covered_after & False, uncoverable=run.plan.uncoverable & False)
    dwk = run._replace(rules=other, demand=replace(run.demand, cells=cells), plan=plan)
    layers = export.build_layers(*dwk)
    with _fonts.cjk_rc():
        cover = maps.map_coverage(layers, dwk.scenario, other, dwk.demand, dwk.reach)
        beds = maps.map_bed_deficit(layers, dwk.scenario, other, dwk.demand, dwk.reach)
    text = _texts(cover) + "\n".join(_legend(cover)) + _texts(beds)
    text += "\n".join(ax.get_xlabel() for ax in beds.axes)
    assert "ZJ-" not in text and "()" not in text and "100.0%" not in text and "0/0" not in text
    assert "no radius rule applies" in text and "no cell is owed a radius" in text
    assert "无半径 no radius owed (DWK-CENTRE)" in _legend(cover)
    assert "no beds rule" in text and "has no beds-per-elderly rule" in text
