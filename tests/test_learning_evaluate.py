"""Option-likelihood evaluation (emsfl_sim.learning.evaluate) against hand-made models and a
naive one-sequence-at-a-time reference."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import MixtralConfig, MixtralForCausalLM

from emsfl_sim.learning.data import ByteTokenizer, Example, make_domain_examples
from emsfl_sim.learning.evaluate import evaluate_by_domain, evaluate_examples, score_options
from tests.fakes import tiny_mixtral as make_tiny_mixtral

TOK = ByteTokenizer()
V = TOK.vocab_size


class FavouriteByte(torch.nn.Module):
    """Logits 10 for one byte and 0 elsewhere at every position, whatever the input."""

    def __init__(self, fav: int) -> None:
        super().__init__()
        self.fav = fav
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, **kw):
        logits = torch.zeros(*input_ids.shape, V)
        logits[..., self.fav] = 10.0
        return SimpleNamespace(logits=logits)


class NextByte(torch.nn.Module):
    """Bigram model preferring token ``x + 1`` after ``x``: catches off-by-one shifts."""

    def forward(self, input_ids, attention_mask=None, **kw):
        return SimpleNamespace(logits=10.0 * torch.nn.functional.one_hot((input_ids + 1) % V, V).float())



@pytest.fixture(scope="module")
def tiny_mixtral():
    return make_tiny_mixtral(top_k=1)


def test_favourite_option_always_wins_and_loss_is_exact():
    z = ord("z")
    exs = [Example("d", "mcqa", f"question {i}?", ("ab", "zz", "cd", "ef"), 1) for i in range(3)]
    exs += [Example("d", "mcqa", "q?", ("zzz", "ab", "xy", "cd"), 0)]
    model = FavouriteByte(z)
    res = evaluate_examples(model, TOK, exs, batch_size=2)
    assert res["accuracy"] == 1.0 and res["n"] == 4
    nll = math.log1p((V - 1) * math.exp(-10.0))  # -log softmax of the favourite byte
    assert res["loss"] == pytest.approx(nll, rel=1e-4)
    s = score_options(model, TOK, exs)
    assert s.shape == (4, 4)
    assert s[0, 1] == pytest.approx(-nll, rel=1e-4)
    assert s[0, 0] == pytest.approx(-(10.0 + nll), rel=1e-4)  # any other byte: -(10 + log Z)


def test_option_tokens_are_aligned_with_their_predictions():
    # after the prompt's trailing space (byte 32) the bigram model predicts "!" (33), then '"' (34), ...
    exs = [Example("d", "mcqa", "p", ("abc", '!"#', "!!!"), 1), Example("d", "mcqa", "longer prompt", ("!\"", "x"), 0)]
    s = score_options(NextByte(), TOK, exs)
    assert s.argmax(1).tolist() == [1, 0]
    assert s[0, 1] == pytest.approx(-math.log1p((V - 1) * math.exp(-10.0)), rel=1e-4)
    assert s[1, 2] == -np.inf  # example 1 has only 2 options
    assert evaluate_examples(NextByte(), TOK, exs)["accuracy"] == 1.0


def _naive_scores(model, examples):
    """One unpadded sequence per option, full log-softmax: an independent reference."""
    out = np.full((len(examples), max(len(e.options) for e in examples)), -np.inf)
    with torch.no_grad():
        for i, ex in enumerate(examples):
            prompt = TOK.encode(ex.prompt + " ")
            for j, opt in enumerate(ex.options):
                o = TOK.encode(opt, add_bos=False)
                ids = torch.tensor([prompt + o])
                lp = model(input_ids=ids).logits[0].log_softmax(-1)
                out[i, j] = np.mean([lp[len(prompt) + t - 1, o[t]].item() for t in range(len(o))])
    return out


def test_batched_scores_match_naive_reference(tiny_mixtral):
    exs = make_domain_examples("law", 5, 0) + make_domain_examples("cooking", 4, 0, split="test")
    exs.append(Example("x", "mcqa", "a much longer question with padding?", ("yes", "no", "maybe"), 2))
    ref = _naive_scores(tiny_mixtral, exs)
    for bs in (1, 4, 32):
        np.testing.assert_allclose(score_options(tiny_mixtral, TOK, exs, batch_size=bs), ref, rtol=1e-4, atol=1e-4)


def test_random_tiny_mixtral_is_near_chance(tiny_mixtral):
    test = {d: make_domain_examples(d, 100, 0, split="test") for d in ("astronomy", "medicine", "law", "cooking")}
    res = evaluate_by_domain(tiny_mixtral, TOK, test)
    assert 0.12 < res["accuracy"] < 0.40
    assert res["n"] == 400
    assert res["loss"] == pytest.approx(math.log(V), rel=0.2)  # near-uniform predictions
    for d in test:
        assert 0.0 <= res[f"accuracy/{d}"] <= 1.0 and res[f"n/{d}"] == 100
    assert not tiny_mixtral.training


def test_by_domain_weights_by_samples():
    good = [Example("a", "mcqa", "q", ("zz", "ab"), 0)] * 3
    bad = [Example("b", "mcqa", "q", ("ab", "zz", "cd"), 0)]
    model = FavouriteByte(ord("z"))
    model.train()
    res = evaluate_by_domain(model, TOK, {"a": good, "b": bad})
    assert res["accuracy/a"] == 1.0 and res["accuracy/b"] == 0.0
    assert res["accuracy"] == pytest.approx(3 / 4)
    nll_z = math.log1p((V - 1) * math.exp(-10.0))
    # token-weighted: 6 tokens of "zz" at nll_z, 2 tokens of "ab" at 10 + nll_z
    assert res["loss"] == pytest.approx((6 * nll_z + 2 * (10 + nll_z)) / 8, rel=1e-4)
    assert model.training  # mode restored


def test_repeated_questions_are_scored_once_with_the_same_numbers() -> None:
    torch.manual_seed(0)
    cfg = MixtralConfig(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                        num_attention_heads=4, num_key_value_heads=2, num_local_experts=2, num_experts_per_tok=1)
    model = MixtralForCausalLM(cfg).eval()
    examples = make_domain_examples("law", 48, seed=0, split="test")  # 16 prompts: many repeats
    assert len({(ex.prompt, o) for ex in examples for o in ex.options}) < 4 * len(examples)
    together = score_options(model, TOK, examples, batch_size=8)
    one_by_one = np.concatenate([score_options(model, TOK, [ex], batch_size=1) for ex in examples])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-5)
