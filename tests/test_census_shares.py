"""Census units only partly held by the units layer: given or estimated shares (whole-area scenario)."""

from __future__ import annotations

from pathlib import Path

import pytest

from siting import api, demand

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def westlake() -> demand.DemandGrid:
    sc = api.load(REPO / "scenarios" / "hangzhou_westlake.yaml")
    return demand.build(sc, api.rules_of(sc))


def test_reference_unit_is_whole_and_others_are_scaled_not_crowded(westlake: demand.DemandGrid) -> None:
    c = westlake.census.set_index("code")
    assert c.loc["330102", "share_held"] == 1.0
    assert c.loc["330102", "elderly_inside"] == pytest.approx(86_927, rel=1e-6)
    partial = c.drop(index="330102")
    assert ((partial["share_held"] > 0) & (partial["share_held"] < 1)).all()
    assert not c["crowded"].any()
    # what is on the grid is exactly the held shares of the census counts (conservation)
    assert westlake.cells["elderly"].sum() == pytest.approx((c["count"] * c["share_held"]).sum(), rel=1e-9)
    assert any("share_reference" in n for n in westlake.notes)


def test_explicit_share_held_scales_the_count(tmp_path: Path) -> None:
    sc = api.load(REPO / "scenarios" / "hangzhou_westlake.yaml")
    census = sc.demand.census.model_copy(update={"share_reference": None, "share_held": {"330103": 0.5}})
    sc = sc.model_copy(update={"demand": sc.demand.model_copy(update={"census": census})})
    grid = demand.build(sc, api.rules_of(sc))
    c = grid.census.set_index("code")
    assert c.loc["330103", "share_held"] == 0.5
    assert c.loc["330103", "elderly_inside"] == pytest.approx(0.5 * 115_249, rel=1e-6)
    assert c.loc["330104", "share_held"] == 1.0
