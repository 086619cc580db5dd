"""What the command modules share: loading a scenario with ``--set`` overrides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emsfl_sim.errors import InputError

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
    return out


def load_with_overrides(path: str | Path, set_items: Sequence[str]) -> Scenario:
    """Load a scenario applying ``--set`` overrides (errors name ``--set PATH``)."""
    from emsfl_sim.scenario import load_scenario

    return load_scenario(path, overrides=parse_set_options(set_items) or None, label=SET_LABEL)
