"""``emsfl-sim payloads``: the bytes of each strategy's uploads and how many passes of the link each needs.

Per strategy and upload kind (experts, shared part, or both), for the scenario's model and
its ``model.systems_model``: bytes of the experts' trained tensors (LoRA factors, or their
weights with ``training.mode: full``), of the shared part (``training.shared``) and in all,
and ``passes_needed``: the upload over the median volume one device moves in a pass of the
scenario's link. Above 1 an upload is interrupted at loss of signal and resumed over
several passes (``training`` in full mode with a Mixtral-8x7B systems model, for example).
Counted from configs without torch (``emsfl_sim.run.payload_table``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emsfl_sim.cli.common import check_writable_file, load_with_overrides


def run_payloads(args: argparse.Namespace) -> int:
    """Print the payload table of ``args.scenario`` (and write it with ``--output``)."""
    from emsfl_sim.link import pass_volume_stats
    from emsfl_sim.run.payload_table import payload_table
    from emsfl_sim.sim.schedule import build_schedule

    scenario = load_with_overrides(args.scenario, args.set)
    out = check_writable_file(args.output, "--output") if args.output else None
    schedule = build_schedule(scenario)
    stats = pass_volume_stats([w.capacity for w in schedule.windows])
    median_bytes = stats["mb_median"] * 1e6
    t = scenario.training
    print(f"Payloads of {scenario.name}: training.mode {t.mode}, training.shared {t.shared}, "
          f"model.head {scenario.model.head}")
    if stats["n_passes"]:
        print(f"median pass volume per device: {stats['mb_median']:.1f} MB over {stats['n_passes']} "
              f"{schedule.mode} windows ({schedule.duration_s / 3600:.1f} h)")
    else:
        print("the scenario's link has no windows: passes_needed is undefined (NaN)")
    table = payload_table(scenario, median_bytes if stats["n_passes"] else 0.0)
    shown = table.drop(columns=["expert_bytes", "shared_bytes"]).copy()
    shown["expert_mb"] = table["expert_bytes"] / 1e6
    shown["shared_mb"] = table["shared_bytes"] / 1e6
    shown = shown[["model", "strategy", "upload", "experts", "expert_mb", "shared_mb", "mb", "bytes",
                   "passes_needed"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}" if abs(v) < 1e5 else f"{v:.4g}"))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        print(f"written: {out}")
    return 0
