"""OLMoE (transformers ``olmoe``, AllenAI): routed experts only, query/key norms, ``num_experts``."""

from __future__ import annotations

from typing import Any

from transformers import OlmoeConfig, OlmoeForCausalLM
from transformers.models.olmoe.modeling_olmoe import OlmoeTopKRouter

from emsfl_sim.learning.adapters.base import MoEAdapter


class OlmoeAdapter(MoEAdapter):
    """transformers' OLMoE: every layer an MoE of ``num_experts`` experts of width ``intermediate_size``.

    Its router is softmax over all experts then top-k; ``norm_topk_prob`` (False in the
    published OLMoE-1B-7B) decides whether the kept weights are renormalised. Tiny presets
    set it True so the default ``model.router_weighting: renormalised`` needs no swap.
    """

    name = "olmoe"
    config_class = OlmoeConfig
    model_class = OlmoeForCausalLM
    router_class = OlmoeTopKRouter
    num_experts_field = "num_experts"
    expert_width_field = "intermediate_size"

    @classmethod
    def preset_fields(cls, sizes: dict[str, Any]) -> dict[str, Any]:
        """The OLMoE config fields for family-neutral preset sizes (renormalised top-k)."""
        return {**super().preset_fields(sizes), "norm_topk_prob": True}
