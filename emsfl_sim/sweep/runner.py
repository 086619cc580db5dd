"""``run_sweep``: expand a sweep, skip finished points, build the shared schedules, run the rest."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import emsfl_sim.sim.schedule as schedule_module
from emsfl_sim import __version__
from emsfl_sim.errors import InputError
from emsfl_sim.sweep.cache import cache_path, schedule_key
from emsfl_sim.sweep.executors import Executor, check_executor, make_executor
from emsfl_sim.sweep.point import PointTask, build_schedule_task, one_line, run_point, write_json_atomic
from emsfl_sim.sweep.points import SweepPoint, expand_sweep, sweep_config
from emsfl_sim.sweep.resume import finished_record, invalid_record, needs_fresh
from emsfl_sim.sweep.table import sweep_table, write_sweep_table

Log = Callable[[str], None]


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _write_definition(scenario_path: Path, out: Path, points: Sequence[SweepPoint], executor: str,
                      workers: int | None) -> None:
    """``scenario.yaml`` (the base as given) and ``sweep.json`` (definition, executor, point ids)."""
    (out / "points").mkdir(parents=True, exist_ok=True)
    (out / "scenario.yaml").write_text(scenario_path.read_text(encoding="utf-8"))
    sweep = sweep_config(scenario_path)
    write_json_atomic(out / "sweep.json", {
        "scenario": str(scenario_path.resolve()), "mode": sweep.mode, "parameters": sweep.parameters,
        "seeds": sweep.seeds, "executor": executor, "workers": workers, "points": [p.id for p in points],
        "created_unix": time.time(), "emsfl_sim": __version__,
        "schedule_format": schedule_module.SCHEDULE_FORMAT,
    })


def _plan(points: Sequence[SweepPoint], out: Path) -> tuple[dict[str, dict[str, Any]], list[SweepPoint]]:
    """The records known before running (invalid and finished points) and the points to run."""
    records: dict[str, dict[str, Any]] = {}
    todo: list[SweepPoint] = []
    for point in points:
        directory = out / "points" / point.id
        if point.error is not None:
            directory.mkdir(parents=True, exist_ok=True)
            records[point.id] = invalid_record(point)
            write_json_atomic(directory / "point.json", records[point.id])
            continue
        finished = finished_record(point, directory)
        if finished is not None:
            records[point.id] = finished
        else:
            todo.append(point)
    return records, todo


def _build_schedules(runner: Executor, todo: Sequence[SweepPoint], file: Path, cache_dir: Path, log: Log) -> None:
    """Phase 1: one schedule per distinct key, in parallel, so no two points build the same one."""
    first_of_key: dict[str, SweepPoint] = {}
    for point in todo:
        assert point.scenario is not None
        first_of_key.setdefault(schedule_key(point.scenario), point)
    missing = {k: p for k, p in first_of_key.items() if not cache_path(cache_dir, k).exists()}
    log(f"link schedules: {len(first_of_key)} distinct, {len(missing)} to build, "
        f"{len(first_of_key) - len(missing)} cached")
    for key, point in missing.items():
        runner.submit(build_schedule_task, key, point.raw, str(file), str(cache_dir))
    for key, error, exc in runner.results():
        if error or exc:
            log(f"schedule {key}: {error or one_line(exc)} (its points will report it)")


def _run_points(runner: Executor, points: Sequence[SweepPoint], todo: Sequence[SweepPoint],
                records: dict[str, dict[str, Any]], file: Path, out: Path, progress: bool) -> None:
    """Phase 2: run the points, rewriting the table as each one finishes."""
    bar = None
    if progress:
        from tqdm import tqdm

        # disable=None: no bar when stderr is not a terminal (a log file gets no flood of redraws)
        bar = tqdm(total=len(points), initial=len(points) - len(todo), desc="sweep", unit="point",
                   dynamic_ncols=True, disable=None)
    try:
        for point in todo:
            directory = out / "points" / point.id
            task = PointTask(point.id, point.index, point.raw, str(file), str(directory),
                             str(out / "cache"), needs_fresh(point, directory), point.overrides)
            runner.submit(run_point, point.id, task)
        by_id = {p.id: p for p in points}
        failed = sum(1 for r in records.values() if r.get("status") != "ok")
        for pid, record, exc in runner.results():
            if exc is not None:  # the worker itself died (killed, out of memory)
                record = {"id": pid, "status": "error", "summaries": [], "overrides": by_id[pid].overrides,
                          "error": f"worker failed: {one_line(exc)}; rerun the sweep to retry this point"}
                write_json_atomic(out / "points" / pid / "point.json", record)
            records[pid] = record
            failed += record.get("status") != "ok"
            write_sweep_table(sweep_table(points, records), out)
            if bar is not None:
                bar.set_postfix(failed=failed)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def run_sweep(scenario_path: str | Path, out_dir: str | Path, workers: int | None = None,
              executor: str = "process", address: str | None = None, progress: bool = True,
              log: Log | None = None) -> pd.DataFrame:
    """Run every point of the scenario's sweep; returns the combined table.

    Parameters
    ----------
    scenario_path:
        Scenario file with a ``sweep:`` block.
    out_dir:
        Sweep directory (created); points go to ``out_dir/points/<id>/``.
    workers:
        Parallel points (default: CPU count; Ray: the local instance's CPUs).
    executor:
        ``process`` (local process pool), ``ray`` (Ray tasks on ``address`` or a
        local instance) or ``serial`` (in this process, for debugging).
    address:
        Ray cluster address (``ray``); the sweep directory must then be on a file
        system shared with the cluster's nodes.
    progress:
        Show one progress bar over points.
    log:
        Receives one-line messages (default: stderr).

    Returns
    -------
    pandas.DataFrame
        One row per (point, strategy), as stored in ``sweep.parquet``/``sweep.csv``.

    Raises
    ------
    InputError
        Invalid base scenario, no sweep block, unknown executor, Ray not installed.
    """
    check_executor(executor)
    if workers is not None and workers < 1:
        raise InputError(f"must be at least 1 (got {workers}); leave it out to use every CPU", field="--workers")
    log = log or _to_stderr
    scenario_path, out = Path(scenario_path), Path(out_dir)
    points = expand_sweep(scenario_path)
    _write_definition(scenario_path, out, points, executor, workers)
    records, todo = _plan(points, out)
    invalid = sum(1 for p in points if p.error is not None)
    log(f"sweep {len(points)} points: {len(todo)} to run, {len(points) - invalid - len(todo)} finished earlier, "
        f"{invalid} invalid ({executor}{'' if executor == 'serial' else f', {workers or os.cpu_count()} workers'})")
    write_sweep_table(sweep_table(points, records), out)
    if todo:
        runner = make_executor(executor, workers, address)
        try:
            _build_schedules(runner, todo, scenario_path, out / "cache", log)
            _run_points(runner, points, todo, records, scenario_path, out, progress)
        finally:
            runner.close()
    return sweep_table(points, records)
