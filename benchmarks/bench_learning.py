"""Table-I-style systems numbers for the tiny and small presets (CPU or CUDA).

Per preset: uplink payload per device per pass (MB) and peak training memory (MB) for the
baseline (all experts + gate), EMS-FL (own experts + gate, full model) and enhanced EMS-FL
(own experts only, local model), their ratios to the baseline, tokens/s of a local step,
enhanced memory against the share of experts held, and the meta-device payload of rank-4
LoRA on one expert of a 3x Llama-3-8B MoE.

Run: ``python benchmarks/bench_learning.py [--threads 1]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from emsfl_sim.learning import (
    LLAMA3_8B_X3_MOE_CONFIG,
    LearningEngine,
    LoraSpec,
    ModelSpec,
    TrainSpec,
    lora_payload_bytes,
    make_domain_examples,
    measure_training_memory,
)
from emsfl_sim.strategies.footprints import strategy_footprints

MB = 1e6


def bench_preset(preset: str, clusters: int, batch_size: int, max_len: int) -> None:
    eng = LearningEngine(ModelSpec(preset=preset), LoraSpec(rank=4, alpha=8),
                         TrainSpec(batch_size=batch_size, max_len=max_len), seed=0, device="auto")
    E = eng.num_experts
    own = list(range(max(1, E // clusters)))
    ex = make_domain_examples("law", 64, seed=0)
    names = {"baseline": "baseline", "emsfl": "EMS-FL", "emsfl_enhanced": "enhanced"}
    rows = {names[k]: v for k, v in strategy_footprints(eng, ex, clusters).items()}
    base_pay, base_mem = rows["baseline"][0], rows["baseline"][1].peak_bytes
    print(f"\n## preset {preset}: E={E}, top-k={eng.top_k}, {clusters} clusters -> own experts {own}, "
          f"batch {batch_size}, device {eng.device}, memory method: {rows['baseline'][1].method}")
    print(f"{'scheme':10s} {'uplink MB':>10s} {'ratio':>6s} {'peak MB':>9s} {'ratio':>6s} {'resident':>9s} {'step':>8s}")
    for name, (pay, rep) in rows.items():
        print(f"{name:10s} {pay / MB:10.3f} {pay / base_pay:6.2f} {rep.peak_bytes / MB:9.2f} "
              f"{rep.peak_bytes / base_mem:6.2f} {rep.resident_bytes / MB:9.2f} {rep.step_bytes / MB:8.2f}")
    print("enhanced peak memory vs share of experts held:")
    for n in sorted({1, max(1, E // 4), E // 2, E}):
        rep = measure_training_memory(eng, ex, list(range(n)), train_gate=False, masked=True, label="emsfl_enhanced")
        print(f"  {n}/{E} experts: {rep.peak_bytes / MB:8.2f} MB")
    for name, experts, gate, masked in [("baseline", None, True, False), ("EMS-FL", own, True, False),
                                        ("enhanced", own, False, True)]:
        dev = eng.new_device(f"tps-{name}", eng.initial_state(), experts, gate, masked)
        eng.train_local(dev, ex, 1, gate)  # warm-up
        t = time.perf_counter()
        r = eng.train_local(dev, ex, 5, gate)
        print(f"  tokens/s local step {name:9s}: {r.tokens / (time.perf_counter() - t):9.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=96)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench_preset("tiny", clusters=4, batch_size=args.batch_size, max_len=args.max_len)
    bench_preset("small", clusters=4, batch_size=args.batch_size, max_len=args.max_len)
    b = lora_payload_bytes(LLAMA3_8B_X3_MOE_CONFIG, rank=4, experts=[0], dtype_bytes=2)
    print(f"\n3x Llama-3-8B MoE, rank-4 LoRA on one expert (gate_up + down, bf16, meta device): {b / MB:.2f} MB "
          f"({b / 2**20:.2f} MiB); fp32: {2 * b / MB:.2f} MB")


if __name__ == "__main__":
    main()
