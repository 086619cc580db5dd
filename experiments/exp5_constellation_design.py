"""Experiment 5: constellation design (altitude, inclination, planes) vs passes, pass volume and accuracy.

Two parts:

- a contact-plan grid (no learning, cheap): Walker shells of several altitudes,
  inclinations and numbers of planes serve the 3 clusters for 24 h in constellation mode;
  per shell the passes per cluster per day, the mean pass length, the mean pass volume
  (MB per device, the link budget integrated through each pass) and the idle fraction;
- a few learning runs (the scenario's sweep block: altitude x inclination at 4 planes),
  6 h each: time to target accuracy of the baseline and EMS-FL.

Run: ``python experiments/exp5_constellation_design.py [--full] [--out DIR] [--workers N]``
(default: 3 altitudes x 3 inclinations x 3 plane counts = 27 shells, 4 learning runs;
--full: 4 x 4 x 4 = 64 shells, 8 learning runs (planes 2 and 4))
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ProcessPoolExecutor

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from common import md_table, out_dir, parser, write_report  # noqa: E402
from expkit import (  # noqa: E402
    SCENARIOS,
    STRATEGY_COLOURS,
    STRATEGY_LABELS,
    derived_scenario,
    hours,
    ratio_text,
    sweep_uncached,
)

from emsfl_sim.orbits import idle_statistics  # noqa: E402
from emsfl_sim.scenario import apply_overrides, resolve_raw, validate_raw  # noqa: E402

ALT = "constellation.walker.0.altitude_km"
INC = "constellation.walker.0.inclination_deg"
PLANES = "constellation.walker.0.planes"
DAY_S = 86400.0


def plan_row(args: tuple[float, float, int]) -> dict:
    """Link-schedule numbers of one shell over one day (runs in a worker process)."""
    from emsfl_sim.sim.schedule import build_schedule

    altitude, inclination, planes = args
    raw = resolve_raw(SCENARIOS / "exp5-constellation-design.yaml")
    raw.pop("sweep", None)
    raw = apply_overrides(raw, {ALT: altitude, INC: inclination, PLANES: planes,
                                "constellation.walker.0.phasing": 1 if planes > 1 else 0,
                                "time.duration_s": DAY_S})
    scenario = validate_raw(raw)
    t0 = time.perf_counter()
    schedule = build_schedule(scenario)
    table = schedule.table()
    clusters = [c.name for c in scenario.clusters]
    row = {"altitude_km": altitude, "inclination_deg": inclination, "planes": planes,
           "satellites": planes * scenario.constellation.walker[0].sats_per_plane,
           "orbital_period_min": schedule.cycle_s / 60}
    if table.empty:  # a shell that never rises above the mask over the clusters
        return {**row, "passes_per_cluster_day": 0.0, "mean_pass_s": float("nan"), "mean_pass_mb": float("nan"),
                "mb_per_cluster_day": 0.0, "idle_fraction": 1.0, "clusters_without_pass": len(clusters),
                "build_s": time.perf_counter() - t0}
    stats = idle_statistics(table, clusters, schedule.duration_s)
    per_cluster = table.groupby("cluster").size().reindex(clusters, fill_value=0)
    return {**row, "passes_per_cluster_day": float(per_cluster.mean()) * DAY_S / schedule.duration_s,
            "mean_pass_s": float(table["duration_s"].mean()),
            "mean_pass_mb": float(table["bytes_per_device"].mean()) / 1e6,
            "mb_per_cluster_day": float(table["bytes_per_device"].sum()) / 1e6 / len(clusters),
            "idle_fraction": stats.fraction_none, "clusters_without_pass": int((per_cluster == 0).sum()),
            "build_s": time.perf_counter() - t0}


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    folder = out_dir(args, "exp5_constellation_design")
    altitudes, inclinations, plane_counts = [550.0, 800.0, 1200.0], [53.0, 70.0, 87.9], [1, 2, 4]
    learn: dict = {"mode": "product", "parameters": {ALT: [550, 1200], INC: [53, 87.9]}}
    if args.full:
        altitudes, inclinations, plane_counts = [450.0, 550.0, 800.0, 1200.0], [45.0, 53.0, 70.0, 87.9], [1, 2, 4, 8]
        learn = {"mode": "product", "parameters": {ALT: [550, 1200], INC: [53, 87.9], PLANES: [2, 4]}}

    # ---- contact-plan grid ----------------------------------------------------------
    grid = list(itertools.product(altitudes, inclinations, plane_counts))
    with ProcessPoolExecutor(max_workers=args.workers or 2) as pool:
        plans = pd.DataFrame(list(pool.map(plan_row, grid)))
    plans.to_csv(folder / "contact_plans.csv", index=False)
    print(f"contact-plan grid: {len(plans)} shells in {plans['build_s'].sum():.0f} s of schedule building")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    markers = dict(zip(plane_counts, "os^D", strict=False))
    colours = dict(zip(inclinations, ("tab:blue", "tab:green", "tab:red", "tab:purple"), strict=False))
    for (inc, planes), sub in plans.groupby(["inclination_deg", "planes"]):
        sub = sub.sort_values("altitude_km")
        kw = {"color": colours[inc], "marker": markers[planes], "label": f"{inc:g} deg, {planes} planes"}
        axes[0].plot(sub["altitude_km"], sub["passes_per_cluster_day"], **kw)
        axes[1].plot(sub["altitude_km"], sub["mean_pass_mb"], **kw)
        axes[2].plot(sub["altitude_km"], sub["idle_fraction"], **kw)
    for ax, label in zip(axes, ("passes per cluster per day", "mean pass volume (MB per device)",
                                "idle fraction (no cluster connected)"), strict=True):
        ax.set_xlabel("altitude (km)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=7, ncol=1, loc="best")
    fig.suptitle("Walker shells (1 satellite per plane), 3 clusters at 36-48 N, 25 deg mask, 24 h", fontsize=10)
    fig.tight_layout()
    fig.savefig(folder / "contact_plan_grid.png", dpi=110)
    plt.close(fig)

    # ---- learning runs ----------------------------------------------------------------
    ldir = folder / "learning"
    ldir.mkdir(exist_ok=True)
    # orbital: run_sweep cannot cache orbital schedules yet (see expkit.sweep_uncached)
    table = sweep_uncached(derived_scenario("exp5-constellation-design", ldir, {"sweep": learn}), ldir, args.workers)
    ok = table[table["status"] == "ok"]
    target = float(ok["target_accuracy"].iloc[0])
    horizon = float(ok["simulated_s"].iloc[0])
    keys = [k for k in (ALT, INC, PLANES) if k in ok.columns]
    rows = []
    for values, group in ok.groupby(keys):
        by = group.set_index("strategy")
        values = values if isinstance(values, tuple) else (values,)
        named = dict(zip([k.rsplit(".", 1)[1] for k in keys], values, strict=True))
        named.setdefault("planes", 4)
        rows.append({**named, "idle_fraction": by.loc["emsfl", "idle_fraction"], "passes": by.loc["emsfl", "passes"],
                     "baseline_t_h": by.loc["baseline", "time_to_target_s"] / 3600,
                     "emsfl_t_h": by.loc["emsfl", "time_to_target_s"] / 3600,
                     "speed-up": ratio_text(by.loc["baseline", "time_to_target_s"],
                                            by.loc["emsfl", "time_to_target_s"], horizon),
                     "baseline_best": by.loc["baseline", "best_accuracy"], "emsfl_best": by.loc["emsfl", "best_accuracy"],
                     "baseline_rounds": by.loc["baseline", "local_rounds"]})
    learned = pd.DataFrame(rows)
    learned.to_csv(folder / "learning.csv", index=False)

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r.altitude_km:g} km\n{r.inclination_deg:g} deg\n{r.planes:.0f} pl." for r in learned.itertuples()]
    width = 0.38
    for k, strategy in enumerate(("baseline", "emsfl")):
        col = f"{strategy}_t_h"
        bars = ax.bar([i + (k - 0.5) * width for i in range(len(learned))], learned[col].fillna(horizon / 3600),
                      width, color=STRATEGY_COLOURS[strategy], label=STRATEGY_LABELS[strategy])
        for bar, missing in zip(bars, learned[col].isna(), strict=True):
            if missing:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
    ax.set_xticks(range(len(learned)), labels, fontsize=8)
    ax.set_ylabel(f"time to accuracy {target:g} (h)")
    ax.set_title(f"hatched: not reached within {horizon / 3600:.0f} h", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "time_to_target.png", dpi=110)
    plt.close(fig)

    # ---- findings ------------------------------------------------------------------------
    lines = []
    by_alt = plans.groupby("altitude_km")[["passes_per_cluster_day", "mean_pass_s", "mean_pass_mb"]].mean()
    lo, hi = by_alt.index.min(), by_alt.index.max()
    lines.append(
        f"- Altitude (mean over inclinations and plane counts): at {lo:g} km a cluster gets "
        f"{by_alt.loc[lo, 'passes_per_cluster_day']:.1f} passes per day of {by_alt.loc[lo, 'mean_pass_s']:.0f} s "
        f"carrying {by_alt.loc[lo, 'mean_pass_mb']:.0f} MB per device on average; at {hi:g} km "
        f"{by_alt.loc[hi, 'passes_per_cluster_day']:.1f} passes of {by_alt.loc[hi, 'mean_pass_s']:.0f} s carrying "
        f"{by_alt.loc[hi, 'mean_pass_mb']:.0f} MB (higher shells give longer passes, which here outweighs their larger path loss).")
    by_inc = plans.groupby("inclination_deg")[["passes_per_cluster_day", "idle_fraction"]].mean()
    lines.append("- Inclination (mean over altitudes and planes): " + "; ".join(
        f"{inc:g} deg: {r.passes_per_cluster_day:.1f} passes/day, idle {r.idle_fraction:.2f}"
        for inc, r in by_inc.iterrows()) + " (clusters at 36-48 N).")
    by_planes = plans.groupby("planes")[["passes_per_cluster_day", "idle_fraction"]].mean()
    lines.append("- Planes (1 satellite each): " + "; ".join(
        f"{p} planes: {r.passes_per_cluster_day:.1f} passes/day, idle {r.idle_fraction:.2f}"
        for p, r in by_planes.iterrows()) + ".")
    for _, r in learned.iterrows():
        lines.append(
            f"- Learning, {r['altitude_km']:g} km / {r['inclination_deg']:g} deg / {r['planes']:.0f} planes (idle "
            f"{r['idle_fraction']:.2f}, {r['passes']:.0f} passes in {horizon / 3600:.0f} h): EMS-FL reached "
            f"{target:g} in {hours(r['emsfl_t_h'] * 3600, horizon)}, the baseline in "
            f"{hours(r['baseline_t_h'] * 3600, horizon)} (speed-up {r['speed-up']}); best accuracy "
            f"{r['emsfl_best']:.3f} vs {r['baseline_best']:.3f}.")
    payload_mb = ok[ok["strategy"] == "baseline"]["uplink_mb_per_pass"].max()
    lines.append(f"- The largest upload per pass in the learning runs is {payload_mb:.2f} MB (baseline, tiny model), "
                 f"far below every pass volume of the grid (minimum {plans['mean_pass_mb'].min():.0f} MB on average): "
                 "with the tiny model, pass volume never limits learning here, the number and spacing of passes do.")
    cols = ["altitude_km", "inclination_deg", "planes", "orbital_period_min", "passes_per_cluster_day", "mean_pass_s",
            "mean_pass_mb", "mb_per_cluster_day", "idle_fraction", "clusters_without_pass"]
    write_report(folder, "Experiment 5: constellation design", [
        "## Setup\n\nWalker shells with 1 satellite per plane (phasing 1), constellation mode with highest-elevation "
        "handover, 25 deg mask, clusters in Munich, Denver and Tokyo, link budget of base-tiny (23 dBm, 40 dBi, "
        "2 GHz, 5 MHz per device). Contact-plan grid over 24 h; learning runs 6 h (3 clusters x 1 device, a local "
        f"round every 150 s, lr 1e-2, target {target:g}).",
        "## Findings\n\n" + "\n".join(lines),
        "## Contact-plan grid\n\n" + md_table(plans[cols]),
        "## Learning runs\n\n" + md_table(learned),
        "![grid](contact_plan_grid.png)\n\n![time to target](time_to_target.png)",
    ], started)


if __name__ == "__main__":
    main()
