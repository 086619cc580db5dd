"""Mixtral (transformers ``mixtral``): routed experts only, ``num_local_experts``, renormalised top-k."""

from __future__ import annotations

from transformers import MixtralConfig, MixtralForCausalLM, MixtralForSequenceClassification
from transformers.models.mixtral.modeling_mixtral import MixtralTopKRouter

from emsfl_sim.learning.adapters.base import MoEAdapter


class MixtralAdapter(MoEAdapter):
    """transformers' Mixtral (5.x: fused ``gate_up_proj [E, 2I, H]``, ``down_proj [E, H, I]``).

    Routers are ``model.layers[i].mlp.gate`` (``MixtralTopKRouter.weight [E, H]``), experts
    ``model.layers[i].mlp.experts``; ``gate_up_proj[e]`` is ``cat(gate_proj, up_proj)``.
    """

    name = "mixtral"
    config_class = MixtralConfig
    model_class = MixtralForCausalLM
    classification_class = MixtralForSequenceClassification
    router_class = MixtralTopKRouter
    num_experts_field = "num_local_experts"
    expert_width_field = "intermediate_size"
    preset_token_ids = False
