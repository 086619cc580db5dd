"""A device's own data order: the per-device stream of shuffled batches (design note 5.4)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emsfl_sim.learning.data.batching import iterate_batches
from emsfl_sim.learning.data.example import Example

__all__ = ["DeviceDataStream"]


class DeviceDataStream:
    """A device's walk through its own shard: seeded, reshuffled epochs, never restarted.

    The stream belongs to the simulated device, not to its model state, so resetting the
    model (the baseline does it every round, from the broadcast global model) continues
    the data order where it was (design note 5.4). It counts what it handed out, so a
    run can report the data each strategy really used.
    """

    def __init__(self, examples: Sequence[Example], batch_size: int, rng: np.random.Generator) -> None:
        self.examples = list(examples)
        if not self.examples:
            raise ValueError("a device data stream needs at least one example")
        self._indices = iterate_batches(list(range(len(self.examples))), batch_size, rng)
        self._seen = np.zeros(len(self.examples), dtype=bool)
        self.samples_seen = 0

    def __len__(self) -> int:
        return len(self.examples)

    def next_batch(self) -> list[Example]:
        """The next batch of the stream (full batches cut across epoch boundaries)."""
        idx = next(self._indices)
        self._seen[idx] = True
        self.samples_seen += len(idx)
        return [self.examples[i] for i in idx]

    @property
    def unique_fraction(self) -> float:
        """Share of the shard's examples handed out at least once."""
        return float(self._seen.mean())

    @property
    def epochs(self) -> float:
        """Samples handed out per shard size (passes over the data)."""
        return self.samples_seen / len(self.examples)

