"""``emsfl-sim run``: simulate a scenario's strategies and print the comparison table."""

from __future__ import annotations

import argparse
import sys

import pandas as pd


def format_comparison(table: pd.DataFrame) -> str:
    """The comparison table as aligned text (hours for times, MB for bytes)."""
    out = table.copy()
    numeric = [c for c in out.columns if c != "strategy"]
    out[numeric] = out[numeric].apply(pd.to_numeric, errors="coerce")
    out["time_to_target_h"] = out["time_to_target_s"] / 3600.0
    cols = ["strategy", "time_to_target_h", "cycles_to_target", "final_accuracy", "best_accuracy", "uplink_mb",
            "uplink_mb_per_pass", "idle_fraction", "interrupted_uploads", "peak_device_memory_mb", "wall_s"]
    return out.reindex(columns=cols).to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")


def run_scenario(args: argparse.Namespace) -> int:
    """Run the scenario (or the strategies named with --strategy) and save the comparison."""
    from emsfl_sim.cli.main import load_with_overrides
    from emsfl_sim.sim.runner import output_directory
    from emsfl_sim.sim.runner import run_scenario as run
    from emsfl_sim.strategies import get_strategy

    sets = list(args.set)
    if args.seed is not None:
        sets.append(f"seed={args.seed}")
    scenario = load_with_overrides(args.scenario, sets)
    for name in args.strategies or []:
        get_strategy(name)  # unknown names fail before any work
    directory = output_directory(scenario, args.out)
    print(f"scenario {scenario.name!r} (seed {scenario.seed}) -> {directory}", file=sys.stderr)
    table = run(scenario, args.strategies, directory, fresh=args.fresh, progress=not args.no_progress,
                log=lambda msg: print(msg, file=sys.stderr))
    print(format_comparison(table))
    print(f"\nresults: {directory} (comparison.csv, */metrics.csv, */events.csv, accuracy.png, links.png)")
    return 0
