"""MoE models: architecture adapters, model sources, gate pre-training, meta-device counting.

The simulator talks to MoE architectures only through :class:`MoEAdapter` (number of
experts, top-k, per-layer router and fused expert parameters, how to slice experts), so a
new architecture is one adapter class registered by name (``@register_adapter("qwen2_moe")``).

Model sources (:func:`build_model`):

* a preset (``tiny``, ``small``) built from a config with seeded random weights;
* a local checkpoint directory (``from_pretrained(..., local_files_only=True)``);
* several dense Llama/Mistral checkpoints merged into one MoE (expert e's FFN from dense
  model e, attention/embeddings/norms from a base, router random or from the mergekit-moe
  ``hidden`` method).

Counting (:func:`count_parameters_meta`, :func:`lora_payload_bytes`, :func:`flops_per_token`)
runs on the meta device, so real architectures (3x Llama-3-8B MoE, Mixtral-8x7B) need no
weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import MixtralConfig, MixtralForCausalLM, PretrainedConfig
from transformers.utils import logging as hf_logging

from emsfl_sim.errors import InputError
from emsfl_sim.learning.routing import ROUTER_WEIGHTINGS, install_router_weighting
from emsfl_sim.rng import torch_seed

# transformers prints a progress bar per checkpoint load/save: noise in a simulator run log
hf_logging.disable_progress_bar()

# --------------------------------------------------------------------------- presets / configs

#: Tiny presets (byte-level vocabulary of 259 = 256 bytes + pad/bos/eos).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=1,
    ),
    "small": dict(
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=8,
        num_experts_per_tok=2,
    ),
}

#: A Mixtral-style MoE made of three Llama-3-8B models (the reference's 3x8B setting; values
#: from meta-llama/Meta-Llama-3-8B config.json: hidden 4096, intermediate 14336, 32 layers,
#: 32 heads, 8 KV heads, vocab 128256, rope_theta 500000).
LLAMA3_8B_X3_MOE_CONFIG: dict[str, Any] = dict(
    model_type="mixtral",
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    tie_word_embeddings=False,
    num_local_experts=3,
    num_experts_per_tok=1,
)

#: mistralai/Mixtral-8x7B-v0.1 config.json.
MIXTRAL_8X7B_CONFIG: dict[str, Any] = dict(
    model_type="mixtral",
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=32768,
    rms_norm_eps=1e-5,
    rope_theta=1e6,
    tie_word_embeddings=False,
    num_local_experts=8,
    num_experts_per_tok=2,
)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16`` (InputError for an unknown name)."""
    if isinstance(name, torch.dtype):
        return name
    if name not in _DTYPES:
        raise InputError(f"unknown dtype {name!r}; use one of {sorted(_DTYPES)}", field="model.dtype")
    return _DTYPES[name]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class ModelSpec:
    """Where the MoE comes from and its routing.

    Exactly one source is used: ``checkpoint_path`` if set, else ``dense_checkpoints`` if
    non-empty, else ``preset`` (+ ``config_overrides``).
    """

    preset: str | None = "tiny"
    config_overrides: dict[str, Any] = field(default_factory=dict)
    checkpoint_path: str | None = None
    dense_checkpoints: list[str] = field(default_factory=list)
    base_index: int = 0
    router_init: str = "random"  # "random" | "hidden"
    expert_prompts: list[list[str]] | None = None
    num_experts: int | None = None
    top_k: int | None = None
    vocab_size: int = 259
    dtype: str = "float32"
    architecture: str = "mixtral"
    #: synthetic backbone pre-training of a preset (0: random weights), see :func:`pretrain_backbone`
    pretrain_steps: int = 0
    pretrain_lr: float = 3e-3
    pretrain_batch_size: int = 16
    #: where pre-trained presets are cached; None: ``$EMSFL_CACHE`` or ``~/.cache/emsfl-sim``;
    #: ``""`` disables the cache
    cache_dir: str | None = None
    #: weights of the kept top-k experts, see :mod:`emsfl_sim.learning.routing`:
    #: "renormalised" (Mixtral), "softmax_topk" (the reference's eq. 9) or "straight_through"
    router_weighting: str = "renormalised"


# --------------------------------------------------------------------------- adapters

_ADAPTERS: dict[str, type[MoEAdapter]] = {}


def register_adapter(name: str):
    """Class decorator registering an :class:`MoEAdapter` under ``name`` (a config ``model_type``)."""

    def deco(cls: type[MoEAdapter]) -> type[MoEAdapter]:
        _ADAPTERS[name] = cls
        cls.name = name
        return cls

    return deco


def get_adapter(name: str, config: PretrainedConfig) -> MoEAdapter:
    """The adapter registered as ``name`` bound to ``config``."""
    if name not in _ADAPTERS:
        raise InputError(
            f"unknown MoE architecture {name!r}; registered: {sorted(_ADAPTERS)}", field="model.architecture"
        )
    return _ADAPTERS[name](config)


def adapter_names() -> list[str]:
    """Registered architecture names."""
    return sorted(_ADAPTERS)


def unwrap(module: nn.Module) -> nn.Module:
    """Strip PEFT wrappers (``base_layer`` chains) from a module."""
    while hasattr(module, "base_layer") and isinstance(module.base_layer, nn.Module):
        module = module.base_layer
    return module


class MoEAdapter:
    """What emsfl-sim needs to know about an MoE architecture.

    Expert parameters are *fused* 3-D tensors with the expert index first; expert ``e`` of a
    layer is ``param[e]``. Works on plain and PEFT-wrapped models.
    """

    name = "base"
    #: names of the fused expert parameters, e.g. ``("gate_up_proj", "down_proj")``
    expert_param_names: tuple[str, ...] = ()

    def __init__(self, config: PretrainedConfig) -> None:
        self.config = config

    @property
    def num_experts(self) -> int:
        raise NotImplementedError

    @property
    def top_k(self) -> int:
        raise NotImplementedError

    @property
    def num_layers(self) -> int:
        raise NotImplementedError

    def moe_layers(self, model: nn.Module) -> list[nn.Module]:
        """The MoE blocks in layer order."""
        raise NotImplementedError

    def routers(self, model: nn.Module) -> list[nn.Module]:
        """The router (gate) module of each MoE layer."""
        raise NotImplementedError

    def set_router(self, model: nn.Module, layer: int, router: nn.Module) -> None:
        """Replace the router module of MoE layer ``layer``."""
        raise NotImplementedError

    def experts_module(self, block: nn.Module) -> nn.Module:
        """The (possibly PEFT-wrapped) experts module of a MoE block."""
        raise NotImplementedError

    def router_weights(self, model: nn.Module) -> list[nn.Parameter]:
        """The router weight ``[E, H]`` of each MoE layer."""
        return [unwrap(r).weight for r in self.routers(model)]

    def expert_parameters(self, model: nn.Module) -> list[dict[str, nn.Parameter]]:
        """Per layer, the fused expert parameters ``{name: Parameter[E, ...]}``."""
        out = []
        for blk in self.moe_layers(model):
            base = unwrap(self.experts_module(blk))
            out.append({n: getattr(base, n) for n in self.expert_param_names})
        return out

    def expert_slice(self, param: torch.Tensor, experts: Sequence[int]) -> torch.Tensor:
        """Rows of a fused expert tensor (copy) for ``experts``, in that order."""
        return param.detach()[list(experts)].clone()

    def set_top_k(self, model: nn.Module, top_k: int) -> None:
        """Change the number of experts each token uses (config and modules)."""
        raise NotImplementedError

    def local_config(self, experts: Sequence[int]) -> PretrainedConfig:
        """Config of a model holding only ``experts`` (top-k capped at their number)."""
        raise NotImplementedError


@register_adapter("mixtral")
class MixtralAdapter(MoEAdapter):
    """transformers' Mixtral (5.x: fused ``gate_up_proj [E, 2I, H]``, ``down_proj [E, H, I]``).

    Routers are ``model.layers[i].mlp.gate`` (``MixtralTopKRouter.weight [E, H]``), experts
    ``model.layers[i].mlp.experts``; ``gate_up_proj[e]`` is ``cat(gate_proj, up_proj)``.
    """

    expert_param_names = ("gate_up_proj", "down_proj")

    @property
    def num_experts(self) -> int:
        return int(self.config.num_local_experts)

    @property
    def top_k(self) -> int:
        return int(self.config.num_experts_per_tok)

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    def _decoder(self, model: nn.Module) -> nn.Module:
        m = model
        # PeftModel -> LoraModel -> MixtralForCausalLM -> MixtralModel
        for attr in ("base_model", "model"):
            while hasattr(m, attr) and not hasattr(m, "layers"):
                m = getattr(m, attr)
        if not hasattr(m, "layers"):
            raise InputError("model has no decoder layers", field="model")
        return m

    def moe_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = self._decoder(model).layers
        return [layer.mlp for layer in layers if hasattr(layer.mlp, "experts")]

    def routers(self, model: nn.Module) -> list[nn.Module]:
        return [blk.gate for blk in self.moe_layers(model)]

    def set_router(self, model: nn.Module, layer: int, router: nn.Module) -> None:
        self.moe_layers(model)[layer].gate = router

    def experts_module(self, block: nn.Module) -> nn.Module:
        return block.experts

    def set_top_k(self, model: nn.Module, top_k: int) -> None:
        check_top_k(top_k, self.num_experts)
        self.config.num_experts_per_tok = int(top_k)
        for blk in self.moe_layers(model):
            blk.top_k = int(top_k)
            unwrap(blk.gate).top_k = int(top_k)

    def local_config(self, experts: Sequence[int]) -> PretrainedConfig:
        cfg = MixtralConfig.from_dict(self.config.to_dict())
        cfg.num_local_experts = len(experts)
        cfg.num_experts_per_tok = min(self.top_k, len(experts))
        cfg._experts_implementation = self.config._experts_implementation
        return cfg


def check_top_k(top_k: int, num_experts: int, file: str | None = None) -> None:
    """InputError unless ``1 <= top_k <= num_experts``."""
    if not 1 <= int(top_k) <= int(num_experts):
        raise InputError(
            f"top_k must be between 1 and the number of experts ({num_experts}); got {top_k}",
            file=file,
            field="model.top_k",
        )


def adapter_for(model_or_config: nn.Module | PretrainedConfig) -> MoEAdapter:
    """The adapter matching a model's (or config's) ``model_type``."""
    cfg = model_or_config if isinstance(model_or_config, PretrainedConfig) else model_or_config.config
    return get_adapter(cfg.model_type, cfg)


# --------------------------------------------------------------------------- building

@contextlib.contextmanager
def seeded(seed: int):
    """Run a block under a fixed torch seed without touching the global RNG streams."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def mixtral_config(spec: ModelSpec) -> MixtralConfig:
    """The config of a preset-based spec (preset + overrides + num_experts/top_k/vocab)."""
    if spec.preset not in PRESETS:
        raise InputError(f"unknown preset {spec.preset!r}; use one of {sorted(PRESETS)}", field="model.preset")
    kw: dict[str, Any] = dict(PRESETS[spec.preset])
    kw.update(vocab_size=spec.vocab_size, max_position_embeddings=1024, tie_word_embeddings=False)
    if spec.num_experts is not None:
        kw["num_local_experts"] = int(spec.num_experts)
    if spec.top_k is not None:
        kw["num_experts_per_tok"] = int(spec.top_k)
    kw.update(spec.config_overrides)
    return make_config(kw)


def make_config(cfg: dict[str, Any] | PretrainedConfig) -> MixtralConfig:
    """A MixtralConfig from a dict (``rope_theta`` accepted) or a config object."""
    if isinstance(cfg, PretrainedConfig):
        return cfg
    kw = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures", "transformers_version")}
    if "rope_theta" in kw:
        kw.setdefault("rope_parameters", {"rope_type": "default", "rope_theta": float(kw.pop("rope_theta"))})
    check_top_k(kw.get("num_experts_per_tok", 2), kw.get("num_local_experts", 8))
    return MixtralConfig(**kw)


def build_model(spec: ModelSpec, seed: int, device: str | torch.device = "cpu") -> tuple[nn.Module, MoEAdapter]:
    """Build the MoE described by ``spec``; returns ``(model, adapter)`` in eval mode on ``device``."""
    dev = resolve_device(device)
    dtype = torch_dtype(spec.dtype)
    if spec.checkpoint_path:
        model = load_moe_checkpoint(spec.checkpoint_path, dtype=dtype)
    elif spec.dense_checkpoints:
        model = build_moe_from_dense(
            spec.dense_checkpoints,
            base_index=spec.base_index,
            router_init=spec.router_init,
            expert_prompts=spec.expert_prompts,
            top_k=spec.top_k or 1,
            seed=seed,
            dtype=dtype,
        )
    else:
        cfg = mixtral_config(spec)
        with seeded(torch_seed(seed, "model_init")):
            model = MixtralForCausalLM(cfg)
        if spec.pretrain_steps:
            pretrained_preset(model, spec, seed)
        model = model.to(dtype)
    adapter = adapter_for(model)
    if spec.top_k is not None and spec.top_k != adapter.top_k:
        check_top_k(spec.top_k, adapter.num_experts, spec.checkpoint_path)
        adapter.set_top_k(model, spec.top_k)
    if spec.router_weighting not in ROUTER_WEIGHTINGS:
        raise InputError(f"router_weighting must be one of {', '.join(ROUTER_WEIGHTINGS)}; "
                         f"got {spec.router_weighting!r}", field="model.router_weighting")
    install_router_weighting(model, adapter, spec.router_weighting)
    model.to(dev).eval()
    return model, adapter


def _no_moe_error(path: str | Path) -> InputError:
    return InputError(
        "has no MoE layers (no mlp.experts); use dense_checkpoints to build an MoE from dense models",
        file=path,
        field="model.checkpoint_path",
    )


def load_moe_checkpoint(path: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load a local MoE checkpoint directory (no downloads)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    p = Path(path)
    if not (p / "config.json").is_file():
        raise InputError("is not a model directory (no config.json)", file=path, field="model.checkpoint_path")
    cfg = AutoConfig.from_pretrained(p, local_files_only=True)
    if cfg.model_type not in _ADAPTERS:
        if getattr(cfg, "num_local_experts", None) is None and getattr(cfg, "num_experts", None) is None:
            raise _no_moe_error(path)
        raise InputError(
            f"MoE architecture {cfg.model_type!r} has no adapter; registered: {adapter_names()}",
            file=path,
            field="model.checkpoint_path",
        )
    model = AutoModelForCausalLM.from_pretrained(p, local_files_only=True, dtype=dtype)
    if not adapter_for(model).moe_layers(model):
        raise _no_moe_error(path)
    return model


def _load_dense(path: str | Path, dtype: torch.dtype) -> nn.Module:
    from transformers import AutoModelForCausalLM

    p = Path(path)
    if not (p / "config.json").is_file():
        raise InputError("is not a model directory (no config.json)", file=path, field="model.dense_checkpoints")
    model = AutoModelForCausalLM.from_pretrained(p, local_files_only=True, dtype=dtype)
    if model.config.model_type not in ("llama", "mistral"):
        raise InputError(
            f"dense checkpoint type {model.config.model_type!r} is not supported; use Llama or Mistral models",
            file=path,
            field="model.dense_checkpoints",
        )
    if getattr(model.config, "attention_bias", False) or getattr(model.config, "mlp_bias", False):
        raise InputError("dense checkpoints with attention/MLP biases cannot become Mixtral experts", file=path)
    return model


def _moe_config_from_dense(dense_cfg: PretrainedConfig, num_experts: int, top_k: int) -> MixtralConfig:
    d = dense_cfg
    check_top_k(top_k, num_experts)
    return MixtralConfig(
        vocab_size=d.vocab_size,
        hidden_size=d.hidden_size,
        intermediate_size=d.intermediate_size,
        num_hidden_layers=d.num_hidden_layers,
        num_attention_heads=d.num_attention_heads,
        num_key_value_heads=d.num_key_value_heads,
        head_dim=getattr(d, "head_dim", None),
        hidden_act=d.hidden_act,
        max_position_embeddings=d.max_position_embeddings,
        rms_norm_eps=d.rms_norm_eps,
        rope_parameters=dict(d.rope_parameters),
        tie_word_embeddings=d.tie_word_embeddings,
        sliding_window=getattr(d, "sliding_window", None),
        bos_token_id=d.bos_token_id,
        eos_token_id=d.eos_token_id,
        pad_token_id=d.pad_token_id,
        num_local_experts=num_experts,
        num_experts_per_tok=top_k,
    )


def _encode_prompts(base_path: str | Path, prompts: list[str], vocab_size: int) -> list[list[int]]:
    """Token ids for router-init prompts: the base checkpoint's tokenizer, else the byte tokenizer."""
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
        return [tok(p)["input_ids"] for p in prompts]
    except Exception:  # no tokenizer files: the tiny models use the built-in byte tokenizer
        from emsfl_sim.learning.data import ByteTokenizer

        bt = ByteTokenizer()
        if vocab_size < bt.vocab_size:
            raise InputError(
                f"no tokenizer in {base_path} and vocab_size {vocab_size} is below the byte tokenizer's 259",
                field="model.expert_prompts",
            ) from None
        return [bt.encode(p) for p in prompts]


@torch.no_grad()
def hidden_router_weights(
    model: nn.Module, prompt_ids: list[list[list[int]]], num_layers: int
) -> torch.Tensor:
    """mergekit-moe ``hidden`` router init: ``[L, E, H]`` unit vectors.

    For expert e and layer i: mean over e's prompts of the last token's hidden state
    entering layer i (``hidden_states[i]``), normalised to unit length.
    """
    dev = next(model.parameters()).device
    per_expert = []
    for ids_list in prompt_ids:
        acc = None
        for ids in ids_list:
            out = model(input_ids=torch.tensor([ids], device=dev), output_hidden_states=True)
            hs = torch.stack([h[0, -1].float() for h in out.hidden_states[:num_layers]])  # [L, H]
            acc = hs if acc is None else acc + hs
        per_expert.append(acc / len(ids_list))
    w = torch.stack(per_expert, dim=1)  # [L, E, H]
    return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def build_moe_from_dense(
    paths: Sequence[str | Path],
    base_index: int = 0,
    router_init: str = "random",
    expert_prompts: list[list[str]] | None = None,
    top_k: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Merge dense Llama/Mistral checkpoints into a Mixtral MoE (mergekit-moe style).

    Expert e of every layer is dense model e's FFN (``gate_proj``/``up_proj`` ->
    ``gate_up_proj[e]``, ``down_proj`` -> ``down_proj[e]``); attention, embeddings, norms
    and the LM head come from ``paths[base_index]``. Dense models are loaded one at a time.
    """
    if not paths:
        raise InputError("needs at least one dense checkpoint", field="model.dense_checkpoints")
    if not 0 <= base_index < len(paths):
        raise InputError(f"base_index must be in [0, {len(paths)})", field="model.base_index")
    if router_init not in ("random", "hidden"):
        raise InputError("router_init must be 'random' or 'hidden'", field="model.router_init")
    base = _load_dense(paths[base_index], dtype)
    cfg = _moe_config_from_dense(base.config, len(paths), top_k)
    with torch.device("meta"):
        moe = MixtralForCausalLM(cfg)
    sd: dict[str, torch.Tensor] = {}
    for name, t in base.state_dict().items():
        if ".mlp." not in name:
            sd[name] = t
    L = cfg.num_hidden_layers
    gate_up = [torch.empty(len(paths), 2 * cfg.intermediate_size, cfg.hidden_size, dtype=dtype) for _ in range(L)]
    down = [torch.empty(len(paths), cfg.hidden_size, cfg.intermediate_size, dtype=dtype) for _ in range(L)]
    for e, p in enumerate(paths):
        dense = base if e == base_index else _load_dense(p, dtype)
        if dense.config.hidden_size != cfg.hidden_size or dense.config.intermediate_size != cfg.intermediate_size:
            raise InputError("dense checkpoints must share hidden and intermediate sizes", file=p)
        for i, layer in enumerate(dense.model.layers):
            gate_up[i][e] = torch.cat([layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight], dim=0)
            down[i][e] = layer.mlp.down_proj.weight
        if dense is not base:
            del dense
    for i in range(L):
        sd[f"model.layers.{i}.mlp.experts.gate_up_proj"] = gate_up[i]
        sd[f"model.layers.{i}.mlp.experts.down_proj"] = down[i]
    if router_init == "hidden":
        if not expert_prompts or len(expert_prompts) != len(paths) or any(not p for p in expert_prompts):
            raise InputError(
                "router_init 'hidden' needs one non-empty list of prompts per dense checkpoint",
                field="model.expert_prompts",
            )
        ids = [_encode_prompts(paths[base_index], pr, cfg.vocab_size) for pr in expert_prompts]
        w = hidden_router_weights(base, ids, L)
    else:
        with seeded(torch_seed(seed, "router_init")):
            w = torch.randn(L, len(paths), cfg.hidden_size) * cfg.initializer_range
    for i in range(L):
        sd[f"model.layers.{i}.mlp.gate.weight"] = w[i].to(dtype).contiguous()
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    moe.load_state_dict(sd, strict=False, assign=True)
    if cfg.tie_word_embeddings:
        moe.tie_weights()
    # non-persistent buffers (rotary inv_freq) are still on meta: rebuild them
    moe.model.rotary_emb = type(moe.model.rotary_emb)(cfg)
    missing = [n for n, t in list(moe.named_parameters()) + list(moe.named_buffers()) if t.is_meta]
    if missing:
        raise RuntimeError(f"dense->MoE merge left tensors unset: {missing[:5]}")
    return moe


def dense_config(preset: str = "tiny", vocab_size: int = 259, **overrides: Any):
    """A LlamaConfig with a preset's backbone sizes (for tiny dense models)."""
    from transformers import LlamaConfig

    p = PRESETS[preset]
    kw = dict(
        vocab_size=vocab_size,
        hidden_size=p["hidden_size"],
        intermediate_size=p["intermediate_size"],
        num_hidden_layers=p["num_hidden_layers"],
        num_attention_heads=p["num_attention_heads"],
        num_key_value_heads=p["num_key_value_heads"],
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    kw.update(overrides)
    return LlamaConfig(**kw)


def pretrain_dense(
    batches: Iterable[dict[str, torch.Tensor]],
    steps: int,
    lr: float = 3e-3,
    seed: int = 0,
    preset: str = "tiny",
    vocab_size: int = 259,
    save_to: str | Path | None = None,
    init_from: nn.Module | None = None,
    train_only: str | None = None,
    domain_probe_weight: float = 0.0,
    num_domains: int = 0,
    **config_overrides: Any,
) -> nn.Module:
    """Train a tiny dense Llama on ``batches`` (language-model loss) for ``steps`` steps.

    Used to make per-domain dense models to merge into an MoE (paper experiment 1). With
    ``init_from`` the dense model starts from that model's weights (shared backbone, so the
    merged MoE's attention fits every expert). ``train_only`` (e.g. ``".mlp."``) trains only the
    parameters whose names contain it, so the shared attention stays what the merge uses.
    Saved with ``save_pretrained`` if ``save_to``.

    With ``domain_probe_weight > 0`` the batches are ``(lm_batch, domain [B])`` pairs and
    the loss adds that weight x the cross-entropy of a linear domain probe on every
    layer's FFN input (all real tokens). A pre-trained LLM's hidden states carry what kind
    of text they read (a linear probe recovers it); a tiny byte-level model trained for a
    few hundred steps does not, so its merged router could not tell the domains apart.
    The probes are discarded: they only shape the hidden states the router later reads.
    """
    from transformers import LlamaForCausalLM

    if init_from is not None:
        model = LlamaForCausalLM(init_from.config)
        model.load_state_dict(init_from.state_dict())
    else:
        with seeded(torch_seed(seed, "dense_init")):
            model = LlamaForCausalLM(dense_config(preset, vocab_size, **config_overrides))
    model.train()
    params = [p for n, p in model.named_parameters() if train_only is None or train_only in n]
    for n, p in model.named_parameters():
        p.requires_grad_(train_only is None or train_only in n)
    probes: list[nn.Linear] = []
    captured: list[torch.Tensor] = []
    hooks = []
    if domain_probe_weight > 0:
        if num_domains < 2:
            raise ValueError("domain probes need num_domains >= 2")
        with seeded(torch_seed(seed, "domain_probe")):
            probes = [nn.Linear(model.config.hidden_size, num_domains, bias=False) for _ in model.model.layers]
        hooks = [layer.mlp.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
                 for layer in model.model.layers]
        params = params + [w for pr in probes for w in pr.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = warmup_cosine(opt, steps)
    it = iter(batches)
    try:
        for _ in range(steps):
            batch = next(it)
            captured.clear()
            if probes:
                batch, domain = batch
            loss = model(**batch).loss
            if probes:
                logits = [pr(h.reshape(-1, h.shape[-1])) for pr, h in zip(probes, captured, strict=True)]
                loss = loss + domain_probe_weight * token_label_ce(logits, batch["attention_mask"], domain)
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    finally:
        for h in hooks:
            h.remove()
    model.eval()
    if save_to is not None:
        model.save_pretrained(save_to)
    return model


def warmup_cosine(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The pre-training schedule: linear warm-up over 10% of ``steps``, cosine decay to 10%
    of the rate (steadier than a constant rate at a few hundred steps).
    """
    warmup = max(1, steps // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * t / max(1, steps)))))


def token_label_ce(flat_logits: Sequence[torch.Tensor], attention_mask: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """Mean over ``flat_logits`` (each ``[B*T, C]``) of the cross-entropy of every real token
    (``attention_mask``) towards its sample's class ``labels [B]``.
    """
    keep = attention_mask.reshape(-1).bool()
    target = labels.to(keep.device)[:, None].expand(-1, attention_mask.shape[1]).reshape(-1)[keep]
    return sum(F.cross_entropy(lg[keep].float(), target) for lg in flat_logits) / len(flat_logits)


def gate_pretrain(
    model: nn.Module,
    adapter: MoEAdapter,
    batches: Iterable[dict[str, torch.Tensor]],
    steps: int,
    lr: float = 1e-2,
) -> list[float]:
    """Train only the routers on a shared mixed-domain sample; returns the loss per step.

    Everything else keeps its ``requires_grad`` flag restored afterwards.
    """
    saved = {id(p): p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    routers = adapter.router_weights(model)
    for w in routers:
        w.requires_grad_(True)
    opt = torch.optim.AdamW(routers, lr=lr, weight_decay=0.0)
    was_training = model.training
    model.train()
    losses = []
    it = iter(batches)
    try:
        for _ in range(steps):
            batch = next(it)
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
    finally:
        for p in model.parameters():
            p.requires_grad_(saved.get(id(p), False))
        model.train(was_training)
    return losses


# --------------------------------------------------------------------------- synthetic pre-training

#: bump when the pre-training recipe or its data change (invalidates cached weights)
PRETRAIN_VERSION = 2
#: entities per domain in the pre-training corpus (more than fine-tuning's 16, so the
#: backbone learns to read any entity name rather than memorising a few)
PRETRAIN_FACTS_PER_DOMAIN = 16


class RecordingRouter(nn.Module):
    """Router wrapper for pre-training: routes as the wrapped router does and keeps its logits.

    The logits (``last_logits``) feed the router-supervision loss of
    :func:`pretrain_backbone`; the wrapped router stays a submodule, so its weight trains.
    """

    def __init__(self, router: nn.Module) -> None:
        super().__init__()
        self.inner = router
        self.last_logits: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor):
        out = self.inner(hidden_states)
        self.last_logits = out[0]
        return out


def align_routers(
    model: nn.Module,
    adapter: MoEAdapter,
    batches: Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]],
    steps: int,
    lr: float = 1e-2,
) -> list[float]:
    """Supervised gate pre-training: teach the routers which expert each sample belongs to.

    ``batches`` yields ``(lm_batch, expert_index [B])``; the loss is the cross-entropy of
    every router's logits on the real tokens towards the sample's expert. Only the router
    weights train. Used for MoEs merged from dense domain models (expert e = domain e),
    whose top-1 routers get no gradient from the language-model loss (Mixtral renormalises
    the single routing weight to 1). Returns the losses.
    """
    originals = adapter.routers(model)
    routers = [RecordingRouter(r) for r in originals]
    for i, r in enumerate(routers):
        adapter.set_router(model, i, r)
    weights = [r.inner.weight for r in routers]
    grads = {id(p): p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for w in weights:
        w.requires_grad_(True)
    opt = torch.optim.AdamW(weights, lr=lr, weight_decay=0.0)
    losses: list[float] = []
    it = iter(batches)
    try:
        for _ in range(int(steps)):
            batch, expert = next(it)
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss = token_label_ce([r.last_logits for r in routers], batch["attention_mask"], expert)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
    finally:
        for i, r in enumerate(originals):
            adapter.set_router(model, i, r)
        for p in model.parameters():
            p.requires_grad_(grads[id(p)])
    return losses


def domain_experts(domain_index: int, num_experts: int, top_k: int) -> list[int]:
    """The experts a synthetic domain is pre-trained on: ``(d * k + j) mod E`` for ``j < k``.

    Top-1 with 4 experts: domain d -> expert ``d mod 4``; top-2 with 8 experts: domain 0
    -> (0, 1), domain 1 -> (2, 3), ...
    """
    return [(domain_index * top_k + j) % num_experts for j in range(top_k)]


def pretrain_backbone(
    model: nn.Module,
    adapter: MoEAdapter,
    seed: int,
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 16,
    router_loss_weight: float = 1.0,
) -> list[float]:
    """Pre-train a tiny MoE (all parameters) on the synthetic domains; returns the losses.

    Stands in for the reference's experts built from domain-specialised dense models plus
    a pre-trained gate, so that a tiny preset behaves like a pre-trained LLM:

    * corpus: every synthetic MCQA domain through all its templates, with facts
      *disjoint* from those fine-tuning asks about (:func:`~emsfl_sim.learning.data.
      make_pretrain_examples` for ``seed``; use the scenario seed for both), so the
      backbone learns the templates, answer words and how to carry an entity to the
      answer position, and fine-tuning must still learn every fact;
    * loss: language-model loss on the answers plus ``router_loss_weight`` x the mean
      over layers of the cross-entropy between each router's logits (all real tokens)
      and the domain's experts :func:`domain_experts` (uniform over them for top-k > 1).
      The model routes with its own routers throughout, so training and use agree; the
      supervision makes them route each domain to its experts (and the experts
      specialise). Without it a top-1 Mixtral router gets no gradient at all: its
      single top-k weight is renormalised to exactly 1.

    AdamW, linear warm-up over 10% of the steps, cosine decay to 10% of ``lr``. Batches
    come from a seeded stream, so the result is a deterministic function of the config,
    ``seed`` and the arguments (on a given machine and thread count).
    """
    from emsfl_sim.learning.data import (
        SYNTHETIC_DOMAINS,
        ByteTokenizer,
        make_lm_batch,
        make_pretrain_examples,
    )
    from emsfl_sim.rng import rng as named_rng

    E, k = adapter.num_experts, adapter.top_k
    tok = ByteTokenizer()
    corpus = [(d, ex) for d, dom in enumerate(SYNTHETIC_DOMAINS)
              for ex in make_pretrain_examples(dom, 512, seed, PRETRAIN_FACTS_PER_DOMAIN)]
    experts = torch.tensor([domain_experts(d, E, k) for d in range(len(SYNTHETIC_DOMAINS))])
    g = named_rng(seed, "pretrain", "batches")
    dev = next(model.parameters()).device
    params = [p for p in model.parameters()]
    saved = {id(p): p.requires_grad for p in params}
    originals = adapter.routers(model)
    routers = [RecordingRouter(r) for r in originals]
    for i, r in enumerate(routers):
        adapter.set_router(model, i, r)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = warmup_cosine(opt, steps)
    was_training = model.training
    model.train()
    losses: list[float] = []
    try:
        with seeded(torch_seed(seed, "pretrain")):
            for _ in range(int(steps)):
                pick = g.choice(len(corpus), size=min(batch_size, len(corpus)), replace=False)
                batch = make_lm_batch([corpus[i][1] for i in pick], tok, 96, dev)
                dom = torch.tensor([corpus[i][0] for i in pick])
                seq = batch["input_ids"].shape[1]
                index = experts[dom][:, None, :].expand(-1, seq, -1).reshape(-1, k).to(dev)
                loss = model(**batch).loss
                if router_loss_weight:
                    keep = batch["attention_mask"].reshape(-1).bool()
                    target = torch.zeros(len(index), E, device=dev).scatter_(1, index, 1.0 / k)[keep]
                    rl = sum(torch.nn.functional.cross_entropy(r.last_logits[keep].float(), target) for r in routers)
                    loss = loss + router_loss_weight * rl / len(routers)
                loss.backward()
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
    finally:
        for i, r in enumerate(originals):
            adapter.set_router(model, i, r)
        for p in params:
            p.requires_grad_(saved[id(p)])
        model.train(was_training)
    return losses


def cache_dir(spec: ModelSpec) -> Path | None:
    """The directory of cached pre-trained presets (None: caching off)."""
    d = spec.cache_dir if spec.cache_dir is not None else os.environ.get("EMSFL_CACHE")
    if d is None:
        d = str(Path.home() / ".cache" / "emsfl-sim")
    return Path(d).expanduser() if d and d.lower() not in ("off", "none", "0") else None


def pretrain_key(config: PretrainedConfig, spec: ModelSpec, seed: int) -> str:
    """Hash of everything the pre-trained weights depend on (config, seed, recipe, version)."""
    cfg = {k: v for k, v in config.to_dict().items() if k not in ("transformers_version", "_name_or_path")}
    blob = json.dumps(
        dict(config=cfg, seed=int(seed), steps=int(spec.pretrain_steps), lr=float(spec.pretrain_lr),
             batch=int(spec.pretrain_batch_size), facts=PRETRAIN_FACTS_PER_DOMAIN, version=PRETRAIN_VERSION),
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def pretrained_preset(model: nn.Module, spec: ModelSpec, seed: int) -> dict[str, Any]:
    """Pre-train a freshly built preset model in place, or load its weights from the cache.

    Sets and returns ``model.emsfl_pretrain`` = ``{"steps", "cached", "wall_s", "loss",
    "path"}``. A cache that cannot be read or written is skipped (the model is then
    pre-trained in memory), so read-only homes work.
    """
    t0 = time.perf_counter()
    adapter = adapter_for(model)
    d = cache_dir(spec)
    path = d / f"pretrained-{spec.preset}-{pretrain_key(model.config, spec, seed)}.pt" if d else None
    info: dict[str, Any] = dict(steps=int(spec.pretrain_steps), cached=False, loss=float("nan"),
                                path=str(path) if path else None)
    if path is not None and path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            info.update(cached=True, loss=float(state.get("loss", float("nan"))))
        except Exception:  # a corrupt or foreign file: pre-train again
            info["cached"] = False
    if not info["cached"]:
        losses = pretrain_backbone(model, adapter, seed, spec.pretrain_steps, spec.pretrain_lr,
                                   spec.pretrain_batch_size)
        info["loss"] = float(sum(losses[-10:]) / len(losses[-10:])) if losses else float("nan")
        if path is not None:
            tmp = None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # write then rename: concurrent runs never see a half-written file
                with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
                    tmp = f.name
                    torch.save({"model": model.state_dict(), "loss": info["loss"]}, f)
                os.replace(tmp, path)
            except OSError:  # read-only or full: keep the in-memory result
                info["path"] = None
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.remove(tmp)
    model.eval()
    info["wall_s"] = time.perf_counter() - t0
    model.emsfl_pretrain = info
    return info


# --------------------------------------------------------------------------- meta-device counting

def load_config(config: str | Path | dict[str, Any] | PretrainedConfig) -> MixtralConfig:
    """A MixtralConfig from a config.json path, a dict or a config object."""
    if isinstance(config, (str, Path)):
        p = Path(config)
        if p.is_dir():
            p = p / "config.json"
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError("config file not found", file=p) from None
        if "num_local_experts" not in data:
            raise _no_moe_error(p)
        return make_config(data)
    return make_config(config)


def meta_model(config: str | Path | dict[str, Any] | PretrainedConfig) -> nn.Module:
    """The model of ``config`` on the meta device (shapes only, no memory)."""
    cfg = load_config(config)
    with torch.device("meta"):
        return MixtralForCausalLM(cfg)


def count_parameters_meta(config: str | Path | dict[str, Any] | PretrainedConfig) -> dict[str, int]:
    """Parameter counts of an MoE from its config alone (meta device).

    Returns ``total``, ``backbone`` (everything but experts and routers), ``router``
    (all layers), ``per_expert`` (one expert index over all layers), ``experts`` (all) and
    ``active_per_token`` (backbone + router + top-k experts).
    """
    model = meta_model(config)
    ad = adapter_for(model)
    total = sum(p.numel() for p in model.parameters())
    router = sum(w.numel() for w in ad.router_weights(model))
    experts = sum(p.numel() for layer in ad.expert_parameters(model) for p in layer.values())
    per_expert = experts // ad.num_experts
    backbone = total - router - experts
    return dict(
        total=total,
        backbone=backbone,
        router=router,
        experts=experts,
        per_expert=per_expert,
        active_per_token=backbone + router + ad.top_k * per_expert,
    )


def lora_payload_bytes(
    config: str | Path | dict[str, Any] | PretrainedConfig,
    rank: int = 4,
    experts: Sequence[int] = (0,),
    targets: Sequence[str] = ("gate_up_proj", "down_proj"),
    dtype_bytes: int = 2,
    include_gate: bool = False,
) -> int:
    """Bytes of the LoRA factors of ``experts`` (all layers), plus the routers if asked.

    Applies PEFT LoRA to the meta model and counts the very slices
    :func:`emsfl_sim.learning.lora.expert_lora_state` uploads, so it matches real payloads.
    """
    from emsfl_sim.learning.lora import LoraSpec, apply_lora, expert_lora_state

    model = meta_model(config)
    ad = adapter_for(model)
    peft_model = apply_lora(model, ad, LoraSpec(rank=rank, alpha=2 * rank, targets=tuple(targets)))
    n = 0
    for e in experts:
        n += sum(t.numel() for t in expert_lora_state(peft_model, e).values())
    if include_gate:
        n += sum(w.numel() for w in ad.router_weights(peft_model))
    return n * dtype_bytes


def flops_per_token(
    config: str | Path | dict[str, Any] | PretrainedConfig,
    trained_experts: Sequence[int] = (),
    train_gate: bool = False,
    masked: bool = False,
    lora_rank: int = 4,
    seq_len: int = 128,
) -> float:
    """Training FLOPs per token of one local step (forward + backward), for the compute-time model.

    Forward: ``2 * N_active`` (matrix multiplies of the active parameters: backbone incl.
    LM head, router, ``active_experts`` experts per token; default top-k) plus attention
    scores ``4 * L * seq_len * H``. Backward: activation gradients must flow down to the
    lowest trained layer (LoRA sits in every layer), which costs about the forward again
    (``2 * N_active + attention``); weight gradients cost ``2 *`` the trained parameters a
    token touches (its experts' LoRA when they are trained, the router when the gate is
    trained). Nothing trained -> forward only. Embedding lookups are free. Without a mask a
    token's experts are trained with probability ``|G| / E`` (uniform routing assumed); a
    masked (enhanced) device routes only among ``G = trained_experts``, so each token uses
    ``min(top_k, |G|)`` experts, all trained.
    """
    cfg = load_config(config)
    counts = count_parameters_meta(cfg)
    k = cfg.num_experts_per_tok
    if masked and trained_experts:
        k = min(k, len(trained_experts))
    embed = cfg.vocab_size * cfg.hidden_size
    n_active = counts["backbone"] - embed + counts["router"] + k * counts["per_expert"]
    attn = 4.0 * cfg.num_hidden_layers * seq_len * cfg.hidden_size
    fwd = 2.0 * n_active + attn
    trained = len(trained_experts)
    if trained == 0 and not train_gate:
        return fwd
    H, inter, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    lora_per_expert = L * lora_rank * (H + 2 * inter + inter + H)
    # LoRA forward adds 2 * its parameters for each active expert
    fwd += 2.0 * k * lora_per_expert
    share = 1.0 if masked else min(1.0, trained / cfg.num_local_experts)
    weight_grads = 2.0 * k * share * lora_per_expert + (2.0 * counts["router"] if train_gate else 0.0)
    return fwd + fwd + weight_grads
