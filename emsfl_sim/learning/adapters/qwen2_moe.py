"""Qwen2-MoE (transformers ``qwen2_moe``, e.g. Qwen1.5-MoE-A2.7B): routed experts plus a shared expert.

How EMS-FL treats the shared expert: every token passes through it (it is gated by a
per-token sigmoid, not routed), so it belongs to no domain and to no cluster. It is part
of the frozen backbone, like attention: it is not split, not adapted by LoRA, not
uploaded, and an enhanced-EMS-FL local model shares it with the global model. Expert
relevance, splitting and payloads count the routed experts only.
"""

from __future__ import annotations

from typing import Any

from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen2MoeForSequenceClassification
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeTopKRouter

from emsfl_sim.learning.adapters.base import MoEAdapter


class Qwen2MoeAdapter(MoEAdapter):
    """transformers' Qwen2-MoE: ``num_experts`` routed experts of width ``moe_intermediate_size``.

    The block also holds ``shared_expert`` (an MLP of width
    ``shared_expert_intermediate_size``) and ``shared_expert_gate`` (``[1, H]``).
    """

    name = "qwen2_moe"
    config_class = Qwen2MoeConfig
    model_class = Qwen2MoeForCausalLM
    classification_class = Qwen2MoeForSequenceClassification
    router_class = Qwen2MoeTopKRouter
    num_experts_field = "num_experts"
    expert_width_field = "moe_intermediate_size"
    shared_expert_modules = ("shared_expert", "shared_expert_gate")

    @classmethod
    def preset_fields(cls, sizes: dict[str, Any]) -> dict[str, Any]:
        """Qwen2-MoE fields for preset sizes: a shared expert as wide as one routed expert."""
        width = sizes["intermediate_size"]
        return {**super().preset_fields(sizes), "intermediate_size": width,
                "shared_expert_intermediate_size": width, "decoder_sparse_step": 1, "mlp_only_layers": [],
                "norm_topk_prob": True}
