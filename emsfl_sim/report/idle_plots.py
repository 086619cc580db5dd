"""Plots of idle statistics, drawn from the tables ``emsfl-sim idle`` writes (through results/).

- ``connected_map.png``: connected fraction per cluster on a latitude-longitude map
  (cells for a full grid of virtual clusters, points otherwise);
- ``gap_histograms.png``: lengths of the gaps during which no cluster is connected and
  of each cluster's gaps between its windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emsfl_sim.results.tables import read_table


def _edges(centres: np.ndarray, low: float, high: float) -> np.ndarray:
    """Cell edges around sorted cell centres, clipped to ``[low, high]``."""
    mids = 0.5 * (centres[1:] + centres[:-1])
    first = centres[0] - (mids[0] - centres[0]) if len(mids) else low
    last = centres[-1] + (centres[-1] - mids[-1]) if len(mids) else high
    return np.clip(np.concatenate(([first], mids, [last])), low, high)


def plot_connected_map(clusters: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Connected fraction per cluster over latitude and longitude.

    Parameters
    ----------
    clusters
        ``idle_clusters`` table: ``cluster, connected_fraction, lat_deg, lon_deg``.
    path
        Output image.
    title
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.2))
    vmax = max(float(clusters["connected_fraction"].max()), 1e-3) if len(clusters) else 1.0
    grid = clusters.pivot_table(index="lat_deg", columns="lon_deg", values="connected_fraction")
    mesh: Any
    if len(clusters) > 3 and grid.size == len(clusters) and not grid.isna().to_numpy().any():
        lat, lon = grid.index.to_numpy(float), grid.columns.to_numpy(float)
        mesh = ax.pcolormesh(_edges(lon, -180.0, 180.0), _edges(lat, -90.0, 90.0), grid.to_numpy(),
                             cmap="viridis", vmin=0.0, vmax=vmax, shading="flat")
    else:
        mesh = ax.scatter(clusters["lon_deg"], clusters["lat_deg"], c=clusters["connected_fraction"],
                          cmap="viridis", vmin=0.0, vmax=vmax, s=80, edgecolors="k")
        for row in clusters.itertuples(index=False):
            ax.annotate(str(row.cluster), (row.lon_deg, row.lat_deg), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    fig.colorbar(mesh, ax=ax, label="connected fraction of time")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.set_title(title or "connected fraction per cluster")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_gap_histograms(gaps: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Histograms of gap lengths (minutes): no cluster connected, and per cluster (pooled).

    Parameters
    ----------
    gaps
        ``idle_gaps`` table: ``scope`` (``no_cluster`` or ``per_cluster``), ``gap_s``.
    path
        Output image.
    title
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (scope, label) in zip(axes, (("no_cluster", "gaps with no cluster connected"),
                                         ("per_cluster", "gaps between a cluster's windows (all clusters)")),
                                  strict=True):
        minutes = gaps.loc[gaps["scope"] == scope, "gap_s"].to_numpy(float) / 60.0
        if len(minutes):
            ax.hist(minutes, bins=min(50, max(5, len(minutes) // 5)), color="tab:blue", alpha=0.8)
            ax.axvline(float(np.median(minutes)), color="k", ls=":", lw=1, label=f"median {np.median(minutes):.1f} min")
            ax.legend(loc="upper right", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no gaps", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{label} (n = {len(minutes)})", fontsize=9)
        ax.set_xlabel("gap length (min)")
        ax.set_ylabel("gaps")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_idle_directory(directory: str | Path, title: str | None = None) -> list[Path]:
    """Both plots of an idle-statistics directory, from its ``idle_clusters`` and ``idle_gaps`` tables."""
    directory = Path(directory)
    return [
        plot_connected_map(read_table(directory / "idle_clusters"), directory / "connected_map.png", title),
        plot_gap_histograms(read_table(directory / "idle_gaps"), directory / "gap_histograms.png", title),
    ]
