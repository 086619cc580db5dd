"""What the simulator passes around: model states, device states and uploads (tensor dicts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from emsfl_sim.learning.data import DeviceDataStream

__all__ = ["Tensors", "ModelState", "Upload", "DeviceState"]

Tensors = dict[str, torch.Tensor]


@dataclass
class ModelState:
    """Global (or snapshot) weights of the trainable parts; copy-on-write per expert.

    ``gate`` is the shared part (:mod:`~emsfl_sim.learning.shared_part`): the routers, plus
    the backbone tensors under ``training.shared: gate_backbone``; it is versioned,
    uploaded and aggregated as one.
    """

    experts: dict[int, Tensors]
    gate: Tensors
    version: dict[int, int]
    gate_version: int = 0

    def updated(self, experts: Mapping[int, Tensors] | None = None, gate: Tensors | None = None) -> ModelState:
        """A new state with some experts and/or the gate replaced (others shared, versions bumped)."""
        new_experts = dict(self.experts)
        new_version = dict(self.version)
        for e, s in (experts or {}).items():
            new_experts[int(e)] = dict(s)
            new_version[int(e)] = self.version.get(int(e), 0) + 1
        if gate is None:
            return ModelState(new_experts, self.gate, new_version, self.gate_version)
        return ModelState(new_experts, dict(gate), new_version, self.gate_version + 1)

    def with_gate_of(self, other: ModelState) -> ModelState:
        """The experts of this state with the gate of ``other``."""
        return ModelState(self.experts, other.gate, self.version, other.gate_version)


@dataclass
class Upload:
    """What a device sends: LoRA factors of some experts and/or its gate."""

    experts: list[int]
    include_gate: bool
    tensors: dict  # {"experts": {e: lora_state}, "gate": gate_state or {}}
    num_samples: int
    payload_bytes: int
    device: str = ""
    #: the global gate the device started from (the satellite knows it by version; not sent)
    gate_base: Tensors | None = None
    #: full mode: the global weights of each uploaded expert the device started from (known by version; not sent)
    expert_base: dict[int, Tensors] | None = None


@dataclass
class DeviceState:
    """One simulated device: its snapshot plus device-owned trainable tensors."""

    name: str
    snapshot: ModelState
    experts: list[int]
    masked: bool
    train_gate: bool
    #: the device-owned expert tensors: LoRA factors, or in full mode the experts' weights
    lora: dict[int, Tensors] = field(default_factory=dict)
    gate: Tensors | None = None
    opt_lora: torch.optim.Optimizer | None = None
    opt_gate: torch.optim.Optimizer | None = None
    #: batches when train_local is given plain examples (strategies pass the device's own stream)
    stream: DeviceDataStream | None = None
    num_samples: int = 0
    syncs: int = 0
