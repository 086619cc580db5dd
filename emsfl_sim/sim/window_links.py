"""Link windows with their capacities, many at a time: the batched step "windows -> capacity" of the schedule.

:func:`window_links` gives, bit for bit, what one call of
:func:`~emsfl_sim.sim.schedule.window_geometry` and :func:`~emsfl_sim.link.pass_capacity` per
window gives (the sample times, the exact geometry, the shadowing draw
``rng(seed, "shadowing", cluster, round(start_s, 3))`` and the fading method each window's
sample count selects), with one vectorised call per batch of windows instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from emsfl_sim.link import LinkParams
from emsfl_sim.link.capacity import draw_shadowing_db
from emsfl_sim.link.packed_capacity import PackedCapacities, packed_pass_capacities
from emsfl_sim.rng import rng
from emsfl_sim.scenario import Scenario
from emsfl_sim.sim.window_table import WindowTable

#: Link windows sampled and turned into capacities per batch (bounds the geometry arrays).
WINDOW_BATCH = 20000


def window_times(start_s: np.ndarray, end_s: np.ndarray, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The sample times of :func:`~emsfl_sim.sim.schedule.window_geometry` of many windows: times end to end and offsets.

    Window ``i`` is ``np.union1d(np.arange(start, end, step_s), [start, end])`` (the samples
    ``offsets[i]:offsets[i + 1]``), built with ``np.arange``'s own rule: ``ceil((end - start) /
    step)`` values ``start``, ``start + step``, then ``start + j * ((start + step) - start)``.
    """
    start = np.asarray(start_s, dtype=float)
    end = np.asarray(end_s, dtype=float)
    span = (end - start) / step_s
    count = np.where(span > 0, np.ceil(np.where(span > 0, span, 0.0)), 0.0).astype(np.int64)
    count = np.where((span == 0.0) & (end != start), 1, count)  # np.arange: a positive span below one ulp
    delta = (start + step_s) - start
    window = np.repeat(np.arange(start.size), count)
    j = np.arange(window.size) - np.repeat(np.cumsum(count) - count, count)
    grid = start[window] + j * delta[window]
    grid[j == 1] = (start + step_s)[window[j == 1]]
    values = np.concatenate((grid, start, end))
    owner = np.concatenate((window, np.arange(start.size), np.arange(start.size)))
    order = np.lexsort((values, owner))
    values, owner = values[order], owner[order]
    keep = np.ones(values.size, dtype=bool)
    keep[1:] = (owner[1:] != owner[:-1]) | (values[1:] != values[:-1])
    values, owner = values[keep], owner[keep]
    offsets = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=start.size))))
    return values, offsets


def window_links(scenario: Scenario, plan: Any, windows_df: pd.DataFrame,
                 params_of: Mapping[int, LinkParams]) -> WindowTable:
    """Each window of ``windows_df`` with its capacity, in its row order (batched, as one window at a time).

    ``params_of`` maps a cluster's device count to its link parameters (the per-device band).
    """
    devices = {c.name: c.devices for c in scenario.clusters}
    parts: list[WindowTable] = []
    for lo in range(0, len(windows_df), WINDOW_BATCH):
        batch = windows_df.iloc[lo : lo + WINDOW_BATCH]
        clusters = batch["cluster"].tolist()
        starts, ends = batch["start_s"].to_numpy(dtype=float), batch["end_s"].to_numpy(dtype=float)
        t_s, offsets = window_times(starts, ends, scenario.time.geometry_step_s)
        lengths = np.diff(offsets)
        isite = np.repeat(plan.site_indices(clusters), lengths)
        isat = np.repeat(plan.norad_indices(batch["norad_id"].to_numpy()), lengths)
        geometry = plan.sample_arrays(isite, isat, t_s)
        max_el = np.fmax.reduceat(geometry["elevation_deg"], offsets[:-1]) if len(batch) else np.empty(0)
        window_devices = np.array([devices[c] for c in clusters], dtype=np.int64)
        groups, order = [], []
        for d, params in params_of.items():  # one call per device count (the per-device band differs)
            members = np.flatnonzero(window_devices == d)
            if members.size == 0:
                continue
            sub = geometry if members.size == len(batch) else \
                {k: v[np.repeat(window_devices == d, lengths)] for k, v in geometry.items()}
            sub_offsets = np.concatenate(([0], np.cumsum(lengths[members])))
            shadow = _shadowing_db(scenario, params, [clusters[i] for i in members], starts[members].tolist())
            groups.append(packed_pass_capacities(sub, sub_offsets, params, shadow))
            order.append(members)
        caps = groups[0] if len(groups) == 1 else \
            PackedCapacities.concat(groups).take(np.argsort(np.concatenate(order), kind="stable"))
        cluster_codes, cluster_names = pd.factorize(batch["cluster"])
        sat_codes, sat_names = pd.factorize(batch["satellite"])
        parts.append(WindowTable(tuple(str(n) for n in cluster_names), cluster_codes.astype(np.int32),
                                 tuple(str(n) for n in sat_names), sat_codes.astype(np.int32),
                                 starts, ends, max_el, caps))
    return WindowTable.concat(parts)


def _shadowing_db(scenario: Scenario, params: LinkParams, clusters: list[str], starts: list[float]) -> np.ndarray:
    """Each window's shadowing draw from ``rng(seed, "shadowing", cluster, round(start_s, 3))`` (none at sigma 0)."""
    if params.shadowing_sigma_db == 0:
        return np.zeros(len(clusters))  # draw_shadowing_db draws nothing then
    return np.array([draw_shadowing_db(params, rng(scenario.seed, "shadowing", c, round(t, 3)))
                     for c, t in zip(clusters, starts, strict=True)], dtype=float)
