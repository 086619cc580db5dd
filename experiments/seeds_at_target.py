"""Time to another accuracy target across the seeds of a finished ``emsfl-sim run --seeds`` run.

Usage: ``.venv/bin/python experiments/seeds_at_target.py RUN_DIR --target 0.4 [--consecutive 2]``.
Prints the time-to-target rows of ``seeds_summary`` (mean, Student-t 95 % interval,
seeds) recomputed from the per-seed metrics, without running anything again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emsfl_sim.run.seeds import per_seed_at_target, summarise_seeds

TIME_METRICS = ("time_to_target_s", "cycles_to_target", "reached_target", "time_to_target_ratio",
                "time_to_target_ratio_bound")


def main() -> None:
    """Parse the arguments and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--target", type=float, required=True)
    parser.add_argument("--consecutive", type=int, default=1)
    args = parser.parse_args()
    per_seed = per_seed_at_target(args.run_dir, args.target, args.consecutive)
    runs = sorted(args.run_dir.glob("seed-*/run.json"))
    duration = json.loads(runs[0].read_text())["duration_s"] if runs else None
    table = summarise_seeds(per_seed, duration_s=duration)
    table = table[table["metric"].isin(TIME_METRICS)]
    print(f"target {args.target} ({args.consecutive} evaluation(s) in a row), {args.run_dir}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))


if __name__ == "__main__":
    main()
