"""Shared fixtures: where the real data is, and the shipped scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from siting._data import data_root

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data root ($SITING_DATA or ../shared/data); tests need it."""
    root = data_root(REPO)
    assert root is not None
    return root


@pytest.fixture(scope="session")
def hangzhou(data_dir: Path) -> Path:
    return data_dir / "hangzhou_westlake"


@pytest.fixture(scope="session")
def default_scenario_path() -> Path:
    return SCENARIOS / "hangzhou_shangcheng.yaml"
