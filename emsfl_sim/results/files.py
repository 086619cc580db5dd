"""One atomic file write for every writer: write a temporary file beside the target, then rename.

Readers (a report, a resumed sweep, a concurrent run sharing a cache) never see a
half-written file: ``os.replace`` is atomic on POSIX and Windows within one directory.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary handle on a temporary file beside ``path``, renamed to ``path`` when the block succeeds.

    For writers that produce a file piece by piece (the event table of a long run, batch by
    batch); on an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it to ``path``.

    Parameters
    ----------
    path
        The file to create or replace (its directory is created if missing).
    write
        Writes the whole content to the binary handle it is given.
    """
    with atomic_open(path) as handle:
        write(handle)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (NaN and inf become null)."""
    atomic_write_text(path, json.dumps(jsonable(data), indent=2, default=str))


def jsonable(value: Any) -> Any:
    """``value`` with NaN/inf as ``None``, numpy scalars as Python numbers and keys as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, "item") and callable(value.item):
        return jsonable(value.item())
    return value
