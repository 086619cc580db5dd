"""The combined sweep table: one row per (point, strategy), stored as ``sweep.parquet`` and ``sweep.csv``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from emsfl_sim.errors import InputError
from emsfl_sim.results import write_table
from emsfl_sim.sweep.points import SweepPoint

#: Summary metrics first in the combined table (the rest of summary.json follows).
METRIC_COLUMNS: tuple[str, ...] = (
    "time_to_target_s", "cycles_to_target", "final_accuracy", "best_accuracy", "uplink_mb",
    "uplink_mb_per_pass", "idle_fraction", "interrupted_uploads", "local_rounds", "peak_device_memory_mb",
    "wall_s",
)


def point_rows(point: SweepPoint, record: dict[str, Any], swept: Sequence[str],
               strategies: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of the combined table for one point: one per strategy."""
    base = {"point": point.id, "index": point.index}
    for key in swept:
        base[key] = point.overrides.get(key)
    base["seed"] = point.overrides.get("seed", point.raw.get("seed", 0))
    base["status"] = record.get("status", "error")
    base["error"] = record.get("error")
    base["schedule_key"] = record.get("schedule_key")
    base["point_wall_s"] = record.get("wall_s")
    base["point_cpu_s"] = record.get("cpu_s")
    summaries = {s["strategy"]: s for s in record.get("summaries", [])}
    names = list(dict.fromkeys([*strategies, *summaries]))
    rows = []
    for name in names:
        summary = summaries.get(name, {})
        metrics = {k: v for k, v in summary.items() if k not in {"strategy", "scenario", "seed"}}
        rows.append({**base, "strategy": name, **metrics})
    return rows


def sweep_table(points: Sequence[SweepPoint], records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The combined table of the finished points (point order, then strategy order)."""
    swept = [k for k in (points[0].overrides if points else {}) if k != "seed"]
    rows = []
    for point in points:
        if point.id in records:
            rows.extend(point_rows(point, records[point.id], swept, point.strategies))
    head = ["point", "index", *swept, "seed", "strategy", "status", "error", *METRIC_COLUMNS]
    table = pd.DataFrame(rows)
    return table.reindex(columns=[*head, *[c for c in table.columns if c not in head]])


def _storable(table: pd.DataFrame) -> pd.DataFrame:
    """Columns Parquet can hold: lists/dicts become JSON text, mixed types become text."""
    out = table.copy()
    for column in out.columns:
        values = out[column].dropna()
        if values.empty or out[column].dtype != object:
            continue
        if values.map(lambda v: isinstance(v, (list, dict))).any():
            out[column] = out[column].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
            values = out[column].dropna()
        kinds = {type(v) for v in values}
        if len(kinds) > 1 and not kinds <= {int, float, bool}:
            out[column] = out[column].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                                          else str(v))
    return out


def write_sweep_table(table: pd.DataFrame, out_dir: Path) -> None:
    """``sweep.parquet`` and ``sweep.csv`` (each written atomically: results.write_table)."""
    write_table(_storable(table), out_dir / "sweep", ("parquet", "csv"))


def load_sweep_table(out_dir: str | Path) -> pd.DataFrame:
    """The combined table of a sweep directory (Parquet if present, else CSV)."""
    out = Path(out_dir)
    if (out / "sweep.parquet").exists():
        return pd.read_parquet(out / "sweep.parquet")
    if (out / "sweep.csv").exists():
        return pd.read_csv(out / "sweep.csv")
    raise InputError("no sweep.parquet or sweep.csv here; run emsfl-sim sweep first", file=out)
