"""Streaming dense -> MoE merge: a Mixtral checkpoint written tensor by tensor, cached by its inputs.

The same merge as :func:`emsfl_sim.learning.merge.build_moe_from_dense` (expert e of
every layer is dense model e's FFN, the backbone is the base's, the routers are seeded
random or the ``hidden`` init), but no dense model is ever loaded whole for the copy:
each tensor is read from its dense checkpoint's safetensors shard (``safe_open``, one
tensor per open, ``model.safetensors.index.json`` honoured), converted to the target
dtype and written into the MoE's shard of its layer. Peak host memory is one layer of
the MoE (its attention, norms and E expert FFNs) or the embedding matrix, whichever is
larger, plus the interpreter. The ``hidden`` router init is the exception:
it runs the base model, so that one step holds one dense model (then frees it).

The output is a Mixtral checkpoint in transformers 5's own layout, the one
``save_pretrained(save_original_format=False)`` and mergekit-moe write: ``config.json``
(``MixtralConfig.save_pretrained``), fused ``mlp.experts.gate_up_proj [E, 2I, H]`` /
``down_proj [E, H, I]`` and ``mlp.gate.weight`` per layer; one shard for the embeddings,
one for the final norm and LM head, one per layer; ``model.safetensors.index.json``; the
base's tokenizer and generation files. It loads like any MoE checkpoint
(``build_model(ModelSpec(checkpoint_path=...))``) with no weight conversion, so
transformers memory-maps the shards instead of copying them (the per-expert original
names ``block_sparse_moe.experts.E.w1`` would be fused on load, in fresh memory).

Why not mergekit: mergekit 0.1.5 (LGPL-3.0) fits the pinned versions (it asks for
``torch>=2.0`` and ``transformers>=5,<6``; a dry run would add only datasets, dill,
multiprocess, xxhash, immutables, protobuf and sentencepiece), but it cannot reproduce
this project's merge: its ``hidden`` init always loads the base in bfloat16 and reads
the last position of one padded batch of prompts tokenised by a transformers tokenizer
(the tiny dense models have none), and its ``random`` init is an unseeded ``randn`` of
unit scale; the results of the existing in-memory merge, which scenarios and tests
depend on, would change. The copy itself is a few dozen lines of ``safe_open`` /
``save_file``.

:func:`merged_checkpoint` writes a merge once into the cache directory under a key of
its inputs (the name, size and mtime of each dense directory's files, the merge
options, the merge format and the torch/transformers versions) and reuses it afterwards;
without a cache the checkpoint goes to a temporary directory that is removed after
loading. Storing a merge removes cached merges of dense models that lived in the
temporary directory and are gone (test runs, throw-away dense models).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import MixtralConfig, MixtralForCausalLM, PretrainedConfig

from emsfl_sim.errors import InputError
from emsfl_sim.learning.merge import (
    _moe_config_from_dense,
    check_dense_config,
    check_merge_options,
    initial_router_weights,
)
from emsfl_sim.learning.modelspec import ModelSpec, torch_dtype

__all__ = ["MERGE_VERSION", "DenseCheckpoint", "MergeOptions", "MergedCheckpoint", "has_safetensors", "merge_key",
           "merged_checkpoint", "write_merged_checkpoint"]

#: bump when the written checkpoint changes (invalidates cached merges)
MERGE_VERSION = 1
#: name prefix of merged checkpoints in the cache directory
CACHE_PREFIX = "moe-merged-"
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
#: what a merged checkpoint was made from (dense paths, options): for people and for pruning the cache
PROVENANCE_NAME = "emsfl_merge.json"
#: files copied from the base checkpoint (glob patterns): tokenizer and generation settings
COPIED_FILES = ("tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab.*", "merges.txt",
                "spiece.model", "sentencepiece.bpe.model", "chat_template*", "generation_config.json")
_FIELD = "model.dense_checkpoints"


@dataclass(frozen=True)
class MergeOptions:
    """How dense checkpoints become an MoE (every field a merge depends on enters its cache key)."""

    base_index: int = 0
    router_init: str = "random"
    expert_prompts: tuple[tuple[str, ...], ...] | None = None
    top_k: int = 1
    seed: int = 0
    dtype: str = "float32"

    @classmethod
    def from_spec(cls, spec: ModelSpec, seed: int) -> MergeOptions:
        """The merge options of a ModelSpec with ``dense_checkpoints`` (as :func:`build_model` merges)."""
        prompts = tuple(tuple(p) for p in spec.expert_prompts) if spec.expert_prompts is not None else None
        return cls(base_index=int(spec.base_index), router_init=spec.router_init, expert_prompts=prompts,
                   top_k=int(spec.top_k or 1), seed=int(seed), dtype=str(torch_dtype(spec.dtype)).split(".")[-1])

    def prompts_list(self) -> list[list[str]] | None:
        """``expert_prompts`` as lists (what the router init takes)."""
        return [list(p) for p in self.expert_prompts] if self.expert_prompts is not None else None

    def key_fields(self) -> dict[str, Any]:
        """The options the merged weights depend on (the seed only for random routers, prompts only for hidden)."""
        out: dict[str, Any] = dict(base_index=self.base_index, router_init=self.router_init, top_k=self.top_k,
                                   dtype=self.dtype)
        if self.router_init == "hidden":
            out["expert_prompts"] = self.prompts_list()
        else:
            out["seed"] = self.seed
        return out


def _weight_map(path: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file of a checkpoint directory (sharded or single file)."""
    from safetensors import safe_open

    index = path / INDEX_NAME
    if index.is_file():
        try:
            names = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{INDEX_NAME} is not a safetensors index ({exc})", file=path, field=_FIELD) from None
        files = {n: path / f for n, f in names.items()}
        absent = sorted({f.name for f in files.values() if not f.is_file()})
        if absent:
            raise InputError(f"{INDEX_NAME} names missing shard files {absent[:3]}; copy the whole checkpoint",
                             file=path, field=_FIELD)
        return files
    if (path / SINGLE_NAME).is_file():
        with safe_open(path / SINGLE_NAME, framework="pt") as f:
            return dict.fromkeys(f.keys(), path / SINGLE_NAME)
    raise InputError(f"has no safetensors weights ({SINGLE_NAME} or {INDEX_NAME}); save it with "
                     "save_pretrained(..., safe_serialization=True)", file=path, field=_FIELD)


def has_safetensors(path: str | Path) -> bool:
    """False only for a model directory whose weights are PyTorch ``.bin`` files (no safetensors)."""
    p = Path(path)
    if (p / INDEX_NAME).is_file() or (p / SINGLE_NAME).is_file():
        return True
    return not any(p.glob("pytorch_model*.bin"))


class DenseCheckpoint:
    """A dense Llama/Mistral checkpoint directory, read one tensor at a time from its safetensors files.

    Parameters
    ----------
    path
        The directory (``config.json`` and ``model.safetensors`` or a sharded index).
    """

    def __init__(self, path: str | Path) -> None:
        from transformers import AutoConfig

        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise InputError("is not a model directory (no config.json)", file=path, field=_FIELD)
        self.config: PretrainedConfig = AutoConfig.from_pretrained(self.path, local_files_only=True)
        check_dense_config(self.config, path)
        self.shard_of = _weight_map(self.path)

    def tensor(self, name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        """Tensor ``name`` in ``dtype``, checked to have ``shape`` (its shard is opened for this tensor only)."""
        from safetensors import safe_open

        if name not in self.shard_of:
            raise InputError(f"has no tensor {name!r} in its safetensors files; dense checkpoints must be "
                             "Llama/Mistral models saved by transformers", file=self.path, field=_FIELD)
        # One open per tensor: the pages of a shard that stays open count towards resident memory.
        with safe_open(self.shard_of[name], framework="pt") as f:
            t = f.get_tensor(name)
        if tuple(t.shape) != tuple(shape):
            raise InputError(f"tensor {name} has shape {list(t.shape)} but the merged MoE needs {list(shape)}; "
                             "dense checkpoints must share the base's sizes", file=self.path, field=_FIELD)
        return t.to(dtype).contiguous()


def _check_sizes(dense: Sequence[DenseCheckpoint], cfg: MixtralConfig) -> None:
    for d in dense:
        c = d.config
        if (c.hidden_size, c.intermediate_size, c.num_hidden_layers) != (
                cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers):
            raise InputError("dense checkpoints must share hidden and intermediate sizes and the number of layers "
                             f"(base: {cfg.hidden_size}, {cfg.intermediate_size}, {cfg.num_hidden_layers})",
                             file=d.path, field=_FIELD)


def _target_shapes(cfg: MixtralConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of every tensor of the MoE checkpoint (the model's own, a tied LM head left out)."""
    with torch.device("meta"):
        model = MixtralForCausalLM(cfg)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()
            if not (name == "lm_head.weight" and cfg.tie_word_embeddings)}


def _backbone_shapes(target: dict[str, tuple[int, ...]],
                     num_layers: int) -> tuple[dict[str, tuple[int, ...]], list[dict[str, tuple[int, ...]]]]:
    """The tensors taken from the base as they are: outside the layers, and per layer (no ``.mlp.``)."""
    outer: dict[str, tuple[int, ...]] = {}
    layers: list[dict[str, tuple[int, ...]]] = [{} for _ in range(num_layers)]
    for name, shape in target.items():
        if ".mlp." in name:
            continue
        if name.startswith("model.layers."):
            layers[int(name.split(".")[2])][name] = shape
        else:
            outer[name] = shape
    return outer, layers


def _layer_tensors(i: int, dense: Sequence[DenseCheckpoint], base: DenseCheckpoint, shapes: dict[str, tuple[int, ...]],
                   router: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Layer ``i`` of the MoE: the base's attention and norms, the E experts' fused FFNs, the gate."""
    out = {name: base.tensor(name, dtype, shape) for name, shape in shapes.items()}
    inter, hidden = base.config.intermediate_size, base.config.hidden_size
    gate_up = torch.empty(len(dense), 2 * inter, hidden, dtype=dtype)
    down = torch.empty(len(dense), hidden, inter, dtype=dtype)
    src = f"model.layers.{i}.mlp."
    for e, d in enumerate(dense):  # one dense tensor in memory at a time, next to the layer's buffers
        gate_up[e, :inter] = d.tensor(src + "gate_proj.weight", dtype, (inter, hidden))
        gate_up[e, inter:] = d.tensor(src + "up_proj.weight", dtype, (inter, hidden))
        down[e] = d.tensor(src + "down_proj.weight", dtype, (hidden, inter))
    out[src + "experts.gate_up_proj"], out[src + "experts.down_proj"] = gate_up, down
    out[src + "gate.weight"] = router.to(dtype).contiguous()
    return out


def write_merged_checkpoint(paths: Sequence[str | Path], out: str | Path, options: MergeOptions) -> Path:
    """Stream the merge of dense checkpoints ``paths`` into the (new or empty) directory ``out``.

    Returns ``out``. The routers are computed first (the ``hidden`` init holds the base
    dense model for that step only); then each shard is assembled from single tensors
    and written, so at most one layer of the MoE is in memory.
    """
    from safetensors.torch import save_file

    opts = options
    check_merge_options(paths, opts.base_index, opts.router_init, opts.prompts_list())
    dense = [DenseCheckpoint(p) for p in paths]
    base = dense[opts.base_index]
    cfg = _moe_config_from_dense(base.config, len(dense), opts.top_k)
    _check_sizes(dense, cfg)
    dtype = torch_dtype(opts.dtype)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    shapes = _target_shapes(cfg)
    need = sum(math.prod(shape) for shape in shapes.values()) * torch.empty((), dtype=dtype).element_size()
    free = shutil.disk_usage(target).free
    if free < need:
        raise InputError(f"the merged MoE needs {need / 1e9:.2f} GB but {target} has {free / 1e9:.2f} GB free; "
                         "set model.cache_dir to a larger disk", field="model.cache_dir")
    routers = initial_router_weights(cfg, paths[opts.base_index], opts.router_init, opts.prompts_list(), opts.seed,
                                     dtype)
    gc.collect()  # the hidden init's dense model
    outer, layers = _backbone_shapes(shapes, cfg.num_hidden_layers)
    cfg.architectures = ["MixtralForCausalLM"]
    cfg.dtype = dtype
    cfg.save_pretrained(target)
    # The embeddings, then the final norm and LM head, then each layer: the large base
    # tensors go out before the first layer's buffers exist (freed heap is not returned).
    n = cfg.num_hidden_layers + 2
    weight_map: dict[str, str] = {}
    total = 0
    for k in range(n):
        if k < 2:
            tensors = {name: base.tensor(name, dtype, shape) for name, shape in outer.items()
                       if (name == "model.embed_tokens.weight") == (k == 0)}
        else:
            tensors = _layer_tensors(k - 2, dense, base, layers[k - 2], routers[k - 2], dtype)
        shard = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        save_file(tensors, str(target / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, shard))
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        if any(tuple(t.shape) != shapes.get(name) for name, t in tensors.items()):
            raise RuntimeError(f"merged shard {shard} does not match MixtralForCausalLM's tensors")
        del tensors
    if set(weight_map) != set(shapes):
        raise RuntimeError(f"merged checkpoint lacks {sorted(set(shapes) - set(weight_map))[:3]}")
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (target / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    for pattern in COPIED_FILES:
        for f in sorted(base.path.glob(pattern)):
            if f.is_file():
                shutil.copy2(f, target / f.name)
    provenance = dict(version=MERGE_VERSION, paths=[str(Path(p).resolve()) for p in paths], options=opts.key_fields())
    (target / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2) + "\n")
    return target


def merge_key(paths: Sequence[str | Path], options: MergeOptions) -> str:
    """Hash of a merge's inputs: the name, size and mtime of each dense directory's files, and the options.

    The directory's own path is left out, so a copy that keeps mtimes (``shutil.copytree``,
    as the dense-domain cache stores its models) has the same key.
    """
    import transformers

    inputs = []
    for p in paths:
        d = Path(p)
        files = sorted(f for f in d.iterdir() if f.is_file()) if d.is_dir() else []
        inputs.append([[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files])
    blob = dict(version=MERGE_VERSION, inputs=inputs, options=options.key_fields(), torch=torch.__version__,
                transformers=transformers.__version__)
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def _prune_stale(cache_root: Path) -> None:
    """Remove cached merges whose dense inputs all were in the temporary directory and are gone (test runs)."""
    tmp = Path(tempfile.gettempdir()).resolve()
    for entry in cache_root.glob(f"{CACHE_PREFIX}*"):
        try:
            inputs = [Path(p) for p in json.loads((entry / PROVENANCE_NAME).read_text())["paths"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if inputs and all(p.is_relative_to(tmp) and not p.exists() for p in inputs):
            shutil.rmtree(entry, ignore_errors=True)


@dataclass(frozen=True)
class MergedCheckpoint:
    """Where a merged checkpoint is, whether it came from the cache, and the seconds the merge took."""

    path: Path
    cached: bool
    wall_s: float
    temporary: bool


def _write_or_fail(paths: Sequence[str | Path], out: Path, options: MergeOptions) -> None:
    try:
        write_merged_checkpoint(paths, out, options)
    except OSError as exc:  # disk full, permissions: say where and what to do
        raise InputError(f"cannot write the merged checkpoint to {out} ({exc.strerror or exc}); set "
                         "model.cache_dir to a writable directory with room for the MoE",
                         field="model.cache_dir") from None


@contextlib.contextmanager
def merged_checkpoint(paths: Sequence[str | Path], options: MergeOptions,
                      cache_root: Path | None) -> Iterator[MergedCheckpoint]:
    """The merged checkpoint of ``paths`` for the duration of the block: cached, freshly cached, or temporary.

    Parameters
    ----------
    paths
        The dense checkpoint directories (expert e is ``paths[e]``).
    options
        The merge options.
    cache_root
        The cache directory (None: no cache). A merge is written to a hidden temporary
        directory there and renamed into place, so a cached merge is always complete;
        an unwritable cache falls back to a temporary directory.
    """
    t0 = time.perf_counter()
    if cache_root is not None:
        target = cache_root / f"{CACHE_PREFIX}{merge_key(paths, options)}"
        if (target / INDEX_NAME).is_file():
            yield MergedCheckpoint(target, True, time.perf_counter() - t0, False)
            return
        try:
            cache_root.mkdir(parents=True, exist_ok=True)
            tmp: Path | None = Path(tempfile.mkdtemp(dir=cache_root, prefix=f".{target.name}-"))
        except OSError:  # read-only or missing home: merge into a temporary directory instead
            tmp = None
        if tmp is not None:
            try:
                _write_or_fail(paths, tmp, options)
                os.rename(tmp, target)
                _prune_stale(cache_root)
            except OSError:  # another run stored the same merge first
                shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if (target / INDEX_NAME).is_file():
                yield MergedCheckpoint(target, False, time.perf_counter() - t0, False)
                return
    tmp_dir = Path(tempfile.mkdtemp(prefix="emsfl-moe-merge-"))
    try:
        _write_or_fail(paths, tmp_dir, options)
        yield MergedCheckpoint(tmp_dir, False, time.perf_counter() - t0, True)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
