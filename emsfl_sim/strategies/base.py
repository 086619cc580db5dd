"""The Strategy interface and the learning-side state a strategy run shares.

A strategy decides what a cluster does when connected and when not, what it
uploads and how the satellite aggregates; the maths lives in
``emsfl_sim.learning`` and the clock in ``emsfl_sim.sim``. The base class owns
the bookkeeping (devices, rounds, uploads, aggregation, evaluation, splitting)
and each strategy fills one hook, :meth:`Strategy.cluster_process`.

Adding a strategy is one new module: subclass :class:`Strategy`, set ``name``
and decorate it with :func:`register`.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import simpy

from emsfl_sim.errors import InputError
from emsfl_sim.rng import rng
from emsfl_sim.scenario import Scenario
from emsfl_sim.sim.compute import get_profile, round_duration_s
from emsfl_sim.sim.engine import SimContext, UploadRequest, UploadResult
from emsfl_sim.sim.gpus import GpuPool
from emsfl_sim.strategies.model_views import SatelliteViews

if TYPE_CHECKING:  # the learning side is torch-backed; strategies import it only for types
    from emsfl_sim.learning.data import DeviceDataStream, FederatedData
    from emsfl_sim.learning.engine import DeviceState, LearningEngine, ModelState

REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available by its ``name``."""
    REGISTRY[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    """Look up a registered strategy class by name."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown strategy {name!r}; use one of {', '.join(sorted(REGISTRY))}",
                         field="strategy.names") from None


@dataclass
class Payloads:
    """Byte sizes of what travels, from learning/ (or the systems model when one is set)."""

    per_expert_bytes: int
    gate_bytes: int
    global_model_bytes: int  # downlink broadcast of all experts' LoRA + gate

    def experts(self, experts: list[int], include_gate: bool = False) -> int:
        """Bytes of the LoRA of ``experts`` (+ gate)."""
        return self.per_expert_bytes * len(experts) + (self.gate_bytes if include_gate else 0)


@dataclass
class LearningWorld:
    """What every strategy run of a scenario shares: one engine (one base model), data, payloads."""

    scenario: Scenario
    engine: LearningEngine
    data: FederatedData
    initial_state: ModelState  # after gate pre-training
    payloads: Payloads
    flops_model: Callable[[list[int], bool, bool], float]  # (experts, train_gate, masked) -> FLOPs per token
    tokens_per_round: float
    peak_memory_mb: dict[str, float] = field(default_factory=dict)  # per strategy, measured once


@dataclass(slots=True)  # slots: reset_devices writes four fields of every device at every contact
class Device:
    """One simulated ground device: its data stream and its learning state.

    The data stream lives here, not in the model state, so a model reset (every baseline
    round) continues the device's data order instead of restarting it.
    """

    name: str
    cluster: str
    stream: DeviceDataStream  # over the device's shard
    state: DeviceState | None = None
    experts: list[int] = field(default_factory=list)
    rounds: int = 0
    rounds_since_sync: int = 0  # local rounds on the current LoRA (0: nothing new to upload)
    updates: int = 0  # bumped by every change of what the device would upload (content key)


@dataclass(frozen=True)
class Footprint:
    """What one device of a strategy holds and trains in a local round (memory and payload tables).

    ``experts``: ``"all"`` (every expert's LoRA) or ``"own"`` (the cluster's share);
    ``train_gate``: the gate trains and is uploaded; ``masked``: the device holds a local
    model of only its experts (masked gate).
    """

    experts: Literal["all", "own"]
    train_gate: bool
    masked: bool


class Strategy(ABC):
    """Base class: holds the satellite state, the devices and shared helpers.

    A strategy declares its ``name`` (registry key), ``label`` and ``colour`` (tables and
    plots) and its device ``footprint``.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    colour: ClassVar[str] = "black"
    footprint: ClassVar[Footprint] = Footprint("all", True, False)
    #: the kinds of upload a device sends ("experts", "shared" or "experts+shared"; ``emsfl-sim payloads``)
    uploads: ClassVar[tuple[str, ...]] = ("experts+shared",)

    def __init__(self, world: LearningWorld, ctx: SimContext) -> None:
        self.world = world
        self.ctx = ctx
        self.scenario = world.scenario
        self.engine = world.engine
        self.state = world.initial_state  # the satellite's global model
        self.num_experts: int = int(world.engine.num_experts)
        #: whether gate rounds train anything (``training.shared`` is not ``none``)
        self.trains_shared = world.scenario.training.shared != "none"
        self.all_experts = list(range(self.num_experts))
        self.devices: dict[str, list[Device]] = {}
        for cluster in world.scenario.clusters:
            shards = world.data.train[cluster.name]
            self.devices[cluster.name] = [
                Device(f"{cluster.name}/{i}", cluster.name, world.engine.data_stream(f"{cluster.name}/{i}", shard))
                for i, shard in enumerate(shards)
            ]
        self.profiles = {c.name: get_profile(c.compute_profile, f"clusters[{i}].compute_profile")
                         for i, c in enumerate(world.scenario.clusters)}
        #: clusters whose devices share GPUs (clusters[].gpus); the others train every device at once
        self.gpu_pools = {c.name: GpuPool(ctx.env, c.name, c.gpus) for c in world.scenario.clusters
                          if c.gpus is not None}
        #: per-satellite models when aggregations reach the other satellites after server.model_sync_delay_s
        delay = world.scenario.server.model_sync_delay_s
        self.views: SatelliteViews | None = None
        if delay is not None and world.scenario.server.mode == "constellation":
            satellites = ctx.schedule.satellite_names()
            self.views = SatelliteViews(self.state, float(delay), satellites, self._apply_aggregation)
        self._last_satellite: dict[str, str] = {}
        self._round_draws: dict[str, int] = {}  # local rounds drawn per cluster (devices_per_round)
        # Clusters whose devices were reset without experts: they stay so (no model, nothing to upload)
        # until a reset with experts, so the next idle reset only counts it (most clusters of a
        # 1000-cluster run are idle; their resets were a tenth of its event loop).
        self._idle_clusters: set[str] = set()
        self.aggregations = 0
        self.gate_updates = 0
        self.local_rounds = 0
        self.optimizer_steps = 0
        self.tokens_processed = 0
        self.staleness: list[int] = []
        # (cluster, expert) -> global version the cluster's devices started from (staleness)
        self._base_versions: dict[str, dict[Any, int]] = {}  # per cluster: the versions its devices started from

    # --------------------------------------------------------------- hooks
    @abstractmethod
    def cluster_process(self, cluster: str) -> Generator[simpy.Event, Any, None]:
        """The SimPy process body of one cluster (its devices act together)."""

    def setup(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Called once before the clock starts (e.g. the initial splitting)."""

    def summary_extra(self) -> dict[str, Any]:
        """Strategy-specific numbers for summary.json."""
        return {}

    def data_summary(self) -> dict[str, Any]:
        """The compute and data this strategy's devices used (totals; the fraction is a device mean)."""
        devices = [d for ds in self.devices.values() for d in ds]
        return {
            "local_rounds": self.local_rounds,
            "optimizer_steps": self.optimizer_steps,
            "tokens_processed": self.tokens_processed,
            "samples_seen": int(sum(d.stream.samples_seen for d in devices)),
            "unique_samples_fraction": float(np.mean([d.stream.unique_fraction for d in devices])),
            "data_epochs": float(np.mean([d.stream.epochs for d in devices])),
            "gpu_pools": {c: pool.stats(self.ctx.schedule.duration_s) for c, pool in self.gpu_pools.items()},
        }

    # ------------------------------------------------------------- helpers
    def start(self) -> None:
        """Set up and spawn one process per cluster."""
        self.setup()
        for cluster in self.ctx.clusters:
            self.ctx.env.process(self.cluster_process(cluster))

    def round_duration_s(self, cluster: str, experts: list[int], train_gate: bool, masked: bool) -> float:
        """Simulated seconds of one local round (fixed interval or compute model)."""
        interval = self.scenario.training.round_interval_s
        if interval is not None:
            return float(interval)
        flops = self.world.flops_model(experts, train_gate, masked)
        return round_duration_s(flops, self.world.tokens_per_round, self.profiles[cluster],
                                self.scenario.training.compute_efficiency)

    def cluster_round_s(self, cluster: str, experts: list[int], train_gate: bool, masked: bool) -> float:
        """Simulated seconds until every device of ``cluster`` has done one local round (GPU waves)."""
        duration = self.round_duration_s(cluster, experts, train_gate, masked)
        pool = self.gpu_pools.get(cluster)
        k = self.scenario.training.devices_per_round
        training = len(self.devices[cluster]) if k is None else min(k, len(self.devices[cluster]))
        return duration if pool is None else duration * pool.waves(training)

    def round_event(self, cluster: str, device_round_s: float, train_gate: bool) -> simpy.Event:
        """The event of a cluster's local round ending; pass it to :meth:`finish_round` or :meth:`abandon_round`.

        Without a GPU pool a timeout (every device trains when it fires); with one, a
        process in which each device queues for a GPU and trains when its round ends.
        """
        pool = self.gpu_pools.get(cluster)
        if pool is None:
            return self.ctx.env.timeout(device_round_s)
        env = self.ctx.env
        devices = self.round_devices(cluster)

        def rounds() -> Generator[simpy.Event, Any, None]:
            procs = [env.process(pool.run(device_round_s, functools.partial(self.train_device, d, train_gate)))
                     for d in devices]
            try:
                yield env.all_of(procs)
            except simpy.Interrupt:
                for proc in procs:
                    if proc.is_alive:
                        proc.interrupt("round abandoned")

        return env.process(rounds())

    def finish_round(self, cluster: str, event: simpy.Event, train_gate: bool) -> None:
        """After :meth:`round_event` fired: train (without a GPU pool the devices train now)."""
        if cluster not in self.gpu_pools:
            self.train_round(cluster, train_gate)

    def abandon_round(self, event: simpy.Event) -> None:
        """Drop a round whose event has not fired (its queued and running GPU rounds end untrained)."""
        if isinstance(event, simpy.Process) and event.is_alive:
            event.interrupt("round abandoned")

    # ------------------------------------------------------- round clock
    def round_slot_s(self) -> float | None:
        """Idealised time: the share of a slot that holds one local round; None when rounds run free."""
        slot = self.ctx.schedule.slot_s
        if slot is None:
            return None
        return slot / (self.scenario.training.rounds_per_slot or 1)

    def round_deadline_s(self) -> float:
        """When the round slot containing now ends (idealised time), else infinity."""
        share = self.round_slot_s()
        if share is None:
            return math.inf
        return (math.floor(self.ctx.now / share + 1e-9) + 1) * share

    def wait_until(self, deadline_s: float) -> Generator[simpy.Event, Any, None]:
        """Idle until ``deadline_s`` (nothing to wait for when rounds run free)."""
        if math.isfinite(deadline_s) and deadline_s > self.ctx.now:
            yield self.ctx.env.timeout(deadline_s - self.ctx.now)

    def fits(self, duration_s: float, deadline_s: float) -> bool:
        """Whether a round of ``duration_s`` started now ends by ``deadline_s``."""
        return self.ctx.now + duration_s <= deadline_s + 1e-9

    # --------------------------------------------------------- devices
    def _satellite_of(self, cluster: str) -> str | None:
        window = self.ctx.window[cluster]
        if window is not None:
            self._last_satellite[cluster] = window.satellite
        return self._last_satellite.get(cluster)

    def _apply_aggregation(self, state: Any, uploads: list[Any]) -> Any:
        return self.ctx.clock.timed(self.engine.aggregate, state, uploads)

    def model_for(self, cluster: str) -> Any:
        """The global model as the cluster's server satellite holds it now (the one model without views)."""
        satellite = self._satellite_of(cluster)
        if self.views is None or satellite is None:
            return self.state
        return self.views.view(satellite, self.ctx.now)

    def reset_devices(self, cluster: str, experts: list[int], train_gate: bool, masked: bool) -> None:
        """Devices receive the global model (their satellite's view): LoRA restarts from it for ``experts``."""
        snapshot = self.model_for(cluster)
        satellite = self._satellite_of(cluster) if self.views is not None else None
        if self.views is not None and satellite is not None and (behind := self.views.missing(satellite, self.ctx.now)):
            self.ctx.recorder.event(self.ctx.now, "stale_model", cluster, satellite=satellite,
                                    detail=f"{behind} aggregation(s) made elsewhere have not reached {satellite}")
        if not experts:  # a cluster left without experts (more clusters than experts) idles
            devices = self.devices[cluster]
            if cluster not in self._idle_clusters:
                for dev in devices:
                    dev.experts, dev.rounds_since_sync, dev.state = [], 0, None
                self._idle_clusters.add(cluster)
            for dev in devices:
                dev.updates += 1
            return
        self._idle_clusters.discard(cluster)
        for dev in self.devices[cluster]:
            dev.experts = list(experts)
            dev.rounds_since_sync = 0
            dev.updates += 1
            dev.state = self.ctx.clock.timed(self.engine.new_device, dev.name, snapshot, list(experts),
                                             train_gate and not masked, masked)

    def train_round(self, cluster: str, train_gate: bool) -> None:
        """One real local round on the round's devices of ``cluster`` (torch work)."""
        for dev in self.round_devices(cluster):
            self.train_device(dev, train_gate)

    def round_devices(self, cluster: str) -> list[Device]:
        """The devices that train in this local round: all, or ``training.devices_per_round`` of them.

        The sample is drawn without replacement per round from a named stream (seed, strategy,
        cluster, the cluster's round count), so it is the same on every rerun; devices left
        out keep their state and data position for a later round.
        """
        devices = [d for d in self.devices[cluster] if d.state is not None]
        k = self.scenario.training.devices_per_round
        if k is None or k >= len(devices):
            return devices
        self._round_draws[cluster] = self._round_draws.get(cluster, 0) + 1
        draw = rng(self.scenario.seed, "devices_per_round", self.name, cluster, self._round_draws[cluster])
        return [devices[i] for i in sorted(draw.choice(len(devices), size=k, replace=False))]

    def train_device(self, dev: Device, train_gate: bool) -> None:
        """One real local round of one device (nothing if it holds no model)."""
        if dev.state is None:
            return
        steps = self.scenario.training.local_steps
        result = self.ctx.clock.timed(self.engine.train_local, dev.state, dev.stream, steps, train_gate)
        dev.rounds += 1
        dev.rounds_since_sync += 1
        dev.updates += 1
        self.local_rounds += 1
        self.optimizer_steps += int(result.steps)
        self.tokens_processed += int(result.tokens)
        self.ctx.recorder.event(self.ctx.now, "local_round", dev.cluster, device=dev.name, experts=dev.experts,
                                detail=f"loss={result.loss:.4f} gate={int(train_gate)}")

    def upload_requests(self, cluster: str, experts: list[int], include_gate: bool) -> list[UploadRequest]:
        """What each device of ``cluster`` with new local training uploads (content snapshotted at send)."""
        nbytes = self.world.payloads.experts(experts, include_gate)
        key = (tuple(experts), include_gate)

        def snapshot(dev: Device) -> Any:
            return lambda: self.ctx.clock.timed(self.engine.make_upload, dev.state, experts, include_gate)

        return [UploadRequest(dev.name, nbytes, (dev.updates, *key), snapshot(dev))
                for dev in self.devices[cluster] if dev.rounds_since_sync > 0]

    def aggregate(self, cluster: str, results: list[UploadResult], experts: list[int], include_gate: bool,
                  what: str) -> bool:
        """Aggregate exactly the contents of the uploads that completed; returns whether anything was."""
        uploads = [r.content for r in results if r.completed]
        if not uploads:
            self.ctx.recorder.event(self.ctx.now, "aggregation_skipped", cluster, detail=what, experts=experts)
            return False
        satellite = self._satellite_of(cluster)
        origin = self.model_for(cluster)
        before = {e: origin.version.get(e, 0) for e in experts}
        self.state = self.ctx.clock.timed(self.engine.aggregate, self.state, uploads)
        if self.views is not None and satellite is not None:  # at once where it happened, later elsewhere
            self.views.views[satellite] = self._apply_aggregation(origin, uploads)
            self.views.mark_applied(satellite, self.views.record(self.ctx.now, satellite, uploads))
        base = self._base_versions.get(cluster)
        if base is not None:
            for e in experts:
                self.staleness.append(before[e] - base.get(e, 0))
        self.aggregations += 1
        if include_gate:
            self.gate_updates += 1
        self.ctx.last_aggregation_s = self.ctx.now
        self.ctx.recorder.event(self.ctx.now, "gate_update" if what == "gate" else "aggregation", cluster,
                                experts=experts, bytes=sum(r.bytes_sent for r in results if r.completed),
                                detail=f"{what} devices={len(uploads)}")
        return True

    def remember_base_versions(self, cluster: str) -> None:
        """Note which global versions a cluster's devices start from (for staleness)."""
        self._base_versions[cluster] = dict(self.model_for(cluster).version)  # a copy: versions of every expert

    # ---------------------------------------------------------- splitting
    def split(self) -> list[list[int]]:
        """Expert-driven model splitting on the clusters' trial sets (design note 5.1).

        ``strategy.expert_groups`` fixes the groups instead (checked to cover every expert).
        """
        from emsfl_sim.learning.assignment import assign_experts, check_partition

        clusters = self.ctx.clusters
        fixed = self.scenario.strategy.expert_groups
        if fixed is not None:
            groups = [sorted(fixed[c]) for c in clusters]
            try:
                check_partition(groups, self.num_experts)
            except ValueError as exc:
                raise InputError(f"{exc}; the model has experts 0..{self.num_experts - 1}",
                                 file=self.scenario.source_file, field="strategy.expert_groups") from None
            self._record_split(groups, "fixed")
            return groups
        p = np.stack([
            self.ctx.clock.timed(self.engine.expert_relevance, self.state, self.world.data.trial[c])
            for c in clusters
        ])
        draw = rng(self.scenario.seed, "splitting", self.name, round(self.ctx.now, 3))
        groups = assign_experts(p, self.scenario.strategy.relevance_threshold, draw)
        self._record_split(groups, "")
        return [list(g) for g in groups]

    def _record_split(self, groups: list[list[int]], how: str) -> None:
        detail = "; ".join(f"{c}:{','.join(map(str, g)) or '-'}" for c, g in zip(self.ctx.clusters, groups, strict=True))
        self.ctx.recorder.event(self.ctx.now, "splitting", "", detail=f"{detail} ({how})" if how else detail)
