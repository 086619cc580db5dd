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


def _gaps(merged: np.ndarray, duration_s: float) -> np.ndarray:
    """Lengths of the gaps around merged windows in ``[0, duration_s]`` (leading and trailing included)."""
    edges = np.concatenate(([0.0], merged.ravel(), [duration_s])).reshape(-1, 2)
    g = edges[:, 1] - edges[:, 0]
    return g[g > 1e-9]


def _cluster_row(
    cluster: str, merged: np.ndarray, gaps: np.ndarray, duration_s: float, n_orbits: float
) -> dict[str, object]:
    """One row of :data:`IDLE_COLUMNS`."""
    connected = float(np.sum(merged[:, 1] - merged[:, 0])) if len(merged) else 0.0
    return {
        "cluster": cluster,
        "connected_fraction": connected / duration_s,
        "idle_fraction": 1.0 - connected / duration_s,
        "passes": len(merged),
        "passes_per_orbit": len(merged) / n_orbits if n_orbits == n_orbits else math.nan,
        "mean_gap_s": float(np.mean(gaps)) if len(gaps) else 0.0,
        "median_gap_s": float(np.median(gaps)) if len(gaps) else 0.0,
        "max_gap_s": float(np.max(gaps)) if len(gaps) else 0.0,
    }


def _connected_levels(merged_all: Sequence[np.ndarray], duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Elementary intervals of ``[0, duration_s]`` and how many clusters are connected in each.

    A sweep over window edges; at equal times a window closes before the next opens.
    """
    starts = np.concatenate([m[:, 0] for m in merged_all]) if merged_all else np.empty(0)
    ends = np.concatenate([m[:, 1] for m in merged_all]) if merged_all else np.empty(0)
    t = np.concatenate(([0.0], starts, ends, [duration_s]))
    delta = np.concatenate(([0], np.ones(len(starts), int), -np.ones(len(ends), int), [0]))
    order = np.lexsort((delta, t))  # at equal times close (-1) before opening (+1)
    t, delta = t[order], delta[order]
    return np.diff(t), np.cumsum(delta)[:-1]


def _idle_runs(idle: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Lengths of maximal runs of consecutive idle intervals."""
    runs: list[float] = []
    run = 0.0
    for flag, d in zip(idle.tolist(), dt.tolist(), strict=True):
        if flag:
            run += d
        elif run > 0:
            runs.append(run)
            run = 0.0
    if run > 0:
        runs.append(run)
    return np.asarray([g for g in runs if g > 1e-9])


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
        m = _merge(np.clip(w, 0.0, duration_s))
        merged_all.append(m)
        gaps[cluster] = _gaps(m, duration_s)
        rows.append(_cluster_row(cluster, m, gaps[cluster], duration_s, n_orbits))
    dt, level = _connected_levels(merged_all, duration_s)
    return IdleStats(
        per_cluster=pd.DataFrame(rows, columns=IDLE_COLUMNS),
        fraction_none=float(np.sum(dt[level == 0])) / duration_s,
        fraction_one=float(np.sum(dt[level == 1])) / duration_s,
        fraction_multiple=float(np.sum(dt[level > 1])) / duration_s,
        gaps_s=gaps,
        gaps_none_s=_idle_runs(level == 0, dt),
        duration_s=float(duration_s),
    )
