"""Parameter sweeps: expand a scenario's ``sweep:`` block and run every point.

A sweep directory is built from files only (see docs/ARCHITECTURE.md)::

    OUT/scenario.yaml           the base scenario (with its sweep block)
    OUT/sweep.json              the sweep definition, executor and point ids
    OUT/sweep.parquet|csv       one row per (point, strategy), rewritten as points finish
    OUT/cache/<key>.pkl         link schedules shared by points with equal schedule inputs
    OUT/points/<id>/            a normal run directory per point, plus
        point.json              written last: status ok|error, summaries, wall time
        error.txt               the traceback of a failed point

Points run with a local process pool (default), on Ray, or serially. A point
whose ``point.json`` says ``ok`` for the same resolved scenario is skipped on a
rerun (resume); a failing point records its one-line error and the sweep goes
on.

Modules: ``points`` (expansion), ``cache`` (schedule key and cache), ``point``
(running one point), ``executors`` (serial, process pool, Ray), ``table`` (the
combined table), ``resume`` (finished and stale points), ``runner`` (``run_sweep``).
"""

from emsfl_sim.sweep.cache import (
    SCHEDULE_SECTIONS,
    cached_schedule,
    schedule_inputs,
    schedule_key,
    schedule_uses_seed,
)
from emsfl_sim.sweep.executors import EXECUTORS, make_executor
from emsfl_sim.sweep.point import PointTask, run_point
from emsfl_sim.sweep.points import SweepPoint, expand_sweep, point_id, sweep_config
from emsfl_sim.sweep.runner import run_sweep
from emsfl_sim.sweep.table import METRIC_COLUMNS, load_sweep_table, sweep_table, write_sweep_table

__all__ = [
    "EXECUTORS",
    "METRIC_COLUMNS",
    "SCHEDULE_SECTIONS",
    "PointTask",
    "SweepPoint",
    "cached_schedule",
    "expand_sweep",
    "load_sweep_table",
    "make_executor",
    "point_id",
    "run_point",
    "run_sweep",
    "schedule_inputs",
    "schedule_key",
    "schedule_uses_seed",
    "sweep_config",
    "sweep_table",
    "write_sweep_table",
]
