"""Peak host memory of the dense -> MoE merge: streaming (learning.merge_stream) against in memory.

Writes three random dense Llama checkpoints (``--vocab/--hidden/--inter/--layers`` sizes,
about 175 MB each in float32 by default; the second one sharded) to a temporary
directory, then runs each case in a fresh subprocess and reads its peak resident set
two ways: ``VmHWM`` from the child's ``/proc/self/status`` and ``ru_maxrss`` from
``os.wait4`` (the per-child form of ``getrusage(RUSAGE_CHILDREN)``). Cases:

* ``imports``: the interpreter with torch, transformers and emsfl_sim.learning (the floor);
* ``in-memory``: ``build_moe_from_dense`` (the MoE in memory; random routers);
* ``stream``: ``write_merged_checkpoint`` (the MoE on disk; random routers);
* ``stream+hidden``: the same with the ``hidden`` router init (one dense model in memory);
* ``stream+load``: ``build_model`` with ``dense_checkpoints``: stream into the cache, then load.

Run: ``python benchmarks/bench_merge.py [--layers 8] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1024 * 1024
CASES = ("imports", "in-memory", "stream", "stream+hidden", "stream+load")


def _vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return -1


def make_dense(directory: Path, args: argparse.Namespace) -> list[str]:
    """Three random dense Llama checkpoints (the second sharded, so the index path is read)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.inter,
                      num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
                      num_key_value_heads=args.hidden // 64, tie_word_embeddings=False, max_position_embeddings=512)
    paths = []
    for e in range(3):
        torch.manual_seed(e)
        model = LlamaForCausalLM(cfg).eval()
        path = directory / f"dense{e}"
        model.save_pretrained(path, **(dict(max_shard_size="50MB") if e == 1 else {}))
        paths.append(str(path))
        del model
    return paths


def child(case: str, paths: list[str], work: Path) -> dict[str, float]:
    """Run one case in this process and return its wall time and peak memory."""
    import torch  # noqa: F401  (the imports floor is the same in every case)

    from emsfl_sim.learning.merge import build_moe_from_dense
    from emsfl_sim.learning.merge_stream import MergeOptions, write_merged_checkpoint
    from emsfl_sim.learning.models import build_model
    from emsfl_sim.learning.modelspec import ModelSpec

    t0 = time.perf_counter()
    if case == "in-memory":
        model = build_moe_from_dense(paths, top_k=2)
    elif case == "stream":
        write_merged_checkpoint(paths, work / "stream", MergeOptions(top_k=2))
    elif case == "stream+hidden":
        prompts = tuple((f"a prompt for expert {e}",) for e in range(3))
        write_merged_checkpoint(paths, work / "hidden", MergeOptions(top_k=2, router_init="hidden",
                                                                      expert_prompts=prompts))
    elif case == "stream+load":
        model, _ = build_model(ModelSpec(dense_checkpoints=paths, top_k=2, cache_dir=str(work / "cache")), seed=0)
    wall = time.perf_counter() - t0
    loaded = _vm_hwm_bytes()
    if case in ("in-memory", "stream+load"):
        # a loaded checkpoint is memory-mapped: read every weight so all of it is resident
        state = model.state_dict()
        checksum = sum(float(t.float().sum()) for t in state.values())
        assert checksum == checksum, "NaN in the merged weights"
        n = sum(t.numel() * t.element_size() for t in state.values())
        del model, state
    else:
        n = 0
    return dict(wall_s=wall, vm_hwm=_vm_hwm_bytes(), vm_hwm_before_touch=loaded, model_bytes=n)


def run_case(case: str, paths: list[str], work: Path) -> dict[str, float]:
    """One case in a fresh interpreter: its report plus ``ru_maxrss`` from ``os.wait4``."""
    out = work / f"{case}.json"
    cmd = [sys.executable, __file__, "--child", case, "--paths", json.dumps(paths), "--work", str(work),
           "--out", str(out)]
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"case {case} failed with exit code {proc.returncode}")
    report = json.loads(out.read_text())
    report["ru_maxrss"] = usage.ru_maxrss * 1024  # kB on Linux
    return report


def _size_args(args: argparse.Namespace) -> list[str]:
    return ["--vocab", str(args.vocab), "--hidden", str(args.hidden), "--inter", str(args.inter),
            "--layers", str(args.layers)]


def main() -> None:
    """Parse the arguments; as the parent, make the checkpoints and run every case."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=16000)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--inter", type=int, default=1536)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--keep", help="use this directory (kept) instead of a temporary one")
    ap.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--paths", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--make", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        make_dense(Path(args.make), args)
        return
    if args.child:
        report = child(args.child, json.loads(args.paths), Path(args.work))
        Path(args.out).write_text(json.dumps(report))
        return
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, __file__, "--make", str(work), *_size_args(args)], check=True)
        paths = [str(work / f"dense{e}") for e in range(3)]
        dense_mb = sum(f.stat().st_size for f in Path(paths[0]).glob("*.safetensors")) / MB
        print(f"3 dense Llama checkpoints of {dense_mb:.0f} MB each (vocab {args.vocab}, hidden {args.hidden}, "
              f"intermediate {args.inter}, {args.layers} layers, float32), CPU threads {os.cpu_count()}")
        rows = {case: run_case(case, paths, work) for case in CASES}
        moe_mb = sum(f.stat().st_size for f in (work / "stream").glob("*.safetensors")) / MB
        floor = rows["imports"]["vm_hwm"]
        print(f"merged MoE: {moe_mb:.0f} MB on disk ({args.layers + 2} shards)\n")
        print(f"{'case':14s} {'VmHWM MB':>9s} {'maxrss MB':>10s} {'above floor':>12s} {'wall s':>7s}")
        for case, r in rows.items():
            print(f"{case:14s} {r['vm_hwm'] / MB:9.0f} {r['ru_maxrss'] / MB:10.0f} "
                  f"{(r['vm_hwm'] - floor) / MB:12.0f} {r['wall_s']:7.2f}")
        untouched = rows["stream+load"]["vm_hwm_before_touch"]
        print(f"stream+load before touching the weights (memory-mapped shards): {untouched / MB:.0f} MB; "
              f"model {rows['stream+load']['model_bytes'] / MB:.0f} MB")
        mem, stream = rows["in-memory"]["vm_hwm"], rows["stream"]["vm_hwm"]
        print(f"\npeak ratio in-memory / stream: {mem / stream:.2f} (whole process), "
              f"{(mem - floor) / max(stream - floor, 1):.1f} (above the imports floor)")


if __name__ == "__main__":
    main()
