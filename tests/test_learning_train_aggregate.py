"""Local training, aggregation rules and the LearningEngine facade."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emsfl_sim.learning.aggregate import (
    aggregate_experts_exact,
    aggregate_experts_factors,
    aggregate_gate_deltas,
    weighted_average,
)
from emsfl_sim.learning.data import make_domain_examples
from emsfl_sim.learning.engine import LearningEngine
from emsfl_sim.learning.lora import LoraSpec, expert_lora_state
from emsfl_sim.learning.modelspec import ModelSpec
from emsfl_sim.learning.train import TrainSpec


# ---------------------------------------------------------------- pure aggregation
def test_weighted_average_matches_numpy():
    g = np.random.default_rng(0)
    states = [{"a": torch.tensor(g.normal(size=(3, 2)), dtype=torch.float32)} for _ in range(3)]
    w = [10, 30, 60]
    ref = sum(wi * s["a"].numpy().astype(np.float64) for wi, s in zip(w, states, strict=False)) / 100
    assert np.allclose(weighted_average(states, w)["a"].numpy(), ref, atol=1e-6)
    with pytest.raises(ValueError):
        weighted_average(states, [0, 0, 0])


def _lora(g, r=2, out=6, inn=5):
    return {
        "layers.0.w.lora_A": torch.tensor(g.normal(size=(r, inn)), dtype=torch.float32),
        "layers.0.w.lora_B": torch.tensor(g.normal(size=(out, r)), dtype=torch.float32),
    }


def test_exact_rule_folds_mean_delta():
    g = np.random.default_rng(1)
    W = {0: {"layers.0.w": torch.zeros(6, 5)}, 1: {"layers.0.w": torch.ones(6, 5)}}
    u1, u2 = _lora(g), _lora(g)
    out = aggregate_experts_exact(W, [({0: u1}, 1.0), ({0: u2}, 3.0)], scaling=2.0)
    assert set(out) == {0}  # expert 1 untouched (not in the result)
    d = lambda s: s["layers.0.w.lora_B"].numpy() @ s["layers.0.w.lora_A"].numpy()  # noqa: E731
    ref = 2.0 * (0.25 * d(u1) + 0.75 * d(u2))
    assert np.allclose(out[0]["layers.0.w"].numpy(), ref, atol=1e-5)
    # mean of products differs from product of means: the rules really differ
    fac = aggregate_experts_factors(W, [({0: u1}, 1.0), ({0: u2}, 3.0)])
    A = fac[0]["layers.0.w.lora_A"].numpy()
    B = fac[0]["layers.0.w.lora_B"].numpy()
    assert np.allclose(A, 0.25 * u1["layers.0.w.lora_A"].numpy() + 0.75 * u2["layers.0.w.lora_A"].numpy(), atol=1e-6)
    assert not np.allclose(2.0 * B @ A, ref, atol=1e-3)
    assert torch.equal(fac[0]["layers.0.w"], W[0]["layers.0.w"])


def test_gate_average():
    a, b = {"layers.0.gate": torch.zeros(2, 3)}, {"layers.0.gate": torch.ones(2, 3)}
    # every device started from the current global gate a: the deltas' mean is the gates' mean
    mean = aggregate_gate_deltas(a, [(a, a, 1), (b, a, 3)])["layers.0.gate"]
    assert torch.allclose(mean, torch.full((2, 3), 0.75))


# ---------------------------------------------------------------- engine
@pytest.fixture(scope="module")
def examples():
    return make_domain_examples("law", 48, seed=0)


def _engine(rule="exact", optimizer="adamw", preset="tiny"):
    return LearningEngine(
        ModelSpec(preset=preset),
        LoraSpec(rank=4, alpha=8),
        TrainSpec(learning_rate=1e-2, optimizer=optimizer, batch_size=8, max_len=64, lora_aggregation=rule),
        seed=0,
        device="cpu",
    )


def _logits(model, x):
    with torch.no_grad():
        return model(input_ids=x).logits


@pytest.mark.parametrize("rule", ["exact", "factors"])
def test_single_upload_aggregation_reproduces_the_device_model(rule, examples):
    """Aggregating one device's upload gives a global model equal to that device's model."""
    eng = _engine(rule)
    s0 = eng.initial_state()
    dev = eng.new_device("d0", s0, [1, 3], train_gate=True, masked=False)
    res = eng.train_local(dev, examples, 3, train_gate=True)
    assert res.steps == 3 and res.samples == 24 and res.tokens > 0 and np.isfinite(res.loss)
    x = torch.randint(0, 259, (2, 20), generator=torch.Generator().manual_seed(0))
    device_logits = _logits(eng.model, x)  # the model holds the device's values after training
    up = eng.make_upload(dev, [1, 3], include_gate=True)
    assert up.payload_bytes == eng.payload_bytes([1, 3], include_gate=True)
    assert up.num_samples == len(examples)
    s1 = eng.aggregate(s0, [up])
    assert s1.version == {0: 0, 1: 1, 2: 0, 3: 1} and s1.gate_version == 1
    assert s1.experts[0] is s0.experts[0] and s1.experts[2] is s0.experts[2]  # copy-on-write
    assert torch.allclose(_logits(eng.load_global(s1), x), device_logits, atol=1e-4)
    assert not torch.allclose(_logits(eng.load_global(s0), x), device_logits, atol=1e-4)


def test_training_changes_only_own_experts_and_stale_snapshots(examples):
    eng = _engine()
    s0 = eng.initial_state()
    a = eng.new_device("a", s0, [0], train_gate=False, masked=False)
    lora_before = {e: expert_lora_state(eng.model, e) for e in range(4)}
    eng.train_local(a, examples, 2, train_gate=False)
    for e in (1, 2, 3):  # other experts' LoRA untouched in the shared model
        after = expert_lora_state(eng.model, e)
        assert all(torch.equal(after[k], lora_before[e][k]) for k in after)
    assert any(not torch.equal(a.lora[0][k].detach(), lora_before[0][k]) for k in a.lora[0])
    s1 = eng.aggregate(s0, [eng.make_upload(a, [0], False)])
    # b still holds the stale snapshot s0: training it must load s0's expert 0, not s1's
    b = eng.new_device("b", s0, [2], train_gate=False, masked=False)
    eng.train_local(b, examples, 1, train_gate=False)
    W = eng.adapter.expert_parameters(eng.model)[0]["gate_up_proj"]
    assert torch.equal(W[0], s0.experts[0]["layers.0.gate_up_proj"])
    assert not torch.equal(W[0], s1.experts[0]["layers.0.gate_up_proj"])
    eng.sync_device(b, s1)
    eng.train_local(b, examples, 1, train_gate=False)
    assert torch.equal(W[0], s1.experts[0]["layers.0.gate_up_proj"])


def test_enhanced_device_trains_on_local_model(examples):
    eng = _engine(preset="small")
    s0 = eng.initial_state()
    dev = eng.new_device("m", s0, [5, 2], train_gate=False, masked=True)
    res = eng.train_local(dev, examples, 2, train_gate=False)
    assert res.steps == 2
    local, lad, index = eng.model_for(dev)
    assert lad.num_experts == 2 and index == [2, 5]
    up = eng.make_upload(dev, [2, 5], include_gate=False)
    s1 = eng.aggregate(s0, [up])
    assert set(k for k in s1.version if s1.version[k]) == {2, 5}
    # the global model with a gate masked to {2, 5} equals the device's local model
    from emsfl_sim.learning.masking import masked_gate

    x = torch.randint(0, 259, (2, 16), generator=torch.Generator().manual_seed(3))
    loc = _logits(local, x)
    with masked_gate(eng.load_global(s1), eng.adapter, [2, 5]):
        glob = _logits(eng.model, x)
    assert torch.allclose(glob, loc, atol=1e-4)
    with pytest.raises(ValueError):
        eng.train_local(dev, examples, 1, train_gate=True)


def test_sgd_and_payloads(examples):
    eng = _engine(optimizer="sgd")
    s0 = eng.initial_state()
    dev = eng.new_device("s", s0, None, train_gate=True, masked=False)
    assert dev.experts == [0, 1, 2, 3]
    r = eng.train_local(dev, examples, 2, train_gate=True)
    assert np.isfinite(r.loss)
    per_expert = 4 * 4 * (128 + 512 + 256 + 128) * 4  # layers * r * (in+out per target) * fp32
    gate = 4 * 4 * 128 * 4
    assert eng.payload_bytes([0], False) == per_expert
    assert eng.payload_bytes([0, 1, 2, 3], True) == 4 * per_expert + gate
    assert eng.flops_per_token([0], False, masked=True) < eng.flops_per_token([0, 1, 2, 3], True, masked=False)


def test_evaluate_and_relevance(examples):
    eng = _engine()
    s0 = eng.initial_state()
    m = eng.evaluate(s0, {"law": examples[:16]})
    assert 0.0 <= m["accuracy/law"] <= 1.0 and np.isfinite(m["loss"])
    p = eng.expert_relevance(s0, examples[:16])
    assert p.shape == (4,) and abs(p.sum() - 1) < 1e-9


# ---------------------------------------------------------------- memory
def test_live_tensor_counter_known_chain():
    from emsfl_sim.learning.memory import measure_step_peak_bytes

    x = torch.randn(500, 500, requires_grad=True)
    nbytes = 500 * 500 * 4

    def step():
        y = x.exp()  # saved for backward
        (y * 2).sum().backward()  # grad of y, then x.grad = grad * y

    # peak: y + grad_y + x.grad = 3 tensors of x's size
    assert 3 * nbytes <= measure_step_peak_bytes(step) <= 3 * nbytes + 64  # + a few scalars


def test_enhanced_memory_falls_with_share_of_experts(examples):
    from emsfl_sim.learning.memory import measure_training_memory

    eng = _engine(preset="small")
    peaks = [measure_training_memory(eng, examples[:16], list(range(n)), train_gate=False, masked=True).peak_bytes for n in (1, 4, 8)]
    assert peaks[0] < peaks[1] < peaks[2]
    base = measure_training_memory(eng, examples[:16], None, train_gate=True, masked=False)
    assert peaks[0] < 0.5 * base.peak_bytes
