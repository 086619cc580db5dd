"""Link schedules: when each cluster can talk to the server, and at what capacity.

This is the step "contact plan -> link capacity" of the data flow: the orbital
mode turns a scenario's constellation into link windows (orbits/) and each
window's geometry into a :class:`~emsfl_sim.link.PassCapacity` (link/); the
idealised mode builds the reference's round-robin slots with constant capacity.
Both give the simulator the same :class:`LinkSchedule`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from emsfl_sim.link import LinkParams, PassCapacity, pass_capacity, per_device_bandwidth_hz
from emsfl_sim.rng import rng
from emsfl_sim.scenario import Scenario
from emsfl_sim.sim.window_links import window_links
from emsfl_sim.sim.window_table import LinkWindow, WindowTable

# Bump whenever the orbit, link or schedule code changes what a LinkSchedule holds for the same
# inputs (pass search, capacity model, window layout): cached schedules of older formats are rebuilt.
SCHEDULE_FORMAT = 2  # 2: packed WindowTable; constellation schedules over a day built day by day


@dataclass
class LinkSchedule:
    """All link windows of a scenario plus its clock facts."""

    #: a list, or a :class:`WindowTable` (orbital schedules: packed columns, objects made on use)
    windows: Sequence[LinkWindow]
    cycle_s: float  # one orbital cycle (satellite period, or M slots when idealised)
    duration_s: float
    clusters: list[str]
    mode: str
    extras: dict[str, Any] = field(default_factory=dict)
    #: idealised time: length of one connected slot (local rounds are aligned to slots); None otherwise
    slot_s: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Contact plans hold sgp4 Satrec objects, which do not pickle: sweeps cache the
        # schedule without them (the pass table stays available as a DataFrame).
        state = dict(self.__dict__)
        state.pop("_idle_stats", None)  # caches, rebuilt on use
        state.pop("_by_cluster", None)
        extras = dict(state["extras"])
        plan = extras.pop("plan", None)
        if plan is not None:
            extras["passes"] = plan.passes
        state["extras"] = extras
        return state

    def for_cluster(self, cluster: str) -> Iterable[LinkWindow]:
        """The windows of one cluster, sorted by start."""
        if isinstance(self.windows, WindowTable):
            return self.windows.for_cluster(cluster)
        by_cluster = self.__dict__.get("_by_cluster")
        if by_cluster is None:
            # Grouped once: scanning every window per cluster is quadratic in the clusters.
            by_cluster = self.__dict__["_by_cluster"] = {}
            for w in self.windows:
                by_cluster.setdefault(w.cluster, []).append(w)
            for group in by_cluster.values():
                group.sort(key=lambda w: w.start_s)
        return list(by_cluster.get(cluster, []))

    def satellite_names(self) -> list[str]:
        """The satellites of the windows, sorted."""
        if isinstance(self.windows, WindowTable):
            used = np.unique(self.windows.satellite_codes)
            return sorted(self.windows.satellite_names[i] for i in used.tolist())
        return sorted({w.satellite for w in self.windows})

    def _columns(self) -> pd.DataFrame:
        """One row per window (in window order): the columns of :meth:`table`."""
        if isinstance(self.windows, WindowTable):
            return self.windows.frame()
        return pd.DataFrame({"cluster": [w.cluster for w in self.windows],
                             "satellite": [w.satellite for w in self.windows],
                             "start_s": np.array([w.start_s for w in self.windows], dtype=float),
                             "end_s": np.array([w.end_s for w in self.windows], dtype=float),
                             "duration_s": np.array([w.duration_s for w in self.windows], dtype=float),
                             "max_elevation_deg": np.array([w.max_elevation_deg for w in self.windows], dtype=float),
                             "bytes_per_device": np.array([w.capacity.total_bytes for w in self.windows],
                                                          dtype=float)},
                            columns=TABLE_COLUMNS)

    def idle_statistics(self) -> Any:
        """:func:`~emsfl_sim.orbits.idle_statistics` of the windows over the run (computed once, then kept)."""
        cached = self.__dict__.get("_idle_stats")
        if cached is None:
            from emsfl_sim.orbits import idle_statistics

            if isinstance(self.windows, WindowTable):  # codes, not 14 M strings
                table = self.windows
                frame = pd.DataFrame({"cluster": pd.Categorical.from_codes(table.cluster_codes, table.cluster_names),
                                      "start_s": table.start_s, "end_s": table.end_s})
            else:
                frame = self._columns()[["cluster", "start_s", "end_s"]]
            cached = self.__dict__["_idle_stats"] = idle_statistics(frame, self.clusters, self.duration_s)
        return cached

    @property
    def idle_fraction(self) -> float:
        """Fraction of the run during which no cluster has a link."""
        return float(self.idle_statistics().fraction_none)

    @property
    def cluster_idle_fraction_mean(self) -> float:
        """Mean over the clusters of each one's idle fraction (the union of its windows; 1 without any)."""
        per_cluster = self.idle_statistics().per_cluster
        return float(per_cluster["idle_fraction"].mean()) if len(per_cluster) else float("nan")

    def table(self) -> pd.DataFrame:
        """One row per window with its volume (bytes per device), by start then cluster."""
        frame = self._columns()
        order = np.lexsort((frame["cluster"].to_numpy(dtype=str), frame["start_s"].to_numpy()))
        return frame.iloc[order].reset_index(drop=True)[TABLE_COLUMNS]


#: The columns of :meth:`LinkSchedule.table`.
TABLE_COLUMNS = ["cluster", "satellite", "start_s", "end_s", "duration_s", "max_elevation_deg", "bytes_per_device"]


#: LinkParams fields the scenario does not give directly: the per-device band follows from
#: ``link.bandwidth_per_device_hz``, ``total_bandwidth_hz``, ``sharing`` and the cluster's devices.
DERIVED_LINK_FIELDS = frozenset({"bandwidth_hz"})


def link_param_names() -> frozenset[str]:
    """The LinkParams fields copied from the scenario's link section (all but the derived ones)."""
    return frozenset(f.name for f in dataclasses.fields(LinkParams)) - DERIVED_LINK_FIELDS


def link_params(scenario: Scenario, devices: int = 1) -> LinkParams:
    """The scenario's link section as LinkParams, with the per-device bandwidth after sharing.

    Every field LinkParams declares is taken from the section by name (``model_dump``), so a
    field added to LinkParams but missing from the schema fails here instead of silently
    keeping its default.

    Parameters
    ----------
    scenario
        A validated scenario.
    devices
        Devices of the cluster sharing ``link.total_bandwidth_hz`` (when set).

    Returns
    -------
    LinkParams
        Validated, errors named ``link.<field>``.
    """
    cfg = scenario.link
    names = link_param_names()
    values = cfg.model_dump(include=set(names))
    missing = names - values.keys()
    if missing:
        raise TypeError(f"LinkParams fields without a scenario field link.<name>: {sorted(missing)}")
    if cfg.total_bandwidth_hz is None:
        bandwidth = cfg.bandwidth_per_device_hz  # every device has its own sub-channel
    else:
        subchannel = cfg.bandwidth_per_device_hz if cfg.sharing == "subchannel" else None
        bandwidth = per_device_bandwidth_hz(cfg.total_bandwidth_hz, devices, cfg.sharing, subchannel)
    return LinkParams(bandwidth_hz=bandwidth, **values).validate(field_prefix="link.")


def build_schedule(scenario: Scenario) -> LinkSchedule:
    """The scenario's link schedule (orbital or idealised)."""
    if scenario.time.mode == "idealised":
        return idealised_schedule(scenario)
    return orbital_schedule(scenario)


# ------------------------------------------------------------------ idealised
def idealised_rate_bps(scenario: Scenario, devices: int) -> float:
    """Per-device rate of the idealised mode.

    The link budget at 45 deg (or the mask, if higher) over a 550 km orbit, or with the
    fixed large-scale fading when the scenario gives one.
    """
    from emsfl_sim.link import slant_range_km

    params = link_params(scenario, devices)
    elevation = max(45.0, params.elevation_mask_deg)
    geometry = pd.DataFrame(
        {
            "t_s": [0.0, 1.0],
            "elevation_deg": [elevation, elevation],
            "range_km": [float(slant_range_km(elevation, 550.0))] * 2,
            "range_rate_km_s": [0.0, 0.0],
        }
    )
    cap = pass_capacity(geometry, params, None)
    return float(cap.capacity_bps(0.5))


def idealised_schedule(scenario: Scenario) -> LinkSchedule:
    """Round-robin slots: slot i serves cluster (i mod M) unless it is drawn idle.

    Idle slots are inserted with probability ``time.idle_slot_rate``; an idle
    slot shifts the round-robin (it is an extra slot, not a lost turn), so idle
    slots stretch the orbital cycle as real geometry does.
    """
    clusters = [c.name for c in scenario.clusters]
    slot = scenario.time.slot_duration_s
    cycle_s = slot * len(clusters)
    duration = scenario_duration_s(scenario, cycle_s)
    cycles = scenario.time.orbital_cycles
    if cycles and scenario.time.idle_slot_rate > 0:
        duration = cycles * cycle_s / (1 - scenario.time.idle_slot_rate)
    draw = rng(scenario.seed, "idle-slots")
    windows: list[LinkWindow] = []
    turn = 0
    n_slots = int(math.ceil(duration / slot))
    idle_slots = 0
    rates = {c.name: idealised_rate_bps(scenario, c.devices) for c in scenario.clusters}
    for i in range(n_slots):
        start = i * slot
        if draw.random() < scenario.time.idle_slot_rate:
            idle_slots += 1
            continue
        cluster = clusters[turn % len(clusters)]
        turn += 1
        end = min(start + slot, duration)
        windows.append(LinkWindow(cluster, start, end, "SERVER", PassCapacity.constant(start, end, rates[cluster])))
    return LinkSchedule(windows, cycle_s, float(duration), clusters, "idealised",
                        {"idle_slots": idle_slots, "slots": n_slots, "rate_bps": rates}, slot_s=float(slot))


# -------------------------------------------------------------------- orbital
def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def load_constellation(scenario: Scenario, warn: Callable[[str], None] = _warn_stderr) -> list[Any]:
    """TLE records of the scenario's constellation (files and Walker shells, filtered).

    Skipped bad entries, duplicate NORAD ids (the first is kept) and satellites SGP4
    cannot propagate over the run (excluded) are each reported through ``warn``; the
    rules are in :mod:`emsfl_sim.orbits.checks`.
    """
    from emsfl_sim.errors import InputError
    from emsfl_sim.orbits import filter_records, walker_delta
    from emsfl_sim.orbits.checks import skipped_warning
    from emsfl_sim.orbits.tle import load_tle_file_report

    const = scenario.constellation
    records: list[Any] = []
    for path in const.tle_files:
        loaded, reasons = load_tle_file_report(path, skip_bad=const.skip_bad_tle)
        records.extend(loaded)
        if (message := skipped_warning(str(path), reasons)) is not None:
            warn(message)
    first_ids = walker_first_norad_ids([shell.total_satellites for shell in const.walker])
    for index, shell in enumerate(const.walker):
        records.extend(
            walker_delta(
                altitude_km=shell.altitude_km,
                inclination_deg=shell.inclination_deg,
                total_satellites=shell.total_satellites,
                planes=shell.planes,
                phasing=shell.phasing,
                raan_spread_deg=shell.raan_spread_deg,
                epoch_utc=shell.epoch_utc or scenario.time.start_utc,
                name_prefix=shell.name_prefix,
                first_norad_id=first_ids[index],
            )
        )
    if const.satellite_names or const.norad_ids:
        records = filter_records(records, name_patterns=const.satellite_names or None, norad_ids=const.norad_ids or None)
    if const.max_satellites:
        records = records[: const.max_satellites]
    if not records:
        raise InputError("no satellites left after filtering; check satellite_names / norad_ids",
                         file=scenario.source_file, field="constellation")
    return _checked_records(scenario, records, warn)


def walker_first_norad_ids(totals: list[int]) -> list[int]:
    """Catalogue number of each Walker shell's first satellite: consecutive ranges from 90000.

    Shells that do not all fit below 99999 from 90000 end at 99999 instead (5-digit
    catalogue numbers); the schema refuses more than 99999 satellites in all.
    """
    start = 90000 if sum(totals) <= 10000 else 100000 - sum(totals)
    firsts = []
    for total in totals:
        firsts.append(start)
        start += total
    return firsts


def check_start_near_epochs(scenario: Scenario, records: list[Any]) -> None:
    """Refuse a start years away from every TLE epoch (a typo or the wrong file): one line on ``time.start_utc``."""
    from emsfl_sim.errors import InputError
    from emsfl_sim.orbits.tle import check_epoch_span

    try:
        check_epoch_span(records, scenario.time.start_utc, source=scenario.source_file)
    except InputError as exc:
        raise InputError(exc.message, scenario.source_file, "time.start_utc") from None


def check_tle_epochs(scenario: Scenario) -> None:
    """What ``validate`` checks of the TLE files without propagating: they parse, and the start is near them."""
    from emsfl_sim.orbits.tle import load_tle_file_report

    const = scenario.constellation
    if scenario.time.mode != "orbital" or not const.tle_files:
        return
    records = [r for f in const.tle_files for r in load_tle_file_report(f, skip_bad=const.skip_bad_tle)[0]]
    check_start_near_epochs(scenario, records)


def _checked_records(scenario: Scenario, records: list[Any], warn: Callable[[str], None]) -> list[Any]:
    """``records`` without duplicate NORAD ids and without satellites SGP4 cannot propagate over the run."""
    from emsfl_sim.orbits.checks import dedupe_norad_ids, exclude_unpropagatable

    check_start_near_epochs(scenario, records)
    records, message = dedupe_norad_ids(records)
    if message is not None:
        warn(message)
    duration = scenario.time.duration_s
    if duration is None:  # orbital cycles: bound the span by the slowest satellite's period
        periods = [86400.0 / float(r.line2[52:63]) for r in records if float(r.line2[52:63] or 0) > 0]
        duration = float(scenario.time.orbital_cycles or 1) * max(periods, default=86400.0)
    records, message = exclude_unpropagatable(records, scenario.time.start_utc, float(duration),
                                              scenario.source_file)
    if message is not None:
        warn(message)
    return records


def scenario_duration_s(scenario: Scenario, cycle_s: float) -> float:
    """Simulated duration from ``time.duration_s`` or ``time.orbital_cycles``."""
    if scenario.time.duration_s is not None:
        return float(scenario.time.duration_s)
    cycles = scenario.time.orbital_cycles
    assert cycles is not None, "the schema sets duration_s when orbital_cycles is not given"
    return float(cycles) * cycle_s


def server_record(scenario: Scenario, records: list[Any]) -> Any:
    """The server satellite's record (single mode), or the first satellite."""
    from emsfl_sim.errors import InputError

    wanted = scenario.server.satellite
    if wanted is None or scenario.server.mode == "constellation":
        return records[0]  # constellation mode: any satellite serves; the first sets the cycle
    for rec in records:
        if str(rec.name) == str(wanted) or str(rec.norad_id) == str(wanted):
            return rec
    examples = ", ".join(r.name for r in records[:3])
    raise InputError(f"server satellite {wanted!r} not found in the constellation (e.g. {examples})",
                     file=scenario.source_file, field="server.satellite")


def contact_plan(scenario: Scenario, records: list[Any] | None = None,
                 window_s: tuple[float, float] | None = None) -> Any:
    """The scenario's ContactPlan (all satellites x all clusters), or the part ``window_s`` of its span."""
    from emsfl_sim.orbits import Site, compute_contact_plan, orbital_period_s

    records = records if records is not None else load_constellation(scenario)
    cycle_s = orbital_period_s(server_record(scenario, records))
    sites = [Site(c.name, c.lat_deg, c.lon_deg, c.alt_m) for c in scenario.clusters]
    return compute_contact_plan(
        records,
        sites,
        scenario.time.start_utc,
        scenario_duration_s(scenario, cycle_s),
        scenario.link.elevation_mask_deg,
        step_s=scenario.time.contact_step_s,
        window_s=window_s,
    )


#: Scenario seconds per part of a streamed schedule (a multiple of the default contact step x 4
#: and geometry step, so each part's samples are the whole span's).
SCHEDULE_CHUNK_S = 86400.0


def streams_schedule(scenario: Scenario, duration_s: float) -> bool:
    """Whether the schedule is built day by day: constellation mode, highest-elevation handover, > 1 day.

    That selection has no memory (each grid instant picks the highest satellite), so windows
    cut at a day boundary and joined again are the whole span's; ``sticky`` and
    ``highest_capacity`` keep the one-piece search.
    """
    return (scenario.server.mode == "constellation" and scenario.server.handover == "highest_elevation"
            and duration_s > SCHEDULE_CHUNK_S)


def orbital_schedule(scenario: Scenario) -> LinkSchedule:
    """Link windows from real geometry, each with its capacity through the pass."""
    from emsfl_sim.orbits import orbital_period_s

    records = load_constellation(scenario)
    server = server_record(scenario, records)
    if scenario.server.mode == "single":
        # Only the server's passes matter: propagate it alone.
        records = [server]
    cycle_s = orbital_period_s(server)
    counts = dict.fromkeys(c.devices for c in scenario.clusters)
    params_of = {d: link_params(scenario, d) for d in counts}
    names = [c.name for c in scenario.clusters]
    duration_s = scenario_duration_s(scenario, cycle_s)
    if streams_schedule(scenario, duration_s):
        windows = streamed_windows(scenario, records, server, duration_s, params_of)
        return LinkSchedule(windows, cycle_s, duration_s, names, "orbital", {"chunk_s": SCHEDULE_CHUNK_S})
    plan = contact_plan(scenario, records)
    windows_df = server_windows(scenario, plan, server)
    windows = window_links(scenario, plan, windows_df, params_of)
    return LinkSchedule(windows, cycle_s, plan.duration_s, names, "orbital", {"plan": plan, "windows": windows_df})


def streamed_windows(scenario: Scenario, records: list[Any], server: Any, duration_s: float,
                     params_of: dict[int, LinkParams]) -> WindowTable:
    """The link windows built one :data:`SCHEDULE_CHUNK_S` at a time; memory holds one part's plan.

    A window still open at a part's end is held back and joined with the next part's window
    of the same cluster and satellite starting there; its capacity is computed once, over the
    joined window, so the windows equal the one-piece schedule's.
    """
    parts: list[WindowTable] = []
    held = pd.DataFrame()
    edges = np.append(np.arange(0.0, duration_s, SCHEDULE_CHUNK_S), duration_s)
    for t0, t1 in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        plan = contact_plan(scenario, records, window_s=(t0, t1))
        windows_df = server_windows(scenario, plan, server)
        if len(held):  # at most one held window per cluster: the one serving at t0
            joined = windows_df.reset_index().merge(held[["cluster", "norad_id", "start_s"]],
                                                    on=["cluster", "norad_id"], suffixes=("", "_held"))
            joined = joined[joined["start_s"] == t0]
            windows_df.loc[joined["index"].to_numpy(), "start_s"] = joined["start_s_held"].to_numpy()
            ended = held[~held["cluster"].isin(joined["cluster"])]  # no continuation: they end at t0
            windows_df = pd.concat([ended, windows_df], ignore_index=True)
        still_open = (windows_df["end_s"] >= t1).to_numpy() if t1 < duration_s else np.zeros(len(windows_df), bool)
        held = windows_df[still_open]
        parts.append(window_links(scenario, plan, windows_df[~still_open], params_of))
        del plan
    return WindowTable.concat(parts)


def server_windows(scenario: Scenario, plan: Any, server: Any) -> pd.DataFrame:
    """Link windows after server selection; ``highest_capacity`` scores satellites by the link budget."""
    from emsfl_sim.link import capacity_series
    from emsfl_sim.orbits import link_windows

    score = None
    if scenario.server.handover == "highest_capacity":
        params = link_params(scenario)

        def score(geometry: pd.DataFrame) -> np.ndarray:
            return capacity_series(geometry, params)["capacity_bps"].to_numpy()

    return link_windows(
        plan,
        mode=scenario.server.mode,
        satellite=server.name if scenario.server.mode == "single" else None,
        handover=scenario.server.handover,
        handover_step_s=scenario.time.geometry_step_s,  # the common grid of issue 16
        score=score,
    )


def window_geometry(plan: Any, window: Any, step_s: float) -> pd.DataFrame:
    """Exact geometry of the window's satellite over the window, endpoints included.

    Handover segments can be shorter than ``step_s``; they still get both endpoints.
    """
    start, end = float(window.start_s), float(window.end_s)
    t_s = np.union1d(np.arange(start, end, step_s), [start, end])
    return plan.sample(window.cluster, int(window.norad_id), t_s)

