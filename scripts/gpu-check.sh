#!/usr/bin/env bash
# Table I of the reference on real MoE architectures with random weights (memory does not depend on
# weight values): uplink MB and peak memory per strategy, baseline vs EMS-FL vs enhanced EMS-FL.
#   scripts/gpu-check.sh            on CUDA: 3 x Llama-3-8B MoE (full depth) and Mixtral-8x7B (8 of 32 layers)
#   scripts/gpu-check.sh --dry-run  the same path on CPU at tiny scale (1/64 width, 2 layers)
# Needs a CUDA build of torch: TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 TORCH_SPEC=torch
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh
PY=.venv/bin/python
if [ "${1:-}" = "--dry-run" ]; then
  for config in llama3-8b-x3 mixtral-8x7b qwen1.5-moe-a2.7b olmoe-1b-7b; do
    "$PY" benchmarks/table1_memory.py --config "$config" --tiny --device cpu --dtype float32 --batch-size 2 --max-len 64
  done
  exit 0
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu-check: no CUDA device (torch.cuda.is_available() is False, torch $("$PY" -c 'import torch; print(torch.__version__)')); nothing measured. scripts/gpu-check.sh --dry-run checks the path on CPU."
  exit 0
fi
mkdir -p runs/gpu-check
"$PY" benchmarks/table1_memory.py --config llama3-8b-x3 --device cuda --out runs/gpu-check/llama3-8b-x3.json
"$PY" benchmarks/table1_memory.py --config mixtral-8x7b --layers 8 --device cuda --out runs/gpu-check/mixtral-8x7b-8l.json
"$PY" benchmarks/table1_memory.py --config llama3-8b-x3 --device cuda --gradient-checkpointing \
  --out runs/gpu-check/llama3-8b-x3-ckpt.json
