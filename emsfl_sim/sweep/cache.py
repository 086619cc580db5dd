"""The link-schedule cache of a sweep: one pickled LinkSchedule per distinct schedule key.

The key is the schedule format of ``sim/schedule.py`` (``SCHEDULE_FORMAT``, bumped
whenever orbit, link or schedule code changes what a schedule holds) plus a hash of
every input the schedule is built from: the resolved scenario sections it reads, the
contents of the TLE files and the seed when the schedule draws from it. A resumed
sweep therefore reuses a cached schedule only if the same code would build the same
one; points that differ only in learning parameters share one.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import emsfl_sim.sim.schedule as schedule_module
from emsfl_sim.results import atomic_write
from emsfl_sim.scenario import Scenario

#: Scenario sections that determine the link schedule (everything else is learning).
SCHEDULE_SECTIONS: tuple[str, ...] = ("time", "constellation", "server", "clusters", "link")


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "missing"


def schedule_uses_seed(scenario: Scenario) -> bool:
    """Whether the link schedule draws random numbers from the scenario seed.

    Idle slots (idealised mode) and shadowing (orbital mode) are the only random
    draws of sim/schedule.py; without them points of different seeds can share
    one schedule.
    """
    if scenario.time.mode == "idealised":
        return scenario.time.idle_slot_rate > 0
    return scenario.link.shadowing_sigma_db > 0


def schedule_inputs(scenario: Scenario) -> dict[str, Any]:
    """Everything the link schedule of ``scenario`` is built from (the hashed part of the key)."""
    return {
        "scenario": scenario.model_dump(mode="json", include=set(SCHEDULE_SECTIONS)),
        "seed": scenario.seed if schedule_uses_seed(scenario) else None,
        "tle": [_file_digest(p) for p in scenario.constellation.tle_files],
    }


def schedule_key(scenario: Scenario) -> str:
    """``f<SCHEDULE_FORMAT>-<hash of the schedule inputs>``: equal keys mean equal schedules."""
    text = json.dumps(schedule_inputs(scenario), sort_keys=True, default=str)
    return f"f{schedule_module.SCHEDULE_FORMAT}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cache_path(cache_dir: str | Path, key: str) -> Path:
    """Where the schedule of ``key`` is stored."""
    return Path(cache_dir) / f"{key}.pkl"


def build_schedule(scenario: Scenario) -> Any:
    """Build the link schedule (a module-level name so tests can count calls)."""
    return schedule_module.build_schedule(scenario)


def cached_schedule(scenario: Scenario, cache_dir: str | Path | None) -> tuple[Any, str]:
    """The scenario's LinkSchedule from ``cache_dir`` (or built and stored there).

    Returns the schedule and where it came from: ``"cache"`` or ``"built"``.
    The pickle is written to a temporary name and renamed, so a concurrent
    reader never sees half a file.
    """
    if cache_dir is None:
        return build_schedule(scenario), "built"
    key = schedule_key(scenario)
    path = cache_path(cache_dir, key)
    if path.exists():
        try:
            with path.open("rb") as fh:
                stored = pickle.load(fh)
            if stored.get("key") == key:
                return stored["schedule"], "cache"
        except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
            pass
    schedule = build_schedule(scenario)
    atomic_write(path, lambda fh: pickle.dump({"key": key, "schedule": schedule}, fh,
                                              protocol=pickle.HIGHEST_PROTOCOL))
    return schedule, "built"
