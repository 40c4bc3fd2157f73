"""Property-based tests (hypothesis): valid scenarios load; mangled ones fail with exit 2, never worse.

Two families: (1) the default scenario with numeric fields set to random values inside their
valid ranges loads and keeps the values; (2) random edits of a scenario's YAML text (delete a
line, duplicate a line — hence a key —, change a value's type, insert junk characters, change an
indentation) either pass ``siting validate`` or fail with exit 2 and an ``error:`` line, never
another exit code, an internal error or a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from _badcases import default_raw, invoke, make_world, set_key, world_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siting import scenario as scenario_mod
from siting._errors import SitingError
from siting.solve import MAX_SEED

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

pos = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
nonneg = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
VALID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "grid.cell_size_m": st.floats(min_value=1.0, max_value=5000.0),
    "density.radius_m": pos,
    "costs.site": nonneg,
    "costs.bed": nonneg,
    "costs.expansion_fixed": nonneg,
    "costs.expansion_bed": nonneg,
    "modules.sizes": st.lists(st.integers(min_value=1, max_value=2000), min_size=1, max_size=8),
    "modules.expansion_beds": st.integers(min_value=1, max_value=500),
    "existing_facilities.default_beds": st.integers(min_value=0, max_value=5000),
    "existing_facilities.max_expansion_modules": st.integers(min_value=0, max_value=20),
    "candidates.generate.spacing_m": pos,
    "distance.network.speed_kmh": st.floats(min_value=0.1, max_value=120.0),
    "distance.network.snap_limit_m": pos,
    "solver.time_limit_s": st.floats(min_value=0.01, max_value=1e5),
    "solver.mip_gap": st.floats(min_value=0.0, max_value=0.999),
    "solver.threads": st.integers(min_value=1, max_value=64),
    "solver.seed": st.integers(min_value=0, max_value=MAX_SEED),
    "outputs.maps.dpi": st.integers(min_value=1, max_value=1200),
}


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"))


@SETTINGS
@given(changes=st.fixed_dictionaries({}, optional=VALID_FIELDS))
def test_valid_numeric_mutations_load(tmp_path: Path, default_scenario_path: Path, changes: dict[str, Any]) -> None:
    raw = default_raw(default_scenario_path)
    for key, value in changes.items():
        set_key(raw, key, value)
    path = tmp_path / "valid.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    sc = scenario_mod.load(path)
    for key, value in changes.items():
        got = _get(sc, key)
        want = sorted(set(value)) if key == "modules.sizes" else value
        assert got == pytest.approx(want), key


# ---------------------------------------------------------------- text mutations


JUNK = st.sampled_from(["\t", ":", "- ", "{", "}", "[", "]", "'", '"', "#", "&a", "*a", "!!python/object:os.system",
                        "%", "@", "`", "\x00", "\ufeff", "汉字", "---", "...", "? ", "|", ">", "${X}", "~"])
TYPES = st.sampled_from(["[]", "{}", "null", "true", "-1", "0", "1e400", "nan", "'text'", "[1, 2]", "{a: 1}",
                         "2024-01-01", "0x1F", ".inf", "''"])


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """One to three random edits of a YAML text."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if not lines:
            break
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "retype", "junk", "indent", "dedent"]))
        line = lines[i]
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, line)
        elif kind == "retype" and ":" in line:
            lines[i] = line.split(":", 1)[0] + ": " + draw(TYPES)
        elif kind == "junk":
            at = draw(st.integers(min_value=0, max_value=len(line)))
            lines[i] = line[:at] + draw(JUNK) + line[at:]
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(min_value=1, max_value=4)) + line
        elif kind == "dedent":
            lines[i] = line.lstrip()
    return "\n".join(lines) + "\n"


WORLD_TEXT = yaml.safe_dump(world_raw(), allow_unicode=True, sort_keys=False)


@SETTINGS
@given(text=mutated(WORLD_TEXT))
def test_mangled_world_scenario_validates_or_exits_2(world: Path, text: str) -> None:
    """`siting validate` on a mangled scenario whose data exist: exit 0 or 2, never a crash."""
    path = world.parent / "mangled.yaml"
    path.write_text(text, encoding="utf-8")
    result = invoke(["validate", str(path)])
    out = result.output
    assert result.exit_code in (0, 2), f"exit {result.exit_code} for:\n{text}\n{out}"
    assert "Traceback" not in out and "internal error" not in out, f"{text}\n{out}"
    if result.exit_code == 2:
        assert out.startswith("error:"), out


@SETTINGS
@given(data=st.data())
def test_mangled_default_scenario_loads_or_raises_scenario_error(default_scenario_path: Path, tmp_path: Path,
                                                                 data: st.DataObject) -> None:
    """The loader alone on the (longer, commented) default scenario: a scenario or a SitingError."""
    text = data.draw(mutated(default_scenario_path.read_text(encoding="utf-8")))
    path = tmp_path / "mangled.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        scenario_mod.load(path)
    except SitingError as exc:
        assert exc.exit_code == 2
        assert str(exc).startswith(str(path)), str(exc)
