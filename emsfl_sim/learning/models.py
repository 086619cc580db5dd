"""Building the MoE a scenario describes: a preset of any registered family, a local checkpoint, or a dense merge.

Model sources (:func:`build_model`):

* a preset (``tiny``, ``small``) of the family ``model.architecture`` built from a config
  with seeded random weights (optionally pre-trained, :mod:`emsfl_sim.learning.pretrain`);
* a local checkpoint directory (``from_pretrained(..., local_files_only=True)``), fed
  by its own tokenizer (:func:`model_tokenizer`);
* several dense Llama/Mistral checkpoints merged into one MoE (:mod:`emsfl_sim.learning.merge`),
  streamed once into a cached Mixtral checkpoint (:mod:`emsfl_sim.learning.merge_stream`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.utils import logging as hf_logging

from emsfl_sim.errors import InputError
from emsfl_sim.learning.adapters import ADAPTERS, adapter_class, adapter_for, adapter_names
from emsfl_sim.learning.adapters.base import MoEAdapter, check_config_values, check_top_k
from emsfl_sim.learning.data.tokenizer import Tokenizer
from emsfl_sim.learning.merge import build_moe_from_dense
from emsfl_sim.learning.modelspec import PRESETS, ModelSpec, resolve_device, seeded, torch_dtype
from emsfl_sim.learning.pretrain_cache import cache_dir, pretrained_preset
from emsfl_sim.learning.routing import ROUTER_WEIGHTINGS, install_router_weighting
from emsfl_sim.rng import torch_seed

# transformers prints a progress bar per checkpoint load/save: noise in a simulator run log
hf_logging.disable_progress_bar()


def preset_config(spec: ModelSpec) -> PretrainedConfig:
    """The config of a preset-based spec in its family (preset + num_experts/top_k/vocab + overrides)."""
    if spec.preset not in PRESETS:
        raise InputError(f"unknown preset {spec.preset!r}; use one of {sorted(PRESETS)}", field="model.preset")
    from emsfl_sim.learning.data import ByteTokenizer

    tok = ByteTokenizer()
    sizes = dict(PRESETS[spec.preset], vocab_size=spec.vocab_size, pad_token_id=tok.pad_id,
                 bos_token_id=tok.bos_id, eos_token_id=tok.eos_id)
    if spec.num_experts is not None:
        sizes["num_experts"] = int(spec.num_experts)
    if spec.top_k is not None:
        sizes["top_k"] = int(spec.top_k)
    return adapter_class(spec.architecture).preset_config(sizes, dict(spec.config_overrides))


def spec_config(spec: ModelSpec) -> PretrainedConfig:
    """The config of a ``config``-based spec: a mapping or a systems-model name, plus ``config_overrides``."""
    from emsfl_sim.learning.systems import SYSTEMS_CONFIGS

    data = spec.config
    if isinstance(data, str):
        if data not in SYSTEMS_CONFIGS:
            raise InputError(f"unknown config {data!r}; use a config mapping or one of {sorted(SYSTEMS_CONFIGS)}",
                             field="model.config")
        data = SYSTEMS_CONFIGS[data]
    assert data is not None
    check_config_values(dict(data), "model.config")
    check_config_values(dict(spec.config_overrides), "model.config_overrides")
    kw = {**data, **spec.config_overrides}
    return adapter_class(str(kw.get("model_type", spec.architecture)), field="model.config").make_config(kw)


def config_model(spec: ModelSpec, seed: int, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A model of ``spec.config`` with seeded random weights, created directly on ``device`` in ``dtype``.

    Built in place on the target device (a 3 x 8B MoE never passes through host memory);
    the seed fixes the CPU and the device's generator.
    """
    cfg = with_head(spec_config(spec), spec)
    family = adapter_class(str(cfg.model_type))
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(torch_seed(seed, "model_init"))
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype if dtype.is_floating_point else previous)
        try:
            return family.head_class(spec.head)(cfg)
        finally:
            torch.set_default_dtype(previous)


def with_head(cfg: PretrainedConfig, spec: ModelSpec) -> PretrainedConfig:
    """``cfg`` with the classification head's fields (``num_labels``) when ``spec.head`` asks for it."""
    if spec.head == "classification":
        cfg.num_labels = int(spec.num_labels)
    return cfg


def build_model(spec: ModelSpec, seed: int, device: str | torch.device = "cpu") -> tuple[nn.Module, MoEAdapter]:
    """Build the MoE described by ``spec``; returns ``(model, adapter)`` in eval mode on ``device``."""
    dev = resolve_device(device)
    dtype = torch_dtype(spec.dtype)
    if spec.checkpoint_path:
        model = load_moe_checkpoint(spec.checkpoint_path, dtype=dtype, head=spec.head, num_labels=spec.num_labels)
    elif spec.dense_checkpoints:
        model = merged_dense_model(spec, seed, dtype)
    elif spec.config is not None:
        model = config_model(spec, seed, dev, dtype)
    else:
        family = adapter_class(spec.architecture)
        cfg = with_head(preset_config(spec), spec)
        with seeded(torch_seed(seed, "model_init")):
            model = family.head_class(spec.head)(cfg)
        if spec.pretrain_steps:
            pretrained_preset(model, spec, seed)
        model = model.to(dtype)
    adapter = adapter_for(model)
    if adapter.name != spec.architecture:
        raise InputError(f"the model is a {adapter.name!r} model but model.architecture is {spec.architecture!r}; "
                         f"set model.architecture: {adapter.name}", file=spec.checkpoint_path,
                         field="model.architecture")
    if spec.top_k is not None and spec.top_k != adapter.top_k:
        check_top_k(spec.top_k, adapter.num_experts, spec.checkpoint_path)
        adapter.set_top_k(model, spec.top_k)
    if spec.router_weighting not in ROUTER_WEIGHTINGS:
        raise InputError(f"router_weighting must be one of {', '.join(ROUTER_WEIGHTINGS)}; "
                         f"got {spec.router_weighting!r}", field="model.router_weighting")
    install_router_weighting(model, adapter, spec.router_weighting)
    model.to(dev).eval()
    return model, adapter


def merged_dense_model(spec: ModelSpec, seed: int, dtype: torch.dtype) -> nn.Module:
    """The MoE merged from ``spec.dense_checkpoints``: streamed once into the cache, then loaded.

    See :mod:`emsfl_sim.learning.merge_stream` (the cache is :func:`cache_dir`; sets
    ``model.emsfl_merge = {"path", "cached", "wall_s"}``). Dense checkpoints saved as
    PyTorch ``.bin`` files cannot be streamed and are merged in memory.
    """
    from emsfl_sim.learning.merge_stream import MergeOptions, has_safetensors, merged_checkpoint

    if not all(has_safetensors(p) for p in spec.dense_checkpoints):
        return build_moe_from_dense(spec.dense_checkpoints, base_index=spec.base_index, router_init=spec.router_init,
                                    expert_prompts=spec.expert_prompts, top_k=spec.top_k or 1, seed=seed, dtype=dtype)
    with merged_checkpoint(spec.dense_checkpoints, MergeOptions.from_spec(spec, seed), cache_dir(spec)) as merged:
        model = load_moe_checkpoint(merged.path, dtype=dtype)
    cast(Any, model).emsfl_merge = dict(path=None if merged.temporary else str(merged.path), cached=merged.cached,
                                        wall_s=merged.wall_s)
    return model


def model_tokenizer(spec: ModelSpec, model: nn.Module, prompt_format: str = "plain") -> Tokenizer:
    """The tokenizer that feeds the model of ``spec``: the checkpoint's own, or the byte tokenizer of presets.

    A checkpoint directory brings its tokenizer (``AutoTokenizer``, local files only); a
    dense merge uses its base checkpoint's, or the byte tokenizer when that has none (the
    project's tiny dense models). A missing tokenizer or one whose vocabulary exceeds the
    model's embedding is a one-line :class:`InputError`.
    """
    from emsfl_sim.learning.data import byte_tokenizer, dense_tokenizer, load_checkpoint_tokenizer

    rows = int(cast(Any, model).get_input_embeddings().num_embeddings)
    if spec.checkpoint_path:
        return load_checkpoint_tokenizer(spec.checkpoint_path, rows, prompt_format)
    if spec.dense_checkpoints:
        return dense_tokenizer(spec.dense_checkpoints[spec.base_index], rows, prompt_format)
    return byte_tokenizer(rows, prompt_format)


def _no_moe_error(path: str | Path) -> InputError:
    return InputError(
        "has no MoE layers (no mlp.experts); use dense_checkpoints to build an MoE from dense models",
        file=path,
        field="model.checkpoint_path",
    )


#: File names (globs) of model weights in a checkpoint directory.
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def check_checkpoint_dir(path: str | Path, field: str = "model.checkpoint_path") -> Path:
    """A checkpoint directory with a JSON ``config.json`` and weights, or a one-line InputError."""
    import json

    p = Path(path)
    if p.is_file():
        raise InputError("is a file; give the folder that holds config.json and the weights", file=path, field=field)
    if not p.exists():
        raise InputError("does not exist; give the folder that holds config.json and the weights", file=path,
                         field=field)
    if not (p / "config.json").is_file():
        raise InputError("is not a model directory (no config.json)", file=path, field=field)
    try:
        config = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"is not valid JSON ({exc}); restore it from the original checkpoint",
                         file=p / "config.json", field=field) from None
    if not isinstance(config, dict):
        raise InputError("must be a JSON object of config fields; restore it from the original checkpoint",
                         file=p / "config.json", field=field)
    if not any(any(p.glob(pattern)) for pattern in WEIGHT_FILES):
        raise InputError("has a config.json but no weights (model.safetensors or pytorch_model.bin); copy the "
                         "weight files into it or use a complete checkpoint", file=path, field=field)
    from safetensors import safe_open

    for weights in sorted(p.glob("*.safetensors")):
        try:  # reads the header only: a truncated or foreign file fails here, not in the middle of a run
            with safe_open(str(weights), framework="pt"):
                pass
        except Exception as exc:  # safetensors raises its own SafetensorError (and OSError)
            raise InputError(f"is not a valid safetensors file ({str(exc).splitlines()[0]}); restore it from the "
                             "original checkpoint", file=weights, field=field) from None
    return p


def load_moe_checkpoint(path: str | Path, dtype: torch.dtype = torch.float32, head: str = "lm",
                        num_labels: int = 2) -> nn.Module:
    """Load a local MoE checkpoint directory (no downloads); ``head: classification`` adds a fresh score head."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    p = check_checkpoint_dir(path)
    try:
        cfg = AutoConfig.from_pretrained(p, local_files_only=True)
    except (OSError, ValueError) as exc:  # transformers re-raises a JSON error as OSError
        raise InputError(f"config.json cannot be read as a model config ({str(exc).splitlines()[0]}); restore "
                         "it from the original checkpoint", file=p / "config.json", field="model.checkpoint_path") from None
    if cfg.model_type not in ADAPTERS:
        if getattr(cfg, "num_local_experts", None) is None and getattr(cfg, "num_experts", None) is None:
            raise _no_moe_error(path)
        raise InputError(
            f"MoE architecture {cfg.model_type!r} has no adapter; registered: {adapter_names()}",
            file=path,
            field="model.checkpoint_path",
        )
    if head == "classification":
        adapter_class(str(cfg.model_type)).head_class(head)  # a one-line error for a family without the class
        model = AutoModelForSequenceClassification.from_pretrained(p, local_files_only=True, dtype=dtype,
                                                                   num_labels=int(num_labels))
    else:
        model = AutoModelForCausalLM.from_pretrained(p, local_files_only=True, dtype=dtype)
    if not adapter_for(model).moe_layers(model):
        raise _no_moe_error(path)
    return model


