"""The plots of one run directory (accuracy, link timeline) and of a multi-seed directory."""

from __future__ import annotations

from pathlib import Path

from emsfl_sim.report.plots import plot_accuracy, plot_accuracy_band, plot_link_timeline
from emsfl_sim.results import has_table, read_table
from emsfl_sim.run.seeds import seed_metrics


def plot_run_directory(directory: str | Path, target: float | None = None) -> list[Path]:
    """Write ``accuracy.png`` and ``links.png`` from the tables of a run directory (Parquet or CSV).

    Parameters
    ----------
    directory
        A run directory (``links`` and ``<strategy>/metrics``/``events`` tables).
    target
        The target accuracy line, if any.

    Returns
    -------
        The plots written.
    """
    import pandas as pd

    directory = Path(directory)
    strategies = sorted(p.parent.name for p in directory.glob("*/summary.json"))
    written = []
    metrics = [read_table(directory / s / "metrics") for s in strategies if has_table(directory / s / "metrics")]
    metrics = [m for m in metrics if len(m)]
    if metrics:
        written.append(plot_accuracy(pd.concat(metrics), directory / "accuracy.png", target))
    with_events = [s for s in strategies if has_table(directory / s / "events")]
    if has_table(directory / "links") and with_events:
        shown = "emsfl" if "emsfl" in with_events else with_events[-1]
        written.append(plot_link_timeline(read_table(directory / "links"), read_table(directory / shown / "events"),
                                          directory / "links.png", strategy=shown))
    return written


def plot_seeds_directory(directory: str | Path, target: float | None = None) -> Path | None:
    """Write ``accuracy_seeds.png`` (mean and 95 % band over seeds) and each seed's run plots.

    Parameters
    ----------
    directory
        A multi-seed directory (``seeds_comparison`` table and ``seed-N/`` runs).
    target
        The target accuracy line, if any.

    Returns
    -------
        The band plot, or None when no seed has metrics.
    """
    directory = Path(directory)
    if not has_table(directory / "seeds_comparison"):
        return None
    per_seed = read_table(directory / "seeds_comparison")
    for seed in sorted(set(per_seed["seed"])):
        plot_run_directory(directory / f"seed-{seed}", target)
    metrics = seed_metrics(directory, per_seed)
    if not len(metrics):
        return None
    path = directory / "accuracy_seeds.png"
    plot_accuracy_band(metrics, path, target)
    return path
