"""Timeline plot of passes or link windows (clusters as rows, bars coloured by max elevation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def plot_timeline(
    windows_or_passes: pd.DataFrame,
    path: str | Path,
    color_column: str = "max_elevation_deg",
    clusters: list[str] | None = None,
    time_unit: str = "h",
    title: str | None = None,
) -> Path:
    """Draw a timeline PNG (or any format matplotlib infers from ``path``).

    Parameters
    ----------
    windows_or_passes:
        A pass table (``rise_s``/``set_s``) or link windows (``start_s``/``end_s``),
        with a ``cluster`` column.
    path:
        Output file.
    color_column:
        Column mapped to colour (default max elevation); bars are grey if absent.
    clusters:
        Row order (default: order of first appearance).
    time_unit:
        ``"h"``, ``"min"`` or ``"s"`` for the x axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = windows_or_passes
    start_col, end_col = ("rise_s", "set_s") if "rise_s" in df.columns else ("start_s", "end_s")
    scale = {"h": 3600.0, "min": 60.0, "s": 1.0}[time_unit]
    rows = clusters if clusters is not None else list(dict.fromkeys(df["cluster"]))
    fig_h = max(2.0, 0.35 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(12, fig_h))
    has_colour = color_column in df.columns and len(df) > 0
    if has_colour:
        values = df[color_column].to_numpy(dtype=float)
        norm = matplotlib.colors.Normalize(
            vmin=float(np.nanmin(values)), vmax=max(float(np.nanmax(values)), float(np.nanmin(values)) + 1e-6)
        )
        cmap = matplotlib.colormaps["viridis"]
    for i, c in enumerate(rows):
        sel = df["cluster"] == c
        if not sel.any():
            continue
        sub = df.loc[sel]
        spans = list(
            zip(
                sub[start_col].to_numpy() / scale,
                (sub[end_col] - sub[start_col]).to_numpy() / scale,
                strict=True,
            )
        )
        colours = cmap(norm(sub[color_column].to_numpy(dtype=float))) if has_colour else "0.5"
        ax.broken_barh(spans, (i - 0.4, 0.8), facecolors=colours)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel(f"time since scenario start [{time_unit}]")
    ax.set_ylabel("cluster")
    if title:
        ax.set_title(title)
    if has_colour:
        sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=ax, label=color_column.replace("_deg", " [deg]").replace("_", " "))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
