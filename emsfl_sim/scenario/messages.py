"""Plain one-line messages for the pydantic and PyYAML errors of a scenario file.

The loader (:mod:`emsfl_sim.scenario.loader`) turns each problem into
``FILE: FIELD: what is wrong and what to use``. This module holds the parts
that pydantic and PyYAML would otherwise leak: the type segments of an error's
location (``list[union[str,DataFileConfig]]``, ``str``, ``function-after[...]``),
a union's one error per branch, wrong container types (``link: 5``), nulls,
empty lists and the multi-line text of YAML syntax errors.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from pydantic import BaseModel

from emsfl_sim.scenario.schema import LinkConfig, Scenario, SweepConfig
from emsfl_sim.scenario.section import Section

#: A pydantic schema segment such as ``list[union[str,DataFileConfig]]`` or ``function-after[_x(), str]``.
_BRACKET_SEGMENT = re.compile(r"^[a-z][a-z0-9_-]*\[.*\]$", re.DOTALL)
#: Bare type names pydantic puts after a union field (``server.satellite.str``).
_BARE_TYPES = frozenset({"str", "int", "float", "bool", "bytes", "none", "any", "datetime", "date", "time",
                         "timedelta", "decimal", "uuid", "list", "dict", "set", "tuple", "frozenset"})
#: Kinds of error that only say the value has the wrong type (a union branch that did not apply).
_MISMATCH_KINDS = frozenset({"model_type", "model_attributes_type", "dict_type", "list_type", "string_type",
                             "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing",
                             "bool_type", "bool_parsing", "literal_error", "is_instance_of", "tuple_type",
                             "set_type", "none_required", "datetime_type", "datetime_parsing"})
#: What a union field takes, in words (by dotted field path; ``[]`` for one entry of it).
UNION_HINTS: dict[str, str] = {
    "data.jsonl_files": "a list of paths or a mapping domain -> path",
    "data.jsonl_files[]": "a path or an entry {path, format, domain, split}",
    "server.satellite": "a satellite name or a NORAD id (an integer)",
}
#: What an empty list should hold instead (by dotted field path).
EMPTY_LIST_HINTS: dict[str, str] = {
    # the registered names live in emsfl_sim.strategies, which the scenario layer may not import
    "strategy.names": "give at least one strategy name, e.g. emsfl",
    "clusters": "give at least one cluster, e.g. clusters: [{name: a, lat_deg: 0, lon_deg: 0}]",
}
#: The field a section's example shows, where its first field with a default is not the telling one.
_EXAMPLE_FIELD: dict[type[BaseModel], str] = {LinkConfig: "elevation_mask_deg"}
#: A section's whole example, where a field's default makes none.
_EXAMPLE_TEXT: dict[type[BaseModel], str] = {SweepConfig: "parameters: {link.elevation_mask_deg: [10, 20]}"}
#: A fix for the commonest PyYAML problems (by the start of the problem text).
_YAML_FIXES: dict[str, str] = {
    "mapping values are not allowed here": "quote a value that holds ': ', or check the indentation",
    "found unexpected end of stream": "close the quote",
    "expected the node content, but found '<stream end>'": "close the bracket",
    "found undefined alias": "define the anchor (&name) before its alias (*name)",
    "could not determine a constructor for the tag": "remove the tag; a scenario holds plain YAML only",
}


def _model_names() -> frozenset[str]:
    """The class names of every scenario section (pydantic names union branches after them)."""
    names: set[str] = set()
    stack: list[type] = [Section]
    while stack:
        cls = stack.pop()
        names.add(cls.__name__)
        stack.extend(cls.__subclasses__())
    return frozenset(names)


def _narrow(annotation: Any, segment: str) -> Any:
    """The branch of ``annotation`` a stripped type segment names (``list[...]``, ``DataFileConfig``)."""
    for arg in _args(annotation):
        origin = typing.get_origin(arg)
        if (segment.startswith("list[") and origin is list) or (segment.startswith("dict[") and origin is dict):
            return arg
        if _is_model(arg) and arg.__name__ == segment:
            return arg
    return annotation


def _strip(loc: Sequence[Any]) -> tuple[tuple[Any, ...], int | None]:
    """``loc`` without its type segments, and the index of the first one (None if it has none).

    The schema is walked along: a segment that is a field, key or index of the value
    there is kept (so a field named ``time`` stays); a ``list[...]``-like segment, or a
    bare type or section name where no such field is, is a pydantic schema segment.
    """
    annotation: Any = Scenario
    kept: list[Any] = []
    first: int | None = None
    for index, part in enumerate(loc):
        if isinstance(part, str) and _BRACKET_SEGMENT.match(part):
            annotation, first = _narrow(annotation, part), index if first is None else first
            continue
        step = _step(annotation, part) if annotation is not None else None
        if step is None and isinstance(part, str) and (part in _BARE_TYPES or part in _model_names()):
            annotation, first = _narrow(annotation, part), index if first is None else first
            continue
        kept.append(part)
        annotation = step
    return tuple(kept), first


def clean_loc(loc: Sequence[Any]) -> tuple[Any, ...]:
    """``loc`` with its type segments removed: only scenario fields, keys and indices remain."""
    return _strip(loc)[0]


def _pick_branch(prefix: tuple[Any, ...], group: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One problem for the errors of a union field's branches (all of them share ``prefix``).

    The branch that got furthest into the value tells most: one error there is reported
    as it is; several (an inner union) or only type mismatches become one ``union_type``.
    """
    cleaned = [(clean_loc(e.get("loc", ())), e) for e in group]
    depth = max(len(loc) for loc, _ in cleaned)
    deepest = [(loc, e) for loc, e in cleaned if len(loc) == depth]
    real = [(loc, e) for loc, e in deepest if e.get("type") not in _MISMATCH_KINDS]
    if real:
        return {**real[0][1], "loc": real[0][0]}
    if len(deepest) == 1 and depth > len(clean_loc(prefix)):
        return {**deepest[0][1], "loc": deepest[0][0]}
    loc, error = deepest[0]
    return {"loc": loc, "type": "union_type", "input": error.get("input"), "msg": "no branch of the union applies",
            "ctx": {"union_field": clean_loc(prefix)}}


def collapse_unions(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The problems of a ValidationError's ``errors()``: clean locations, one problem per union field.

    Parameters
    ----------
    errors:
        ``ValidationError.errors()``.

    Returns
    -------
    list of dict
        The errors in order with type segments stripped from ``loc``; the errors of one
        union field's branches are replaced by the one of :func:`_pick_branch`.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    order: list[tuple[Any, ...] | dict[str, Any]] = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        cut = _strip(loc)[1]
        if cut is None:
            order.append({**error, "loc": loc})
            continue
        prefix = loc[:cut]
        if prefix not in groups:
            groups[prefix] = []
            order.append(prefix)
        groups[prefix].append(error)
    return [_pick_branch(item, groups[item]) if isinstance(item, tuple) else item for item in order]


# ----------------------------------------------------------------- schema walk
def _args(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (``X | None`` without None), or ``(annotation,)``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _step(annotation: Any, part: Any) -> Any:
    """The annotation of ``part`` (a field, key or index) inside a value annotated ``annotation``."""
    for arg in _args(annotation):
        origin = typing.get_origin(arg)
        if _is_model(arg) and isinstance(part, str) and part in arg.model_fields:
            return arg.model_fields[part].annotation
        if origin is list and isinstance(part, int):
            return (typing.get_args(arg) or (Any,))[0]
        if origin is dict and isinstance(part, str):
            return (typing.get_args(arg) or (Any, Any))[-1]
    return None


def annotation_at(loc: Sequence[Any]) -> Any:
    """The annotation of the value at a cleaned ``loc`` of a scenario (None if unknown)."""
    annotation: Any = Scenario
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return None
    return annotation


def _field_info(loc: Sequence[Any]) -> Any:
    """The pydantic FieldInfo of the field at ``loc`` (None for an index, a key or an unknown field)."""
    if not loc or not isinstance(loc[-1], str):
        return None
    for owner in _args(annotation_at(loc[:-1])):
        if _is_model(owner) and loc[-1] in owner.model_fields:
            return owner.model_fields[loc[-1]]
    return None


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe(annotation: Any, plural: bool = False) -> str:
    """What a value annotated ``annotation`` is, in words (``text``, ``a list of numbers``, ...)."""
    parts = [_describe_one(arg, plural) for arg in _args(annotation)]
    return " or ".join(dict.fromkeys(parts)) or ("values" if plural else "a value")


def _describe_one(arg: Any, plural: bool) -> str:
    origin = typing.get_origin(arg)
    if origin is typing.Literal:
        return ("values among " if plural else "one of ") + ", ".join(repr(a) for a in typing.get_args(arg))
    if origin is list:
        return ("lists" if plural else "a list") + f" of {describe((typing.get_args(arg) or (Any,))[0], True)}"
    if origin is dict or arg is dict:
        return "mappings (key: value)" if plural else "a mapping (key: value)"
    if _is_model(arg):
        required = [n for n, f in arg.model_fields.items() if f.is_required()]
        each = f", each with {_and(required)}" if required and plural else ""
        return ("mappings" if plural else "a mapping") + (each or " of fields")
    simple = {str: ("text", "text values"), int: ("an integer", "integers"), float: ("a number", "numbers"),
              bool: ("true or false", "true/false values")}
    if arg in simple:
        return simple[arg][1 if plural else 0]
    return "values" if plural else "a value"


# -------------------------------------------------------------- the messages
def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _mapping_message(model: type[BaseModel], loc: Sequence[Any], value: Any) -> str:
    """``expected a mapping of link fields (e.g. link: {elevation_mask_deg: 25}), got 5`` and the like."""
    label = str(next((p for p in reversed(loc) if isinstance(p, str)), "scenario"))
    required = [n for n, f in model.model_fields.items() if f.is_required()]
    if required and loc and isinstance(loc[-1], int):
        return f"expected a mapping with {_and(required)} (one entry of {label}), got {value!r}"
    if required:
        return f"expected a mapping of {label} fields with {_and(required)}, got {value!r}"
    example = _EXAMPLE_TEXT.get(model)
    if example is None:
        name = _EXAMPLE_FIELD.get(model) or next(
            (n for n, f in model.model_fields.items() if isinstance(f.default, (str, int, float, bool))),
            next(iter(model.model_fields)))
        default = model.model_fields[name].default
        example = f"{name}: {_yaml_value(default) if isinstance(default, (str, int, float, bool)) else '...'}"
    return f"expected a mapping of {label} fields (e.g. {label}: {{{example}}}), got {value!r}"


def _null_message(loc: Sequence[Any]) -> str:
    info = _field_info(loc)
    if info is not None and not info.is_required():
        default = info.default
        shown = f" ({_yaml_value(default)})" if isinstance(default, (str, int, float, bool)) else ""
        return f"may not be null; remove it for the default{shown}"
    return f"may not be null; give {describe(annotation_at(loc))}"


def _list_message(loc: Sequence[Any], value: Any, annotation: Any) -> str:
    item = next((typing.get_args(a)[0] for a in _args(annotation)
                 if typing.get_origin(a) is list and typing.get_args(a)), Any)
    items = "values to sweep" if tuple(loc[:2]) == ("sweep", "parameters") else describe(item, plural=True)
    text = f"expected a list of {items} (got {value!r})"
    if isinstance(value, (str, int, float)) and not _is_model(item):
        text += f"; write [{_yaml_value(value)}] for one value"
    return text


def _union_message(loc: Sequence[Any], value: Any, field: Sequence[Any]) -> str:
    key = _plain_path(field) + ("" if len(loc) == len(field) else "[]")
    return f"expected {UNION_HINTS.get(key) or describe(annotation_at(loc))} (got {value!r})"


def _plain_path(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc if not isinstance(p, int))


def type_message(error: Mapping[str, Any]) -> str | None:
    """A plain message for a type, null or emptiness error at its (cleaned) ``loc``; None for other kinds.

    Parameters
    ----------
    error:
        One problem of :func:`collapse_unions`.

    Returns
    -------
    str or None
        What is wrong and what to use, e.g. ``expected a mapping of link fields (e.g. link:
        {elevation_mask_deg: 25}), got 5`` or ``expected text (got ['a', 'b'])``.
    """
    loc = tuple(error.get("loc", ()))
    kind = str(error.get("type", ""))
    value = error.get("input")
    annotation = annotation_at(loc)
    if kind == "union_type":
        return _union_message(loc, value, tuple(error.get("ctx", {}).get("union_field", loc)))
    if value is None and (kind in _MISMATCH_KINDS or kind.endswith("_type")):
        return _null_message(loc)
    label = str(next((p for p in reversed(loc) if isinstance(p, str)), "scenario"))
    model = next((a for a in _args(annotation) if _is_model(a)), None)
    if model is not None and kind in {"model_type", "model_attributes_type", "dict_type"}:
        return _mapping_message(model, loc, value)
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"expected a mapping (e.g. {label}: {{key: value}}), got {value!r}"
    if kind == "list_type":
        return _list_message(loc, value, annotation)
    if kind == "string_type":
        quote = "; quote it if it is meant as text" if isinstance(value, (list, dict)) else ""
        return f"expected text (got {value!r}){quote}"
    if kind in {"bool_type", "bool_parsing"}:
        return f"expected true or false (got {value!r})"
    if kind == "too_short" and isinstance(value, (list, tuple)) and not value:
        least = error.get("ctx", {}).get("min_length", 1)
        hint = EMPTY_LIST_HINTS.get(_plain_path(loc)) or f"give at least {least} item{'s' if least != 1 else ''}"
        return f"is empty; {hint}"
    if kind == "string_too_short":
        least = error.get("ctx", {}).get("min_length", 1)
        return f"is empty text; give at least {least} character{'s' if least != 1 else ''}"
    return None


def yaml_problem(exc: yaml.YAMLError, text: str = "") -> tuple[str | None, str]:
    """The ``line N`` and the one-line problem of a PyYAML error (without its multi-line context).

    Parameters
    ----------
    exc:
        What ``yaml.load`` raised.
    text:
        The document (to find the line of a bad character, which PyYAML gives as a position).

    Returns
    -------
    tuple of (str or None, str)
        ``("line 3", "invalid YAML: a tab character; indent with spaces")``; the line is
        None where PyYAML gives no position.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}" if mark is not None else None
    if isinstance(exc, yaml.reader.ReaderError):
        where = f"line {text[:exc.position].count(chr(10)) + 1}" if text else None
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        return where, (f"invalid YAML: unacceptable character #x{char:04x} ({exc.reason}); "
                       "remove it or re-save the file as plain text")
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["syntax error"])[0]
    problem = " ".join(str(problem).split())
    if "'\\t'" in problem or "tab character" in problem:
        return where, "invalid YAML: a tab character; indent with spaces"
    fix = next((f for start, f in _YAML_FIXES.items() if problem.startswith(start)), None)
    return where, f"invalid YAML: {problem}" + (f"; {fix}" if fix else "")
