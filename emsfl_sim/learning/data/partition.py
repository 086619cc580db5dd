"""Partitioning domain pools onto clusters and devices (by home domain or a Dirichlet mix)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data.example import Example
from emsfl_sim.rng import rng as named_rng

__all__ = ["cluster_domain_weights", "device_count", "ExamplePool", "draw_mixed", "partition_examples"]


def cluster_domain_weights(
    clusters: Sequence[tuple[str, str]],
    domains: Sequence[str],
    mode: str = "by_domain",
    alpha: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each cluster's domain mix (probabilities over ``domains``).

    ``by_domain``: all mass on the cluster's home domain. ``dirichlet``: a draw from
    Dirichlet(c) with ``c_d = alpha`` for every domain plus 1 for the home domain. So
    alpha -> 0 gives the home domain only (the cluster keeps its home-domain link,
    unlike a plain Dirichlet(alpha) whose single surviving domain would be random),
    alpha -> inf gives the uniform mix, and the expected home share is
    ``(alpha + 1) / (D * alpha + 1)``.
    """
    domains = list(domains)
    out: dict[str, np.ndarray] = {}
    for name, home in clusters:
        if home not in domains:
            raise InputError(
                f"cluster {name!r} has home domain {home!r} which has no data; "
                f"use one of {', '.join(domains)}",
                field="data.clusters",
            )
        h = domains.index(home)
        if mode == "by_domain":
            w = np.zeros(len(domains))
            w[h] = 1.0
        elif mode == "dirichlet":
            if not alpha > 0:
                raise InputError(f"dirichlet alpha must be > 0 (got {alpha})", field="data.alpha")
            c = np.full(len(domains), float(alpha))
            c[h] += 1.0
            w = named_rng(seed, "data", "dirichlet", name).dirichlet(c)
        else:
            raise InputError(f"unknown partition mode {mode!r}; use 'by_domain' or 'dirichlet'", field="data.mode")
        out[name] = w
    return out


def device_count(devices_per_cluster: Mapping[str, int] | int, name: str) -> int:
    """Devices of cluster ``name`` (one count for all clusters, or a count per cluster)."""
    if isinstance(devices_per_cluster, Mapping):
        if name not in devices_per_cluster:
            raise InputError(f"no device count for cluster {name!r}", field="devices_per_cluster")
        n = devices_per_cluster[name]
    else:
        n = devices_per_cluster
    if int(n) < 1:
        raise InputError(f"cluster {name!r} needs at least 1 device (got {n})", field="devices_per_cluster")
    return int(n)


class ExamplePool:
    """Draws examples of one domain without replacement, reshuffling when exhausted.

    Parameters
    ----------
    examples:
        The domain's examples.
    g:
        The pool's own random stream (first order and every reshuffle).
    """

    def __init__(self, examples: Sequence[Example], g: np.random.Generator) -> None:
        self.examples = list(examples)
        self.g = g
        self.order = g.permutation(len(self.examples))
        self.pos = 0

    def take(self, n: int) -> list[Example]:
        """The next ``n`` examples of the pool (a new permutation each time it runs out)."""
        out: list[Example] = []
        while len(out) < n:
            if self.pos == len(self.order):
                self.order = self.g.permutation(len(self.examples))
                self.pos = 0
            k = min(n - len(out), len(self.order) - self.pos)
            out.extend(self.examples[i] for i in self.order[self.pos : self.pos + k])
            self.pos += k
        return out


def draw_mixed(
    pools: Mapping[str, ExamplePool], domains: Sequence[str], w: np.ndarray, n: int, g: np.random.Generator
) -> list[Example]:
    """``n`` examples whose domain counts are multinomial with ``w``, in shuffled order."""
    counts = g.multinomial(n, w)
    out: list[Example] = []
    for d, c in zip(domains, counts, strict=True):
        if c:
            out.extend(pools[d].take(int(c)))
    order = g.permutation(len(out))
    return [out[i] for i in order]


def partition_examples(
    examples_by_domain: Mapping[str, Sequence[Example]],
    clusters: Sequence[tuple[str, str]],
    devices_per_cluster: Mapping[str, int] | int,
    samples_per_device: int,
    mode: str = "by_domain",
    alpha: float = 1.0,
    seed: int = 0,
) -> dict[str, list[list[Example]]]:
    """Split domain pools into ``cluster -> device -> examples``.

    Each device gets ``samples_per_device`` examples; the domain counts of a device are
    multinomial with the cluster's mix (:func:`cluster_domain_weights`). A domain pool
    is drawn without replacement across all devices and reshuffled when exhausted, so
    examples repeat only when the pool is smaller than the demand.
    """
    domains = list(examples_by_domain)
    for d, ex in examples_by_domain.items():
        if len(ex) == 0:
            raise InputError(f"domain {d!r} has no examples", field="data")
    if samples_per_device < 1:
        raise InputError(f"samples_per_device must be >= 1 (got {samples_per_device})", field="samples_per_device")
    weights = cluster_domain_weights(clusters, domains, mode, alpha, seed)
    pools = {d: ExamplePool(ex, named_rng(seed, "data", "pool", d)) for d, ex in examples_by_domain.items()}
    out: dict[str, list[list[Example]]] = {}
    for name, _home in clusters:
        g = named_rng(seed, "data", "partition", name)
        out[name] = [
            draw_mixed(pools, domains, weights[name], samples_per_device, g)
            for _ in range(device_count(devices_per_cluster, name))
        ]
    return out


# ---------------------------------------------------------------------------
# Batching
