"""Enhanced EMS-FL: masked gate and partial loading (design note 5.3).

Periods alternate, decided at the satellite: a masked period of
``strategy.enhanced_expert_cycles`` orbital cycles, in which each cluster routes tokens
only among its own experts (excluded gate logits set to -inf before top-k) and loads
only those experts, so memory and compute shrink with |G_k|/E; contacts exchange
experts only (no gate round). Then a gate period of standard EMS-FL (full model, gate
round at each contact) until every cluster that owns experts has had
``strategy.enhanced_gate_rounds`` gate rounds aggregated at the satellite, or until
``strategy.enhanced_gate_timeout_cycles`` cycles have passed (so a cluster whose gate
round never fits in its passes cannot stall the method); then the next masked period.
A cluster that finished its gate rounds goes back to masked training at its next contact.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from emsfl_sim.strategies.base import Footprint, register
from emsfl_sim.strategies.emsfl import EmsFl


@register
class EmsFlEnhanced(EmsFl):
    """EMS-FL with the masked gate and partial loading."""

    name = "emsfl_enhanced"
    label = "enhanced EMS-FL"
    colour = "tab:orange"
    footprint = Footprint("own", train_gate=False, masked=True)
    uploads = ("experts", "shared (gate periods)")

    def setup(self) -> None:
        """Start in a masked period; the period process switches to gate periods and back."""
        self.phase = "masked"
        self.gate_rounds_done = {c: 0 for c in self.ctx.clusters}
        self.gate_periods = 0
        self.gate_period_timeouts = 0
        self._gate_period_done: simpy.Event | None = None
        super().setup()
        if self.scenario.strategy.enhanced_gate_rounds > 0 and self.trains_shared:  # none: always masked
            self.ctx.env.process(self._period_process())

    def _period_process(self) -> Generator[simpy.Event, Any, None]:
        cfg, ctx = self.scenario.strategy, self.ctx
        timeout_cycles = cfg.enhanced_gate_timeout_cycles
        if timeout_cycles is None:
            timeout_cycles = 2.0 * cfg.enhanced_gate_rounds
        while True:
            yield ctx.env.timeout(cfg.enhanced_expert_cycles * ctx.schedule.cycle_s)
            self.phase = "gate"
            self.gate_periods += 1
            self.gate_rounds_done = {c: 0 for c in ctx.clusters}
            self._gate_period_done = ctx.env.event()
            ctx.recorder.event(ctx.now, "gate_period_start", "", detail=f"period {self.gate_periods}")
            limit = ctx.env.timeout(timeout_cycles * ctx.schedule.cycle_s)
            fired = yield self._gate_period_done | limit
            if self._gate_period_done not in fired:
                self.gate_period_timeouts += 1
                missing = [c for c in self._gate_clusters()
                           if self.gate_rounds_done[c] < cfg.enhanced_gate_rounds]
                ctx.recorder.event(ctx.now, "gate_period_timeout", "",
                                   detail=f"no complete gate rounds from {', '.join(missing)}")
            self.phase = "masked"
            ctx.recorder.event(ctx.now, "masked_period_start", "")

    def _gate_clusters(self) -> list[str]:
        """Clusters that take part in the gate period (those that own experts)."""
        return [c for c in self.ctx.clusters if self.groups[c]]

    def _done(self, cluster: str) -> bool:
        return self.gate_rounds_done[cluster] >= self.scenario.strategy.enhanced_gate_rounds

    def masked(self, cluster: str) -> bool:
        """Masked outside gate periods, and for a cluster that has finished its gate rounds."""
        return self.phase == "masked" or self._done(cluster)

    def gate_round(self, cluster: str) -> bool:
        """A gate round at a contact of the gate period until the cluster has had its rounds."""
        return self.trains_shared and not self.masked(cluster)

    def gate_round_done(self, cluster: str) -> None:
        """Count an aggregated gate round; end the gate period when every cluster has its rounds."""
        if self.phase != "gate":
            return
        self.gate_rounds_done[cluster] += 1
        event = self._gate_period_done
        if event is not None and not event.triggered and all(self._done(c) for c in self._gate_clusters()):
            event.succeed()

    def summary_extra(self) -> dict[str, Any]:
        """Expert groups plus how the gate periods ended."""
        return {**super().summary_extra(), "gate_periods": self.gate_periods,
                "gate_period_timeouts": self.gate_period_timeouts}
