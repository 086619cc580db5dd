"""Plots drawn from run directories (never from live objects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from emsfl_sim.strategies import REGISTRY  # noqa: E402

#: each registered strategy's declared colour (``Strategy.colour``)
STRATEGY_COLOURS = {name: cls.colour for name, cls in REGISTRY.items()}


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
                       max_hours: float | None = None, strategy: str | None = None) -> Path:
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
    ax.set_title("link windows (green) and uploads" + (f" of {strategy}" if strategy else ""))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _axis_values(values: pd.Series) -> tuple[pd.Series, list[str] | None]:
    """Numeric x values, or category positions with their labels when the values are not numbers."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric, None
    labels = list(dict.fromkeys(values.astype(str)))
    return values.astype(str).map({label: i for i, label in enumerate(labels)}), labels


def plot_sweep_metrics(table: pd.DataFrame, parameter: str, metrics: dict[str, str], path: str | Path) -> Path:
    """Each metric vs one swept parameter, one line per strategy.

    Points that share the parameter value (other parameters, seeds) are averaged;
    error bars are their standard deviation. ``metrics`` maps column -> axis label.
    Missing values (e.g. target not reached) are left out of the mean.
    """
    ok = table[table["status"] == "ok"] if "status" in table.columns else table
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    x_all, labels = _axis_values(ok[parameter]) if len(ok) else (ok[parameter], None)
    for ax, (metric, label) in zip(axes[0], metrics.items(), strict=True):
        for strategy, rows in ok.assign(_x=x_all).groupby("strategy", sort=False):
            y = pd.to_numeric(rows[metric], errors="coerce")
            stats = y.groupby(rows["_x"]).agg(["mean", "std", "count"]).sort_index()
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0.0), marker="o", capsize=3,
                        label=str(strategy), color=STRATEGY_COLOURS.get(str(strategy)))
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=20)
        elif len(x_all) and x_all.min() > 0 and x_all.max() / x_all.min() >= 20:
            ax.set_xscale("log")  # learning rates, Dirichlet alphas: decades apart
        ax.set_xlabel(parameter)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_metric_scatter(table: pd.DataFrame, x: str, y: str, path: str | Path, xlabel: str | None = None,
                        ylabel: str | None = None) -> Path:
    """One metric against another over all sweep points, one colour per strategy."""
    ok = table[table["status"] == "ok"] if "status" in table.columns else table
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, rows in ok.groupby("strategy", sort=False):
        ax.scatter(pd.to_numeric(rows[x], errors="coerce"), pd.to_numeric(rows[y], errors="coerce"),
                   label=str(strategy), color=STRATEGY_COLOURS.get(str(strategy)), alpha=0.8)
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_sweep_accuracy(metrics: pd.DataFrame, path: str | Path, target: float | None = None) -> Path:
    """Accuracy vs orbital cycles of every sweep point (column ``point``), one colour per strategy."""
    fig, ax = plt.subplots(figsize=(7, 4))
    seen: set[str] = set()
    for (_, strategy), rows in metrics.groupby(["point", "strategy"], sort=False):
        name = str(strategy)
        ax.plot(rows["cycle"], rows["accuracy"], color=STRATEGY_COLOURS.get(name), alpha=0.5, lw=1,
                label=None if name in seen else name)
        seen.add(name)
    path = Path(path)
    _finish_cycle_axes(fig, ax, target, "global test accuracy", path)
    return path


def plot_accuracy_band(metrics: pd.DataFrame, path: str | Path, target: float | None = None) -> None:
    """Mean accuracy over seeds vs orbital cycles with a shaded 95 % band, one colour per strategy.

    Parameters
    ----------
    metrics:
        The metrics tables of the seeds concatenated, with columns ``strategy``,
        ``seed``, ``cycle`` and ``accuracy``.
    path:
        The PNG file to write.
    target:
        Target accuracy, drawn as a dashed line.

    Notes
    -----
    At each cycle (rounded to 1e-6 so that seeds line up) the band is the
    Student-t interval ``mean -+ t.ppf(0.975, n-1) * std(ddof=1) / sqrt(n)``
    over the ``n`` seeds evaluated there; cycles with one seed have no band.
    """
    import numpy as np
    from scipy import stats

    fig, ax = plt.subplots(figsize=(7, 4))
    for strategy, rows in metrics.groupby("strategy", sort=False):
        name = str(strategy)
        colour = STRATEGY_COLOURS.get(name)
        accuracy = pd.to_numeric(rows["accuracy"], errors="coerce")
        cycle = pd.to_numeric(rows["cycle"], errors="coerce").round(6)
        per_cycle = accuracy.groupby(cycle).agg(["mean", "std", "count"]).sort_index()
        n = per_cycle["count"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
            half = t * per_cycle["std"].to_numpy(dtype=float) / np.sqrt(n)
        mean = per_cycle["mean"].to_numpy(dtype=float)
        seeds = rows["seed"].nunique()
        line = ax.plot(per_cycle.index, mean, marker=".", color=colour,
                       label=f"{name} (n={seeds} seed{'s' if seeds != 1 else ''})")[0]
        ax.fill_between(per_cycle.index, mean - half, mean + half, color=line.get_color(), alpha=0.2, lw=0)
    _finish_cycle_axes(fig, ax, target, "global test accuracy (mean over seeds, 95 % CI)", Path(path))


def _finish_cycle_axes(fig: Any, ax: Any, target: float | None, ylabel: str, path: Path) -> None:
    """Target line, labels, grid and legend of an accuracy-vs-cycles plot; save and close it."""
    if target is not None:
        ax.axhline(target, color="k", ls=":", lw=1, label="target")
    ax.set_xlabel("orbital cycles")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
