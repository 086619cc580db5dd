"""What a device trains and sends, counted from the config alone (no torch): payloads and FLOPs.

A device trains, per expert, LoRA factors (``training.mode: lora``) or the expert's weights
(``full``), and in a gate round the shared part (``training.shared``): the routers
(``gate``), the routers plus the backbone (``gate_backbone``: attention, norms, embeddings,
shared experts, the task head), or nothing (``none``). With ``model.head: classification``
the LM head is replaced by the sequence-classification ``score [num_labels, H]`` (no bias
in transformers' Mixtral and Qwen2-MoE). The engine's payloads, counted from the tensors it
uploads, equal these (``tests/test_full_training.py``); the counts of the rest of the model
are :mod:`emsfl_sim.learning.config_counts`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emsfl_sim.errors import InputError
from emsfl_sim.learning.config_counts import (
    DEFAULT_TARGETS,
    ConfigInput,
    MoEShape,
    _lora_per_expert,
    count_parameters,
    moe_shape,
)

__all__ = ["TRAINING_MODES", "SHARED_PARTS", "expert_parameters", "shared_parameters", "upload_payload_bytes",
           "flops_per_token"]

#: values of ``training.mode`` and ``training.shared`` (as :mod:`emsfl_sim.learning.train` has them)
TRAINING_MODES = ("lora", "full")
SHARED_PARTS = ("gate", "gate_backbone", "none")


def _check(mode: str, shared: str) -> None:
    if mode not in TRAINING_MODES:
        raise InputError(f"mode must be one of {TRAINING_MODES}; got {mode!r}", field="training.mode")
    if shared not in SHARED_PARTS:
        raise InputError(f"shared must be one of {SHARED_PARTS}; got {shared!r}", field="training.shared")


def expert_parameters(config: ConfigInput | Any, mode: str = "lora", rank: int = 4,
                      targets: Sequence[str] = DEFAULT_TARGETS) -> int:
    """Parameters one device trains and uploads per expert (all MoE layers).

    ``lora``: the LoRA factors (:func:`~emsfl_sim.learning.config_counts.lora_parameters_per_expert`);
    ``full``: the expert's weights, ``len(moe_layers) * 3 * H * I`` (``gate_up_proj [2I, H]``
    plus ``down_proj [H, I]``).
    """
    _check(mode, "gate")
    s = moe_shape(config)
    if mode == "full":
        return count_parameters(config)["per_expert"]
    return _lora_per_expert(s, rank, targets)


def _head_change(s: MoEShape, head: str, num_labels: int) -> int:
    """Parameters a classification head adds to the LM model's backbone (its score minus the LM head)."""
    if head == "lm":
        return 0
    if head != "classification":
        raise InputError(f"unknown head {head!r}; use lm or classification", field="model.head")
    lm_head = 0 if s.tie_word_embeddings else s.vocab_size * s.hidden_size
    return int(num_labels) * s.hidden_size - lm_head


def shared_parameters(config: ConfigInput | Any, shared: str = "gate", head: str = "lm", num_labels: int = 2) -> int:
    """Parameters of the shared part a gate round trains and uploads (0 for ``none``).

    ``gate``: routers ``len(moe_layers) * E * H``; ``gate_backbone``: the routers plus every
    parameter that is not a routed expert (``count_parameters(...)["backbone"]``, with the
    classification score in place of the LM head).
    """
    _check("lora", shared)
    counts = count_parameters(config)
    if shared == "none":
        return 0
    if shared == "gate":
        return counts["router"]
    return counts["router"] + counts["backbone"] + _head_change(moe_shape(config), head, num_labels)


def upload_payload_bytes(config: ConfigInput | Any, experts: int, include_shared: bool, mode: str = "lora",
                         shared: str = "gate", rank: int = 4, targets: Sequence[str] = DEFAULT_TARGETS,
                         dtype_bytes: int = 2, head: str = "lm", num_labels: int = 2) -> int:
    """Bytes of one upload: ``experts`` experts' trained tensors plus the shared part if included."""
    n = int(experts) * expert_parameters(config, mode, rank, targets)
    if include_shared:
        n += shared_parameters(config, shared, head, num_labels)
    return n * int(dtype_bytes)


def flops_per_token(
    config: ConfigInput | Any,
    trained_experts: Sequence[int] = (),
    train_gate: bool = False,
    masked: bool = False,
    lora_rank: int = 4,
    seq_len: int = 128,
    targets: Sequence[str] = DEFAULT_TARGETS,
    mode: str = "lora",
    shared: str = "gate",
) -> float:
    """Training FLOPs per token of one local step, the formula of ``systems.flops_per_token``.

    Forward ``2 * N_active + 4 * L * seq_len * H`` (+ ``2 * k * lora`` when anything is
    trained in LoRA mode); backward the forward again plus the weight gradients
    ``2 * k * share * P`` of the trained expert tensors (``P`` LoRA factors or, in full
    mode, the expert's weights; ``share = |G| / E``, 1 when masked, then
    ``k = min(top_k, |G|)``) and, if the gate round trains, ``2 *`` the shared part it
    trains (routers; for ``gate_backbone`` also the backbone without the embedding lookup).

    Parameters
    ----------
    config
        Config fields, see :func:`~emsfl_sim.learning.config_counts.read_config`.
    trained_experts, train_gate, masked
        The experts ``G`` the device trains; whether it trains the shared part; whether its
        routing is restricted to ``G`` (enhanced EMS-FL).
    lora_rank, targets
        LoRA rank and targets of one expert's factors.
    seq_len
        Tokens per sequence (attention scores).
    mode, shared
        ``training.mode`` and ``training.shared``.

    Returns
    -------
    float
        FLOPs per token, equal to ``systems.flops_per_token`` (default targets).
    """
    _check(mode, shared)
    s = moe_shape(config)
    counts = count_parameters(config)
    per_expert = expert_parameters(config, mode, lora_rank, targets)
    k = s.top_k
    if masked and trained_experts:
        k = min(k, len(trained_experts))
    embed = s.vocab_size * s.hidden_size
    n_active = counts["backbone"] - embed + counts["router"] + k * counts["per_expert"]
    attn = 4.0 * s.num_layers * seq_len * s.hidden_size
    fwd = 2.0 * n_active + attn
    trained = len(trained_experts)
    if trained == 0 and not train_gate:
        return fwd
    if mode == "lora":
        fwd += 2.0 * k * per_expert
    share = 1.0 if masked else min(1.0, trained / s.num_experts)
    weight_grads = 2.0 * k * share * per_expert
    if train_gate and shared != "none":
        weight_grads += 2.0 * counts["router"]
        if shared == "gate_backbone":
            weight_grads += 2.0 * (counts["backbone"] - embed)
    return fwd + fwd + weight_grads
