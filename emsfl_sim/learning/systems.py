"""Systems counts from a config alone (meta device): parameters, LoRA payload bytes, FLOPs per token.

Real architectures (3x Llama-3-8B MoE, Mixtral-8x7B, Qwen1.5-MoE-A2.7B, OLMoE-1B-7B) need
no weights: the model is built on the meta device through its family's adapter, and the
counts are read off the very modules training uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PretrainedConfig

from emsfl_sim.errors import InputError
from emsfl_sim.learning.adapters import adapter_class, adapter_for
from emsfl_sim.learning.adapters.base import MoEAdapter
from emsfl_sim.learning.lora import LoraSpec, apply_lora, expert_lora_state
from emsfl_sim.learning.systems_configs import (  # noqa: F401  (re-exported: the names callers use)
    LLAMA3_8B_X3_MOE_CONFIG,
    MIXTRAL_8X7B_CONFIG,
    OLMOE_1B_7B_CONFIG,
    QWEN15_MOE_A27B_CONFIG,
    SYSTEMS_CONFIGS,
)

ConfigLike = str | Path | dict[str, Any] | PretrainedConfig


def load_config(config: ConfigLike) -> PretrainedConfig:
    """The config of a registered MoE family from a config.json path (or its directory), a dict or a config."""
    if isinstance(config, PretrainedConfig):
        adapter_for(config)  # an unregistered family fails here, with the registered names
        return config
    if isinstance(config, (str, Path)):
        p = Path(config)
        if p.is_dir():
            p = p / "config.json"
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError("config file not found", file=p) from None
        if "num_local_experts" not in data and "num_experts" not in data:
            raise InputError("has no MoE layers (no num_local_experts or num_experts)", file=p)
        return adapter_class(str(data.get("model_type", "mixtral")), file=str(p)).make_config(data)
    return adapter_class(str(config.get("model_type", "mixtral"))).make_config(config)


def meta_model(config: ConfigLike) -> tuple[nn.Module, MoEAdapter]:
    """The model of ``config`` on the meta device (shapes only, no memory) and its adapter."""
    cfg = load_config(config)
    adapter = adapter_for(cfg)
    with torch.device("meta"):
        return adapter.build(cfg), adapter


def count_parameters_meta(config: ConfigLike) -> dict[str, int]:
    """Parameter counts of an MoE from its config alone (meta device).

    Returns ``total``, ``router`` (all layers), ``experts`` (all routed experts),
    ``per_expert`` (one routed expert index over all layers), ``shared_experts`` (experts
    every token uses, all layers; 0 for routed-only families), ``backbone`` (everything but
    routed experts and routers: attention, embeddings, norms, LM head, shared experts) and
    ``active_per_token`` (backbone + router + top-k routed experts).
    """
    model, ad = meta_model(config)
    total = sum(p.numel() for p in model.parameters())
    router = sum(w.numel() for w in ad.router_weights(model))
    experts = sum(p.numel() for layer in ad.expert_parameters(model) for p in layer.values())
    shared = sum(p.numel() for p in ad.shared_expert_parameters(model))
    per_expert = experts // ad.num_experts
    backbone = total - router - experts
    return dict(
        total=total,
        backbone=backbone,
        router=router,
        experts=experts,
        per_expert=per_expert,
        shared_experts=shared,
        active_per_token=backbone + router + ad.top_k * per_expert,
    )


def lora_parameters_per_expert(config: ConfigLike, rank: int = 4,
                               targets: Sequence[str] = ("gate_up_proj", "down_proj")) -> int:
    """LoRA parameters of one expert over all layers (PEFT on the meta model, the uploaded slices)."""
    model, ad = meta_model(config)
    peft_model = apply_lora(model, ad, LoraSpec(rank=rank, alpha=2 * rank, targets=tuple(targets)))
    return sum(t.numel() for t in expert_lora_state(peft_model, 0).values())


def lora_payload_bytes(
    config: ConfigLike,
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
    model, ad = meta_model(config)
    peft_model = apply_lora(model, ad, LoraSpec(rank=rank, alpha=2 * rank, targets=tuple(targets)))
    n = 0
    for e in experts:
        n += sum(t.numel() for t in expert_lora_state(peft_model, e).values())
    if include_gate:
        n += sum(w.numel() for w in ad.router_weights(peft_model))
    return n * dtype_bytes


def flops_per_token(
    config: ConfigLike,
    trained_experts: Sequence[int] = (),
    train_gate: bool = False,
    masked: bool = False,
    lora_rank: int = 4,
    seq_len: int = 128,
    mode: str = "lora",
    shared: str = "gate",
) -> float:
    """Training FLOPs per token of one local step (forward + backward), for the compute-time model.

    Forward: ``2 * N_active`` (matrix multiplies of the active parameters: backbone incl.
    LM head and shared experts, router, top-k routed experts per token) plus attention
    scores ``4 * L * seq_len * H``. Backward: activation gradients must flow down to the
    lowest trained layer (LoRA or the trained experts sit in every layer), which costs about the forward again
    (``2 * N_active + attention``); weight gradients cost ``2 *`` the trained parameters a
    token touches (its experts' LoRA, or their weights in full mode, when they are
    trained; the shared part when the gate round trains: routers, plus the backbone for
    ``shared="gate_backbone"``). Nothing trained -> forward only. Embedding lookups are free. Without a mask a
    token's experts are trained with probability ``|G| / E`` (uniform routing assumed); a
    masked (enhanced) device routes only among ``G = trained_experts``, so each token uses
    ``min(top_k, |G|)`` experts, all trained. The counts are ``learning/config_counts.py``'s,
    equal to those of the family's meta model (any registered adapter).
    """
    import emsfl_sim.learning.trained_counts as trained_counts

    # one formula: the analytic counts equal the meta model's (tests/test_config_counts.py) and
    # cost no model build, which matters as the compute model asks for every local round
    return trained_counts.flops_per_token(load_config(config), trained_experts, train_gate, masked,
                                          lora_rank=lora_rank, seq_len=seq_len, mode=mode, shared=shared)
