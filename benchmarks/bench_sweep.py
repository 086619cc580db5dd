"""Sweep runner: an 8-point sweep (4 learning rates x 2 seeds) with the process pool vs serially.

Run: ``.venv/bin/python benchmarks/bench_sweep.py [--workers 2] [--cycles 4]``.
Target (issue 7): the pool takes at most 0.6x the serial time on 2 cores.

The pool runs first, then the serial sweep, each from a state where this process
has not imported torch, so both pay the torch/transformers import once (the pool
in its forkserver, the serial sweep in this process).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

WALL_COLUMNS = ["wall_s", "point_wall_s", "point_cpu_s", "learning_wall_s", "overhead_wall_s", "overhead_fraction"]


def scenario(cycles: int) -> dict:
    """A small idealised scenario: 3 clusters of 1 device, tiny MoE, about 8 s per point at 4 cycles."""
    return {
        "name": "bench-sweep",
        "seed": 0,
        "time": {"mode": "idealised", "orbital_cycles": cycles, "slot_duration_s": 600},
        "clusters": [
            {"name": "a", "lat_deg": 48.1, "lon_deg": 11.6, "devices": 1, "domain": "astronomy"},
            {"name": "b", "lat_deg": 39.7, "lon_deg": -105.0, "devices": 1, "domain": "medicine"},
            {"name": "c", "lat_deg": 35.7, "lon_deg": 139.7, "devices": 1, "domain": "law"},
        ],
        "model": {"preset": "tiny", "gate_pretrain_steps": 0},
        "data": {"samples_per_device": 16, "test_samples_per_domain": 8, "trial_samples_per_cluster": 8,
                 "gate_samples": 16},
        "training": {"local_steps": 2, "batch_size": 4, "round_interval_s": 300},
        "strategy": {"names": ["baseline", "emsfl"]},
        "output": {"plots": False},
        "sweep": {"mode": "product", "parameters": {"training.learning_rate": [1e-3, 3e-3, 1e-2, 3e-2]},
                  "seeds": [0, 1]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=4, help="orbital cycles per point (larger: longer points)")
    args = parser.parse_args()
    from emsfl_sim.sweep import run_sweep

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        path = Path(folder) / "sweep.yaml"
        path.write_text(yaml.safe_dump(scenario(args.cycles)))
        quiet = lambda message: None  # noqa: E731
        assert "torch" not in sys.modules
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        pooled = run_sweep(path, Path(folder) / "pool", workers=args.workers, executor="process", progress=False,
                           log=quiet)
        pool_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        serial = run_sweep(path, Path(folder) / "serial", executor="serial", progress=False, log=quiet)
        serial_s = time.perf_counter() - t0
    assert (pooled["status"] == "ok").all() and (serial["status"] == "ok").all()
    same = pooled.drop(columns=WALL_COLUMNS, errors="ignore").equals(serial.drop(columns=WALL_COLUMNS, errors="ignore"))
    per_point = pd.to_numeric(serial.drop_duplicates("point")["point_wall_s"]).median()
    busy = pd.to_numeric(pooled.drop_duplicates("point")["point_wall_s"]).sum()
    print(f"8 points ({args.cycles} cycles each, median {per_point:.1f} s per point serially); "
          f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs")
    print(f"process pool, {args.workers} workers: {pool_s:.1f} s (points busy {busy:.1f} s: "
          f"{busy / pool_s:.2f} points at a time)")
    print(f"serial:                       {serial_s:.1f} s")
    cpu = {name: pd.to_numeric(t.drop_duplicates("point")["point_cpu_s"]).sum()
           for name, t in (("pool", pooled), ("serial", serial))}
    print(f"CPU seconds in points: pool {cpu['pool']:.1f} s, serial {cpu['serial']:.1f} s "
          f"(equal CPU with longer point wall times means the cores were shared with other work)")
    print(f"ratio pool/serial: {pool_s / serial_s:.2f} (target <= 0.6); tables equal: {same}")


if __name__ == "__main__":
    main()
