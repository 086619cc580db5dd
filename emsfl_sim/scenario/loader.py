"""Load scenario files: YAML, ``extends`` chains, validation, one-line errors.

A scenario may ``extends: other.yaml`` (path relative to the extending file) and
override any field; dictionaries merge recursively, lists and scalars replace.
Relative file paths inside a scenario (TLE files, checkpoints, data files)
resolve against the file that declares them, so an extending file in another
folder still finds its parent's TLEs.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from emsfl_sim.errors import InputError, not_a_file
from emsfl_sim.scenario.datafiles import is_data_file_entry
from emsfl_sim.scenario.messages import clean_loc, collapse_unions, type_message, yaml_problem
from emsfl_sim.scenario.overrides import apply_overrides, check_override_path
from emsfl_sim.scenario.schema import Scenario

#: Dotted paths of fields that hold file paths (resolved against the declaring file).
PATH_FIELDS: tuple[str, ...] = (
    "constellation.tle_files",
    "model.checkpoint_path",
    "model.dense_checkpoints",
    "data.jsonl_files",
)

_UNITS = {
    "_deg": "degrees",
    "_s": "seconds",
    "_hz": "Hz",
    "_dbm": "dBm",
    "_dbi": "dBi",
    "_db": "dB",
    "_km": "km",
    "_m": "metres",
    "_k": "kelvin",
    "_bps": "bit/s",
}


#: Most alias uses (``*name``) one scenario file may hold: a scenario needs few, and a
#: limit stops a "billion laughs" document (aliases of aliases) from expanding without bound.
MAX_YAML_ALIASES = 100
#: Most values (scalars, lists, mappings) a scenario file may hold once its aliases are expanded.
MAX_YAML_VALUES = 100_000


def _expanded_size(root: yaml.Node) -> int:
    """Values in the document under ``root`` with every alias expanded (memoised, no recursion)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if done or not children:
            sizes[id(node)] = 1 + sum(sizes.get(id(c), 0) for c in children)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and more than :data:`MAX_YAML_ALIASES` aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102  (PyYAML's hook)
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_YAML_ALIASES} aliases (*name); write the values out", event.start_mark)
        return super().compose_node(parent, index)

    def get_single_node(self) -> Any:  # noqa: D102  (PyYAML's hook)
        node = super().get_single_node()
        if node is not None and _expanded_size(node) > MAX_YAML_VALUES:
            raise yaml.composer.ComposerError(
                None, None, f"the document expands to more than {MAX_YAML_VALUES} values through its aliases; "
                "write the values out", node.start_mark)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # noqa: D102  (PyYAML's hook)
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1}); give each key once",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def scenario_text(path: Path) -> str:
    """The text of a scenario file: one-line InputErrors for a folder, a missing or a non-UTF-8 file."""
    if path.is_dir():
        raise InputError("is a folder, not a scenario file; give a .yaml file (e.g. scenarios/quickstart.yaml)",
                         file=path)
    if not path.is_file():
        raise InputError("file not found; check the path", file=path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        kind = "a binary file" if b"\0" in data[:4096] else f"not UTF-8 text (byte 0x{data[exc.start]:02x})"
        raise InputError(f"{kind}; a scenario must be a UTF-8 YAML text file (re-save it as UTF-8)",
                         file=path, field=f"line {line}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping, turning syntax errors into a one-line InputError.

    Duplicate keys (which YAML would resolve as last-wins) and more than
    :data:`MAX_YAML_ALIASES` aliases are errors too.
    """
    text = scenario_text(path)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506  (a SafeLoader)
    except yaml.YAMLError as exc:
        where, problem = yaml_problem(exc, text)
        raise InputError(problem, file=path, field=where) from exc
    except ValueError as exc:  # PyYAML's timestamp constructor: a date-like value that is no date (2023-13-01)
        raise InputError(f"a date that is no date ({exc}); use ISO 8601, e.g. 2023-07-18T00:00:00Z", file=path) \
            from None
    if data is None:
        raise InputError("file is empty; a scenario needs at least name and clusters", file=path)
    if not isinstance(data, dict):
        raise InputError("a scenario file must be a YAML mapping (key: value)", file=path)
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``: dicts recurse, other values replace."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _get_path(data: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str] | None:
    node: Any = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        return None
    return node, parts[-1]


def _resolve_paths(data: dict[str, Any], folder: Path) -> None:
    """Make relative paths absolute against ``folder`` (in place)."""

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            path = Path(value).expanduser()
            return str(path if path.is_absolute() else (folder / path).resolve())
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    def fix_data_files(value: Any) -> Any:  # an entry {path, format, ...}: only its path is one
        if is_data_file_entry(value):
            return {**value, "path": fix(value["path"])}
        if isinstance(value, (list, dict)):
            return [fix_data_files(v) for v in value] if isinstance(value, list) else {
                k: fix_data_files(v) for k, v in value.items()}
        return fix(value)

    for dotted in PATH_FIELDS:
        found = _get_path(data, dotted)
        if found is not None:
            node, key = found
            node[key] = fix_data_files(node[key]) if dotted == "data.jsonl_files" else fix(node[key])


def resolve_raw(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read ``path`` and its ``extends`` ancestors into one merged raw mapping."""
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise InputError(f"extends cycle: {cycle}; remove one of the extends", file=_chain[-1], field="extends")
    data = read_yaml(path)
    _resolve_paths(data, path.parent)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise InputError("must be a path to another scenario file", file=path, field="extends")
    parent_path = (path.parent / parent).resolve()
    if (problem := not_a_file(parent_path, "scenario file", "paths are relative to this file", named=True)) is not None:
        raise InputError(problem, file=path, field="extends")
    base = resolve_raw(parent_path, (*_chain, path))
    return deep_merge(base, data)


def _unit_of(field: str) -> str | None:
    for suffix, unit in _UNITS.items():
        if field.endswith(suffix):
            return unit
    return None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``X``, ``X | None``, ``list[X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _owner_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Scenario
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(str(part))
        model = _inner_model(info.annotation) if info is not None else None
    return model


def _bounds(loc: tuple[Any, ...]) -> tuple[Any, Any]:
    owner = _owner_model(loc)
    if owner is None or not loc:
        return None, None
    info = owner.model_fields.get(str(loc[-1]))
    low = high = None
    for meta in getattr(info, "metadata", []) if info else []:
        if getattr(meta, "ge", None) is not None:
            low = f"at least {meta.ge}"
        if getattr(meta, "gt", None) is not None:
            low = f"greater than {meta.gt}"
        if getattr(meta, "le", None) is not None:
            high = f"at most {meta.le}"
        if getattr(meta, "lt", None) is not None:
            high = f"less than {meta.lt}"
    return low, high


def _range_text(loc: tuple[Any, ...]) -> str | None:
    """``between 0 and 90`` (both inclusive), ``greater than 0 and at most 90``, ... or None."""
    low, high = _bounds(loc)
    if low is None or high is None:
        return None
    if low.startswith("at least") and high.startswith("at most"):
        return f"between {low.removeprefix('at least ')} and {high.removeprefix('at most ')}"
    return f"{low} and {high}"


def format_validation_error(error: Mapping[str, Any]) -> tuple[str, str]:
    """Turn one pydantic error into (dotted field path, message with the expectation).

    The path names only scenario fields, keys and indices (pydantic's type segments are
    dropped); wrong container types, nulls and empty lists get the plain words of
    :func:`emsfl_sim.scenario.messages.type_message`.
    """
    loc = clean_loc(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    value = error.get("input")
    msg = str(error.get("msg", "invalid value"))
    field = loc[-1] if loc else ""
    unit = _unit_of(str(field)) if isinstance(field, str) else None
    unit_text = f" {unit}" if unit else ""
    plain = type_message({**error, "loc": loc}) if value is None else None
    if plain is not None:  # a null where a value belongs
        return _dotted(loc), plain
    if kind == "extra_forbidden":
        owner = _owner_model(loc)
        valid = sorted(owner.model_fields) if owner is not None else []
        close = difflib.get_close_matches(str(field), valid, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"valid fields: {', '.join(valid)}"
        return _dotted(loc), f"unknown field; {hint}"
    if kind == "missing":
        return _dotted(loc), "required field is missing"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        bounds = _range_text(loc)
        if bounds is not None:
            return _dotted(loc), f"must be {bounds}{unit_text} (got {value!r})"
        return _dotted(loc), f"{msg.replace('Input should be', 'must be')}{unit_text} (got {value!r})"
    if kind.startswith(("datetime_", "date_")):
        return _dotted(loc), ("expected an ISO 8601 UTC time such as 2023-07-18T00:00:00Z (quote it in YAML) "
                              f"(got {value!r})")
    if kind == "finite_number":
        return _dotted(loc), f"must be a finite number{' in ' + unit if unit else ''}; .inf and .nan are not allowed (got {value!r})"
    if kind in {"float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"}:
        what = "an integer" if kind.startswith("int") else "a number"
        return _dotted(loc), f"expected {what}{' in ' + unit if unit else ''} (got {value!r})"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return _dotted(loc), f"expected one of {expected} (got {value!r})"
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        head, sep, rest = text.partition(": ")
        if sep and head.replace("_", "").replace(".", "").replace("[", "").replace("]", "").isalnum() and " " not in head:
            return _dotted((*loc, *head.split("."))), rest
        return _dotted(loc), text
    plain = type_message({**error, "loc": loc})
    if plain is not None:  # wrong container types, unions, empty lists
        return _dotted(loc), plain
    return _dotted(loc), f"{msg} (got {value!r})"


def _dotted(loc: Iterable[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "<scenario>"


def validate_raw(data: dict[str, Any], file: str | Path | None = None) -> Scenario:
    """Validate a merged raw mapping; the first problem becomes an InputError."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = collapse_unions(exc.errors())  # one problem per union field, not one per branch
        field, message = format_validation_error(problems[0])
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise InputError(message + suffix, file=file, field=field) from exc
    check_semantics(scenario, file)
    return scenario


def check_semantics(scenario: Scenario, file: str | Path | None = None) -> None:
    """Cross-field checks that need the whole scenario or the file system."""
    names = [c.name for c in scenario.clusters]
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise InputError(f"duplicate cluster name {name!r}; names must be unique", file, f"clusters[{index}].name")
    const = scenario.constellation
    if scenario.time.mode == "orbital" and not (const.tle_files or const.walker):
        raise InputError(
            "constellation is empty; give tle_files or walker shells (or set time.mode: idealised)",
            file,
            "constellation",
        )
    for index, tle in enumerate(const.tle_files):
        if (problem := not_a_file(tle, "TLE file", "paths are relative to the scenario file", named=True)) is not None:
            raise InputError(problem, file, f"constellation.tle_files[{index}]")
    mask = scenario.link.elevation_mask_deg
    if mask >= 90:
        raise InputError("an elevation mask of 90 degrees leaves no contact; use 0 <= mask < 90", file,
                         "link.elevation_mask_deg")
    if scenario.model.checkpoint_path and not Path(scenario.model.checkpoint_path).exists():
        raise InputError(f"checkpoint not found: {scenario.model.checkpoint_path}", file, "model.checkpoint_path")
    for index, ckpt in enumerate(scenario.model.dense_checkpoints):
        if not Path(ckpt).exists():
            raise InputError(f"dense checkpoint not found: {ckpt}", file, f"model.dense_checkpoints[{index}]")
    if scenario.data.prompt_format == "chat_template" and not (scenario.model.checkpoint_path
                                                                or scenario.model.dense_checkpoints):
        raise InputError("chat_template needs a checkpoint whose tokenizer has a chat template (model.checkpoint_path); "
                         "the byte tokenizer of the presets has none: use prompt_format: plain", file,
                         "data.prompt_format")
    files = scenario.data.jsonl_files
    for key, jsonl in (files.items() if isinstance(files, dict) else enumerate(files)):
        path, part = (jsonl, "") if isinstance(jsonl, str) else (jsonl.path, ".path")
        if (problem := not_a_file(path, "data file", "paths are relative to the scenario file", named=True)) is not None:
            where = f".{key}" if isinstance(files, dict) else f"[{key}]"
            raise InputError(problem, file, f"data.jsonl_files{where}{part}")
    if scenario.sweep is not None:
        for key in scenario.sweep.parameters:  # the setter's own rules (list lengths are checked per point)
            check_override_path(key, file=file, label="sweep.parameters.")


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None, *, label: str = "") -> Scenario:
    """Load, merge (``extends``), apply dotted ``overrides`` and validate a scenario file.

    Parameters
    ----------
    path:
        The scenario file.
    overrides:
        Dotted path -> value, set after ``extends`` is merged (see
        :mod:`emsfl_sim.scenario.overrides`).
    label:
        Put before an override's path in its errors (the CLI passes ``"--set "``).

    Raises
    ------
    InputError
        One line naming the file, the field path and what is expected.
    """
    path = Path(path)
    raw = resolve_raw(path)
    if overrides:
        raw = apply_overrides(raw, overrides, file=path, label=label)
    scenario = validate_raw(raw, file=path)
    scenario._source_file = str(path)
    return scenario


def scenario_to_yaml(scenario: Scenario) -> str:
    """The fully resolved scenario as YAML (what ``emsfl-sim show`` prints)."""
    data = scenario.model_dump(mode="json", exclude_none=False)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
