"""``emsfl-sim run``: simulate a scenario's strategies and print the comparison table.

With ``--seeds`` (or a scenario ``seeds:`` list) every seed is run and the
strategies are summarised across seeds (emsfl_sim.run.seeds).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd


def format_comparison(table: pd.DataFrame, leading: Sequence[str] = ()) -> str:
    """The comparison table as aligned text (hours for times, MB for bytes).

    ``leading`` columns (e.g. ``seed``) are shown first, as they are.
    """
    out = table.copy()
    numeric = [c for c in out.columns if c != "strategy" and c not in leading]
    out[numeric] = out[numeric].apply(pd.to_numeric, errors="coerce")
    out["time_to_target_h"] = out["time_to_target_s"] / 3600.0
    outcome = [*leading, "strategy", "time_to_target_h", "cycles_to_target", "final_accuracy", "best_accuracy",
               "uplink_mb", "uplink_mb_per_pass", "idle_fraction", "interrupted_uploads", "peak_device_memory_mb",
               "wall_s"]
    # the compute and data each strategy got, so a reader can judge the comparison
    effort = [*leading, "strategy", "local_rounds", "optimizer_steps", "tokens_processed", "samples_seen",
              "unique_samples_fraction", "wasted_uplink_mb"]

    def text(cols: list[str]) -> str:
        return out.reindex(columns=cols).to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")

    return f"{text(outcome)}\n\ncompute and data per strategy:\n{text(effort)}"


def format_seeds_summary(summary: pd.DataFrame) -> str:
    """The across-seeds summary (strategy, metric, mean, 95 % interval, seeds) as aligned text."""
    return summary.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")


def describe_seeds(seeds: Sequence[int]) -> str:
    """``0, 1, 2`` or, for many seeds, ``0 ... 99 (100 seeds)``."""
    if len(seeds) <= 10:
        return ", ".join(str(s) for s in seeds)
    return f"{seeds[0]} ... {seeds[-1]} ({len(seeds)} seeds)"


def run_scenario(args: argparse.Namespace) -> int:
    """Run the scenario (or the strategies named with --strategy) and save the comparison.

    ``--seed N`` runs just seed N (also when the scenario lists ``seeds``);
    ``--seeds SPEC`` or the scenario's ``seeds`` run every seed and summarise.
    """
    from emsfl_sim.cli.common import check_writable_directory, load_with_overrides
    from emsfl_sim.errors import InputError
    from emsfl_sim.report.run_plots import plot_run_directory, plot_seeds_directory
    from emsfl_sim.results import read_table
    from emsfl_sim.run.runner import check_scenario, check_strategy_names, output_directory
    from emsfl_sim.run.runner import run_scenario as run
    from emsfl_sim.run.seeds import parse_seeds, run_seeds

    spec = getattr(args, "seeds", None)
    if args.seed is not None and spec is not None:
        raise InputError("--seed and --seeds cannot be combined; use --seed N for one seed or --seeds SPEC "
                         "(e.g. 0-4) for several", field="--seeds")
    seeds = parse_seeds(spec) if spec is not None else None
    sets = list(args.set)
    if args.seed is not None:
        sets += [f"seed={args.seed}", "seeds=null"]  # one explicit seed wins over a scenario's seeds list
    scenario = load_with_overrides(args.scenario, sets)
    if seeds is None and scenario.seeds is not None:
        seeds = list(scenario.seeds)
    if args.strategies:  # unknown names fail before any work
        check_strategy_names(args.strategies, field="--strategy")
    check_scenario(scenario, args.strategies)  # everything that needs no weights: one line before any work
    directory = output_directory(scenario, args.out)
    check_writable_directory(directory, "--out" if args.out else "output.directory")  # before the model is built

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    if seeds is None:
        print(f"scenario {scenario.name!r} (seed {scenario.seed}) -> {directory}", file=sys.stderr)
        table = run(scenario, args.strategies, directory, fresh=args.fresh, progress=not args.no_progress, log=log)
        if scenario.output.plots:
            plot_run_directory(directory, scenario.evaluation.target_accuracy)
        print(format_comparison(table))
        ext = "parquet" if scenario.output.formats == ["parquet"] else "csv"
        plots = ", accuracy.png, links.png" if scenario.output.plots else ""
        print(f"\nresults: {directory} (comparison.{ext}, */metrics.{ext}, */events.{ext}{plots})")
        return 0

    print(f"scenario {scenario.name!r} (seeds {describe_seeds(seeds)}) -> {directory}", file=sys.stderr)
    summary = run_seeds(scenario, seeds, args.strategies, directory, fresh=args.fresh,
                        progress=not args.no_progress, log=log)
    if scenario.output.plots:
        plot_seeds_directory(directory, scenario.evaluation.target_accuracy)
    per_seed = read_table(directory / "seeds_comparison")
    print(format_comparison(per_seed, leading=["seed"]))
    print(f"\nacross {len(seeds)} seeds (mean, Student-t 95 % interval; reached_target: Wilson interval):")
    print(format_seeds_summary(summary))
    plot = ", accuracy_seeds.png" if scenario.output.plots else ""
    print(f"\nresults: {directory} (seeds_summary, seeds_comparison{plot}; seed-N/: one run per seed)")
    return 0
