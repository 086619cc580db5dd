"""Benchmark: contact plan for a full Starlink snapshot x 100 clusters x 24 h, before and after.

Times :func:`emsfl_sim.orbits.compute_contact_plan` in the same run with

- the method before the sparse screen (``screen="dense", sgp4_every=1``: all
  satellite-cluster pairs tested at every sample, SGP4 on every sample), and
- the current default (``screen="sparse", sgp4_every=4``: only pairs near each
  other tested, SGP4 on every 4th sample with a degree-7 fill),

and prints the ratio, how far the two plans differ, Skyfield's
``EarthSatellite.find_events`` on a random sample of pairs (extrapolated to all
pairs; agreement of both plans with it), the peak memory, the machine, its cores
and the load average before and after (the timings are only comparable within one
run: other work on the machine slows both).

    python benchmarks/bench_contacts.py [--tle ../shared/tle/starlink-2023-07.tle] [--repeat 2]

Measured on the shared 2-core development machine (Intel Xeon, 2 usable CPUs) with other
jobs running (load average 5.5), ``--repeat 3``: now 6.63 s wall best of 3 (4.38 s CPU),
the dense method 10.30 s (1.55x); the same 1 079 147 passes, both within 0.351 s of
Skyfield on 963 sampled rise/set events. The previous version of the sparse method
(before the candidate-only elevation samples, the per-block search, the BLAS fill and the
leaner screen), timed interleaved with this one in separate processes in three sets of 3 at
load 4.8-5.7: best 9.30-9.77 s wall (6.00-6.33 s CPU) vs 6.67-7.48 s (4.55-5.04 s CPU),
1.3-1.4x in wall time; it took 6.15 s on the idle machine at the start of that session, so
about 4.5-4.7 s is to be expected there now (not measured: the machine was not idle again).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emsfl_sim.orbits import ContactPlan, Site, compute_contact_plan, load_tle_file, to_earth_satellites

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TLE = REPO.parent / "shared" / "tle" / "starlink-2023-07.tle"
METHODS = {
    "before (dense screen, SGP4 every sample)": dict(screen="dense", sgp4_every=1),
    "now (sparse screen, SGP4 every 4th sample)": dict(screen="sparse", sgp4_every=4),
}


def grid_sites() -> list[Site]:
    """A fixed 10 x 10 grid of clusters: latitudes -58.5..58.5 deg, longitudes every 36 deg."""
    lats = np.linspace(-58.5, 58.5, 10)
    lons = np.arange(-162.0, 180.0, 36.0)
    return [
        Site(f"C{i}{j}", float(lat), float(lon)) for i, lat in enumerate(lats) for j, lon in enumerate(lons)
    ]


def machine() -> str:
    """CPU model, cores usable by this process / online, Python and numpy versions."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}; {usable} usable of {os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}"


def time_methods(records: list[Any], sites: list[Site], start: datetime, args: argparse.Namespace) -> dict:
    """Best wall / CPU time of each method (interleaved ``--repeat`` times) and its plan."""
    out: dict[str, dict[str, Any]] = {name: {"wall": [], "cpu": []} for name in METHODS}
    for _ in range(args.repeat):
        for name, kwargs in METHODS.items():
            w0, c0 = time.perf_counter(), time.process_time()
            plan = compute_contact_plan(
                records, sites, start, args.hours * 3600.0, args.mask_deg, step_s=args.step_s,
                workers=args.workers, **kwargs,
            )
            out[name]["wall"].append(time.perf_counter() - w0)
            out[name]["cpu"].append(time.process_time() - c0)  # this process only (not workers)
            out[name]["plan"] = plan
    return out


def plan_difference(a: ContactPlan, b: ContactPlan) -> str:
    """Pass counts and the largest rise/set/culmination differences of two plans."""
    key = ["cluster", "norad_id", "rise_s"]
    pa, pb = (p.passes.sort_values(key).reset_index(drop=True) for p in (a, b))
    if len(pa) != len(pb) or not (pa.cluster.to_numpy() == pb.cluster.to_numpy()).all():
        return f"pass counts {len(pa)} vs {len(pb)}"
    d = {c: float(np.abs(pa[c] - pb[c]).max()) for c in ("rise_s", "set_s", "max_elevation_deg")}
    return (f"same {len(pa)} passes; max |d rise| {d['rise_s']:.4f} s, |d set| {d['set_s']:.4f} s, "
            f"|d max elevation| {d['max_elevation_deg']:.4f} deg")


def skyfield_reference(records: list[Any], sites: list[Site], start: datetime, args: argparse.Namespace,
                       plans: dict[str, ContactPlan]) -> tuple[float, dict[str, str]]:
    """Seconds per pair of ``find_events`` and, per plan, the agreement on the sampled pairs."""
    from skyfield.api import load, wgs84

    ts = load.timescale(builtin=True)
    t_start = ts.from_datetime(start)
    t_end = ts.tt_jd(t_start.tt + args.hours * 3600.0 / 86400.0)
    n_pairs = len(records) * len(sites)
    picks = np.random.default_rng(args.seed).choice(n_pairs, size=min(args.sample_pairs, n_pairs), replace=False)
    wanted = {(records[i // len(sites)].norad_id, sites[i % len(sites)].name) for i in picks}
    by_pair = {}
    for name, plan in plans.items():
        keys = pd.Series(list(zip(plan.passes.norad_id, plan.passes.cluster, strict=True)))
        sampled = plan.passes[keys.isin(wanted).to_numpy()]
        by_pair[name] = dict(tuple(sampled.groupby(["norad_id", "cluster"])))
    stats = {name: [0, 0, 0.0] for name in plans}  # events, missing, max |dt|
    ref_wall = 0.0
    for pick in picks:
        rec, site = records[pick // len(sites)], sites[pick % len(sites)]
        sat = to_earth_satellites([rec], ts)[0]
        topo = wgs84.latlon(site.lat_deg, site.lon_deg, elevation_m=site.alt_m)
        w = time.perf_counter()
        t, events = sat.find_events(topo, t_start, t_end, altitude_degrees=args.mask_deg)
        ref_wall += time.perf_counter() - w
        secs = (t.tt - t_start.tt) * 86400.0
        for name in plans:
            mine = by_pair[name].get((rec.norad_id, site.name))
            for sec, ev in zip(secs, events, strict=True):
                if ev == 1:
                    continue
                col = "rise_s" if ev == 0 else "set_s"
                err = float(np.min(np.abs(mine[col].to_numpy() - sec))) if mine is not None else np.inf
                stats[name][0] += 1
                if err > 1.0:
                    stats[name][1] += 1
                else:
                    stats[name][2] = max(stats[name][2], err)
    agreement = {name: f"{n}, missing {miss}, max |dt| {dt:.3f} s" for name, (n, miss, dt) in stats.items()}
    return ref_wall / len(picks), agreement


def main() -> None:
    """Parse the options, time both methods and Skyfield, print one table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tle", type=Path, default=DEFAULT_TLE, help="TLE file (default: %(default)s)")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--mask-deg", type=float, default=25.0)
    ap.add_argument("--step-s", type=float, default=60.0)
    ap.add_argument("--start", default="2023-07-18T00:00:00Z")
    ap.add_argument("--sample-pairs", type=int, default=200, help="pairs timed with Skyfield find_events")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="processes per plan (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each method, interleaved; best is shown")
    args = ap.parse_args()

    start = datetime.fromisoformat(args.start.replace("Z", "+00:00")).astimezone(timezone.utc)
    records = load_tle_file(args.tle)
    sites = grid_sites()
    load_before = os.getloadavg()
    compute_contact_plan(records[:20], sites, start, 3600.0, args.mask_deg)  # imports, caches
    timed = time_methods(records, sites, start, args)
    load_after = os.getloadavg()
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    plans = {name: t["plan"] for name, t in timed.items()}
    per_pair, agreement = skyfield_reference(records, sites, start, args, plans)
    before, now = (min(t["wall"]) for t in timed.values())
    rows = [
        ("machine", machine()),
        ("load average (1, 5, 15 min)", f"before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
                                        f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}"),
        ("problem", f"{len(records)} satellites x {len(sites)} clusters x {args.hours:g} h, mask "
                    f"{args.mask_deg:g} deg, step {args.step_s:g} s, {args.workers} worker(s)"),
        *[(name, f"wall {min(t['wall']):.2f} s (runs: {', '.join(f'{w:.2f}' for w in t['wall'])}), "
                 f"CPU {min(t['cpu']):.2f} s") for name, t in timed.items()],
        ("speed-up now vs before (best wall, same run)", f"{before / now:.2f}x"),
        ("plans now vs before", plan_difference(*plans.values())),
        ("peak RSS (this process)", f"{rss_gb:.2f} GB"),
        ("find_events per pair", f"{per_pair * 1e3:.1f} ms ({min(args.sample_pairs, len(records) * len(sites))} pairs)"),
        ("find_events, all pairs (extrapolated)", f"{per_pair * len(records) * len(sites):.0f} s, "
                                                  f"{per_pair * len(records) * len(sites) / now:.0f}x the plan now"),
        *[(f"sampled rise/set events, {name.split(' (')[0]}", text) for name, text in agreement.items()],
        *[(f"diagnostics, {name.split(' (')[0]}", str(p.diagnostics)) for name, p in plans.items()],
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
