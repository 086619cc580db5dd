"""Synchronous FL baseline (design note section 4).

Only the connected cluster trains: at each round the satellite broadcasts the
global model (all experts + gate), every device of the cluster trains all
experts and the gate from it, uploads, and the satellite averages. A round is
started only if its training fits in what is left of the pass (orbits are
predictable) and, in idealised time, in its round slot (one round per slot by
default, as in the reference); uploads cut by loss of signal are interrupted and
lost for this round. Disconnected clusters are idle, so idle slots stall the
baseline. A window already open when the process starts (t = 0) is used.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from emsfl_sim.sim.schedule import LinkWindow
from emsfl_sim.strategies.base import Footprint, Strategy, register


@register
class Baseline(Strategy):
    """Synchronous FL where only the cluster in view trains the whole model."""

    name = "baseline"
    label = "baseline (sync FL)"
    colour = "tab:gray"
    footprint = Footprint("all", train_gate=True, masked=False)

    def cluster_process(self, cluster: str) -> Generator[simpy.Event, Any, None]:
        """Wait for a window; run synchronous rounds in it while they fit."""
        ctx = self.ctx
        experts = self.all_experts
        previous: LinkWindow | None = None
        while True:
            window: LinkWindow = yield ctx.wait_window(cluster, after=previous)  # fires with an open window
            previous = window
            while ctx.link_up[cluster] and ctx.window[cluster] is window:
                deadline = self.round_deadline_s()
                yield ctx.downlink(cluster, self.world.payloads.global_model_bytes)
                shared = self.trains_shared  # the gate (and backbone) train with the experts, unless none
                duration = self.cluster_round_s(cluster, experts, shared, False)
                payload = self.world.payloads.experts(experts, include_gate=shared)
                done_s, _ = window.capacity.completion_time(ctx.now + duration, payload)
                if ctx.now + duration >= window.end_s or done_s is None or not self.fits(duration, deadline):
                    ctx.recorder.event(ctx.now, "round_skipped", cluster,
                                       detail=f"round of {duration:.0f}s + upload does not fit in the pass")
                    break
                self.reset_devices(cluster, experts, train_gate=shared, masked=False)
                self.remember_base_versions(cluster)
                event = self.round_event(cluster, self.round_duration_s(cluster, experts, shared, False), shared)
                yield event
                self.finish_round(cluster, event, train_gate=shared)
                what = "experts+gate" if shared else "experts"
                results = yield from ctx.upload_all(cluster, self.upload_requests(cluster, experts, shared), what,
                                                    experts)
                self.aggregate(cluster, results, experts, include_gate=shared, what=what)
                yield from self.wait_until(deadline)
