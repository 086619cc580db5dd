"""The shared part of a model state: what every cluster uses and the connected cluster trains.

``training.shared`` chooses it (design note: "the gate and the shared backbone are trained
together by the device cluster connected to the satellite"):

* ``gate``: the router weights of every MoE layer, ``{"layers.i.gate": [E, H]}``;
* ``gate_backbone``: the routers plus every other tensor that is not a routed expert
  (attention, norms, embeddings, shared experts and the task head), under
  ``"backbone.<parameter name>"``;
* ``none``: only the routers are kept (a model needs them to run), and nothing shared trains.

The routers are always in the state, so loading a state into a model is the same call
for every choice; under ``none`` the strategies never run a gate round, so nothing of it
trains or travels.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from emsfl_sim.learning.adapters.base import MoEAdapter
from emsfl_sim.learning.lora import gate_state
from emsfl_sim.learning.masking import canonical_name
from emsfl_sim.learning.train import BACKBONE_PREFIX
from emsfl_sim.learning.trained_counts import SHARED_PARTS

__all__ = ["backbone_parameters", "shared_state", "load_shared_state"]


def backbone_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every parameter that is neither a routed expert, a router nor a LoRA factor, by canonical name."""
    return {canonical_name(n): p for n, p in model.named_parameters()
            if ".mlp.experts." not in n and ".mlp.gate." not in n and "lora_" not in n}


def shared_state(model: nn.Module, adapter: MoEAdapter, shared: str) -> dict[str, torch.Tensor]:
    """Copies of the shared part of ``model`` for ``training.shared`` = ``shared`` (see the module)."""
    if shared not in SHARED_PARTS:
        raise ValueError(f"shared must be one of {SHARED_PARTS}; got {shared!r}")
    state = gate_state(model, adapter)
    if shared == "gate_backbone":
        state.update({BACKBONE_PREFIX + n: p.detach().clone() for n, p in backbone_parameters(model).items()})
    return state


@torch.no_grad()
def load_shared_state(params: Mapping[str, nn.Parameter], state: Mapping[str, torch.Tensor]) -> None:
    """Write the backbone tensors of ``state`` into ``params`` (:func:`backbone_parameters`; routers apart)."""
    for k, t in state.items():
        if k.startswith(BACKBONE_PREFIX):
            params[k[len(BACKBONE_PREFIX):]].copy_(t)
