"""Atomic output folders: a run writes into a temporary sibling, then swaps it in.

An earlier run's folder is never left half-overwritten: until the swap it is untouched;
during the swap (two renames) it is parked as ``.<name>.previous`` and restored by the next
run if the process died between the renames.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._errors import DataError


def _previous(final: Path) -> Path:
    return final.parent / f".{final.name}.previous"


def _tmp_prefix(final: Path) -> str:
    return f".{final.name}.tmp-{os.getpid()}-"


def _owner_alive(tmp: Path, final: Path) -> bool:
    """Whether the process that made temporary folder ``tmp`` (pid in its name) still runs."""
    rest = tmp.name.removeprefix(f".{final.name}.tmp-")
    pid_text = rest.split("-", 1)[0]
    if not pid_text.isdigit():
        return True  # not ours to judge: leave it
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def recover(final: Path) -> None:
    """Restore a folder parked by a swap that was interrupted between its two renames.

    Also removes temporary folders (``.<name>.tmp-<pid>-…``) left by runs that were killed
    before their swap (their process no longer exists).
    """
    final = Path(final)
    prev = _previous(final)
    if prev.exists() and not final.exists():
        os.replace(prev, final)
    elif prev.exists():
        shutil.rmtree(prev, ignore_errors=True)
    if final.parent.is_dir():
        for tmp in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
            if tmp.is_dir() and not _owner_alive(tmp, final):
                shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``final``; on error it is removed."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        recover(final)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final), dir=final.parent))
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
