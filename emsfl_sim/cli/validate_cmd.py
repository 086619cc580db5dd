"""``emsfl-sim validate`` and ``emsfl-sim show``: check scenario files, print the resolved scenario."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from emsfl_sim.errors import InputError

if TYPE_CHECKING:
    from emsfl_sim.scenario import Scenario


def check_scenario(scenario: Scenario, file: str) -> None:
    """Everything ``validate`` checks beyond the schema that needs no model weights (one-line InputError).

    The run layer's :func:`~emsfl_sim.run.runner.check_scenario`, without the device check
    (a scenario for a GPU machine validates anywhere).
    """
    from emsfl_sim.run.runner import check_scenario as check_run

    check_run(scenario, device=False)


def check_sweep_points(file: str) -> None:
    """Validate every expanded point of the file's sweep; the first bad one is an InputError."""
    from emsfl_sim.sweep.points import expand_sweep

    for point in expand_sweep(file):
        where = f"sweep point {point.id}"
        if point.error is not None:
            raise InputError(point.error.removeprefix(f"{file}: "), file, where)
        if point.scenario is not None:
            try:
                check_scenario(point.scenario, file)
            except InputError as exc:
                raise InputError(": ".join(p for p in (exc.field, exc.message) if p), file, where) from None


def run_validate(args: argparse.Namespace) -> int:
    """Validate scenario files; print one line per file."""
    from emsfl_sim.scenario import load_scenario

    failed = 0
    for file in args.files:
        try:
            scenario = load_scenario(file)
            check_scenario(scenario, file)
            if scenario.sweep is not None:
                check_sweep_points(file)
            if scenario.time.mode == "orbital":
                # Parse the TLEs and find the server too: bad lines and unknown satellites show here.
                from emsfl_sim.sim.constellation import load_constellation
                from emsfl_sim.sim.schedule import server_record

                server_record(scenario, load_constellation(scenario))
        except InputError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        mode = scenario.time.mode
        print(
            f"ok: {file}: {scenario.name!r}, {len(scenario.clusters)} clusters, {mode} time, "
            f"strategies {', '.join(scenario.strategy.names)}"
        )
    return 1 if failed else 0


def run_show(args: argparse.Namespace) -> int:
    """Print the fully resolved scenario (``extends`` merged, defaults filled)."""
    import json

    from emsfl_sim.scenario import load_scenario, scenario_to_yaml

    scenario = load_scenario(args.file)
    if args.format == "json":
        print(json.dumps(scenario.model_dump(mode="json"), indent=2))
    else:
        print(scenario_to_yaml(scenario), end="")
    return 0
