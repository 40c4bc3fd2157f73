"""Rule sets: planning rules as data, each with an id, values, the quoted sentence and its source.

Presets live in ``siting/presets/<name>.yaml``. Each rule says whether it is ``enforced``
in the model, ``reported`` (checked in the report) or ``out_of_scope`` (with a reason).
Density bands (ZJ-R500, ZJ-R1000, ZJ-LOW …) come from here and nowhere else: no code path
hard-codes a threshold or a radius.
"""

from __future__ import annotations

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
    radius_min: float | None = Field(None, gt=0, description="owed walking time (converted at the scenario speed)")
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

    @model_validator(mode="after")
    def _reason_when_not_enforced(self) -> Rule:
        if self.status == "out_of_scope" and not self.reason:
            raise ValueError(f"{self.id}: out_of_scope rules need a `reason`")
        return self


# Rule kinds the model or report understands; params they read.
KINDS: dict[str, str] = {
    "unit_size": "elderly_per_unit — size of a planning unit (ZJ-UNIT)",
    "beds_per_unit": "beds_per_10k — institutional beds per 10,000 elderly in each unit (ZJ-BEDS)",
    "band_radius": "the band table — owed distance by density band (ZJ-R500, ZJ-R1000, NX-15MIN)",
    "no_radius": "a band with no distance rule (ZJ-LOW)",
    "one_per_subdistrict": "min_institutions, min_beds — at least one institution per 街道 (ZJ-TOWNCTR, CX-EMBED)",
    "nursing_share": "share — nursing-type beds as a share of institutional beds (ZJ-NURSE …)",
    "dementia_beds": "per_10k — dementia-care beds per 10,000 elderly (ZJ-DEMENTIA …)",
    "beds_per_1000": "per_1000 — beds per 1,000 elderly (ZJ-INSTBEDS, ZJ-SOCBEDS)",
    "min_module": "min_beds — smallest institution built (CX-EMBED)",
    "hospital_preference": "prefer candidate sites next to hospitals (ZJ-HOSP)",
    "spread": "prefer several smaller institutions (ZJ-SPREAD)",
}


class RuleSet(_Frozen):
    """A named preset: bands, rules, provenance."""

    name: str
    title: str
    title_zh: str
    jurisdiction: str
    date: str
    source: str
    version: str = "1"
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
        for a, b in zip(bounded, bounded[1:], strict=False):
            if a <= b:
                raise ValueError(
                    f"band thresholds are inverted: {a} listed before {b}; list the densest band first"
                )
        return self

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (``RuleError`` naming the known ids otherwise)."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise RuleError(f"rule set {self.name!r} has no rule {rule_id!r}; it has: {', '.join(self.ids())}")

    def ids(self) -> list[str]:
        return [r.id for r in self.rules]

    def by_kind(self, kind: str, *, enforced_only: bool = False) -> list[Rule]:
        """Rules of one kind (optionally only those enforced in the model)."""
        return [r for r in self.rules if r.kind == kind and (r.status == "enforced" or not enforced_only)]

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
    known = available_rule_sets()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise RuleError(f"unknown rule set {name!r}{hint}", hints=(f"known rule sets: {', '.join(known)}",))
    text = resources.files("siting.presets").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    try:
        return RuleSet.model_validate(yaml.safe_load(text))
    except ValidationError as exc:  # a broken preset is our bug, but say where
        raise RuleError(f"preset {name}.yaml is invalid: {exc}") from None


def load_rule_set(name: str, overrides: list[Any] | tuple[Any, ...] = ()) -> RuleSet:
    """Load a preset and apply scenario overrides (each with a reason, kept for the report).

    An override targets a rule id; ``set`` keys are rule params, or band fields
    (``radius_m``, ``radius_min``, ``lower_km2``, ``lower_inclusive``) of the band citing it,
    or ``status``.
    """
    rs = _load_preset(name)
    for ov in overrides:
        rs = _apply_override(rs, ov)
    return rs


def _apply_override(rs: RuleSet, ov: Any) -> RuleSet:
    rule_id, changes, reason = ov.rule, dict(ov.set), ov.reason
    rule = rs.rule(rule_id)  # raises RuleError for unknown ids
    band_keys = {"radius_m", "radius_min", "lower_km2", "lower_inclusive"}
    new_bands = list(rs.bands)
    band_changes = {k: v for k, v in changes.items() if k in band_keys}
    if band_changes:
        idx = [i for i, b in enumerate(rs.bands) if b.rule_id == rule_id]
        if not idx:
            raise RuleError(f"override of {rule_id}: {sorted(band_changes)} are band fields, "
                            f"but {rule_id} is not a density band rule")
        for i in idx:
            new_bands[i] = Band.model_validate({**rs.bands[i].model_dump(), **band_changes})
    rule_update: dict[str, Any] = {}
    params = dict(rule.params)
    for k, v in changes.items():
        if k in band_keys:
            continue
        if k == "status":
            rule_update["status"] = v
        elif k in params:
            params[k] = v
        else:
            known = sorted(params) + sorted(band_keys) + ["status"]
            raise RuleError(f"override of {rule_id}: unknown parameter {k!r}",
                            hints=(f"{rule_id} accepts: {', '.join(known)}",))
    rule_update["params"] = params
    new_rule = Rule.model_validate({**rule.model_dump(), **rule_update})
    rules = tuple(new_rule if r.id == rule_id else r for r in rs.rules)
    record = {"rule": rule_id, "set": changes, "reason": reason}
    try:
        return RuleSet.model_validate({**rs.model_dump(), "bands": new_bands, "rules": rules,
                                       "overrides": (*rs.overrides, record)})
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise RuleError(f"override of {rule_id} makes the rule set inconsistent: {msg}") from None
