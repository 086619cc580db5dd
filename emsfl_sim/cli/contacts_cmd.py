"""``emsfl-sim contacts``: the contact plan of a scenario, its summary, files and timeline."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from emsfl_sim.errors import InputError


def contact_summary(passes: pd.DataFrame, windows: pd.DataFrame, idle: pd.DataFrame) -> pd.DataFrame:
    """Per cluster: passes (all satellites), server windows, mean/max window minutes, idle fraction."""
    per = passes.groupby("cluster").size().rename("passes_all_sats")
    win = windows.assign(minutes=(windows["end_s"] - windows["start_s"]) / 60.0).groupby("cluster")["minutes"]
    table = pd.DataFrame({
        "server_windows": win.size(),
        "mean_window_min": win.mean(),
        "max_window_min": win.max(),
    })
    table = idle.set_index("cluster")[["idle_fraction", "passes_per_orbit", "max_gap_s"]].join(table).join(per)
    table["max_gap_h"] = table.pop("max_gap_s") / 3600.0
    return table.fillna({"server_windows": 0, "passes_all_sats": 0}).reset_index()


def run_contacts(args: argparse.Namespace) -> int:
    """Compute passes of every satellite over every cluster, select the server's windows, summarise."""
    from emsfl_sim.cli.common import load_with_overrides
    from emsfl_sim.orbits import epoch_warnings, idle_statistics, orbital_period_s, plot_timeline
    from emsfl_sim.sim.constellation import load_constellation
    from emsfl_sim.sim.schedule import contact_plan, server_record, server_windows

    if args.output and Path(args.output).suffix.lower() not in (".parquet", ".csv"):
        raise InputError(f"unknown table format {Path(args.output).suffix or '(no extension)'!r}; "
                         "name the file .parquet or .csv", field="--output")
    from emsfl_sim.cli.common import check_writable_file

    scenario = load_with_overrides(args.scenario, args.set)
    for path, option in ((args.output, "--output"), (args.plot, "--plot")):
        if path:  # a bad output path fails before the contact plan is computed
            check_writable_file(path, option)
    if scenario.time.mode != "orbital":
        raise InputError("contacts needs time.mode: orbital (idealised scenarios have no orbits)",
                         file=scenario.source_file, field="time.mode")
    t0 = time.perf_counter()
    records = load_constellation(scenario)
    for warning in epoch_warnings(records, scenario.time.start_utc):
        print(f"warning: {warning}", file=sys.stderr)
    server = server_record(scenario, records)
    plan = contact_plan(scenario, records)
    elapsed = time.perf_counter() - t0
    windows = server_windows(scenario, plan, server)
    period = orbital_period_s(server)
    idle = idle_statistics(windows, [c.name for c in scenario.clusters], plan.duration_s, period)
    print(f"{len(records)} satellites x {len(scenario.clusters)} clusters over {plan.duration_s / 3600:.1f} h, "
          f"mask {scenario.link.elevation_mask_deg:g} deg: {len(plan.passes)} passes in {elapsed:.2f} s")
    print(f"server: {scenario.server.mode}" + (f" ({server.name}, period {period / 60:.1f} min)"
                                               if scenario.server.mode == "single" else ""))
    print(contact_summary(plan.passes, windows, idle.per_cluster).to_string(index=False, float_format="%.3f"))
    print(f"time with no cluster connected: {idle.fraction_none:.1%}; exactly one: {idle.fraction_one:.1%}; "
          f"more than one: {idle.fraction_multiple:.1%}")
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".csv":
            plan.passes.to_csv(out, index=False)
        else:
            plan.passes.to_parquet(out, index=False)
        print(f"wrote {len(plan.passes)} passes to {out}")
    if args.plot:
        shown = plan.passes
        if scenario.server.mode == "single":
            shown = shown[shown["norad_id"] == server.norad_id]
        plot_timeline(shown, args.plot,
                      clusters=[c.name for c in scenario.clusters],
                      title=f"{scenario.name}: link windows (colour: max elevation)")
        print(f"wrote {args.plot}")
    return 0
