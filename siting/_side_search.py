"""The window search of :mod:`siting._lns` in a second process, beside the main HiGHS solve.

Why a process: at city scale the planning model's 60 s are spent half on HiGHS's bound (its first
cut round alone takes 30-40 s at 200k cells × 20k sites) and half on a weak incumbent; run before
HiGHS, the window search would take the time the bound needs. Beside it, on the second core, it
improves the incumbent while HiGHS (on one thread, which costs it little) raises the bound. A
subprocess (``python -m siting._side_search``), not a thread or a fork: HiGHS keeps one thread
scheduler per process, and a subprocess never re-runs the caller's ``__main__``.

The problem goes to the worker as an ``.npz`` in a private temporary folder and the improved
selection comes back the same way (written atomically); anything that goes wrong in the worker
only means "no side result" — the main solve never depends on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from siting.solve import MilpProblem

WORKER_MODULE = "siting._side_search"


@dataclass
class SideSearch:
    """A running window search; :meth:`collect` its result or :meth:`stop` it."""

    proc: subprocess.Popen
    folder: Path
    deadline: float  # wall clock (time.time()) by which the worker has written its result

    @classmethod
    def start(cls, problem: MilpProblem, x: np.ndarray, time_limit_s: float) -> SideSearch | None:
        """Start the worker on ``problem`` from the feasible ``x``, due within ``time_limit_s`` of now.

        The deadline is wall-clock time shared with the worker, so its start-up counts against it.
        None if the worker cannot start.
        """
        deadline = time.time() + float(time_limit_s)
        folder = Path(tempfile.mkdtemp(prefix="siting-side-"))
        try:
            A = sparse.csr_array(problem.A)
            np.savez(folder / "problem.npz", c=problem.c, data=A.data, indices=A.indices, indptr=A.indptr,
                     shape=np.array(A.shape), row_lb=problem.row_lb, row_ub=problem.row_ub, col_lb=problem.col_lb,
                     col_ub=problem.col_ub, integrality=problem.integrality, x=np.asarray(x, dtype=np.float64),
                     deadline=np.array(deadline))
            proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, str(folder)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return cls(proc, folder, deadline)

    def collect(self, grace_s: float = 0.5) -> tuple[np.ndarray, dict] | None:
        """Wait for the worker until its deadline (+ ``grace_s``); its (x, stats), or None if it failed or is late."""
        try:
            self.proc.wait(timeout=max(0.0, self.deadline - time.time()) + grace_s)
        except subprocess.TimeoutExpired:
            self.stop()
            return None
        try:
            if self.proc.returncode != 0:
                return None
            with np.load(self.folder / "result.npz") as z:
                stats = {"windows": int(z["windows"]), "improvements": int(z["improvements"]),
                         "gain": float(z["gain"]), "seconds": float(z["seconds"])}
                return np.array(z["x"]), stats
        except (OSError, KeyError, ValueError):
            return None
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def stop(self) -> None:
        """Kill the worker (the main solve no longer needs it) and remove its folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def main(folder: str) -> int:
    """Worker: read ``problem.npz``, run the window search, write ``result.npz`` atomically."""
    from siting._lns import improve_milp_by_windows

    path = Path(folder)
    with np.load(path / "problem.npz") as z:
        A = sparse.csr_array((z["data"], z["indices"], z["indptr"]), shape=tuple(int(v) for v in z["shape"]))
        problem = MilpProblem(c=z["c"], A=A, row_lb=z["row_lb"], row_ub=z["row_ub"], col_lb=z["col_lb"],
                              col_ub=z["col_ub"], integrality=z["integrality"].astype(bool))
        x0, deadline = z["x"], float(z["deadline"])
    margin = 0.2 + 1e-8 * problem.A.nnz  # writing the result (about a second at 10^8 nonzeros)
    x, stats = improve_milp_by_windows(problem, x0, time_limit_s=deadline - time.time() - margin)
    tmp = path / "result.tmp.npz"
    np.savez(tmp, x=x, windows=stats["windows"], improvements=stats["improvements"], gain=stats["gain"],
             seconds=stats.get("seconds", 0.0))
    os.replace(tmp, path / "result.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
