"""Results as files: metrics and events written incrementally, then Parquet + CSV.

Rows are appended to ``*.csv.part`` files and flushed as they come, so a crash
loses at most the row being written; ``close()`` writes the final CSV/Parquet
tables. A run directory is self-describing: the resolved scenario, versions and
seed are written next to the tables.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from emsfl_sim.results import EVENT_COLUMNS, EVENT_DTYPES, atomic_write_json, write_table


class Recorder:
    """Collects ``events`` and ``metrics`` rows for one strategy run and writes them to ``directory``."""

    def __init__(self, directory: str | Path, strategy: str, start_utc: Any, formats: Iterable[str] = ("parquet", "csv")) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.strategy = strategy
        self.start_utc = pd.Timestamp(start_utc)
        self.formats = tuple(formats)
        self.events: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self._files: dict[str, TextIO] = {}
        self._writers: dict[str, csv.DictWriter] = {}
        self._metric_columns: list[str] | None = None

    # ------------------------------------------------------------------ rows
    def utc(self, time_s: float) -> str:
        """ISO UTC string of a simulated time."""
        return (self.start_utc + pd.to_timedelta(time_s, unit="s")).isoformat()

    def event(self, time_s: float, event: str, cluster: str = "", **fields: Any) -> None:
        """Record one event (link up/down, upload start/complete/interrupted, aggregation, ...)."""
        row: dict[str, Any] = {c: None for c in EVENT_COLUMNS}
        row.update(time_s=float(time_s), utc=self.utc(time_s), strategy=self.strategy, event=event, cluster=cluster)
        for key, value in fields.items():
            if key in ("experts",) and isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            if key not in row:
                raise KeyError(f"unknown event field {key!r}")
            row[key] = value
        self.events.append(row)
        self._append("events", row, EVENT_COLUMNS)

    def metric(self, row: dict[str, Any]) -> None:
        """Record one evaluation row (time, cycle, accuracy, loss, per-domain values)."""
        row = {"strategy": self.strategy, **row}
        if "time_s" in row and "utc" not in row:
            row["utc"] = self.utc(row["time_s"])
        if self._metric_columns is None:
            self._metric_columns = list(row)
        self.metrics.append(row)
        self._append("metrics", row, self._metric_columns)

    def _append(self, table: str, row: dict[str, Any], columns: list[str]) -> None:
        if table not in self._writers:
            handle = open(self.directory / f"{table}.csv.part", "w", newline="", encoding="utf-8")
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            self._files[table], self._writers[table] = handle, writer
        self._writers[table].writerow(row)
        self._files[table].flush()

    # ---------------------------------------------------------------- output
    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The events and metrics tables so far."""
        events = pd.DataFrame(self.events, columns=EVENT_COLUMNS).astype(EVENT_DTYPES)
        return events, pd.DataFrame(self.metrics)

    def close(self, summary: dict[str, Any]) -> None:
        """Write final tables and ``summary.json``; remove the partial files."""
        for handle in self._files.values():
            handle.close()
        events, metrics = self.tables()
        write_table(events, self.directory / "events", self.formats)
        write_table(metrics, self.directory / "metrics", self.formats)
        for table in ("events", "metrics"):
            part = self.directory / f"{table}.csv.part"
            if part.exists():
                part.unlink()
        atomic_write_json(self.directory / "summary.json", summary)
