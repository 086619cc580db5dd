"""What the command modules share: loading a scenario with ``--set`` overrides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from emsfl_sim.errors import InputError


def parse_set_options(items: Sequence[str]) -> dict[str, object]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set expects FIELD=VALUE (got {item!r})")
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_with_overrides(path: str | Path, set_items: Sequence[str]) -> object:
    """Load a scenario applying ``--set`` overrides."""
    from emsfl_sim.scenario import load_scenario

    return load_scenario(path, overrides=parse_set_options(set_items) or None)
