"""Memory options of local training: micro-batches (token budget), gradient checkpointing, bf16."""

from __future__ import annotations

import torch

from emsfl_sim.learning.data import ByteTokenizer, make_domain_examples, make_lm_batch
from emsfl_sim.learning.engine import LearningEngine
from emsfl_sim.learning.lora import LoraSpec, apply_lora, lora_parameters
from emsfl_sim.learning.memory import measure_step_peak_bytes
from emsfl_sim.learning.models import build_model
from emsfl_sim.learning.modelspec import ModelSpec
from emsfl_sim.learning.train import (
    TrainSpec,
    batch_loss_backward,
    enable_gradient_checkpointing,
    micro_batches,
)


def _lora_model(**spec: object) -> torch.nn.Module:
    model, ad = build_model(ModelSpec(preset="tiny", **spec), seed=0)  # type: ignore[arg-type]
    peft = apply_lora(model, ad, LoraSpec(rank=4, alpha=8), seed=1)
    for p in lora_parameters(peft):
        p.requires_grad_(True)
    peft.train()
    return peft


def _batch(n: int = 6, max_len: int = 48) -> dict[str, torch.Tensor]:
    return make_lm_batch(make_domain_examples("law", n, seed=0), ByteTokenizer(), max_len)


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in lora_parameters(model)]


def test_micro_batches_split_rows_within_the_token_budget() -> None:
    batch = _batch(6)
    length = batch["input_ids"].shape[1]
    chunks = micro_batches(batch, 2 * length + 1)
    assert [c["input_ids"].shape[0] for c in chunks] == [2, 2, 2]
    assert [c["input_ids"].shape[0] for c in micro_batches(batch, 1)] == [1] * 6  # at least one row
    assert torch.equal(torch.cat([c["labels"] for c in chunks]), batch["labels"])


def test_micro_batched_loss_and_gradients_equal_the_whole_batch() -> None:
    batch = _batch(6)
    model = _lora_model()
    model.zero_grad()
    full = model(**batch).loss
    full.backward()
    expected = _grads(model)
    model.zero_grad()
    got = batch_loss_backward(model, batch, max_batch_tokens=2 * batch["input_ids"].shape[1])
    assert torch.allclose(got, full.detach(), rtol=1e-5, atol=1e-6)
    for g, e in zip(_grads(model), expected, strict=True):
        assert torch.allclose(g, e, rtol=1e-4, atol=1e-7)


def test_gradient_checkpointing_keeps_gradients_and_lowers_the_step_peak() -> None:
    batch = _batch(8, max_len=96)
    plain = _lora_model()
    ckpt = _lora_model()
    enable_gradient_checkpointing(ckpt)

    def step(model: torch.nn.Module) -> None:
        model.zero_grad()
        model(**batch).loss.backward()

    peak_plain = measure_step_peak_bytes(lambda: step(plain))
    peak_ckpt = measure_step_peak_bytes(lambda: step(ckpt))
    for g, e in zip(_grads(ckpt), _grads(plain), strict=True):
        assert torch.allclose(g, e, rtol=1e-4, atol=1e-7)
    assert peak_ckpt < 0.8 * peak_plain, (peak_ckpt, peak_plain)


def test_engine_options_run_a_local_round_in_bfloat16() -> None:
    train = TrainSpec(batch_size=4, max_len=48, local_steps=2, max_batch_tokens=60, gradient_checkpointing=True)
    engine = LearningEngine(ModelSpec(preset="tiny", dtype="bfloat16"), LoraSpec(rank=2, alpha=4), train, seed=0,
                            device="cpu")
    assert next(engine.model.parameters()).dtype == torch.bfloat16
    dev = engine.new_device("d", engine.initial_state(), None, train_gate=True, masked=False)
    result = engine.train_local(dev, make_domain_examples("law", 8, seed=0), 2, True)
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    # the device's trainable copies stay float32 (the optimiser state too), the base bf16
    assert all(t.dtype == torch.float32 for s in dev.lora.values() for t in s.values())


def test_the_options_take_effect_in_the_engine() -> None:
    """max_batch_tokens splits each step into micro-batch forwards; gradient_checkpointing is switched on."""
    from emsfl_sim.learning.adapters.base import unwrap

    calls: list[int] = []

    def engine_forwards(**options: object) -> tuple[LearningEngine, int]:
        train = TrainSpec(batch_size=4, max_len=48, local_steps=1, **options)  # type: ignore[arg-type]
        engine = LearningEngine(ModelSpec(preset="tiny"), LoraSpec(rank=2, alpha=4), train, seed=0, device="cpu")
        handle = engine.model.register_forward_pre_hook(lambda *_: calls.append(1))
        dev = engine.new_device("d", engine.initial_state(), None, train_gate=True, masked=False)
        before = len(calls)
        engine.train_local(dev, make_domain_examples("law", 8, seed=0), 1, True)
        handle.remove()
        return engine, len(calls) - before

    plain, one_pass = engine_forwards()
    split, micro = engine_forwards(max_batch_tokens=1)  # one row per micro-batch
    assert (one_pass, micro) == (1, 4)
    ckpt, _ = engine_forwards(gradient_checkpointing=True)
    base = unwrap(ckpt.model.base_model.model)
    assert base.is_gradient_checkpointing and not unwrap(plain.model.base_model.model).is_gradient_checkpointing


def test_a_config_source_builds_a_real_architecture_with_seeded_weights() -> None:
    from emsfl_sim.errors import InputError

    small = {"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 4,
             "num_key_value_heads": 4, "vocab_size": 300, "pad_token_id": 1, "eos_token_id": 2}
    spec = ModelSpec(preset=None, architecture="olmoe", config="olmoe-1b-7b", config_overrides=small)
    a, ad = build_model(spec, seed=0)
    b, _ = build_model(spec, seed=0)
    c, _ = build_model(spec, seed=1)
    assert (type(a).__name__, ad.num_experts, ad.top_k, a.config.hidden_size) == ("OlmoeForCausalLM", 64, 8, 64)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    try:
        build_model(ModelSpec(preset=None, config="gpt-7"), seed=0)
    except InputError as exc:
        assert str(exc).startswith("model.config: unknown config 'gpt-7'") and "\n" not in str(exc)
    else:
        raise AssertionError("an unknown config name must be refused")
