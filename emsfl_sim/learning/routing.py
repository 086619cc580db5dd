"""Routing weights of a top-k MoE router: the reference's eq. (9) or Mixtral's renormalisation.

Three weightings of the kept top-k experts (``model.router_weighting``):

* ``softmax_topk`` -- the reference's eq. (9): the softmax over *all* experts' logits,
  keep the K largest entries, zero the rest, no renormalisation. A top-1 weight is
  ``p_max`` (as in Switch Transformer), so the language-model loss reaches the gate.
* ``renormalised`` -- Mixtral's router: the kept entries divided by their sum. A top-1
  weight is ``p / p = 1`` and the router gets no language-model gradient.
* ``straight_through`` -- renormalised in value, but a top-1 weight is
  ``p / stop_gradient(p)``: the forward pass is Mixtral's bit for bit and the router
  receives the gradient of ``log p``. For top-k > 1 it is ``renormalised``.

Routers are swapped in place sharing their weight parameter, so a model's state dict and
parameter count do not change.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

ROUTER_WEIGHTINGS = ("renormalised", "softmax_topk", "straight_through")


def routing_weights(probs: torch.Tensor, top_k: int, weighting: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights, indices)`` of the ``top_k`` experts per token from router probabilities.

    Parameters
    ----------
    probs:
        Softmax of the router logits, ``[tokens, experts]``.
    top_k:
        Experts kept per token.
    weighting:
        One of :data:`ROUTER_WEIGHTINGS`.
    """
    top_value, top_index = torch.topk(probs, top_k, dim=-1)
    if weighting == "softmax_topk":
        return top_value, top_index
    if weighting == "straight_through" and top_k == 1:
        return top_value / top_value.detach(), top_index
    if weighting not in ROUTER_WEIGHTINGS:
        raise ValueError(f"router weighting must be one of {ROUTER_WEIGHTINGS}; got {weighting!r}")
    return top_value / top_value.sum(dim=-1, keepdim=True), top_index


class WeightedRouter(nn.Module):
    """A top-k router with a selectable :func:`routing_weights` rule (shares the wrapped weight).

    Instances are of :func:`router_subclass` ``(WeightedRouter, family router class)``, so
    transformers' ``output_router_logits`` (which matches the family's router class) still
    records their logits; returns the same ``(logits, weights, indices)`` triple.
    """

    def __init__(self, router: nn.Module, weighting: str) -> None:
        nn.Module.__init__(self)
        if weighting not in ROUTER_WEIGHTINGS:
            raise ValueError(f"router weighting must be one of {ROUTER_WEIGHTINGS}; got {weighting!r}")
        self.weight: nn.Parameter = cast(nn.Parameter, router.weight)
        self.num_experts = int(self.weight.shape[0])
        self.hidden_dim = int(self.weight.shape[1])
        self.top_k = int(cast(int, router.top_k))
        self.weighting = weighting

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router logits, kept weights and expert indices of each token."""
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        logits = F.linear(hidden_states, self.weight)
        weights, index = routing_weights(torch.softmax(logits.float(), dim=-1), self.top_k, self.weighting)
        return logits, weights, index


_SUBCLASSES: dict[tuple[type, type], type] = {}


def router_subclass(mixin: type[nn.Module], family_router: type[nn.Module]) -> type[nn.Module]:
    """The class ``(mixin, family_router)``, made once per pair (isinstance works for both)."""
    key = (mixin, family_router)
    if key not in _SUBCLASSES:
        _SUBCLASSES[key] = type(f"{mixin.__name__}{family_router.__name__}", (mixin, family_router),
                                {"__module__": mixin.__module__, "__doc__": mixin.__doc__})
    return _SUBCLASSES[key]


def router_weighting(router: nn.Module) -> str:
    """The weighting rule of a router (transformers' own: from its ``norm_topk_prob``, default renormalised)."""
    weighting = getattr(router, "weighting", None)
    if weighting is not None:
        return str(weighting)
    return "renormalised" if getattr(router, "norm_topk_prob", True) else "softmax_topk"


def install_router_weighting(model: nn.Module, adapter: Any, weighting: str) -> None:
    """Give every router of ``model`` the ``weighting`` rule (routers share their weights).

    A router that already weights that way (transformers' own included) stays in place.
    """
    if weighting not in ROUTER_WEIGHTINGS:
        raise ValueError(f"router weighting must be one of {ROUTER_WEIGHTINGS}; got {weighting!r}")
    cls = router_subclass(WeightedRouter, adapter.router_class)
    for i, r in enumerate(adapter.routers(model)):
        inner = getattr(r, "base_layer", r)
        if router_weighting(inner) == weighting:
            continue
        adapter.set_router(model, i, cls(inner, weighting))
