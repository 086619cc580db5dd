"""emsfl_sim.learning: MoE models, per-expert LoRA, masking, local training, aggregation, memory.

torch/transformers/PEFT only (never simpy). The simulator uses :class:`LearningEngine`.
"""

from emsfl_sim.learning.aggregate import (
    LORA_RULES,
    aggregate_experts_exact,
    aggregate_experts_factors,
    aggregate_gate_deltas,
    weighted_average,
)
from emsfl_sim.learning.engine import DeviceState, LearningEngine, ModelState, Upload
from emsfl_sim.learning.lora import (
    LoraSpec,
    apply_lora,
    expert_lora_state,
    gate_state,
    load_expert_lora_state,
    load_gate_state,
    mask_expert_grads,
    payload_bytes,
)
from emsfl_sim.learning.masking import (
    MaskedRouter,
    apply_gate_mask,
    build_local_model,
    map_back,
    masked_gate,
    remove_gate_mask,
)
from emsfl_sim.learning.memory import MemoryReport, measure_step_peak_bytes, measure_training_memory
from emsfl_sim.learning.models import (
    LLAMA3_8B_X3_MOE_CONFIG,
    MIXTRAL_8X7B_CONFIG,
    PRESETS,
    MixtralAdapter,
    ModelSpec,
    MoEAdapter,
    build_model,
    build_moe_from_dense,
    count_parameters_meta,
    domain_experts,
    flops_per_token,
    gate_pretrain,
    get_adapter,
    lora_payload_bytes,
    pretrain_backbone,
    pretrain_dense,
    pretrained_preset,
    register_adapter,
)
from emsfl_sim.learning.train import TrainResult, TrainSpec, local_train

__all__ = [
    "LORA_RULES", "aggregate_experts_exact", "aggregate_experts_factors", "aggregate_gate_deltas",
    "weighted_average",
    "DeviceState", "LearningEngine", "ModelState", "Upload",
    "LoraSpec", "apply_lora", "expert_lora_state", "gate_state", "load_expert_lora_state", "load_gate_state",
    "mask_expert_grads", "payload_bytes",
    "MaskedRouter", "apply_gate_mask", "build_local_model", "map_back", "masked_gate", "remove_gate_mask",
    "MemoryReport", "measure_step_peak_bytes", "measure_training_memory",
    "LLAMA3_8B_X3_MOE_CONFIG", "MIXTRAL_8X7B_CONFIG", "PRESETS", "MixtralAdapter", "ModelSpec", "MoEAdapter",
    "build_model", "build_moe_from_dense", "count_parameters_meta", "domain_experts", "flops_per_token",
    "gate_pretrain", "get_adapter", "lora_payload_bytes", "pretrain_backbone", "pretrain_dense",
    "pretrained_preset", "register_adapter",
    "TrainResult", "TrainSpec", "local_train",
]

# part B (data, evaluation, splitting); guarded so part A imports while those are being written
try:
    from emsfl_sim.learning.data import (  # noqa: F401
        ByteTokenizer,
        DeviceDataStream,
        Example,
        FederatedData,
        build_federated_data,
        iterate_batches,
        make_domain_examples,
        make_lm_batch,
        make_pretrain_examples,
    )
    from emsfl_sim.learning.evaluate import evaluate_by_domain  # noqa: F401
    from emsfl_sim.learning.splitting import assign_experts, expert_relevance  # noqa: F401

    __all__ += [
        "ByteTokenizer", "DeviceDataStream", "Example", "FederatedData", "build_federated_data", "iterate_batches",
        "make_domain_examples", "make_lm_batch", "make_pretrain_examples", "evaluate_by_domain", "assign_experts", "expert_relevance",
    ]
except ImportError:  # pragma: no cover
    pass
