r"""The row layouts of user MCQA files: the project's own and those of MMLU, MedMCQA and CMExam.

A layout turns one row (a JSON object, or a CSV record keyed by its header) into the
question, the options and the 0-based index of the correct one; the row's domain and
split are read by :mod:`.files` the same way for every layout. Keys other than these
are ignored (``subject``, ``subject_name``, ``exp``, ``Explanation``, ...).

``emsfl``
    ``{"question": str, "options": [str, ...], "answer": 0-based index | letter | option text}``.
``mmlu``
    ``{"question": str, "choices": [str, ...], "answer": int}``: ``answer`` is the 0-based
    index of the choice, as in MMLU (``cais/mmlu``: 0 = the first choice); a letter or the
    choice's text is accepted too.
``medmcqa``
    ``{"question": str, "opa": str, "opb": str, "opc": str, "opd": str, "cop": int}``:
    ``cop`` counts from **1** (1 = ``opa`` .. 4 = ``opd``), the convention of the MedMCQA
    release (its README example and its loader's ``cop - 1``); the letters ``a``..``d`` are
    accepted too. A copy that counts from 0 (the Hugging Face ``medmcqa`` ClassLabel) needs
    1 added to every ``cop``; a ``cop`` of 0 is refused with that advice.
``cmexam``
    ``{"Question": str, "Options": "A text\nB text\n...", "Answer": "B"}`` (CMExam's CSV
    columns; lower-case keys work too): one option a line, its letter, a separator (space,
    ``.``, ``、``, ``:`` or ``)``) and its text, letters from ``A`` in order. An answer of
    several letters (a multiple-answer question) is refused: the task is single-answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data.fields import answer_field, check_options, options_field, present, text_field

__all__ = ["Layout", "LAYOUTS", "layout"]

Parsed = tuple[str, tuple[str, ...], int]
"""What a layout reads from a row: question, options, index of the correct option."""

_QUESTION_HINT = "\"the question text\""


@dataclass(frozen=True)
class Layout:
    """One row layout of user MCQA files.

    Parameters
    ----------
    name:
        The ``format`` of a data file that selects it.
    shape:
        One row written out, for the fix part of error messages.
    parse:
        ``(row, where) -> (question, options, answer)``; raises a located InputError.
    """

    name: str
    shape: str
    parse: Callable[[dict[str, Any], str], Parsed]


def _emsfl(row: dict[str, Any], where: str) -> Parsed:
    question = text_field(row, "question", where, _QUESTION_HINT)
    options = options_field(row, where, "options")
    return question, options, answer_field(row, options, where, "answer")


def _mmlu(row: dict[str, Any], where: str) -> Parsed:
    question = text_field(row, "question", where, _QUESTION_HINT)
    choices = options_field(row, where, "choices")
    return question, choices, answer_field(row, choices, where, "answer")


_MEDMCQA_OPTIONS = ("opa", "opb", "opc", "opd")
_COP_HINT = "use 1..4 (1 = opa .. 4 = opd, MedMCQA's cop counts from 1) or a letter a..d"


def _cop(row: dict[str, Any], where: str) -> int:
    if not present(row, "cop"):
        raise InputError("missing; add \"cop\": the correct option, 1..4 (1 = opa); MedMCQA's test release has "
                         "no answers: take test rows from its dev set", where, "cop")
    cop = row["cop"]
    if isinstance(cop, str) and cop.strip().lstrip("-").isdigit():  # a CSV cell
        cop = int(cop.strip())
    if isinstance(cop, str) and cop.strip().lower() in ("a", "b", "c", "d"):
        return "abcd".index(cop.strip().lower())
    if isinstance(cop, int) and not isinstance(cop, bool):
        if 1 <= cop <= 4:
            return cop - 1
        if cop == 0:
            raise InputError("0 is no option: MedMCQA's cop counts from 1 (1 = opa .. 4 = opd, as in the MedMCQA "
                             "release); a copy counting from 0 (Hugging Face's medmcqa) needs 1 added to every cop",
                             where, "cop")
        raise InputError(f"{cop} is out of range; {_COP_HINT}", where, "cop")
    raise InputError(f"{json.dumps(cop, ensure_ascii=False)} is no option; {_COP_HINT}", where, "cop")


def _medmcqa(row: dict[str, Any], where: str) -> Parsed:
    question = text_field(row, "question", where, _QUESTION_HINT)
    texts = [text_field(row, key, where, f"\"option {letter}\"") for key, letter in zip(_MEDMCQA_OPTIONS, "ABCD", strict=True)]
    options = check_options(texts, where, "opa..opd")
    return question, options, _cop(row, where)


_CMEXAM_LINE = re.compile(r"([A-Za-z])[\s.、:：．)）]+(\S.*)")
_CMEXAM_OPTIONS_HINT = "\"A first answer\\nB second answer\\n...\" (one option a line: its letter, a space, its text)"


def _cmexam_key(row: dict[str, Any], key: str) -> str:
    """``key`` as CMExam spells it (``Question``) or in lower case, whichever the row has."""
    return key if key in row or key.lower() not in row else key.lower()


def _cmexam_options(text: str, where: str, key: str) -> tuple[str, ...]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    options = []
    for i, line in enumerate(lines):
        letter = chr(ord("A") + i)
        m = _CMEXAM_LINE.fullmatch(line)
        if m is None or m.group(1).upper() != letter:
            raise InputError(f"option line {i + 1} ({json.dumps(line, ensure_ascii=False)}) does not start with "
                             f"\"{letter} \"; write {_CMEXAM_OPTIONS_HINT}", where, key)
        options.append(m.group(2).strip())
    if len(options) < 2:
        raise InputError(f"{len(options)} option(s); give at least 2 as {_CMEXAM_OPTIONS_HINT}", where, key)
    return check_options(options, where, key)


def _cmexam_answer(row: dict[str, Any], options: tuple[str, ...], where: str) -> int:
    key = _cmexam_key(row, "Answer")
    letters = "".join(chr(ord("A") + i) for i in range(len(options)))
    hint = f"the letter of the correct option, one of {', '.join(letters)}"
    answer = text_field(row, key, where, f"\"B\" ({hint})").strip().upper()
    picked = [c for c in answer if c.isalpha()]
    if len(picked) > 1 and len(picked) == len(re.sub(r"[\s,，、]", "", answer)):
        raise InputError(f"{json.dumps(row[key], ensure_ascii=False)} names {len(picked)} options (a multiple-answer "
                         "question); the task is single-answer: remove the row or keep one letter", where, key)
    if len(answer) == 1 and answer in letters:
        return letters.index(answer)
    raise InputError(f"{json.dumps(row[key], ensure_ascii=False)} is not an option letter; give {hint}", where, key)


def _cmexam(row: dict[str, Any], where: str) -> Parsed:
    question = text_field(row, _cmexam_key(row, "Question"), where, _QUESTION_HINT)
    key = _cmexam_key(row, "Options")
    options = _cmexam_options(text_field(row, key, where, _CMEXAM_OPTIONS_HINT), where, key)
    return question, options, _cmexam_answer(row, options, where)


LAYOUTS: dict[str, Layout] = {
    "emsfl": Layout("emsfl", '{"domain": ..., "question": ..., "options": [...], "answer": ...}', _emsfl),
    "mmlu": Layout("mmlu", '{"question": ..., "choices": [...], "answer": 0}', _mmlu),
    "medmcqa": Layout("medmcqa", '{"question": ..., "opa": ..., "opb": ..., "opc": ..., "opd": ..., "cop": 1}',
                      _medmcqa),
    "cmexam": Layout("cmexam", '{"Question": ..., "Options": "A ...\\nB ...", "Answer": "A"}', _cmexam),
}
"""Layout name (a data file's ``format``) -> layout."""


def layout(name: str) -> Layout:
    """The layout called ``name``; an InputError naming the known ones otherwise."""
    if name not in LAYOUTS:
        raise InputError(f"unknown format {name!r}; use one of {', '.join(LAYOUTS)}", field="data.jsonl_files")
    return LAYOUTS[name]
