"""Results as files: metrics and events written incrementally, then Parquet + CSV.

Rows are appended to ``*.csv.part`` files at least once a second of wall time
(:data:`FLUSH_EVERY_S`; writing and flushing per row cost more than the event it records),
so a crash loses at most the last second's rows; ``close()`` writes the final CSV/Parquet
tables.  An event is a row in :data:`~emsfl_sim.results.EVENT_COLUMNS` order until the next
flush, which turns the rows since the last one into a typed Arrow table
(:func:`~emsfl_sim.results.event_table`, no pandas frame): its UTC strings formatted at once
(:class:`~emsfl_sim.sim.utc_strings.UtcStrings`, pandas' strings without pandas), appended to
``events.csv.part`` by pyarrow's CSV writer, and kept for the batch.
Every :data:`EVENT_BATCH` events the batch goes to the final tables' temporary files
(:class:`~emsfl_sim.results.TableWriter`), so a run of 30 M events holds one batch. A run
directory is self-describing: the resolved scenario, versions and seed are written next to
the tables.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from emsfl_sim.results import (
    EVENT_COLUMNS,
    EVENT_SCHEMA,
    TableWriter,
    atomic_write_json,
    event_table,
    write_table,
)
from emsfl_sim.sim.utc_strings import UtcStrings

#: Longest wall time (s) between two flushes of the ``*.csv.part`` files.
FLUSH_EVERY_S = 1.0
#: Event rows kept in memory before they are appended to the final tables.
EVENT_BATCH = 100_000
_EVENT_INDEX = {c: i for i, c in enumerate(EVENT_COLUMNS)}
_EMPTY_FIELDS = (None,) * (len(EVENT_COLUMNS) - 5)  # the columns after time_s, utc, strategy, event, cluster
# Recorder.link_event lays out its row by position.
assert EVENT_COLUMNS[4:9] == ["cluster", "device", "satellite", "bytes", "bytes_total"] and len(EVENT_COLUMNS) == 11


class Recorder:
    """Collects ``events`` and ``metrics`` rows for one strategy run and writes them to ``directory``."""

    def __init__(self, directory: str | Path, strategy: str, start_utc: Any, formats: Iterable[str] = ("parquet", "csv")) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.strategy = strategy
        self.start_utc = pd.Timestamp(start_utc)
        self.formats = tuple(formats)
        # Events since the last flush, row after row in EVENT_COLUMNS order (utc None): one flat list,
        # whose columns are slices (transposing a list of rows costs more than the event).
        self._cells: list[Any] = []
        self._tables: list[pa.Table] = []  # events flushed since the last batch, typed
        self._batch_rows = 0  # events since the last batch
        self.event_count = 0  # every event recorded
        self._event_table: TableWriter | None = None
        self.metrics: list[dict[str, Any]] = []
        self._files: dict[str, IO[Any]] = {}
        self._writers: dict[str, Any] = {}
        self._metric_columns: list[str] | None = None
        self._flushed = time.monotonic()
        self._utc = UtcStrings(self.start_utc)

    # ------------------------------------------------------------------ rows
    def utc(self, time_s: float) -> str:
        """ISO UTC string of a simulated time (``(start + pd.to_timedelta(time_s, unit="s")).isoformat()``)."""
        return self._utc.one(time_s)

    def event(self, time_s: float, event: str, cluster: str = "", **fields: Any) -> None:
        """Record one event (link up/down, upload start/complete/interrupted, aggregation, ...)."""
        row: list[Any] = [float(time_s), None, self.strategy, event, cluster, *_EMPTY_FIELDS]
        for key, value in fields.items():
            if key == "experts" and isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            index = _EVENT_INDEX.get(key)
            if index is None:
                raise KeyError(f"unknown event field {key!r}")
            row[index] = value
        self._cells += row
        self._counted()

    def link_event(self, time_s: float, event: str, cluster: str, satellite: str, bytes_total: int | None = None) -> None:
        """``event(time_s, event, cluster, satellite=satellite, bytes_total=bytes_total)`` without the keywords.

        The link process records two events per window (about 29 M in a week of Starlink over
        1000 clusters), so its row is laid out at once.
        """
        self._cells += (float(time_s), None, self.strategy, event, cluster, None, satellite, None, bytes_total, None, None)
        self._counted()

    def _counted(self) -> None:
        """Count the row just added; write the batch or flush the part files when it is time."""
        self.event_count += 1
        self._batch_rows += 1
        if self._batch_rows >= EVENT_BATCH:
            self._write_events()
        elif time.monotonic() - self._flushed >= FLUSH_EVERY_S:
            self._flush()

    def _take_rows(self) -> None:
        """The rows since the last flush as an Arrow table (UTC strings at once): to ``events.csv.part`` and the batch."""
        cells, self._cells = self._cells, []
        if not cells:
            return
        width = len(EVENT_COLUMNS)
        columns: list[Any] = [cells[i::width] for i in range(width)]
        columns[1] = self._utc.many(np.array(columns[0], dtype=float))
        table = event_table(columns)
        first = "events" not in self._files
        if first:
            self._files["events"] = open(self.directory / "events.csv.part", "wb")
        pa_csv.write_csv(table, self._files["events"], pa_csv.WriteOptions(include_header=first))
        self._tables.append(table)

    def _flush(self) -> None:
        """Every row so far to the part files, flushed to disk."""
        self._take_rows()
        for part in self._files.values():
            part.flush()
        self._flushed = time.monotonic()

    def _write_events(self) -> None:
        """Append the events since the last batch to the final event tables (opened at the first batch)."""
        self._take_rows()
        if self._event_table is None:
            self._event_table = TableWriter(self.directory / "events", self.formats)
        tables, self._tables = self._tables, []
        self._event_table.write(pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table())
        self._batch_rows = 0

    def metric(self, row: dict[str, Any]) -> None:
        """Record one evaluation row (time, cycle, accuracy, loss, per-domain values)."""
        row = {"strategy": self.strategy, **row}
        if "time_s" in row and "utc" not in row:
            row["utc"] = self.utc(row["time_s"])
        if self._metric_columns is None:
            self._metric_columns = list(row)
        self.metrics.append(row)
        self._part_writer("metrics", self._metric_columns).writerow([row.get(c, "") for c in self._metric_columns])
        self._flush()  # an evaluation is rare and worth keeping at once

    def _part_writer(self, table: str, columns: list[str]) -> Any:
        """The CSV writer of ``table.csv.part`` (rows as ``csv.DictWriter`` writes them), opened with its header."""
        if table not in self._writers:
            handle = open(self.directory / f"{table}.csv.part", "w", newline="", encoding="utf-8")
            writer = csv.writer(handle)
            writer.writerow(columns)
            self._files[table], self._writers[table] = handle, writer
        return self._writers[table]

    # ---------------------------------------------------------------- output
    def metrics_frame(self) -> pd.DataFrame:
        """The metrics table so far."""
        return pd.DataFrame(self.metrics)

    def close(self, summary: dict[str, Any]) -> None:
        """Write final tables and ``summary.json``; remove the partial files."""
        if self._batch_rows or self._event_table is None:
            self._write_events()
        for handle in self._files.values():
            handle.close()
        assert self._event_table is not None
        self._event_table.close()
        write_table(self.metrics_frame(), self.directory / "metrics", self.formats)
        for table in ("events", "metrics"):
            part = self.directory / f"{table}.csv.part"
            if part.exists():
                part.unlink()
        atomic_write_json(self.directory / "summary.json", summary)
