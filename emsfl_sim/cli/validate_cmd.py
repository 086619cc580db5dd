"""``emsfl-sim validate`` and ``emsfl-sim show``: check scenario files, print the resolved scenario."""

from __future__ import annotations

import argparse
import sys

from emsfl_sim.errors import InputError


def run_validate(args: argparse.Namespace) -> int:
    """Validate scenario files; print one line per file."""
    from emsfl_sim.run.runner import check_strategy_names
    from emsfl_sim.run.world import check_model_architecture
    from emsfl_sim.scenario import load_scenario

    failed = 0
    for file in args.files:
        try:
            scenario = load_scenario(file)
            check_strategy_names(scenario.strategy.names, file)
            check_model_architecture(scenario)
            if scenario.time.mode == "orbital":
                # Parse the TLEs and find the server too: bad lines and unknown satellites show here.
                from emsfl_sim.sim.schedule import load_constellation, server_record

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
