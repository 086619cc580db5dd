"""Evaluation by option likelihood (the reference's rule), or by a classification head's argmax.

Each option is scored as the mean log-probability of its tokens given the prompt
(length-normalised log-likelihood); the prediction is the best-scoring option. The
same rule serves MCQA (4 options) and classification (the label words). The model is
any causal LM called as ``model(input_ids=..., attention_mask=...).logits``. A model with a
classification head (``model.head: classification``) is scored by
:func:`evaluate_labels_by_domain`: the argmax of its logits against the label (the
index of the correct option), loss the mean cross-entropy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from emsfl_sim.learning.data import Example, Tokenizer, encode_prompt_option, make_classification_batch

__all__ = ["score_options", "evaluate_examples", "evaluate_by_domain", "evaluate_labels_by_domain"]


@dataclass
class _Scores:
    """Per example and option: summed log-prob of the option tokens and their count."""

    logprob_sum: np.ndarray  # [n, max_options], 0 where the option does not exist
    n_tokens: np.ndarray  # [n, max_options], 0 where the option does not exist

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self.logprob_sum / self.n_tokens
        return np.where(self.n_tokens > 0, m, -np.inf)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (CPU for a parameterless module)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _score(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    batch_size: int,
    device: str | torch.device | None,
    max_len: int | None,
) -> _Scores:
    n = len(examples)
    width = max((len(ex.options) for ex in examples), default=0)
    lp_sum = np.zeros((n, width))
    n_tok = np.zeros((n, width), dtype=np.int64)
    if n == 0:
        return _Scores(lp_sum, n_tok)
    device = torch.device(device) if device is not None else model_device(model)
    # A (prompt, option) pair that occurs in several examples (the same question with its
    # options in another order or with other distractors) is scored once: same numbers,
    # far fewer forward passes on large evaluation sets.
    unique: dict[tuple[str, str], int] = {}
    where: list[tuple[int, int, int]] = []
    for i, ex in enumerate(examples):
        for j, opt in enumerate(ex.options):
            where.append((i, j, unique.setdefault((ex.prompt, opt), len(unique))))
    pairs = list(unique)
    seq_lp = np.zeros(len(pairs))
    seq_len = np.zeros(len(pairs), dtype=np.int64)
    per_batch = max(1, batch_size * max(1, width))  # as many sequences per forward pass as before
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(pairs), per_batch):
                seqs, opt_len = [], []
                for prompt, opt in pairs[start : start + per_batch]:
                    p, o = encode_prompt_option(tokenizer, prompt, opt)
                    ids = p + o
                    if max_len is not None:
                        ids = ids[-max_len:]
                    seqs.append(ids)
                    opt_len.append(min(len(o), len(ids) - 1))  # the first token is never predicted
                L = max(len(s) for s in seqs)
                input_ids = torch.full((len(seqs), L), tokenizer.pad_id, dtype=torch.long)
                attn = torch.zeros((len(seqs), L), dtype=torch.long)
                target = torch.zeros((len(seqs), L), dtype=torch.bool)
                for r, (s, k) in enumerate(zip(seqs, opt_len, strict=True)):
                    input_ids[r, : len(s)] = torch.tensor(s)
                    attn[r, : len(s)] = 1
                    target[r, len(s) - k : len(s)] = True
                input_ids, attn = input_ids.to(device), attn.to(device)
                logits = model(input_ids=input_ids, attention_mask=attn).logits
                # Position t-1 predicts token t; take only the option positions before the
                # softmax so large vocabularies do not need a full [B, L, V] log-softmax.
                tmask = target[:, 1:].to(logits.device)
                sel = logits[:, :-1][tmask].float().log_softmax(-1)
                tok = input_ids[:, 1:][tmask]
                lp = sel.gather(-1, tok[:, None]).squeeze(-1)
                row = torch.nonzero(tmask, as_tuple=True)[0]
                per_seq = torch.zeros(len(seqs), dtype=torch.float64, device=lp.device)
                per_seq.index_add_(0, row, lp.double())
                seq_lp[start : start + len(seqs)] = per_seq.cpu().numpy()
                seq_len[start : start + len(seqs)] = opt_len
    finally:
        model.train(was_training)
    for i, j, u in where:
        lp_sum[i, j] = seq_lp[u]
        n_tok[i, j] = seq_len[u]
    return _Scores(lp_sum, n_tok)


def score_options(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    batch_size: int = 32,
    device: str | torch.device | None = None,
    max_len: int | None = None,
) -> np.ndarray:
    """Length-normalised log-likelihood of every option, shape ``[n, max_options]``.

    Entry ``[i, j]`` is the mean log-probability of the tokens of option ``j`` given the
    prompt of example ``i`` (only the option's own tokens count, see
    :func:`~emsfl_sim.learning.data.encode_prompt_option`); missing options (examples with fewer options)
    and empty options are ``-inf``. ``batch_size`` counts examples (all their options
    go in one forward pass). ``max_len`` truncates sequences from the left.
    """
    return _score(model, tokenizer, examples, batch_size, device, max_len).mean()


def _summarise(s: _Scores, examples: Sequence[Example]) -> dict[str, float]:
    n = len(examples)
    if n == 0:
        return {"accuracy": float("nan"), "loss": float("nan"), "n": 0, "_correct": 0, "_nll": 0.0, "_tok": 0}
    ans = np.array([ex.answer for ex in examples])
    pred = s.mean().argmax(axis=1)
    correct = int((pred == ans).sum())
    rows = np.arange(n)
    nll = float(-s.logprob_sum[rows, ans].sum())
    tok = int(s.n_tokens[rows, ans].sum())
    return {
        "accuracy": correct / n,
        "loss": nll / tok if tok else float("nan"),
        "n": n,
        "_correct": correct,
        "_nll": nll,
        "_tok": tok,
    }


def evaluate_examples(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    batch_size: int = 32,
    device: str | torch.device | None = None,
    max_len: int | None = None,
) -> dict[str, float]:
    """Accuracy (best-scoring option), loss and count of ``examples``.

    ``loss`` is the mean NLL per token of the correct options (token-weighted over all
    examples; the eos token that training also predicts is not included).
    """
    out = _summarise(_score(model, tokenizer, examples, batch_size, device, max_len), examples)
    return {k: v for k, v in out.items() if not k.startswith("_")}


def evaluate_by_domain(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    test: Mapping[str, Sequence[Example]],
    batch_size: int = 32,
    device: str | torch.device | None = None,
    max_len: int | None = None,
) -> dict[str, float]:
    """Global and per-domain metrics of ``domain -> examples``.

    Returns ``accuracy`` (sample-weighted over all domains), ``loss`` (token-weighted),
    ``n``, and ``accuracy/<domain>``, ``loss/<domain>``, ``n/<domain>`` per domain.
    """
    out: dict[str, float] = {}
    correct = n = tok = 0.0
    nll = 0.0
    for domain, examples in test.items():
        s = _summarise(_score(model, tokenizer, examples, batch_size, device, max_len), examples)
        out[f"accuracy/{domain}"] = s["accuracy"]
        out[f"loss/{domain}"] = s["loss"]
        out[f"n/{domain}"] = s["n"]
        correct += s["_correct"]
        n += s["n"]
        nll += s["_nll"]
        tok += s["_tok"]
    return {
        "accuracy": correct / n if n else float("nan"),
        "loss": nll / tok if tok else float("nan"),
        "n": n,
        **out,
    }


def _label_counts(model: torch.nn.Module, tokenizer: Tokenizer, examples: Sequence[Example], batch_size: int,
                  max_len: int) -> tuple[int, float, int]:
    """``(correct, summed cross-entropy, n)`` of a classification model on ``examples``."""
    correct, nll = 0, 0.0
    device = model_device(model)
    for start in range(0, len(examples), batch_size):
        batch = make_classification_batch(examples[start : start + batch_size], tokenizer, max_len, device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        correct += int((logits.argmax(-1) == batch["labels"]).sum())
        nll += float(torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum"))
    return correct, nll, len(examples)


def evaluate_labels_by_domain(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    test: Mapping[str, Sequence[Example]],
    batch_size: int = 64,
    max_len: int = 96,
) -> dict[str, float]:
    """Global and per-domain accuracy (argmax of the head) and cross-entropy of a classification model.

    Same keys as :func:`evaluate_by_domain`: ``accuracy`` and ``loss`` are sample-weighted
    over all domains (``loss`` per sample, not per token), plus ``accuracy/<domain>``,
    ``loss/<domain>``, ``n/<domain>``.
    """
    out: dict[str, float] = {}
    correct = nll = n = 0.0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for domain, examples in test.items():
                c, s, k = _label_counts(model, tokenizer, list(examples), batch_size, max_len)
                out[f"accuracy/{domain}"] = c / k if k else float("nan")
                out[f"loss/{domain}"] = s / k if k else float("nan")
                out[f"n/{domain}"] = k
                correct, nll, n = correct + c, nll + s, n + k
    finally:
        model.train(was_training)
    return {"accuracy": correct / n if n else float("nan"), "loss": nll / n if n else float("nan"), "n": n, **out}
