"""Batching: prompt/option encoding, causal-LM batches and shuffled batch streams."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
import torch

from emsfl_sim.learning.data.example import Example
from emsfl_sim.learning.data.tokenizer import Tokenizer

__all__ = ["encode_prompt_option", "make_lm_batch", "make_classification_batch", "iterate_batches"]

T = TypeVar("T")


def encode_prompt_option(tokenizer: Tokenizer, prompt: str, option: str) -> tuple[list[int], list[int]]:
    """Token ids of the prompt part and of the option part, for any tokenizer.

    The prompt part is ``tokenizer.prompt_text(prompt)`` encoded (plain format:
    ``bos + prompt + " "``, the separating space belongs to the prompt so the scored and
    trained continuation starts at the option's first, deciding token). The option part
    is the suffix of the joint encoding of prompt text + option after the prompt's
    tokens when that encoding starts with exactly the prompt's tokens; otherwise the
    option encoded on its own.
    """
    text, bos = tokenizer.prompt_text(prompt)
    p = tokenizer.encode(text, add_bos=bos)
    # Boundary rule. The joint encoding is how the model would read the text, so it is
    # used whenever it keeps the prompt's tokens intact (always for the byte tokenizer:
    # the result is identical to encoding the parts apart). A subword tokenizer may merge
    # across the boundary (GPT-2-style BPE folds the trailing space into the option's
    # first token, " Paris"); then the suffix after len(p) would drop or split tokens, or
    # score part of the prompt. In that case the option is tokenized separately after the
    # prompt that ends in a space: every option of a question is then conditioned on the
    # very same prompt ids and scored on its own tokens only, which is what a
    # length-normalised comparison of options needs.
    whole = tokenizer.encode(text + option, add_bos=bos)
    if len(whole) > len(p) and whole[: len(p)] == p:
        return p, whole[len(p) :]
    return p, tokenizer.encode(option, add_bos=False)


def pad_right(rows: Sequence[Sequence[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` as one ``[n, longest]`` long tensor right padded with ``value``, and the mask of real entries."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), int(value), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return out, mask


def make_lm_batch(
    examples: Sequence[Example],
    tokenizer: Tokenizer,
    max_len: int = 96,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """A causal-LM batch of prompt + correct option + eos (:func:`encode_prompt_option`).

    ``labels`` are -100 on the prompt and padding, so the loss covers only the answer
    tokens and eos. Right padding with ``pad_id``. Sequences longer than ``max_len``
    lose prompt tokens from the left (the answer is kept).
    """
    if not examples:
        raise ValueError("make_lm_batch needs at least one example")
    rows, labs = [], []
    for ex in examples:
        p, o = encode_prompt_option(tokenizer, ex.prompt, ex.answer_text)
        o = [*o, tokenizer.eos_id]
        ids = (p + o)[-max_len:]
        n_ans = min(len(o), len(ids))
        rows.append(ids)
        labs.append([-100] * (len(ids) - n_ans) + ids[len(ids) - n_ans :])
    input_ids, mask = pad_right(rows, tokenizer.pad_id)
    labels, _ = pad_right(labs, -100)
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def make_classification_batch(
    examples: Sequence[Example],
    tokenizer: Tokenizer,
    max_len: int = 96,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """A sequence-classification batch: the prompts alone, ``labels`` = the index of the correct option.

    The prompt is encoded as the model reads it (``tokenizer.prompt_text``), right padded
    with ``pad_id`` (transformers' classification heads read the last non-padding token),
    and cut from the left to ``max_len`` tokens.
    """
    if not examples:
        raise ValueError("make_classification_batch needs at least one example")
    rows = []
    for ex in examples:
        text, bos = tokenizer.prompt_text(ex.prompt)
        rows.append(tokenizer.encode(text, add_bos=bos)[-max_len:])
    input_ids, mask = pad_right(rows, tokenizer.pad_id)
    labels = torch.tensor([int(ex.answer) for ex in examples], dtype=torch.long)
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def iterate_batches(
    examples: Sequence[T], batch_size: int, rng: np.random.Generator, epochs: int | None = None
) -> Iterator[list[T]]:
    """Shuffled batches from a stream of epochs (a new permutation per epoch).

    Batches are cut from the concatenated stream, so every batch is full; with a finite
    ``epochs`` only the last batch may be shorter. ``epochs=None`` never ends.
    """
    if not examples:
        raise ValueError("iterate_batches needs at least one example")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    buf: list[T] = []
    epoch = 0
    while epochs is None or epoch < epochs:
        buf.extend(examples[i] for i in rng.permutation(len(examples)))
        epoch += 1
        while len(buf) >= batch_size:
            yield buf[:batch_size]
            buf = buf[batch_size:]
    if buf:
        yield buf
