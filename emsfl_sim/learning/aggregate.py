"""Aggregation at the satellite: pure functions on dicts of tensors.

* Expert-wise: each expert is averaged over the uploads that carry it, weighted by the
  uploaders' sample counts (experts nobody uploaded stay as they are).
* Gate: the weighted mean of the uploaded router weights' changes against the version
  each device started from, added to the current global gate (:func:`aggregate_gate_deltas`).
* Full weights (``training.mode: full``): each expert's weights are averaged over the
  uploads that carry it, weighted by samples, by deltas against the version each device
  started from (:func:`aggregate_experts_full`); with every base the current global
  expert this is the weighted mean of the uploaded weights.
* LoRA rules: ``exact`` reconstructs each upload's delta ``scaling * B @ A`` per expert
  and layer, averages the deltas and folds them into the global expert weights (devices
  then restart LoRA from the new global model); ``factors`` averages A and B separately
  (FedAvg of the factors; ``mean(B) @ mean(A) != mean(B @ A)``, the known bias of that rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

LORA_RULES = ("exact", "factors")

Tensors = Mapping[str, torch.Tensor]


def weighted_average(states: Sequence[Tensors], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """``sum_j w_j * state_j / sum_j w_j`` per key (float32 accumulation, input dtype kept)."""
    if not states:
        raise ValueError("nothing to average")
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    if len(w) != len(states) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum; got {list(weights)}")
    shares = (w / w.sum()).tolist()
    out = {}
    for k, t0 in states[0].items():
        acc = torch.zeros_like(t0, dtype=torch.float32)
        for wj, s in zip(shares, states, strict=False):
            acc += wj * s[k].float()
        out[k] = acc.to(t0.dtype)
    return out


def lora_deltas(lora_state: Tensors, scaling: float) -> dict[str, torch.Tensor]:
    """``{"layers.i.target": scaling * B @ A}`` (float32) from one expert's LoRA state."""
    out = {}
    for k, a in lora_state.items():
        if k.endswith(".lora_A"):
            base = k[: -len(".lora_A")]
            out[base] = scaling * (lora_state[base + ".lora_B"].float() @ a.float())
    return out


def fold_delta(weight: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``weight + delta`` as a new tensor (delta transposed if the layout is ``[in, out]``)."""
    if delta.shape != weight.shape:
        delta = delta.T
    return (weight.float() + delta).to(weight.dtype)


def aggregate_experts_exact(
    global_experts: Mapping[int, Tensors],
    uploads: Sequence[tuple[Mapping[int, Tensors], float]],
    scaling: float,
) -> dict[int, dict[str, torch.Tensor]]:
    """Exact rule: fold the sample-weighted mean of ``scaling * B @ A`` into the weights.

    ``global_experts[e]`` holds expert e's weights ``{"layers.i.target": W}``;
    ``uploads`` are ``({expert: lora_state}, num_samples)``. Returns only the updated
    experts (new tensors; inputs untouched).
    """
    out: dict[int, dict[str, torch.Tensor]] = {}
    for e in sorted({e for ex, _ in uploads for e in ex}):
        carried = [(ex[e], n) for ex, n in uploads if e in ex]
        mean_delta = weighted_average([lora_deltas(s, scaling) for s, _ in carried], [n for _, n in carried])
        new = {k: v for k, v in global_experts[e].items() if ".lora_" not in k}
        for k, d in mean_delta.items():
            new[k] = fold_delta(new[k], d)
        out[e] = new
    return out


def aggregate_experts_factors(
    global_experts: Mapping[int, Tensors],
    uploads: Sequence[tuple[Mapping[int, Tensors], float]],
) -> dict[int, dict[str, torch.Tensor]]:
    """Factor rule: sample-weighted mean of A and of B separately; base weights unchanged."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for e in sorted({e for ex, _ in uploads for e in ex}):
        carried = [(ex[e], n) for ex, n in uploads if e in ex]
        mean = weighted_average([s for s, _ in carried], [n for _, n in carried])
        new = dict(global_experts[e])
        new.update(mean)
        out[e] = new
    return out


def aggregate_experts_full(
    global_experts: Mapping[int, Tensors],
    uploads: Sequence[tuple[Mapping[int, Tensors], Mapping[int, Tensors], float]],
) -> dict[int, dict[str, torch.Tensor]]:
    """Full rule: ``W_e + sum_j w_j (W_{j,e} - base_{j,e})`` per uploaded expert (``w`` sample shares).

    ``uploads`` are ``({expert: weights}, {expert: base weights}, num_samples)``; a base
    missing from the mapping is taken as the current global expert. Returns only the
    updated experts (new tensors; inputs untouched).
    """
    out: dict[int, dict[str, torch.Tensor]] = {}
    for e in sorted({e for ex, _, _ in uploads for e in ex}):
        carried = [(ex[e], base.get(e, global_experts[e]), n) for ex, base, n in uploads if e in ex]
        out[e] = aggregate_gate_deltas(global_experts[e], carried)
    return out


def aggregate_gate_deltas(
    global_gate: Tensors, uploads: Sequence[tuple[Tensors, Tensors, float]]
) -> dict[str, torch.Tensor]:
    """``global + sum_j w_j (gate_j - base_j)``: the gate aggregated by deltas, like the experts.

    ``uploads`` are ``(gate, base, num_samples)`` with ``base`` the global gate the device
    started from. When every base is ``global_gate`` this is the weighted mean of the gates.
    """
    deltas = [{k: g[k].float() - base[k].float() for k in g} for g, base, _ in uploads]
    mean = weighted_average(deltas, [n for _, _, n in uploads])
    return {k: (global_gate[k].float() + mean[k]).to(global_gate[k].dtype) for k in global_gate}
