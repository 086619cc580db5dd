"""Per-expert LoRA on fused MoE expert weights (PEFT ``target_parameters``).

PEFT 0.21 wraps each targeted 3-D parameter ``W [E, out, in]`` (Mixtral stores
``gate_up_proj [E, 2I, H]``, ``down_proj [E, H, I]``) in a ``ParamWrapper`` whose factors
are ordinary ``nn.Linear`` weights shared by all experts:

* ``lora_A.weight`` is ``[r*E, in]``; expert e owns rows ``A[e*r:(e+1)*r]``;
* ``lora_B.weight`` is ``[out, r*E]``, reshaped ``[out, r, E]``; expert e owns the
  interleaved columns ``B[:, e::E]``;
* ``delta W[e] = scaling * B[:, e::E] @ A[e*r:(e+1)*r]`` with ``scaling = alpha / r``.

(See ``ParamWrapper.get_delta_weight``: ``A.reshape(E, r, in)``, ``B.reshape(out, r, E)``,
``einsum("o r e, e r i -> e o i")``; ``tests/test_learning_lora.py`` pins this layout.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora.layer import ParamWrapper
from torch import nn

from emsfl_sim.errors import InputError
from emsfl_sim.learning.adapters.base import MoEAdapter, unwrap
from emsfl_sim.learning.modelspec import seeded

ADAPTER_NAME = "default"
_LAYER_RE = re.compile(r"layers\.(\d+)\.")


@dataclass(frozen=True)
class LoraSpec:
    """LoRA hyper-parameters: rank, alpha and the fused expert parameters to adapt."""

    rank: int = 4
    alpha: float = 8.0
    targets: tuple[str, ...] = ("gate_up_proj", "down_proj")

    @property
    def scaling(self) -> float:
        """``alpha / rank``, the factor PEFT applies to ``B @ A``."""
        return float(self.alpha) / int(self.rank)


def apply_lora(model: nn.Module, adapter: MoEAdapter, spec: LoraSpec, seed: int | None = None) -> nn.Module:
    """Wrap ``model`` with PEFT LoRA on its fused expert parameters; returns the PeftModel.

    All base parameters are frozen; the LoRA factors are trainable. ``seed`` fixes the
    (Kaiming) initialisation of A; B starts at zero.
    """
    if int(spec.rank) < 1:
        raise InputError(f"rank must be a positive integer; got {spec.rank}", field="lora.rank")
    blocks = adapter.moe_layers(model)
    if not blocks:
        raise InputError("model has no MoE layers to put LoRA on", field="model")
    base = unwrap(adapter.experts_module(blocks[0]))
    available = [n for n, p in base.named_parameters(recurse=False) if p.dim() == 3]
    if not spec.targets:
        raise InputError(f"no LoRA targets given; available: {available}", field="lora.targets")
    for t in spec.targets:
        if t not in available:
            raise InputError(
                f"target {t!r} matches no fused expert parameter; available: {available}", field="lora.targets"
            )
    cfg = LoraConfig(
        r=int(spec.rank),
        lora_alpha=spec.alpha,  # type: ignore[arg-type]  # PEFT annotates int; it uses alpha / r as a float
        lora_dropout=0.0,  # PEFT's ParamWrapper cannot apply dropout (x is not factored out)
        target_modules=[],
        target_parameters=[f"mlp.experts.{t}" for t in spec.targets],
        bias="none",
    )
    ctx = seeded(seed) if seed is not None else _nullcontext()
    with ctx:
        peft_model = get_peft_model(model, cfg)
    return peft_model


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def lora_wrappers(model: nn.Module) -> dict[tuple[int, str], ParamWrapper]:
    """``{(layer, target): ParamWrapper}`` of a LoRA model, in layer order."""
    out: dict[tuple[int, str], ParamWrapper] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, ParamWrapper):
            m = _LAYER_RE.search(name)
            layer = int(m.group(1)) if m else 0
            out[(layer, mod.parameter_name)] = mod
    return dict(sorted(out.items()))


def _factors(w: ParamWrapper) -> tuple[nn.Parameter, nn.Parameter]:
    wrapper: Any = w  # PEFT's ModuleDicts read as Tensor | Module to mypy
    return wrapper.lora_A[ADAPTER_NAME].weight, wrapper.lora_B[ADAPTER_NAME].weight


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """All fused LoRA factor parameters (A and B of every wrapped expert tensor)."""
    return [p for w in lora_wrappers(model).values() for p in _factors(w)]


def lora_scaling(model: nn.Module) -> float:
    """The scaling ``alpha / r`` of the model's LoRA."""
    w = next(iter(lora_wrappers(model).values()))
    return float(w.scaling[ADAPTER_NAME])


def state_key(layer: int, target: str, factor: str) -> str:
    """Key of one factor slice in an expert state, e.g. ``layers.0.gate_up_proj.lora_A``."""
    return f"layers.{layer}.{target}.lora_{factor}"


def _slices(w: ParamWrapper, expert: int) -> tuple[slice, tuple[slice, slice]]:
    r, E = w.r[ADAPTER_NAME], w.num_experts
    return slice(expert * r, (expert + 1) * r), (slice(None), slice(expert, None, E))


def expert_lora_state(model: nn.Module, expert: int) -> dict[str, torch.Tensor]:
    """Copies of expert ``expert``'s LoRA factors in every layer.

    ``lora_A`` slices are ``[r, in]`` and ``lora_B`` slices ``[out, r]``; with
    ``scaling * B @ A`` they give the expert's weight delta ``[out, in]``.
    """
    out = {}
    for (layer, target), w in lora_wrappers(model).items():
        if not 0 <= expert < w.num_experts:
            raise IndexError(f"expert {expert} out of range (model has {w.num_experts})")
        a, b = _factors(w)
        ra, cb = _slices(w, expert)
        out[state_key(layer, target, "A")] = a.detach()[ra].clone()
        out[state_key(layer, target, "B")] = b.detach()[cb].clone()
    return out


@torch.no_grad()
def load_expert_lora_state(model: nn.Module, expert: int, state: dict[str, torch.Tensor]) -> None:
    """Write an expert's factor slices (from :func:`expert_lora_state`) into the model."""
    for (layer, target), w in lora_wrappers(model).items():
        a, b = _factors(w)
        ra, cb = _slices(w, expert)
        a[ra] = state[state_key(layer, target, "A")].to(a.dtype)
        b[cb] = state[state_key(layer, target, "B")].to(b.dtype)


@torch.no_grad()
def reset_expert_lora(model: nn.Module, expert: int, seed: int) -> None:
    """Fresh LoRA for one expert: A Kaiming-uniform as PEFT initialises it, B = 0."""
    with seeded(seed):
        for w in lora_wrappers(model).values():
            a, b = _factors(w)
            ra, cb = _slices(w, expert)
            fresh = torch.empty_like(a[ra])
            # same bound as PEFT's kaiming_uniform_(A, a=sqrt(5)) on the fused [r*E, in] weight
            nn.init.kaiming_uniform_(fresh, a=math.sqrt(5))
            a[ra] = fresh
            b[cb] = 0.0


def fresh_expert_lora(model: nn.Module, expert: int, seed: int) -> dict[str, torch.Tensor]:
    """A fresh LoRA state for one expert (A Kaiming-uniform, B zero) without touching the model."""
    out = {}
    with seeded(seed):
        for (layer, target), w in lora_wrappers(model).items():
            a, b = _factors(w)
            r = w.r[ADAPTER_NAME]
            fresh = torch.empty(r, a.shape[1], dtype=a.dtype, device=a.device)
            nn.init.kaiming_uniform_(fresh, a=math.sqrt(5))
            out[state_key(layer, target, "A")] = fresh
            out[state_key(layer, target, "B")] = torch.zeros(b.shape[0], r, dtype=b.dtype, device=b.device)
    return out


def mask_expert_grads(model: nn.Module, experts: Sequence[int]) -> list[torch.utils.hooks.RemovableHandle]:
    """Zero the LoRA gradients of every expert not in ``experts`` (gradient hooks).

    PEFT computes the fused factors' gradient for all routed experts; the hooks discard
    the parts of experts a device does not own. Remove the returned handles when done.
    """
    handles = []
    keep = set(int(e) for e in experts)
    for w in lora_wrappers(model).values():
        a, b = _factors(w)
        r, E = w.r[ADAPTER_NAME], w.num_experts
        owner = torch.arange(r * E, device=a.device)
        rows = torch.tensor([(int(i) // r) in keep for i in owner], device=a.device, dtype=a.dtype)  # A rows
        cols = torch.tensor([(int(j) % E) in keep for j in owner], device=b.device, dtype=b.dtype)  # B cols
        handles.append(a.register_hook(lambda g, m=rows: g * m[:, None]))
        handles.append(b.register_hook(lambda g, m=cols: g * m[None, :]))
    return handles


def gate_state(model: nn.Module, adapter: MoEAdapter) -> dict[str, torch.Tensor]:
    """Copies of all router weights ``{"layers.i.gate": [E, H]}``."""
    return {f"layers.{i}.gate": w.detach().clone() for i, w in enumerate(adapter.router_weights(model))}


@torch.no_grad()
def load_gate_state(model: nn.Module, adapter: MoEAdapter, state: dict[str, torch.Tensor]) -> None:
    """Write router weights from :func:`gate_state` into the model."""
    for i, w in enumerate(adapter.router_weights(model)):
        w.copy_(state[f"layers.{i}.gate"])


def payload_bytes(state: dict[str, torch.Tensor], dtype: torch.dtype | None = None) -> int:
    """Bytes to transmit ``state`` (its own dtypes, or all cast to ``dtype``)."""
    size = (lambda t: t.element_size()) if dtype is None else (lambda t: torch.empty((), dtype=dtype).element_size())
    return int(sum(t.numel() * size(t) for t in state.values()))
