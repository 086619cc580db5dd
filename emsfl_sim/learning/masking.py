"""Masked gate and partial loading (enhanced EMS-FL, design note 5.3).

A cluster that owns experts ``G`` routes tokens only among ``G``: router logits of the
other experts are set to ``-inf`` before the softmax/top-k (the reference says "zero",
which would not exclude them) and top-k is capped at ``|G|``. Then the other experts are
never used, so :func:`build_local_model` builds a model holding only ``G`` (router rows
and fused expert tensors sliced; backbone tensors shared with the global model, not
copied); :func:`map_back` writes the trained slices into the global model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from emsfl_sim.learning.adapters import adapter_for
from emsfl_sim.learning.adapters.base import MoEAdapter, model_head, unwrap
from emsfl_sim.learning.routing import (
    install_router_weighting,
    router_subclass,
    router_weighting,
    routing_weights,
)


class MaskedRouter(nn.Module):
    """A top-k softmax router that only considers the experts in ``allowed``.

    Shares the wrapped router's weight (no copy); returns the same
    ``(logits, scores, indices)`` triple as the family's router. Instances are of
    ``router_subclass(MaskedRouter, family router class)``, so transformers still records
    their logits for ``output_router_logits``.
    """

    def __init__(self, router: nn.Module, allowed: Sequence[int]) -> None:
        nn.Module.__init__(self)
        # not a submodule: the weight must be registered (and recorded) once
        object.__setattr__(self, "inner", router)
        inner: Any = unwrap(router)
        self.weight: nn.Parameter = inner.weight
        self.num_experts = int(self.weight.shape[0])
        E = self.num_experts
        mask = torch.full((E,), float("-inf"))
        mask[list(allowed)] = 0.0
        self.register_buffer("logit_mask", mask.to(self.weight.device), persistent=False)
        self.logit_mask: torch.Tensor
        self.top_k = min(int(inner.top_k), len(allowed))
        self.hidden_dim = int(self.weight.shape[1])
        self.weighting = router_weighting(inner)

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router logits (``-inf`` outside ``allowed``), kept weights and expert indices."""
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        logits = F.linear(hidden_states, self.weight) + self.logit_mask.to(hidden_states.dtype)
        # the softmax runs over the allowed experts only (-inf elsewhere), as in the local model
        top_value, top_index = routing_weights(torch.softmax(logits.float(), dim=-1), self.top_k, self.weighting)
        return logits, top_value, top_index


def apply_gate_mask(model: nn.Module, adapter: MoEAdapter, experts: Sequence[int]) -> None:
    """Route every MoE layer only among ``experts`` (until :func:`remove_gate_mask`)."""
    cls = router_subclass(MaskedRouter, adapter.router_class)
    for i, r in enumerate(adapter.routers(model)):
        inner = r.inner if isinstance(r, MaskedRouter) else r
        adapter.set_router(model, i, cls(inner, experts))


def remove_gate_mask(model: nn.Module, adapter: MoEAdapter) -> None:
    """Undo :func:`apply_gate_mask`."""
    for i, r in enumerate(adapter.routers(model)):
        if isinstance(r, MaskedRouter):
            adapter.set_router(model, i, cast(nn.Module, r.inner))


@contextlib.contextmanager
def masked_gate(model: nn.Module, adapter: MoEAdapter, experts: Sequence[int]) -> Iterator[nn.Module]:
    """Context manager form of :func:`apply_gate_mask`."""
    apply_gate_mask(model, adapter, experts)
    try:
        yield model
    finally:
        remove_gate_mask(model, adapter)


_WRAP_RE_PARTS = ("base_model.model.",)


def canonical_name(name: str) -> str:
    """Parameter name without PEFT prefixes and ``base_layer`` hops."""
    for p in _WRAP_RE_PARTS:
        if name.startswith(p):
            name = name[len(p) :]
    return name.replace(".base_layer", "")


def build_local_model(
    model: nn.Module, adapter: MoEAdapter, experts: Sequence[int]
) -> tuple[nn.Module, MoEAdapter]:
    """A model holding only ``experts`` (in that order) of ``model``; returns ``(local, adapter)``.

    Router rows and fused expert tensors are sliced copies; every other tensor (attention,
    embeddings, norms, LM head, rotary buffers) is *shared* with ``model``. Config:
    ``|G|`` experts, ``num_experts_per_tok = min(k, |G|)``. Shared experts (Qwen2-MoE) are
    backbone: shared too. LoRA factors of
    ``model`` (if any) are not carried over; apply LoRA to the local model separately.
    """
    experts = [int(e) for e in experts]
    if not experts or len(set(experts)) != len(experts):
        raise ValueError(f"experts must be a non-empty list of distinct indices; got {experts}")
    if max(experts) >= adapter.num_experts or min(experts) < 0:
        raise ValueError(f"experts {experts} out of range (model has {adapter.num_experts})")
    cfg = adapter.local_config(experts)
    with torch.device("meta"):
        local = adapter.build(cfg, head=model_head(model))
    local_adapter = adapter_for(local)
    # backbone: share the global tensors by canonical name
    shared: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if "lora_" in name:
            continue
        shared[canonical_name(name)] = p
    sd: dict[str, torch.Tensor] = {}
    for name, _ in local.named_parameters():
        if ".mlp.experts." in name or ".mlp.gate." in name:
            continue
        sd[name] = shared[name].detach()
    for prefix, params, w in zip(adapter.moe_layer_names(model), adapter.expert_parameters(model),
                                 adapter.router_weights(model), strict=True):
        for pname, p in params.items():
            sd[f"{prefix}.experts.{pname}"] = adapter.expert_slice(p, experts)
        sd[f"{prefix}.gate.weight"] = w.detach()[experts].clone()
    local.load_state_dict(sd, strict=True, assign=True)
    # share non-persistent buffers (rotary frequencies) with the global model
    gbufs = {canonical_name(n): b for n, b in model.named_buffers()}
    for name, _ in list(local.named_buffers()):
        mod_name, _, bname = name.rpartition(".")
        mod = local.get_submodule(mod_name)
        mod._buffers[bname] = gbufs[name]
    # the local routers weight the kept experts as the global model's do
    install_router_weighting(local, local_adapter, router_weighting(unwrap(adapter.routers(model)[0])))
    for p in local.parameters():
        p.requires_grad_(False)
    local.eval()
    return local, local_adapter


@torch.no_grad()
def map_back(
    global_model: nn.Module,
    adapter: MoEAdapter,
    local_model: nn.Module,
    local_adapter: MoEAdapter,
    experts: Sequence[int],
    include_router: bool = False,
) -> None:
    """Write the local model's expert tensors (and router rows if asked) into the global model."""
    idx = list(experts)
    for gp, lp in zip(adapter.expert_parameters(global_model), local_adapter.expert_parameters(local_model), strict=False):
        for name in gp:
            gp[name][idx] = lp[name].detach().to(gp[name].dtype)
    if include_router:
        for gw, lw in zip(adapter.router_weights(global_model), local_adapter.router_weights(local_model), strict=False):
            gw[idx] = lw.detach().to(gw.dtype)


def local_to_global(state_by_local: dict[int, dict], experts: Sequence[int]) -> dict[int, dict]:
    """Re-key per-expert states of a local model (0..|G|-1) to global expert indices."""
    return {int(experts[j]): s for j, s in state_by_local.items()}
