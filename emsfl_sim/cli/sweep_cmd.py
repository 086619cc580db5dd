"""``emsfl-sim sweep``: run a scenario's sweep block and print the combined table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

SUMMARY_METRICS = ["time_to_target_h", "cycles_to_target", "final_accuracy", "best_accuracy", "uplink_mb",
                   "idle_fraction", "interrupted_uploads", "wall_s"]


def format_sweep(table: pd.DataFrame) -> str:
    """Key metrics per point and strategy as aligned text (hours for times)."""
    if table.empty:
        return "(no points)"
    out = table.copy()
    out["time_to_target_h"] = pd.to_numeric(out["time_to_target_s"], errors="coerce") / 3600.0
    fixed = {"point", "index", "seed", "strategy", "status", "error"}
    first_metric = list(out.columns).index("time_to_target_s") if "time_to_target_s" in out.columns else len(out.columns)
    swept = [c for c in list(out.columns)[:first_metric] if c not in fixed]
    cols = ["index", *swept, "seed", "strategy", "status", *SUMMARY_METRICS]
    shown = out.reindex(columns=cols)
    # Short dotted names keep the table narrow: link.elevation_mask_deg -> elevation_mask_deg.
    shown.columns = [c.rsplit(".", 1)[-1] if c in swept else c for c in cols]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep="-")


def run_sweep(args: argparse.Namespace) -> int:
    """Run the sweep, print the summary table and the errors of failed points."""
    from emsfl_sim.cli.common import check_writable_directory
    from emsfl_sim.errors import InputError
    from emsfl_sim.run.runner import output_directory
    from emsfl_sim.scenario import load_scenario
    from emsfl_sim.sweep import run_sweep as sweep
    from emsfl_sim.sweep import sweep_config

    if args.workers is not None and args.workers < 1:
        raise InputError(f"must be at least 1 (got {args.workers}); leave it out to use every CPU", field="--workers")
    sweep_config(args.scenario)  # no sweep block, or an invalid base: one line before any work
    base = load_scenario(args.scenario)
    out = Path(args.out) if args.out else output_directory(base, None)
    check_writable_directory(out, "--out" if args.out else "output.directory")
    print(f"sweep {base.name!r} -> {out}", file=sys.stderr)
    table = sweep(args.scenario, out, workers=args.workers, executor=args.executor, address=args.address,
                  progress=not args.no_progress)
    print(format_sweep(table))
    failed = table[table["status"] != "ok"].drop_duplicates("point") if len(table) else table
    for row in failed.itertuples(index=False):
        print(f"failed: {row.point}: {row.error}", file=sys.stderr)
    points = table["point"].nunique() if len(table) else 0
    print(f"\n{points - len(failed)}/{points} points ok; results: {out} (sweep.csv, sweep.parquet, points/*/); "
          f"report: emsfl-sim report {out}")
    if len(failed):  # a sweep with failed points is not a complete result: scripts must see it
        print(f"{out}: {len(failed)} of {points} points failed (see the lines above)", file=sys.stderr)
        return 1
    return 0
