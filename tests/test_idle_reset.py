"""Issue 16: resets of a cluster without experts (most clusters of a 1000-cluster run) leave the devices as a full reset does."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from emsfl_sim.strategies.base import Device
from emsfl_sim.strategies.emsfl import EmsFl


class _Clock:
    def timed(self, fn: Any, *args: Any) -> Any:
        return fn(*args)


def _strategy(devices: int) -> EmsFl:
    """An EmsFl with only what reset_devices reads (devices, its engine, the one global model)."""
    strategy = object.__new__(EmsFl)
    strategy.devices = {"c": [Device(f"c/{i}", "c", stream=None) for i in range(devices)]}  # type: ignore[arg-type]
    strategy.ctx = SimpleNamespace(clock=_Clock(), window={"c": None}, now=0.0)  # type: ignore[assignment]
    strategy.engine = SimpleNamespace(new_device=lambda name, snapshot, experts, gate, masked: ("model", experts))
    strategy.views, strategy.state, strategy._last_satellite = None, SimpleNamespace(version={}), {}
    strategy._idle_clusters = set()
    return strategy


def _fields(strategy: EmsFl) -> list[tuple[Any, ...]]:
    return [(d.experts, d.rounds_since_sync, d.state, d.updates) for d in strategy.devices["c"]]


def test_idle_resets_count_every_reset_and_a_reset_with_experts_ends_idling() -> None:
    strategy = _strategy(3)
    strategy.reset_devices("c", [1, 2], train_gate=False, masked=False)
    for d in strategy.devices["c"]:
        d.rounds_since_sync = 2  # trained since
    strategy.reset_devices("c", [], train_gate=False, masked=False)
    assert _fields(strategy) == [([], 0, None, 2)] * 3  # the full idle reset
    strategy.reset_devices("c", [], train_gate=False, masked=False)
    strategy.reset_devices("c", [], train_gate=False, masked=False)
    assert _fields(strategy) == [([], 0, None, 4)] * 3  # later idle resets: counted (content keys), nothing else
    strategy.reset_devices("c", [3], train_gate=False, masked=False)
    assert _fields(strategy) == [([3], 0, ("model", [3]), 5)] * 3
    strategy.devices["c"][0].rounds_since_sync = 1
    strategy.reset_devices("c", [], train_gate=False, masked=False)  # idle again: cleared again
    assert _fields(strategy) == [([], 0, None, 6)] * 3
