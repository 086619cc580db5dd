"""Experiment 6: a timeline-only sweep of Walker shells over 100 clusters (idle fraction, uploads per day).

One Walker shell serves 100 clusters (2 devices each, a Fibonacci lattice between about
+-55 deg latitude) in constellation mode for 24 h with ``simulate: timeline``: the event
loop, strategies, link windows and uploads run, nothing is trained (no torch), so a point
takes seconds. The sweep block of ``scenarios/walker-timeline-sweep.yaml`` (planes x
altitude x inclination, 4 satellites per plane) runs through the real CLI,
``emsfl-sim sweep --workers N`` (process pool) and, if the ``ray`` package is importable,
again with ``--executor ray`` into a second folder; both wall times are reported and the
two tables compared. Per point and strategy: the idle fraction (share of the day with no
cluster connected), the mean per-cluster idle fraction (from the point's link table) and
the completed device uploads per simulated day.

Run: ``python experiments/exp6_walker_timeline.py [--full] [--out DIR] [--workers N] [--no-ray] [--fresh]``
(default: planes {2, 4, 6, 8} x altitude {550, 1200} km x inclination {53, 70, 87.9} deg = 24 points;
--full: planes {2, 4, 6, 8, 12} x {550, 800, 1200} km x {45, 53, 70, 87.9} deg = 60 points)
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from common import md_table, out_dir, parser, write_report  # noqa: E402
from expkit import SCENARIOS, STRATEGY_COLOURS, STRATEGY_LABELS, derived_scenario  # noqa: E402

from emsfl_sim.sweep import load_sweep_table  # noqa: E402

NAME = "walker-timeline-sweep"
PLANES = "constellation.walker.0.planes"
ALT = "constellation.walker.0.altitude_km"
INC = "constellation.walker.0.inclination_deg"
DAY_S = 86400.0
STRATEGIES = ("baseline", "emsfl", "emsfl_enhanced")
CLI = Path(sys.executable).with_name("emsfl-sim")


def run_cli_sweep(scenario: Path, folder: Path, workers: int, executor: str) -> tuple[float, str]:
    """``emsfl-sim sweep SCENARIO --out FOLDER --workers N --executor E``; wall time and its stderr log."""
    cmd = [str(CLI), "sweep", str(scenario), "--out", str(folder), "--workers", str(workers),
           "--executor", executor, "--no-progress"]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (folder.parent / f"sweep-{executor}.log").write_text(proc.stderr + "\n" + proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"emsfl-sim sweep ({executor}) exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    print(f"{executor}: {wall:.1f} s wall", flush=True)
    return wall, proc.stderr


def cluster_idle(folder: Path, point: str) -> float:
    """Mean over clusters of the share of the day a cluster has no link (from the point's link table)."""
    from emsfl_sim.orbits import idle_statistics
    from emsfl_sim.scenario import load_scenario

    pdir = folder / "points" / point
    links = pd.read_parquet(pdir / "links.parquet") if (pdir / "links.parquet").exists() else pd.read_csv(
        pdir / "links.csv")
    scenario = load_scenario(pdir / "scenario.yaml")
    clusters = [c.name for c in scenario.clusters]
    if links.empty:
        return 1.0
    stats = idle_statistics(links, clusters, scenario.time.duration_s)
    return float(stats.per_cluster["idle_fraction"].mean())


def tidy(folder: Path) -> pd.DataFrame:
    """One row per (point, strategy): swept values, idle fractions, uploads per day, rounds, uplink."""
    table = load_sweep_table(folder)
    bad = table[table["status"] != "ok"]
    if len(bad):
        raise SystemExit(f"{bad['point'].nunique()} points failed: {bad['error'].iloc[0]}")
    idle_by_point = {p: cluster_idle(folder, p) for p in table["point"].unique()}
    out = pd.DataFrame({
        "point": table["point"], "planes": table[PLANES].astype(int), "altitude_km": table[ALT].astype(float),
        "inclination_deg": table[INC].astype(float), "strategy": table["strategy"],
    })
    out["satellites"] = out["planes"] * 4
    out["idle_fraction"] = table["idle_fraction"].astype(float)
    out["cluster_idle_fraction"] = table["point"].map(idle_by_point)
    days = table["simulated_s"].astype(float) / DAY_S
    out["passes_per_day"] = table["passes"].astype(float) / days
    out["uploads_per_day"] = table["completed_uploads"].astype(float) / days
    out["aggregations_per_day"] = table["aggregations"].astype(float) / days
    out["local_rounds"] = table["local_rounds"].astype(int)
    out["uplink_mb"] = table["uplink_mb"].astype(float)
    out["uplink_mb_per_day"] = out["uplink_mb"] / days
    out["interrupted_uploads"] = table["interrupted_uploads"].astype(int)
    out["point_wall_s"] = table["point_wall_s"].astype(float)
    return out.sort_values(["inclination_deg", "altitude_km", "planes", "strategy"]).reset_index(drop=True)


def plot(res: pd.DataFrame, path: Path, title: str) -> None:
    """Rows: idle fraction, per-cluster idle fraction, uploads per day; columns: inclinations."""
    incs = sorted(res["inclination_deg"].unique())
    alts = sorted(res["altitude_km"].unique())
    styles = dict(zip(alts, ("-", "--", ":", "-."), strict=False))
    markers = dict(zip(alts, "osD^", strict=False))
    fig, axes = plt.subplots(3, len(incs), figsize=(4.6 * len(incs), 10.5), sharex=True, sharey="row", squeeze=False)
    shell = res.drop_duplicates("point")
    for j, inc in enumerate(incs):
        for alt in alts:
            sub = shell[(shell["inclination_deg"] == inc) & (shell["altitude_km"] == alt)].sort_values("planes")
            kw = {"color": "black", "ls": styles[alt], "marker": markers[alt], "label": f"{alt:g} km"}
            axes[0, j].plot(sub["planes"], sub["idle_fraction"], **kw)
            axes[1, j].plot(sub["planes"], sub["cluster_idle_fraction"], **kw)
            for strategy in STRATEGIES:
                s = res[(res["inclination_deg"] == inc) & (res["altitude_km"] == alt) & (res["strategy"] == strategy)]
                s = s.sort_values("planes")
                axes[2, j].plot(s["planes"], s["uploads_per_day"], color=STRATEGY_COLOURS[strategy],
                                ls=styles[alt], marker=markers[alt],
                                label=f"{STRATEGY_LABELS[strategy]}, {alt:g} km")
        axes[0, j].set_title(f"inclination {inc:g} deg", fontsize=10)
        axes[2, j].set_xlabel("planes (4 satellites each)")
        axes[2, j].set_xticks(sorted(res["planes"].unique()))
    axes[0, 0].set_ylabel("idle fraction\n(no cluster connected)")
    axes[1, 0].set_ylabel("mean per-cluster idle fraction\n(cluster has no link)")
    axes[2, 0].set_ylabel("completed device uploads per day")
    if (res["uploads_per_day"] > 0).all():
        axes[2, 0].set_yscale("log")
    else:  # a shell where a strategy never uploaded: keep the zeros visible
        axes[2, 0].set_yscale("symlog", linthresh=10)
        axes[2, 0].set_ylim(bottom=0)
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8)
    axes[2, -1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def same_results(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two executors' tables hold the same simulated numbers (wall times aside)."""
    cols = ["point", "strategy", "idle_fraction", "uploads_per_day", "local_rounds", "uplink_mb"]
    x = a[cols].sort_values(["point", "strategy"]).reset_index(drop=True)
    y = b[cols].sort_values(["point", "strategy"]).reset_index(drop=True)
    return x.equals(y)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-ray", action="store_true", help="skip the Ray run even if ray is importable")
    p.add_argument("--fresh", action="store_true", help="delete earlier sweep folders first (else finished "
                   "points are reused and the wall time covers only the rest)")
    args = p.parse_args()
    started = time.perf_counter()
    folder = out_dir(args, "exp6")
    workers = args.workers or 2
    if args.full:
        sweep = {"mode": "product", "parameters": {PLANES: [2, 4, 6, 8, 12], ALT: [550, 800, 1200],
                                                   INC: [45, 53, 70, 87.9]}}
        scenario = derived_scenario(NAME, folder, {"sweep": sweep})
    else:
        scenario = SCENARIOS / f"{NAME}.yaml"

    executors = ["process"]
    ray_note = ""
    if args.no_ray:
        ray_note = "Ray run skipped (--no-ray)."
    elif importlib.util.find_spec("ray") is None:
        ray_note = "Ray run skipped: the ray package is not importable (pip install 'ray[default]>=2.9')."
    else:
        executors.append("ray")
    walls: dict[str, float] = {}
    results: dict[str, pd.DataFrame] = {}
    for executor in executors:
        sdir = folder / f"sweep-{executor}"
        if args.fresh and sdir.exists():
            shutil.rmtree(sdir)
        walls[executor], log = run_cli_sweep(scenario, sdir, workers, executor)
        first = next((line for line in log.splitlines() if line.startswith("sweep ") and "points:" in line), "")
        print(first)
        results[executor] = tidy(sdir)
    if ray_note:
        print(ray_note)
    res = results["process"]
    res.to_csv(folder / "walker_timeline.csv", index=False)
    n_points = res["point"].nunique()
    clusters = 100
    plot(res, folder / "walker_timeline.png",
         f"{n_points} Walker shells (4 satellites per plane, phasing 1), constellation mode, {clusters} clusters x 2 "
         "devices, 25 deg mask, 24 h timeline, local round 150 s")

    # ---- findings ------------------------------------------------------------------------
    shell = res.drop_duplicates("point")
    lines = []
    lo, hi = shell.loc[shell["idle_fraction"].idxmin()], shell.loc[shell["idle_fraction"].idxmax()]
    lines.append(
        f"- Idle fraction (no cluster connected) ranges from {lo['idle_fraction']:.3f} "
        f"({lo['planes']} planes, {lo['altitude_km']:g} km, {lo['inclination_deg']:g} deg) to "
        f"{hi['idle_fraction']:.3f} ({hi['planes']} planes, {hi['altitude_km']:g} km, {hi['inclination_deg']:g} deg); "
        f"{int((shell['idle_fraction'] < 0.01).sum())} of {n_points} shells leave all 100 clusters without a link "
        "less than 1 % of the day.")
    lines.append(
        f"- Mean per-cluster idle fraction: {shell['cluster_idle_fraction'].min():.3f}-"
        f"{shell['cluster_idle_fraction'].max():.3f}; per altitude (mean over planes and inclinations) "
        + "; ".join(f"{a:g} km {v:.3f}" for a, v in shell.groupby("altitude_km")["cluster_idle_fraction"].mean().items())
        + "; per planes " + "; ".join(f"{int(k)}: {v:.3f}" for k, v in
                                      shell.groupby("planes")["cluster_idle_fraction"].mean().items()) + ".")
    up = res.pivot_table(index="planes", columns="strategy", values="uploads_per_day", aggfunc="mean")
    lines.append("- Completed device uploads per day (mean over altitudes and inclinations), by planes: " + "; ".join(
        f"{int(k)} planes: " + ", ".join(f"{s} {up.loc[k, s]:.0f}" for s in STRATEGIES if s in up.columns)
        for k in up.index) + ".")
    by_alt = res.pivot_table(index="altitude_km", columns="strategy", values="uploads_per_day", aggfunc="mean")
    lines.append("- By altitude: " + "; ".join(
        f"{a:g} km: " + ", ".join(f"{s} {by_alt.loc[a, s]:.0f}" for s in STRATEGIES if s in by_alt.columns)
        for a in by_alt.index) + " uploads per day.")
    by_inc = res.pivot_table(index="inclination_deg", columns="strategy", values="uploads_per_day", aggfunc="mean")
    lines.append("- By inclination: " + "; ".join(
        f"{i:g} deg: " + ", ".join(f"{s} {by_inc.loc[i, s]:.0f}" for s in STRATEGIES if s in by_inc.columns)
        for i in by_inc.index) + " uploads per day.")
    ratio = (res[res["strategy"] == "emsfl"].set_index("point")["uploads_per_day"]
             / res[res["strategy"] == "baseline"].set_index("point")["uploads_per_day"].replace(0, float("nan")))
    if ratio.notna().any():
        lines.append(f"- EMS-FL completes {ratio.min():.2f}-{ratio.max():.2f}x the baseline's device uploads per day "
                     f"(median {ratio.median():.2f}x). The baseline uploads after every 150 s round that fits in a "
                     "pass (all experts and the gate); EMS-FL trains its own expert between passes and uploads it, "
                     "then the gate, once per new link window.")
    mb = res.pivot_table(index="strategy", values="uplink_mb_per_day", aggfunc=["min", "max"])
    lines.append("- Uplink per day (MB, all devices): " + "; ".join(
        f"{s} {mb.loc[s].iloc[0]:.0f}-{mb.loc[s].iloc[1]:.0f}" for s in STRATEGIES if s in mb.index) + ".")
    timing = [f"- `emsfl-sim sweep --workers {workers}` (process pool): {walls['process']:.1f} s wall for "
              f"{n_points} points x {len(STRATEGIES)} strategies (sum of point wall times "
              f"{res.drop_duplicates('point')['point_wall_s'].sum():.1f} s; longest point "
              f"{res['point_wall_s'].max():.1f} s)."]
    if "ray" in walls:
        same = same_results(results["process"], results["ray"])
        timing.append(f"- `emsfl-sim sweep --workers {workers} --executor ray` (local Ray instance): "
                      f"{walls['ray']:.1f} s wall; same simulated numbers as the process pool: "
                      f"{'yes' if same else 'NO'}.")
    if ray_note:
        timing.append(f"- {ray_note}")
    timing.append("- Both sweeps reuse finished points on a rerun (pass `--fresh` to time a full run); the wall "
                  "times above are of this script's invocations (see `sweep-*.log` for how many points ran).")
    cols = ["planes", "altitude_km", "inclination_deg", "satellites", "idle_fraction", "cluster_idle_fraction",
            "passes_per_day"]
    per_day = res.pivot_table(index="point", columns="strategy", values="uploads_per_day")
    wide = shell[["point", *cols]].merge(per_day.add_suffix("_uploads_per_day"), left_on="point",
                                         right_index=True).drop(columns="point")
    write_report(folder, "Experiment 6: Walker shells, timeline-only sweep over 100 clusters", [
        "## Setup\n\n`experiments/scenarios/walker-timeline-sweep.yaml`: `simulate: timeline` (no training), 24 h "
        "orbital time from 2023-07-18, one Walker shell (4 satellites per plane, phasing 1) as the server "
        "constellation (`server.mode: constellation`, highest-elevation handover, 25 deg mask), 100 clusters x 2 "
        "devices on a Fibonacci lattice between about +-55 deg latitude, a fixed local round of 150 s, link budget "
        "of base-tiny, payloads of its tiny model with 100 experts (one per cluster; counted analytically), strategies baseline, EMS-FL and enhanced EMS-FL. Sweep: "
        + " x ".join(f"{k.rsplit('.', 1)[1]} {sorted(res[c].unique().tolist())}" for k, c in
                     ((PLANES, "planes"), (ALT, "altitude_km"), (INC, "inclination_deg")))
        + f" = {n_points} points. Idle fraction: share of the day with no cluster connected (`summary.json`); "
        "per-cluster idle fraction: mean over clusters of the share of the day a cluster has no link; uploads per "
        "day: completed device uploads / simulated days.",
        "## Wall time\n\n" + "\n".join(timing),
        "## Findings\n\n" + "\n".join(lines),
        "## Shells\n\n" + md_table(wide.reset_index(drop=True)),
        "![walker timeline sweep](walker_timeline.png)",
    ], started)


if __name__ == "__main__":
    main()
