"""One adapter over the MILP solvers: HiGHS (highspy, sparse matrix passed directly) and CBC.

STUB — contract only; implemented under issue 6.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import sparse

Status = Literal["optimal", "time_limit", "infeasible", "no_solution"]


@dataclass(frozen=True)
class MilpProblem:
    """min/max c·x  s.t.  row_lb <= A x <= row_ub,  col_lb <= x <= col_ub,  x_j integer where integrality.

    A is scipy.sparse CSR (n_rows × n_cols). ±inf bounds mean "none". Names are optional and
    only used for diagnostics (never one Python object per matrix entry).
    """

    c: np.ndarray
    A: sparse.csr_array
    row_lb: np.ndarray
    row_ub: np.ndarray
    col_lb: np.ndarray
    col_ub: np.ndarray
    integrality: np.ndarray  # bool per column
    sense: Literal["min", "max"] = "min"
    offset: float = 0.0
    row_names: tuple[str, ...] | None = None
    col_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SolverOptions:
    name: Literal["highs", "cbc"] = "highs"
    time_limit_s: float | None = None
    mip_gap: float = 0.0
    threads: int = 2
    seed: int = 0
    verbose: bool = False


@dataclass(frozen=True)
class SolveResult:
    """What a solve returns; never "optimal" for a time-limited incumbent."""

    status: Status
    x: np.ndarray | None
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    solver: str
    meta: dict[str, Any] = field(default_factory=dict)


def solve_milp(problem: MilpProblem, options: SolverOptions = SolverOptions(),
               warm_start: np.ndarray | None = None) -> SolveResult:
    """Solve a sparse MILP with the chosen solver."""
    raise NotImplementedError("not implemented yet: solve")
