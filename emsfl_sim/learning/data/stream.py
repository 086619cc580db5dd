"""A device's own data order: the per-device stream of shuffled batches (design note 5.4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emsfl_sim.learning.data.example import Example

__all__ = ["DeviceDataStream"]


class DeviceDataStream:
    """A device's walk through its own shard: seeded, reshuffled epochs, never restarted.

    The stream belongs to the simulated device, not to its model state, so resetting the
    model (the baseline does it every round, from the broadcast global model) continues
    the data order where it was (design note 5.4). It counts what it handed out, so a
    run can report the data each strategy really used.

    Batches are cut from the concatenation of one permutation per epoch, drawn when the
    buffer runs short, so every batch is full (the order of ``iterate_batches`` with
    endless epochs). The position is plain data (:meth:`state_dict`), so a checkpoint
    can save it and a resumed run continue the same order.
    """

    def __init__(self, examples: Sequence[Example], batch_size: int, rng: np.random.Generator) -> None:
        self.examples = list(examples)
        if not self.examples:
            raise ValueError("a device data stream needs at least one example")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        self.batch_size = int(batch_size)
        self._rng = rng
        self._buffer: list[int] = []  # indices drawn but not yet handed out
        self._seen = np.zeros(len(self.examples), dtype=bool)
        self.samples_seen = 0

    def __len__(self) -> int:
        return len(self.examples)

    def next_batch(self) -> list[Example]:
        """The next batch of the stream (full batches cut across epoch boundaries)."""
        while len(self._buffer) < self.batch_size:
            self._buffer.extend(int(i) for i in self._rng.permutation(len(self.examples)))
        idx, self._buffer = self._buffer[: self.batch_size], self._buffer[self.batch_size :]
        self._seen[idx] = True
        self.samples_seen += len(idx)
        return [self.examples[i] for i in idx]

    def state_dict(self) -> dict[str, Any]:
        """The stream's position as data: generator state, undelivered indices, what was seen."""
        return {"rng": self._rng.bit_generator.state, "buffer": list(self._buffer), "seen": self._seen.copy(),
                "samples_seen": int(self.samples_seen), "size": len(self.examples)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` of a stream over the same examples."""
        if int(state["size"]) != len(self.examples):
            raise ValueError(f"stream state of {state['size']} examples for a stream of {len(self.examples)}")
        self._rng.bit_generator.state = state["rng"]
        self._buffer = [int(i) for i in state["buffer"]]
        self._seen = np.asarray(state["seen"], dtype=bool).copy()
        self.samples_seen = int(state["samples_seen"])

    @property
    def unique_fraction(self) -> float:
        """Share of the shard's examples handed out at least once."""
        return float(self._seen.mean())

    @property
    def epochs(self) -> float:
        """Samples handed out per shard size (passes over the data)."""
        return self.samples_seen / len(self.examples)
