"""Results as files: metrics and events written incrementally, then Parquet + CSV.

Rows are appended to ``*.csv.part`` files, flushed at least once a second of wall
time (:data:`FLUSH_EVERY_S`; a flush per row cost more than the event it records), so a
crash loses at most the last second's rows; ``close()`` writes the final CSV/Parquet
tables.  Events are kept as tuples in :data:`~emsfl_sim.results.EVENT_COLUMNS` order, at
most :data:`EVENT_BATCH` of them: each full batch goes to the final tables' temporary files
(:class:`~emsfl_sim.results.TableWriter`), so a run of 30 M events holds one batch. Their
UTC strings are formatted without pandas per event (the same strings as
``(start + pd.to_timedelta(t, unit="s")).isoformat()``, checked on a probe at start). A run
directory is self-describing: the resolved scenario, versions and seed are written next to
the tables.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from emsfl_sim.results import EVENT_COLUMNS, EVENT_DTYPES, TableWriter, atomic_write_json, write_table

#: Longest wall time (s) between two flushes of the ``*.csv.part`` files.
FLUSH_EVERY_S = 1.0
#: Event rows kept in memory before they are appended to the final tables.
EVENT_BATCH = 100_000
_EVENT_INDEX = {c: i for i, c in enumerate(EVENT_COLUMNS)}
_UNIX = datetime(1970, 1, 1, tzinfo=timezone.utc)
_PROBES = (0.0, 1e-9, 0.1, 0.5, 1.25, 59.999999999, 3600.0000005, 86399.123456789, 123456.7, 604800.000001)


def _pandas_ns(time_s: float) -> int:
    """The float seconds -> integer nanoseconds rule of pandas (``Timedelta(time_s, unit="s")``)."""
    whole = int(time_s)
    return whole * 1_000_000_000 + int(round(time_s - whole, 9) * 1e9)


def _iso_utc(total_ns: int) -> str:
    """``pd.Timestamp(total_ns, tz="UTC").isoformat()`` by hand (fraction: none, 6 or 9 digits)."""
    sec, sub = divmod(total_ns, 1_000_000_000)
    text = datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if sub:
        text += f".{sub // 1000:06d}" if sub % 1000 == 0 else f".{sub:09d}"
    return text + "+00:00"


class Recorder:
    """Collects ``events`` and ``metrics`` rows for one strategy run and writes them to ``directory``."""

    def __init__(self, directory: str | Path, strategy: str, start_utc: Any, formats: Iterable[str] = ("parquet", "csv")) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.strategy = strategy
        self.start_utc = pd.Timestamp(start_utc)
        self.formats = tuple(formats)
        self.events: list[tuple[Any, ...]] = []  # rows in EVENT_COLUMNS order, since the last batch
        self.event_count = 0  # every event recorded
        self._event_table: TableWriter | None = None
        self.metrics: list[dict[str, Any]] = []
        self._files: dict[str, TextIO] = {}
        self._writers: dict[str, Any] = {}
        self._metric_columns: list[str] | None = None
        self._flushed = time.monotonic()
        self._base_ns: int | None = None  # the fast UTC path, where it gives pandas' strings
        if self.start_utc.tz is not None:
            self._base_ns = (self.start_utc.to_pydatetime() - _UNIX) // pd.Timedelta(1, "ns")
            if any(self.utc(t) != self._pandas_utc(t) for t in _PROBES):
                self._base_ns = None

    # ------------------------------------------------------------------ rows
    def utc(self, time_s: float) -> str:
        """ISO UTC string of a simulated time (``(start + pd.to_timedelta(time_s, unit="s")).isoformat()``)."""
        if self._base_ns is not None and 0.0 <= time_s < 1e10:
            return _iso_utc(self._base_ns + _pandas_ns(float(time_s)))
        return self._pandas_utc(time_s)

    def _pandas_utc(self, time_s: float) -> str:
        return (self.start_utc + pd.to_timedelta(time_s, unit="s")).isoformat()

    def event(self, time_s: float, event: str, cluster: str = "", **fields: Any) -> None:
        """Record one event (link up/down, upload start/complete/interrupted, aggregation, ...)."""
        row: list[Any] = [None] * len(EVENT_COLUMNS)
        row[:5] = (float(time_s), self.utc(time_s), self.strategy, event, cluster)
        for key, value in fields.items():
            if key in ("experts",) and isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            index = _EVENT_INDEX.get(key)
            if index is None:
                raise KeyError(f"unknown event field {key!r}")
            row[index] = value
        self.events.append(tuple(row))
        self.event_count += 1
        self._append_list("events", row, EVENT_COLUMNS)
        if len(self.events) >= EVENT_BATCH:
            self._write_events()

    def _write_events(self) -> None:
        """Append the rows in memory to the final event tables (opened at the first batch)."""
        if self._event_table is None:
            self._event_table = TableWriter(self.directory / "events", self.formats)
        self._event_table.write(pd.DataFrame(self.events, columns=EVENT_COLUMNS).astype(EVENT_DTYPES))
        self.events = []

    def metric(self, row: dict[str, Any]) -> None:
        """Record one evaluation row (time, cycle, accuracy, loss, per-domain values)."""
        row = {"strategy": self.strategy, **row}
        if "time_s" in row and "utc" not in row:
            row["utc"] = self.utc(row["time_s"])
        if self._metric_columns is None:
            self._metric_columns = list(row)
        self.metrics.append(row)
        self._append_list("metrics", [row.get(c, "") for c in self._metric_columns], self._metric_columns)

    def _append_list(self, table: str, row: list[Any], columns: list[str]) -> None:
        """One CSV row (values in ``columns`` order, as ``csv.DictWriter`` writes it) to ``table.csv.part``."""
        if table not in self._writers:
            handle = open(self.directory / f"{table}.csv.part", "w", newline="", encoding="utf-8")
            writer = csv.writer(handle)
            writer.writerow(columns)
            self._files[table], self._writers[table] = handle, writer
        self._writers[table].writerow(row)
        now = time.monotonic()
        if table == "metrics" or now - self._flushed >= FLUSH_EVERY_S:
            for part in self._files.values():
                part.flush()
            self._flushed = now

    # ---------------------------------------------------------------- output
    def metrics_frame(self) -> pd.DataFrame:
        """The metrics table so far."""
        return pd.DataFrame(self.metrics)

    def close(self, summary: dict[str, Any]) -> None:
        """Write final tables and ``summary.json``; remove the partial files."""
        for handle in self._files.values():
            handle.close()
        if self.events or self._event_table is None:
            self._write_events()
        assert self._event_table is not None
        self._event_table.close()
        write_table(self.metrics_frame(), self.directory / "metrics", self.formats)
        for table in ("events", "metrics"):
            part = self.directory / f"{table}.csv.part"
            if part.exists():
                part.unlink()
        atomic_write_json(self.directory / "summary.json", summary)
