"""Masked gate and partial loading (emsfl_sim.learning.masking)."""

from __future__ import annotations

import pytest
import torch

from emsfl_sim.learning.masking import build_local_model, map_back, masked_gate
from emsfl_sim.learning.models import build_model
from emsfl_sim.learning.modelspec import ModelSpec

CASES = [("tiny", [2]), ("tiny", [1, 3]), ("tiny", [3, 0, 1]), ("small", [5]), ("small", [0, 6]), ("small", [7, 1, 2, 4])]


@pytest.mark.parametrize("preset, group", CASES)
def test_local_model_equals_full_model_with_masked_gate(preset, group):
    model, ad = build_model(ModelSpec(preset=preset), seed=0)
    local, lad = build_local_model(model, ad, group)
    assert lad.num_experts == len(group) and lad.top_k == min(ad.top_k, len(group))
    x = torch.randint(0, 259, (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(input_ids=x).logits
        with masked_gate(model, ad, group):
            masked = model(input_ids=x).logits
        got = local(input_ids=x).logits
    assert torch.allclose(got, masked, atol=1e-5)
    assert not torch.allclose(full, masked, atol=1e-3)  # the mask matters
    # the gate is restored
    with torch.no_grad():
        assert torch.equal(model(input_ids=x).logits, full)


def test_masked_gate_routes_only_inside_group():
    model, ad = build_model(ModelSpec(preset="small"), seed=0)
    x = torch.randint(0, 259, (2, 30))
    with masked_gate(model, ad, [1, 5]), torch.no_grad():
        out = model(input_ids=x, output_router_logits=True)
    assert len(out.router_logits) == 4  # still recorded by transformers
    for logits in out.router_logits:
        assert torch.isinf(logits[:, [0, 2, 3, 4, 6, 7]]).all()
        assert torch.isfinite(logits[:, [1, 5]]).all()


def test_local_model_holds_only_its_experts_and_shares_backbone():
    model, ad = build_model(ModelSpec(preset="small"), seed=0)
    local, lad = build_local_model(model, ad, [6, 2])
    for i, (gl, ll) in enumerate(zip(ad.expert_parameters(model), lad.expert_parameters(local), strict=False)):
        assert ll["gate_up_proj"].shape[0] == 2
        assert torch.equal(ll["gate_up_proj"][0], gl["gate_up_proj"][6])
        assert torch.equal(ll["down_proj"][1], gl["down_proj"][2])
        assert torch.equal(lad.router_weights(local)[i], ad.router_weights(model)[i][[6, 2]])
    assert local.model.embed_tokens.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert local.lm_head.weight.data_ptr() == model.lm_head.weight.data_ptr()
    n_local = sum(p.numel() for p in local.parameters())
    n_full = sum(p.numel() for p in model.parameters())
    per_expert = sum(layer["gate_up_proj"][0].numel() + layer["down_proj"][0].numel() for layer in ad.expert_parameters(model))
    assert n_full - n_local == 6 * per_expert + 6 * 256 * 4  # 6 experts and 6 router rows per layer fewer


def test_map_back_writes_only_the_group():
    model, ad = build_model(ModelSpec(), seed=0)
    before = [{k: v.detach().clone() for k, v in layer.items()} for layer in ad.expert_parameters(model)]
    local, lad = build_local_model(model, ad, [3, 1])
    with torch.no_grad():
        for layer in lad.expert_parameters(local):
            for p in layer.values():
                p.add_(1.0)
    map_back(model, ad, local, lad, [3, 1])
    for b, layer in zip(before, ad.expert_parameters(model), strict=False):
        for k, p in layer.items():
            assert torch.equal(p[[0, 2]], b[k][[0, 2]])
            assert torch.allclose(p[[3, 1]], b[k][[3, 1]] + 1.0)
