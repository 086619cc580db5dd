"""Uplink bytes and one local step's memory of a device under each registered strategy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from emsfl_sim.learning.memory import MemoryReport, measure_training_memory
from emsfl_sim.strategies.base import REGISTRY, Footprint

if TYPE_CHECKING:
    from emsfl_sim.learning.data import Example
    from emsfl_sim.learning.engine import LearningEngine


def device_experts(footprint: Footprint, num_experts: int, clusters: int) -> list[int] | None:
    """The experts a device of ``footprint`` trains: all (None) or an even share (``ceil(E / K)``)."""
    if footprint.experts == "all":
        return None
    return list(range(max(1, -(-num_experts // clusters))))


def measure_strategy_memory(engine: LearningEngine, examples: Sequence[Example], name: str,
                            clusters: int) -> MemoryReport:
    """One local step's peak memory of a device of strategy ``name`` (EMS-FL devices hold an even share)."""
    footprint = REGISTRY[name].footprint
    experts = device_experts(footprint, engine.num_experts, clusters)
    train_gate = footprint.train_gate and engine.trains_shared
    return measure_training_memory(engine, examples, experts, train_gate, footprint.masked, label=name)


def strategy_footprints(engine: LearningEngine, examples: Sequence[Example],
                        clusters: int) -> dict[str, tuple[int, MemoryReport]]:
    """Uplink bytes per device per pass and one local step's memory for every registered strategy.

    A device of an ``own``-experts strategy holds an even share of the experts
    (``E // clusters``, at least one). Per pass it uploads its experts' LoRA, plus the gate
    when its footprint trains the gate (baseline: all experts and the gate; EMS-FL: its
    experts and the gate in a gate round; enhanced EMS-FL: its experts only).
    """
    out: dict[str, tuple[int, MemoryReport]] = {}
    for name, cls in REGISTRY.items():
        fp = cls.footprint
        own = list(range(engine.num_experts)) if fp.experts == "all" else \
            list(range(max(1, engine.num_experts // clusters)))
        train_gate = fp.train_gate and engine.trains_shared
        report = measure_training_memory(engine, examples, None if fp.experts == "all" else own, train_gate,
                                         fp.masked, label=name)
        out[name] = (engine.payload_bytes(own, train_gate), report)
    return out
