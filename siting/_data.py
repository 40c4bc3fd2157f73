"""Where the real data lives, and how files are hashed.

Real data is never copied into the repository: it is found through a data root,
``$SITING_DATA`` if set, else a ``shared/data`` folder next to the checkout
(``../shared/data`` seen from the repository, the working directory or the scenario).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ._errors import DataError

ENV_VAR = "SITING_DATA"
_PACKAGE_DIR = Path(__file__).resolve().parent


def data_root(near: Path | None = None, *, required: bool = True) -> Path | None:
    """Return the data root: ``$SITING_DATA``, else the first ``../shared/data`` found.

    Searched from ``near`` (e.g. the scenario's folder) and its parents, the working
    directory and its parents, then the package's checkout.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        root = Path(env).expanduser()
        if root.is_dir():
            return root.resolve()
        if required:
            raise DataError(
                f"${ENV_VAR}={env!r} is not a folder",
                hints=(f"set {ENV_VAR} to the folder that holds hangzhou_westlake/, or unset it",),
            )
        return None
    starts = [p for p in (near, Path.cwd(), _PACKAGE_DIR) if p is not None]
    for start in starts:
        for base in (start.resolve(), *start.resolve().parents):
            cand = base / "shared" / "data"
            if cand.is_dir():
                return cand
    if required:
        raise DataError(
            "no data root: $SITING_DATA is not set and no ../shared/data folder was found",
            hints=(f"export {ENV_VAR}=/path/to/shared/data (see data/README.md)",),
        )
    return None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (streamed; large rasters and graphs are fine)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
