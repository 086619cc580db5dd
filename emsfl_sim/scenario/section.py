"""The base of every scenario section: unknown fields are errors, assignments are validated.

Numbers are strict in two ways the YAML reader would otherwise let through: ``.inf``
and ``.nan`` are refused (``allow_inf_nan=False``), and ``true``/``false`` are refused
where a field takes a number or a string (pydantic's lax mode would read ``true`` as 1).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def _accepts_bool(annotation: Any) -> bool:
    """Whether a field annotated ``annotation`` takes a boolean (``bool``, ``Any`` or untyped inside)."""
    if annotation is bool or annotation is Any or annotation is None or isinstance(annotation, typing.TypeVar):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return False
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(isinstance(a, bool) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts_bool(a) for a in args)
    return False


def _item_annotation(annotation: Any) -> Any:
    """The item type of ``list[X]`` inside ``annotation`` (``None`` if it holds no list)."""
    if typing.get_origin(annotation) is list:
        return (typing.get_args(annotation) or (Any,))[0]
    for arg in typing.get_args(annotation):
        found = _item_annotation(arg)
        if found is not None:
            return found
    return None


class Section(BaseModel):
    """Base for all scenario sections: unknown fields are errors, no booleans for numbers."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, info in cls.model_fields.items():
            value = data.get(name)
            if isinstance(value, bool) and not _accepts_bool(info.annotation):
                raise ValueError(f"{name}: expected a number or text, got {str(value).lower()}; "
                                 "write the value itself (e.g. 1, not true)")
            item = _item_annotation(info.annotation) if isinstance(value, list) else None
            if isinstance(value, list) and item is not None and not _accepts_bool(item):
                for index, entry in enumerate(value):
                    if isinstance(entry, bool):
                        raise ValueError(f"{name}[{index}]: expected a number or text, got {str(entry).lower()}; "
                                         "write the value itself (e.g. 1, not true)")
        return data
