"""Learnability upper bound: can the scenario's model learn its data at all?

Before comparing federated strategies on a scenario, check what the learnable part (the
experts' LoRA, or with ``training.mode: full`` their weights, plus the shared part of
``training.shared``) reaches with *centralised* training: one device trains every expert
and the shared part on all clusters' training data pooled, no federation, no link,
evaluated every ``--every`` steps on the scenario's test sets. If this stays near chance,
no strategy can reach the scenario's target and comparing their times to target measures
nothing.

Used for paper experiment 2 in miniature (``scenarios/paper-exp2-tiny.yaml``: full
training from random init with a classification head reaches 0.99 in 800 steps; see
README and ``exp2_full_training.py``).

Run: ``python experiments/upper_bound.py scenarios/paper-exp2-tiny.yaml [--steps 400]
[--every 50] [--set FIELD=VALUE ...] [--out DIR]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from common import REPO, md_table, write_report

from emsfl_sim.run.world import build_learning_world
from emsfl_sim.scenario import load_scenario


def upper_bound(scenario_path: Path, steps: int, every: int, overrides: dict[str, str]) -> tuple[pd.DataFrame, dict]:
    """Accuracy of centralised training (all experts + gate, pooled data) every ``every`` steps."""
    s = load_scenario(scenario_path, overrides={"time.orbital_cycles": 1, **overrides})
    world = build_learning_world(s)
    eng = world.engine
    pooled = [x for shards in world.data.train.values() for shard in shards for x in shard]
    state = world.initial_state
    device = eng.new_device("centralised", state, None, train_gate=True, masked=False)
    rows = []
    for done in range(0, steps + 1, every):
        if done:
            eng.train_local(device, pooled, every, train_gate=True)
            state = eng.aggregate(world.initial_state, [eng.make_upload(device, device.experts, True)])
        rows.append({"steps": done, **eng.evaluate(state, world.data.test)})
        print(f"step {done}: accuracy {rows[-1]['accuracy']:.3f} loss {rows[-1]['loss']:.3f}", flush=True)
    info = {"scenario": s.name, "seed": s.seed, "samples": len(pooled), "target": s.evaluation.target_accuracy,
            "chance": 1.0 / len(world.data.test[world.data.domains[0]][0].options)}
    return pd.DataFrame(rows), info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", type=Path)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    started = time.perf_counter()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    table, info = upper_bound(args.scenario, args.steps, args.every, overrides)
    folder = args.out or REPO / "runs" / "experiments" / f"upper-bound-{info['scenario']}"
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "table.csv", index=False)
    cols = ["steps", "accuracy", "loss"] + [c for c in table.columns if c.startswith("accuracy/")]
    best = table["accuracy"].max()
    # judge on the second half's mean: one evaluation of n questions moves by ~2 sqrt(p(1-p)/n)
    late = float(table["accuracy"].iloc[len(table) // 2:].mean())
    n = int(table["n"].iloc[0])
    noise = 2 * (0.25 / n) ** 0.5
    verdict = ("reaches" if late >= info["target"] else "does NOT reach") + f" the target {info['target']}"
    write_report(folder, f"Learnability upper bound: {info['scenario']}", [
        f"Centralised training of all experts' LoRA and the gate on the pooled training data "
        f"({info['samples']} samples, seed {info['seed']}, overrides {overrides or 'none'}); "
        f"chance accuracy {info['chance']:.2f}. Mean accuracy over the second half of the steps {late:.3f} "
        f"(best single evaluation {best:.3f}; one evaluation of {n} questions moves by about "
        f"+-{noise:.2f}): the learnable part {verdict}.",
        md_table(table[cols]),
    ], started)


if __name__ == "__main__":
    main()
