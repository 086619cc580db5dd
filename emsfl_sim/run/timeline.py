"""Timeline-only runs (``simulate: timeline``): the event loop without the learning, and without torch.

The same strategies, link windows, uploads, interruptions, aggregations and staleness
as a learning run, with round durations from the compute model and payload sizes from
the model's config (or ``model.systems_model``), counted analytically
(``learning/config_counts.py``, equal to the meta-device counts). Nothing is trained or
evaluated, so a timeline run has no accuracy (the metrics table is empty and the
summary says so); it is the mode for constellation design and idle-slot studies at
scale. Expert groups come from ``strategy.expert_groups`` or, without a model to
measure relevances, from a seeded draw on uniform relevances
(:func:`emsfl_sim.learning.assignment.assign_experts`).

For the same scenario (fixed expert groups), the link, upload and aggregation events
of a timeline run equal those of a learning run (``tests/test_timeline.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emsfl_sim.run.timeline_counts import timeline_systems
from emsfl_sim.scenario import Scenario
from emsfl_sim.strategies.base import LearningWorld


@dataclass
class TimelineState:
    """The global model as versions only (what strategies read for staleness)."""

    version: dict[int, int]
    gate_version: int = 0


@dataclass
class TimelineDevice:
    """A device's model as the event loop sees it: which experts it trains."""

    name: str
    experts: list[int]
    train_gate: bool
    masked: bool


@dataclass
class TimelineUpload:
    """What a device would send: which experts, and whether the gate."""

    experts: list[int]
    include_gate: bool


@dataclass
class TimelineRound:
    """A local round's accounting (no loss: nothing is trained)."""

    steps: int
    tokens: int
    samples: int
    loss: float = math.nan
    wall_s: float = 0.0


class TimelineStream:
    """A device's data stream as counts: ``batch_size`` samples per step over a shard of ``size``.

    Epochs are permutations, so after ``n`` samples exactly ``min(n, size)`` distinct
    ones were seen, as in the learning mode's stream.
    """

    def __init__(self, size: int, batch_size: int) -> None:
        self.size, self.batch_size = int(size), int(batch_size)
        self.samples_seen = 0

    def __len__(self) -> int:
        return self.size

    def advance(self, steps: int) -> None:
        """Hand out ``steps`` batches."""
        self.samples_seen += int(steps) * self.batch_size

    @property
    def unique_fraction(self) -> float:
        """Share of the shard handed out at least once."""
        return min(1.0, self.samples_seen / self.size)

    @property
    def epochs(self) -> float:
        """Samples handed out per shard size."""
        return self.samples_seen / self.size

    def state_dict(self) -> dict[str, Any]:
        """The position as data."""
        return {"samples_seen": self.samples_seen, "size": self.size}


@dataclass
class TimelineEngine:
    """Stands in for :class:`emsfl_sim.learning.engine.LearningEngine`: versions and counts, no tensors."""

    num_experts: int
    top_k: int
    batch_size: int
    tokens_per_step: int
    device: str = "cpu"
    calls: dict[str, int] = field(default_factory=dict)

    def _count(self, call: str) -> None:
        self.calls[call] = self.calls.get(call, 0) + 1

    def data_stream(self, name: str, shard: Sequence[Any]) -> TimelineStream:
        """The device's stream over its shard (only its size matters)."""
        return TimelineStream(len(shard), self.batch_size)

    def new_device(self, name: str, snapshot: TimelineState, experts: Sequence[int] | None, train_gate: bool,
                   masked: bool) -> TimelineDevice:
        """A device training ``experts`` (all if None)."""
        self._count("new_device")
        ex = list(range(self.num_experts)) if experts is None else sorted(int(e) for e in experts)
        return TimelineDevice(name, ex, bool(train_gate), bool(masked))

    def train_local(self, dev: TimelineDevice, stream: TimelineStream, steps: int, train_gate: bool) -> TimelineRound:
        """``steps`` local steps: the stream advances, nothing is computed."""
        self._count("train_local")
        stream.advance(steps)
        return TimelineRound(int(steps), int(steps) * self.tokens_per_step, int(steps) * self.batch_size)

    def make_upload(self, dev: TimelineDevice, experts: Sequence[int], include_gate: bool) -> TimelineUpload:
        """What the device sends."""
        self._count("make_upload")
        return TimelineUpload([int(e) for e in experts], bool(include_gate))

    def aggregate(self, state: TimelineState, uploads: Sequence[TimelineUpload]) -> TimelineState:
        """A new version of every uploaded expert (and of the gate if one was uploaded)."""
        self._count("aggregate")
        version = dict(state.version)
        for e in sorted({e for u in uploads for e in u.experts}):
            version[e] = version.get(e, 0) + 1
        gate = any(u.include_gate for u in uploads)
        return TimelineState(version, state.gate_version + int(gate))

    def sync_gate(self, dev: TimelineDevice, snapshot: TimelineState) -> None:
        """The device receives the averaged gate (nothing to copy)."""
        self._count("sync_gate")

    def drop_local_gate(self, dev: TimelineDevice) -> None:
        """The device drops its local gate (nothing to drop)."""
        self._count("drop_local_gate")

    def expert_relevance(self, state: TimelineState, trial: Any) -> np.ndarray:
        """Uniform relevances: without a model every expert is as relevant to every cluster."""
        self._count("expert_relevance")
        return np.full(self.num_experts, 1.0 / self.num_experts)

    def evaluate(self, state: TimelineState, test: Any) -> dict[str, float]:
        """Never called: a timeline run has no evaluation."""
        raise RuntimeError("a timeline run evaluates nothing")


def build_timeline_world(scenario: Scenario, log: Callable[[str], None] = print) -> LearningWorld:
    """The world of a timeline run: payloads and FLOPs from the config, devices with nominal shards."""
    systems = timeline_systems(scenario)
    d, t = scenario.data, scenario.training
    engine = TimelineEngine(systems.num_experts, systems.top_k, t.batch_size, t.batch_size * d.max_len)
    shards = {c.name: [range(d.samples_per_device)] * c.devices for c in scenario.clusters}
    data = TimelineData(train=shards, trial={c.name: None for c in scenario.clusters}, test={})
    world = LearningWorld(
        scenario=scenario,
        engine=engine,  # type: ignore[arg-type]  # the timeline engine has the calls strategies make
        data=data,  # type: ignore[arg-type]
        initial_state=TimelineState({e: 0 for e in range(systems.num_experts)}),  # type: ignore[arg-type]
        payloads=systems.payloads,
        flops_model=systems.flops,
        tokens_per_round=float(t.simulated_tokens_per_round or t.local_steps * t.batch_size * d.max_len),
        peak_memory_mb={},
    )
    log(f"timeline world: {systems.num_experts} experts top-{systems.top_k} ({systems.source}), "
        f"payload/expert {systems.payloads.per_expert_bytes / 1e6:.3f} MB, gate "
        f"{systems.payloads.gate_bytes / 1e6:.3f} MB; no training, no evaluation")
    return world


@dataclass
class TimelineData:
    """The data a timeline run needs: how many devices and samples, no examples."""

    train: dict[str, list[range]]
    trial: dict[str, None]
    test: dict[str, list[Any]]
