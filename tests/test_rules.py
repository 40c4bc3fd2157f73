"""Rule presets as data: every standards id once, every quote found in its seed, bands, overrides."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from siting._errors import RuleError
from siting.rules import (
    KINDS,
    Band,
    RuleSet,
    _merge_rules,
    available_rule_sets,
    format_rules,
    load_rule_set,
)
from siting.scenario import RuleOverride

PRESETS = ["zhejiang-2021", "cixi-2024", "weihai-2020", "ningxia-2025", "dawukou-2023"]
PREFIX = {"ZJ": "zhejiang-2021", "CX": "cixi-2024", "WH": "weihai-2020", "NX": "ningxia-2025",
          "DWK": "dawukou-2023"}
ID_RE = re.compile(r"^[A-Z]+-[A-Z0-9-]+$")


@pytest.fixture(scope="module")
def shared_dir(data_dir: Path) -> Path:
    """``shared/`` (the data root's parent) holds ``standards/`` and ``seeds/``."""
    shared = data_dir.parent
    if not (shared / "standards" / "README.md").is_file():
        pytest.skip(f"no standards digest next to the data root {data_dir}")
    return shared


@pytest.fixture(scope="module")
def standard_ids(shared_dir: Path) -> list[str]:
    """Rule ids from the first column of the tables in the standards digest."""
    ids = []
    for line in (shared_dir / "standards" / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and ID_RE.match(cells[0]):
            ids.append(cells[0])
    assert len(ids) >= 30, ids  # the digest has 36 rows; a parse failure must not pass silently
    return ids


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_all_presets_ship() -> None:
    assert sorted(PRESETS) == available_rule_sets()


def test_every_standards_id_defined_exactly_once(standard_ids: list[str]) -> None:
    own = Counter(r.id for name in PRESETS for r in load_rule_set(name).own_rules())
    assert Counter(standard_ids) == Counter(set(standard_ids))  # digest itself has no duplicates
    assert sorted(own) == sorted(standard_ids)
    assert set(own.values()) == {1}


def test_each_id_lives_in_its_jurisdictions_preset() -> None:
    for name in PRESETS:
        for rule in load_rule_set(name).own_rules():
            assert PREFIX[rule.id.split("-")[0]] == name, rule.id
            assert rule.defined_in == name


@pytest.mark.parametrize("name", PRESETS)
def test_quotes_occur_in_their_seed(name: str, shared_dir: Path) -> None:
    rs = load_rule_set(name)
    seeds = shared_dir / "seeds"
    assert (seeds / rs.source).is_file()
    for rule in rs.own_rules():
        assert rule.source == rs.source, rule.id  # each preset quotes its own document
        text = _norm((seeds / rule.source).read_text(encoding="utf-8"))
        parts = [p for p in _norm(rule.quote_zh).split("……") if p]
        assert parts, rule.id
        for part in parts:
            assert part in text, f"{rule.id}: {part!r} not in {rule.source}"


def test_quote_check_would_catch_a_changed_number(shared_dir: Path) -> None:
    text = _norm((shared_dir / "seeds" / "004_6826ce07d37866fe.txt").read_text(encoding="utf-8"))
    quote = _norm(load_rule_set("zhejiang-2021").rule("ZJ-BEDS").quote_zh)
    assert quote in text
    assert quote.replace("300", "350") not in text


@pytest.mark.parametrize("name", PRESETS)
def test_statuses_kinds_and_reasons(name: str) -> None:
    rs = load_rule_set(name)
    for rule in rs.rules:
        assert rule.status in {"enforced", "reported", "out_of_scope"}
        assert rule.kind in KINDS, rule.id
        if rule.status != "enforced":
            assert rule.reason, f"{rule.id}: {rule.status} without a reason"
        assert rule.title and rule.title_zh and rule.section


def test_status_decisions() -> None:
    zj = load_rule_set("zhejiang-2021")
    enforced = {r.id for r in zj.rules if r.status == "enforced"}
    assert enforced == {"ZJ-UNIT", "ZJ-BEDS", "ZJ-R500", "ZJ-R1000", "ZJ-NURSE"}
    assert zj.param("beds_per_unit", "beds_per_10k") == 300
    assert zj.param("unit_size", "elderly_per_unit") == 10000
    assert [r.params["share"] for r in zj.by_kind("nursing_share", enforced_only=True)] == [0.58]
    assert zj.by_kind("dementia_beds", enforced_only=True) == []
    for rid in ("ZJ-SOCWORK", "ZJ-CAREGIVER", "ZJ-PLAN"):
        assert zj.rule(rid).status == "out_of_scope"
    assert load_rule_set("cixi-2024").rule("CX-STAFF").status == "out_of_scope"
    assert load_rule_set("weihai-2020").rule("WH-CENTRE").status == "enforced"
    dwk = load_rule_set("dawukou-2023").rule("DWK-DISABLED")
    assert (dwk.status, dwk.kind, dwk.params) == ("enforced", "min_institutions", {"min_institutions": 1})


def _band_by_hand(density: float) -> str:
    """Zhejiang bands as the plan words them: > 3000 high, 1000–3000 (inclusive) medium, else low."""
    if density > 3000:
        return "high"
    if density >= 1000:
        return "medium"
    return "low"


@pytest.mark.parametrize("name", ["zhejiang-2021", "cixi-2024"])
def test_band_index_zhejiang_edges(name: str) -> None:
    rs = load_rule_set(name)
    rng = np.random.default_rng(7)
    density = np.concatenate([[0, 999.99, 1000, 1000.01, 2999.9, 3000, 3000.01, 1e6],
                              rng.uniform(0, 6000, 500)])
    got = [rs.bands[i].name for i in rs.band_index(density)]
    assert got == [_band_by_hand(d) for d in density]
    assert [rs.bands[i].rule_id for i in rs.band_index(np.array([3500.0, 3000.0, 10.0]))] == \
        ["ZJ-R500", "ZJ-R1000", "ZJ-LOW"]


@pytest.mark.parametrize(("name", "rule_id"), [("weihai-2020", "WH-CENTRE"), ("ningxia-2025", "NX-15MIN"),
                                               ("dawukou-2023", "DWK-CENTRE")])
def test_single_band_presets(name: str, rule_id: str) -> None:
    rs = load_rule_set(name)
    idx = rs.band_index(np.array([0.0, 50.0, 3000.0, 1e5]))
    assert idx.tolist() == [0, 0, 0, 0]
    assert rs.bands[0].rule_id == rule_id
    assert rs.rule(rule_id).id == rule_id


def test_ningxia_band_is_a_walking_time() -> None:
    band = load_rule_set("ningxia-2025").bands[0]
    assert band.radius_m is None and band.radius_min == 15
    assert band.radius_at(4.5) == pytest.approx(1125.0)
    assert band.radius_at(3.6) == pytest.approx(900.0)
    for name in ("weihai-2020", "dawukou-2023"):
        assert load_rule_set(name).bands[0].radius_at(4.5) is None


def test_cixi_extends_zhejiang() -> None:
    zj, cx = load_rule_set("zhejiang-2021"), load_rule_set("cixi-2024")
    assert cx.extends == "zhejiang-2021"
    assert cx.bands == zj.bands
    assert cx.elderly_age == zj.elderly_age
    assert set(zj.ids()) < set(cx.ids())
    assert cx.rule("ZJ-UNIT").defined_in == "zhejiang-2021"
    assert cx.rule("CX-EMBED").defined_in == "cixi-2024"
    assert {r.id for r in cx.own_rules()} == {i for i in cx.ids() if i.startswith("CX-")}
    # CX-NURSE (75 %) is the nursing rule in force in Cixi; ZJ-NURSE is kept, reported
    assert [r.id for r in cx.by_kind("nursing_share", enforced_only=True)] == ["CX-NURSE"]
    assert cx.rule("ZJ-NURSE").status == "reported"
    assert cx.rule("ZJ-NURSE").superseded_by == "CX-NURSE"
    assert "CX-NURSE" in (cx.rule("ZJ-NURSE").reason or "")
    assert zj.rule("ZJ-NURSE").status == "enforced"  # the parent preset is not changed
    assert cx.param("beds_per_unit", "beds_per_10k") == 300


def test_supersede_of_unknown_rule_is_refused() -> None:
    inherited = [{"id": "ZJ-A", "status": "enforced"}]
    with pytest.raises(RuleError, match=r"supersedes 'ZJ-B'"):
        _merge_rules("x", inherited, [{"id": "CX-A", "status": "enforced", "supersedes": ["ZJ-B"]}])


def test_format_rules_json_round_trip(standard_ids: list[str]) -> None:
    sets = [load_rule_set(n) for n in PRESETS]
    data = json.loads(format_rules(sets, "json"))
    assert [p["name"] for p in data] == PRESETS
    ids = [r["id"] for p in data for r in p["rules"]]
    assert sorted(ids) == sorted(standard_ids)
    for preset, rs in zip(data, sets, strict=True):
        assert preset["extends"] == rs.extends
        assert {k: preset[k] for k in ("title", "title_zh", "jurisdiction", "date", "source")} == \
            {k: getattr(rs, k) for k in ("title", "title_zh", "jurisdiction", "date", "source")}
        assert tuple(Band.model_validate(b) for b in preset["bands"]) == rs.bands
        for r in preset["rules"]:
            rule = rs.rule(r["id"])
            for key in ("status", "kind", "params", "title", "title_zh", "quote_zh", "source", "reason"):
                assert r[key] == getattr(rule, key), (r["id"], key)
    assert data[PRESETS.index("cixi-2024")]["extends"] == "zhejiang-2021"
    nx = data[PRESETS.index("ningxia-2025")]["rules"][0]
    assert nx["band"]["radius_min"] == 15


def test_format_rules_table() -> None:
    sets = [load_rule_set(n) for n in PRESETS]
    text = format_rules(sets, "table")
    lines = text.splitlines()
    for rs in sets:
        assert any(line.startswith(f"{rs.name} — ") for line in lines)
    for rid in ("ZJ-R500", "CX-EMBED", "WH-CENTRE", "NX-15MIN", "DWK-DISABLED"):
        assert any(line.startswith(rid + " ") for line in lines), rid
    r500 = next(line for line in lines if line.startswith("ZJ-R500 "))
    assert "> 3000/km² → 500 m" in r500 and "enforced" in r500
    assert "any density → 15 min walk" in text
    # in cixi's table the inherited rules are marked with their preset
    cixi = format_rules([load_rule_set("cixi-2024")], "table")
    assert "[zhejiang-2021] A planning unit" in cixi
    with pytest.raises(RuleError, match="unknown rules format"):
        format_rules(sets, "csv")  # type: ignore[arg-type]


def _ov(rule: str, reason: str = "scenario test", **changes: object) -> RuleOverride:
    return RuleOverride(rule=rule, set=changes, reason=reason)


def test_override_r500_radius() -> None:
    rs = load_rule_set("zhejiang-2021", [_ov("ZJ-R500", reason="dense old town, walkable", radius_m=400)])
    assert rs.bands[0].radius_m == 400
    assert rs.bands[1].radius_m == 1000
    assert rs.overrides == ({"rule": "ZJ-R500", "set": {"radius_m": 400}, "reason": "dense old town, walkable"},)
    assert load_rule_set("zhejiang-2021").bands[0].radius_m == 500  # the preset is unchanged
    assert "override ZJ-R500" in format_rules([rs], "table")


def test_override_param_and_status() -> None:
    rs = load_rule_set("zhejiang-2021", [_ov("ZJ-BEDS", beds_per_10k=350),
                                         _ov("ZJ-DEMENTIA", status="enforced")])
    assert rs.param("beds_per_unit", "beds_per_10k") == 350
    assert [r.id for r in rs.by_kind("dementia_beds", enforced_only=True)] == ["ZJ-DEMENTIA"]
    # plain mappings work too
    rs2 = load_rule_set("zhejiang-2021", [{"rule": "ZJ-R1000", "set": {"radius_m": 800}, "reason": "test"}])
    assert rs2.bands[1].radius_m == 800


def test_override_unknown_rule_names_known_ids() -> None:
    with pytest.raises(RuleError, match=r"no rule 'ZJ-R501'.*ZJ-R500, ZJ-R1000"):
        load_rule_set("zhejiang-2021", [_ov("ZJ-R501", radius_m=400)])


def test_override_unknown_param() -> None:
    with pytest.raises(RuleError, match=r"ZJ-BEDS: unknown parameter 'beds_per_1k'") as info:
        load_rule_set("zhejiang-2021", [_ov("ZJ-BEDS", beds_per_1k=3)])
    assert "beds_per_10k" in info.value.hints[0]


def test_override_band_field_on_non_band_rule() -> None:
    with pytest.raises(RuleError, match="not a density band rule"):
        load_rule_set("zhejiang-2021", [_ov("ZJ-BEDS", radius_m=400)])


def test_override_threshold_inversion() -> None:
    with pytest.raises(RuleError, match=r"ZJ-R500 makes the rule set inconsistent: band thresholds are inverted"):
        load_rule_set("zhejiang-2021", [_ov("ZJ-R500", lower_km2=800)])


@pytest.mark.parametrize("radius", [0, -100])
def test_override_radius_must_be_positive(radius: float) -> None:
    with pytest.raises(RuleError, match=r"override of ZJ-R500: radius_m: .*greater than 0"):
        load_rule_set("zhejiang-2021", [_ov("ZJ-R500", radius_m=radius)])


def test_override_bad_status() -> None:
    with pytest.raises(RuleError, match=r"override of ZJ-HOSP: status"):
        load_rule_set("zhejiang-2021", [_ov("ZJ-HOSP", status="maybe")])


def test_two_enforced_rules_of_one_kind_are_refused() -> None:
    with pytest.raises(RuleError, match=r"ZJ-NURSE, CX-NURSE are all enforced `nursing_share`"):
        load_rule_set("cixi-2024", [_ov("ZJ-NURSE", status="enforced")])


def test_unknown_rule_set_suggests_a_name() -> None:
    with pytest.raises(RuleError, match=r"unknown rule set 'zhejiang-2012'.*did you mean 'zhejiang-2021'"):
        load_rule_set("zhejiang-2012")


def test_unknown_kind_is_refused() -> None:
    zj = load_rule_set("zhejiang-2021").model_dump()
    zj["rules"][0]["kind"] = "beds_per_unti"
    with pytest.raises(ValueError, match="unknown kind 'beds_per_unti'"):
        RuleSet.model_validate(zj)
