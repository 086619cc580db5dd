"""Table schemas and table files: every writer and reader of run directories goes through here.

A table is stored as ``stem.parquet`` and/or ``stem.csv`` (``output.formats``); readers
prefer Parquet and fall back to CSV, so a Parquet-only run reads like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from emsfl_sim.results.files import atomic_write

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
    stem = Path(stem)
    for fmt in formats:
        if fmt == "parquet":
            atomic_write(stem.with_suffix(".parquet"), lambda handle: frame.to_parquet(handle, index=False))
        elif fmt == "csv":
            atomic_write(stem.with_suffix(".csv"),
                         lambda handle: handle.write(frame.to_csv(index=False).encode("utf-8")))
        else:
            raise ValueError(f"unknown table format {fmt!r}; use one of {', '.join(TABLE_FORMATS)}")


def has_table(stem: str | Path) -> bool:
    """Whether ``stem.parquet`` or ``stem.csv`` exists."""
    stem = Path(stem)
    return stem.with_suffix(".parquet").is_file() or stem.with_suffix(".csv").is_file()


def read_table(stem: str | Path) -> pd.DataFrame:
    """The table written by :func:`write_table`: ``stem.parquet`` if present, else ``stem.csv``."""
    stem = Path(stem)
    parquet = stem.with_suffix(".parquet")
    return pd.read_parquet(parquet) if parquet.is_file() else pd.read_csv(stem.with_suffix(".csv"))
