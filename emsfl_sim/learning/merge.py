"""Dense -> MoE merging (mergekit-moe style): expert e of every layer is dense model e's FFN.

Attention, embeddings, norms and the LM head come from one base model; the routers start
random or from the mergekit-moe ``hidden`` method. The merge target is Mixtral (what
mergekit-moe writes for Llama/Mistral experts). :func:`build_moe_from_dense` merges in
memory; :mod:`emsfl_sim.learning.merge_stream` streams the same merge into a checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import MixtralConfig, MixtralForCausalLM, PretrainedConfig

from emsfl_sim.errors import InputError
from emsfl_sim.learning.adapters.base import check_top_k
from emsfl_sim.learning.modelspec import PRESETS, seeded
from emsfl_sim.rng import torch_seed


def _load_dense(path: str | Path, dtype: torch.dtype) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    p = Path(path)
    if not (p / "config.json").is_file():
        raise InputError("is not a model directory (no config.json)", file=path, field="model.dense_checkpoints")
    check_dense_config(AutoConfig.from_pretrained(p, local_files_only=True), path)
    return AutoModelForCausalLM.from_pretrained(p, local_files_only=True, dtype=dtype)


def check_dense_config(cfg: PretrainedConfig, path: str | Path) -> None:
    """One-line InputError unless ``cfg`` is a bias-free Llama/Mistral config (what Mixtral experts can hold)."""
    if cfg.model_type not in ("llama", "mistral"):
        raise InputError(
            f"dense checkpoint type {cfg.model_type!r} is not supported; use Llama or Mistral models",
            file=path,
            field="model.dense_checkpoints",
        )
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        raise InputError("dense checkpoints with attention/MLP biases cannot become Mixtral experts", file=path)


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
    """Token ids (bos first) for router-init prompts: the base checkpoint's tokenizer, else the byte tokenizer."""
    from emsfl_sim.learning.data import dense_tokenizer

    tok = dense_tokenizer(base_path, vocab_size)
    return [tok.encode(p, add_bos=True) for p in prompts]


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
        acc: torch.Tensor | None = None
        for ids in ids_list:
            out = model(input_ids=torch.tensor([ids], device=dev), output_hidden_states=True)
            hs = torch.stack([h[0, -1].float() for h in out.hidden_states[:num_layers]])  # [L, H]
            acc = hs if acc is None else acc + hs
        assert acc is not None, "router_init 'hidden' needs prompts for every expert (checked by the caller)"
        per_expert.append(acc / len(ids_list))
    w = torch.stack(per_expert, dim=1)  # [L, E, H]
    return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def check_merge_options(paths: Sequence[str | Path], base_index: int, router_init: str,
                        expert_prompts: list[list[str]] | None) -> None:
    """One-line InputError for merge options that cannot work (before any weights are read)."""
    if not paths:
        raise InputError("needs at least one dense checkpoint", field="model.dense_checkpoints")
    if not 0 <= base_index < len(paths):
        raise InputError(f"base_index must be in [0, {len(paths)})", field="model.base_index")
    if router_init not in ("random", "hidden"):
        raise InputError("router_init must be 'random' or 'hidden'", field="model.router_init")
    if router_init == "hidden" and (
        not expert_prompts or len(expert_prompts) != len(paths) or any(not p for p in expert_prompts)
    ):
        raise InputError(
            "router_init 'hidden' needs one non-empty list of prompts per dense checkpoint",
            field="model.expert_prompts",
        )


def initial_router_weights(
    cfg: MixtralConfig,
    base_path: str | Path,
    router_init: str,
    expert_prompts: list[list[str]] | None,
    seed: int,
    dtype: torch.dtype,
    base: nn.Module | None = None,
) -> torch.Tensor:
    """The merged routers ``[L, E, H]`` (float32): seeded random, or the ``hidden`` init.

    The ``hidden`` init runs the base dense model (``base``, else loaded from
    ``base_path`` in ``dtype`` for this step and released on return: one dense model in
    memory). Shared by the in-memory and the streaming merge, so both give the same routers.
    """
    L, E = cfg.num_hidden_layers, cfg.num_local_experts
    if router_init == "hidden":
        assert expert_prompts is not None, "checked by check_merge_options"
        model = base if base is not None else _load_dense(base_path, dtype)
        ids = [_encode_prompts(base_path, pr, cfg.vocab_size) for pr in expert_prompts]
        return hidden_router_weights(model, ids, L)
    with seeded(torch_seed(seed, "router_init")):
        return torch.randn(L, E, cfg.hidden_size) * cfg.initializer_range


def build_moe_from_dense(
    paths: Sequence[str | Path],
    base_index: int = 0,
    router_init: str = "random",
    expert_prompts: list[list[str]] | None = None,
    top_k: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Merge dense Llama/Mistral checkpoints into a Mixtral MoE in memory (mergekit-moe style).

    Expert e of every layer is dense model e's FFN (``gate_proj``/``up_proj`` ->
    ``gate_up_proj[e]``, ``down_proj`` -> ``down_proj[e]``); attention, embeddings, norms
    and the LM head come from ``paths[base_index]``. Dense models are loaded one at a time
    next to the base (peak: two dense models plus the MoE). :mod:`.merge_stream` writes the
    same MoE to a checkpoint tensor by tensor instead (what :func:`~.models.build_model` uses).
    """
    check_merge_options(paths, base_index, router_init, expert_prompts)
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
    w = initial_router_weights(cfg, paths[base_index], router_init, expert_prompts, seed, dtype, base=base)
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


