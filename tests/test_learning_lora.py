"""Per-expert LoRA on fused experts: PEFT layout, gradients, isolation (emsfl_sim.learning.lora)."""

from __future__ import annotations

import copy

import pytest
import torch

from emsfl_sim.errors import InputError
from emsfl_sim.learning.lora import (
    LoraSpec,
    apply_lora,
    expert_lora_state,
    gate_state,
    load_expert_lora_state,
    load_gate_state,
    lora_parameters,
    lora_wrappers,
    mask_expert_grads,
    payload_bytes,
)
from emsfl_sim.learning.models import build_model
from emsfl_sim.learning.modelspec import ModelSpec


def _lora_model(preset="tiny", rank=4, seed=0):
    base, ad = build_model(ModelSpec(preset=preset), seed=seed)
    ref = copy.deepcopy(base)
    model = apply_lora(base, ad, LoraSpec(rank=rank, alpha=2 * rank), seed=1)
    return model, ad, ref


@torch.no_grad()
def _randomise_lora(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in lora_parameters(model):
        p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_peft_layout_pinned():
    """Expert e owns A rows [e*r:(e+1)*r] and interleaved B columns [:, e::E] (PEFT 0.21)."""
    model, ad, ref = _lora_model(rank=3)
    _randomise_lora(model)
    E, r = ad.num_experts, 3
    for w in lora_wrappers(model).values():
        A, B = w.lora_A["default"].weight, w.lora_B["default"].weight
        assert A.shape[0] == r * E and B.shape[1] == r * E
        delta = w.get_delta_weight("default")
        for e in range(E):
            mine = w.scaling["default"] * B[:, e::E] @ A[e * r : (e + 1) * r]
            assert torch.allclose(delta[e], mine, atol=1e-6)
    # the forward pass agrees: fold our per-expert deltas into a plain copy of the model
    with torch.no_grad():
        for (i, target), w in lora_wrappers(model).items():
            A, B = w.lora_A["default"].weight, w.lora_B["default"].weight
            P = ad.expert_parameters(ref)[i][target]
            for e in range(E):
                P[e] += w.scaling["default"] * B[:, e::E] @ A[e * r : (e + 1) * r]
        x = torch.randint(0, 259, (2, 16))
        assert torch.allclose(model(input_ids=x).logits, ref(input_ids=x).logits, atol=1e-5)


def test_fresh_lora_is_identity():
    model, ad, ref = _lora_model()
    x = torch.randint(0, 259, (2, 16))
    with torch.no_grad():
        assert torch.allclose(model(input_ids=x).logits, ref(input_ids=x).logits, atol=1e-6)


def test_target_matching_nothing_is_input_error():
    base, ad = build_model(ModelSpec(), seed=0)
    with pytest.raises(InputError, match="up_proj_typo"):
        apply_lora(base, ad, LoraSpec(targets=("gate_up_proj", "up_proj_typo")))


def test_expert_state_roundtrip_and_payload():
    model, ad, _ = _lora_model(rank=4)
    _randomise_lora(model)
    s1 = expert_lora_state(model, 1)
    H, inter, L, r = 128, 256, 4, 4
    assert s1["layers.0.gate_up_proj.lora_A"].shape == (r, H)
    assert s1["layers.0.gate_up_proj.lora_B"].shape == (2 * inter, r)
    assert s1["layers.3.down_proj.lora_A"].shape == (r, inter)
    assert s1["layers.3.down_proj.lora_B"].shape == (H, r)
    n = L * (r * H + 2 * inter * r + r * inter + H * r)
    assert payload_bytes(s1) == 4 * n and payload_bytes(s1, torch.bfloat16) == 2 * n
    s2 = expert_lora_state(model, 2)
    load_expert_lora_state(model, 2, s1)  # copy expert 1's factors onto expert 2
    assert all(torch.equal(expert_lora_state(model, 2)[k], s1[k]) for k in s1)
    assert all(torch.equal(expert_lora_state(model, 1)[k], s1[k]) for k in s1)
    assert any(not torch.equal(s2[k], s1[k]) for k in s1)
    g = gate_state(model, ad)
    assert g["layers.0.gate"].shape == (4, H)
    load_gate_state(model, ad, {k: v * 0 for k, v in g.items()})
    assert all((w == 0).all() for w in ad.router_weights(model))


def _routed_experts(model, ad, x):
    """Per MoE layer, the expert indices each token uses (from the routers' outputs)."""
    idx = []
    hooks = [r.register_forward_hook(lambda m, i, o: idx.append(o[2])) for r in ad.routers(model)]
    with torch.no_grad():
        model(input_ids=x)
    for h in hooks:
        h.remove()
    return idx


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_masked_gradients_reach_exactly_the_assigned_experts(preset):
    model, ad, _ = _lora_model(preset)
    _randomise_lora(model)
    E = ad.num_experts
    assigned = [0, 2] if E == 4 else [1, 4, 6]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 48), generator=g)
    used = set(torch.cat([i.reshape(-1) for i in _routed_experts(model, ad, x)]).tolist())
    assert set(assigned) <= used  # precondition: every assigned expert sees tokens
    for p in model.parameters():
        p.requires_grad_(False)
    for p in lora_parameters(model):
        p.requires_grad_(True)
    handles = mask_expert_grads(model, assigned)
    model(input_ids=x, labels=x).loss.backward()
    for h in handles:
        h.remove()
    for w in lora_wrappers(model).values():
        A, B = w.lora_A["default"].weight, w.lora_B["default"].weight
        r = w.r["default"]
        for e in range(E):
            ga, gb = A.grad[e * r : (e + 1) * r], B.grad[:, e::E]
            if e in assigned:
                assert ga.abs().sum() > 0 and gb.abs().sum() > 0, (e, "assigned expert got no gradient")
            else:
                assert (ga == 0).all() and (gb == 0).all(), (e, "unassigned expert got a gradient")
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_expert_lora_isolation_per_token(preset):
    """Changing expert e's LoRA changes a MoE block's output exactly at the tokens routed to e."""
    model, ad, _ = _lora_model(preset)
    _randomise_lora(model, seed=1)
    block = ad.moe_layers(model)[1]
    g = torch.Generator().manual_seed(2)
    h = torch.randn(3, 20, 128 if preset == "tiny" else 256, generator=g)
    E = ad.num_experts
    with torch.no_grad():
        _, _, top = block.gate(h.reshape(-1, h.shape[-1]))
        before = block(h).reshape(-1, h.shape[-1])
        for e in range(E):
            st = expert_lora_state(model, e)
            bumped = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in st.items()}
            load_expert_lora_state(model, e, bumped)
            after = block(h).reshape(-1, h.shape[-1])
            load_expert_lora_state(model, e, st)
            routed = (top == e).any(dim=-1)
            changed = (after - before).abs().amax(dim=-1) > 1e-6
            assert routed.any()
            assert torch.equal(changed, routed), e
