"""Idle-slot statistics of link windows.

The idealised EMS-FL model assumes exactly one cluster is connected at any
time and orbital cycles of M back-to-back connected phases.  These numbers
say how far real geometry is from that: per cluster the connected fraction
and the gaps between windows, and overall how much of the time no cluster,
exactly one, or more than one is connected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emsfl_sim.orbits.tle import TleRecord

IDLE_COLUMNS = [
    "cluster",
    "connected_fraction",
    "idle_fraction",
    "passes",
    "passes_per_orbit",
    "mean_gap_s",
    "median_gap_s",
    "max_gap_s",
]


def orbital_period_s(record: TleRecord) -> float:
    """Orbital period (s) from the TLE mean motion (revolutions per day, columns 53-63)."""
    revs_per_day = float(record.line2[52:63])
    return 86400.0 / revs_per_day


def _merge(intervals: np.ndarray) -> np.ndarray:
    """Union of [start, end] intervals, sorted and non-overlapping, shape (n, 2)."""
    if len(intervals) == 0:
        return np.empty((0, 2))
    iv = intervals[np.argsort(intervals[:, 0])]
    # A new block starts where the start exceeds the running maximum of earlier ends.
    run_max = np.maximum.accumulate(iv[:, 1])
    new = np.ones(len(iv), dtype=bool)
    new[1:] = iv[1:, 0] > run_max[:-1]
    starts = iv[new, 0]
    block = np.cumsum(new) - 1
    ends = np.zeros(len(starts))
    np.maximum.at(ends, block, iv[:, 1])
    return np.column_stack((starts, ends))


@dataclass
class IdleStats:
    """Idle-slot statistics.

    Attributes
    ----------
    per_cluster:
        DataFrame with columns :data:`IDLE_COLUMNS`.
    fraction_none, fraction_one, fraction_multiple:
        Share of the span during which no cluster, exactly one, more than one is connected.
    gaps_s:
        Per cluster, the lengths of gaps between merged windows (leading and
        trailing idle time included).
    gaps_none_s:
        Lengths of the intervals during which no cluster is connected.
    duration_s:
        The span the fractions refer to.
    """

    per_cluster: pd.DataFrame
    fraction_none: float
    fraction_one: float
    fraction_multiple: float
    gaps_s: dict[str, np.ndarray] = field(default_factory=dict)
    gaps_none_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    duration_s: float = 0.0


def idle_statistics(
    windows: pd.DataFrame,
    clusters: Sequence[str],
    duration_s: float,
    orbital_period_s: float | None = None,
) -> IdleStats:
    """Connected/idle fractions and gap lengths of link windows over ``[0, duration_s]``.

    Parameters
    ----------
    windows:
        ``cluster, start_s, end_s`` (link windows or a pass table renamed); overlapping
        windows of one cluster count once.
    clusters:
        All clusters (those without any window show 100 % idle).
    duration_s:
        Span of the scenario.
    orbital_period_s:
        For ``passes_per_orbit`` (merged windows per orbital period); NaN if not given.
    """
    if "start_s" not in windows.columns and "rise_s" in windows.columns:
        windows = windows.rename(columns={"rise_s": "start_s", "set_s": "end_s"})
    rows = []
    gaps: dict[str, np.ndarray] = {}
    merged_all = []
    n_orbits = duration_s / orbital_period_s if orbital_period_s else math.nan
    for cluster in clusters:
        w = windows.loc[windows["cluster"] == cluster, ["start_s", "end_s"]].to_numpy(dtype=float)
        w = np.clip(w, 0.0, duration_s)
        m = _merge(w)
        merged_all.append(m)
        connected = float(np.sum(m[:, 1] - m[:, 0])) if len(m) else 0.0
        edges = np.concatenate(([0.0], m.ravel(), [duration_s])).reshape(-1, 2)
        g = edges[:, 1] - edges[:, 0]
        g = g[g > 1e-9]
        gaps[cluster] = g
        rows.append(
            {
                "cluster": cluster,
                "connected_fraction": connected / duration_s,
                "idle_fraction": 1.0 - connected / duration_s,
                "passes": len(m),
                "passes_per_orbit": len(m) / n_orbits if n_orbits == n_orbits else math.nan,
                "mean_gap_s": float(np.mean(g)) if len(g) else 0.0,
                "median_gap_s": float(np.median(g)) if len(g) else 0.0,
                "max_gap_s": float(np.max(g)) if len(g) else 0.0,
            }
        )
    # Count of connected clusters over time via a sweep over window edges.
    starts = np.concatenate([m[:, 0] for m in merged_all]) if merged_all else np.empty(0)
    ends = np.concatenate([m[:, 1] for m in merged_all]) if merged_all else np.empty(0)
    t = np.concatenate(([0.0], starts, ends, [duration_s]))
    delta = np.concatenate(([0], np.ones(len(starts), int), -np.ones(len(ends), int), [0]))
    order = np.lexsort((delta, t))  # at equal times close (-1) before opening (+1)
    t, delta = t[order], delta[order]
    level = np.cumsum(delta)
    dt = np.diff(t)
    lvl = level[:-1]
    none = float(np.sum(dt[lvl == 0]))
    one = float(np.sum(dt[lvl == 1]))
    many = float(np.sum(dt[lvl > 1]))
    # Lengths of maximal intervals with nobody connected.
    idle = lvl == 0
    gaps_none = []
    run = 0.0
    for flag, d in zip(idle.tolist(), dt.tolist(), strict=True):
        if flag:
            run += d
        elif run > 0:
            gaps_none.append(run)
            run = 0.0
    if run > 0:
        gaps_none.append(run)
    gaps_none = np.asarray([g for g in gaps_none if g > 1e-9])
    return IdleStats(
        per_cluster=pd.DataFrame(rows, columns=IDLE_COLUMNS),
        fraction_none=none / duration_s,
        fraction_one=one / duration_s,
        fraction_multiple=many / duration_s,
        gaps_s=gaps,
        gaps_none_s=gaps_none,
        duration_s=float(duration_s),
    )
