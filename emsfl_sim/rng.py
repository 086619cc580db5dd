"""Seeded random generators derived from the scenario seed and a stable name.

Every random choice in the simulator draws from ``rng(seed, "shadowing", cluster)``
style generators, never from global state, so adding a component does not shift
the random streams of the others.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_int(*names: object) -> int:
    """A 64-bit integer derived deterministically from ``names`` (not Python's hash)."""
    text = "\x1f".join(str(n) for n in names).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def rng(seed: int, *names: object) -> np.random.Generator:
    """A numpy Generator for the stream named ``names`` under scenario ``seed``."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stable_int(*names) & 0xFFFFFFFFFFFFFFFF])


def torch_seed(seed: int, *names: object) -> int:
    """A seed for ``torch.Generator().manual_seed`` for the stream named ``names``."""
    return stable_int(seed, *names) & 0x7FFFFFFFFFFFFFFF
