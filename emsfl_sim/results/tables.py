"""Table schemas and table files: every writer and reader of run directories goes through here.

A table is stored as ``stem.parquet`` and/or ``stem.csv`` (``output.formats``); readers
prefer Parquet and fall back to CSV, so a Parquet-only run reads like any other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
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

TABLE_FORMATS = ("parquet", "csv")


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

    def write(self, frame: pd.DataFrame) -> None:
        """Append the rows of ``frame``."""
        if "parquet" in self._handles:
            if self._parquet is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._parquet = pq.ParquetWriter(self._handles["parquet"], table.schema)
            else:
                table = pa.Table.from_pandas(frame, schema=self._parquet.schema, preserve_index=False)
            self._parquet.write_table(table)
        if "csv" in self._handles:
            self._handles["csv"].write(frame.to_csv(index=False, header=self.rows == 0).encode("utf-8"))
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
