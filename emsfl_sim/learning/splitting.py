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
from emsfl_sim.learning.data import Example, Tokenizer, make_lm_batch
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
) -> np.ndarray:
    """Relevance ``p_e`` of each expert for a trial set (shares of routing decisions, sum 1).

    The examples are fed as in training (``prompt + " " + answer + eos``, see
    :func:`~emsfl_sim.learning.data.make_lm_batch`); ``top_k`` defaults to the model
    config's ``num_experts_per_tok``. The model must accept
    ``output_router_logits=True`` and return ``router_logits`` (one tensor per layer),
    as transformers' Mixtral does.
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
                batch = make_lm_batch(trial_examples[start : start + batch_size], tokenizer, max_len, device)
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


def assign_experts(p: np.ndarray, threshold: float, rng: np.random.Generator) -> list[list[int]]:
    """Split the experts into disjoint groups ``G_k``, one per cluster (section 5.1).

    Steps:

    1. Truncate: ``p~ = p`` where ``p >= threshold``, else 0.
    2. Every expert with mass (``sum_k p~[k, e] > 0``) goes to cluster ``k`` with
       probability ``q[k, e] = p~[k, e] / sum_k' p~[k', e]`` (one uniform draw per
       expert, in expert order, always all ``E`` draws so the stream does not depend on
       the data).
    3. An expert with no mass goes to the cluster with the highest untruncated
       ``p[:, e]`` (lowest cluster index on ties).
    4. Coverage: clusters left without an expert, taken in order of decreasing
       ``max_e p[k, e]`` (lowest index on ties), each take their most relevant expert
       (highest ``p[k, e]``, lowest expert index on ties) among those not fixed as the
       only expert of another cluster. Each move fills one empty cluster and empties
       none, so ``min(K, E)`` clusters end with at least one expert. With more clusters
       than experts (``K > E``) every expert ends alone in its cluster and ``K - E``
       clusters get none: those that drew no expert in step 2-3 and came last in the
       order above (a cluster that drew an expert keeps it).

    Parameters
    ----------
    p:
        Relevance ``[K, E]`` (non-negative; rows usually sum to 1).
    threshold:
        Truncation threshold ``delta`` in ``[0, 1]``.
    rng:
        Source of the sampling; the same generator state gives the same groups.

    Returns
    -------
    ``groups[k]``: sorted expert indices of cluster ``k``; together a partition of ``range(E)``.
    """
    p = np.asarray(p, dtype=float)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"p must have shape [clusters, experts] with both >= 1 (got {p.shape})")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("p must be finite and non-negative")
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"must be between 0 and 1 (got {threshold})", field="splitting.threshold")
    n_cl, n_exp = p.shape
    pt = np.where(p >= threshold, p, 0.0)
    cdf = np.cumsum(pt, axis=0)  # [K, E]; last row is each expert's mass
    mass = np.asarray(cdf[-1])
    u = np.asarray(rng.random(n_exp), dtype=float)
    owner = np.empty(n_exp, dtype=np.int64)
    for e in range(n_exp):
        if mass[e] > 0:
            # first cluster whose cumulative mass exceeds u * mass: zero-q clusters span
            # empty intervals and are never chosen
            column = np.asarray(cdf[:, e])
            owner[e] = min(int(np.searchsorted(column, np.float64(u[e] * mass[e]), side="right")), n_cl - 1)
        else:
            owner[e] = int(np.argmax(p[:, e]))
    counts = np.bincount(owner, minlength=n_cl)
    empty = [k for k in range(n_cl) if counts[k] == 0]
    empty.sort(key=lambda k: (-p[k].max(), k))
    for k in empty:
        movable = np.flatnonzero(counts[owner] >= 2)  # experts whose cluster keeps another one
        if movable.size == 0:
            break  # every expert is the only expert of its cluster (K > E)
        e = int(movable[np.argmax(p[k, movable])])  # argmax: lowest index on ties
        counts[owner[e]] -= 1
        owner[e] = k
        counts[k] += 1
    return [np.flatnonzero(owner == k).tolist() for k in range(n_cl)]


def check_partition(groups: Sequence[Sequence[int]], num_experts: int) -> None:
    """Raise ``ValueError`` unless ``groups`` are disjoint and cover ``range(num_experts)``."""
    flat = [int(e) for g in groups for e in g]
    if sorted(flat) != list(range(num_experts)):
        raise ValueError(f"expert groups {list(map(list, groups))} are not a partition of {num_experts} experts")


def assignment_table(groups: Sequence[Sequence[int]], cluster_names: Sequence[str]) -> dict:
    """A JSON-friendly record of a split for logs.

    Returns ``{"groups": {cluster: [experts]}, "owner": [cluster of expert 0, 1, ...]}``
    (``owner`` entries are ``None`` for experts in no group).
    """
    if len(groups) != len(cluster_names):
        raise ValueError(f"{len(groups)} groups for {len(cluster_names)} clusters")
    n_exp = 1 + max((int(e) for g in groups for e in g), default=-1)
    owner: list[str | None] = [None] * n_exp
    for name, g in zip(cluster_names, groups, strict=True):
        for e in g:
            owner[int(e)] = name
    return {"groups": {name: [int(e) for e in g] for name, g in zip(cluster_names, groups, strict=True)},
            "owner": owner}
