"""Router weightings: the reference's eq. (9), Mixtral's renormalisation, straight-through.

Eq. (9) of the reference (design note 5.4): softmax over all experts, keep the top-K
entries, no renormalisation, so a top-1 weight is p_max and the gate learns from the
task loss. Mixtral (``MixtralTopKRouter.forward`` in transformers) divides the kept
entries by their sum, so a top-1 weight is exactly 1 and the router gets no gradient.
"""

from __future__ import annotations

import pytest
import torch

from emsfl_sim.errors import InputError
from emsfl_sim.learning import LearningEngine, LoraSpec, ModelSpec, TrainSpec, make_domain_examples
from emsfl_sim.learning.data import ByteTokenizer, make_lm_batch
from emsfl_sim.learning.masking import build_local_model
from emsfl_sim.learning.models import build_model
from emsfl_sim.learning.routing import WeightedRouter, router_weighting, routing_weights


def _loss_and_router_grad(how: str, top_k: int = 1) -> tuple[torch.Tensor, float]:
    model, adapter = build_model(ModelSpec(preset="tiny", top_k=top_k, router_weighting=how), seed=5)
    batch = make_lm_batch(make_domain_examples("law", 8, seed=0), ByteTokenizer(), 64)
    for w in adapter.router_weights(model):
        w.requires_grad_(True)
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), sum(float(w.grad.norm()) for w in adapter.router_weights(model) if w.grad is not None)


def test_routing_weights_by_hand() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    w, i = routing_weights(probs, 1, "softmax_topk")
    assert i.tolist() == [[0]] and torch.allclose(w, torch.tensor([[0.5]]))  # eq. (9): p_max
    w, _ = routing_weights(probs, 1, "renormalised")
    assert torch.allclose(w, torch.tensor([[1.0]]))  # Mixtral: p / p
    w, i = routing_weights(probs, 2, "softmax_topk")
    assert i.tolist() == [[0, 1]] and torch.allclose(w, torch.tensor([[0.5, 0.3]]))
    w, _ = routing_weights(probs, 2, "renormalised")
    assert torch.allclose(w, torch.tensor([[0.625, 0.375]]))  # 0.5 / 0.8, 0.3 / 0.8


def test_eq9_gives_the_top1_gate_a_gradient_and_renormalised_does_not() -> None:
    _, grad_plain = _loss_and_router_grad("renormalised")
    _, grad_eq9 = _loss_and_router_grad("softmax_topk")
    assert grad_plain < 1e-7  # Mixtral: p / p = 1, no gradient
    assert grad_eq9 > 1e-4


def test_straight_through_keeps_the_model_and_gives_the_top1_router_a_gradient() -> None:
    loss_plain, _ = _loss_and_router_grad("renormalised")
    loss_st, grad_st = _loss_and_router_grad("straight_through")
    assert torch.equal(loss_plain, loss_st)  # same forward pass, bit for bit
    assert grad_st > 1e-4


def test_weighted_routers_are_installed_and_a_bad_name_is_refused() -> None:
    m1, a1 = build_model(ModelSpec(preset="tiny", top_k=1, router_weighting="softmax_topk"), seed=0)
    assert all(isinstance(r, WeightedRouter) and r.weighting == "softmax_topk" for r in a1.routers(m1))
    m2, a2 = build_model(ModelSpec(preset="tiny", top_k=1), seed=0)
    assert not any(isinstance(r, WeightedRouter) for r in a2.routers(m2))
    with pytest.raises(InputError, match="router_weighting"):
        build_model(ModelSpec(preset="tiny", router_weighting="gumbel"), seed=0)


def test_the_local_model_of_enhanced_emsfl_keeps_the_weighting() -> None:
    model, adapter = build_model(ModelSpec(preset="tiny", top_k=1, router_weighting="softmax_topk"), seed=0)
    local, local_adapter = build_local_model(model, adapter, [1, 3])
    assert all(router_weighting(r) == "softmax_topk" for r in local_adapter.routers(local))


def _gate_moved(how: str) -> float:
    eng = LearningEngine(ModelSpec(preset="tiny", top_k=1, router_weighting=how), LoraSpec(rank=4, alpha=8),
                         TrainSpec(batch_size=4, max_len=64, local_steps=2), seed=0)
    state = eng.initial_state()
    dev = eng.new_device("d", state, [0], train_gate=True, masked=False)
    eng.train_local(dev, make_domain_examples("law", 16, seed=0), 3, train_gate=True)
    up = eng.make_upload(dev, [0], include_gate=True)
    return max(float((up.tensors["gate"][k] - state.gate[k]).abs().max()) for k in state.gate)


def test_a_gate_round_moves_a_top1_gate_with_eq9_and_not_with_mixtral() -> None:
    plain, eq9, st = _gate_moved("renormalised"), _gate_moved("softmax_topk"), _gate_moved("straight_through")
    # renormalised: only round-off gradients (~1e-10), which AdamW's eps keeps tiny
    assert plain < 5e-4 and eq9 > 10 * plain and st > 10 * plain, (plain, eq9, st)
