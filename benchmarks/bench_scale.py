"""Event-loop throughput of timeline-only runs (``simulate: timeline``): simulated events per wall minute.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--clusters 100] [--days 7] [--devices 10]``.
Target (issue 16): the event loop sustains >= 1 million simulated events (link up/down,
upload start/complete/interrupted, aggregation, local rounds) per wall minute.

A Walker shell (12 planes x 12 satellites, 550 km, 53 deg) as the server constellation in
``server.mode: constellation``, ``--clusters`` clusters on a Fibonacci lattice between
+-60 deg latitude, every strategy. The contact plan is built first and timed apart
(``build_schedule``); the figure is the events of the three strategies' SimPy loops over
their wall time. Prints machine, cores and load.

``--tle PATH`` (or ``--starlink``: the full Starlink snapshot of July 2023, 4428 satellites,
``starlink-2023-07.tle`` from ``tle/`` or ``/work/shared/tle/``) serves from that file instead.
``--compare-with DIR`` runs the scenario end to end through the CLI twice, in subprocesses, with
this code and with the code in ``DIR`` (e.g. ``git worktree add /tmp/emsfl-old HEAD``), and prints
each one's wall and CPU time, peak RSS and event count and the ratios (the results
directories are compared with ``scripts/compare_runs.py``).

``--strategies emsfl`` runs one strategy; ``--end-to-end`` runs the scenario once through the
CLI in a subprocess and prints wall and CPU time, peak RSS and events (the issue-16 target:
<= 10 min and <= 8 GB for ``--starlink --clusters 1000 --days 7``).

Measured (x86_64, 2 cores):

- ``--starlink --clusters 1000 --days 7 --strategies emsfl --compare-with`` a worktree of commit
  859a870 (this commit: every window's fading through the ergodic table, the short handover
  windows' quadrature gone; load 0.76 -> 1.13): 729.6 s wall (1285.0 s CPU), peak RSS 6.55 GB
  (6.70 GB with the schedule process) vs 929.4 s (1530.6 s CPU), 6.55 GB; 1.27x wall, 1.19x
  CPU, 29 399 961 events each; compare_runs: only ``bytes_total`` of link-up rows differs (a few
  bytes in 128 MB). The same code with two schedule processes: 757.9 s (1323.9 s CPU), so two
  cores keep one. Time target not met: about 670 s of schedule and 600 s of loop CPU.
- ``--starlink --clusters 1000 --days 7 --strategies emsfl --compare-with`` a worktree of commit
  f01ec47 (commit f275683: events as Arrow tables without a pandas frame, idle clusters' resets
  counted, window totals by column; load 1.1 -> 1.0): 920.8 s wall (1510.9 s CPU), peak RSS
  6.57 GB (6.71 GB with the schedule process) vs 984.3 s (1774.0 s CPU), 6.47 GB; 1.07x wall,
  1.17x CPU, results SAME. This machine ran 1.47x slower than in the session of the 668.9 s
  below (f01ec47 took 984.3 s here). The event loop alone (1000 clusters x 6 h, 1 063 442
  events, schedule built first): 15.9 s vs 25.1 s (1.58x). The run is now bounded by the
  schedule process (about 32 s a 6-hour part here, 28 parts), not the loop; two schedule
  processes: 879.0 s (1553.5 s CPU) against one, 903.7 s, in two runs of the session, so it
  stays one on two cores. Time target not met.
- ``--starlink --clusters 1000 --days 7 --strategies emsfl --end-to-end`` (commit f8461b1: the
  pass table built on first use, the fading quadrature in cache-sized blocks, one schedule
  process on two cores; load 0.4-1.4): 668.9 s wall (1136 s CPU), peak RSS 6.54 GB (6.57 GB
  with the schedule process), 29 399 961 events. The code before (f51bbe8), in the same
  session through ``--compare-with``: 761.3 s (1295 s CPU), 6.55 GB, results SAME. Time
  target (<= 600 s) not met: about 1140 s of CPU on 2 cores.
- ``--starlink --clusters 1000 --days 1.5 --strategies emsfl --compare-with`` the same code with
  one schedule process instead of two: 164.9 s (two) vs 165.7 s (one), SAME; two only cost
  memory (3.3 vs 2.3 GB with the children), so two cores get one.
- ``--starlink --clusters 1000 --days 7 --strategies emsfl --compare-with`` a worktree of commit
  3a31460 (the schedule in 6-hour parts built in a second process while the loop runs, rows
  written once a second, fewer GC passes, capacities made on use): 754.6 s wall (1264 s CPU),
  peak RSS 6.44 GB (6.60 GB with the schedule process) vs 2000.9 s and 7.20 GB, 29 399 961
  events each, results SAME. The old code's time is inflated by work on the second core
  during half of it (alone: 1491 s, below). ``--end-to-end`` alone (load 0.9-1.4): 770 s,
  6.45 GB. Time target (<= 600 s) not met: both processes busy, about 1300 s of CPU in all.
- ``--starlink --clusters 100 --days 1`` (3 strategies): 1 484 779 events in 18.2 s of event
  loops, 4.89 M events per wall minute.
- Commit 3a31460 (the schedule built day by day, windows in columns, events written every
  100 000 rows), ``--starlink --clusters 1000 --days 7 --strategies emsfl --end-to-end``
  (load 0.9-1.1): 1491 s
  end to end (1484 s CPU), peak RSS 7.61 GB, 29 399 961 events; about 720 s of it the
  schedule (about 14.6 M windows), the rest the event loop (about 2.3 M events per wall minute).
  Memory target met, time target not (2.5x over). Rerun after the day parts were joined
  without a second copy, with the test suite on the other core (load 0.2 -> 1.0 at the ends,
  about 2 during): 1636 s, peak RSS 7.27 GB, the same 29 399 961 events.
- The code before (commit 3cea82b, with its per-cluster window scan made linear), 1000
  clusters x 1 day, EMS-FL: schedule 103 s (2 082 249 windows), run 158 s, peak RSS 6.57 GB.
- ``--starlink --clusters 100 --days 7`` (3 strategies, load 1.0, commit 337fc9d): schedule
  81.8 s (1 461 905 windows), 10 444 795 events in 149.9 s of event loops, 4.18 M events per
  wall minute; 254 s end to end, peak RSS 6.04 GB.
- ``--starlink --clusters 20 --days 1 --compare-with`` a worktree of commit fe1c3ef: 10.5 s
  vs 213.9 s end to end (20.4x), peak RSS 0.52 vs 5.95 GB.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
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


ROOT = Path(__file__).resolve().parents[1]
STARLINK_FILE = "starlink-2023-07.tle"


def starlink_path() -> Path:
    """The full Starlink snapshot (``tle/`` of the repository, else ``/work/shared/tle/``)."""
    for folder in (ROOT / "tle", Path("/work/shared/tle")):
        if (folder / STARLINK_FILE).is_file():
            return folder / STARLINK_FILE
    raise SystemExit(f"{STARLINK_FILE} not found in {ROOT / 'tle'} or /work/shared/tle; give --tle PATH")


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants now (``/proc``; 0 where unreadable)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for p in tree:
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_cli(code_root: Path, scenario_file: Path, out: Path) -> dict[str, float]:
    """One end-to-end ``emsfl-sim run`` with the code under ``code_root``: wall and CPU s, peak RSS (GB), events.

    ``rss_gb`` is the peak of the process; ``tree_rss_gb`` the peak of it and its children
    together (the background schedule process), sampled every 0.5 s.
    """
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    cmd = [sys.executable, "-m", "emsfl_sim.cli.main", "run", str(scenario_file), "--out", str(out), "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=code_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], tree_rss_bytes(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{code_root}: run failed: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    events = sum(pq.ParquetFile(p).metadata.num_rows for p in out.glob("*/events.parquet"))
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_gb": usage.ru_maxrss / 1e6,
            "tree_rss_gb": peak[0] / 1e9, "events": events}


def compare_codes(args: argparse.Namespace, data: dict, label: str) -> int:
    """This code and ``args.compare_with`` on the same scenario, end to end: the figure and the ratio."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(yaml.safe_dump(data))
        new = run_cli(ROOT, path, Path(tmp) / "new")
        old = run_cli(Path(args.compare_with).resolve(), path, Path(tmp) / "old")
        same = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_runs.py"), str(Path(tmp) / "old"),
                               str(Path(tmp) / "new")], capture_output=True, text=True).stdout.strip().splitlines()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load_before:.2f} -> "
          f"{os.getloadavg()[0]:.2f}; scenario: {label}, end to end (emsfl-sim run)")
    for name, r in (("this code", new), (str(args.compare_with), old)):
        print(f"{name:>20}: {r['wall_s']:8.1f} s wall ({r['cpu_s']:.1f} s CPU), peak RSS {r['rss_gb']:.2f} GB "
              f"(with its children {r['tree_rss_gb']:.2f} GB), {r['events']:,} events")
    print(f"ratio (old / new): {old['wall_s'] / new['wall_s']:.2f}x wall, {old['cpu_s'] / new['cpu_s']:.2f}x CPU")
    print("compare_runs (old vs new):\n  " + "\n  ".join(same or ["?"]))
    return 0


def end_to_end(data: dict, label: str) -> int:
    """One ``emsfl-sim run`` with this code: wall and CPU time, peak RSS, events (the 1000-cluster target)."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(yaml.safe_dump(data))
        r = run_cli(ROOT, path, Path(tmp) / "run")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load_before:.2f} -> "
          f"{os.getloadavg()[0]:.2f}; scenario: {label}, end to end (emsfl-sim run)")
    print(f"{r['wall_s']:.1f} s wall ({r['cpu_s']:.1f} s CPU, the process and its children), peak RSS "
          f"{r['rss_gb']:.2f} GB (with its children, sampled: {r['tree_rss_gb']:.2f} GB), {r['events']:,} events "
          f"(target: <= 600 s, <= 8 GB)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--strategies", default="baseline,emsfl,emsfl_enhanced",
                    help="comma-separated strategies to run (default: all three)")
    ap.add_argument("--end-to-end", action="store_true",
                    help="one `emsfl-sim run` of the scenario in a subprocess: wall, CPU, peak RSS, events")
    ap.add_argument("--tle", type=Path, default=None, help="serve from this TLE file instead of the Walker shell")
    ap.add_argument("--starlink", action="store_true", help=f"--tle {STARLINK_FILE} (4428 satellites)")
    ap.add_argument("--compare-with", type=Path, default=None, metavar="DIR",
                    help="also run the code in DIR (a git worktree) end to end; print both and the ratio")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    tle = starlink_path() if args.starlink else args.tle
    data = scenario(args.clusters, args.days, args.devices)
    data["strategy"]["names"] = args.strategies.split(",")
    constellation = "144 satellites"
    if tle is not None:
        data["constellation"] = {"tle_files": [str(Path(tle).resolve())]}
        constellation = f"{Path(tle).name} ({sum(1 for _ in open(tle)) // 3} satellites)"
    label = (f"{args.clusters} clusters x {args.devices} devices, {args.days:g} days, {constellation} "
             f"(constellation mode), strategies {args.strategies}, timeline")
    if args.compare_with is not None:
        return compare_codes(args, data, label)
    if args.end_to_end:
        return end_to_end(data, label)
    import resource

    from emsfl_sim.run.runner import run_scenario
    from emsfl_sim.scenario import load_scenario
    from emsfl_sim.sim.schedule import build_schedule

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(yaml.safe_dump(data))
        sc = load_scenario(path)
        t0 = time.perf_counter()
        schedule = build_schedule(sc)
        plan_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        table = run_scenario(sc, out=Path(tmp) / "run", progress=False, log=lambda _: None, schedule=schedule)
        loop_s = float(table["wall_s"].sum())
        total_s = time.perf_counter() - t1
        events = sum(pq.ParquetFile(Path(tmp) / "run" / s / "events.parquet").metadata.num_rows
                     for s in table["strategy"])
    rate = events / loop_s * 60.0
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, load {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"scenario: {label}")
    print(f"contact plan + schedule: {plan_s:.1f} s ({len(schedule.windows)} windows)")
    print(f"event loops: {events:,} events in {loop_s:.1f} s wall -> {rate / 1e6:.2f} M events per wall minute "
          f"(target >= 1); run_scenario total {total_s:.1f} s; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
