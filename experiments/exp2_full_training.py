"""Paper experiment 2 in miniature: EMS-FL vs baseline training from scratch, next to the centralised upper bound.

Reads a finished ``emsfl-sim run scenarios/paper-exp2-tiny.yaml --seeds 0-4 --out RUN_DIR``
and runs the upper bound (``upper_bound.py``: one device trains every expert and the
shared part on all four tasks pooled) for ``--ub-seeds`` seeds. Writes, to ``--out``
(default ``runs/experiments/exp2-full-training``): ``accuracy.png`` (left: mean accuracy
of each strategy over the seeds with its Student-t 95 % band against rounds, one round
= one slot of the idealised protocol; right: the upper bound against centralised
steps), ``rounds_to_target.csv`` (per seed) and ``report.md`` (the numbers). A round of
the strategies and a step of the upper bound are not the same work: the report gives
the optimizer steps and samples behind each.

Run: ``.venv/bin/python experiments/exp2_full_training.py [--run-dir runs/exp2] [--ub-seeds 0,1,2]
[--ub-steps 800] [--ub-table runs/experiments/exp2-full-training/upper_bound.csv]`` (the last reuses
an earlier upper bound instead of training it again).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from common import REPO, md_table, write_report
from upper_bound import upper_bound

from emsfl_sim.run.runner import first_reached
from emsfl_sim.run.seeds import mean_ci95

SCENARIO = REPO / "scenarios" / "paper-exp2-tiny.yaml"
COLOURS = {"baseline": "tab:gray", "emsfl": "tab:blue", "emsfl_enhanced": "tab:orange"}


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and Student-t 95 % interval (:func:`emsfl_sim.run.seeds.mean_ci95`; NaN bounds below two values)."""
    mean, low, high, _, _ = mean_ci95(values)
    return mean, low, high


def rounds_to_target(metrics: pd.DataFrame, target: float, consecutive: int, clusters: int) -> float:
    """First round (slot) of ``consecutive`` evaluations in a row at or above ``target`` (NaN if never).

    The rule of the runner's time to target (:func:`emsfl_sim.run.runner.first_reached`).
    """
    reached = first_reached(metrics, target, consecutive)
    return float(reached["cycle"].iloc[0] * clusters) if len(reached) else float("nan")


def seed_metrics(run_dir: Path) -> dict[str, dict[int, pd.DataFrame]]:
    """``strategy -> seed -> metrics`` of every finished seed of the run."""
    out: dict[str, dict[int, pd.DataFrame]] = {}
    for path in sorted(run_dir.glob("seed-*/*/metrics.csv")):
        seed = int(path.parent.parent.name.split("-")[1])
        out.setdefault(path.parent.name, {})[seed] = pd.read_csv(path)
    return out


def per_seed_table(curves: dict[str, dict[int, pd.DataFrame]], target: float, consecutive: int,
                   clusters: int) -> pd.DataFrame:
    """Rounds to target per seed and strategy, and the EMS-FL / baseline ratio where both reached it."""
    rows = []
    for seed in sorted(set.intersection(*(set(v) for v in curves.values()))):
        row: dict[str, float] = {"seed": seed}
        for name, by_seed in curves.items():
            row[f"{name}_rounds"] = rounds_to_target(by_seed[seed], target, consecutive, clusters)
            row[f"{name}_final"] = float(by_seed[seed]["accuracy"].iloc[-1])
        row["ratio"] = row.get("emsfl_rounds", np.nan) / row.get("baseline_rounds", np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def plot(curves: dict[str, dict[int, pd.DataFrame]], ub: pd.DataFrame, target: float, clusters: int,
         path: Path) -> None:
    """Accuracy bands of the strategies (rounds) and the upper bound (centralised steps), side by side."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for name, by_seed in curves.items():
        acc = np.vstack([m["accuracy"].to_numpy() for m in by_seed.values()])
        rounds = next(iter(by_seed.values()))["cycle"].to_numpy() * clusters
        bands = np.array([interval(acc[:, j]) for j in range(acc.shape[1])])
        left.plot(rounds, bands[:, 0], color=COLOURS.get(name, "k"), label=f"{name} ({len(by_seed)} seeds)")
        left.fill_between(rounds, bands[:, 1], bands[:, 2], color=COLOURS.get(name, "k"), alpha=0.2)
    best = ub.groupby("steps")["accuracy"].mean()
    left.axhline(float(best.max()), color="tab:green", ls="--", lw=1, label="upper bound (best mean)")
    for ax in (left, right):
        ax.axhline(target, color="k", ls=":", lw=1, label=f"target {target}")
        ax.axhline(0.5, color="tab:red", ls=":", lw=0.8)
        ax.grid(alpha=0.3)
    left.set(xlabel="rounds (idealised slots)", ylabel="test accuracy (4 tasks, 640 questions)",
             title="federated, training from scratch")
    for _, rows in ub.groupby("seed"):
        right.plot(rows["steps"], rows["accuracy"], color="tab:green", alpha=0.4, lw=0.8)
    right.plot(best.index, best.to_numpy(), color="tab:green", lw=2, label="upper bound (mean)")
    right.set(xlabel="centralised optimizer steps (batch 32, all tasks pooled)", title="centralised upper bound")
    left.legend(fontsize=8, loc="lower right")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    """Run the upper bound, read the seeds, write the figure, the table and the report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, default=REPO / "runs" / "exp2")
    p.add_argument("--ub-seeds", default="0,1,2")
    p.add_argument("--ub-steps", type=int, default=800)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "experiments" / "exp2-full-training")
    p.add_argument("--ub-table", type=Path, help="reuse an upper_bound.csv written by an earlier run of this script")
    args = p.parse_args()
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    from emsfl_sim.scenario import load_scenario

    scenario = load_scenario(SCENARIO)
    target, consecutive = scenario.evaluation.target_accuracy, scenario.evaluation.target_consecutive
    clusters = len(scenario.clusters)
    if args.ub_table is not None:
        ub = pd.read_csv(args.ub_table)
    else:
        ub_tables = []
        for seed in [int(s) for s in args.ub_seeds.split(",")]:
            table, _ = upper_bound(SCENARIO, args.ub_steps, 50, {"seed": str(seed)})
            ub_tables.append(table.assign(seed=seed))
        ub = pd.concat(ub_tables, ignore_index=True)
    ub.to_csv(args.out / "upper_bound.csv", index=False)
    curves = seed_metrics(args.run_dir)
    per_seed = per_seed_table(curves, target, consecutive, clusters)
    per_seed.to_csv(args.out / "rounds_to_target.csv", index=False)
    plot(curves, ub, target, clusters, args.out / "accuracy.png")
    ub_mean = ub.groupby("steps")[["accuracy"] + [c for c in ub.columns if c.startswith("accuracy/")]].mean()
    lines = []
    for name in curves:
        reached = per_seed[f"{name}_rounds"].dropna()
        m, lo, hi = interval(reached.to_numpy())
        lines.append(f"- {name}: reached {target} ({consecutive} evaluations in a row) on {len(reached)} of "
                     f"{len(per_seed)} seeds, rounds {m:.0f} [{lo:.0f}, {hi:.0f}]; final accuracy "
                     f"{per_seed[f'{name}_final'].mean():.3f}")
    ratios = per_seed["ratio"].dropna().to_numpy()
    m, lo, hi = interval(ratios)
    lines.append(f"- rounds-to-target ratio EMS-FL / baseline (seeds where both reached it, n={len(ratios)}): "
                 f"{m:.2f} [{lo:.2f}, {hi:.2f}]")
    write_report(args.out, "Paper experiment 2 in miniature (full training from scratch)", [
        f"Scenario {SCENARIO.name}, run {args.run_dir}; target {target}; one round = one idealised slot "
        f"({clusters} per orbital cycle).",
        "\n".join(lines),
        "Per seed:\n\n" + md_table(per_seed),
        f"Upper bound (mean of seeds {args.ub_seeds}, {args.ub_steps} steps):\n\n" + md_table(ub_mean.reset_index()),
    ], started)


if __name__ == "__main__":
    main()
