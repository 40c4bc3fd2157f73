"""The interactive HTML map is self-contained and carries every cell and institution."""

from __future__ import annotations

import re
from pathlib import Path

from factories import make_small_run

from siting.html_map import draw_html


def test_html_map_is_self_contained_and_complete(tmp_path: Path) -> None:
    run = make_small_run()
    path = draw_html(tmp_path / "map.html", *run)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "<script>" in text
    # no tiles, scripts or styles fetched from anywhere: the only URL is the SVG namespace
    urls = set(re.findall(r"https?://[^\s'\"<>]+", text))
    assert urls == {"http://www.w3.org/2000/svg"}
    cells = run.demand.cells
    assert text.count("<rect x=") >= len(cells)  # one rect per cell (+ existing institutions)
    assert text.count("<circle") == len(run.plan.new_sites)
    for name in run.demand.units["name"]:
        assert name in text
    assert "ZJ-BEDS" in text and "© OpenStreetMap contributors" in text
    again = draw_html(tmp_path / "again.html", *run).read_text(encoding="utf-8")
    assert again == text  # deterministic
