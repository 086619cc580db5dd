"""A cluster's GPUs as a SimPy resource: devices beyond the GPU count queue for a local round.

The design's "GPU training processes per cluster": each device's local round requests
a GPU (``with pool.resource.request()``), holds it for the round and releases it; with
more devices than GPUs the rounds run in waves. The pool counts GPU-busy seconds and
each request's queueing time for the results (busy fraction, mean and longest wait).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy


class GpuPool:
    """``count`` GPUs of one cluster, shared by its devices' local rounds."""

    def __init__(self, env: simpy.Environment, cluster: str, count: int) -> None:
        if count < 1:
            raise ValueError(f"{cluster}: a GPU pool needs at least one GPU (got {count})")
        self.env, self.cluster, self.count = env, cluster, int(count)
        self.resource = simpy.Resource(env, capacity=self.count)
        self.busy_s = 0.0
        self.waits_s: list[float] = []
        self.rounds = 0
        self.abandoned = 0

    def waves(self, devices: int) -> int:
        """Rounds in sequence when ``devices`` start together (``ceil(devices / count)``)."""
        return max(1, -(-int(devices) // self.count))

    def run(self, duration_s: float, on_done: Callable[[], None]) -> Generator[simpy.Event, Any, bool]:
        """Process body: wait for a GPU, hold it ``duration_s``, then ``on_done()``; False if interrupted."""
        asked = self.env.now
        try:
            with self.resource.request() as request:
                yield request
                self.waits_s.append(self.env.now - asked)
                start = self.env.now
                try:
                    yield self.env.timeout(duration_s)
                finally:
                    self.busy_s += self.env.now - start
        except simpy.Interrupt:
            self.abandoned += 1
            return False
        self.rounds += 1
        on_done()
        return True

    def stats(self, duration_s: float) -> dict[str, float]:
        """Busy fraction over ``duration_s``, queueing times, rounds run and abandoned."""
        waits = self.waits_s or [0.0]
        return {
            "gpus": self.count,
            "busy_fraction": self.busy_s / (self.count * duration_s) if duration_s > 0 else 0.0,
            "mean_queue_s": float(sum(waits) / len(waits)),
            "max_queue_s": float(max(waits)),
            "rounds": self.rounds,
            "abandoned": self.abandoned,
        }
