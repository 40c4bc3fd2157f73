"""Atomic outputs: a run killed at any moment never damages the previous results (issue 9).

The kill test runs the real console script (``python -m siting.cli run``) on the synthetic world
in a subprocess, sleeps a random time in [0, one full run], sends SIGKILL, and checks the output
folder: it is the earlier one byte for byte, or (if the run had finished) a complete new one; a
kill between the two renames of the swap is repaired by :func:`siting._atomic.recover`. The next
run after all the kills succeeds and leaves no temporary siblings.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _badcases import leftovers, make_previous_output, make_world, snapshot

from siting._atomic import atomic_dir, recover

KILL_TRIALS = 12
SEED = 20240909
COMPLETE = {"summary.json", "report.md", "manifest.json", "layers.gpkg"}


def _cmd(scenario: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "siting.cli", "run", str(scenario), "--out", str(out), "--quiet"]


def _is_complete(folder: Path) -> bool:
    names = {p.name for p in folder.iterdir()}
    if not names >= COMPLETE:
        return False
    json.loads((folder / "summary.json").read_text(encoding="utf-8"))  # parses: not half-written
    return True


@pytest.mark.slow
def test_sigkill_at_random_moments_never_damages_the_previous_output(tmp_path: Path) -> None:
    scenario = make_world(tmp_path / "world")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    first = subprocess.run(_cmd(scenario, tmp_path / "reference"), capture_output=True, text=True, timeout=300,
                           cwd=tmp_path, env=env)
    full_s = time.perf_counter() - t0
    assert first.returncode == 0, first.stderr
    reference_names = {p.relative_to(tmp_path / "reference").as_posix() for p in (tmp_path / "reference").rglob("*")}

    rng = random.Random(SEED)
    outcomes = {"previous kept": 0, "new complete": 0, "recovered mid-swap": 0, "swapped, killed while cleaning": 0}
    for trial in range(KILL_TRIALS):
        if out.exists():
            shutil.rmtree(out)
        before = make_previous_output(out)
        proc = subprocess.Popen(_cmd(scenario, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=tmp_path, env=env)
        time.sleep(rng.uniform(0.0, full_s))
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        if not out.exists():  # killed between the two renames of the swap
            assert (tmp_path / ".out.previous").exists(), f"trial {trial}: output folder gone, nothing parked"
            recover(out)
            assert snapshot(out) == before, f"trial {trial}: parked folder not restored intact"
            outcomes["recovered mid-swap"] += 1
        elif snapshot(out) == before:
            outcomes["previous kept"] += 1
        else:
            # the swap happened (the run may have been killed while deleting the parked folder)
            assert _is_complete(out), f"trial {trial}: half-written output under the final name (exit {code})"
            assert {p.relative_to(out).as_posix() for p in out.rglob("*")} == reference_names
            outcomes["new complete" if code == 0 else "swapped, killed while cleaning"] += 1
    print(f"\nkill trials: {KILL_TRIALS} (full run {full_s:.1f} s): {outcomes}")

    # the next run after the kills succeeds and cleans the leftovers of killed runs
    after = subprocess.run(_cmd(scenario, out), capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert after.returncode == 0, after.stderr
    assert _is_complete(out) and not (out / "SENTINEL.txt").exists()
    assert leftovers(tmp_path, "out") == []


# ---------------------------------------------------------------- the swap itself, in-process


def test_error_inside_the_block_keeps_the_old_folder(tmp_path: Path) -> None:
    final = tmp_path / "out"
    before = make_previous_output(final)
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "summary.json").write_text("{half", encoding="utf-8")
        raise RuntimeError("boom")
    assert snapshot(final) == before
    assert leftovers(tmp_path, "out") == []


def test_success_replaces_the_folder_whole(tmp_path: Path) -> None:
    final = tmp_path / "out"
    make_previous_output(final)
    with atomic_dir(final) as tmp:
        (tmp / "summary.json").write_text("{}", encoding="utf-8")
    assert sorted(p.name for p in final.iterdir()) == ["summary.json"]
    assert leftovers(tmp_path, "out") == []


def test_recover_restores_a_folder_parked_mid_swap(tmp_path: Path) -> None:
    final = tmp_path / "out"
    before = make_previous_output(final)
    os.replace(final, tmp_path / ".out.previous")  # the process died right after the first rename
    with atomic_dir(final) as tmp:  # the next run recovers first, then swaps
        assert snapshot(final) == before
        (tmp / "summary.json").write_text("{}", encoding="utf-8")
    assert sorted(p.name for p in final.iterdir()) == ["summary.json"]


def test_recover_removes_temporary_folders_of_dead_runs_only(tmp_path: Path) -> None:
    final = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".out.tmp-{dead_pid}-abc"
    live = tmp_path / f".out.tmp-{os.getppid()}-def"  # the test runner's parent is alive
    foreign = tmp_path / ".out.tmp-xyz"
    for d in (stale, live, foreign):
        d.mkdir()
    recover(final)
    assert not stale.exists()
    assert live.exists() and foreign.exists()


def test_output_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    from siting._errors import DataError

    blocker = tmp_path / "f"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="cannot write the output folder"), atomic_dir(blocker / "out"):
        pass
