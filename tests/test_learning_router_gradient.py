"""Top-1 router gradients: Mixtral's renormalised weight vs the straight-through option."""

from __future__ import annotations

import pytest
import torch

from emsfl_sim.errors import InputError
from emsfl_sim.learning import LearningEngine, LoraSpec, ModelSpec, TrainSpec, make_domain_examples
from emsfl_sim.learning.data import ByteTokenizer, make_lm_batch
from emsfl_sim.learning.models import StraightThroughTop1Router, build_model


def _loss_and_router_grad(how: str) -> tuple[torch.Tensor, float]:
    model, adapter = build_model(ModelSpec(preset="tiny", top_k=1, top1_router_gradient=how), seed=5)
    batch = make_lm_batch(make_domain_examples("law", 8, seed=0), ByteTokenizer(), 64)
    for w in adapter.router_weights(model):
        w.requires_grad_(True)
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), sum(float(w.grad.norm()) for w in adapter.router_weights(model) if w.grad is not None)


def test_straight_through_keeps_the_model_and_gives_the_top1_router_a_gradient() -> None:
    loss_plain, grad_plain = _loss_and_router_grad("renormalised")
    loss_st, grad_st = _loss_and_router_grad("straight_through")
    assert torch.equal(loss_plain, loss_st)  # same forward pass, bit for bit
    assert grad_plain < 1e-7  # Mixtral: p / p = 1, no gradient
    assert grad_st > 1e-4


def test_straight_through_routers_are_installed_only_for_top1() -> None:
    m1, a1 = build_model(ModelSpec(preset="tiny", top_k=1, top1_router_gradient="straight_through"), seed=0)
    assert all(isinstance(r, StraightThroughTop1Router) for r in a1.routers(m1))
    m2, a2 = build_model(ModelSpec(preset="tiny", top_k=2, top1_router_gradient="straight_through"), seed=0)
    assert not any(isinstance(r, StraightThroughTop1Router) for r in a2.routers(m2))
    with pytest.raises(InputError, match="top1_router_gradient"):
        build_model(ModelSpec(preset="tiny", top1_router_gradient="gumbel"), seed=0)


def _gate_moved(how: str) -> float:
    eng = LearningEngine(ModelSpec(preset="tiny", top_k=1, top1_router_gradient=how), LoraSpec(rank=4, alpha=8),
                         TrainSpec(batch_size=4, max_len=64, local_steps=2), seed=0)
    state = eng.initial_state()
    dev = eng.new_device("d", state, [0], train_gate=True, masked=False)
    eng.train_local(dev, make_domain_examples("law", 16, seed=0), 3, train_gate=True)
    up = eng.make_upload(dev, [0], include_gate=True)
    return max(float((up.tensors["gate"][k] - state.gate[k]).abs().max()) for k in state.gate)


def test_a_gate_round_moves_a_top1_gate_only_with_straight_through() -> None:
    plain, st = _gate_moved("renormalised"), _gate_moved("straight_through")
    # renormalised: only round-off gradients (~1e-10), which AdamW's eps keeps tiny
    assert plain < 5e-4 and st > 10 * plain, (plain, st)
