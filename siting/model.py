"""The planning model: sparse MILP for coverage (ZJ-R500/ZJ-R1000), beds per unit (ZJ-BEDS),
existing facilities (keep/expand/close), modular sizes, budgets — and its diagnosis.

STUB — contract only; implemented under issue 6.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SolverInfo:
    name: str
    status: str  # optimal | time_limit | infeasible | no_solution
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """The chosen plan and everything the report needs to explain it.

    new_sites: site (int column of the reach matrix), site_id, beds, cost, unit_id,
        nursing_beds, dementia_beds (when those rules are enforced).
    existing: site, site_id, name, action ("kept" | "expanded" | "closed"), beds_before,
        beds_added, beds_after, beds_assumed, cost.
    open_before / open_after: bool per site (existing open before; all open after).
    covered_before / covered_after: bool per demand cell (a cell with no radius is False).
    uncoverable: bool per demand cell — owed a radius, but no site at all within it.
    units: unit_id, name, elderly, beds_required, beds_existing, beds_new, deficit_before,
        deficit_after (>= 0 beds short).
    cost_total: CNY; solver: SolverInfo; diagnosis: dict when infeasible (see model docs);
    curve: coverage curve rows (limit, covered_elderly, beds, cost, status) when asked for.
    """

    objective_kind: str
    new_sites: pd.DataFrame
    existing: pd.DataFrame
    open_before: np.ndarray
    open_after: np.ndarray
    covered_before: np.ndarray
    covered_after: np.ndarray
    uncoverable: np.ndarray
    units: pd.DataFrame
    cost_total: float
    solver: SolverInfo
    diagnosis: dict[str, Any] | None = None
    curve: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def plan(scenario: Any, rules: Any, demand: Any, sites: Any, reach: Any) -> Plan:
    """Build and solve the planning model of a scenario."""
    raise NotImplementedError("not implemented yet: model")
