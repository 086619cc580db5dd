"""Build the federated data of a scenario: synthetic, or from the user's MCQA files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data.bundle import FederatedData, even_counts, shuffled, trial_sets
from emsfl_sim.learning.data.from_files import DataFiles, federated_data_from_files
from emsfl_sim.learning.data.partition import cluster_domain_weights, device_count, partition_examples
from emsfl_sim.learning.data.synthetic import domain_names, make_domain_examples
from emsfl_sim.rng import rng as named_rng

__all__ = ["build_federated_data"]

_MAX_POOL = 50_000


def build_federated_data(
    task: str,
    clusters: Sequence[tuple[str, str]],
    devices_per_cluster: Mapping[str, int] | int,
    samples_per_device: int,
    trial_samples_per_cluster: int = 64,
    gate_samples: int = 256,
    test_samples_per_domain: int = 128,
    mode: str = "by_domain",
    alpha: float = 1.0,
    seed: int = 0,
    jsonl_files: DataFiles | None = None,
    test_fraction: float | None = None,
) -> FederatedData:
    """Train/trial/gate/test data for ``clusters`` (``(name, home_domain)`` pairs).

    Synthetic unless ``jsonl_files`` names the user's MCQA files (a list of paths or
    data-file entries, or a mapping ``domain -> file``); then
    :func:`~emsfl_sim.learning.data.from_files.federated_data_from_files` builds the same
    bundle from their rows (``test_fraction``: its seeded test split).
    """
    domains = list(dict.fromkeys(home for _, home in clusters))
    if not domains:
        raise InputError("no clusters given", field="clusters")
    if jsonl_files:
        if task != "mcqa":
            raise InputError(f"data files hold multiple-choice QA; set data.task: mcqa (got {task!r})",
                             field="data.task")
        return federated_data_from_files(jsonl_files, clusters, devices_per_cluster, samples_per_device,
                                         trial_samples_per_cluster, gate_samples, test_samples_per_domain,
                                         mode, alpha, seed, test_fraction)
    known = domain_names(task)
    for d in domains:
        if d not in known:
            raise InputError(f"unknown {task} domain {d!r}; use one of {', '.join(known)}", field="clusters")
    total = sum(device_count(devices_per_cluster, n) for n, _ in clusters) * samples_per_device
    pool_n = max(1, min(total, _MAX_POOL))
    pools = {d: make_domain_examples(d, pool_n, seed, task, "train") for d in domains}
    train = partition_examples(pools, clusters, devices_per_cluster, samples_per_device, mode, alpha, seed)
    weights = cluster_domain_weights(clusters, domains, mode, alpha, seed)
    trial_examples = {d: make_domain_examples(d, max(1, trial_samples_per_cluster), seed, task, "trial")
                      for d in domains}
    trial = trial_sets(trial_examples, clusters, weights, trial_samples_per_cluster, seed)
    per = even_counts(gate_samples, len(domains))
    gate = [ex for d, k in zip(domains, per, strict=True) for ex in make_domain_examples(d, k, seed, task, "gate")]
    gate = shuffled(gate, named_rng(seed, "data", "gate-order"))
    test = {d: make_domain_examples(d, test_samples_per_domain, seed, task, "test") for d in domains}
    return FederatedData(train, trial, gate, test, domains, weights)
