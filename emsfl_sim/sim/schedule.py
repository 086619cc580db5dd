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
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from emsfl_sim.link import LinkParams, PassCapacity, pass_capacity, per_device_bandwidth_hz
from emsfl_sim.rng import rng
from emsfl_sim.scenario import Scenario
from emsfl_sim.sim.background import Relay, iterate_in_children
from emsfl_sim.sim.constellation import load_constellation
from emsfl_sim.sim.window_links import window_links
from emsfl_sim.sim.window_stream import WindowStream, table_parts
from emsfl_sim.sim.window_table import LinkWindow, WindowTable

# Bump whenever the orbit, link or schedule code changes what a LinkSchedule holds for the same
# inputs (pass search, capacity model, window layout): cached schedules of older formats are rebuilt.
# 2: packed WindowTable, constellation schedules over a day built day by day; 3: 6-h parts;
# 4: every window's fading through the ergodic table (short windows' capacities moved < 1e-6)
SCHEDULE_FORMAT = 4


@dataclass
class LinkSchedule:
    """All link windows of a scenario plus its clock facts."""

    #: a list, a :class:`WindowTable` (orbital schedules: packed columns, objects made on use), or a
    #: :class:`WindowStream` of 6-hour parts (constellation runs over a day: parts arrive as the loop runs)
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
        if isinstance(self.windows, (WindowTable, WindowStream)):
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

    @property
    def streaming(self) -> bool:
        """Whether windows are still arriving (a streamed schedule the event loop has not used up)."""
        return isinstance(self.windows, WindowStream) and not self.windows.complete

    def satellite_names(self) -> list[str]:
        """The satellites of the windows, sorted."""
        parts = table_parts(self.windows)
        if parts is not None:
            return sorted({p.satellite_names[i] for p in parts for i in np.unique(p.satellite_codes).tolist()})
        return sorted({w.satellite for w in self.windows})

    def _columns(self) -> pd.DataFrame:
        """One row per window (in window order): the columns of :meth:`table`."""
        parts = table_parts(self.windows)
        if parts is not None:
            frames = [p.frame() for p in parts]
            return pd.concat(frames, ignore_index=True) if len(frames) != 1 else frames[0]
        return pd.DataFrame({"cluster": [w.cluster for w in self.windows],
                             "satellite": [w.satellite for w in self.windows],
                             "start_s": np.array([w.start_s for w in self.windows], dtype=float),
                             "end_s": np.array([w.end_s for w in self.windows], dtype=float),
                             "duration_s": np.array([w.duration_s for w in self.windows], dtype=float),
                             "max_elevation_deg": np.array([w.max_elevation_deg for w in self.windows], dtype=float),
                             "bytes_per_device": np.array([w.capacity.total_bytes for w in self.windows],
                                                          dtype=float)},
                            columns=TABLE_COLUMNS)

    def _idle_frame(self) -> pd.DataFrame:
        """``cluster, start_s, end_s`` of every window; packed windows by cluster code, not 14 M strings."""
        parts = table_parts(self.windows)
        if parts is None:
            return self._columns()[["cluster", "start_s", "end_s"]]
        names = list(dict.fromkeys([*self.clusters, *(n for p in parts for n in p.cluster_names)]))
        index = {n: i for i, n in enumerate(names)}
        codes = [np.array([index[n] for n in p.cluster_names], dtype=np.int32)[p.cluster_codes] for p in parts]
        return pd.DataFrame({"cluster": pd.Categorical.from_codes(np.concatenate(codes), names),
                             "start_s": np.concatenate([p.start_s for p in parts]),
                             "end_s": np.concatenate([p.end_s for p in parts])})

    def idle_statistics(self) -> Any:
        """:func:`~emsfl_sim.orbits.idle_statistics` of the windows over the run (computed once, then kept)."""
        cached = self.__dict__.get("_idle_stats")
        if cached is None:
            from emsfl_sim.orbits import idle_statistics

            cached = self.__dict__["_idle_stats"] = idle_statistics(self._idle_frame(), self.clusters,
                                                                    self.duration_s)
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


def build_schedule(scenario: Scenario, background: bool = False) -> LinkSchedule:
    """The scenario's link schedule (orbital or idealised).

    ``background``: a schedule built in parts (over a day) is built in a second process while the
    event loop runs (:func:`orbital_schedule`); the windows are the same.
    """
    if scenario.time.mode == "idealised":
        return idealised_schedule(scenario)
    return orbital_schedule(scenario, background)


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


#: Runs longer than this (scenario seconds) have a streamed schedule (see :func:`streams_schedule`).
STREAMED_ABOVE_S = 86400.0
#: Scenario seconds per part of a streamed schedule (a multiple of the default contact step x 4
#: and geometry step, so each part's samples are the whole span's). Six hours: the event loop
#: starts once the first quarter day is built (Starlink x 1000 clusters: ~25 s, not ~100 s),
#: and the windows equal those of day parts (Starlink x 300 clusters x 2 days: identical tables).
SCHEDULE_CHUNK_S = 21600.0


#: Satellite x cluster x day products from which a streamed schedule is built in second processes
#: (starting them costs about 2 s: Starlink x 1000 clusters x 7 days is 31 M, a 144-satellite shell x
#: 30 clusters x 1.5 days 6 500, which builds in-process in about that time).
BACKGROUND_MIN_PAIR_DAYS = 100_000


def schedule_workers(parts: int) -> int:
    """Processes that build a background schedule's parts (round-robin, see :func:`streamed_parts`).

    One per core but one (the event loop's), at most four (each holds a part's contact plan,
    ~1 GB at 1000 clusters), and no more than there are parts. On two cores that is one: a
    second builder there shares a core with the loop and slows it as much as it speeds the
    schedule (Starlink x 1000 clusters x 1.5 days, EMS-FL: 164.9 s with two builders, 165.7 s
    with one, results SAME; 3.3 vs 2.3 GB with the children; 7 days: 757.9 s with two, 729.6 s
    with one).
    """
    cores = os.cpu_count() or 2
    return max(1, min(parts, 4, cores - 1))


def streams_schedule(scenario: Scenario, duration_s: float) -> bool:
    """Whether the schedule is built in parts: constellation mode, highest-elevation handover, > 1 day.

    That selection has no memory (each grid instant picks the highest satellite), so windows
    cut at a part boundary and joined again are the whole span's; ``sticky`` and
    ``highest_capacity`` keep the one-piece search.
    """
    return (scenario.server.mode == "constellation" and scenario.server.handover == "highest_elevation"
            and duration_s > STREAMED_ABOVE_S)


def orbital_schedule(scenario: Scenario, background: bool = False) -> LinkSchedule:
    """Link windows from real geometry, each with its capacity through the pass.

    A streamed schedule (:func:`streams_schedule`) is a :class:`WindowStream` of 6-hour parts,
    built as they are needed; ``background`` builds them in a second process, ahead of
    the event loop, when the work is large enough to pay for starting it
    (:data:`BACKGROUND_MIN_PAIR_DAYS`).
    """
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
        args = (scenario, records, server, duration_s, params_of, SCHEDULE_CHUNK_S)
        background = background and len(records) * len(names) * duration_s / 86400.0 >= BACKGROUND_MIN_PAIR_DAYS
        workers = schedule_workers(len(part_edges(duration_s, SCHEDULE_CHUNK_S)) - 1) if background else 0
        parts = iterate_in_children(streamed_parts, *args, workers=workers) if background else streamed_parts(*args)
        return LinkSchedule(WindowStream(parts), cycle_s, duration_s, names, "orbital",
                            {"chunk_s": SCHEDULE_CHUNK_S, "background": background, "workers": workers})
    plan = contact_plan(scenario, records)
    windows_df = server_windows(scenario, plan, server)
    windows = window_links(scenario, plan, windows_df, params_of)
    return LinkSchedule(windows, cycle_s, plan.duration_s, names, "orbital", {"plan": plan, "windows": windows_df})


def part_edges(duration_s: float, chunk_s: float) -> list[float]:
    """The boundaries of a streamed schedule's parts: ``0, chunk_s, 2 chunk_s, ..., duration_s``."""
    return np.append(np.arange(0.0, duration_s, chunk_s), duration_s).tolist()


def streamed_parts(scenario: Scenario, records: list[Any], server: Any, duration_s: float,
                   params_of: dict[int, LinkParams], chunk_s: float,
                   relay: Relay | None = None) -> Iterator[WindowTable]:
    """The link windows ``chunk_s`` (:data:`SCHEDULE_CHUNK_S`) at a time, one :class:`WindowTable` a part.

    Memory holds one part's contact plan. A window still open at a part's end is held back
    and joined with the next part's window of the same cluster and satellite starting there;
    its capacity is computed once, over the joined window, so the windows equal the one-piece
    schedule's, and each cluster's windows are in start order across the parts.

    ``relay`` (several background builders, :func:`~emsfl_sim.sim.background.iterate_in_children`):
    this builder's parts only; the held windows come from the builder of the part before and go
    to the builder of the part after, so each part's contact plan and selection, most of the
    work, are built at the same time as the others'. The parts equal those of one builder.
    """
    relay = relay if relay is not None else Relay()
    edges = part_edges(duration_s, chunk_s)
    total = len(edges) - 1
    for d in relay.items(total):
        t0, t1 = edges[d], edges[d + 1]
        plan = contact_plan(scenario, records, window_s=(t0, t1))
        windows_df = server_windows(scenario, plan, server)
        held = relay.receive(d)
        if held is not None and len(held):  # at most one held window per cluster: the one serving at t0
            joined = windows_df.reset_index().merge(held[["cluster", "norad_id", "start_s"]],
                                                    on=["cluster", "norad_id"], suffixes=("", "_held"))
            joined = joined[joined["start_s"] == t0]
            windows_df.loc[joined["index"].to_numpy(), "start_s"] = joined["start_s_held"].to_numpy()
            ended = held[~held["cluster"].isin(joined["cluster"])]  # no continuation: they end at t0
            windows_df = pd.concat([ended, windows_df], ignore_index=True)
        still_open = (windows_df["end_s"] >= t1).to_numpy() if t1 < duration_s else np.zeros(len(windows_df), bool)
        relay.send(d, total, windows_df[still_open])
        part = window_links(scenario, plan, windows_df[~still_open], params_of)
        del plan, windows_df
        yield part


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

