"""Plots drawn from run directories (never from live objects)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

STRATEGY_COLOURS = {"baseline": "tab:gray", "emsfl": "tab:blue", "emsfl_enhanced": "tab:orange"}


def plot_accuracy(metrics: pd.DataFrame, path: str | Path, target: float | None = None) -> Path:
    """Accuracy vs simulated time (hours) and vs orbital cycles, one line per strategy."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for strategy, rows in metrics.groupby("strategy", sort=False):
        colour = STRATEGY_COLOURS.get(str(strategy))
        axes[0].plot(rows["time_s"] / 3600.0, rows["accuracy"], marker=".", label=strategy, color=colour)
        axes[1].plot(rows["cycle"], rows["accuracy"], marker=".", label=strategy, color=colour)
    for ax, xlabel in zip(axes, ("simulated time (h)", "orbital cycles"), strict=True):
        if target is not None:
            ax.axhline(target, color="k", ls=":", lw=1, label="target")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("global test accuracy")
    axes[1].legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_link_timeline(schedule: pd.DataFrame, events: pd.DataFrame, path: str | Path,
                       max_hours: float | None = None) -> Path:
    """Link windows per cluster (bars) with completed and interrupted uploads drawn on them."""
    clusters = list(dict.fromkeys(schedule["cluster"]))
    fig, ax = plt.subplots(figsize=(12, 1.0 + 0.6 * len(clusters)))
    for row, cluster in enumerate(clusters):
        win = schedule[schedule["cluster"] == cluster]
        ax.broken_barh(list(zip(win["start_s"] / 3600.0, win["duration_s"] / 3600.0, strict=True)),
                       (row - 0.35, 0.7), facecolors="tab:green", alpha=0.35)
        ev = events[events["cluster"] == cluster]
        done = ev[ev["event"] == "upload_complete"]
        cut = ev[ev["event"] == "upload_interrupted"]
        ax.plot(done["time_s"] / 3600.0, [row] * len(done), "k|", ms=12, label="upload complete" if row == 0 else None)
        ax.plot(cut["time_s"] / 3600.0, [row] * len(cut), "rx", ms=8, label="upload interrupted" if row == 0 else None)
    ax.set_yticks(range(len(clusters)), clusters)
    ax.set_xlabel("simulated time (h)")
    if max_hours:
        ax.set_xlim(0, max_hours)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("link windows (green) and uploads")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
