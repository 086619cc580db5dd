"""Results as files: table schemas, reading and writing Parquet or CSV, one atomic write."""

from emsfl_sim.results.files import atomic_open, atomic_write, atomic_write_json, atomic_write_text, jsonable
from emsfl_sim.results.tables import (
    EVENT_COLUMNS,
    EVENT_DTYPES,
    EVENT_SCHEMA,
    TableWriter,
    event_table,
    has_table,
    read_table,
    write_table,
)

__all__ = [
    "EVENT_COLUMNS", "EVENT_DTYPES", "EVENT_SCHEMA", "TableWriter", "atomic_open", "atomic_write", "atomic_write_json",
    "atomic_write_text", "event_table", "has_table", "jsonable", "read_table", "write_table",
]
