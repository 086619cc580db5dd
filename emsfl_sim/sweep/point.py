"""Running one sweep point in its own run directory (what a worker process or Ray task executes).

Everything here takes and returns plain data, so it pickles for process pools and Ray.
"""

from __future__ import annotations

import json
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from emsfl_sim.errors import InputError
from emsfl_sim.results import atomic_write_json
from emsfl_sim.scenario import Scenario, validate_raw
from emsfl_sim.sweep.cache import cached_schedule, schedule_key


@dataclass
class PointTask:
    """What a worker needs to run one point (plain data: picklable for processes and Ray)."""

    id: str
    index: int
    raw: dict[str, Any]
    file: str | None
    directory: str
    cache_dir: str | None
    fresh: bool
    overrides: dict[str, Any] = field(default_factory=dict)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON atomically (results.atomic_write_json)."""
    atomic_write_json(path, data)


def one_line(exc: BaseException | None) -> str:
    """The first line of an error (an InputError as it is, others with their type)."""
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(exc, InputError) else f"{type(exc).__name__}: {first}".rstrip(": ")


def _scenario_of(raw: dict[str, Any], file: str | None) -> Scenario:
    scenario = validate_raw(raw, file=file)
    if file:
        scenario._source_file = file
    return scenario


def run_point_scenario(scenario: Scenario, directory: Path, schedule: Any, fresh: bool,
                       log: Callable[[str], None]) -> pd.DataFrame:
    """Run one point with a pre-built schedule (the sweep's single entry into the runner)."""
    from emsfl_sim.run.runner import run_scenario

    table = run_scenario(scenario, out=directory, fresh=fresh, progress=False, log=log, schedule=schedule)
    if scenario.output.plots:
        from emsfl_sim.report.run_plots import plot_run_directory

        plot_run_directory(directory, scenario.evaluation.target_accuracy)
    return table


def _simulate(task: PointTask, directory: Path, record: dict[str, Any], log: Callable[[str], None]) -> None:
    """Validate, fetch the schedule and run the point, filling ``record`` (raises on failure)."""
    with warnings.catch_warnings():
        # Library deprecation chatter would interleave across workers on the console.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        scenario = _scenario_of(task.raw, task.file)
        record["schedule_key"] = schedule_key(scenario)
        schedule, source = cached_schedule(scenario, task.cache_dir)
        record["schedule_source"] = source
        table = run_point_scenario(scenario, directory, schedule, task.fresh, log)
    names = [str(s) for s in table["strategy"]]
    record["summaries"] = [json.loads((directory / n / "summary.json").read_text()) for n in names]
    record["status"] = "ok"


def run_point(task: PointTask) -> dict[str, Any]:
    """Run one sweep point in ``task.directory``; never raises (except KeyboardInterrupt).

    Writes ``point.json`` last (status ok or error); a failure also writes
    ``error.txt`` with the traceback. Returns the point.json content.
    """
    directory = Path(task.directory)
    directory.mkdir(parents=True, exist_ok=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    record: dict[str, Any] = {"id": task.id, "index": task.index, "overrides": task.overrides,
                              "status": "error", "error": None, "summaries": [], "schedule_key": None,
                              "schedule_source": None}
    with (directory / "log.txt").open("a", encoding="utf-8") as log_file:

        def log(message: str) -> None:
            log_file.write(f"{message}\n")
            log_file.flush()

        try:
            _simulate(task, directory, record, log)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - one failing point (even SystemExit) must not stop the sweep
            record["error"] = one_line(exc)
            (directory / "error.txt").write_text(traceback.format_exc())
            log(f"error: {record['error']}")
            record["summaries"] = [json.loads(p.read_text()) for p in sorted(directory.glob("*/summary.json"))]
    record["wall_s"] = time.perf_counter() - t0
    record["cpu_s"] = time.process_time() - cpu0  # with wall_s: how much CPU the point got when shared
    record["finished_unix"] = time.time()
    write_json_atomic(directory / "point.json", record)
    return record


def build_schedule_task(raw: dict[str, Any], file: str | None, cache_dir: str) -> str | None:
    """Fill the cache entry of one schedule key; returns the one-line error or None.

    Errors surface again in the points that need the schedule.
    """
    try:
        cached_schedule(_scenario_of(raw, file), cache_dir)
        return None
    except Exception as exc:  # noqa: BLE001
        return one_line(exc)
