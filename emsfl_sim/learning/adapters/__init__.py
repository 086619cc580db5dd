"""MoE architecture adapters: everything emsfl-sim needs to know about one model family.

A family is one module here (a :class:`~emsfl_sim.learning.adapters.base.MoEAdapter`
subclass) plus one entry in :data:`ADAPTERS`; ``model.architecture`` selects it. Family
modules are imported on first use, so checking a name (``emsfl-sim validate``) does not
load transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from emsfl_sim.errors import InputError

if TYPE_CHECKING:
    from torch import nn
    from transformers import PretrainedConfig

    from emsfl_sim.learning.adapters.base import MoEAdapter

#: The registered families: ``model.architecture`` name (= the config's ``model_type``) ->
#: ``module:class`` of its adapter in this package.
ADAPTERS: dict[str, str] = {
    "mixtral": "mixtral:MixtralAdapter",
    "olmoe": "olmoe:OlmoeAdapter",
    "qwen2_moe": "qwen2_moe:Qwen2MoeAdapter",
}

_BASE_NAMES = ("MoEAdapter", "check_top_k", "unwrap")


def adapter_names() -> list[str]:
    """Registered architecture names."""
    return sorted(ADAPTERS)


def check_architecture(name: str, file: str | None = None, field: str = "model.architecture") -> str:
    """``name`` if it is a registered family, else a one-line InputError listing the registered ones."""
    if name not in ADAPTERS:
        raise InputError(f"unknown MoE architecture {name!r}; use one of {', '.join(adapter_names())}",
                         file=file, field=field)
    return name


def adapter_class(name: str, file: str | None = None, field: str = "model.architecture") -> type[MoEAdapter]:
    """The adapter class registered as ``name`` (one-line InputError listing the registered ones)."""
    module, cls = ADAPTERS[check_architecture(name, file, field)].split(":")
    family: type[MoEAdapter] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return family


def get_adapter(name: str, config: PretrainedConfig) -> MoEAdapter:
    """The adapter registered as ``name`` bound to ``config``."""
    return adapter_class(name)(config)


def adapter_for(model_or_config: nn.Module | PretrainedConfig) -> MoEAdapter:
    """The adapter matching a model's (or config's) ``model_type``."""
    from transformers import PretrainedConfig

    cfg = model_or_config if isinstance(model_or_config, PretrainedConfig) else model_or_config.config
    if not isinstance(cfg, PretrainedConfig):
        raise TypeError(f"expected a transformers model or config; got {type(model_or_config).__name__}")
    return get_adapter(str(cfg.model_type), cfg)


def __getattr__(name: str) -> Any:
    """``MoEAdapter``, ``check_top_k``, ``unwrap`` and the family classes, imported on first use."""
    if name in _BASE_NAMES:
        return getattr(importlib.import_module(f"{__name__}.base"), name)
    for family, target in ADAPTERS.items():
        if target.split(":")[1] == name:
            return adapter_class(family)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ADAPTERS", "adapter_class", "adapter_for", "adapter_names", "check_architecture", "get_adapter",
           *_BASE_NAMES]
