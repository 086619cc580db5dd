"""The entries of ``data.jsonl_files``: one user MCQA file, its row layout and row defaults.

``data.jsonl_files`` takes three forms: a list of paths (rows name their domain), a list
of entries ``{path, format, domain, split}`` (paths and entries may mix), or a mapping
``domain: path`` / ``domain: entry`` (the key is the domain of the file's rows that name
none). :func:`data_file_entries` turns each into a list of :class:`DataFileConfig`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from emsfl_sim.scenario.section import Section

__all__ = ["DATA_FILE_KEYS", "DataFileConfig", "is_data_file_entry", "parse_jsonl_files", "data_file_entries"]

DATA_FILE_KEYS = ("path", "format", "domain", "split")
"""The keys of one ``data.jsonl_files`` entry (:class:`DataFileConfig`)."""


class DataFileConfig(Section):
    """One user MCQA file: where it is, the layout of its rows and their default domain and split."""

    path: str = Field(description="the file (relative to the scenario file): JSONL, or CSV with a header row")
    format: Literal["emsfl", "mmlu", "medmcqa", "cmexam"] = Field(
        default="emsfl", description="row layout: emsfl (the project's), mmlu, medmcqa or cmexam "
        "(README: Bring your own data)",
    )
    domain: str | None = Field(
        default=None, min_length=1, description="the domain of rows that name none (mmlu, medmcqa and cmexam rows "
        "name none: give it)",
    )
    split: Literal["train", "test", "trial"] | None = Field(
        default=None, description="the split of rows that name none (null: train, or drawn by data.test_fraction)",
    )


def is_data_file_entry(value: Any) -> bool:
    """Whether a raw ``data.jsonl_files`` value is one entry ``{path: ..., format: ...}`` (not a mapping)."""
    return isinstance(value, dict) and isinstance(value.get("path"), str) and set(value) <= set(DATA_FILE_KEYS)


def _entry(value: Any, where: str) -> Any:
    """A raw entry validated into a :class:`DataFileConfig` (a path or other value is left to the schema)."""
    if not isinstance(value, dict):
        return value
    try:
        return DataFileConfig.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "path"
        kind, got = error["type"], error.get("input")
        if kind == "extra_forbidden":
            problem = f"unknown field; an entry has {', '.join(DATA_FILE_KEYS)}"
        elif kind == "missing":
            problem = "required field is missing; give the file's path"
        elif kind == "literal_error":
            problem = f"expected one of {error.get('ctx', {}).get('expected', '')} (got {got!r})"
        else:
            problem = f"{error['msg'].replace('Input should be', 'must be')} (got {got!r})"
        raise ValueError(f"jsonl_files{where}.{field}: {problem}") from None


def parse_jsonl_files(value: Any) -> Any:
    """A raw ``data.jsonl_files`` with its entries validated (one path or entry alone: a list of it).

    Raises ValueError ``jsonl_files[0].format: ...`` (the loader's one-line form) for a bad entry.
    """
    if isinstance(value, str) or is_data_file_entry(value):
        value = [value]
    if isinstance(value, list):
        return [_entry(v, f"[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _entry(v, f".{k}") for k, v in value.items()}
    return value


def data_file_entries(files: list[str | DataFileConfig] | dict[str, str | DataFileConfig]) -> list[DataFileConfig]:
    """``files`` (a validated ``data.jsonl_files``) as entries, in order.

    A path alone is ``format: emsfl``; under a mapping key the entry's domain is the key
    (a ValueError if the entry names another one).
    """
    if not isinstance(files, dict):
        return [DataFileConfig(path=f) if isinstance(f, str) else f for f in files]
    out = []
    for key, f in files.items():
        if isinstance(f, str):
            out.append(DataFileConfig(path=f, domain=key))
        elif f.domain in (None, key):
            out.append(f.model_copy(update={"domain": key}))
        else:
            raise ValueError(f"jsonl_files.{key}.domain: the entry under {key!r} names domain {f.domain!r}; the key "
                             "is its domain: leave domain out (or list the entry with its domain)")
    return out
