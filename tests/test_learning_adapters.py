"""MoE families through the adapter seam (emsfl_sim.learning.adapters) and their systems counts.

Reference counts are computed by hand from each published config.json (the arithmetic is
in the comments) and checked against the published totals: Mixtral-8x7B "46.7B total,
12.9B active" (Mistral AI, "Mixtral of experts", arXiv:2401.04088, section 2.1),
Qwen1.5-MoE-A2.7B "14.3B total, 2.7B activated" (Qwen team, model card of
Qwen/Qwen1.5-MoE-A2.7B), OLMoE-1B-7B "6.9B total, 1.3B active" (Muennighoff et al.,
"OLMoE", arXiv:2409.02060, Table 1).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from emsfl_sim.errors import InputError
from emsfl_sim.learning.adapters import ADAPTERS, adapter_names
from emsfl_sim.learning.lora import LoraSpec, apply_lora, expert_lora_state
from emsfl_sim.learning.masking import build_local_model, masked_gate
from emsfl_sim.learning.models import build_model
from emsfl_sim.learning.modelspec import ModelSpec
from emsfl_sim.learning.systems import (
    MIXTRAL_8X7B_CONFIG,
    OLMOE_1B_7B_CONFIG,
    QWEN15_MOE_A27B_CONFIG,
    SYSTEMS_CONFIGS,
    count_parameters_meta,
    flops_per_token,
    lora_payload_bytes,
)

FAMILIES = ["mixtral", "olmoe", "qwen2_moe"]


def test_the_registry_holds_three_families_and_a_wrong_name_lists_them() -> None:
    assert adapter_names() == FAMILIES == sorted(ADAPTERS)
    with pytest.raises(InputError) as err:
        build_model(ModelSpec(architecture="gpt-moe"), seed=0)
    assert str(err.value) == ("model.architecture: unknown MoE architecture 'gpt-moe'; "
                              "use one of mixtral, olmoe, qwen2_moe")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_tiny_preset_of_each_family_has_the_fused_expert_layout(family: str) -> None:
    model, ad = build_model(ModelSpec(preset="tiny", architecture=family), seed=0)
    assert ad.name == family and model.config.model_type == family
    assert (ad.num_experts, ad.top_k, ad.num_layers, ad.expert_width) == (4, 1, 4, 256)
    for layer in ad.expert_parameters(model):
        assert tuple(layer["gate_up_proj"].shape) == (4, 2 * 256, 128)
        assert tuple(layer["down_proj"].shape) == (4, 128, 256)
    assert all(tuple(w.shape) == (4, 128) for w in ad.router_weights(model))
    shared = ad.shared_expert_parameters(model)
    # Qwen2-MoE: a shared expert (gate/up/down, 3 * 256 * 128) and its sigmoid gate (128) per layer
    assert sum(p.numel() for p in shared) == (4 * (3 * 256 * 128 + 128) if family == "qwen2_moe" else 0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weighting", ["renormalised", "softmax_topk", "straight_through"])
def test_router_weightings_keep_the_family_router_class(family: str, weighting: str) -> None:
    model, ad = build_model(ModelSpec(architecture=family, router_weighting=weighting, top_k=2), seed=0)
    assert all(isinstance(r, ad.router_class) for r in ad.routers(model))
    x = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(input_ids=x, output_router_logits=True)
    # transformers records router logits by the family's router class: still one per layer
    assert len(out.router_logits) == 4 and tuple(out.router_logits[0].shape) == (24, 4)
    _, weights, _ = ad.routers(model)[0](torch.randn(5, 128))
    sums = weights.sum(-1)
    if weighting == "softmax_topk":
        assert (sums < 1).all()  # eq. (9): the kept top-k softmax entries, not renormalised
    else:
        assert torch.allclose(sums, torch.ones(5))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("group", [[2], [1, 3]])
def test_local_model_equals_the_masked_global_model_in_every_family(family: str, group: list[int]) -> None:
    model, ad = build_model(ModelSpec(architecture=family, top_k=2), seed=0)
    local, lad = build_local_model(model, ad, group)
    x = torch.randint(0, 256, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        with masked_gate(model, ad, group):
            masked = model(input_ids=x).logits
        got = local(input_ids=x).logits
    assert torch.allclose(got, masked, atol=1e-5)
    assert lad.num_experts == len(group)
    # shared experts (Qwen2-MoE) are backbone: the local model shares them, no copy
    for g, loc in zip(ad.shared_expert_parameters(model), lad.shared_expert_parameters(local), strict=True):
        assert g.data_ptr() == loc.data_ptr()


def test_the_shared_expert_is_frozen_backbone_and_never_uploaded() -> None:
    model, ad = build_model(ModelSpec(architecture="qwen2_moe"), seed=0)
    peft_model = apply_lora(model, ad, LoraSpec(rank=2, alpha=4))
    assert not any(p.requires_grad for p in ad.shared_expert_parameters(peft_model))
    state = expert_lora_state(peft_model, 0)
    assert state and not any("shared" in key for key in state)
    # rank 2, per layer gate_up (2 * (128 + 512)) + down (2 * (256 + 128)) = 2048 values, 4 layers
    assert sum(t.numel() for t in state.values()) == 4 * 2048


# ------------------------------------------------------------------ published configs, by hand
# Per decoder layer, H hidden, I routed-expert width, E experts, V vocabulary, L layers.
# Mixtral-8x7B (H 4096, I 14336, 32 heads, 8 KV heads of 128, E 8, top-2, V 32000, L 32):
#   attention q,o 4096*4096 + k,v 4096*1024 = 41,943,040; norms 2*4096; router 8*4096 = 32,768;
#   one expert 3*4096*14336 = 176,160,768; embeddings and LM head 2*32000*4096; final norm 4096.
MIXTRAL_EXPERT = 3 * 4096 * 14336
MIXTRAL_LAYER_FIXED = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 2 * 4096 + 8 * 4096
MIXTRAL_OUTER = 2 * 32000 * 4096 + 4096
# Qwen1.5-MoE-A2.7B (H 2048, I 1408, 16 heads = 16 KV heads of 128, q/k/v with bias, E 60, top-4,
#   one shared expert 3*2048*5632 with a [1, 2048] sigmoid gate, V 151936, L 24).
QWEN_EXPERT = 3 * 2048 * 1408
QWEN_LAYER_FIXED = (3 * (2048 * 2048 + 2048) + 2048 * 2048 + 2 * 2048 + 60 * 2048
                    + 3 * 2048 * 5632 + 2048)
QWEN_OUTER = 2 * 151936 * 2048 + 2048
# OLMoE-1B-7B-0924 (H 2048, I 1024, 16 heads = 16 KV heads of 128, q/k RMSNorms of 2048, E 64, top-8,
#   V 50304, L 16).
OLMOE_EXPERT = 3 * 2048 * 1024
OLMOE_LAYER_FIXED = 4 * 2048 * 2048 + 2 * 2048 + 2 * 2048 + 64 * 2048
OLMOE_OUTER = 2 * 50304 * 2048 + 2048

PUBLISHED = {
    # name: (config, layers, experts, top_k, per-layer fixed, one expert, outside the layers, embed,
    #        published total and active in billions)
    "mixtral-8x7b": (MIXTRAL_8X7B_CONFIG, 32, 8, 2, MIXTRAL_LAYER_FIXED, MIXTRAL_EXPERT, MIXTRAL_OUTER,
                     32000 * 4096, 46.7, 12.9),
    "qwen1.5-moe-a2.7b": (QWEN15_MOE_A27B_CONFIG, 24, 60, 4, QWEN_LAYER_FIXED, QWEN_EXPERT, QWEN_OUTER,
                          151936 * 2048, 14.3, 2.7),
    "olmoe-1b-7b": (OLMOE_1B_7B_CONFIG, 16, 64, 8, OLMOE_LAYER_FIXED, OLMOE_EXPERT, OLMOE_OUTER,
                    50304 * 2048, 6.9, 1.3),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_of_published_configs_match_the_hand_count(name: str) -> None:
    config, layers, experts, top_k, fixed, expert, outer, _, total_b, active_b = PUBLISHED[name]
    counts = count_parameters_meta(config)
    total = layers * (fixed + experts * expert) + outer
    active = layers * (fixed + top_k * expert) + outer
    assert counts["total"] == total
    assert counts["active_per_token"] == active
    assert counts["per_expert"] == layers * expert
    assert (round(total / 1e9, 1), round(active / 1e9, 1)) == (total_b, active_b)
    assert SYSTEMS_CONFIGS[name] is config


@pytest.mark.parametrize("name, width, hidden", [("mixtral-8x7b", 14336, 4096), ("qwen1.5-moe-a2.7b", 1408, 2048),
                                                 ("olmoe-1b-7b", 1024, 2048)])
def test_lora_payload_of_published_configs_matches_the_hand_count(name: str, width: int, hidden: int) -> None:
    config, layers = PUBLISHED[name][0], PUBLISHED[name][1]
    # rank r: gate_up_proj A [r, H] + B [2I, r], down_proj A [r, I] + B [H, r]; bf16 = 2 bytes
    per_expert = layers * 4 * (hidden + 2 * width + width + hidden) * 2
    assert lora_payload_bytes(config, rank=4, experts=[0]) == per_expert
    assert lora_payload_bytes(config, rank=4, experts=[0, 1]) == 2 * per_expert


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_flops_per_token_of_published_configs_match_the_hand_count(name: str) -> None:
    config, layers, experts, top_k, fixed, expert, outer, embed, _, _ = PUBLISHED[name]
    hidden, width = config["hidden_size"], expert // (3 * config["hidden_size"])
    seq = 128
    active_no_embed = layers * (fixed + top_k * expert) + outer - embed
    forward = 2 * active_no_embed + 4 * layers * seq * hidden  # matmuls + attention scores
    assert flops_per_token(config, seq_len=seq) == forward
    lora = layers * 4 * (2 * hidden + 3 * width)  # one expert's rank-4 LoRA parameters
    # one trained expert, no gate: LoRA forward for the top-k experts, backward = forward again,
    # weight gradients for the 1/E of tokens' expert slots that hit the trained expert
    fwd = forward + 2 * top_k * lora
    assert flops_per_token(config, [0], lora_rank=4, seq_len=seq) == pytest.approx(
        2 * fwd + 2 * top_k * (1 / experts) * lora, rel=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_flops_agree_with_torch_flop_counter(family: str) -> None:
    """The systems formula vs ``torch.utils.flop_counter.FlopCounterMode`` on a real tiny forward pass."""
    model, _ = build_model(ModelSpec(architecture=family, top_k=2), seed=0)
    # eager kernels: the flop counter has no formula for grouped_mm or the CPU sdpa kernel
    model.set_attn_implementation("eager")
    model.set_experts_implementation("eager")
    seq = 64
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=torch.randint(0, 256, (1, seq), generator=torch.Generator().manual_seed(0)))
    measured = counter.get_total_flops() / seq
    # the formula also counts the norms' few parameters as multiply-adds: within 0.5 %
    assert flops_per_token(model.config, seq_len=seq) == pytest.approx(measured, rel=5e-3)


def test_flops_build_no_meta_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compute model asks for FLOPs every round: they come from the analytic counts, no model is built."""
    import emsfl_sim.learning.systems as systems

    built: list[int] = []
    original = systems.meta_model
    monkeypatch.setattr(systems, "meta_model", lambda c: built.append(1) or original(c))
    first = flops_per_token(OLMOE_1B_7B_CONFIG, [0], True, lora_rank=4)
    assert flops_per_token(OLMOE_1B_7B_CONFIG, [0], True, lora_rank=4) == first
    assert flops_per_token(OLMOE_1B_7B_CONFIG, [0, 1], False, lora_rank=4) != first
    assert flops_per_token(OLMOE_1B_7B_CONFIG, [0], True, lora_rank=8) != first
    assert built == []
