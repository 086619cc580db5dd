"""Local training of one device on the one shared model.

A device owns small leaf tensors (its experts' LoRA factor slices, and a router copy when
it trains the gate) and their optimiser. :class:`SliceBinding` ties each to a slice of
the shared model's fused parameter: before a step the device's values are written into
the model, after backward the gradient slice is pulled out, and the device's optimiser
steps. So the frozen base model is shared by all simulated devices, per-device state is
just these tensors, and gradients of experts a device does not own are discarded
(:func:`emsfl_sim.learning.lora.mask_expert_grads` also zeroes them in the model).
Base weights never require gradients; the router does only when the gate is trained.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from emsfl_sim.errors import InputError
from emsfl_sim.learning.adapters.base import MoEAdapter
from emsfl_sim.learning.lora import ADAPTER_NAME, _slices, lora_wrappers, mask_expert_grads, state_key
from emsfl_sim.learning.trained_counts import SHARED_PARTS, TRAINING_MODES

OPTIMIZERS = ("sgd", "adamw")
#: key prefix of backbone tensors in the shared part of a model state (``training.shared: gate_backbone``)
BACKBONE_PREFIX = "backbone."


@dataclass
class TrainSpec:
    """Local training hyper-parameters (from the scenario)."""

    learning_rate: float = 1e-3
    optimizer: str = "adamw"
    local_steps: int = 10
    batch_size: int = 8
    max_len: int = 128
    lora_aggregation: str = "exact"
    weight_decay: float = 0.0
    momentum: float = 0.0
    gate_learning_rate: float | None = None
    grad_clip: float | None = 1.0
    #: split each batch into micro-batches of at most this many (padded) tokens, accumulating
    #: gradients; the loss and gradients equal the whole batch's (None: one pass per batch)
    max_batch_tokens: int | None = None
    #: recompute activations in the backward pass instead of keeping them (less memory, more time)
    gradient_checkpointing: bool = False
    #: how a prompt is given to the model: "plain" or "chat_template" (``data.prompt_format``)
    prompt_format: str = "plain"
    #: "lora" (LoRA factors of the experts train) or "full" (the experts' weights train)
    mode: str = "lora"
    #: what a gate round trains besides experts: "gate", "gate_backbone" or "none"
    shared: str = "gate"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}", field="training.optimizer")
        if self.lora_aggregation not in ("exact", "factors"):
            raise InputError(
                f"lora_aggregation must be 'exact' or 'factors'; got {self.lora_aggregation!r}",
                field="training.lora_aggregation",
            )
        if self.mode not in TRAINING_MODES:
            raise InputError(f"mode must be one of {TRAINING_MODES}; got {self.mode!r}", field="training.mode")
        if self.shared not in SHARED_PARTS:
            raise InputError(f"shared must be one of {SHARED_PARTS}; got {self.shared!r}", field="training.shared")
        if self.learning_rate <= 0:
            raise InputError("learning_rate must be positive", field="training.learning_rate")


@dataclass
class TrainResult:
    """What one call of local training did."""

    loss: float
    samples: int
    tokens: int
    steps: int
    wall_s: float
    losses: list[float] | None = None


def make_optimizer(params: Sequence[torch.Tensor], spec: TrainSpec, lr: float | None = None) -> torch.optim.Optimizer:
    """SGD or AdamW over ``params`` with the spec's settings."""
    lr = spec.learning_rate if lr is None else lr
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=spec.weight_decay)


@dataclass
class SliceBinding:
    """A device-owned leaf tensor bound to ``param[index]`` of the shared model."""

    tensor: torch.Tensor
    param: nn.Parameter
    index: tuple

    @torch.no_grad()
    def load(self) -> None:
        """Write the device's values into the model."""
        self.param.data[self.index] = self.tensor.detach().to(self.param.dtype)

    def pull_grad(self) -> None:
        """Set the device tensor's gradient from the model's gradient slice."""
        g = self.param.grad
        self.tensor.grad = (
            torch.zeros_like(self.tensor) if g is None else g[self.index].detach().to(self.tensor.dtype).clone()
        )


def bind_lora(model: nn.Module, expert: int, state: Mapping[str, torch.Tensor]) -> list[SliceBinding]:
    """Bindings of one expert's LoRA state (keys as :func:`lora.expert_lora_state`) to ``model``."""
    out = []
    for (layer, target), w in lora_wrappers(model).items():
        ra, cb = _slices(w, expert)
        wrapper: Any = w  # PEFT's ModuleDicts read as Tensor | Module to mypy
        out.append(SliceBinding(state[state_key(layer, target, "A")], wrapper.lora_A[ADAPTER_NAME].weight, (ra,)))
        out.append(SliceBinding(state[state_key(layer, target, "B")], wrapper.lora_B[ADAPTER_NAME].weight, cb))
    return out


def bind_gate(model: nn.Module, adapter: MoEAdapter, gate: Mapping[str, torch.Tensor]) -> list[SliceBinding]:
    """Bindings of router weights ``{"layers.i.gate": [E, H]}`` to ``model``."""
    return [
        SliceBinding(gate[f"layers.{i}.gate"], w, (slice(None),)) for i, w in enumerate(adapter.router_weights(model))
    ]


def bind_expert_weights(adapter: MoEAdapter, model: nn.Module, expert: int,
                        state: Mapping[str, torch.Tensor]) -> list[SliceBinding]:
    """Bindings of one expert's weights ``{"layers.i.param": W}`` to slice ``expert`` of the fused parameters."""
    return [SliceBinding(state[f"layers.{i}.{name}"], p, (expert,))
            for i, params in enumerate(adapter.expert_parameters(model)) for name, p in params.items()]


def bind_backbone(params: Mapping[str, nn.Parameter], state: Mapping[str, torch.Tensor]) -> list[SliceBinding]:
    """Bindings of the shared backbone tensors of ``state`` (keys ``backbone.NAME``) to ``params[NAME]``."""
    return [SliceBinding(t, params[k[len(BACKBONE_PREFIX):]], (slice(None),)) for k, t in state.items()
            if k.startswith(BACKBONE_PREFIX)]


def leaf_copy(state: Mapping[str, torch.Tensor], device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Trainable float32 leaf copies of a state dict (device-owned tensors)."""
    return {
        k: v.detach().to(device=device or v.device, dtype=torch.float32).clone().requires_grad_(True)
        for k, v in state.items()
    }


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute each decoder layer's activations in the backward pass (transformers' checkpointing).

    Non-reentrant checkpointing, so it works with a frozen base whose inputs need no
    gradient (only LoRA factors and the gate train).
    """
    cast(Any, model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def micro_batches(batch: Mapping[str, torch.Tensor], max_batch_tokens: int) -> list[dict[str, torch.Tensor]]:
    """``batch`` split by rows into micro-batches of at most ``max_batch_tokens`` padded tokens (>= 1 row)."""
    rows, length = batch["input_ids"].shape
    per = max(1, int(max_batch_tokens) // max(1, int(length)))
    return [{k: v[i:i + per] for k, v in batch.items()} for i in range(0, rows, per)]


def batch_loss_backward(model: nn.Module, batch: Mapping[str, torch.Tensor], max_batch_tokens: int) -> torch.Tensor:
    """Backward of the whole batch's mean token loss, run as micro-batches (gradient accumulation).

    Each micro-batch's loss is divided by the whole batch's number of label tokens
    (transformers' ``num_items_in_batch``), so the accumulated gradient and the summed loss
    are those of one pass over the batch; activations are held for one micro-batch at a time.
    """
    labels = batch["labels"]
    total = torch.zeros((), device=labels.device)
    if labels.dim() == 1:  # a classification head: the loss is a mean over rows
        for chunk in micro_batches(batch, max_batch_tokens):
            loss = model(**chunk).loss * (len(chunk["labels"]) / len(labels))
            loss.backward()
            total = total + loss.detach()
        return total
    items = (labels[:, 1:] != -100).sum()  # the causal LM loss counts shifted labels
    for chunk in micro_batches(batch, max_batch_tokens):
        loss = model(**chunk, num_items_in_batch=items).loss
        loss.backward()
        total = total + loss.detach()
    return total


def local_train(
    model: nn.Module,
    bindings: Sequence[SliceBinding],
    optimizers: Sequence[torch.optim.Optimizer],
    batches: Iterator[Mapping[str, torch.Tensor]],
    steps: int,
    grad_clip: float | None = 1.0,
    mask_experts: Sequence[int] | None = None,
    max_batch_tokens: int | None = None,
) -> TrainResult:
    """Run ``steps`` optimiser steps of language-model loss on ``batches``.

    Only the parameters behind ``bindings`` require gradients; with ``mask_experts`` the
    fused LoRA gradients of all other experts are zeroed by hooks. With
    ``max_batch_tokens`` each batch is run as micro-batches of at most that many padded
    tokens (:func:`batch_loss_backward`). The model is left holding the device's final values.
    """
    bound = {id(b.param): b.param for b in bindings}
    for p in model.parameters():
        p.requires_grad_(id(p) in bound)
    handles = mask_expert_grads(model, mask_experts) if mask_experts is not None else []
    device_tensors = [b.tensor for b in bindings]
    model.train()
    t0 = time.perf_counter()
    losses: list[float] = []
    samples = tokens = 0
    try:
        for _ in range(steps):
            for b in bindings:
                b.load()
            batch = next(batches)
            model.zero_grad(set_to_none=True)
            if max_batch_tokens is None:
                loss = model(**batch).loss
                loss.backward()
            else:
                loss = batch_loss_backward(model, batch, max_batch_tokens)
            for b in bindings:
                b.pull_grad()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(device_tensors, grad_clip)
            for opt in optimizers:
                opt.step()
                opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            samples += int(batch["input_ids"].shape[0])
            mask = batch.get("attention_mask")
            tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        for b in bindings:
            b.load()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
    wall = time.perf_counter() - t0
    return TrainResult(
        loss=float(sum(losses) / len(losses)) if losses else float("nan"),
        samples=samples,
        tokens=tokens,
        steps=len(losses),
        wall_s=wall,
        losses=losses,
    )
