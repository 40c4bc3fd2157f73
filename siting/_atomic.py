"""Atomic output folders: a run writes into a temporary sibling, then swaps it in.

An earlier run's folder is never left half-overwritten: until the swap it is untouched;
during the swap (two renames) it is parked as ``.<name>.previous`` and restored by the next
run if the process died between the renames.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._errors import DataError


def _previous(final: Path) -> Path:
    return final.parent / f".{final.name}.previous"


def recover(final: Path) -> None:
    """Restore a folder parked by a swap that was interrupted between its two renames."""
    prev = _previous(final)
    if prev.exists() and not final.exists():
        os.replace(prev, final)
    elif prev.exists():
        shutil.rmtree(prev, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``final``; on error it is removed."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        recover(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as exc:
        raise DataError(
            f"{final}: cannot write the output folder: {exc.strerror or exc}",
            hints=("choose another folder with --out, or fix its permissions",),
        ) from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o755)
    prev = _previous(final)
    if final.exists():
        os.replace(final, prev)
    os.replace(tmp, final)
    shutil.rmtree(prev, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file through a temporary name and rename (never a half-written file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
