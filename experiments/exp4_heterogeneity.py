"""Experiment 4: data heterogeneity (Dirichlet alpha) vs EMS-FL's advantage over the baseline.

Each cluster's domain mix is Dirichlet(alpha on every domain + 1 on its home domain):
alpha 0.01 is close to one domain per cluster (the setting EMS-FL's expert split is built
for), alpha 100 close to the same uniform mix everywhere (the theory predicts equal
convergence rates for uniform data). Idealised slots as in experiment 1.

Run: ``python experiments/exp4_heterogeneity.py [--full] [--out DIR] [--workers N]``
(default: alpha in {0.01, 0.1, 1, 100}, 24 cycles, one seed; --full: 7 alphas x 2 seeds)
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import md_table, out_dir, parser, write_report  # noqa: E402
from expkit import (  # noqa: E402
    STRATEGY_COLOURS,
    STRATEGY_LABELS,
    derived_scenario,
    hours,
    point_metrics,
    ratio_text,
    sweep,
)

ALPHA = "data.dirichlet_alpha"
NOISE = 0.05  # accuracy difference within which two single-seed runs are not distinguishable here


def home_share(alpha: float, domains: int = 3) -> float:
    """Expected share of a cluster's home domain: (alpha + 1) / (D alpha + 1)."""
    return (alpha + 1) / (domains * alpha + 1)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    folder = out_dir(args, "exp4_heterogeneity")
    alphas = [0.01, 0.1, 1.0, 100.0]
    overrides: dict = {"sweep": {"mode": "product", "parameters": {ALPHA: alphas}}}
    if args.full:
        alphas = [0.01, 0.03, 0.1, 0.3, 1.0, 10.0, 100.0]
        overrides = {"sweep": {"mode": "product", "parameters": {ALPHA: alphas}, "seeds": [0, 1]}}
    scenario = derived_scenario("exp4-heterogeneity", folder, overrides)
    table = sweep(scenario, folder, args.workers)
    ok = table[table["status"] == "ok"]
    metrics = point_metrics(folder, table)
    horizon = float(metrics["time_s"].max())
    target = float(ok["target_accuracy"].iloc[0])
    mid = horizon / 2

    rows = []
    for (alpha, seed), group in ok.groupby([ALPHA, "seed"]):
        by = group.set_index("strategy")
        b, e = by.loc["baseline"], by.loc["emsfl"]
        m = metrics[(metrics[ALPHA] == alpha) & (metrics["seed"] == seed)]

        def mean_after(strategy: str, since: float, frame: pd.DataFrame = m) -> float:
            """Mean accuracy over evaluations from ``since`` on (less noisy than one evaluation)."""
            rows_ = frame[(frame["strategy"] == strategy) & (frame["time_s"] >= since)]
            return float(rows_["accuracy"].mean())

        rows.append({"alpha": alpha, "seed": seed, "home_share": home_share(alpha),
                     "baseline_t_h": b["time_to_target_s"] / 3600, "emsfl_t_h": e["time_to_target_s"] / 3600,
                     "speed-up": ratio_text(b["time_to_target_s"], e["time_to_target_s"], horizon),
                     "baseline_2nd_half": mean_after("baseline", mid), "emsfl_2nd_half": mean_after("emsfl", mid),
                     "baseline_best": b["best_accuracy"], "emsfl_best": e["best_accuracy"],
                     "emsfl_aggregations": e.get("aggregations"), "baseline_aggregations": b.get("aggregations")})
    summary = pd.DataFrame(rows)
    summary["gain_2nd_half"] = summary["emsfl_2nd_half"] - summary["baseline_2nd_half"]
    summary.to_csv(folder / "heterogeneity.csv", index=False)

    # Figure 1: accuracy curves per alpha.
    fig, axes = plt.subplots(1, len(alphas), figsize=(3.6 * len(alphas), 3.6), sharey=True, squeeze=False)
    for ax, alpha in zip(axes[0], alphas, strict=True):
        sub = metrics[metrics[ALPHA] == alpha]
        for (strategy, seed), run in sub.groupby(["strategy", "seed"], sort=False):
            first = seed == sub["seed"].min()
            ax.plot(run["cycle"], run["accuracy"], marker=".", color=STRATEGY_COLOURS[strategy],
                    alpha=1.0 if first else 0.45, label=STRATEGY_LABELS[strategy] if first else None)
        ax.axhline(target, color="k", ls=":", lw=1)
        ax.set_title(f"alpha {alpha:g} (home share {home_share(alpha):.2f})", fontsize=9)
        ax.set_xlabel("orbital cycles")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("global test accuracy")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "accuracy_per_alpha.png", dpi=110)
    plt.close(fig)

    # Figure 2: time to target and the second-half accuracy vs alpha.
    mean = summary.groupby("alpha").mean(numeric_only=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for strategy in ("baseline", "emsfl"):
        t = mean[f"{strategy}_t_h"]
        axes[0].plot(t.index, t.fillna(horizon / 3600), "o-", color=STRATEGY_COLOURS[strategy],
                     label=STRATEGY_LABELS[strategy])
        axes[0].scatter(t.index[t.isna()], np.full(t.isna().sum(), horizon / 3600), s=130, facecolors="none",
                        edgecolors=STRATEGY_COLOURS[strategy])
        axes[1].plot(mean.index, mean[f"{strategy}_2nd_half"], "o-", color=STRATEGY_COLOURS[strategy],
                     label=STRATEGY_LABELS[strategy])
    axes[0].axhline(horizon / 3600, color="k", ls=":", lw=1)
    axes[0].set_ylabel(f"time to accuracy {target:g} (h)")
    axes[0].set_title("circled: not reached (drawn at the horizon)", fontsize=9)
    axes[1].set_ylabel("mean accuracy, second half of the run")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("Dirichlet alpha (left: one domain per cluster, right: uniform)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "advantage_vs_alpha.png", dpi=110)
    plt.close(fig)

    lines = []
    for _, r in summary.iterrows():
        lines.append(
            f"- alpha {r['alpha']:g} (expected home-domain share {r['home_share']:.2f}, seed {r['seed']}): "
            f"EMS-FL reached {target:g} in {hours(r['emsfl_t_h'] * 3600, horizon)}, the baseline in "
            f"{hours(r['baseline_t_h'] * 3600, horizon)} (speed-up {r['speed-up']}); mean accuracy over the "
            f"second half {r['emsfl_2nd_half']:.3f} vs {r['baseline_2nd_half']:.3f} "
            f"(EMS-FL {r['gain_2nd_half']:+.3f}).")
    gains = summary.groupby("alpha")["gain_2nd_half"].mean()
    clear = [a for a, g in gains.items() if g > NOISE]
    lines.append(
        "- EMS-FL's second-half accuracy gain over the baseline by alpha: "
        + ", ".join(f"{a:g}: {g:+.3f}" for a, g in gains.items())
        + f". It exceeds the evaluation noise (about {NOISE:.2f}) at alpha "
        + (", ".join(f"{a:g}" for a in clear) if clear else "none")
        + f" and is within the noise at {', '.join(f'{a:g}' for a in gains.index if a not in clear) or 'none'}: "
        + ("the advantage appears with near one-domain-per-cluster data and vanishes as the mix becomes "
           "uniform, as the theory predicts." if clear and max(clear) < min(a for a in gains.index if a not in clear)
           else "no clean monotone picture at this size (more seeds: --full).")
        + " Times to target are single first crossings of a noisy curve and do not order the same way.")
    base = summary.groupby("alpha")["baseline_2nd_half"].mean()
    lines.append(f"- Most of the change is the baseline's: its second-half accuracy goes from {base.iloc[0]:.3f} at alpha "
                 f"{base.index[0]:g} to {base.iloc[-1]:.3f} at alpha {base.index[-1]:g} (with one domain per cluster "
                 "each slot pulls the whole model towards one domain), while EMS-FL stays between "
                 f"{summary['emsfl_2nd_half'].min():.3f} and {summary['emsfl_2nd_half'].max():.3f}.")
    write_report(folder, "Experiment 4: data heterogeneity (Dirichlet alpha)", [
        "## Setup\n\nIdealised slots (3 clusters x 1 device, 600 s slots, a local round every 500 s of 2 steps, "
        f"{horizon / 3600:.0f} h = {metrics['cycle'].max():.0f} cycles), tiny pre-trained MoE, lr 1e-2, target "
        f"{target:g}. A cluster's domain mix is Dirichlet(alpha + 1 on its home domain, alpha elsewhere).",
        "## Findings\n\n" + "\n".join(lines),
        "## Table\n\n" + md_table(summary),
        "## Notes\n\nAccuracy is measured on 96 test questions (32 per domain), evaluated once per cycle; the "
        "second-half mean averages 12 evaluations and is less noisy than the time to target. One seed at the "
        "default size: a single Dirichlet draw per cluster.",
        "![curves](accuracy_per_alpha.png)\n\n![advantage](advantage_vs_alpha.png)",
    ], started)


if __name__ == "__main__":
    main()
