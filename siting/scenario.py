"""Scenario files: the pydantic v2 schema of everything a planner sets, and its loader.

A scenario is one YAML file. Paths in it resolve relative to the file; ``${VAR}`` and
``~`` expand (``${SITING_DATA}`` defaults to the data root, see :mod:`siting._data`).
Errors name the file, the line, the field and the fix (:class:`ScenarioError`).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._data import ENV_VAR, data_root
from ._errors import ScenarioError

SCHEMA_VERSION = 1
DEFAULT_SPEED_KMH = 4.5  # walking speed for time-based rules (NX-15MIN) when no network block sets one
DEFAULT_SCENARIO = "hangzhou_shangcheng.yaml"


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a relative path absolute against the scenario's folder (from the context)."""
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


FilePath = Annotated[Path, AfterValidator(_resolve_path)]


def _check_crs(value: str) -> str:
    """Accept any CRS pyproj knows; the metric check happens where metres are needed."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_user_input(value)
    except CRSError:
        raise ValueError(f"unknown CRS {value!r}; use an EPSG code such as 'EPSG:4549'") from None
    return value


def _check_projected_crs(value: str) -> str:
    from pyproj import CRS

    _check_crs(value)
    if not CRS.from_user_input(value).is_projected:
        raise ValueError(
            f"{value!r} is geographic (degrees); the grid needs metres — use a projected CRS "
            "such as 'EPSG:4549' (CGCS2000 / 3-degree Gauss-Kruger CM 120E)"
        )
    return value


CrsStr = Annotated[str, AfterValidator(_check_crs)]
ProjectedCrsStr = Annotated[str, AfterValidator(_check_projected_crs)]


class Strict(BaseModel):
    """Base: unknown keys are errors (with a suggestion), models are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LayerRef(Strict):
    """A vector layer: a file, optionally a layer in it, optionally a row filter."""

    path: FilePath = Field(description="GeoPackage, Shapefile, GeoJSON or CSV with lon/lat columns")
    layer: str | None = Field(default=None, description="layer name inside a GeoPackage")
    where: dict[str, str | int | float | bool | list[str | int | float | bool]] | None = Field(
        default=None, description="keep rows whose field equals the value (or is in the list)"
    )


class StudyArea(LayerRef):
    """Polygons whose union is the area planned for."""


class CensusSource(Strict):
    """Census counts per census unit, and the polygons those units cover."""

    table: FilePath = Field(description="CSV with one row per census unit (UTF-8 or GBK)")
    code_field: str = "adcode"
    age: Literal["60+", "65+"] = Field(default="60+", description="who counts as elderly (ZJ rules: 60+)")
    count_field: str | None = Field(default=None, description="default: pop_60plus or pop_65plus by `age`")
    units: LayerRef = Field(description="polygons that carry the census code of the unit they belong to")
    unit_code_field: str = Field(default="adcode_2020_census", description="field of `units` holding the code")
    share_held: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=dict,
        description="census code → share of its elderly living in its polygons of `units`, when that layer "
        "holds only part of the census unit (e.g. 5 of a district's 8 subdistricts); default 1",
    )
    share_reference: str | None = Field(
        default=None,
        description="census code of a unit fully held by `units`: other units' held share is estimated as "
        "their residential weight × this unit's elderly per m² of weight (capped at 1); reported as assumed",
    )

    @property
    def count_column(self) -> str:
        return self.count_field or ("pop_60plus" if self.age == "60+" else "pop_65plus")


class DasymetricWeights(Strict):
    """Where inside a census unit people live: residential footprints, else residential land."""

    buildings: LayerRef | None = None
    building_field: str = "building"
    residential_buildings: list[str] = Field(
        default_factory=lambda: ["residential", "apartments", "house", "yes", "dormitory", "detached"]
    )
    landuse: LayerRef | None = None
    water: LayerRef | None = Field(
        default=None,
        description="water polygons (e.g. OSM natural=water): no one lives there, and density counts land only",
    )
    landuse_field: str = "landuse"
    residential_landuse: list[str] = Field(default_factory=lambda: ["residential"])
    excluded_landuse: list[str] = Field(
        default_factory=lambda: [
            "industrial", "commercial", "retail", "military", "cemetery", "railway", "forest",
            "grass", "meadow", "recreation_ground", "park", "reservoir", "basin", "farmland",
            "orchard", "construction", "education", "religious",
        ],
        description="land use where nobody is placed (water and parks are always excluded)",
    )


class RasterSource(Strict):
    """A population raster (persons per pixel), e.g. WorldPop 60+."""

    path: FilePath
    band: PositiveInt = 1


class PointsSource(LayerRef):
    """Demand points with a count each."""

    count_field: str = "elderly"


class DemandSpec(Strict):
    """Where the resident elderly come from."""

    source: Literal["census", "raster", "points"] = "census"
    census: CensusSource | None = None
    weights: DasymetricWeights = Field(default_factory=DasymetricWeights)
    raster: RasterSource | None = None
    points: PointsSource | None = None

    @model_validator(mode="after")
    def _source_block_present(self) -> DemandSpec:
        if getattr(self, self.source) is None:
            raise ValueError(f"`source: {self.source}` needs a `{self.source}:` block")
        return self


class GridSpec(Strict):
    """The regular demand grid."""

    cell_size_m: PositiveFloat = Field(default=100.0, le=5000.0, description="cell side in metres")
    crs: ProjectedCrsStr = Field(default="EPSG:4549", description="projected working CRS (metres)")


class DensitySpec(Strict):
    """How elderly density (per km² of land) is measured around each cell."""

    method: Literal["kernel", "zone"] = "kernel"
    radius_m: PositiveFloat = Field(default=500.0, description="kernel: neighbourhood radius")
    zones: LayerRef | None = Field(default=None, description="zone: polygons (community/subdistrict)")

    @model_validator(mode="after")
    def _zones_for_zone(self) -> DensitySpec:
        if self.method == "zone" and self.zones is None:
            raise ValueError("`method: zone` needs a `zones:` layer")
        return self


class PlanningUnitsSpec(Strict):
    """Planning units (ZJ-UNIT): given polygons, or contiguous regions of ~10,000 elderly."""

    mode: Literal["polygons", "auto"] = "polygons"
    layer: LayerRef | None = None
    id_field: str = "osm_id"
    name_field: str = "subdistrict"
    target_elderly: PositiveFloat | None = Field(
        default=None, description="auto mode: elderly per unit (default: the rule set's ZJ-UNIT value)"
    )
    within: LayerRef | None = Field(default=None, description="auto mode: keep units inside these polygons")
    within_id_field: str = "subdistrict"

    @model_validator(mode="after")
    def _layer_for_polygons(self) -> PlanningUnitsSpec:
        if self.mode == "polygons" and self.layer is None:
            raise ValueError("`mode: polygons` needs a `layer:`")
        return self


class ExistingFacilitiesSpec(Strict):
    """Institutions that exist today; kept, expanded or (if allowed) closed by the plan."""

    layer: LayerRef | None = Field(default=None, description="omit for a green-field plan")
    id_field: str = "osm_id"
    name_field: str = "name"
    beds_field: str | None = Field(default=None, description="field with bed counts; empty values use default_beds")
    default_beds: int | None = Field(
        default=None, ge=0, description="beds assumed where none are known (reported as *assumed*)"
    )
    allow_expand: bool = True
    allow_close: bool = False
    max_expansion_modules: int = Field(default=2, ge=0)

    @model_validator(mode="after")
    def _beds_known_or_assumed(self) -> ExistingFacilitiesSpec:
        if self.layer is not None and self.beds_field is None and self.default_beds is None:
            raise ValueError("give `beds_field` or `default_beds` (an assumption listed in the report)")
        return self


class GenerateCandidates(Strict):
    """Candidate sites generated on a lattice over residential land, minus exclusions."""

    spacing_m: PositiveFloat = Field(default=250.0, description="minimum spacing between candidates")
    landuse_values: list[str] = Field(
        default_factory=lambda: ["residential", "commercial", "retail"],
        description="land use that may host an institution",
    )
    exclude_landuse: list[str] = Field(
        default_factory=lambda: ["industrial", "military", "cemetery", "railway", "water", "reservoir"]
    )
    min_distance_to_existing_m: NonNegativeFloat = 0.0
    max_candidates: PositiveInt | None = None
    fill_gaps: bool = Field(
        default=True,
        description="after reach: add a candidate at the centre of cells owed a radius that no site reaches "
        "(one per half radius), so the plan is not limited by where the lattice fell",
    )


class CandidatesSpec(Strict):
    """Where new institutions may go."""

    mode: Literal["layer", "generate"] = "generate"
    layer: LayerRef | None = None
    id_field: str = "id"
    cost_field: str | None = Field(default=None, description="per-site opening cost overriding costs.site")
    generate: GenerateCandidates = Field(default_factory=GenerateCandidates)

    @model_validator(mode="after")
    def _layer_for_layer(self) -> CandidatesSpec:
        if self.mode == "layer" and self.layer is None:
            raise ValueError("`mode: layer` needs a `layer:`")
        return self


class NetworkSpec(Strict):
    """A street network (osmnx GraphML) for network distances."""

    graph: FilePath
    kind: Literal["walk", "drive"] = "walk"
    speed_kmh: PositiveFloat = Field(default=4.5, description="walking speed for time-based rules (NX-15MIN)")
    snap_limit_m: PositiveFloat = Field(default=300.0, description="cells/sites further from a street are reported")


class DistanceSpec(Strict):
    """Straight-line or along the street network (the report says which)."""

    mode: Literal["euclidean", "network"] = "euclidean"
    network: NetworkSpec | None = None

    @model_validator(mode="after")
    def _graph_for_network(self) -> DistanceSpec:
        if self.mode == "network" and self.network is None:
            raise ValueError("`mode: network` needs a `network:` block with a `graph:` file")
        return self


class RuleOverride(Strict):
    """A change to one rule's values; the reason is printed in the report."""

    rule: str = Field(description="rule id, e.g. ZJ-R500")
    set: dict[str, float | int | str | bool | None] = Field(description="parameter → new value")
    reason: str = Field(min_length=3, description="why this scenario departs from the rule")

    @field_validator("reason")
    @classmethod
    def _reason_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a rule override needs a `reason:` (it goes in the report)")
        return v


class RulesSpec(Strict):
    """Which rule set applies, and explicit departures from it."""

    set: str = Field(default="zhejiang-2021", description="rule set name; `siting rules` lists them")
    overrides: list[RuleOverride] = Field(default_factory=list)
    neighbour_beds_distance_m: NonNegativeFloat | None = Field(
        default=None, description="ZJ-BEDS: let beds of a neighbouring unit within this distance count"
    )
    capacitated: bool = Field(default=False, description="serve each cell's elderly up to beds × ratio")


class ObjectiveSpec(Strict):
    """min_cost: meet every rule at least cost; max_coverage: cover most elderly within a limit."""

    kind: Literal["min_cost", "max_coverage"] = "min_cost"
    budget: NonNegativeFloat | None = Field(default=None, description="max_coverage: money available (CNY)")
    n_sites: PositiveInt | None = Field(default=None, description="max_coverage: new sites allowed")
    beds_rule: Literal["constraint", "objective"] = "constraint"
    coverage_curve: list[NonNegativeFloat] | None = Field(
        default=None, description="budgets (or site counts with n_sites) to solve exactly for the curve"
    )

    @model_validator(mode="after")
    def _limit_for_max_coverage(self) -> ObjectiveSpec:
        if self.kind == "max_coverage" and self.budget is None and self.n_sites is None:
            raise ValueError("`kind: max_coverage` needs `budget` or `n_sites`")
        return self


class CostSpec(Strict):
    """Costs in CNY (assumed planning figures unless the scenario says otherwise)."""

    site: NonNegativeFloat = Field(default=3_000_000.0, description="fixed cost of opening a new site")
    bed: NonNegativeFloat = Field(default=120_000.0, description="cost per new bed")
    module: NonNegativeFloat = Field(default=0.0, description="extra cost per module built")
    expansion_fixed: NonNegativeFloat = Field(default=500_000.0, description="fixed cost of expanding a facility")
    expansion_bed: NonNegativeFloat = Field(default=100_000.0, description="cost per bed added by expansion")
    close: NonNegativeFloat = Field(default=0.0, description="cost of closing an existing facility")
    hospital_bonus: NonNegativeFloat = Field(
        default=0.0, description="ZJ-HOSP: cost reduction for candidates next to a hospital"
    )
    currency: str = "CNY"


class ModulesSpec(Strict):
    """Modular institution sizes (beds); CX-EMBED asks for at least 30."""

    sizes: list[PositiveInt] = Field(default_factory=lambda: [30, 60, 100, 150, 200], min_length=1)
    expansion_beds: PositiveInt = Field(default=30, description="beds added by one expansion module")

    @field_validator("sizes")
    @classmethod
    def _sorted_unique(cls, v: list[int]) -> list[int]:
        return sorted(set(v))


class SolverSpec(Strict):
    """MILP solver and its limits."""

    name: Literal["highs", "cbc"] = "highs"
    time_limit_s: PositiveFloat = 300.0
    mip_gap: float = Field(default=0.0, ge=0.0, lt=1.0)
    threads: PositiveInt = 2
    # le = siting.solve.MAX_SEED, written out so a scenario loads without numpy/scipy (a test ties the two)
    seed: int = Field(default=0, ge=0, le=2**31 - 2)


class MapOptions(Strict):
    """Which maps to draw."""

    png: bool = True
    pdf: bool = True
    dpi: PositiveInt = Field(default=200, le=1200)
    html: bool = Field(
        default=False, description="interactive map maps/map.html (self-contained SVG: zoom, pan, hover)"
    )


class OutputSpec(Strict):
    """Where and how results are written."""

    dir: FilePath | None = Field(default=None, description="default: out/<scenario name> under the working dir")
    formats: list[Literal["gpkg", "shp", "geojson"]] = Field(
        default_factory=lambda: cast("list[Literal['gpkg', 'shp', 'geojson']]", ["gpkg", "shp", "geojson"])
    )
    crs: CrsStr = Field(default="EPSG:4549", description="CRS of exported layers (GeoJSON is always EPSG:4326)")
    maps: MapOptions = Field(default_factory=MapOptions)


class Scenario(Strict):
    """One planning scenario: data, rules, objective, solver, outputs."""

    version: Literal[1] = Field(description="schema version of this file")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="short id, used for the output folder")
    title: str | None = None
    description: str | None = None
    study_area: StudyArea
    demand: DemandSpec
    grid: GridSpec = Field(default_factory=GridSpec)
    density: DensitySpec = Field(default_factory=DensitySpec)
    planning_units: PlanningUnitsSpec
    existing_facilities: ExistingFacilitiesSpec = Field(default_factory=ExistingFacilitiesSpec)
    candidates: CandidatesSpec = Field(default_factory=CandidatesSpec)
    distance: DistanceSpec = Field(default_factory=DistanceSpec)
    rules: RulesSpec = Field(default_factory=RulesSpec)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    costs: CostSpec = Field(default_factory=CostSpec)
    modules: ModulesSpec = Field(default_factory=ModulesSpec)
    solver: SolverSpec = Field(default_factory=SolverSpec)
    outputs: OutputSpec = Field(default_factory=OutputSpec)
    source_path: Path | None = Field(default=None, exclude=True, description="set by the loader")
    source_sha256: str | None = Field(default=None, exclude=True, description="set by the loader")

    def speed_kmh(self) -> float:
        """Walking speed that turns time radii (NX-15MIN) into metres: the network's, else 4.5 km/h."""
        net = self.distance.network
        return float(net.speed_kmh) if net is not None else DEFAULT_SPEED_KMH

    def output_dir(self) -> Path:
        """The run's output folder (scenario value, else ``out/<name>``)."""
        return self.outputs.dir if self.outputs.dir is not None else Path("out") / self.name


# ---------------------------------------------------------------- loading


_VAR = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expand(value: Any, where: list[str | int], path: Path, env: dict[str, str]) -> Any:
    """Expand ``${VAR}`` in every string leaf; an unset variable is an error naming the field."""
    if isinstance(value, dict):
        return {k: _expand(v, [*where, k], path, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, [*where, i], path, env) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in env:
            raise ScenarioError(
                f"{path}: {_dotted(where)}: environment variable ${{{name}}} is not set",
                hints=(f"export {name}=… or write the path out in full",),
            )
        return env[name]

    return _VAR.sub(sub, value)


def _dotted(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the key (or list item) at ``loc``, or of its deepest existing parent key.

    A key's own line, never its value's: a nested block starts on the line after its key, so
    ``distanse:`` followed by ``mode: network`` is reported where ``distanse`` is written.
    """
    line = None
    for part in loc:
        nxt = None
        if isinstance(node, yaml.MappingNode):
            nxt, line = next(((v, k.start_mark.line + 1) for k, v in node.value if k.value == str(part)),
                             (None, line))
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at ``loc`` (for key suggestions)."""
    import types
    import typing

    model: Any = Scenario
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann]
        while candidates:
            a = candidates.pop()
            origin = typing.get_origin(a)
            if origin in (typing.Union, types.UnionType, list):
                candidates.extend(typing.get_args(a))
            elif isinstance(a, type) and issubclass(a, BaseModel):
                model = a
                break
        else:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _describe(err: Mapping[str, Any]) -> tuple[str, list[str]]:
    """One readable sentence for a pydantic error, plus hints (closest key, expected values)."""
    loc = tuple(err["loc"])
    hints: list[str] = []
    if err["type"] == "extra_forbidden":
        model = _model_at(loc)
        known = sorted(model.model_fields) if model else []
        known = [k for k in known if k not in ("source_path", "source_sha256")]
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
        msg = f"unknown key {loc[-1]!r}"
        if close:
            msg += f" — did you mean {close[0]!r}?"
        if known:
            hints.append("valid keys here: " + ", ".join(known))
        return msg, hints
    if err["type"] == "missing":
        return "required field is missing", [f"add `{loc[-1]}:` (see `siting init` for a template)"]
    got = err.get("input")
    msg = err["msg"]
    if err["type"] not in ("value_error",) and not isinstance(got, (dict, list)):
        msg += f" (got {got!r})"
    return msg.removeprefix("Value error, "), hints


def load(path: str | Path) -> Scenario:
    """Read, expand and validate a scenario file; raise :class:`ScenarioError` with file:line."""
    path = Path(path)
    if not path.exists():
        raise ScenarioError(
            f"{path}: scenario file not found", hints=("`siting init NAME` writes a template",)
        )
    if path.is_dir():
        raise ScenarioError(f"{path}: is a folder; give a scenario .yaml file")
    raw_bytes = path.read_bytes()
    try:
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ScenarioError(
            f"{path}: not UTF-8 text", hints=("save the file as UTF-8 (e.g. iconv -f GBK -t UTF-8)",)
        ) from None
    try:
        raw = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(
            f"{path}{where}: YAML syntax error: {problem}",
            hints=("check indentation (spaces, not tabs) and quotes on that line",),
        ) from None
    if raw is None:
        raise ScenarioError(f"{path}: the file is empty", hints=("`siting init NAME` writes a template",))
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping of keys (version:, name:, …), got {type(raw).__name__}")
    env = dict(os.environ)
    if ENV_VAR not in env:
        root = data_root(path.parent, required=False)
        if root is not None:
            env[ENV_VAR] = str(root)
    raw = _expand(raw, [], path, env)
    try:
        scenario = Scenario.model_validate(raw, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        # unknown keys first: a typo explains the "missing" errors that follow from it
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        loc = tuple(first["loc"])
        line = _line_of(tree, loc)
        msg, hints = _describe(first)
        where = f"{path}:{line}" if line else str(path)
        if len(errors) > 1:
            hints.append(f"{len(errors) - 1} more problem(s): " + "; ".join(
                f"{_dotted(tuple(e['loc']))}: {_describe(e)[0]}" for e in errors[1:4]))
        raise ScenarioError(f"{where}: {_dotted(loc)}: {msg}", hints=hints) from None
    return scenario.model_copy(
        update={"source_path": path.resolve(), "source_sha256": hashlib.sha256(raw_bytes).hexdigest()}
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to validate scenario YAML (``siting schema``)."""
    schema = Scenario.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://siting.example/scenario.schema.v{SCHEMA_VERSION}.json"
    schema.get("properties", {}).pop("source_path", None)
    schema.get("properties", {}).pop("source_sha256", None)
    return schema
