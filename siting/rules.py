"""Rule sets: planning rules as data, each with an id, values, the quoted sentence and its source.

Presets live in ``siting/presets/<name>.yaml``. Each rule says whether it is ``enforced``
in the model, ``reported`` (checked in the report) or ``out_of_scope`` (with a reason).
Density bands (ZJ-R500, ZJ-R1000, ZJ-LOW …) come from here and nowhere else: no code path
hard-codes a threshold or a radius.
"""

from __future__ import annotations

import itertools
import json
from functools import cache
from importlib import resources
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._errors import RuleError

Status = Literal["enforced", "reported", "out_of_scope"]
ParamValue = float | int | str | bool | None


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Frozen):
    """A density band: cells whose elderly density falls in it are owed ``radius``.

    A cell belongs to the first band (in the order listed, densest first) whose lower
    bound it passes: ``density > lower_km2`` or, if ``lower_inclusive``, ``>=``.
    ``lower_km2 = None`` catches everything left.
    """

    name: str
    label_zh: str
    lower_km2: float | None = Field(None, ge=0)
    lower_inclusive: bool = False
    radius_m: float | None = Field(None, gt=0, description="owed straight-line/network distance")
    radius_min: float | None = Field(
        None, gt=0, description="owed walking time (converted at the scenario speed)"
    )
    rule_id: str

    def radius_at(self, speed_kmh: float) -> float | None:
        """Owed radius in metres; a time radius is converted at ``speed_kmh``."""
        if self.radius_m is not None:
            return self.radius_m
        if self.radius_min is not None:
            return self.radius_min / 60.0 * speed_kmh * 1000.0
        return None


class Rule(_Frozen):
    """One rule quoted from a policy document."""

    id: str = Field(pattern=r"^[A-Z]+-[A-Z0-9-]+$")
    title: str
    title_zh: str | None = None
    status: Status
    kind: str | None = Field(None, description="what the model/report does with it (see KINDS)")
    params: dict[str, ParamValue] = Field(default_factory=dict)
    quote_zh: str = Field(min_length=2, description="the original sentence")
    source: str = Field(description="seed file the sentence is quoted from")
    section: str | None = None
    reason: str | None = Field(None, description="why reported only / out of scope")
    supersedes: tuple[str, ...] = Field(
        default=(), description="inherited rule ids this rule replaces in force (e.g. CX-NURSE → ZJ-NURSE)"
    )
    superseded_by: str | None = Field(None, description="filled by the loader: the rule now in force")
    defined_in: str | None = Field(None, description="filled by the loader: preset the rule comes from")

    @model_validator(mode="after")
    def _reason_when_not_enforced(self) -> Rule:
        if self.status == "out_of_scope" and not self.reason:
            raise ValueError(f"{self.id}: out_of_scope rules need a `reason`")
        if self.kind is not None and self.kind not in KINDS:
            known = ", ".join(sorted(KINDS))
            raise ValueError(f"{self.id}: unknown kind {self.kind!r}; known kinds: {known}")
        return self


# Rule kinds the model or report understands; params they read.
KINDS: dict[str, str] = {
    "unit_size": "elderly_per_unit — size of a planning unit (ZJ-UNIT)",
    "beds_per_unit": "beds_per_10k — institutional beds per 10,000 elderly in each unit (ZJ-BEDS)",
    "band_radius": "the band table — owed distance by density band (ZJ-R500, ZJ-R1000, NX-15MIN)",
    "no_radius": "a band with no distance rule (ZJ-LOW)",
    "one_per_subdistrict": "min_institutions, min_beds — at least one institution (with beds) per 街道 "
    "(CX-EMBED, WH-CENTRE)",
    "nursing_share": "share — nursing-type beds as a share of institutional beds (ZJ-NURSE …)",
    "dementia_beds": "per_10k — dementia-care beds per 10,000 elderly (ZJ-DEMENTIA …)",
    "beds_per_1000": "per_1000 — beds per 1,000 elderly (ZJ-INSTBEDS, ZJ-SOCBEDS)",
    "min_module": "min_beds — smallest institution built (CX-EMBED)",
    "hospital_preference": "prefer candidate sites next to hospitals (ZJ-HOSP)",
    "spread": "prefer several smaller institutions (ZJ-SPREAD)",
    "min_institutions": "min_institutions — at least this many institutions in the whole study area "
    "(DWK-DISABLED)",
    "centre_per_subdistrict": (
        "min_centres, share — home-care / comprehensive service centres per 街道, share = fraction of 街道 "
        "that must have one (ZJ-TOWNCTR, CX-TOWNCTR, DWK-CENTRE); centres have few or no beds: report only"
    ),
    "facility_feature": "min_beds / min_residents, feature — what an institution of that size must contain "
    "(ZJ-REHAB, CX-MED); building programme, report only",
    "dementia_institution": "county_population, scale — dedicated dementia-care institutions "
    "(ZJ-DEMENTIA-INST, NX-DEMENTIA)",
    "land_per_capita": "m2_per_resident — facility land reserved per resident (CX-LAND)",
    "floor_area": "m2_per_100_households / share — service floor space in housing (CX-HOMEROOM, WH-ROOMS)",
    "staffing": "per_10k, beds_per_worker, ratios — staff numbers (ZJ-SOCWORK, ZJ-CAREGIVER, CX-STAFF …); "
    "not spatial",
    "service_count": "min_sites — a count of service points across a city (WH-MEALS)",
    "occupancy_gate": "new public beds only where occupancy is at least the regional average (NX-OCCUPANCY)",
    "plan_scope": "who must make the layout plan (ZJ-PLAN)",
}

# Kinds the model reads as one number: at most one rule of each may be enforced in a rule set.
SINGLE_KINDS: frozenset[str] = frozenset({"unit_size", "beds_per_unit", "nursing_share", "dementia_beds"})


class RuleSet(_Frozen):
    """A named preset: bands, rules, provenance."""

    name: str
    title: str
    title_zh: str
    jurisdiction: str
    date: str
    source: str
    version: str = "1"
    extends: str | None = Field(None, description="preset whose bands and rules this one inherits")
    elderly_age: Literal["60+", "65+"] = "60+"
    bands: tuple[Band, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = Field(min_length=1)
    overrides: tuple[dict[str, Any], ...] = Field(default=(), description="applied overrides with reasons")

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate rule ids: {sorted(dup)}")
        for band in self.bands:
            if band.rule_id not in ids:
                raise ValueError(f"band {band.name!r} cites unknown rule {band.rule_id!r}")
        lowers = [b.lower_km2 for b in self.bands]
        if any(lo is None for lo in lowers[:-1]):
            raise ValueError("only the last band may have no lower bound")
        bounded = [lo for lo in lowers if lo is not None]
        for a, b in itertools.pairwise(bounded):
            if a <= b:
                raise ValueError(
                    f"band thresholds are inverted: {a} listed before {b}; list the densest band first"
                )
        for kind in sorted(SINGLE_KINDS):
            on = [r.id for r in self.rules if r.kind == kind and r.status == "enforced"]
            if len(on) > 1:
                raise ValueError(
                    f"rules {', '.join(on)} are all enforced `{kind}` rules; enforce one "
                    "(mark the others `reported`, or use `supersedes`)"
                )
        return self

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (``RuleError`` naming the known ids otherwise)."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise RuleError(f"rule set {self.name!r} has no rule {rule_id!r}; it has: {', '.join(self.ids())}")

    def ids(self) -> list[str]:
        """Rule ids in preset order (inherited ones first)."""
        return [r.id for r in self.rules]

    def own_rules(self) -> tuple[Rule, ...]:
        """Rules defined in this preset (not inherited through ``extends``)."""
        return tuple(r for r in self.rules if r.defined_in in (None, self.name))

    def band_for(self, rule_id: str) -> Band | None:
        """The band citing ``rule_id``, if any."""
        return next((b for b in self.bands if b.rule_id == rule_id), None)

    def by_kind(self, kind: str, *, enforced_only: bool = False) -> list[Rule]:
        """Rules of one kind (optionally only those enforced in the model)."""
        return [r for r in self.rules if r.kind == kind and (r.status == "enforced" or not enforced_only)]

    def kind_ids(self, kind: str) -> str:
        """Ids of the rules of ``kind`` for a label or header ("ZJ-BEDS"; "A/B"); "" when there are none."""
        return "/".join(r.id for r in self.by_kind(kind))

    def radius_ids(self, speed_kmh: float, *, owed: bool = True) -> str:
        """Rule ids of the bands that owe a radius ("ZJ-R500/ZJ-R1000"), or with ``owed=False`` of those
        that do not ("ZJ-LOW"); "" when there are none."""
        return "/".join(dict.fromkeys(b.rule_id for b in self.bands if (b.radius_at(speed_kmh) is not None) == owed))

    def param(self, kind: str, key: str, default: ParamValue = None) -> ParamValue:
        """The value ``key`` of the first rule of ``kind``, else ``default``."""
        for r in self.by_kind(kind):
            if key in r.params:
                return r.params[key]
        return default

    def band_index(self, density_km2: np.ndarray) -> np.ndarray:
        """Index into ``bands`` for each density (vectorised); -1 where no band applies."""
        density = np.asarray(density_km2, dtype=float)
        out = np.full(density.shape, -1, dtype=np.int16)
        for i, band in enumerate(self.bands):
            free = out < 0
            if band.lower_km2 is None:
                hit = free
            elif band.lower_inclusive:
                hit = free & (density >= band.lower_km2)
            else:
                hit = free & (density > band.lower_km2)
            out[hit] = i
        return out


def available_rule_sets() -> list[str]:
    """Names of the shipped presets."""
    files = resources.files("siting.presets").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


@cache
def _load_preset(name: str) -> RuleSet:
    """The preset ``name`` with its ``extends`` chain resolved (cached; the value is frozen)."""
    return _resolve_preset(name, ())


def _read_preset(name: str) -> dict[str, Any]:
    known = available_rule_sets()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise RuleError(f"unknown rule set {name!r}{hint}", hints=(f"known rule sets: {', '.join(known)}",))
    text = resources.files("siting.presets").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise RuleError(f"preset {name}.yaml is not a mapping of fields")
    return raw


def _resolve_preset(name: str, chain: tuple[str, ...]) -> RuleSet:
    """Read ``name``; inherit bands and rules from its ``extends`` parent (own rules add or replace by id)."""
    if name in chain:
        raise RuleError(f"preset {name}.yaml: `extends` loops: {' → '.join((*chain, name))}")
    raw = _read_preset(name)
    own = [{**r, "defined_in": name} for r in raw.get("rules") or ()]
    parent_name = raw.get("extends")
    if parent_name:
        parent = _resolve_preset(parent_name, (*chain, name))
        rules = _merge_rules(name, [r.model_dump() for r in parent.rules], own)
        raw = {"elderly_age": parent.elderly_age, "bands": [b.model_dump() for b in parent.bands], **raw}
    else:
        rules = own
    try:
        return RuleSet.model_validate({**raw, "rules": rules})
    except ValidationError as exc:  # a broken preset is our bug, but say where
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise RuleError(f"preset {name}.yaml is invalid: {where}") from None


def _merge_rules(
    name: str, inherited: list[dict[str, Any]], own: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Inherited rules, then own ones; same id replaces; ``supersedes`` demotes the inherited rule."""
    merged = {r["id"]: r for r in inherited}
    for rule in own:
        merged[rule["id"]] = rule
    for rule in own:
        for old_id in rule.get("supersedes") or ():
            old = merged.get(old_id)
            if old is None:
                raise RuleError(f"preset {name}.yaml: {rule['id']} supersedes {old_id!r}, not inherited",
                                hints=(f"inherited rules: {', '.join(r['id'] for r in inherited)}",))
            demoted = "reported" if old["status"] == "enforced" else old["status"]
            why = f"superseded by {rule['id']} ({name})"
            merged[old_id] = {**old, "status": demoted, "superseded_by": rule["id"],
                              "reason": f"{why}; {old['reason']}" if old.get("reason") else why}
    return list(merged.values())


def load_rule_set(name: str, overrides: list[Any] | tuple[Any, ...] = ()) -> RuleSet:
    """Load a preset and apply scenario overrides (each with a reason, kept for the report).

    An override targets a rule id; ``set`` keys are rule params, or band fields
    (``radius_m``, ``radius_min``, ``lower_km2``, ``lower_inclusive``) of the band citing it,
    or ``status``. Overrides may be objects with ``.rule``, ``.set``, ``.reason`` (the
    scenario's ``RuleOverride``) or plain mappings with those keys.
    """
    rs = _load_preset(name)
    for ov in overrides:
        rs = _apply_override(rs, ov)
    return rs


_BAND_KEYS = frozenset({"radius_m", "radius_min", "lower_km2", "lower_inclusive"})


def _override_parts(ov: Any) -> tuple[str, dict[str, Any], str]:
    if isinstance(ov, dict):
        return str(ov.get("rule")), dict(ov.get("set") or {}), str(ov.get("reason") or "")
    return ov.rule, dict(ov.set), ov.reason


def _apply_override(rs: RuleSet, ov: Any) -> RuleSet:
    rule_id, changes, reason = _override_parts(ov)
    rule = rs.rule(rule_id)  # raises RuleError for unknown ids
    try:
        new_bands = _override_bands(rs, rule_id, {k: v for k, v in changes.items() if k in _BAND_KEYS})
        new_rule = _override_rule(rule, {k: v for k, v in changes.items() if k not in _BAND_KEYS})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(map(str, err["loc"])) or "value"
        raise RuleError(f"override of {rule_id}: {field}: {err['msg']} (got {err.get('input')!r})",
                        hints=("fix the `set:` values of this override in the scenario",)) from None
    rules = tuple(new_rule if r.id == rule_id else r for r in rs.rules)
    record = {"rule": rule_id, "set": changes, "reason": reason}
    try:
        return RuleSet.model_validate({**rs.model_dump(), "bands": new_bands, "rules": rules,
                                       "overrides": (*rs.overrides, record)})
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise RuleError(f"override of {rule_id} makes the rule set inconsistent: {msg}") from None


def _override_bands(rs: RuleSet, rule_id: str, band_changes: dict[str, Any]) -> list[Band]:
    new_bands = list(rs.bands)
    if not band_changes:
        return new_bands
    idx = [i for i, b in enumerate(rs.bands) if b.rule_id == rule_id]
    if not idx:
        raise RuleError(f"override of {rule_id}: {sorted(band_changes)} are band fields, "
                        f"but {rule_id} is not a density band rule",
                        hints=(f"band rules: {', '.join(b.rule_id for b in rs.bands)}",))
    for i in idx:
        new_bands[i] = Band.model_validate({**rs.bands[i].model_dump(), **band_changes})
    return new_bands


def _override_rule(rule: Rule, changes: dict[str, Any]) -> Rule:
    update: dict[str, Any] = {}
    params = dict(rule.params)
    for k, v in changes.items():
        if k == "status":
            update["status"] = v
        elif k in params:
            params[k] = v
        else:
            known = sorted(params) + sorted(_BAND_KEYS) + ["status"]
            raise RuleError(f"override of {rule.id}: unknown parameter {k!r}",
                            hints=(f"{rule.id} accepts: {', '.join(known)}",))
    update["params"] = params
    return Rule.model_validate({**rule.model_dump(), **update})


# --- listing (`siting rules`) -------------------------------------------------------------

_UNITS = {
    "elderly_per_unit": "{:,.0f} elderly",
    "beds_per_10k": "{:g} beds / 10k elderly",
    "per_10k": "{:g} / 10k elderly",
    "per_1000": "{:g} / 1,000 elderly",
    "share": "{:.0%}",
    "min_institutions": "≥ {:g} institution(s)",
    "min_beds": "≥ {:g} beds",
    "min_centres": "≥ {:g} centre(s)",
    "min_residents": "≥ {:g} residents",
    "min_sites": "≥ {:g} sites",
    "m2_per_resident": "{:g} m² / resident",
    "m2_per_100_households": "{:g} m² / 100 households",
    "beds_per_worker": "1 per {:g} beds",
    "county_population": "counties > {:,.0f}",
    "minutes": "{:g} min",
    "year": "by {:g}",
    "actual_2020": "2020: {:g}",
    "daycare_share": "day-care {:.0%}",
    "main_districts": "{:g} main districts",
}
_VALUE_WIDTH = 44


def _band_text(band: Band, *, sole: bool = False) -> str:
    if band.lower_km2 is None:
        where = "any density" if sole else "rest"
    else:
        where = f"{'≥' if band.lower_inclusive else '>'} {band.lower_km2:g}/km²"
    if band.radius_m is not None:
        owed = f"{band.radius_m:g} m"
    elif band.radius_min is not None:
        owed = f"{band.radius_min:g} min walk"
    else:
        owed = "no radius"
    return f"{where} → {owed}"


def rule_value(rs: RuleSet, rule: Rule) -> str:
    """A short human reading of a rule's numbers (band rules read their band)."""
    band = rs.band_for(rule.id) if rule.kind in {"band_radius", "no_radius"} else None
    parts = [_band_text(band, sole=len(rs.bands) == 1)] if band is not None else []
    for key, value in rule.params.items():
        if band is not None and key == "minutes":
            continue  # already in the band text
        fmt = _UNITS.get(key)
        if fmt is not None and isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(fmt.format(value))
        else:
            parts.append(f"{key}={value}")
    return "; ".join(parts) or "—"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _rule_json(rs: RuleSet, rule: Rule) -> dict[str, Any]:
    band = rs.band_for(rule.id)
    return {
        "id": rule.id, "status": rule.status, "kind": rule.kind, "params": dict(rule.params),
        "band": band.model_dump() if band is not None else None,
        "title": rule.title, "title_zh": rule.title_zh, "quote_zh": rule.quote_zh,
        "source": rule.source, "section": rule.section, "reason": rule.reason,
        "supersedes": list(rule.supersedes),
    }


def _preset_json(rs: RuleSet) -> dict[str, Any]:
    return {
        "name": rs.name, "title": rs.title, "title_zh": rs.title_zh, "jurisdiction": rs.jurisdiction,
        "date": rs.date, "source": rs.source, "extends": rs.extends, "elderly_age": rs.elderly_age,
        "bands": [b.model_dump() for b in rs.bands],
        "rules": [_rule_json(rs, r) for r in rs.own_rules()],
        "overrides": [dict(o) for o in rs.overrides],
    }


def _preset_table(rs: RuleSet) -> list[str]:
    head = f"{rs.name} — {rs.title} ({rs.jurisdiction}, {rs.date}; source {rs.source})"
    lines = [head, "=" * min(len(head), 100)]
    if rs.extends:
        lines.append(f"extends {rs.extends}: its rules apply too (marked [{rs.extends}])")
    sole = len(rs.bands) == 1
    lines.append("bands: " + "; ".join(f"{b.name} {_band_text(b, sole=sole)} ({b.rule_id})" for b in rs.bands))
    rows = [(r.id, r.status, _fit(rule_value(rs, r), _VALUE_WIDTH),
             (f"[{r.defined_in}] " if r.defined_in not in (None, rs.name) else "") + r.title)
            for r in rs.rules]
    w_id = max(len("id"), *(len(r[0]) for r in rows))
    w_st = max(len("status"), *(len(r[1]) for r in rows))
    w_val = max(len("value"), *(len(r[2]) for r in rows))
    lines.append(f"{'id':<{w_id}}  {'status':<{w_st}}  {'value':<{w_val}}  title")
    lines.append(f"{'-' * w_id}  {'-' * w_st}  {'-' * w_val}  {'-' * 5}")
    lines += [f"{i:<{w_id}}  {st:<{w_st}}  {v:<{w_val}}  {t}" for i, st, v, t in rows]
    for o in rs.overrides:
        lines.append(f"override {o['rule']}: {o['set']} — {o['reason']}")
    return lines


def format_rules(rule_sets: list[RuleSet], fmt: Literal["table", "json"] = "table") -> str:
    """Render rule sets for ``siting rules``.

    ``json``: a list of presets, each with its own rules only (inherited ones are listed
    under the preset that defines them, so each id appears once). ``table``: fixed-width
    text, every rule in force per preset, inherited ones marked with their preset.
    """
    if fmt == "json":
        return json.dumps([_preset_json(rs) for rs in rule_sets], ensure_ascii=False, indent=2)
    if fmt == "table":
        return "\n\n".join("\n".join(_preset_table(rs)) for rs in rule_sets) + "\n"
    raise RuleError(f"unknown rules format {fmt!r}; use 'table' or 'json'")
