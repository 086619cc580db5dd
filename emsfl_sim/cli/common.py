"""What the command modules share: loading a scenario with ``--set`` overrides, output path checks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emsfl_sim.errors import InputError, os_error

if TYPE_CHECKING:
    from emsfl_sim.scenario import Scenario

#: Put before an override's path in its errors.
SET_LABEL = "--set "


def parse_set_options(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}`` (values parsed as YAML).

    Raises
    ------
    InputError
        For an item without ``=`` or whose value is not valid YAML (field ``--set PATH``).
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"expects FIELD=VALUE, e.g. --set link.elevation_mask_deg=40 (got {item!r})",
                             field="--set")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InputError(f"the value {value!r} is not valid YAML ({problem}); quote text that holds "
                             "YAML characters, e.g. --set 'name=\"a: b\"'", field=f"{SET_LABEL}{key}") from None
        except ValueError as exc:  # PyYAML's timestamp constructor: a date-like value that is no date
            raise InputError(f"the value {value!r} is not a valid date or time ({exc}); use ISO 8601, e.g. "
                             "2023-07-18T00:00:00Z", field=f"{SET_LABEL}{key}") from None
    return out


def load_with_overrides(path: str | Path, set_items: Sequence[str]) -> Scenario:
    """Load a scenario applying ``--set`` overrides (errors name ``--set PATH``)."""
    from emsfl_sim.scenario import load_scenario

    return load_scenario(path, overrides=parse_set_options(set_items) or None, label=SET_LABEL)


def check_writable_directory(path: str | Path, field: str | None = None) -> Path:
    """Create ``path`` if missing and check a file can be written in it, before long work starts.

    Raises
    ------
    InputError
        One line naming the path and what to do (a file in the way, permission
        denied, a read-only or full disk).
    """
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker == path:
        raise InputError("is a file, not a folder; give a folder path (or remove the file)", file=path, field=field)
    if blocker is not None:
        raise InputError(f"{blocker} is a file, not a folder, so this path cannot be created; choose another path",
                         file=path, field=field)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check.")
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as exc:
        # name the folder the user gave, or the part of it that is in the way
        where = exc.filename if exc.filename and Path(exc.filename).parent != path else path
        raise os_error(exc, where, field) from exc
    return path


def check_writable_file(path: str | Path, field: str | None = None) -> Path:
    """Check ``path`` can be written as a file (its folder is created if missing)."""
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder, not a file; give a file name inside it", file=path, field=field)
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InputError(f"{blocker} is a file, not a folder, so this file cannot be written; choose another path",
                         file=path, field=field)
    check_writable_directory(path.parent, field)
    return path
