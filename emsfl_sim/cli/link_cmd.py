"""``emsfl-sim link-budget``: the budget line by line and per-pass volumes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from emsfl_sim.errors import InputError

if TYPE_CHECKING:
    from emsfl_sim.scenario import Scenario


def _altitude_km(scenario: Scenario, args: argparse.Namespace) -> float:
    if args.altitude_km is not None:
        if not 100.0 < args.altitude_km < 40000.0:  # also nan and inf
            raise InputError(f"must be a finite number between 100 and 40000 km (got {args.altitude_km})",
                             field="--altitude-km")
        return float(args.altitude_km)
    if scenario.constellation.walker:
        return float(scenario.constellation.walker[0].altitude_km)
    if scenario.time.mode == "orbital":
        from emsfl_sim.sim.constellation import load_constellation
        from emsfl_sim.sim.schedule import server_record

        record = server_record(scenario, load_constellation(scenario))
        return float(record.altitude_km) if hasattr(record, "altitude_km") else _altitude_from_tle(record)
    return 550.0


def _altitude_from_tle(record: Any) -> float:
    from sgp4.api import Satrec

    sat = Satrec.twoline2rv(record.line1, record.line2)
    return float(sat.a * sat.radiusearthkm - sat.radiusearthkm)


def _format(table: pd.DataFrame) -> str:
    rows = []
    for row in table.itertuples(index=False):
        value = row.value
        text = f"{value:,.2f}" if isinstance(value, (float, np.floating)) and np.isfinite(value) else str(value)
        rows.append(f"  {row.item:<42} {text:>16} {row.unit}")
    return "\n".join(rows)


def run_link_budget(args: argparse.Namespace) -> int:
    """Print the budget at ``--elevation`` and at the mask, then per-pass volume statistics."""
    from emsfl_sim.cli.common import load_with_overrides
    from emsfl_sim.link import link_budget_table, pass_volume_stats
    from emsfl_sim.sim.schedule import build_schedule, link_params

    scenario = load_with_overrides(args.scenario, args.set)
    devices = scenario.clusters[0].devices
    params = link_params(scenario, devices)
    altitude = _altitude_km(scenario, args)
    mask = scenario.link.elevation_mask_deg
    elevation = 90.0 if args.elevation is None else args.elevation
    if not (0 <= elevation <= 90):
        raise InputError(f"must be between 0 and 90 degrees (got {elevation})", field="--elevation")
    if elevation < mask:
        raise InputError(f"{elevation} deg is below the elevation mask ({mask} deg): there is no link there; "
                         f"use --elevation >= {mask}", field="--elevation")
    print(f"Link budget of {scenario.name} (per device, {params.bandwidth_hz / 1e6:g} MHz, "
          f"satellite altitude {altitude:.0f} km, capacity model {params.capacity_model})")
    for el in dict.fromkeys([elevation, mask]):
        label = "at the mask" if el == mask else "requested"
        print(f"\nelevation {el:g} deg ({label}):")
        print(_format(link_budget_table(params, el, altitude_km=altitude)))
    if args.no_passes:
        return 0
    schedule = build_schedule(scenario)
    stats = pass_volume_stats([w.capacity for w in schedule.windows])
    print(f"\nper-pass volume per device over {stats['n_passes']} {schedule.mode} windows "
          f"({schedule.duration_s / 3600:.1f} h): min {stats['mb_min']:.1f} MB, median {stats['mb_median']:.1f} MB, "
          f"max {stats['mb_max']:.1f} MB, mean rate {stats['mean_rate_bps'] / 1e6:.2f} Mbit/s")
    return 0
