"""Each satellite's view of the global model when an aggregation reaches the others only after a delay.

In constellation mode with ``server.model_sync_delay_s`` set, an aggregation at one
satellite applies there at once and at every other satellite ``delay`` seconds later
(inter-satellite links). Aggregations are additive (expert deltas and gate deltas,
``learning/aggregate.py``), so a satellite that receives them in another order ends at
the same model; in between, a cluster served by a satellite that has not received an
update trains from its older view. The run's evaluated model is the one with every
aggregation applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Aggregation:
    """One aggregation: where and when it happened, and the uploads it averaged."""

    time_s: float
    satellite: str
    uploads: list[Any]


@dataclass
class SatelliteViews:
    """The model each satellite holds: the initial one plus the aggregations that have reached it."""

    initial: Any
    delay_s: float
    satellites: Sequence[str]
    aggregate: Callable[[Any, list[Any]], Any]
    views: dict[str, Any] = field(default_factory=dict)
    applied: dict[str, set[int]] = field(default_factory=dict)
    log: dict[int, Aggregation] = field(default_factory=dict)
    next_index: int = 0

    def record(self, time_s: float, satellite: str, uploads: list[Any]) -> int:
        """Log an aggregation made at ``satellite`` (the caller applies it to that view); returns its index."""
        self.log[self.next_index] = Aggregation(time_s, satellite, list(uploads))
        self.next_index += 1
        return self.next_index - 1

    def _arrived(self, index: int, satellite: str, now_s: float) -> bool:
        agg = self.log[index]
        return agg.satellite == satellite or agg.time_s + self.delay_s <= now_s + 1e-9

    def missing(self, satellite: str, now_s: float) -> int:
        """Aggregations made elsewhere that have not reached ``satellite`` by ``now_s``."""
        done = self.applied.get(satellite, set())
        return sum(1 for i in self.log if i not in done and not self._arrived(i, satellite, now_s))

    def view(self, satellite: str, now_s: float) -> Any:
        """``satellite``'s model at ``now_s`` (the aggregations that reached it applied, in order)."""
        done = self.applied.setdefault(satellite, set())
        state = self.views.get(satellite, self.initial)
        for i in sorted(self.log):
            if i not in done and self._arrived(i, satellite, now_s):
                state = self.aggregate(state, self.log[i].uploads)
                self.mark_applied(satellite, i)
        self.views[satellite] = state
        return state

    def mark_applied(self, satellite: str, index: int) -> None:
        """Note that ``satellite``'s view holds aggregation ``index``; forget it once every satellite does.

        A delivered aggregation's uploads (tensors) are no longer needed.
        """
        self.applied.setdefault(satellite, set()).add(index)
        if all(index in self.applied.get(s, ()) for s in self.satellites):
            del self.log[index]
            for seen in self.applied.values():
                seen.discard(index)
