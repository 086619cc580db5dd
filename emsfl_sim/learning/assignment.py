"""Expert assignment (design note section 5.1, step 2): relevances -> disjoint expert groups.

Pure numpy, no torch: the timeline mode (``simulate: timeline``) splits experts without a
model, and the learning mode feeds it the relevances measured by ``learning/splitting.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emsfl_sim.errors import InputError

__all__ = ["assign_experts", "assignment_table", "check_partition"]


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
