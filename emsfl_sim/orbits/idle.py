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

from emsfl_sim.errors import InputError
from emsfl_sim.orbits.frames import Site
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
    """Lengths of maximal runs of consecutive idle intervals (vectorised)."""
    if len(idle) == 0:
        return np.empty(0)
    flags = np.concatenate(([False], idle.astype(bool), [False]))
    starts = np.flatnonzero(~flags[:-1] & flags[1:])  # first idle interval of each run
    ends = np.flatnonzero(flags[:-1] & ~flags[1:])  # one past its last
    cum = np.concatenate(([0.0], np.cumsum(dt)))
    runs = cum[ends] - cum[starts]
    return runs[runs > 1e-9]


def _windows_by_cluster(windows: pd.DataFrame, clusters: Sequence[str]) -> dict[str, np.ndarray]:
    """``start_s, end_s`` rows per cluster (one pass over the table, not one per cluster)."""
    column = windows["cluster"]
    # a categorical column (a schedule's packed windows) is factorised by its codes, without strings
    codes, names = pd.factorize(column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype(str))
    order = np.argsort(codes, kind="stable")
    iv = windows[["start_s", "end_s"]].to_numpy(dtype=float)[order]
    cuts = np.searchsorted(codes[order], np.arange(len(names) + 1))
    found = {str(name): iv[cuts[i] : cuts[i + 1]] for i, name in enumerate(names)}
    return {c: found.get(str(c), np.empty((0, 2))) for c in clusters}


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
    for cluster, w in _windows_by_cluster(windows, clusters).items():
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


#: At most this many virtual clusters in :func:`grid_sites` (1 x 1 deg is 64 800).
MAX_GRID_SITES = 100_000

#: Upper edges (s) of the gap-length bins of :func:`idle_tables` (the last bin is open).
GAP_BIN_EDGES_S = (0.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0)


def grid_sites(lat_step_deg: float, lon_step_deg: float) -> list[Site]:
    """Virtual clusters at the centres of a latitude-longitude grid over the globe.

    Parameters
    ----------
    lat_step_deg, lon_step_deg:
        Cell size; latitudes run from ``-90 + lat_step/2`` to ``90 - lat_step/2``,
        longitudes from ``-180 + lon_step/2``.  Cells of the last row or column may
        be narrower when a step does not divide 180 (360).

    Returns
    -------
    list of Site
        Named ``lat{+LAT}_lon{+LON}`` (one decimal), row by row from the south.

    Raises
    ------
    InputError
        For a step outside ``(0, 180]`` (latitude) or ``(0, 360]`` (longitude), or a grid
        of more than :data:`MAX_GRID_SITES` cells (field ``--grid``).
    """
    for step, top, what in ((lat_step_deg, 180.0, "latitude"), (lon_step_deg, 360.0, "longitude")):
        if not (math.isfinite(step) and 0.0 < step <= top):
            raise InputError(f"{what} step must be > 0 and <= {top:g} degrees (got {step:g})", field="--grid")
    lats = np.minimum(-90.0 + lat_step_deg * (np.arange(math.ceil(180.0 / lat_step_deg - 1e-9)) + 0.5), 90.0)
    lons = np.minimum(-180.0 + lon_step_deg * (np.arange(math.ceil(360.0 / lon_step_deg - 1e-9)) + 0.5), 180.0)
    if len(lats) * len(lons) > MAX_GRID_SITES:
        raise InputError(f"{len(lats)} x {len(lons)} = {len(lats) * len(lons)} cells is more than "
                         f"{MAX_GRID_SITES}; use larger steps", field="--grid")
    return [Site(f"lat{lat:+.1f}_lon{lon:+.1f}", float(lat), float(lon)) for lat in lats for lon in lons]


def _gap_quantiles(gaps: np.ndarray) -> dict[str, float]:
    """Count, mean and quantiles (s) of gap lengths (NaN where there is none)."""
    if not len(gaps):
        return {"gaps": 0, "mean_s": math.nan, "p10_s": math.nan, "median_s": math.nan, "p90_s": math.nan,
                "max_s": math.nan}
    q10, q50, q90 = np.quantile(gaps, [0.1, 0.5, 0.9])
    return {"gaps": len(gaps), "mean_s": float(np.mean(gaps)), "p10_s": float(q10), "median_s": float(q50),
            "p90_s": float(q90), "max_s": float(np.max(gaps))}


def idle_tables(stats: IdleStats, sites: Sequence[Site]) -> dict[str, pd.DataFrame]:
    """The idle statistics as tables, for files and printing.

    Parameters
    ----------
    stats:
        From :func:`idle_statistics` over ``sites`` (same order).
    sites:
        The clusters (their coordinates go into ``idle_clusters``).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``idle_summary``: one row per scope (``no_cluster`` = gaps during which no cluster
        is connected, ``per_cluster`` = all clusters' gaps pooled) with the fractions of
        time with no, exactly one and several clusters connected and the gap counts and
        quantiles; ``idle_clusters``: :data:`IDLE_COLUMNS` plus ``lat_deg, lon_deg``;
        ``idle_gaps``: every gap (``scope, cluster, gap_s``); ``idle_gap_histogram``: gap
        counts per length bin (:data:`GAP_BIN_EDGES_S`) for both scopes.
    """
    pooled = np.concatenate([stats.gaps_s.get(s.name, np.empty(0)) for s in sites]) if sites else np.empty(0)
    fractions = {"duration_s": stats.duration_s, "clusters": len(sites), "fraction_none": stats.fraction_none,
                 "fraction_one": stats.fraction_one, "fraction_multiple": stats.fraction_multiple}
    summary = pd.DataFrame([{"scope": "no_cluster", **fractions, **_gap_quantiles(stats.gaps_none_s)},
                            {"scope": "per_cluster", **fractions, **_gap_quantiles(pooled)}])
    clusters = stats.per_cluster.assign(lat_deg=[s.lat_deg for s in sites], lon_deg=[s.lon_deg for s in sites])
    names = np.concatenate([np.full(len(stats.gaps_s.get(s.name, ())), s.name, dtype=object) for s in sites]
                           ) if sites else np.empty(0, dtype=object)
    gaps = pd.concat([
        pd.DataFrame({"scope": "no_cluster", "cluster": "", "gap_s": stats.gaps_none_s}),
        pd.DataFrame({"scope": "per_cluster", "cluster": names, "gap_s": pooled}),
    ], ignore_index=True).astype({"scope": str, "cluster": str, "gap_s": float})
    edges = np.array([*GAP_BIN_EDGES_S, np.inf])
    histogram = pd.DataFrame({
        "bin_start_s": edges[:-1],
        "bin_end_s": edges[1:],
        "no_cluster_gaps": np.histogram(stats.gaps_none_s, edges)[0],
        "per_cluster_gaps": np.histogram(pooled, edges)[0],
    })
    return {"idle_summary": summary, "idle_clusters": clusters, "idle_gaps": gaps, "idle_gap_histogram": histogram}
