"""Event-loop throughput of timeline-only runs (``simulate: timeline``): simulated events per wall minute.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--clusters 100] [--days 7] [--devices 10]``.
Target (issue 16): the event loop sustains >= 1 million simulated events (link up/down,
upload start/complete/interrupted, aggregation, local rounds) per wall minute.

A Walker shell (12 planes x 12 satellites, 550 km, 53 deg) as the server constellation in
``server.mode: constellation``, ``--clusters`` clusters on a Fibonacci lattice between
+-60 deg latitude, every strategy. The contact plan is built first and timed apart
(``build_schedule``); the figure is the events of the three strategies' SimPy loops over
their wall time. Prints machine, cores and load.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml


def scenario(clusters: int, days: float, devices: int) -> dict:
    """The benchmark scenario (timeline, constellation mode, fixed 10-minute rounds)."""
    golden = math.pi * (3.0 - math.sqrt(5.0))
    sites = []
    for i in range(clusters):
        z = 1.0 - 2.0 * (i + 0.5) / clusters
        lat = math.degrees(math.asin(z)) * 60.0 / 90.0
        lon = math.degrees((i * golden) % (2 * math.pi)) - 180.0
        sites.append({"name": f"c{i:04d}", "lat_deg": round(lat, 4), "lon_deg": round(lon, 4), "devices": devices})
    return {
        "name": "bench-scale", "seed": 0, "simulate": "timeline",
        "time": {"mode": "orbital", "duration_s": days * 86400.0},
        "constellation": {"walker": [{"altitude_km": 550, "inclination_deg": 53, "planes": 12,
                                      "sats_per_plane": 12, "phasing": 1}]},
        "server": {"mode": "constellation"},
        "clusters": sites,
        "training": {"round_interval_s": 600, "local_steps": 1},
        "strategy": {"names": ["baseline", "emsfl", "emsfl_enhanced"], "expert_groups": None},
        "evaluation": {"every_s": 86400},
        "output": {"formats": ["parquet"], "plots": False, "checkpoints": False},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--devices", type=int, default=10)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from emsfl_sim.run.runner import run_scenario
    from emsfl_sim.scenario import load_scenario
    from emsfl_sim.sim.schedule import build_schedule

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(yaml.safe_dump(scenario(args.clusters, args.days, args.devices)))
        sc = load_scenario(path)
        t0 = time.perf_counter()
        schedule = build_schedule(sc)
        plan_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        table = run_scenario(sc, out=Path(tmp) / "run", progress=False, log=lambda _: None, schedule=schedule)
        loop_s = float(table["wall_s"].sum())
        total_s = time.perf_counter() - t1
        events = sum(len(pd.read_parquet(Path(tmp) / "run" / s / "events.parquet")) for s in table["strategy"])
    rate = events / loop_s * 60.0
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, load {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"scenario: {args.clusters} clusters x {args.devices} devices, {args.days:g} days, 144 satellites "
          f"(constellation mode), 3 strategies, timeline")
    print(f"contact plan + schedule: {plan_s:.1f} s ({len(schedule.windows)} windows)")
    print(f"event loops: {events:,} events in {loop_s:.1f} s wall -> {rate / 1e6:.2f} M events per wall minute "
          f"(target >= 1); run_scenario total {total_s:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
