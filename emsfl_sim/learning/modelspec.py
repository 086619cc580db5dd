"""What a model is: the :class:`ModelSpec` of a scenario, the tiny presets, dtypes and devices."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from emsfl_sim.errors import InputError

#: Tiny presets, in family-neutral names (each adapter maps them onto its config fields).
#: Byte-level vocabulary of 259 = 256 bytes + pad/bos/eos.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=4,
        top_k=1,
    ),
    "small": dict(
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=8,
        top_k=2,
    ),
}

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16`` (InputError for an unknown name)."""
    if isinstance(name, torch.dtype):
        return name
    if name not in _DTYPES:
        raise InputError(f"unknown dtype {name!r}; use one of {sorted(_DTYPES)}", field="model.dtype")
    return _DTYPES[name]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class ModelSpec:
    """Where the MoE comes from and its routing.

    Exactly one source is used: ``checkpoint_path`` if set, else ``dense_checkpoints`` if
    non-empty, else ``config`` if set, else ``preset`` (+ ``config_overrides`` for both).
    """

    preset: str | None = "tiny"
    #: a transformers config mapping (with ``model_type``) or a systems-model name, built with
    #: seeded random weights (after checkpoint and dense sources, before the preset)
    config: dict[str, Any] | str | None = None
    config_overrides: dict[str, Any] = field(default_factory=dict)
    checkpoint_path: str | None = None
    dense_checkpoints: list[str] = field(default_factory=list)
    base_index: int = 0
    router_init: str = "random"  # "random" | "hidden"
    expert_prompts: list[list[str]] | None = None
    num_experts: int | None = None
    top_k: int | None = None
    vocab_size: int = 259
    dtype: str = "float32"
    architecture: str = "mixtral"
    #: synthetic backbone pre-training of a preset (0: random weights), see :func:`pretrain_backbone`
    pretrain_steps: int = 0
    pretrain_lr: float = 3e-3
    pretrain_batch_size: int = 16
    #: where pre-trained presets are cached; None: ``$EMSFL_CACHE`` or ``~/.cache/emsfl-sim``;
    #: ``""`` disables the cache
    cache_dir: str | None = None
    #: weights of the kept top-k experts, see :mod:`emsfl_sim.learning.routing`:
    #: "renormalised" (Mixtral), "softmax_topk" (the reference's eq. 9) or "straight_through"
    router_weighting: str = "renormalised"
    #: "lm" (causal-LM head) or "classification" (the family's sequence-classification class)
    head: str = "lm"
    #: classes of the classification head (the task's options)
    num_labels: int = 2


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block under a fixed torch seed without touching the global RNG streams."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
