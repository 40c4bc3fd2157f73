"""One adapter over the MILP solvers: HiGHS (highspy, sparse matrix passed directly) and CBC.

``solve_milp`` takes a :class:`MilpProblem` (sparse CSR constraint matrix, bounds, integrality)
and returns a :class:`SolveResult` whose ``status`` is one of ``optimal`` | ``time_limit`` |
``infeasible`` | ``no_solution``. A time-limited incumbent is never reported as optimal.
Solver exceptions are re-raised as :class:`siting._errors.SolverError`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from scipy import sparse

from siting._errors import SolverError

Status = Literal["optimal", "time_limit", "infeasible", "no_solution"]

_INF = 1e30  # both solvers treat |bound| >= 1e20..1e30 as infinite
FEAS_TOL = 1e-6  # row, bound and integrality tolerance of is_feasible
MIN_RESOLVE_S = 0.5  # a re-solve with less time left than this is not started


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


MAX_SEED = 2**31 - 2  # HiGHS's random_seed is a C int and CBC gets seed + 1 (randomCbcSeed)


@dataclass(frozen=True)
class SolverOptions:
    name: Literal["highs", "cbc"] = "highs"
    time_limit_s: float | None = None
    mip_gap: float = 0.0
    threads: int = 2
    seed: int = 0
    verbose: bool = False
    max_nodes: int | None = None  # HiGHS branch-and-bound node limit: a deterministic work cap


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
    """Solve a sparse MILP with the chosen solver (``options.name``: "highs" or "cbc").

    ``warm_start`` is a full column vector used as the starting incumbent (ignored by the
    solver when infeasible).
    """
    _check_problem(problem)
    if warm_start is not None:
        warm_start = np.asarray(warm_start, dtype=np.float64)
        if warm_start.shape != (problem.A.shape[1],):
            raise SolverError(f"warm_start has shape {warm_start.shape}, expected ({problem.A.shape[1]},); "
                              "pass one value per column or None")
    if options.name == "highs":
        t0 = time.perf_counter()
        res = _solve_highs(problem, options, warm_start)
        if warm_start is not None and not _consistent(problem, res):
            res = _after_inconsistent_start(problem, options, res, t0)
        return res
    if options.name == "cbc":
        return _solve_cbc(problem, options, warm_start)
    raise SolverError(f"solver {options.name!r} is unknown; use 'highs' or 'cbc'")


def _after_inconsistent_start(p: MilpProblem, o: SolverOptions, res: SolveResult, t0: float) -> SolveResult:
    """HiGHS returned an x whose own objective is not the one it reported.

    HiGHS 1.16 can hand back the MIP start's x with the value of a better solution it found in
    presolved space (cf. HiGHS #2439). A feasible x is kept at its true value, never as
    "optimal"; only a claimed optimum (or an unusable x) is solved again without the start, in the
    time the limit has left, and the better of the two plans is returned. Each run's dual bound
    is valid, so the tighter one is kept.
    """
    kept = None
    if res.x is not None and is_feasible(p, res.x):
        value = float(p.c @ res.x + p.offset)
        kept = replace(res, status="time_limit", objective=value, gap=_gap(value, res.bound),
                       meta={**res.meta, "objective_recomputed": True})
        if res.status != "optimal":
            return kept
    left = None if o.time_limit_s is None else o.time_limit_s - (time.perf_counter() - t0)
    if left is not None and left <= MIN_RESOLVE_S:
        return kept if kept is not None else replace(res, status="no_solution", x=None, objective=None, gap=None)
    again = _solve_highs(p, replace(o, time_limit_s=left), None)
    again = replace(again, meta={**again.meta, "warm_start_discarded": True})
    return _better(p, kept, again)


def _better(p: MilpProblem, a: SolveResult | None, b: SolveResult) -> SolveResult:
    """The result with the better objective (``b`` on ties), carrying the tighter of both bounds."""
    if a is None or a.objective is None:
        return b
    best = b
    if b.objective is None or (a.objective < b.objective if p.sense == "min" else a.objective > b.objective):
        best = a
    bounds = [x.bound for x in (a, b) if x.bound is not None]
    if not bounds or best.status == "optimal":
        return best
    bound = max(bounds) if p.sense == "min" else min(bounds)
    return replace(best, bound=bound, gap=_gap(best.objective, bound))


def is_feasible(problem: MilpProblem, x: np.ndarray, tol: float = FEAS_TOL) -> bool:
    """Every bound, row and integrality holds for ``x`` (within ``tol``, relative on large rows)."""
    x = np.asarray(x, dtype=float)
    if x.shape != (problem.A.shape[1],) or not np.all(np.isfinite(x)):
        return False
    if np.any(x < problem.col_lb - tol) or np.any(x > problem.col_ub + tol):
        return False
    if np.any(np.abs(x[problem.integrality] - np.round(x[problem.integrality])) > tol):
        return False
    ax = problem.A @ x
    lo = np.where(np.isfinite(problem.row_lb), problem.row_lb, 0.0)
    hi = np.where(np.isfinite(problem.row_ub), problem.row_ub, 0.0)
    return bool(np.all(ax >= problem.row_lb - tol * (1.0 + np.abs(lo)))
                and np.all(ax <= problem.row_ub + tol * (1.0 + np.abs(hi))))


# --------------------------------------------------------------------------------------------
# shared helpers


def _consistent(p: MilpProblem, res: SolveResult, tol: float = 1e-6) -> bool:
    """True when the returned x reproduces the returned objective (or there is no x)."""
    if res.x is None or res.objective is None:
        return True
    value = float(np.dot(p.c, res.x) + p.offset)
    return abs(value - res.objective) <= tol * max(1.0, abs(res.objective))


def _check_problem(p: MilpProblem) -> None:
    """Fail early, with a SolverError, on arrays whose sizes do not match the matrix."""
    n_rows, n_cols = p.A.shape
    for name, arr, n in (("c", p.c, n_cols), ("col_lb", p.col_lb, n_cols), ("col_ub", p.col_ub, n_cols),
                         ("integrality", p.integrality, n_cols), ("row_lb", p.row_lb, n_rows),
                         ("row_ub", p.row_ub, n_rows)):
        if np.shape(arr) != (n,):
            raise SolverError(f"MilpProblem.{name} has shape {np.shape(arr)}, expected ({n},) for a "
                              f"{n_rows}×{n_cols} matrix; build one entry per {'row' if 'row' in name else 'column'}")
    if p.sense not in ("min", "max"):
        raise SolverError(f"MilpProblem.sense is {p.sense!r}; use 'min' or 'max'")


def _gap(objective: float | None, bound: float | None) -> float | None:
    """Relative gap |obj - bound| / max(|obj|, 1e-9), as HiGHS defines it; 0 when both are 0."""
    if objective is None or bound is None or not math.isfinite(bound):
        return None
    diff = abs(objective - bound)
    if diff <= 1e-9:
        return 0.0
    return diff / max(abs(objective), 1e-9)


def _finite(a: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.float64), -np.inf, np.inf)


# --------------------------------------------------------------------------------------------
# HiGHS


def lp_row_duals(p: MilpProblem, o: SolverOptions) -> np.ndarray | None:
    """Row duals of the LP relaxation by HiGHS's interior point method without crossover.

    Fast at scale (8 s for the 200k × 20k max-coverage LP) but possibly unconverged when the time
    limit stops it: for callers that evaluate a bound of their own from the duals
    (``siting._mclp_bound``), never for a claim of optimality. None when HiGHS returns none.
    """
    import highspy

    try:
        h = _new_highs(highspy, replace(p, integrality=np.zeros(p.c.size, dtype=bool)), o)
        h.setOptionValue("solver", "ipm")
        h.setOptionValue("run_crossover", "off")
        if h.run() == highspy.HighsStatus.kError:
            return None
        sol = h.getSolution()
    except Exception as exc:  # highspy raises plain RuntimeError/TypeError
        raise SolverError(f"HiGHS failed on an LP relaxation: {exc}; try solver='cbc'") from exc
    if not sol.dual_valid:
        return None
    duals = np.asarray(sol.row_dual, dtype=np.float64)
    return duals if duals.shape == (p.A.shape[0],) and np.all(np.isfinite(duals)) else None


def _solve_highs(p: MilpProblem, o: SolverOptions, warm: np.ndarray | None) -> SolveResult:
    try:
        import highspy
    except ImportError as exc:  # pragma: no cover - highspy is a hard dependency
        raise SolverError("HiGHS: highspy is not installed; `pip install highspy` or use solver='cbc'") from exc
    t0 = time.perf_counter()
    try:
        h = _new_highs(highspy, p, o)
        if warm is not None:
            idx = np.arange(warm.size, dtype=np.int32)
            h.setSolution(int(warm.size), idx, warm)
        if h.run() == highspy.HighsStatus.kError:
            raise SolverError("HiGHS stopped with an error before solving; rerun with --debug, "
                              "or try solver 'cbc'")
        status, x, obj, bound = _highs_read(h, highspy, p)
    except SolverError:
        raise
    except Exception as exc:  # highspy raises plain RuntimeError/TypeError
        raise SolverError(f"HiGHS failed: {exc}; rerun with verbose=True to see the solver log, "
                          "or try solver='cbc'") from exc
    secs = time.perf_counter() - t0
    return SolveResult(status=status, x=x, objective=obj, bound=bound, gap=_gap(obj, bound),
                       seconds=secs, solver="highs",
                       meta={"model_status": str(h.getModelStatus()),
                             "nodes": int(h.getInfo().mip_node_count)})


def _new_highs(highspy: Any, p: MilpProblem, o: SolverOptions) -> Any:
    """A Highs instance with the options set and ``p`` passed in."""
    # HiGHS keeps one thread scheduler per process: a solve with other `threads` than an
    # earlier one errors unless the scheduler is reset first.
    highspy.Highs.resetGlobalScheduler(True)
    with _silenced_stdout(o.verbose):  # the constructor prints a banner to fd 1
        h = highspy.Highs()
    _highs_options(h, o)
    _highs_pass(h, highspy, p)
    return h


@contextlib.contextmanager
def _silenced_stdout(verbose: bool) -> Iterator[None]:
    """Send C-level stdout to /dev/null (HiGHS prints its banner there, not through Python)."""
    if verbose:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _highs_options(h: Any, o: SolverOptions) -> None:
    h.setOptionValue("output_flag", bool(o.verbose))
    h.setOptionValue("log_to_console", bool(o.verbose))
    h.setOptionValue("mip_rel_gap", float(o.mip_gap))
    h.setOptionValue("threads", int(o.threads))
    h.setOptionValue("random_seed", int(o.seed))
    if o.time_limit_s is not None:
        h.setOptionValue("time_limit", float(max(o.time_limit_s, 0.0)))
    if o.max_nodes is not None:
        h.setOptionValue("mip_max_nodes", int(o.max_nodes))


def _highs_pass(h: Any, highspy: Any, p: MilpProblem) -> None:
    """Pass the model in one call from the CSR arrays (rowwise format, no per-entry loop)."""
    A = sparse.csr_array(p.A)
    A.sum_duplicates()
    n_rows, n_cols = A.shape
    integ = np.asarray(p.integrality, dtype=bool).astype(np.int32)
    sense = 1 if p.sense == "min" else -1
    row_format = int(highspy.MatrixFormat.kRowwise.value)
    status = h.passModel(
        int(n_cols), int(n_rows), int(A.nnz), row_format, int(sense), float(p.offset),
        np.asarray(p.c, dtype=np.float64), _finite(p.col_lb), _finite(p.col_ub),
        _finite(p.row_lb), _finite(p.row_ub),
        A.indptr[:-1].astype(np.int32), A.indices.astype(np.int32), A.data.astype(np.float64), integ)
    if status == highspy.HighsStatus.kError:
        raise SolverError("HiGHS rejected the model (passModel returned an error); check for NaN "
                          "costs/bounds or lower > upper bounds")


def _highs_read(h: Any, highspy: Any, p: MilpProblem):
    """Map HiGHS model status to ours; return (status, x, objective, bound)."""
    ms = h.getModelStatus()
    info = h.getInfo()
    has_sol = int(info.primal_solution_status) == 2  # kSolutionStatusFeasible
    MS = highspy.HighsModelStatus
    if ms in (MS.kInfeasible,):
        return "infeasible", None, None, None
    if ms in (MS.kUnbounded, MS.kUnboundedOrInfeasible):
        raise SolverError(f"HiGHS: the model is {h.modelStatusToString(ms).lower()}; a siting model "
                          "should be bounded — check the objective signs and column bounds")
    if ms in (MS.kModelError, MS.kLoadError, MS.kSolveError, MS.kPresolveError, MS.kPostsolveError,
              MS.kMemoryLimit):
        raise SolverError(f"HiGHS: {h.modelStatusToString(ms)}; rerun with verbose=True for the log")
    if ms == MS.kModelEmpty:
        x = np.asarray(p.col_lb, dtype=np.float64).copy()
        x[~np.isfinite(x)] = 0.0
        obj = float(np.dot(p.c, x) + p.offset)
        return "optimal", x, obj, obj
    if not has_sol:
        return "no_solution", None, None, _bound(info, p)
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    obj = float(info.objective_function_value)
    bound = _bound(info, p)
    if ms == MS.kOptimal:
        if not p.integrality.any():
            bound = obj
        return "optimal", x, obj, bound
    return "time_limit", x, obj, bound


def _bound(info: Any, p: MilpProblem) -> float | None:
    if not p.integrality.any():
        return None
    b = float(info.mip_dual_bound)
    return b if math.isfinite(b) and abs(b) < _INF else None


# --------------------------------------------------------------------------------------------
# CBC via PuLP


def _solve_cbc(p: MilpProblem, o: SolverOptions, warm: np.ndarray | None) -> SolveResult:
    try:
        import pulp
    except ImportError as exc:  # pragma: no cover - pulp is a hard dependency
        raise SolverError("CBC: PuLP is not installed; `pip install pulp` or use solver='highs'") from exc
    t0 = time.perf_counter()
    prob, xs = _pulp_model(pulp, p)
    if warm is not None:
        for v, val in zip(xs, warm.tolist(), strict=True):
            v.setInitialValue(val)
    fd, log_path = tempfile.mkstemp(prefix="siting_cbc_", suffix=".log")
    os.close(fd)
    try:
        with warnings.catch_warnings():  # PuLP 3.3 flags PULP_CBC_CMD for 4.0; it is the bundled CBC
            warnings.simplefilter("ignore", DeprecationWarning)
            cmd = pulp.PULP_CBC_CMD(msg=False, timeLimit=o.time_limit_s, gapRel=o.mip_gap,
                                    threads=int(o.threads), warmStart=warm is not None,
                                    logPath=log_path,
                                    options=[f"randomCbcSeed {int(o.seed) + 1}"])
        prob.solve(cmd)
        log = _read_text(log_path)
        if o.verbose:
            print(log)
    except pulp.PulpSolverError as exc:
        raise SolverError(f"CBC failed: {exc}; rerun with verbose=True to see the CBC log, "
                          "or try solver='highs'") from exc
    finally:
        _unlink(log_path)
    status, x, obj, bound = _cbc_read(pulp, prob, xs, p, log)
    secs = time.perf_counter() - t0
    return SolveResult(status=status, x=x, objective=obj, bound=bound, gap=_gap(obj, bound),
                       seconds=secs, solver="cbc",
                       meta={"pulp_status": int(prob.status), "pulp_sol_status": int(prob.sol_status)})


def _pulp_model(pulp: Any, p: MilpProblem):
    """Build the PuLP model row by row from the CSR arrays (one LpAffineExpression per row)."""
    A = sparse.csr_array(p.A)
    A.sum_duplicates()
    n_rows, n_cols = A.shape
    # Always minimise: CBC 2.10 mishandles a MIP start together with -max (it keeps the start as
    # "optimal"), so a max problem is passed as min of -c and the signs are restored on reading.
    prob = pulp.LpProblem("siting", pulp.LpMinimize)
    lb, ub, integ = _finite(p.col_lb), _finite(p.col_ub), np.asarray(p.integrality, dtype=bool)
    new_var = getattr(prob, "add_variable", None) or pulp.LpVariable  # PuLP >= 3.3 prefers add_variable
    xs = [new_var(f"x{j}", _none_if_inf(lb[j]), _none_if_inf(ub[j]),
                  pulp.LpInteger if integ[j] else pulp.LpContinuous) for j in range(n_cols)]
    c = np.asarray(p.c, dtype=np.float64) * (1.0 if p.sense == "min" else -1.0)
    nz = np.flatnonzero(c)
    prob += pulp.LpAffineExpression([(xs[j], float(c[j])) for j in nz])
    indptr, indices, data = A.indptr, A.indices, A.data
    rlb, rub = _finite(p.row_lb), _finite(p.row_ub)
    for i in range(n_rows):
        s, e = indptr[i], indptr[i + 1]
        expr = pulp.LpAffineExpression(list(zip([xs[j] for j in indices[s:e]], data[s:e].tolist(), strict=True)))
        _add_row(pulp, prob, expr, rlb[i], rub[i], i)
    return prob, xs


def _add_row(pulp: Any, prob: Any, expr: Any, lo: float, hi: float, i: int) -> None:
    lo_f, hi_f = math.isfinite(lo) and lo > -_INF, math.isfinite(hi) and hi < _INF
    if lo_f and hi_f and lo == hi:
        prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintEQ, f"r{i}", float(lo)))
        return
    if lo_f:
        prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintGE, f"r{i}", float(lo)))
    if hi_f:
        prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"r{i}u" if lo_f else f"r{i}",
                                             float(hi)))


def _none_if_inf(v: float) -> float | None:
    return None if not math.isfinite(v) or abs(v) >= _INF else float(v)


def _cbc_read(pulp: Any, prob: Any, xs: list, p: MilpProblem, log: str):
    """Map PuLP's (status, sol_status) to ours; take the bound from the CBC log when it has one."""
    st, sol = int(prob.status), int(prob.sol_status)
    if st == pulp.LpStatusInfeasible or sol == pulp.LpSolutionInfeasible:
        return "infeasible", None, None, None
    if st == pulp.LpStatusUnbounded:
        raise SolverError("CBC: the model is unbounded; a siting model should be bounded — check the "
                          "objective signs and column bounds")
    if sol not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return "no_solution", None, None, _cbc_log_bound(log, p)
    x = np.array([v.varValue if v.varValue is not None else 0.0 for v in xs], dtype=np.float64)
    obj = float(np.dot(p.c, x) + p.offset)
    if sol == pulp.LpSolutionOptimal and "Stopped on" not in log:
        return "optimal", x, obj, obj if p.integrality.any() else None
    return "time_limit", x, obj, _cbc_log_bound(log, p)


_BOUND_RE = re.compile(r"^Lower bound:\s+(\S+)", re.MULTILINE)


def _cbc_log_bound(log: str, p: MilpProblem) -> float | None:
    """CBC prints 'Lower bound:' of the minimised objective, without the offset, when it stops early."""
    m = _BOUND_RE.search(log)
    if not m:
        return None
    try:
        b = float(m.group(1))
    except ValueError:
        return None
    if not math.isfinite(b) or abs(b) >= 1e20:
        return None
    return (b if p.sense == "min" else -b) + float(p.offset)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
