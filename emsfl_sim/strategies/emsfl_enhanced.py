"""Enhanced EMS-FL: masked gate and partial loading (design note 5.3).

Phases alternate: for ``strategy.enhanced_expert_cycles`` orbital cycles each
cluster routes tokens only among its own experts (excluded gate logits set to
-inf before top-k) and loads only those experts, so memory and compute shrink
with |G_k|/E; contacts exchange experts only (no gate round). Then each cluster
runs ``strategy.enhanced_gate_rounds`` contacts of standard EMS-FL (full model,
gate round) to tune the gate, and the cycle repeats.
"""

from __future__ import annotations

from emsfl_sim.strategies.base import register
from emsfl_sim.strategies.emsfl import EmsFl


@register
class EmsFlEnhanced(EmsFl):
    """EMS-FL with the masked gate and partial loading."""

    name = "emsfl_enhanced"

    def setup(self) -> None:
        self.gate_rounds_done = {c: 0 for c in self.ctx.clusters}
        self.phase_start_cycle = 0.0
        super().setup()

    def _in_masked_phase(self, cluster: str) -> bool:
        cfg = self.scenario.strategy
        if cfg.enhanced_gate_rounds == 0:
            return True
        if self.gate_rounds_done[cluster] >= cfg.enhanced_gate_rounds:
            # Everyone finished the gate rounds of this period: start a new masked period.
            if all(n >= cfg.enhanced_gate_rounds for n in self.gate_rounds_done.values()):
                self.gate_rounds_done = {c: 0 for c in self.ctx.clusters}
                self.phase_start_cycle = self.ctx.cycle()
            return True
        return self.ctx.cycle() - self.phase_start_cycle < cfg.enhanced_expert_cycles

    def masked(self, cluster: str) -> bool:
        return self._in_masked_phase(cluster)

    def gate_round(self, cluster: str) -> bool:
        return not self._in_masked_phase(cluster)

    def after_gate_round(self, cluster: str) -> None:
        self.gate_rounds_done[cluster] += 1
        super().after_gate_round(cluster)
