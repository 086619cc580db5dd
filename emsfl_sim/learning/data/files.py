"""User data files: multiple-choice QA in JSONL or CSV, in several row layouts, and plain text.

MCQA files hold one row per line (JSONL: one JSON object a line, blank lines skipped) or
one record per row of a CSV file with a header row (a file whose name ends in ``.csv``;
empty cells count as absent). Each file has a ``format``, the layout of its rows
(:mod:`.layouts`: ``emsfl``, ``mmlu``, ``medmcqa``, ``cmexam``); the project's own
layout ``emsfl`` is::

    {"domain": "medicine", "question": "patient sign for melnim:", "options": ["fever", "nerve", "blood", "heart"], "answer": 2, "split": "test"}

Every layout may also carry these keys (other keys are ignored):

``domain``
    The data domain (a cluster's ``domain``); may be left out where the file has a
    default domain (a :class:`DataFile` ``domain``, or a ``data.jsonl_files`` mapping
    ``domain: file``). MMLU, MedMCQA and CMExam rows have none: their file gives it.
``split``
    ``"train"``, ``"test"`` or ``"trial"``; left out: the file's ``split``, else
    ``"train"`` (:attr:`McqaRow.split_given` is then False, so that a seeded split,
    ``data.test_fraction``, may draw the row for the test set instead).

A bad row is one :class:`~emsfl_sim.errors.InputError` line
``FILE:LINE: FIELD: what is wrong and what to use``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emsfl_sim.errors import InputError, not_a_file
from emsfl_sim.learning.data.example import Example
from emsfl_sim.learning.data.fields import present, text_field
from emsfl_sim.learning.data.layouts import LAYOUTS, Layout, layout

__all__ = [
    "JSONL_SPLITS",
    "FORMATS",
    "DataFile",
    "DataFileLike",
    "McqaRow",
    "data_file_list",
    "load_mcqa_rows",
    "load_mcqa_jsonl",
    "load_mcqa_files",
    "load_text_file",
]

JSONL_SPLITS = ("train", "test", "trial")
"""Splits a user MCQA row or file may name (none named: ``train``, or drawn by ``data.test_fraction``)."""

FORMATS = tuple(LAYOUTS)
"""Row layouts a data file may have (its ``format``)."""

_SPLIT_HINT = 'use "train", "test" or "trial" (or leave it out: train, or drawn by data.test_fraction)'


class DataFileLike(Protocol):
    """What names one data file: a :class:`DataFile` or the scenario's ``data.jsonl_files`` entry."""

    @property
    def path(self) -> str | Path:
        """The file."""

    @property
    def format(self) -> str:
        """Its row layout, one of :data:`FORMATS`."""

    @property
    def domain(self) -> str | None:
        """The domain of its rows that name none (None: every row names its domain)."""

    @property
    def split(self) -> str | None:
        """The split of its rows that name none (None: ``train``, or drawn by ``data.test_fraction``)."""


@dataclass(frozen=True)
class DataFile:
    """One user MCQA file with its layout and the defaults of its rows (see :class:`DataFileLike`)."""

    path: str | Path
    format: str = "emsfl"
    domain: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class McqaRow:
    """One row of a user MCQA file: the example, its split and where it came from.

    Parameters
    ----------
    example:
        The multiple-choice item (``task="mcqa"``).
    split:
        ``"train"``, ``"test"`` or ``"trial"``.
    file:
        The file the row came from.
    line:
        Its 1-based line number (a CSV record: the line it starts on).
    split_given:
        Whether the row or its file named the split (False: ``train`` by default).
    """

    example: Example
    split: str
    file: str
    line: int
    split_given: bool = True

    @property
    def where(self) -> str:
        """``FILE:LINE`` of the row (the location part of its error messages)."""
        return f"{self.file}:{self.line}"


def _read_text(path: Path) -> str:
    if (problem := not_a_file(path, "data file", "give the path of an existing local file")):
        raise InputError(problem, file=path)
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark (spreadsheet exports) is skipped
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8", file=path) from None


def _jsonl_records(text: str, file: str, shape: str) -> Iterator[tuple[int, Any]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno}); write one object {shape} "
                             "per line", f"{file}:{lineno}") from None


def _csv_records(text: str, file: str) -> Iterator[tuple[int, Any]]:
    """Records of a CSV file with a header row, keyed by the header (empty cells left out)."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    last = 0
    try:
        for cells in reader:
            start, last = last + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                continue
            if len(cells) != len(header):
                raise InputError(f"{len(cells)} cells where the header (line 1) has {len(header)}; quote cells that "
                                 "hold commas, quotes or line breaks (\"...\")", f"{file}:{start}")
            yield start, {k: v for k, v in zip(header, cells, strict=True) if v.strip()}
    except csv.Error as exc:
        raise InputError(f"not valid CSV ({exc}); write a header row, then one record a row", f"{file}:{last + 1}") from None


def _domain(row: dict[str, Any], where: str, lay: Layout, default: str | None) -> str:
    if present(row, "domain") or default is None:
        if lay.name != "emsfl" and not present(row, "domain"):
            raise InputError(f"missing; {lay.name} rows name no domain: give the file's domain in the scenario "
                             f"(data.jsonl_files: [{{path: ..., format: {lay.name}, domain: NAME}}])", where, "domain")
        return text_field(row, "domain", where, "\"name\" (a cluster's data domain)")
    return default


def _parse_row(record: Any, file: str, line: int, lay: Layout, domain: str | None, split: str | None) -> McqaRow:
    """One record as a row; every problem is a one-line ``FILE:LINE: FIELD: ...`` error."""
    where = f"{file}:{line}"
    if not isinstance(record, dict):
        raise InputError(f"the row is a JSON {type(record).__name__}, not an object; write {lay.shape}", where)
    row_domain = _domain(record, where, lay, domain)
    question, options, answer = lay.parse(record, where)
    given = present(record, "split") or split is not None
    value = record["split"] if present(record, "split") else split or "train"
    if value not in JSONL_SPLITS:
        raise InputError(f"{json.dumps(value)} is not a split; {_SPLIT_HINT}", where, "split")
    return McqaRow(Example(row_domain, "mcqa", question, options, answer), str(value), file, line, given)


def load_mcqa_rows(
    path: str | Path, domain: str | None = None, format: str = "emsfl", split: str | None = None
) -> list[McqaRow]:
    """The rows of one MCQA file (JSONL, or CSV if its name ends in ``.csv``), in file order.

    ``format`` is the layout of its rows (:data:`FORMATS`); ``domain`` and ``split`` are
    the defaults of rows that name none (without ``domain`` every row must name its
    domain). Raises :class:`InputError` (``FILE:LINE: FIELD: ...``) at the first bad
    row, or when the file is missing, not UTF-8 or has no rows.
    """
    path, lay = Path(path), layout(format)
    if split is not None and split not in JSONL_SPLITS:
        raise InputError(f"{json.dumps(split)} is not a split; {_SPLIT_HINT}", path, "split")
    text, file, is_csv = _read_text(path), str(path), path.suffix.lower() == ".csv"
    records = _csv_records(text, file) if is_csv else _jsonl_records(text, file, lay.shape)
    rows = [_parse_row(record, file, lineno, lay, domain, split) for lineno, record in records]
    if not rows:
        kind = "a header row, then one record a row" if is_csv else f"one JSON object {lay.shape} per line"
        raise InputError(f"no rows; write {kind}", file=path)
    return rows


def load_mcqa_jsonl(path: str | Path, domain: str | None = None, format: str = "emsfl") -> list[Example]:
    """The examples of all rows (every split) of one MCQA file, in file order.

    See :func:`load_mcqa_rows` for ``domain``, ``format`` and the errors.
    """
    return [row.example for row in load_mcqa_rows(path, domain, format)]


def data_file_list(
    files: Sequence[str | Path | DataFileLike] | Mapping[str, str | Path | DataFileLike],
) -> list[DataFileLike]:
    """``files`` as data files: a list of paths or entries, or a mapping ``domain -> path or entry``.

    A mapping's key is the default domain of that file's rows; an entry under a key may
    not name another domain.
    """
    if not isinstance(files, Mapping):
        return [DataFile(f) if isinstance(f, (str, Path)) else f for f in files]
    out: list[DataFileLike] = []
    for dom, f in files.items():
        if isinstance(f, (str, Path)):
            out.append(DataFile(f, domain=str(dom)))
            continue
        if f.domain is not None and f.domain != dom:
            raise InputError(f"the entry under {dom!r} names domain {f.domain!r}; give one domain (the key, or the "
                             "domain of an entry in a list)", field=f"data.jsonl_files.{dom}.domain")
        out.append(DataFile(f.path, f.format, str(dom), f.split))
    return out


def load_mcqa_files(
    files: Sequence[str | Path | DataFileLike] | Mapping[str, str | Path | DataFileLike],
) -> list[McqaRow]:
    """The rows of several MCQA files, file after file (``files`` as in :func:`data_file_list`)."""
    return [row for f in data_file_list(files) for row in load_mcqa_rows(f.path, f.domain, f.format, f.split)]


def load_text_file(path: str | Path) -> list[str]:
    """Non-empty lines (stripped) of a UTF-8 text file, for language-model text."""
    path = Path(path)
    lines = [s.strip() for s in _read_text(path).splitlines()]
    lines = [s for s in lines if s]
    if not lines:
        raise InputError("file has no text; write one passage per line", file=path)
    return lines
