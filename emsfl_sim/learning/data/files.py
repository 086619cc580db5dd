"""User data files: multiple-choice QA in JSONL, and plain text.

MCQA JSONL: one JSON object per line (blank lines are skipped, other keys ignored)::

    {"domain": "medicine", "question": "patient sign for melnim:", "options": ["fever", "nerve", "blood", "heart"], "answer": 2, "split": "test"}

``domain``
    The data domain (a cluster's ``domain``); may be left out where the file has a
    default domain (a ``data.jsonl_files`` mapping ``domain: file``).
``question``
    The prompt; each option is scored as its continuation ``" " + option``.
``options``
    At least 2 distinct, non-empty strings.
``answer``
    The correct option: a 0-based index, a letter (``"A"`` is the first option) or
    the option's text.
``split``
    ``"train"`` (the default) or ``"test"``.

A bad row is one :class:`~emsfl_sim.errors.InputError` line
``FILE:LINE: FIELD: what is wrong and what to use``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data.example import Example

__all__ = ["JSONL_SPLITS", "McqaRow", "load_mcqa_rows", "load_mcqa_jsonl", "load_mcqa_files", "load_text_file"]

JSONL_SPLITS = ("train", "test")
"""Splits a user MCQA row may name (``split`` left out: ``train``)."""

_ROW_SHAPE = '{"domain": ..., "question": ..., "options": [...], "answer": ...}'


@dataclass(frozen=True)
class McqaRow:
    """One row of a user MCQA file: the example, its split and where it came from.

    Parameters
    ----------
    example:
        The multiple-choice item (``task="mcqa"``).
    split:
        ``"train"`` or ``"test"``.
    file:
        The file the row came from.
    line:
        Its 1-based line number.
    """

    example: Example
    split: str
    file: str
    line: int

    @property
    def where(self) -> str:
        """``FILE:LINE`` of the row (the location part of its error messages)."""
        return f"{self.file}:{self.line}"


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError("file not found; give the path of an existing local file", file=path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8", file=path) from None


def _answer_index(ans: object, options: Sequence[str]) -> int | None:
    """Index of ``ans`` given as an index, an option letter or the option text."""
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


def _answer_hint(options: Sequence[str]) -> str:
    n = len(options)
    letters = f"A..{chr(ord('A') + min(n, 26) - 1)}"
    return f"use a 0-based index 0..{n - 1}, a letter {letters} or the text of an option"


def _text(row: dict[str, Any], key: str, where: str, hint: str) -> str:
    """The non-empty string ``row[key]``; a located InputError if missing or not one."""
    if key not in row:
        raise InputError(f"missing; add \"{key}\": {hint}", where, key)
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"must be a non-empty string (got {json.dumps(value)}); write \"{key}\": {hint}", where, key)
    return value


def _options(row: dict[str, Any], where: str) -> tuple[str, ...]:
    if "options" not in row:
        raise InputError("missing; add \"options\": [\"first answer\", \"second answer\", ...]", where, "options")
    options = row["options"]
    if not (isinstance(options, list) and len(options) >= 2
            and all(isinstance(o, str) and o.strip() for o in options)):
        raise InputError(
            f"must be a list of at least 2 non-empty strings (got {json.dumps(options)}); "
            "write \"options\": [\"first answer\", \"second answer\", ...]",
            where,
            "options",
        )
    repeated = sorted({o for o in options if options.count(o) > 1})
    if repeated:
        raise InputError(f"{repeated[0]!r} appears more than once; every option must differ", where, "options")
    return tuple(options)


def _answer(row: dict[str, Any], options: tuple[str, ...], where: str) -> int:
    if "answer" not in row:
        raise InputError(f"missing; add \"answer\": the correct option ({_answer_hint(options)})", where, "answer")
    ans = row["answer"]
    idx = _answer_index(ans, options)
    if idx is not None:
        return idx
    if isinstance(ans, int) and not isinstance(ans, bool):
        problem = f"{ans} is out of range for {len(options)} options"
    else:
        problem = f"{json.dumps(ans)} matches none of the {len(options)} options"
    raise InputError(f"{problem}; {_answer_hint(options)}", where, "answer")


def _split(row: dict[str, Any], where: str) -> str:
    split = row.get("split", "train")
    if split not in JSONL_SPLITS:
        raise InputError(
            f"{json.dumps(split)} is not a split; use \"train\" or \"test\" (or leave it out: train)", where, "split"
        )
    return str(split)


def _parse_row(line: str, file: str, lineno: int, default_domain: str | None) -> McqaRow:
    """One JSONL line as a row; every problem is a one-line ``FILE:LINE: FIELD: ...`` error."""
    where = f"{file}:{lineno}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno}); write one object {_ROW_SHAPE} "
                         "per line", where) from None
    if not isinstance(row, dict):
        raise InputError(f"the row is a JSON {type(row).__name__}, not an object; write {_ROW_SHAPE}", where)
    if "domain" in row or default_domain is None:
        domain = _text(row, "domain", where, "\"name\" (a cluster's data domain)")
    else:
        domain = default_domain
    question = _text(row, "question", where, "\"the question text\"")
    options = _options(row, where)
    answer = _answer(row, options, where)
    split = _split(row, where)
    return McqaRow(Example(domain, "mcqa", question, options, answer), split, file, lineno)


def load_mcqa_rows(path: str | Path, domain: str | None = None) -> list[McqaRow]:
    """The rows of one MCQA JSONL file (format in this module's docstring), in file order.

    ``domain`` is the default for rows without a ``domain`` key; without it every row
    must name its domain. Raises :class:`InputError` (``FILE:LINE: FIELD: ...``) at the
    first bad row, or when the file is missing, not UTF-8 or has no rows.
    """
    path = Path(path)
    text = _read_text(path)
    rows = [
        _parse_row(line, str(path), lineno, domain)
        for lineno, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not rows:
        raise InputError(f"no rows; write one JSON object {_ROW_SHAPE} per line", file=path)
    return rows


def load_mcqa_jsonl(path: str | Path, domain: str | None = None) -> list[Example]:
    """The examples of all rows (train and test) of one MCQA JSONL file, in file order.

    See :func:`load_mcqa_rows` for ``domain`` and the errors.
    """
    return [row.example for row in load_mcqa_rows(path, domain)]


def load_mcqa_files(files: Sequence[str | Path] | Mapping[str, str | Path]) -> list[McqaRow]:
    """The rows of several MCQA JSONL files, file after file.

    ``files`` is a list of paths (every row names its domain) or a mapping
    ``domain -> path`` (the key is the default domain of that file's rows).
    """
    if isinstance(files, Mapping):
        return [row for dom, path in files.items() for row in load_mcqa_rows(path, str(dom))]
    return [row for path in files for row in load_mcqa_rows(path)]


def load_text_file(path: str | Path) -> list[str]:
    """Non-empty lines (stripped) of a UTF-8 text file, for language-model text."""
    path = Path(path)
    lines = [s.strip() for s in _read_text(path).splitlines()]
    lines = [s for s in lines if s]
    if not lines:
        raise InputError("file has no text; write one passage per line", file=path)
    return lines
