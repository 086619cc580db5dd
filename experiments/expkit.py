"""Helpers shared by the sweep-based experiments (1, 3, 4, 5): derived scenarios, sweeps, curves.

An experiment keeps its scenario in ``experiments/scenarios/``; the script resolves it
(``extends`` merged, relative paths made absolute), applies its size (default or
``--full``) and writes the result as ``scenario.yaml`` of its output folder, which is
then swept with :func:`emsfl_sim.sweep.run_sweep`. The folder is a normal sweep
directory, so ``emsfl-sim report`` works on it and a rerun resumes finished points.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from emsfl_sim.run.runner import first_reached
from emsfl_sim.scenario import apply_overrides, resolve_raw
from emsfl_sim.strategies import REGISTRY
from emsfl_sim.sweep import run_sweep

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
STRATEGY_LABELS = {name: cls.label for name, cls in REGISTRY.items()}  # declared by each strategy
STRATEGY_COLOURS = {name: cls.colour for name, cls in REGISTRY.items()}


def derived_scenario(name: str, folder: Path, overrides: dict[str, Any], file: str = "scenario.yaml") -> Path:
    """Resolve ``experiments/scenarios/<name>.yaml``, apply dotted overrides, write it into ``folder``."""
    source = SCENARIOS / f"{name}.yaml"
    raw = apply_overrides(resolve_raw(source), overrides, file=source)
    path = folder / file
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def sweep(scenario: Path, out: Path, workers: int | None) -> pd.DataFrame:
    """Run (or resume) the sweep of ``scenario`` in ``out``; only the ok rows are returned."""
    table = run_sweep(scenario, out, workers=workers, progress=True)
    bad = table[table["status"] != "ok"]
    for _, row in bad.drop_duplicates("point").iterrows():
        print(f"point {row['point']} failed: {row.get('error')}")
    return table


def point_metrics(out: Path, table: pd.DataFrame) -> pd.DataFrame:
    """All evaluation rows of the ok (point, strategy) pairs, with the point's columns attached."""
    frames = []
    keep = [c for c in table.columns if c not in ("status", "error")]
    for _, row in table[table["status"] == "ok"].iterrows():
        path = out / "points" / row["point"] / row["strategy"] / "metrics.csv"
        if not path.exists():
            continue
        m = pd.read_csv(path)
        for c in keep:
            if c not in m.columns:
                m[c] = row[c]
        frames.append(m)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def hours(seconds: Any, horizon_s: float | None = None) -> str:
    """'5.1 h', or 'not reached (> 24.0 h)' for a missing time."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return f"not reached within {horizon_s / 3600:.1f} h" if horizon_s else "not reached"
    return f"{float(seconds) / 3600:.1f} h"


def ratio_text(baseline_s: Any, emsfl_s: Any, horizon_s: float) -> str:
    """How much faster EMS-FL reached the target than the baseline (a lower bound if the baseline did not)."""
    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    if missing(emsfl_s):
        return "EMS-FL did not reach it" if not missing(baseline_s) else "neither reached it"
    if missing(baseline_s):
        return f"> {horizon_s / max(float(emsfl_s), 1.0):.1f}x (baseline did not reach it)"
    return f"{float(baseline_s) / max(float(emsfl_s), 1.0):.2f}x"


def strategy_pivot(table: pd.DataFrame, index: list[str], value: str) -> pd.DataFrame:
    """One column per strategy of ``value`` (mean over seeds), rows ``index``."""
    ok = table[table["status"] == "ok"]
    pivot = ok.pivot_table(index=index, columns="strategy", values=value, aggfunc="mean", dropna=False)
    pivot = pivot.reset_index()
    pivot.columns.name = None
    return pivot


def first_reach(metrics: pd.DataFrame, target: float, keys: list[str]) -> pd.DataFrame:
    """Time (s) and cycle of the first evaluation at or above ``target`` per ``keys`` group (NaN if never)."""
    rows = []
    for values, run in metrics.groupby(keys, sort=False):
        hit = first_reached(run, target)
        values = values if isinstance(values, tuple) else (values,)
        rows.append({**dict(zip(keys, values, strict=True)),
                     "t_s": float(hit["time_s"].iloc[0]) if len(hit) else float("nan"),
                     "cycle": float(hit["cycle"].iloc[0]) if len(hit) else float("nan")})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# Orbital sweeps without the schedule cache.
#
# run_sweep caches each point's LinkSchedule as a pickle; an orbital schedule keeps its
# ContactPlan (sgp4 Satrec objects, not picklable) in ``extras``, so every orbital point
# of run_sweep currently fails with "cannot pickle 'Satrec' object". Until that is fixed,
# the orbital parts run their points with run_scenario in a local process pool (each
# point builds its own schedule) and build the same table (one row per point x strategy).
def _run_one(point_id: str, raw: dict[str, Any], file: str, directory: str) -> dict[str, Any]:
    """Run one point with run_scenario (in a worker); returns its summaries or its error."""
    import json
    import traceback
    import warnings

    warnings.simplefilter("ignore", FutureWarning)  # library deprecation chatter from every worker

    from emsfl_sim.run.runner import run_scenario
    from emsfl_sim.scenario import scenario_to_yaml, validate_raw

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        scenario = validate_raw(raw, file=file)
        stored = folder / "scenario.yaml"
        fresh = stored.exists() and stored.read_text() != scenario_to_yaml(scenario)
        with (folder / "log.txt").open("a") as log:
            run_scenario(scenario, out=folder, fresh=fresh, progress=False,
                         log=lambda m: (log.write(m + "\n"), log.flush()))
        summaries = [json.loads((folder / s / "summary.json").read_text()) for s in scenario.strategy.names]
        return {"id": point_id, "status": "ok", "error": None, "summaries": summaries}
    except Exception as exc:  # noqa: BLE001 - a failing point is recorded, the others go on
        (folder / "error.txt").write_text(traceback.format_exc())
        return {"id": point_id, "status": "error", "error": f"{type(exc).__name__}: {exc}", "summaries": []}


def sweep_uncached(scenario: Path, out: Path, workers: int | None) -> pd.DataFrame:
    """Like :func:`sweep` (same table columns) but every point builds its own schedule."""
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from emsfl_sim.sweep import expand_sweep

    points = expand_sweep(scenario)
    records: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = {pool.submit(_run_one, p.id, p.raw, str(scenario), str(out / "points" / p.id)): p
                   for p in points if p.error is None}
        for p in points:
            if p.error is not None:
                records[p.id] = {"id": p.id, "status": "error", "error": p.error, "summaries": []}
        for future in tqdm(as_completed(futures), total=len(futures), desc="points", unit="point",
                           disable=None):
            record = future.result()
            records[record["id"]] = record
    rows = []
    for p in points:
        record = records[p.id]
        common_ = {"point": p.id, "index": p.index, **{k: v for k, v in p.overrides.items() if k != "seed"},
                   "seed": p.seed, "status": record["status"], "error": record["error"]}
        if not record["summaries"]:
            rows.append({**common_, "strategy": None})
            print(f"point {p.id} failed: {record['error']}")
        rows.extend({**common_, **s} for s in record["summaries"])
    table = pd.DataFrame(rows)
    table.to_csv(out / "sweep.csv", index=False)
    return table
