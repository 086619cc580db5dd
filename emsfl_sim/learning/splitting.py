"""Expert-driven model splitting (design note section 5.1).

1. Each cluster runs its trial set through the current MoE; the relevance
   ``p[k, e]`` is the share of all top-k routing decisions (all MoE layers, all real
   tokens) that pick expert ``e`` (:func:`expert_relevance`, :func:`relevance_matrix`).
2. :func:`assign_experts` truncates ``p`` at a threshold, forms assignment
   probabilities ``q[k, e] = p~[k, e] / sum_k' p~[k', e]``, samples one owner cluster
   per expert and repairs coverage, returning disjoint expert groups ``G_k`` that cover
   all experts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch

from emsfl_sim.errors import InputError
from emsfl_sim.learning.assignment import assign_experts, assignment_table, check_partition
from emsfl_sim.learning.data import Example, Tokenizer, make_classification_batch, make_lm_batch
from emsfl_sim.learning.evaluate import model_device

__all__ = [
    "routing_counts",
    "expert_relevance",
    "relevance_matrix",
    "assign_experts",
    "assignment_table",
    "check_partition",
]


def routing_counts(
    router_logits: Sequence[torch.Tensor],
    top_k: int,
    attention_mask: torch.Tensor | None = None,
) -> np.ndarray:
    """Number of top-k routing decisions per expert over all layers and real tokens.

    Parameters
    ----------
    router_logits:
        One tensor per MoE layer, ``[batch * seq, E]`` (transformers' layout) or
        ``[batch, seq, E]``. Softmax is monotonic, so top-k of the logits equals top-k
        of the routing probabilities; masked-out experts (``-inf``) are never counted
        while ``top_k`` does not exceed the number of finite logits.
    top_k:
        Experts chosen per token.
    attention_mask:
        ``[batch, seq]``; tokens with 0 (padding) are not counted.

    Returns
    -------
    Integer counts of shape ``[E]``; their sum is ``layers * real tokens * top_k``.
    """
    if len(router_logits) == 0:
        raise InputError("the model returned no router logits; splitting needs an MoE model", field="model")
    n_exp = int(router_logits[0].shape[-1])
    if not 1 <= top_k <= n_exp:
        raise InputError(f"top_k must be between 1 and the number of experts {n_exp} (got {top_k})",
                         field="model.top_k")
    keep = attention_mask.reshape(-1).bool() if attention_mask is not None else None
    counts = torch.zeros(n_exp, dtype=torch.long)
    for layer in router_logits:
        x = layer.reshape(-1, n_exp)
        if keep is not None:
            if x.shape[0] != keep.numel():
                raise ValueError(f"router logits have {x.shape[0]} tokens but the mask has {keep.numel()}")
            x = x[keep.to(x.device)]
        idx = torch.topk(x.detach().float(), top_k, dim=-1).indices
        counts += torch.bincount(idx.reshape(-1).cpu(), minlength=n_exp)
    return counts.numpy()



def expert_relevance(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    trial_examples: Sequence[Example],
    top_k: int | None = None,
    batch_size: int = 32,
    max_len: int = 96,
    prompt_only: bool = False,
) -> np.ndarray:
    """Relevance ``p_e`` of each expert for a trial set (shares of routing decisions, sum 1).

    The examples are fed as in training (``prompt + " " + answer + eos``, see
    :func:`~emsfl_sim.learning.data.make_lm_batch`); ``top_k`` defaults to the model
    config's ``num_experts_per_tok``. The model must accept
    ``output_router_logits=True`` and return ``router_logits`` (one tensor per layer),
    as transformers' Mixtral does. ``prompt_only`` feeds the prompts alone (what a
    classification head reads; :func:`~emsfl_sim.learning.data.make_classification_batch`).
    """
    if len(trial_examples) == 0:
        raise InputError("the trial set is empty; give each cluster at least one trial example",
                         field="splitting.trial_samples")
    if top_k is None:
        top_k = int(cast(Any, model).config.num_experts_per_tok)
    device = model_device(model)
    total: np.ndarray | None = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(trial_examples), batch_size):
                chunk = trial_examples[start : start + batch_size]
                batch = (make_classification_batch(chunk, tokenizer, max_len, device) if prompt_only
                         else make_lm_batch(chunk, tokenizer, max_len, device))
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            output_router_logits=True)
                logits = getattr(out, "router_logits", None)
                if not logits:
                    raise InputError("the model returned no router logits; splitting needs an MoE model",
                                     field="model")
                c = routing_counts(logits, top_k, batch["attention_mask"])
                total = c if total is None else total + c
    finally:
        model.train(was_training)
    assert total is not None
    return total / total.sum()


def relevance_matrix(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    trial: Mapping[str, Sequence[Example]],
    top_k: int | None = None,
    batch_size: int = 32,
    max_len: int = 96,
) -> np.ndarray:
    """``p[K, E]`` for the clusters of ``trial`` (``cluster -> trial examples``), in its order.

    Each row sums to 1.
    """
    rows = []
    for name, examples in trial.items():
        if len(examples) == 0:
            raise InputError(f"cluster {name!r} has an empty trial set; give it at least one trial example",
                             field="splitting.trial_samples")
        rows.append(expert_relevance(model, tokenizer, examples, top_k, batch_size, max_len))
    return np.stack(rows)
