"""Table schemas and table files: every writer and reader of run directories goes through here.

A table is stored as ``stem.parquet`` and/or ``stem.csv`` (``output.formats``); readers
prefer Parquet and fall back to CSV, so a Parquet-only run reads like any other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emsfl_sim.results.files import atomic_open

EVENT_COLUMNS = [
    "time_s", "utc", "strategy", "event", "cluster", "device", "satellite", "bytes", "bytes_total",
    "experts", "detail",
]

EVENT_DTYPES = {
    "time_s": "float64", "utc": "string", "strategy": "string", "event": "string", "cluster": "string",
    "device": "string", "satellite": "string", "bytes": "Int64", "bytes_total": "Int64", "experts": "string",
    "detail": "string",
}

#: The Arrow schema of an event table, pandas metadata included (what ``pa.Table.from_pandas`` of a
#: frame typed with :data:`EVENT_DTYPES` gives), so a table built in Arrow reads back with those dtypes.
EVENT_SCHEMA = pa.Schema.from_pandas(pd.DataFrame(columns=EVENT_COLUMNS).astype(EVENT_DTYPES), preserve_index=False)

TABLE_FORMATS = ("parquet", "csv")


def event_table(columns: Sequence[Sequence[Any]]) -> pa.Table:
    """An event table from its columns of Python values, in :data:`EVENT_COLUMNS` order (None: missing).

    Equal to ``pa.Table.from_pandas(pd.DataFrame(columns).astype(EVENT_DTYPES))`` without the
    frame (a fifth of the event loop's time at scale): a column Arrow does not take as it is
    (a number in a string column, a float in an integer one) goes through pandas' conversion,
    so it converts, or fails, as ``astype`` would.
    """
    if len(columns) != len(EVENT_SCHEMA):
        raise ValueError(f"{len(columns)} columns, the event table has {len(EVENT_SCHEMA)}")
    arrays = []
    for values, schema_field in zip(columns, EVENT_SCHEMA, strict=True):
        kind = schema_field.type
        try:
            array = pa.array(values) if pa.types.is_integer(kind) else pa.array(values, type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = None
        if array is None or not (array.type == kind or pa.types.is_null(array.type)):
            # pa.array would truncate 2.5 to an integer column; pandas refuses it.
            array = pa.array(pd.array(list(values), dtype=EVENT_DTYPES[schema_field.name]))
        arrays.append(array.cast(kind))
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def write_table(frame: pd.DataFrame, stem: str | Path, formats: Iterable[str] = TABLE_FORMATS) -> None:
    """Write ``frame`` atomically as ``stem.parquet`` and/or ``stem.csv``.

    Parameters
    ----------
    frame
        The table.
    stem
        Path without suffix.
    formats
        Any of ``"parquet"`` and ``"csv"``.
    """
    with TableWriter(stem, formats) as writer:
        writer.write(frame)


class TableWriter:
    """:func:`write_table` of a long table given batch by batch (its rows are never all in memory).

    ``write(frame)`` appends a batch (every batch has the first one's columns and dtypes);
    ``close()`` makes the files appear, each atomically, with the content ``write_table`` of
    the batches concatenated would give.
    """

    def __init__(self, stem: str | Path, formats: Iterable[str] = TABLE_FORMATS) -> None:
        self.stem = Path(stem)
        self.formats = tuple(formats)
        for fmt in self.formats:
            if fmt not in TABLE_FORMATS:
                raise ValueError(f"unknown table format {fmt!r}; use one of {', '.join(TABLE_FORMATS)}")
        self._stack = contextlib.ExitStack()
        self._handles = {fmt: self._stack.enter_context(atomic_open(self.stem.with_suffix(f".{fmt}")))
                         for fmt in self.formats}
        self._parquet: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame | pa.Table) -> None:
        """Append the rows of ``frame`` (a frame, or an Arrow table with pandas metadata such as :func:`event_table`'s)."""
        if "parquet" in self._handles:
            if isinstance(frame, pa.Table):
                table = frame
            else:
                schema = None if self._parquet is None else self._parquet.schema
                table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._handles["parquet"], table.schema)
            self._parquet.write_table(table)
        if "csv" in self._handles:
            rows = frame.to_pandas() if isinstance(frame, pa.Table) else frame  # its metadata restores the dtypes
            self._handles["csv"].write(rows.to_csv(index=False, header=self.rows == 0).encode("utf-8"))
        self.rows += len(frame)

    def close(self) -> None:
        """Finish the files and move them into place."""
        if self._parquet is not None:
            self._parquet.close()
        self._stack.close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> None:
        if kind is None:
            self.close()
            return
        if self._parquet is not None:
            self._parquet.close()
        self._stack.__exit__(kind, error, trace)  # the temporary files are removed; the error goes on


def has_table(stem: str | Path) -> bool:
    """Whether ``stem.parquet`` or ``stem.csv`` exists."""
    stem = Path(stem)
    return stem.with_suffix(".parquet").is_file() or stem.with_suffix(".csv").is_file()


def read_table(stem: str | Path) -> pd.DataFrame:
    """The table written by :func:`write_table`: ``stem.parquet`` if present, else ``stem.csv``."""
    stem = Path(stem)
    parquet = stem.with_suffix(".parquet")
    return pd.read_parquet(parquet) if parquet.is_file() else pd.read_csv(stem.with_suffix(".csv"))
