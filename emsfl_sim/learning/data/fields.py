"""Checks of the fields of one user MCQA row, shared by the file layouts.

Every check returns the clean value or raises one located
:class:`~emsfl_sim.errors.InputError` line ``FILE:LINE: FIELD: what is wrong and what to use``
(``where`` is the ``FILE:LINE`` part).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from emsfl_sim.errors import InputError

__all__ = ["present", "text_field", "options_field", "check_options", "answer_index", "answer_hint", "answer_field"]


def present(row: dict[str, Any], key: str) -> bool:
    """Whether ``row`` has ``key`` with a value (``null`` counts as absent, as does an empty CSV cell)."""
    return row.get(key) is not None


def text_field(row: dict[str, Any], key: str, where: str, hint: str) -> str:
    """The non-empty string ``row[key]``; a located InputError if missing or not one."""
    if not present(row, key):
        raise InputError(f"missing; add \"{key}\": {hint}", where, key)
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"must be a non-empty string (got {json.dumps(value)}); write \"{key}\": {hint}", where, key)
    return value


def check_options(options: Sequence[str], where: str, key: str) -> tuple[str, ...]:
    """``options`` as a tuple; a located InputError when two of them are equal."""
    repeated = sorted({o for o in options if list(options).count(o) > 1})
    if repeated:
        raise InputError(f"{repeated[0]!r} appears more than once; every option must differ", where, key)
    return tuple(options)


def options_field(row: dict[str, Any], where: str, key: str = "options") -> tuple[str, ...]:
    """The list ``row[key]`` of at least 2 distinct, non-empty strings."""
    example = f"\"{key}\": [\"first answer\", \"second answer\", ...]"
    if not present(row, key):
        raise InputError(f"missing; add {example}", where, key)
    options = row[key]
    if not (isinstance(options, list) and len(options) >= 2
            and all(isinstance(o, str) and o.strip() for o in options)):
        raise InputError(
            f"must be a list of at least 2 non-empty strings (got {json.dumps(options, ensure_ascii=False)}); "
            f"write {example}",
            where,
            key,
        )
    return check_options(options, where, key)


def answer_index(ans: object, options: Sequence[str]) -> int | None:
    """Index of ``ans`` given as a 0-based index, an option letter or the option text (None: no match)."""
    if isinstance(ans, bool):
        return None
    if isinstance(ans, int):
        return ans if 0 <= ans < len(options) else None
    if isinstance(ans, str):
        s = ans.strip()
        if s in options:  # the option text wins over a letter reading
            return list(options).index(s)
        if len(s) == 1 and s.isascii() and s.isalpha():
            i = ord(s.upper()) - ord("A")
            return i if i < len(options) else None
        if s.isdigit() and int(s) < len(options):
            return int(s)
    return None


def answer_hint(options: Sequence[str]) -> str:
    """What a valid answer for ``options`` looks like (the fix part of an answer error)."""
    n = len(options)
    letters = f"A..{chr(ord('A') + min(n, 26) - 1)}"
    return f"use a 0-based index 0..{n - 1}, a letter {letters} or the text of an option"


def answer_field(row: dict[str, Any], options: tuple[str, ...], where: str, key: str = "answer") -> int:
    """The correct option of ``row[key]`` (see :func:`answer_index`) as a 0-based index."""
    if not present(row, key):
        raise InputError(f"missing; add \"{key}\": the correct option ({answer_hint(options)})", where, key)
    ans = row[key]
    idx = answer_index(ans, options)
    if idx is not None:
        return idx
    if isinstance(ans, int) and not isinstance(ans, bool):
        problem = f"{ans} is out of range for {len(options)} options"
    else:
        problem = f"{json.dumps(ans, ensure_ascii=False)} matches none of the {len(options)} options"
    raise InputError(f"{problem}; {answer_hint(options)}", where, key)
