"""Sweep points: the ``sweep:`` block expanded into one validated scenario per point."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emsfl_sim.errors import InputError
from emsfl_sim.run.runner import check_strategy_names
from emsfl_sim.scenario import (
    Scenario,
    StrategyConfig,
    SweepConfig,
    apply_overrides,
    resolve_raw,
    validate_raw,
)

_ID_SAFE = re.compile(r"[^A-Za-z0-9._+=-]+")
_MAX_ID_CHARS = 120

#: Where the overrides of a point come from (put before their paths in errors).
OVERRIDE_LABEL = "sweep.parameters."


@dataclass
class SweepPoint:
    """One point of a sweep.

    Attributes
    ----------
    index:
        Position in the deterministic expansion order (0-based).
    id:
        Filesystem-safe stable name, e.g. ``p003-link.elevation_mask_deg=40-seed=1``.
    overrides:
        Dotted path -> value applied to the base scenario (``seed`` included when swept).
    raw:
        The point's raw scenario mapping (overrides applied, ``sweep`` removed).
    scenario:
        The validated scenario, or None when the point is invalid.
    error:
        The one-line InputError of an invalid point.
    """

    index: int
    id: str
    overrides: dict[str, Any]
    raw: dict[str, Any]
    scenario: Scenario | None = None
    error: str | None = None

    @property
    def seed(self) -> int | None:
        """The point's seed (None if the raw value is not an integer)."""
        value = self.raw.get("seed", 0)
        return value if isinstance(value, int) else None

    @property
    def strategies(self) -> list[str]:
        """The strategy names of the point (those of the raw mapping when it is invalid)."""
        if self.scenario is not None:
            return list(self.scenario.strategy.names)
        section = self.raw.get("strategy")
        names = section.get("names") if isinstance(section, dict) else None
        if isinstance(names, str):
            return [names]
        return [str(n) for n in names] if isinstance(names, list) else list(StrategyConfig().names)


def _value_text(value: Any) -> str:
    """Short text of a swept value for point ids."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value)) if "e" not in repr(value) else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def point_id(index: int, overrides: dict[str, Any], width: int = 3) -> str:
    """Filesystem-safe id ``p<index>-<path>=<value>-...`` (hashed when too long)."""
    parts = [f"p{index:0{width}d}"]
    parts += [f"{key}={_value_text(value)}" for key, value in overrides.items()]
    text = _ID_SAFE.sub("_", "-".join(parts))
    if len(text) > _MAX_ID_CHARS:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        text = f"{text[: _MAX_ID_CHARS - 11]}~{digest}"
    return text


def raw_of(source: str | Path | Scenario | dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The raw mapping of a scenario file, mapping or Scenario, and the file it came from."""
    if isinstance(source, Scenario):
        return source.model_dump(mode="json"), source.source_file
    if isinstance(source, dict):
        return copy.deepcopy(source), None
    return resolve_raw(source), str(source)


def sweep_config(source: str | Path | Scenario | dict[str, Any], file: str | Path | None = None) -> SweepConfig:
    """The validated ``sweep:`` block of a scenario (InputError when the base is invalid or has none)."""
    raw, found_file = raw_of(source)
    file = file or found_file
    scenario = validate_raw(raw, file=file)
    if scenario.sweep is None:
        raise InputError("no sweep: block; add sweep: {parameters: {field.path: [values]}, seeds: [0, 1]} "
                         "or use emsfl-sim run", file=file, field="sweep")
    return scenario.sweep


def _combinations(sweep: SweepConfig) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The swept paths and their value tuples in expansion order."""
    keys = list(sweep.parameters)
    lists = [sweep.parameters[k] for k in keys]
    if sweep.mode == "zip" and lists:
        combos: list[tuple[Any, ...]] = list(zip(*lists, strict=True))
    else:
        combos = list(itertools.product(*lists))  # no parameters: one empty combination
    if sweep.seeds:
        keys.append("seed")
        combos = [(*combo, seed) for combo in combos for seed in sweep.seeds]
    return keys, combos


def make_point(index: int, width: int, overrides: dict[str, Any], base: dict[str, Any],
               file: str | Path | None) -> SweepPoint:
    """One point: the base with ``overrides`` set, validated (an invalid point gets ``error``)."""
    point = SweepPoint(index, point_id(index, overrides, width), overrides, base)
    try:
        point.raw = apply_overrides(base, overrides, file=file, label=OVERRIDE_LABEL)
        scenario = validate_raw(point.raw, file=file)
        check_strategy_names(scenario.strategy.names, file=file)
        if file is not None:
            scenario._source_file = str(file)
        point.scenario = scenario
    except InputError as exc:
        point.error = str(exc) if exc.file or file is None else str(exc.with_file(file))
    return point


def expand_sweep(source: str | Path | Scenario | dict[str, Any], file: str | Path | None = None) -> list[SweepPoint]:
    """All points of a scenario's sweep, in a deterministic order.

    ``product`` crosses the parameter lists (first parameter slowest), ``zip``
    pairs them; ``seeds`` is a further (innermost) dimension that overrides
    ``seed``. Each point's scenario is the base with the overrides applied and
    the ``sweep`` block removed, validated on its own (strategy names included):
    an invalid value makes that point invalid (``error`` set) without stopping
    the expansion.

    Parameters
    ----------
    source:
        A scenario file path, a raw mapping, or a validated Scenario.
    file:
        File named in error messages (default: the path given).

    Returns
    -------
    list[SweepPoint]
        The points in expansion order.

    Raises
    ------
    InputError
        When the base scenario is invalid or has no (or an empty) sweep block.
    """
    raw, found_file = raw_of(source)
    file = file or found_file
    keys, combos = _combinations(sweep_config(raw, file))
    base = {k: v for k, v in raw.items() if k != "sweep"}
    width = max(3, len(str(len(combos) - 1)))
    return [make_point(index, width, dict(zip(keys, combo, strict=True)), base, file)
            for index, combo in enumerate(combos)]
