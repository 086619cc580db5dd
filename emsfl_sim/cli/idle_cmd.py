"""``emsfl-sim idle``: how much of the time no cluster, one or several are connected, and the gaps.

For the scenario's constellation and clusters (or, with ``--grid``, a latitude-longitude
grid of virtual clusters over the globe): the fraction of time with no cluster / exactly
one / several connected, the connected fraction per cluster and the gap-length
distribution, printed and written as tables (``idle_summary``, ``idle_clusters``,
``idle_gaps``, ``idle_gap_histogram``) and plots (``connected_map.png``,
``gap_histograms.png``).  A cluster is connected while any satellite the server mode
allows (the server in ``single`` mode, any in ``constellation`` mode) is above the mask.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from emsfl_sim.errors import InputError

#: Above this many clusters the per-cluster table is printed per latitude row instead.
MAX_PRINTED_CLUSTERS = 40


def _sites(scenario: Any, grid: list[float] | None) -> list[Any]:
    """Virtual clusters of ``--grid`` or the scenario's clusters."""
    from emsfl_sim.orbits import Site
    from emsfl_sim.orbits.idle import grid_sites

    if grid is not None:
        return grid_sites(float(grid[0]), float(grid[1]))
    return [Site(c.name, c.lat_deg, c.lon_deg, c.alt_m) for c in scenario.clusters]


def _default_out(scenario: Any, grid: list[float] | None) -> Path:
    suffix = f"-grid{grid[0]:g}x{grid[1]:g}" if grid is not None else ""
    return Path("runs") / "idle" / f"{scenario.name}{suffix}"


def _print_tables(tables: dict[str, pd.DataFrame], grid: bool) -> None:
    """The per-cluster table (per latitude row for many clusters), the gap quantiles and histogram."""
    clusters = tables["idle_clusters"]
    if grid or len(clusters) > MAX_PRINTED_CLUSTERS:
        rows = clusters.groupby("lat_deg")["connected_fraction"].agg(["mean", "min", "max"])
        rows = rows.rename(columns=lambda c: f"connected_{c}").reset_index()
        print(f"connected fraction per latitude row ({len(clusters)} clusters):")
        print(rows.to_string(index=False, float_format="%.3f"))
    else:
        shown = clusters[["cluster", "lat_deg", "lon_deg", "connected_fraction", "passes", "mean_gap_s",
                          "median_gap_s", "max_gap_s"]]
        print(shown.to_string(index=False, float_format="%.3f"))
    summary = tables["idle_summary"].set_index("scope")
    quant = summary[["gaps", "mean_s", "p10_s", "median_s", "p90_s", "max_s"]].copy()
    quant.columns = ["gaps", "mean_min", "p10_min", "median_min", "p90_min", "max_min"]
    quant.iloc[:, 1:] = quant.iloc[:, 1:] / 60.0
    print("gap lengths:")
    print(quant.reset_index().to_string(index=False, float_format="%.1f"))
    hist = tables["idle_gap_histogram"].copy()
    hist.insert(0, "gap_min", [f"{a / 60:g}-{b / 60:g}" for a, b in zip(hist.bin_start_s, hist.bin_end_s, strict=True)])
    print(hist.drop(columns=["bin_start_s", "bin_end_s"]).to_string(index=False))


def run_idle(args: argparse.Namespace) -> int:
    """Compute, print and write the idle statistics of a scenario (or of a grid of virtual clusters)."""
    from emsfl_sim.cli.common import check_writable_directory, load_with_overrides
    from emsfl_sim.orbits import compute_contact_plan, epoch_warnings, idle_statistics, orbital_period_s
    from emsfl_sim.orbits.idle import idle_tables
    from emsfl_sim.sim.constellation import load_constellation
    from emsfl_sim.sim.schedule import scenario_duration_s, server_record

    scenario = load_with_overrides(args.scenario, args.set)
    sites = _sites(scenario, args.grid)  # a bad --grid fails before any work
    if scenario.time.mode != "orbital":
        raise InputError("idle needs time.mode: orbital (idealised scenarios have no orbits)",
                         file=scenario.source_file, field="time.mode")
    out = check_writable_directory(args.output or _default_out(scenario, args.grid), "--output")
    t0 = time.perf_counter()
    records = load_constellation(scenario)
    for warning in epoch_warnings(records, scenario.time.start_utc):
        print(f"warning: {warning}", file=sys.stderr)
    server = server_record(scenario, records)
    if scenario.server.mode == "single":
        records = [server]  # only the server connects a cluster
    period = orbital_period_s(server)
    duration = scenario_duration_s(scenario, period)
    plan = compute_contact_plan(records, sites, scenario.time.start_utc, duration,
                                scenario.link.elevation_mask_deg, step_s=scenario.time.contact_step_s)
    stats = idle_statistics(plan.passes, [s.name for s in sites], duration, period)
    tables = idle_tables(stats, sites)
    elapsed = time.perf_counter() - t0
    what = f"{len(sites)} virtual clusters (grid {args.grid[0]:g} x {args.grid[1]:g} deg)" if args.grid \
        else f"{len(sites)} clusters"
    print(f"{len(records)} satellites ({scenario.server.mode} server) x {what} over {duration / 3600:.1f} h, "
          f"mask {scenario.link.elevation_mask_deg:g} deg: {len(plan.passes)} passes in {elapsed:.2f} s")
    print(f"time with no cluster connected: {stats.fraction_none:.1%}; exactly one: {stats.fraction_one:.1%}; "
          f"several: {stats.fraction_multiple:.1%}")
    _print_tables(tables, args.grid is not None)
    from emsfl_sim.report.idle_plots import plot_idle_directory
    from emsfl_sim.results.tables import write_table

    for stem, frame in tables.items():
        write_table(frame, out / stem, scenario.output.formats)
    plots = plot_idle_directory(out, title=f"{scenario.name}: {what}, mask {scenario.link.elevation_mask_deg:g} deg")
    print(f"wrote {', '.join(tables)} ({'/'.join(scenario.output.formats)}) and "
          f"{', '.join(p.name for p in plots)} to {out}")
    return 0
