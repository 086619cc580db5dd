"""Benchmark: contact plan for a full Starlink snapshot x 100 clusters x 24 h.

Times :func:`emsfl_sim.orbits.compute_contact_plan` on every (satellite,
cluster) pair, then Skyfield's ``EarthSatellite.find_events`` on a random
sample of pairs, extrapolated to all pairs, and prints the ratio measured in
the same run, the agreement on the sampled pairs and the peak memory.

    python benchmarks/bench_contacts.py [--tle ../shared/tle/starlink-2023-07.tle]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from emsfl_sim.orbits import Site, compute_contact_plan, load_tle_file, to_earth_satellites

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TLE = REPO.parent / "shared" / "tle" / "starlink-2023-07.tle"


def grid_sites() -> list[Site]:
    """A fixed 10 x 10 grid of clusters: latitudes -58.5..58.5 deg, longitudes every 36 deg."""
    lats = np.linspace(-58.5, 58.5, 10)
    lons = np.arange(-162.0, 180.0, 36.0)
    return [
        Site(f"C{i}{j}", float(lat), float(lon)) for i, lat in enumerate(lats) for j, lon in enumerate(lons)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tle", type=Path, default=DEFAULT_TLE, help="TLE file (default: %(default)s)")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--mask-deg", type=float, default=25.0)
    ap.add_argument("--step-s", type=float, default=60.0)
    ap.add_argument("--start", default="2023-07-18T00:00:00Z")
    ap.add_argument("--sample-pairs", type=int, default=200, help="pairs timed with Skyfield find_events")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--workers", default="1,2", help="comma-separated worker counts to time (default: %(default)s)"
    )
    args = ap.parse_args()

    start = datetime.fromisoformat(args.start.replace("Z", "+00:00")).astimezone(timezone.utc)
    duration_s = args.hours * 3600.0
    t0 = time.perf_counter()
    records = load_tle_file(args.tle)
    t_load = time.perf_counter() - t0
    sites = grid_sites()
    load_before = os.getloadavg()[0]

    timings = []
    for workers in [int(w) for w in args.workers.split(",")]:
        w0, c0 = time.perf_counter(), time.process_time()
        plan = compute_contact_plan(
            records, sites, start, duration_s, args.mask_deg, step_s=args.step_s, workers=workers
        )
        # CPU time of this process only (worker processes are not included).
        timings.append((workers, time.perf_counter() - w0, time.process_time() - c0))
    wall = min(t[1] for t in timings)
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    rss_child_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # largest worker

    # Skyfield reference on a random sample of pairs.
    from skyfield.api import load, wgs84

    ts = load.timescale(builtin=True)
    t_start = ts.from_datetime(start)
    t_end = ts.tt_jd(t_start.tt + duration_s / 86400.0)
    gen = np.random.default_rng(args.seed)
    n_pairs = len(records) * len(sites)
    picks = gen.choice(n_pairs, size=min(args.sample_pairs, n_pairs), replace=False)
    passes = plan.passes
    by_pair = {k: g for k, g in passes.groupby(["norad_id", "cluster"])}
    n_ref = n_missing = 0
    max_err_s = 0.0
    ref_wall = 0.0
    for pick in picks:
        rec, site = records[pick // len(sites)], sites[pick % len(sites)]
        sat = to_earth_satellites([rec], ts)[0]
        topo = wgs84.latlon(site.lat_deg, site.lon_deg, elevation_m=site.alt_m)
        w = time.perf_counter()
        t, events = sat.find_events(topo, t_start, t_end, altitude_degrees=args.mask_deg)
        ref_wall += time.perf_counter() - w
        mine = by_pair.get((rec.norad_id, site.name))
        secs = (t.tt - t_start.tt) * 86400.0
        for sec, ev in zip(secs, events, strict=True):
            if ev == 1:
                continue
            n_ref += 1
            col = "rise_s" if ev == 0 else "set_s"
            err = np.min(np.abs(mine[col].to_numpy() - sec)) if mine is not None else np.inf
            if err > 1.0:
                n_missing += 1
            else:
                max_err_s = max(max_err_s, float(err))
    per_pair = ref_wall / len(picks)
    extrapolated = per_pair * n_pairs

    rows = [
        ("satellites", f"{len(records)}"),
        ("clusters", f"{len(sites)}"),
        ("span", f"{args.hours:g} h, mask {args.mask_deg:g} deg, step {args.step_s:g} s"),
        ("passes found", f"{len(passes)}"),
        ("TLE load", f"{t_load:.2f} s"),
        *[
            (
                f"compute_contact_plan, {w} worker(s)",
                f"wall {tw:.2f} s" + (f", CPU {tc:.2f} s" if w == 1 else ""),
            )
            for w, tw, tc in timings
        ],
        ("peak RSS", f"{rss_gb:.2f} GB (main process), {rss_child_gb:.2f} GB (largest worker)"),
        ("find_events per pair", f"{per_pair * 1e3:.1f} ms ({len(picks)} pairs)"),
        ("find_events, all pairs (extrapolated)", f"{extrapolated:.0f} s"),
        ("speed-up vs find_events (best wall)", f"{extrapolated / wall:.0f}x"),
        ("sampled rise/set events", f"{n_ref}, missing {n_missing}, max |dt| {max_err_s:.3f} s"),
        ("diagnostics", str(plan.diagnostics)),
        ("load average before run", f"{load_before:.2f} on {os.cpu_count()} CPUs"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
