"""Resume: which points of a sweep directory are finished, and which must rerun from scratch.

A point is finished when its ``point.json`` says ``ok`` and its folder holds the same
resolved scenario; a folder left by another scenario or other code reruns with
``fresh`` so that the runner does not lend it finished strategy results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emsfl_sim.errors import InputError
from emsfl_sim.scenario import scenario_to_yaml
from emsfl_sim.sweep.points import SweepPoint


def finished_record(point: SweepPoint, directory: Path) -> dict[str, Any] | None:
    """point.json of a completed point whose folder holds this exact scenario, else None."""
    marker = directory / "point.json"
    stored_yaml = directory / "scenario.yaml"
    if not marker.exists() or not stored_yaml.exists() or point.scenario is None:
        return None
    try:
        record = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("status") != "ok" or stored_yaml.read_text() != scenario_to_yaml(point.scenario):
        return None
    return record


def needs_fresh(point: SweepPoint, directory: Path) -> bool:
    """A folder left by a different scenario or other code must not lend its strategy results (runner resume)."""
    from emsfl_sim.run.rundir import check_resume

    if point.scenario is None or not (directory / "scenario.yaml").exists():
        return False
    try:
        check_resume(point.scenario, directory, point.scenario.strategy.names, fresh=False)
    except InputError:
        return True  # the point reruns from scratch instead of failing
    return False


def invalid_record(point: SweepPoint) -> dict[str, Any]:
    """The point.json of a point whose scenario is invalid (it never runs)."""
    return {"id": point.id, "status": "error", "error": point.error, "summaries": [], "overrides": point.overrides}
