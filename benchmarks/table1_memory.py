"""Table I of the reference on a real MoE architecture with random weights: uplink and peak memory per strategy.

Memory does not depend on the weights' values, so the model is built from its config with
seeded random weights directly on the device (no checkpoint, no download). Per strategy
(its declared device footprint: baseline all experts + gate, EMS-FL its experts + gate,
enhanced EMS-FL its experts in a masked local model) it prints the uplink payload per
device per pass and one local step's peak memory (resident + the step's additional peak):
``torch.cuda.max_memory_allocated`` on CUDA, the dispatch-mode live-storage counter on CPU.
Next to it, the bf16 weight bytes predicted by the systems counts (meta device).

Run (scripts/gpu-check.sh does both on CUDA):
  python benchmarks/table1_memory.py --config llama3-8b-x3 --device cuda
  python benchmarks/table1_memory.py --config mixtral-8x7b --layers 8 --device cuda
  python benchmarks/table1_memory.py --config llama3-8b-x3 --tiny --device cpu   # the same path at tiny scale
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from emsfl_sim.learning.data import make_domain_examples
from emsfl_sim.learning.engine import LearningEngine
from emsfl_sim.learning.lora import LoraSpec
from emsfl_sim.learning.modelspec import ModelSpec
from emsfl_sim.learning.systems import SYSTEMS_CONFIGS, count_parameters_meta
from emsfl_sim.learning.train import TrainSpec
from emsfl_sim.strategies.footprints import strategy_footprints

MB = 1e6
#: --tiny: the architecture's shape at 1/64 of the width and 2 layers (a CPU check of the script's path)
TINY = {"hidden_size": 64, "intermediate_size": 224, "num_attention_heads": 4, "num_key_value_heads": 1,
        "vocab_size": 512, "num_hidden_layers": 2, "head_dim": 16, "max_position_embeddings": 512,
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def overrides(name: str, layers: int | None, tiny: bool) -> dict[str, Any]:
    """Config overrides: reduced depth and, for --tiny, reduced widths."""
    out: dict[str, Any] = dict(TINY) if tiny else {}
    if tiny and "moe_intermediate_size" in SYSTEMS_CONFIGS[name]:
        out["moe_intermediate_size"] = 56
    if layers is not None:
        out["num_hidden_layers"] = layers
    return out


def measure(name: str, layers: int | None, tiny: bool, device: str, dtype: str, batch: int, max_len: int,
            rank: int, clusters: int, checkpointing: bool) -> dict[str, Any]:
    """Payload and peak memory per strategy for one architecture."""
    config = SYSTEMS_CONFIGS[name]
    over = overrides(name, layers, tiny)
    counts = count_parameters_meta({**config, **over})
    spec = ModelSpec(preset=None, architecture=str(config["model_type"]), config=name, config_overrides=over,
                     dtype=dtype)
    t0 = time.perf_counter()
    engine = LearningEngine(spec, LoraSpec(rank=rank, alpha=2 * rank),
                            TrainSpec(batch_size=batch, max_len=max_len, gradient_checkpointing=checkpointing),
                            seed=0, device=device)
    built_s = time.perf_counter() - t0
    examples = make_domain_examples("law", 4 * batch, seed=0)
    rows = []
    for strategy, (payload, report) in strategy_footprints(engine, examples, clusters).items():
        rows.append({"strategy": strategy, "uplink_mb_per_pass": payload / MB, "resident_mb": report.resident_bytes / MB,
                     "step_mb": report.step_bytes / MB, "peak_mb": report.peak_bytes / MB, "method": report.method,
                     "experts": len(report.experts)})
    return {"config": name, "layers": over.get("num_hidden_layers", config["num_hidden_layers"]), "tiny": tiny,
            "device": str(engine.device), "dtype": dtype, "batch_size": batch, "max_len": max_len, "rank": rank,
            "clusters": clusters, "gradient_checkpointing": checkpointing, "build_s": built_s,
            "parameters": counts["total"], "predicted_weights_mb": counts["total"] * 2 / MB, "rows": rows,
            "gpu": torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else None}


def main() -> None:
    """Parse arguments, measure, print a table (and write JSON with --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(SYSTEMS_CONFIGS), default="llama3-8b-x3")
    parser.add_argument("--layers", type=int, default=None, help="reduced depth (default: the config's)")
    parser.add_argument("--tiny", action="store_true", help="1/64 width, 2 layers: the CPU path of this script")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices, as the CLI does
    result = measure(args.config, args.layers, args.tiny, args.device, args.dtype, args.batch_size, args.max_len,
                     args.rank, args.clusters, args.gradient_checkpointing)
    print(f"{result['config']} ({result['layers']} layers{', tiny widths' if result['tiny'] else ''}), "
          f"{result['parameters'] / 1e6:,.1f} M parameters = {result['predicted_weights_mb']:,.1f} MB in bf16, on "
          f"{result['gpu'] or result['device']}, {result['dtype']}, batch {result['batch_size']} x {result['max_len']}, "
          f"LoRA rank {result['rank']}, built in {result['build_s']:.1f} s")
    print(f"{'strategy':>15} {'experts':>7} {'uplink MB/pass':>14} {'resident MB':>12} {'step MB':>10} {'peak MB':>10}")
    base = next(r for r in result["rows"] if r["strategy"] == "baseline")
    for r in result["rows"]:
        print(f"{r['strategy']:>15} {r['experts']:>7} {r['uplink_mb_per_pass']:>14.3f} {r['resident_mb']:>12.1f} "
              f"{r['step_mb']:>10.1f} {r['peak_mb']:>10.1f}  ({r['peak_mb'] / base['peak_mb']:.2f} x baseline)")
    print(f"memory measured by {result['rows'][0]['method']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
