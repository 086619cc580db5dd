"""EMS-FL: expert-driven model splitting with asynchronous local training (design note 5.1-5.2).

Every cluster trains its expert group G_k all the time, connected or not. At
each link-up: devices upload their experts' LoRA -> the satellite aggregates
expert-wise -> the global model comes down -> one local round of G_k *and the
gate* -> devices upload the gate -> the satellite averages the gate. A link-up
that arrives mid-round abandons that round's unfinished work. Splitting is
recomputed every ``strategy.split_every_cycles`` orbital cycles at the
satellite; a cluster adopts its new group at its next contact.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from emsfl_sim.sim.schedule import LinkWindow
from emsfl_sim.strategies.base import Footprint, Strategy, register


@register
class EmsFl(Strategy):
    """EMS-FL with the full model on every device and an unmasked gate."""

    name = "emsfl"
    label = "EMS-FL"
    colour = "tab:blue"
    footprint = Footprint("own", train_gate=True, masked=False)
    uploads = ("experts", "shared")

    def setup(self) -> None:
        """Split the experts into the clusters' groups and start the periodic re-splitting."""
        self.groups = dict(zip(self.ctx.clusters, self.split(), strict=True))
        self.pending = dict(self.groups)
        for cluster in self.ctx.clusters:
            self.reset_devices(cluster, self.groups[cluster], train_gate=False, masked=self.masked(cluster))
            self.remember_base_versions(cluster)
        self.ctx.env.process(self._splitting_process())

    # Hooks the enhanced variant overrides.
    def masked(self, cluster: str) -> bool:
        """Whether the cluster trains with the masked gate (only its own experts loaded)."""
        return False

    def gate_round(self, cluster: str) -> bool:
        """Whether this contact includes the gate round (never under ``training.shared: none``)."""
        return self.trains_shared

    def _splitting_process(self) -> Generator[simpy.Event, Any, None]:
        period = self.scenario.strategy.split_every_cycles * self.ctx.schedule.cycle_s
        while True:
            yield self.ctx.env.timeout(period)
            self.pending = dict(zip(self.ctx.clusters, self.split(), strict=True))

    def cluster_process(self, cluster: str) -> Generator[simpy.Event, Any, None]:
        """Connected phase at each new window; local rounds of the own experts all the time."""
        ctx = self.ctx
        synced: LinkWindow | None = None
        while True:
            window = ctx.window[cluster]
            if ctx.link_up[cluster] and window is not synced:
                assert window is not None  # the link process sets link_up and window together
                synced = window
                deadline = self.round_deadline_s()
                trained = yield from self.connected_phase(cluster, window, deadline)
                if trained:  # the gate round was this round slot's local round
                    yield from self.wait_until(deadline)
                continue
            experts = self.groups[cluster]
            if not experts:  # a cluster without experts waits for its next contact
                yield ctx.wait_window(cluster, after=synced)
                continue
            deadline = self.round_deadline_s()
            duration = self.cluster_round_s(cluster, experts, False, self.masked(cluster))
            if not self.fits(duration, deadline):
                ctx.recorder.event(ctx.now, "round_skipped", cluster, experts=experts,
                                   detail="round does not fit in the rest of its round slot")
                yield from self.wait_until(deadline)
                continue
            timer = self.round_event(cluster, self.round_duration_s(cluster, experts, False, self.masked(cluster)),
                                     train_gate=False)
            fired = yield timer | ctx.wait_link_up(cluster)
            if timer in fired:
                self.finish_round(cluster, timer, train_gate=False)
                yield from self.wait_until(deadline)
            else:
                self.abandon_round(timer)
                ctx.recorder.event(ctx.now, "round_abandoned", cluster, experts=experts,
                                   detail="link-up arrived mid-round")

    def connected_phase(self, cluster: str, window: LinkWindow,
                        deadline_s: float) -> Generator[simpy.Event, Any, bool]:
        """Upload experts, aggregate, download, gate round, upload gate; returns whether a round trained."""
        ctx = self.ctx
        experts = self.groups[cluster]
        requests = self.upload_requests(cluster, experts, False) if experts else []
        if requests:
            results = yield from ctx.upload_all(cluster, requests, "experts", experts)
            if not all(r.completed for r in results):
                return False  # interrupted by loss of signal: resume at the next pass, keep training
            self.aggregate(cluster, results, experts, include_gate=False, what="experts")
        if not ctx.link_up[cluster]:
            return False
        yield ctx.downlink(cluster, self.world.payloads.global_model_bytes)
        self.groups[cluster] = experts = self.pending[cluster]
        masked = self.masked(cluster)
        gate = self.gate_round(cluster) and bool(experts)
        self.reset_devices(cluster, experts, train_gate=gate, masked=masked)
        self.remember_base_versions(cluster)
        if not gate:
            return False
        duration = self.cluster_round_s(cluster, experts, True, masked)
        if ctx.now + duration >= window.end_s or not self.fits(duration, deadline_s):
            ctx.recorder.event(ctx.now, "round_skipped", cluster, detail="gate round does not fit in the pass")
            return False
        event = self.round_event(cluster, self.round_duration_s(cluster, experts, True, masked), train_gate=True)
        yield event
        self.finish_round(cluster, event, train_gate=True)
        received = False
        if ctx.link_up[cluster]:
            results = yield from ctx.upload_all(cluster, self.upload_requests(cluster, [], True), "gate", [])
            aggregated = self.aggregate(cluster, results, [], include_gate=True, what="gate")
            received = aggregated and ctx.link_up[cluster]  # the averaged gate needs the link to come down
            if aggregated:
                self.gate_round_done(cluster)
        self.after_gate_round(cluster, received)
        return True

    def gate_round_done(self, cluster: str) -> None:  # noqa: B027 - an optional hook, empty by default
        """The satellite aggregated this cluster's gate round (the enhanced variant counts them)."""

    def after_gate_round(self, cluster: str, received: bool) -> None:
        """Devices continue expert-only training, the gate frozen at the averaged gate if it came down.

        A device never adopts a gate its cluster did not receive: without the averaged gate
        (interrupted upload or download) it drops its local gate and keeps the global gate it
        started the round from.
        """
        for dev in self.devices[cluster]:
            if dev.state is None:
                continue
            if received:
                self.ctx.clock.timed(self.engine.sync_gate, dev.state, self.model_for(cluster))
            else:
                self.ctx.clock.timed(self.engine.drop_local_gate, dev.state)

    def summary_extra(self) -> dict[str, Any]:
        """The expert groups at the end of the run."""
        return {"final_groups": {c: list(g) for c, g in self.groups.items()}}
