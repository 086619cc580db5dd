"""emsfl_sim.orbits: TLEs, Walker shells, contact plans, server selection and idle statistics.

Never imports torch.  Typical use::

    from emsfl_sim.orbits import load_tle_file, Site, compute_contact_plan, link_windows
    records = load_tle_file("tle/iridium-like-6x11-780km-86.4deg.tle")
    plan = compute_contact_plan(records, [Site("munich", 48.1, 11.6)], start_utc, 86400, 25.0)
    windows = link_windows(plan, mode="constellation")
"""

from emsfl_sim.orbits.contacts import compute_contact_plan
from emsfl_sim.orbits.frames import Site
from emsfl_sim.orbits.idle import IDLE_COLUMNS, IdleStats, idle_statistics, orbital_period_s
from emsfl_sim.orbits.plan import GEOMETRY_COLUMNS, PASS_COLUMNS, ContactPlan
from emsfl_sim.orbits.plot import plot_timeline
from emsfl_sim.orbits.server import WINDOW_COLUMNS, link_windows
from emsfl_sim.orbits.tle import (
    TleRecord,
    check_epoch_span,
    epoch_age_days,
    epoch_warnings,
    filter_records,
    load_tle_file,
    load_tle_file_with_count,
    parse_tle_text,
    to_earth_satellites,
    to_satrecs,
)
from emsfl_sim.orbits.walker import walker_delta, walker_tle_text

__all__ = [
    "GEOMETRY_COLUMNS",
    "IDLE_COLUMNS",
    "PASS_COLUMNS",
    "WINDOW_COLUMNS",
    "ContactPlan",
    "IdleStats",
    "Site",
    "TleRecord",
    "check_epoch_span",
    "compute_contact_plan",
    "epoch_age_days",
    "epoch_warnings",
    "filter_records",
    "idle_statistics",
    "link_windows",
    "load_tle_file",
    "load_tle_file_with_count",
    "orbital_period_s",
    "parse_tle_text",
    "plot_timeline",
    "to_earth_satellites",
    "to_satrecs",
    "walker_delta",
    "walker_tle_text",
]
