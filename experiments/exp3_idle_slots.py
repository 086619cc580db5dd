"""Experiment 3: idle connection slots vs time to target accuracy (baseline vs EMS-FL).

Three parts, each a sweep in its own sub-folder:

- ``walker/``: a 550 km / 53 deg Walker shell in constellation mode (highest-elevation
  handover); the number of planes and satellites per plane and the elevation mask set
  the idle fraction (share of time no cluster sees any satellite).
- ``tle/``: filtered subsets of the real Starlink (2023-07) and OneWeb (2025-12)
  snapshots in ../shared/tle as extra points (skipped when the folder is absent).
- ``idealised/``: the reference's round-robin slots with idle slots inserted at rate
  0, 0.25, 0.5 (``time.idle_slot_rate``).

x = idle fraction, y = time to target accuracy per strategy.

Run: ``python experiments/exp3_idle_slots.py [--full] [--out DIR] [--workers N]``
(default: 6 Walker points + 2 TLE points (6 h) + 3 idealised rates (12 h), one seed;
--full: 10 Walker points, 3 TLE points, 4 idealised rates x 2 seeds)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from common import REPO, md_table, out_dir, parser, write_report  # noqa: E402
from expkit import (  # noqa: E402
    STRATEGY_COLOURS,
    STRATEGY_LABELS,
    derived_scenario,
    hours,
    ratio_text,
    sweep,
    sweep_uncached,
)

SHARED_TLE = REPO.parent / "shared" / "tle"
WALKER = "constellation.walker"
MASK = "link.elevation_mask_deg"
RATE = "time.idle_slot_rate"


def shell(planes: int, sats: int) -> list[dict]:
    """A one-shell Walker value for the sweep (550 km, 53 deg)."""
    return [{"altitude_km": 550, "inclination_deg": 53, "planes": planes, "sats_per_plane": sats,
             "phasing": 1 if planes > 1 else 0, "name_prefix": "WALKER"}]


def shell_label(value: object) -> str:
    """'8x2' from the swept walker value (a list or its JSON text)."""
    shells = json.loads(value) if isinstance(value, str) else value
    return "+".join(f"{s['planes']}x{s['sats_per_plane']}" for s in shells)  # type: ignore[union-attr]


def second_half_mean(folder: Path, point: str, strategy: str) -> float:
    """Mean accuracy over the evaluations of the second half of the run (less noisy than one crossing)."""
    m = pd.read_csv(folder / "points" / point / strategy / "metrics.csv")
    return float(m.loc[m["time_s"] >= m["time_s"].max() / 2, "accuracy"].mean())


def pairs(table: pd.DataFrame, keys: list[str], folder: Path) -> pd.DataFrame:
    """One row per point: idle fraction, both strategies' time to target, best and second-half accuracy."""
    ok = table[table["status"] == "ok"]
    rows = []
    for point, group in ok.groupby("point", sort=False):
        by = group.set_index("strategy")
        if not {"baseline", "emsfl"} <= set(by.index):
            continue
        first = group.iloc[0]
        rows.append({"point": point, **{k: first[k] for k in keys}, "seed": first["seed"],
                     "idle_fraction": first["idle_fraction"], "horizon_h": first["simulated_s"] / 3600,
                     "passes": by.loc["baseline", "passes"],
                     "baseline_t_h": by.loc["baseline", "time_to_target_s"] / 3600,
                     "emsfl_t_h": by.loc["emsfl", "time_to_target_s"] / 3600,
                     "baseline_best": by.loc["baseline", "best_accuracy"],
                     "emsfl_best": by.loc["emsfl", "best_accuracy"],
                     "baseline_2nd_half": second_half_mean(folder, point, "baseline"),
                     "emsfl_2nd_half": second_half_mean(folder, point, "emsfl"),
                     "baseline_rounds": by.loc["baseline", "local_rounds"],
                     "emsfl_rounds": by.loc["emsfl", "local_rounds"]})
    return pd.DataFrame(rows)


def sentence(r: pd.Series, label: str, target: float) -> str:
    """'idle 0.87 (2x1, mask 10): EMS-FL 2.5 h, baseline not reached in 6.0 h'."""
    horizon = r["horizon_h"] * 3600
    return (f"- {label}: idle fraction {r['idle_fraction']:.2f}: EMS-FL reached {target:g} in "
            f"{hours(r['emsfl_t_h'] * 3600, horizon)}, the baseline in {hours(r['baseline_t_h'] * 3600, horizon)} "
            f"(speed-up {ratio_text(r['baseline_t_h'] * 3600, r['emsfl_t_h'] * 3600, horizon)}); best accuracy "
            f"{r['emsfl_best']:.3f} vs {r['baseline_best']:.3f}, mean over the second half {r['emsfl_2nd_half']:.3f} vs "
            f"{r['baseline_2nd_half']:.3f}; local rounds {r['emsfl_rounds']:.0f} vs "
            f"{r['baseline_rounds']:.0f}.")


def scatter(ax: plt.Axes, frame: pd.DataFrame, x: str, marker: str, source: str) -> None:
    """Time to target vs x per strategy; runs that did not reach it drawn hollow at the horizon."""
    for strategy in ("baseline", "emsfl"):
        col = f"{strategy}_t_h"
        hit = frame[frame[col].notna()]
        miss = frame[frame[col].isna()]
        colour = STRATEGY_COLOURS[strategy]
        ax.scatter(hit[x], hit[col], marker=marker, color=colour, s=45,
                   label=f"{STRATEGY_LABELS[strategy]} ({source})")
        ax.scatter(miss[x], miss["horizon_h"], marker=marker, facecolors="none", edgecolors=colour, s=45)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    folder = out_dir(args, "exp3_idle_slots")
    sections: list[str] = []
    findings: list[str] = []

    # ---- Walker shells (orbital) -------------------------------------------------
    combos = [(2, 1, 10), (4, 2, 10), (4, 2, 25), (8, 2, 10), (8, 2, 25), (8, 2, 40)]
    if args.full:  # all shell x mask pairs with passes in 6 h (1x1 and 2x1 see none at 40 deg)
        combos = [(1, 1, 10), (1, 1, 25), (2, 1, 10), (2, 1, 25), (4, 2, 10), (4, 2, 25), (4, 2, 40),
                  (8, 2, 10), (8, 2, 25), (8, 2, 40)]
    wdir = folder / "walker"
    wdir.mkdir(exist_ok=True)
    wscen = derived_scenario("exp3-walker", wdir, {"sweep": {"mode": "zip", "parameters": {
        WALKER: [shell(p, s) for p, s, _ in combos], MASK: [m for *_, m in combos]}}})
    wtable = sweep_uncached(wscen, wdir, args.workers)  # orbital: see expkit.sweep_uncached
    target = float(wtable["target_accuracy"].dropna().iloc[0])
    walker = pairs(wtable, [WALKER, MASK], wdir)
    walker["shell"] = walker[WALKER].map(shell_label)
    walker = walker.drop(columns=[WALKER]).sort_values("idle_fraction")

    # ---- real snapshots (orbital) --------------------------------------------------
    tle = pd.DataFrame()
    subsets = [("starlink-2023-07.tle", "2023-07-18T00:00:00Z", 12), ("oneweb-2025-12.tle", "2025-12-22T12:00:00Z", 48)]
    if args.full:
        subsets.append(("oneweb-2025-12.tle", "2025-12-22T12:00:00Z", 12))
    present = [s for s in subsets if (SHARED_TLE / s[0]).exists()]
    if present:
        tdir = folder / "tle"
        tdir.mkdir(exist_ok=True)
        tscen = derived_scenario("exp3-walker", tdir, {
            "constellation": {"tle_files": [str(SHARED_TLE / present[0][0])], "max_satellites": present[0][2],
                              "walker": []},
            "sweep": {"mode": "zip", "parameters": {
                "constellation.tle_files": [[str(SHARED_TLE / f)] for f, _, _ in present],
                "time.start_utc": [s for _, s, _ in present],
                "constellation.max_satellites": [n for *_, n in present]}}})
        ttable = sweep_uncached(tscen, tdir, args.workers)
        tle = pairs(ttable, ["constellation.max_satellites", "time.start_utc"], tdir)
        names = {i: f"{f.split('-')[0]} first {n}" for i, (f, _, n) in enumerate(present)}
        tle["subset"] = [names[int(p[1:4])] for p in tle["point"]]
    else:
        findings.append(f"- Real snapshots: {SHARED_TLE} not found, the TLE points were skipped.")

    # ---- idealised slots -----------------------------------------------------------
    rates = [0.0, 0.25, 0.5]
    ideal_sweep: dict = {"mode": "product", "parameters": {RATE: rates}}
    if args.full:
        rates = [0.0, 0.25, 0.5, 0.75]
        ideal_sweep = {"mode": "product", "parameters": {RATE: rates}, "seeds": [0, 1]}
    idir = folder / "idealised"
    idir.mkdir(exist_ok=True)
    iscen = derived_scenario("exp3-idealised", idir, {"sweep": ideal_sweep})
    itable = sweep(iscen, idir, args.workers)
    ideal = pairs(itable, [RATE], idir).sort_values([RATE, "seed"])
    itarget = float(itable["target_accuracy"].dropna().iloc[0])

    # ---- figures ---------------------------------------------------------------------
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    scatter(axes[0], walker, "idle_fraction", "o", "Walker")
    if len(tle):
        scatter(axes[0], tle, "idle_fraction", "*", "real TLE")
    horizon_h = float(walker["horizon_h"].max()) if len(walker) else 6.0
    axes[0].axhline(horizon_h, color="k", ls=":", lw=1)
    axes[0].set_xlabel("idle fraction (no cluster connected)")
    axes[0].set_ylabel(f"time to accuracy {target:g} (h)")
    axes[0].set_title("orbital: hollow = not reached (drawn at the horizon)", fontsize=9)
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    for strategy in ("baseline", "emsfl"):
        both = pd.concat([walker, tle]) if len(tle) else walker
        both = both.sort_values("idle_fraction")
        axes[1].plot(both["idle_fraction"], both[f"{strategy}_best"], "o-", color=STRATEGY_COLOURS[strategy],
                     label=STRATEGY_LABELS[strategy])
    axes[1].axhline(target, color="k", ls=":", lw=1)
    axes[1].set_xlabel("idle fraction (no cluster connected)")
    axes[1].set_ylabel("best accuracy within the horizon")
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "orbital_idle_vs_time_to_target.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ihorizon = float(ideal["horizon_h"].max())
    for strategy in ("baseline", "emsfl"):
        col = f"{strategy}_t_h"
        mean = ideal.groupby(RATE)[col].mean()
        shown = mean.fillna(ihorizon)
        ax.plot(shown.index, shown.values, "o-", color=STRATEGY_COLOURS[strategy], label=STRATEGY_LABELS[strategy])
        ax.scatter(shown.index[mean.isna()], shown[mean.isna()], s=120, facecolors="none",
                   edgecolors=STRATEGY_COLOURS[strategy])
    ax.axhline(ihorizon, color="k", ls=":", lw=1)
    ax.set_xlabel("idle slot rate")
    ax.set_ylabel(f"time to accuracy {itarget:g} (h)")
    ax.set_title("idealised slots (circled: not reached, drawn at the horizon)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "idealised_idle_rate.png", dpi=110)
    plt.close(fig)

    # ---- findings and report ---------------------------------------------------------
    for _, r in walker.iterrows():
        findings.append(sentence(r, f"Walker {r['shell']} at mask {r[MASK]:g} deg", target))
    for _, r in tle.iterrows():
        findings.append(sentence(r, f"real {r['subset']} satellites", target))
    for _, r in ideal.iterrows():
        findings.append(sentence(r, f"idealised, idle slot rate {r[RATE]:g} (seed {r['seed']})", itarget))
    means = ideal.groupby(RATE).mean(numeric_only=True)
    timing = []
    for strategy in ("baseline", "emsfl"):
        t = means[f"{strategy}_t_h"]
        if t.notna().all() and t.iloc[0] > 0:
            timing.append(f"{STRATEGY_LABELS[strategy]}: " + ", ".join(
                f"rate {rate:g}: x{v / t.iloc[0]:.2f}" for rate, v in t.items()))
        else:
            timing.append(f"{STRATEGY_LABELS[strategy]}: not measurable (target not reached at rate(s) "
                          f"{', '.join(f'{rate:g}' for rate in t.index[t.isna()])})")
    findings.append(
        "- Idealised slots, time to target relative to no idle slots (the slot clock stretches by 1/(1 - rate), "
        f"x{1 / (1 - rates[-1]):.1f} at rate {rates[-1]:g}): " + "; ".join(timing) + ". Mean accuracy over the "
        "second half vs idle slot rate: baseline " + ", ".join(f"{v:.3f}" for v in means["baseline_2nd_half"])
        + "; EMS-FL " + ", ".join(f"{v:.3f}" for v in means["emsfl_2nd_half"]) + ".")
    orbital = pd.concat([walker, tle]) if len(tle) else walker
    low, high = orbital[orbital["idle_fraction"] < 0.5], orbital[orbital["idle_fraction"] >= 0.5]
    findings.append(
        f"- Orbital summary: below idle fraction 0.5 the baseline reached {target:g} in "
        f"{low['baseline_t_h'].notna().sum()} of {len(low)} runs and EMS-FL in {low['emsfl_t_h'].notna().sum()} of "
        f"{len(low)}; at 0.5 and above the baseline in {high['baseline_t_h'].notna().sum()} of {len(high)}, EMS-FL "
        f"in {high['emsfl_t_h'].notna().sum()} of {len(high)}. Baseline local rounds fall with the idle fraction "
        f"({orbital.sort_values('idle_fraction')['baseline_rounds'].iloc[0]:.0f} at "
        f"{orbital['idle_fraction'].min():.2f} to {orbital.sort_values('idle_fraction')['baseline_rounds'].iloc[-1]:.0f}"
        f" at {orbital['idle_fraction'].max():.2f}); EMS-FL's stay at "
        f"{orbital['emsfl_rounds'].min():.0f}-{orbital['emsfl_rounds'].max():.0f}.")

    walker.to_csv(folder / "walker.csv", index=False)
    ideal.to_csv(folder / "idealised.csv", index=False)
    if len(tle):
        tle.to_csv(folder / "tle.csv", index=False)
    cols = ["idle_fraction", "passes", "baseline_t_h", "emsfl_t_h", "baseline_best", "emsfl_best",
            "baseline_2nd_half", "emsfl_2nd_half", "baseline_rounds", "emsfl_rounds"]
    sections += [
        "## Setup\n\n3 clusters (Europe, Americas, Asia) x 1 device, one data domain each; tiny pre-trained "
        f"MoE (LoRA r8, lr 1e-2, 2 local steps of batch 8). Orbital: 6 h from the scenario start, a local "
        f"round every 150 s (the baseline trains only inside a pass, EMS-FL always), target {target:g}, "
        "evaluation every 30 min. Idealised: 600 s slots, a local round every 500 s, 12 h, "
        f"target {itarget:g}. Idle fraction = share of the horizon during which no cluster has a link.",
        "## Findings\n\n" + "\n".join(findings),
        "## Walker shells (orbital)\n\n" + md_table(walker[["shell", MASK, *cols]]),
        ("## Real snapshots (orbital)\n\n" + md_table(tle[["subset", *cols]])) if len(tle) else "",
        "## Idealised slots\n\n" + md_table(ideal[[RATE, "seed", *cols]]),
        "## Notes\n\nIn the idealised mode the baseline trains one domain per slot and the satellite replaces "
        "the global model by that cluster's average, so it drifts from domain to domain (sequential fine-tuning) "
        "and hardly improves at this size (also in experiment 1); in orbital mode passes of different clusters "
        "overlap and their updates are averaged. Accuracy is measured on 96 test questions (32 per domain); a time to target is the first "
        "evaluation at or above it, so the resolution is the evaluation period (30 min). Single seed at the "
        "default size: differences of one evaluation period are within noise. `idealised/` is a sweep directory (`emsfl-sim "
        "report runs/experiments/exp3_idle_slots/idealised`); each orbital point is a run directory under "
        "`walker/points/` and `tle/points/`.",
        "![orbital](orbital_idle_vs_time_to_target.png)\n\n![idealised](idealised_idle_rate.png)",
    ]
    write_report(folder, "Experiment 3: idle connection slots vs time to target accuracy",
                 [s for s in sections if s], started)


if __name__ == "__main__":
    main()
