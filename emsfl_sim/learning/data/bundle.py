"""The data bundle of a federated scenario and the draws its two builders share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from emsfl_sim.learning.data.example import Example
from emsfl_sim.learning.data.partition import ExamplePool, draw_mixed
from emsfl_sim.rng import rng as named_rng

__all__ = ["FederatedData", "trial_sets", "even_counts", "shuffled"]


@dataclass
class FederatedData:
    """All data of a federated scenario.

    Attributes
    ----------
    train:
        ``cluster -> device -> examples``.
    trial:
        ``cluster -> examples`` from the cluster's domain mix (for expert-driven splitting).
    gate:
        Shared gate pre-training set, uniform over ``domains``.
    test:
        ``domain -> examples`` (global accuracy is their sample-weighted mean).
    domains:
        Domains in use (the clusters' home domains, in cluster order, unique).
    weights:
        ``cluster -> domain mix`` over ``domains``.
    """

    train: dict[str, list[list[Example]]]
    trial: dict[str, list[Example]]
    gate: list[Example]
    test: dict[str, list[Example]]
    domains: list[str]
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def n_samples(self, cluster: str) -> list[int]:
        """Sample count per device of ``cluster`` (aggregation weights)."""
        return [len(d) for d in self.train[cluster]]


def trial_sets(
    examples_by_domain: Mapping[str, Sequence[Example]],
    clusters: Sequence[tuple[str, str]],
    weights: Mapping[str, np.ndarray],
    n: int,
    seed: int,
) -> dict[str, list[Example]]:
    """Per cluster, ``n`` trial examples drawn with the cluster's domain mix."""
    domains = list(examples_by_domain)
    pools = {d: ExamplePool(ex, named_rng(seed, "data", "trial-pool", d)) for d, ex in examples_by_domain.items()}
    return {name: draw_mixed(pools, domains, weights[name], n, named_rng(seed, "data", "trial", name))
            for name, _ in clusters}


def even_counts(total: int, k: int) -> list[int]:
    """``total`` split into ``k`` counts differing by at most one (the first ones larger)."""
    return [total // k + (i < total % k) for i in range(k)]


def shuffled(examples: Sequence[Example], g: np.random.Generator) -> list[Example]:
    """``examples`` in the order of one permutation drawn from ``g``."""
    return [examples[i] for i in g.permutation(len(examples))]
