"""Dotted-path overrides of raw scenario mappings: the one setter of ``--set``, sweeps and experiments.

A path names a field the way the scenario file nests it: ``link.elevation_mask_deg``,
``clusters.0.devices`` (a number indexes a list), ``clusters.devices`` (a name met at a
list of sections sets it in every entry), ``model.config_overrides.hidden_size`` (free
mappings take any key) or ``sweep.parameters.link.elevation_mask_deg`` (a mapping whose
values are not mappings takes the rest of the path as one key).

The path is checked against the schema while it is walked: an unknown key, a list index
out of range or a value where a section is expected is a one-line
:class:`~emsfl_sim.errors.InputError` naming the path. A new key is accepted only where
the schema allows it (a field not yet in the file, or a free mapping); the value itself
is checked when the scenario is validated (:func:`emsfl_sim.scenario.validate_raw`),
which then names the field it was set on.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel

from emsfl_sim.errors import InputError
from emsfl_sim.scenario.schema import Scenario

_PATH_HINT = "write dotted names such as link.elevation_mask_deg or clusters.0.devices"

#: Placeholder for a part of the raw mapping that is not there (schema-only checks).
_ABSENT: Any = object()


@dataclass(frozen=True)
class _Kind:
    """What the schema expects at one place of a path."""

    tag: Literal["section", "list", "mapping", "any", "value"]
    model: type[BaseModel] | None = None
    inner: Any = None  # list items / mapping values (an annotation)


def _alternatives(annotation: Any) -> list[_Kind]:
    """The kinds an annotation allows (``X | None`` allows the kind of ``X``)."""
    if annotation is Any:
        return [_Kind("any")]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [_Kind("section", model=annotation)]
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [kind for arg in typing.get_args(annotation) if arg is not type(None) for kind in _alternatives(arg)]
    args = typing.get_args(annotation)
    if origin is list:
        return [_Kind("list", inner=args[0] if args else Any)]
    if origin is dict:
        return [_Kind("mapping", inner=args[1] if len(args) > 1 else Any)]
    return [_Kind("value")]


def _kind(annotation: Any, current: Any = None, head: str | None = None) -> _Kind:
    """The kind to walk a value of ``annotation`` as.

    Where the annotation allows several (``list[str] | dict[str, str]``), the value in
    the file decides, else the next part of the path (a number: a list).
    """
    kinds = _alternatives(annotation)
    if isinstance(current, dict):
        order: tuple[str, ...] = ("section", "mapping", "any", "list")
    elif isinstance(current, list) or (head is not None and head.isdigit()):
        order = ("list", "any", "section", "mapping")
    else:
        order = ("section", "mapping", "list", "any")
    for tag in order:
        for kind in kinds:
            if kind.tag == tag:
                return kind
    return _Kind("value")


class _Walk:
    """One override being applied (or only checked against the schema)."""

    def __init__(self, dotted: str, value: Any, file: str | Path | None, label: str, apply: bool) -> None:
        self.dotted = dotted
        self.value = value
        self.file = file
        self.field = f"{label}{dotted}"
        self.apply = apply

    def checker(self) -> _Walk:
        """The same override, checked against the schema only."""
        check = copy.copy(self)
        check.apply = False
        return check

    def fail(self, message: str) -> InputError:
        """The one-line error of this override."""
        return InputError(message, file=self.file, field=self.field)

    def put(self, container: Any, key: Any) -> None:
        """Set the value (a copy) at ``container[key]`` unless only checking."""
        if self.apply:
            container[key] = copy.deepcopy(self.value)

    def child(self, container: Any, key: Any, kind: _Kind, trail: str) -> Any:
        """``container[key]`` ready to walk into (created or wrapped where the schema allows)."""
        if container is _ABSENT:
            return _ABSENT
        current = container.get(key) if isinstance(container, dict) else container[key]
        if kind.tag == "list" and isinstance(current, (dict, str)):
            current = [current]  # one walker shell / one TLE file given without a list
        if current is None:
            current = [] if kind.tag == "list" else {}
        wanted: tuple[type, ...] = (list,) if kind.tag == "list" else (dict, list) if kind.tag == "any" else (dict,)
        if not isinstance(current, wanted):
            what = "a list" if kind.tag == "list" else "a mapping"
            raise self.fail(f"{trail} is {_describe(current)}, not {what}; set {trail} itself")
        if self.apply:
            container[key] = current
        return current

    def walk(self, node: Any, kind: _Kind, parts: list[str], trail: str) -> None:
        """Walk ``parts`` from ``node`` (of schema kind ``kind``, reached by ``trail``)."""
        head, rest = parts[0], parts[1:]
        if kind.tag == "section":
            self._section(node, kind, head, rest, trail)
        elif kind.tag == "list":
            self._list(node, kind, head, rest, trail)
        elif kind.tag == "mapping" and _kind(kind.inner).tag in ("list", "value"):
            self.put(node, ".".join(parts))  # e.g. sweep.parameters: its keys are dotted paths themselves
        elif kind.tag in ("mapping", "any"):
            self._free(node, kind, head, rest, trail)
        else:
            raise self.fail(f"{trail} holds a value, not a section, so it has no {head!r}; set {trail} itself")

    def descend(self, node: Any, key: Any, kind: _Kind, path: str, rest: list[str]) -> None:
        """Walk ``rest`` inside ``node[key]`` (of kind ``kind``, reached by ``path``)."""
        if kind.tag == "value":
            raise self.fail(f"{path} holds a value, not a section, so it has no {rest[0]!r}; set {path} itself")
        self.walk(self.child(node, key, kind, path), kind, rest, path)

    def _section(self, node: Any, kind: _Kind, head: str, rest: list[str], trail: str) -> None:
        assert kind.model is not None
        fields = kind.model.model_fields
        if head not in fields:
            where = f"in {trail}" if trail else "at the top level"
            valid = sorted(fields)
            close = difflib.get_close_matches(head, valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(f"unknown key {head!r} {where}; {hint}valid keys: {', '.join(valid)}")
        path = f"{trail}.{head}" if trail else head
        current = node.get(head) if isinstance(node, dict) else None
        sub = _kind(fields[head].annotation, current, rest[0] if rest else None)
        if not rest:
            self.put(node, head)
            return
        self.descend(node, head, sub, path, rest)

    def _list(self, node: Any, kind: _Kind, head: str, rest: list[str], trail: str) -> None:
        item = _kind(kind.inner)
        if head.lstrip("-").isdigit():
            index = int(head)
            size = None if node is _ABSENT else len(node)
            if index < 0 or (size is not None and index >= size):
                entries = "no entries" if size == 0 else f"{size} entr{'y' if size == 1 else 'ies'}"
                use = f" (use 0 to {size - 1})" if size else ""
                problem = "is negative; indices count from 0" if index < 0 else "is out of range"
                raise self.fail(f"index {index} {problem}: {trail} has {entries}{use}")
            path = f"{trail}.{index}"
            if not rest:
                self.put(node, index)
                return
            self.descend(node, index, item, path, rest)
            return
        if item.tag != "section":
            raise self.fail(f"{trail} is a list; give an index such as {trail}.0 (got {head!r})")
        # A name at a list of sections sets it in every entry; check the path once for all entries.
        self.checker().walk(_ABSENT, item, [head, *rest], f"{trail}.N")
        if node is _ABSENT:
            return
        if not node:
            raise self.fail(f"{trail} has no entries to set {head!r} in; give the entries first")
        for index, entry in enumerate(node):
            if not isinstance(entry, dict):
                raise self.fail(f"{trail}.{index} is {_describe(entry)}, not a mapping; set {trail}.{index} itself")
            self.walk(entry, item, [head, *rest], f"{trail}.{index}")

    def _free(self, node: Any, kind: _Kind, head: str, rest: list[str], trail: str) -> None:
        """A free mapping (any key) or a value of any type."""
        if isinstance(node, list):
            self._list(node, _Kind("list", inner=Any), head, rest, trail)
            return
        if not rest:
            self.put(node, head)
            return
        inner = _kind(kind.inner) if kind.tag == "mapping" else _Kind("any")
        path = f"{trail}.{head}"
        self.descend(node, head, inner, path, rest)


def _describe(value: Any) -> str:
    """``a number (23.0)``, ``a list``, ... for error messages."""
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null" if value is None else f"a {type(value).__name__}"


def _parts(walk: _Walk) -> list[str]:
    parts = walk.dotted.split(".")
    if not walk.dotted or any(not part.strip() for part in parts):
        raise walk.fail(f"empty part in the path; {_PATH_HINT}")
    return [part.strip() for part in parts]


def set_override(raw: dict[str, Any], dotted: str, value: Any, *, file: str | Path | None = None,
                 label: str = "") -> None:
    """Set one dotted path in a raw scenario mapping, in place.

    Parameters
    ----------
    raw:
        The raw (resolved) scenario mapping; changed in place.
    dotted:
        The path, e.g. ``clusters.0.devices`` (see the module docstring).
    value:
        The value to set (a deep copy is stored).
    file:
        The file named in errors.
    label:
        Put before the path in errors, e.g. ``"--set "`` or ``"sweep.parameters."``.

    Raises
    ------
    InputError
        One line for a path the schema or the mapping does not have.
    """
    walk = _Walk(dotted, value, file, label, apply=True)
    walk.walk(raw, _Kind("section", model=Scenario), _parts(walk), "")


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any], *, file: str | Path | None = None,
                    label: str = "") -> dict[str, Any]:
    """A copy of ``raw`` with every dotted override set, in order (see :func:`set_override`).

    Parameters
    ----------
    raw:
        The raw (resolved) scenario mapping; not changed.
    overrides:
        Dotted path -> value.
    file:
        The file named in errors.
    label:
        Put before the path in errors, e.g. ``"--set "``.

    Returns
    -------
    dict
        The new raw mapping (validate it with :func:`emsfl_sim.scenario.validate_raw`).
    """
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        set_override(out, dotted, value, file=file, label=label)
    return out


def check_override_path(dotted: str, *, file: str | Path | None = None, label: str = "") -> None:
    """Check a dotted path against the schema alone (list lengths are not known here).

    Raises
    ------
    InputError
        For a path that no scenario can have (unknown key, value where a section is expected).
    """
    walk = _Walk(dotted, None, file, label, apply=False)
    walk.walk(_ABSENT, _Kind("section", model=Scenario), _parts(walk), "")
