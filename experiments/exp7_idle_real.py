"""Experiment 7: idle time over the real Starlink and OneWeb snapshots (no cluster / each cluster without a link, gaps).

The TLE snapshots in ``../shared/tle`` (Starlink July 2023: 4428 satellites, 3058 of them in
the 53 deg shells at 540-570 km, 731 at 43 deg, 406 at 70 deg, 233 at 97.6 deg; OneWeb
December 2025: 651 satellites at 87.9 deg and 1200 km) serve the clusters of
``scenarios/starlink-idle-slots.yaml`` (europe 48.1 N, americas 39.7 N, asia 35.7 N) in
constellation mode: a cluster is connected while any satellite is above the 25 deg mask
(``experiments/scenarios/exp7-idle-real-*.yaml``, 24 h). For the full constellation and
subsets of it (the first N satellites of the file, as ``constellation.max_satellites``
keeps them, and every k-th satellite, spread over all planes) the script computes the
contact plan and the statistics of ``emsfl-sim idle``: the fraction of the day with no
cluster / exactly one / several connected, each cluster's idle fraction, the gap lengths,
and the same over a latitude-longitude grid of virtual clusters (``--grid``), whose
connected fraction per latitude row shows where each constellation covers best.

Run: ``python experiments/exp7_idle_real.py [--full] [--out DIR]``
(default: Starlink 12 / 48 / 192 / 768 satellites and all, OneWeb 12 / 48 / 192 and all, each
subset taken as the first N and as every k-th; the 3 clusters and a 10 x 30 deg grid of 216
virtual clusters; --full: also 24 / 96 / 384 / 1536 (Starlink) and 24 / 96 / 384 (OneWeb) and a
5 x 20 deg grid of 648). Needs ``../shared/tle`` next to the repository; without it the
script says so and exits 0. A rerun reuses the points already in ``--out``; ``--workers`` is
accepted and unused (one process: the contact plans are vectorised, the largest takes seconds).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import REPO, md_table, out_dir, parser, write_report  # noqa: E402

SHARED_TLE = REPO.parent / "shared" / "tle"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CONSTELLATIONS = {"starlink": "starlink-2023-07.tle", "oneweb": "oneweb-2025-12.tle"}
LABELS = {"starlink": "Starlink 2023-07", "oneweb": "OneWeb 2025-12"}
COLOURS = {"starlink": "tab:blue", "oneweb": "tab:red"}
SUBSET_STYLE = {"first": ("--", "s"), "every": ("-", "o")}


@dataclass(frozen=True)
class Point:
    """One measurement: a constellation, a subset of it and a cluster set."""

    constellation: str  # key of CONSTELLATIONS
    subset: str  # "all", "first" (the first N of the file) or "every" (every k-th)
    satellites: int | None  # N (None: all)
    grid: tuple[float, float] | None  # (lat step, lon step) of virtual clusters; None: the scenario's clusters
    mask_deg: float | None = None  # elevation mask; None: the scenario's (25 deg)

    @property
    def name(self) -> str:
        """Folder name, e.g. ``starlink-every192-grid10x30`` or ``oneweb-all-clusters-mask40``."""
        size = "" if self.satellites is None else str(self.satellites)
        sites = "clusters" if self.grid is None else f"grid{self.grid[0]:g}x{self.grid[1]:g}"
        mask = "" if self.mask_deg is None else f"-mask{self.mask_deg:g}"
        return f"{self.constellation}-{self.subset}{size}-{sites}{mask}"


def scenario_path(constellation: str) -> Path:
    """``experiments/scenarios/exp7-idle-real-<constellation>.yaml``."""
    return SCENARIOS / f"exp7-idle-real-{constellation}.yaml"


@lru_cache(maxsize=4)
def _scenario_and_records(constellation: str) -> tuple[Any, tuple[Any, ...]]:
    """The scenario and all its TLE records (loaded once per process)."""
    from emsfl_sim.scenario import load_scenario
    from emsfl_sim.sim.constellation import load_constellation

    scenario = load_scenario(scenario_path(constellation))
    return scenario, tuple(load_constellation(scenario))


def subset(records: Sequence[Any], kind: str, n: int | None) -> list[Any]:
    """All records, the first ``n`` or ``n`` spread evenly over the file (every k-th, k = len / n)."""
    if kind == "all" or n is None or n >= len(records):
        return list(records)
    if kind == "first":
        return list(records[:n])
    return [records[i] for i in (np.arange(n) * (len(records) / n)).astype(int)]


def idle_point(point: Point, duration_s: float | None = None,
               out: Path | None = None) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Contact plan and idle statistics of one point (the core of the experiment).

    Parameters
    ----------
    point
        Constellation, subset and clusters.
    duration_s
        Horizon (default: the scenario's, 24 h).
    out
        If given, the ``emsfl-sim idle`` tables (CSV) are written there.

    Returns
    -------
    tuple of (dict, dict of str to pandas.DataFrame)
        One summary row (see :func:`summary_row`) and the tables of
        :func:`emsfl_sim.orbits.idle.idle_tables`.
    """
    from emsfl_sim.orbits import Site, compute_contact_plan, idle_statistics, orbital_period_s
    from emsfl_sim.orbits.idle import grid_sites, idle_tables

    scenario, everything = _scenario_and_records(point.constellation)
    records = subset(everything, point.subset, point.satellites)
    sites = grid_sites(*point.grid) if point.grid else [
        Site(c.name, c.lat_deg, c.lon_deg, c.alt_m) for c in scenario.clusters]
    duration = float(duration_s or scenario.time.duration_s)
    mask = scenario.link.elevation_mask_deg if point.mask_deg is None else point.mask_deg
    t0 = time.perf_counter()
    plan = compute_contact_plan(records, sites, scenario.time.start_utc, duration, mask,
                                step_s=scenario.time.contact_step_s)
    period = float(np.median([orbital_period_s(r) for r in records]))
    stats = idle_statistics(plan.passes, [s.name for s in sites], duration, period)
    tables = idle_tables(stats, sites)
    row = summary_row(point, tables, len(records), len(plan.passes), duration)
    row["mask_deg"] = float(mask)
    row["wall_s"] = time.perf_counter() - t0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for stem, frame in tables.items():
            frame.to_csv(out / f"{stem}.csv", index=False)
        (out / "row.json").write_text(json.dumps(row, indent=1))
    return row, tables


def summary_row(point: Point, tables: dict[str, pd.DataFrame], n_sat: int, n_passes: int,
                duration_s: float) -> dict[str, Any]:
    """Fractions, per-cluster idle fractions (plain and area-weighted mean) and gap quantiles (minutes)."""
    summary = tables["idle_summary"].set_index("scope")
    clusters = tables["idle_clusters"]
    weights = np.cos(np.radians(clusters["lat_deg"].to_numpy(float)))
    idle = clusters["idle_fraction"].to_numpy(float)
    row: dict[str, Any] = {
        "constellation": point.constellation, "subset": point.subset, "satellites": n_sat,
        "sites": "clusters" if point.grid is None else "grid", "n_sites": len(clusters), "passes": n_passes,
        "hours": duration_s / 3600.0,
        "fraction_none": float(summary.loc["no_cluster", "fraction_none"]),
        "fraction_one": float(summary.loc["no_cluster", "fraction_one"]),
        "fraction_multiple": float(summary.loc["no_cluster", "fraction_multiple"]),
        "cluster_idle_mean": float(idle.mean()),
        "cluster_idle_area_mean": float(np.sum(weights * idle) / np.sum(weights)),
        "cluster_idle_min": float(idle.min()), "cluster_idle_max": float(idle.max()),
        "windows_per_cluster_day": float(clusters["passes"].mean() * 86400.0 / duration_s),
    }
    for scope, prefix in (("no_cluster", "none_gap"), ("per_cluster", "cluster_gap")):
        row[f"{prefix}s"] = int(summary.loc[scope, "gaps"])
        for q in ("mean", "median", "p90", "max"):
            value = float(summary.loc[scope, f"{q}_s"])
            row[f"{prefix}_{q}_min"] = value / 60.0 if math.isfinite(value) else math.nan
    return row


#: Masks (deg) of the extra full-constellation points (the scenario's 25 deg is the main one).
MASKS = (40.0, 55.0)


def points_of(full: bool) -> tuple[list[Point], tuple[float, float]]:
    """The points of the default or ``--full`` size and the grid they use."""
    grid = (5.0, 20.0) if full else (10.0, 30.0)
    sizes = {"starlink": [12, 24, 48, 96, 192, 384, 768], "oneweb": [12, 24, 48, 96, 192, 384]}
    masks = MASKS
    if full:
        sizes = {"starlink": [6, 12, 24, 48, 96, 192, 384, 768, 1536, 3000], "oneweb": [6, 12, 24, 48, 96, 192, 384]}
        masks = (*MASKS, 70.0)
    points = []
    for constellation, ns in sizes.items():
        for sites in (None, grid):
            points.append(Point(constellation, "all", None, sites))
            points += [Point(constellation, "all", None, sites, m) for m in masks]
            points += [Point(constellation, kind, n, sites) for kind in ("every", "first") for n in ns]
    return points, grid


def run_points(points: Sequence[Point], folder: Path) -> tuple[pd.DataFrame, dict[str, dict[str, pd.DataFrame]]]:
    """Every point (reusing ``points/<name>/row.json`` of an earlier run); rows and the tables by point name."""
    rows, tables = [], {}
    for i, point in enumerate(points, 1):
        pdir = folder / "points" / point.name
        if (pdir / "row.json").exists() and (pdir / "idle_clusters.csv").exists():
            row = json.loads((pdir / "row.json").read_text())
            tab = {stem: pd.read_csv(pdir / f"{stem}.csv", keep_default_na=False, na_values=[""])
                   for stem in ("idle_summary", "idle_clusters", "idle_gaps", "idle_gap_histogram")}
            tab["idle_gaps"]["cluster"] = tab["idle_gaps"]["cluster"].astype(str)
        else:
            row, tab = idle_point(point, out=pdir)
        print(f"[{i}/{len(points)}] {point.name}: {row['satellites']} satellites x {row['n_sites']} sites, "
              f"{row['passes']} passes, none {row['fraction_none']:.3f}, per-cluster idle "
              f"{row['cluster_idle_mean']:.3f} ({row['wall_s']:.1f} s)", flush=True)
        rows.append({"point": point.name, **row})
        tables[point.name] = tab
    return pd.DataFrame(rows), tables


def plot_plans(point: Point, folder: Path) -> None:
    """``connected_map.png`` and ``gap_histograms.png`` of one point's folder (as ``emsfl-sim idle`` draws them)."""
    from emsfl_sim.report.idle_plots import plot_connected_map, plot_gap_histograms

    pdir = folder / "points" / point.name
    clusters = pd.read_csv(pdir / "idle_clusters.csv")
    gaps = pd.read_csv(pdir / "idle_gaps.csv", keep_default_na=False, na_values=[""])
    mask = json.loads((pdir / "row.json").read_text())["mask_deg"]
    title = f"{LABELS[point.constellation]}, all satellites: {len(clusters)} sites, mask {mask:g} deg"
    plot_connected_map(clusters, pdir / "connected_map.png", title)
    plot_gap_histograms(gaps, pdir / "gap_histograms.png", title)


def plot_sizes(res: pd.DataFrame, path: Path) -> None:
    """Idle fractions and gap lengths vs constellation size, per constellation and subset kind."""
    panels = [("clusters", "fraction_none", "share of the day with none of\nthe 3 clusters connected"),
              ("clusters", "cluster_idle_mean", "mean idle fraction of a cluster\n(europe, americas, asia)"),
              ("grid", "cluster_idle_area_mean", "idle fraction of a grid cell\n(area-weighted mean over the globe)"),
              ("clusters", "cluster_gap_median_min", "median gap of a cluster (min)\n(p90 dotted)")]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    for ax, (sites, col, label) in zip(axes.ravel(), panels, strict=True):
        for constellation in CONSTELLATIONS:
            sub = res[(res["constellation"] == constellation) & (res["sites"] == sites)]
            for kind, (ls, marker) in SUBSET_STYLE.items():
                s = pd.concat([sub[sub["subset"] == kind], sub[sub["subset"] == "all"]]).sort_values("satellites")
                if s.empty:
                    continue
                ax.plot(s["satellites"], s[col], ls=ls, marker=marker, color=COLOURS[constellation],
                        label=f"{LABELS[constellation]}, {'every k-th' if kind == 'every' else 'first N'}")
                if col == "cluster_gap_median_min":
                    ax.plot(s["satellites"], s["cluster_gap_p90_min"], ls=":", marker=marker, ms=3,
                            color=COLOURS[constellation])
        ax.set_xscale("log")
        ax.set_xlabel("satellites")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1, 1].set_yscale("log")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Real snapshots, constellation mode, 25 deg mask, 24 h (the largest point of each line: all "
                 "satellites)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latitude_profile(res: pd.DataFrame, tables: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """Connected fraction per latitude row of the grid points (mean, min, max over longitudes)."""
    frames = []
    for _, r in res[res["sites"] == "grid"].iterrows():
        c = tables[r["point"]]["idle_clusters"]
        prof = c.groupby("lat_deg")["connected_fraction"].agg(["mean", "min", "max"]).reset_index()
        prof.columns = ["lat_deg", "connected_mean", "connected_min", "connected_max"]
        frames.append(prof.assign(constellation=r["constellation"], subset=r["subset"], satellites=r["satellites"],
                                  mask_deg=r["mask_deg"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_latitudes(prof: pd.DataFrame, base_mask: float, path: Path) -> None:
    """Connected fraction vs latitude: per size (every k-th, base mask) per constellation; all satellites per mask."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, constellation in zip(axes, CONSTELLATIONS, strict=False):
        sub = prof[(prof["constellation"] == constellation) & (prof["subset"] != "first")
                   & (prof["mask_deg"] == base_mask)]
        sizes = sorted(sub["satellites"].unique())
        for j, n in enumerate(sizes):
            s = sub[sub["satellites"] == n].sort_values("lat_deg")
            ax.plot(s["lat_deg"], s["connected_mean"], marker=".", color=cmap(j / max(1, len(sizes) - 1)),
                    label=f"{n}" + (" (all)" if j == len(sizes) - 1 else ""))
        ax.set_title(f"{LABELS[constellation]}, mask {base_mask:g} deg", fontsize=10)
        ax.legend(fontsize=7, title="satellites (every k-th)", title_fontsize=7)
    full = prof[prof["subset"] == "all"]
    styles = dict(zip(sorted(full["mask_deg"].unique()), ("-", "--", ":", "-."), strict=False))
    for (constellation, mask), s in full.groupby(["constellation", "mask_deg"]):
        s = s.sort_values("lat_deg")
        axes[2].plot(s["lat_deg"], s["connected_mean"], ls=styles[mask], marker=".", color=COLOURS[constellation],
                     label=f"{LABELS[constellation]}, {mask:g} deg")
    axes[2].set_title("all satellites, by elevation mask", fontsize=10)
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("latitude (deg)")
        ax.set_xticks(range(-90, 91, 30))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("connected fraction of a grid cell\n(mean over longitudes)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gap_cdf(res: pd.DataFrame, tables: dict[str, dict[str, pd.DataFrame]], base_mask: float,
                 path: Path) -> None:
    """The 3 clusters' gap lengths: 192 satellites (every k-th, base mask) and all satellites at the higher masks."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    named = res[res["sites"] == "clusters"]
    picks = named[((named["subset"] == "every") & (named["satellites"] == 192) & (named["mask_deg"] == base_mask))
                  | ((named["subset"] == "all") & (named["mask_deg"] != base_mask))]
    styles = dict(zip(sorted(picks["mask_deg"].unique()), ("--", "-", ":", "-."), strict=False))
    for _, r in picks.iterrows():
        gaps = tables[r["point"]]["idle_gaps"]
        g = np.sort(gaps.loc[gaps["scope"] == "per_cluster", "gap_s"].to_numpy(float)) / 60.0
        if not len(g):
            continue
        ax.step(g, np.arange(1, len(g) + 1) / len(g), where="post", color=COLOURS[r["constellation"]],
                ls=styles[r["mask_deg"]], label=f"{LABELS[r['constellation']]}, {r['satellites']} satellites, "
                f"{r['mask_deg']:g} deg ({len(g)} gaps)")
    ax.set_xscale("log")
    ax.set_xlabel("gap between a cluster's link windows (min)")
    ax.set_ylabel("cumulative share of gaps")
    ax.set_title("gaps of europe, americas, asia (pooled)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cluster_table(res: pd.DataFrame, tables: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """Per named cluster of every 3-cluster point: idle fraction, windows and gaps (minutes)."""
    frames = []
    for _, r in res[res["sites"] == "clusters"].iterrows():
        c = tables[r["point"]]["idle_clusters"]
        frames.append(pd.DataFrame({
            "constellation": r["constellation"], "subset": r["subset"], "satellites": r["satellites"],
            "mask_deg": r["mask_deg"], "cluster": c["cluster"], "lat_deg": c["lat_deg"],
            "idle_fraction": c["idle_fraction"], "windows": c["passes"], "mean_gap_min": c["mean_gap_s"] / 60.0,
            "median_gap_min": c["median_gap_s"] / 60.0, "max_gap_min": c["max_gap_s"] / 60.0}))
    return pd.concat(frames, ignore_index=True)


def _pct(x: float) -> str:
    """A fraction as a percentage with one decimal."""
    return f"{100.0 * x:.1f} %"


def _gaps_text(r: pd.Series) -> str:
    """'gaps median 1.0 / p90 4.0 / longest 9.0 min (12 gaps)' or 'connected all day'."""
    if not r["cluster_gaps"]:
        return "every cluster connected all day"
    return (f"a cluster's gaps median {r['cluster_gap_median_min']:.1f} / p90 {r['cluster_gap_p90_min']:.1f} / "
            f"longest {r['cluster_gap_max_min']:.1f} min ({r['cluster_gaps']} gaps)")


def _latitude_text(prof: pd.DataFrame, r: pd.Series) -> str:
    """Connected fraction per |latitude| row (north and south folded) of one grid point."""
    s = prof[(prof["constellation"] == r["constellation"]) & (prof["subset"] == r["subset"])
             & (prof["satellites"] == r["satellites"]) & (prof["mask_deg"] == r["mask_deg"])]
    lat = s.groupby(s["lat_deg"].abs())["connected_mean"].mean()
    rows = dict.fromkeys(lat.index[np.argmin(np.abs(lat.index - x))] for x in (0, 30, 45, 60, 75, 90))
    return ("connected fraction by |latitude| " + ", ".join(f"{x:g} deg {lat[x]:.2f}" for x in rows)
            + f" (best {lat.max():.2f} at {lat.idxmax():g} deg)")


def full_findings(res: pd.DataFrame, clusters: pd.DataFrame, prof: pd.DataFrame) -> list[str]:
    """Sentences on the full constellations, per mask."""
    lines = []
    for c in CONSTELLATIONS:
        full = res[(res["constellation"] == c) & (res["subset"] == "all")]
        for mask, group in full.groupby("mask_deg"):
            by = group.set_index("sites")
            a = by.loc["clusters"]
            per = clusters[(clusters["constellation"] == c) & (clusters["subset"] == "all")
                           & (clusters["mask_deg"] == mask)]
            text = (f"- **{LABELS[c]}, all {a['satellites']} satellites, mask {mask:g} deg**: none of the 3 clusters "
                    f"connected {_pct(a['fraction_none'])} of the day, exactly one {_pct(a['fraction_one'])}, several "
                    f"{_pct(a['fraction_multiple'])}; idle " + ", ".join(
                        f"{r.cluster} {_pct(r.idle_fraction)}" for r in per.itertuples()) + f"; {_gaps_text(a)}.")
            if "grid" in by.index:
                g = by.loc["grid"]
                text += (f" Grid ({g['n_sites']} cells): area-weighted idle {_pct(g['cluster_idle_area_mean'])}, "
                         f"cells {_pct(g['cluster_idle_min'])}-{_pct(g['cluster_idle_max'])}; "
                         f"{_latitude_text(prof, g)}.")
            lines.append(text)
    return lines


def size_findings(res: pd.DataFrame, base_mask: float) -> list[str]:
    """Sentences on the subsets (base mask): idle fractions by size, first N vs every k-th, the two constellations."""
    lines = []
    named = res[(res["sites"] == "clusters") & (res["mask_deg"] == base_mask)]
    for c in CONSTELLATIONS:
        s = named[named["constellation"] == c]
        parts = []
        for n in sorted(s.loc[s["subset"] != "all", "satellites"].unique()):
            e = s[(s["subset"] == "every") & (s["satellites"] == n)].iloc[0]
            f = s[(s["subset"] == "first") & (s["satellites"] == n)].iloc[0]
            parts.append(f"{n}: {e['fraction_none']:.3f} / {e['cluster_idle_mean']:.3f} "
                         f"(first {n}: {f['fraction_none']:.3f} / {f['cluster_idle_mean']:.3f})")
        lines.append(f"- {LABELS[c]} by size at {base_mask:g} deg, every k-th satellite (first N in brackets), share "
                     "of the day with none of the 3 clusters connected / mean idle fraction of a cluster: "
                     + "; ".join(parts) + ".")
    every = named[named["subset"] == "every"]
    common = sorted(set(every.loc[every["constellation"] == "starlink", "satellites"])
                    & set(every.loc[every["constellation"] == "oneweb", "satellites"]))
    for n in common[-3:]:
        sl = every[(every["constellation"] == "starlink") & (every["satellites"] == n)].iloc[0]
        ow = every[(every["constellation"] == "oneweb") & (every["satellites"] == n)].iloc[0]
        lines.append(
            f"- Same size, {n} satellites (every k-th, {base_mask:g} deg): a cluster is idle "
            f"{_pct(sl['cluster_idle_mean'])} of the day with Starlink (median gap {sl['cluster_gap_median_min']:.1f} "
            f"min, p90 {sl['cluster_gap_p90_min']:.1f} min), {_pct(ow['cluster_idle_mean'])} with OneWeb (median "
            f"{ow['cluster_gap_median_min']:.1f} min, p90 {ow['cluster_gap_p90_min']:.1f} min); none of the 3 clusters "
            f"connected {_pct(sl['fraction_none'])} vs {_pct(ow['fraction_none'])}.")
    return lines


def main() -> int:
    """Run the points, write the tables, figures and report."""
    args = parser(__doc__.splitlines()[0]).parse_args()
    missing = [SHARED_TLE / f for f in CONSTELLATIONS.values() if not (SHARED_TLE / f).exists()]
    if missing:
        print(f"exp7 skipped: {', '.join(map(str, missing))} not found (the real TLE snapshots live in "
              "../shared/tle next to the repository and are not part of it)")
        return 0
    started = time.perf_counter()
    folder = out_dir(args, "exp7-idle-real")
    points, grid = points_of(args.full)
    res, tables = run_points(points, folder)
    for point in points:
        if point.subset == "all":
            plot_plans(point, folder)
    prof = latitude_profile(res, tables)
    clusters = cluster_table(res, tables)
    res.to_csv(folder / "idle_real.csv", index=False)
    prof.to_csv(folder / "latitude_profile.csv", index=False)
    clusters.to_csv(folder / "clusters.csv", index=False)
    base_mask = float(_scenario_and_records("starlink")[0].link.elevation_mask_deg)
    base = res[res["mask_deg"] == base_mask]
    plot_sizes(base, folder / "idle_vs_size.png")
    plot_latitudes(prof, base_mask, folder / "latitude_profile.png")
    plot_gap_cdf(res, tables, base_mask, folder / "gap_cdf.png")
    cols = ["constellation", "subset", "satellites", "mask_deg", "passes", "fraction_none", "fraction_one",
            "fraction_multiple", "cluster_idle_mean", "cluster_gap_median_min", "cluster_gap_p90_min",
            "cluster_gap_max_min", "none_gap_median_min", "none_gap_max_min", "windows_per_cluster_day"]
    order = ["constellation", "mask_deg", "subset", "satellites"]
    named = res[res["sites"] == "clusters"].sort_values(order)
    gridded = res[res["sites"] == "grid"].sort_values(order)
    gcols = ["constellation", "subset", "satellites", "mask_deg", "n_sites", "passes", "cluster_idle_area_mean",
             "cluster_idle_min", "cluster_idle_max", "cluster_gap_median_min", "cluster_gap_p90_min", "wall_s"]
    full_prof = prof[prof["subset"] == "all"].pivot_table(index="lat_deg", columns=["constellation", "mask_deg"],
                                                          values="connected_mean")
    full_prof.columns = [f"{c} {m:g} deg" for c, m in full_prof.columns]
    extra_masks = sorted({p.mask_deg for p in points if p.mask_deg is not None})
    per_cluster = clusters[(clusters["subset"] == "all") | ((clusters["subset"] == "every")
                                                           & clusters["satellites"].isin([48, 192]))]
    write_report(folder, "Experiment 7: idle time over the real Starlink and OneWeb snapshots", [
        "## Setup\n\n`experiments/scenarios/exp7-idle-real-{starlink,oneweb}.yaml` (extending "
        "`scenarios/starlink-idle-slots.yaml`): the TLE snapshot from `../shared/tle` (Starlink from "
        "2023-07-18 00:00 UTC, OneWeb from 2025-12-22 12:00 UTC, near their epochs), constellation mode (a "
        f"cluster is connected while any satellite is above the mask), {base_mask:g} deg mask (the full "
        f"constellations also at {', '.join(f'{m:g}' for m in extra_masks)} deg), 24 h, contact-plan step 60 s. "
        "Clusters: europe (48.1 N, 11.6 E), americas (39.7 N, 105.0 W), asia (35.7 N, 139.7 E), and a "
        f"{grid[0]:g} x {grid[1]:g} deg grid of virtual clusters (`emsfl-sim idle --grid`). Subsets: the first N "
        "satellites of the file (`constellation.max_satellites`; consecutive TLEs are mostly one launch, so "
        "they share a few planes) and every k-th satellite (k = total / N, spread over the planes and shells). "
        "A gap is the time between two of a cluster's merged link windows (leading and trailing idle time "
        "included).",
        "## Findings\n\n" + "\n".join(full_findings(res, clusters, prof) + size_findings(res, base_mask)),
        "## 3 clusters\n\n" + md_table(named[cols]),
        "## Per cluster (all satellites; 48 and 192, every k-th)\n\n" + md_table(per_cluster.sort_values(
            ["constellation", "mask_deg", "satellites", "cluster"])),
        f"## Grid ({grid[0]:g} x {grid[1]:g} deg)\n\n" + md_table(gridded[gcols]),
        "## Connected fraction per latitude row, all satellites\n\n" + md_table(full_prof.reset_index()),
        "## Notes\n\nThe statistics are those of `emsfl-sim idle` (`emsfl_sim.orbits.idle`) on the contact plan "
        "of the subset; each point's tables are in `points/<name>/` (`idle_summary`, `idle_clusters`, "
        "`idle_gaps`, `idle_gap_histogram`), with `connected_map.png` and `gap_histograms.png` for the full "
        "constellations. All tables: `idle_real.csv` (one row per point), `clusters.csv`, "
        "`latitude_profile.csv`. The area-weighted grid mean weights each cell by cos(latitude). Geometry "
        "only: a link window is any satellite above the mask, whatever its link budget or the server's "
        "handover. One day from one snapshot; Starlink's 2023 shells (43, 53, 70, 97.6 deg) differ from "
        "today's.",
        "![sizes](idle_vs_size.png)\n\n![latitudes](latitude_profile.png)\n\n![gaps](gap_cdf.png)",
    ], started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
