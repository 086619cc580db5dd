"""emsfl_sim.learning: MoE models, per-expert LoRA, masking, local training, aggregation, memory.

torch/transformers/PEFT only (never simpy). The simulator uses :class:`LearningEngine`.
The names below are loaded on first use (PEP 562), so importing one submodule, e.g.
``emsfl_sim.learning.adapters``, does not import all of torch's training stack.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(['ADAPTERS', 'MixtralAdapter', 'MoEAdapter', 'adapter_for', 'adapter_names', 'get_adapter'], "adapters"),
    **dict.fromkeys(['LORA_RULES', 'aggregate_experts_exact', 'aggregate_experts_factors', 'aggregate_gate_deltas', 'weighted_average'], "aggregate"),
    **dict.fromkeys(['ByteTokenizer', 'DeviceDataStream', 'Example', 'FederatedData', 'build_federated_data', 'iterate_batches', 'make_domain_examples', 'make_lm_batch', 'make_pretrain_examples'], "data"),
    **dict.fromkeys(['DeviceState', 'LearningEngine', 'ModelState', 'Upload'], "engine"),
    **dict.fromkeys(['evaluate_by_domain'], "evaluate"),
    **dict.fromkeys(['LoraSpec', 'apply_lora', 'expert_lora_state', 'gate_state', 'load_expert_lora_state', 'load_gate_state', 'mask_expert_grads', 'payload_bytes'], "lora"),
    **dict.fromkeys(['MaskedRouter', 'apply_gate_mask', 'build_local_model', 'map_back', 'masked_gate', 'remove_gate_mask'], "masking"),
    **dict.fromkeys(['MemoryReport', 'measure_step_peak_bytes', 'measure_training_memory'], "memory"),
    **dict.fromkeys(['build_moe_from_dense'], "merge"),
    **dict.fromkeys(['build_model'], "models"),
    **dict.fromkeys(['ModelSpec', 'PRESETS'], "modelspec"),
    **dict.fromkeys(['domain_experts', 'gate_pretrain', 'pretrain_backbone', 'pretrain_dense'], "pretrain"),
    **dict.fromkeys(['pretrained_preset'], "pretrain_cache"),
    **dict.fromkeys(['assign_experts', 'expert_relevance'], "splitting"),
    **dict.fromkeys(['LLAMA3_8B_X3_MOE_CONFIG', 'MIXTRAL_8X7B_CONFIG', 'OLMOE_1B_7B_CONFIG', 'QWEN15_MOE_A27B_CONFIG', 'count_parameters_meta', 'flops_per_token', 'lora_payload_bytes'], "systems"),
    **dict.fromkeys(['TrainResult', 'TrainSpec', 'local_train'], "train"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its submodule on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
