"""Federated data from the user's MCQA files (``data.jsonl_files``).

The rows' domains play the part of the synthetic domains: train rows are the domain
pools that :func:`~emsfl_sim.learning.data.partition.partition_examples` deals onto
clusters and devices (by home domain or a Dirichlet mix, as for synthetic data); the
trial sets are drawn from a domain's trial rows if it has any, else from its train rows;
the gate set from the train rows; the test set of a domain is its first
``test_samples_per_domain`` test rows in file order (all of them if there are fewer).

Rows whose split neither the row nor its file names are train rows, unless
``test_fraction`` is given: then, per domain, that fraction of them (the nearest whole
number, at least one and at least one left for training) is drawn for the test set
from the named stream ``rng(seed, "data", "test-split", domain)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data.bundle import FederatedData, even_counts, shuffled, trial_sets
from emsfl_sim.learning.data.example import Example
from emsfl_sim.learning.data.files import DataFileLike, McqaRow, load_mcqa_files
from emsfl_sim.learning.data.partition import ExamplePool, cluster_domain_weights, partition_examples
from emsfl_sim.rng import rng as named_rng

__all__ = ["rows_by_domain", "draw_test_split", "federated_data_from_files"]

DataFiles = Sequence[str | Path | DataFileLike] | Mapping[str, str | Path | DataFileLike]
"""The forms ``data.jsonl_files`` takes (see :func:`~emsfl_sim.learning.data.files.data_file_list`)."""


def rows_by_domain(rows: Sequence[McqaRow], clusters: Sequence[tuple[str, str]]) -> dict[str, list[McqaRow]]:
    """The rows of each cluster domain (in cluster order), checked against the clusters.

    Raises :class:`InputError` at the first row of a domain no cluster has, and for a
    cluster domain that no row has.
    """
    domains = list(dict.fromkeys(home for _, home in clusters))
    out: dict[str, list[McqaRow]] = {d: [] for d in domains}
    for row in rows:
        d = row.example.domain
        if d not in out:
            n = sum(r.example.domain == d for r in rows)
            raise InputError(
                f"{d!r} is the domain of no cluster ({n} rows); use one of {', '.join(domains)} "
                "(the clusters' domains), give a cluster this domain, or remove these rows",
                row.where,
                "domain",
            )
        out[d].append(row)
    found = list(dict.fromkeys(r.example.domain for r in rows))
    for name, home in clusters:
        if not out[home]:
            raise InputError(
                f"cluster {name!r} has domain {home!r}, which no row of the data files has; add rows with "
                f"\"domain\": \"{home}\" or set the cluster's domain to one the files have "
                f"({', '.join(found)})",
                field="data.jsonl_files",
            )
    return out


def _files_of(rows: Sequence[McqaRow]) -> str:
    return ", ".join(dict.fromkeys(r.file for r in rows))


def _check_counts(domain: str, rows: Sequence[McqaRow], samples_per_device: int, test_samples: int) -> None:
    n_train = sum(r.split == "train" for r in rows)
    where = _files_of(rows)
    if n_train == 0:
        raise InputError(f"domain {domain!r} has no train rows (all {len(rows)} are \"split\": \"test\"); "
                         "add train rows (leave out \"split\" or write \"split\": \"train\")", where, "split")
    if n_train < samples_per_device:
        raise InputError(
            f"domain {domain!r} has {n_train} train rows, fewer than samples_per_device ({samples_per_device}); "
            f"add train rows or set data.samples_per_device to at most {n_train}",
            where,
            "data.samples_per_device",
        )
    if not any(r.split == "test" for r in rows):
        raise InputError(
            f"domain {domain!r} has no test rows; mark some of its rows \"split\": \"test\", give a file of "
            "test rows (split: test in data.jsonl_files) or set data.test_fraction (e.g. 0.2) to draw them "
            f"(up to data.test_samples_per_domain = {test_samples} are used)",
            where,
            "split",
        )


def draw_test_split(rows: Sequence[McqaRow], fraction: float, seed: int) -> list[McqaRow]:
    """``rows`` with a seeded share of those without a given split moved to ``test`` (per domain).

    Of the ``n`` rows of a domain whose split neither the row nor its file names,
    ``round(fraction * n)`` (at least 1, at most ``n - 1``; none if ``n < 2``) become
    test rows, drawn from ``rng(seed, "data", "test-split", domain)``; order is kept.
    """
    if not 0 < fraction < 1:
        raise InputError(f"must be between 0 and 1 (got {fraction})", field="data.test_fraction")
    free: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if not row.split_given:
            free.setdefault(row.example.domain, []).append(i)
    out = list(rows)
    for domain, index in free.items():
        n = len(index)
        k = min(n - 1, max(1, int(fraction * n + 0.5))) if n >= 2 else 0
        for j in named_rng(seed, "data", "test-split", domain).choice(n, size=k, replace=False):
            out[index[j]] = replace(out[index[j]], split="test")
    return out


def federated_data_from_files(
    files: DataFiles,
    clusters: Sequence[tuple[str, str]],
    devices_per_cluster: Mapping[str, int] | int,
    samples_per_device: int,
    trial_samples_per_cluster: int = 64,
    gate_samples: int = 256,
    test_samples_per_domain: int = 128,
    mode: str = "by_domain",
    alpha: float = 1.0,
    seed: int = 0,
    test_fraction: float | None = None,
) -> FederatedData:
    """The federated data of ``clusters`` from MCQA ``files`` (see this module's docstring).

    ``files`` is a list of paths or data-file entries, or a mapping ``domain -> path or
    entry`` (:func:`~emsfl_sim.learning.data.files.data_file_list`). Each cluster domain
    needs at least ``samples_per_device`` train rows and one test row; every row's
    domain must be a cluster's. ``test_fraction`` draws test rows among those without a
    given split (:func:`draw_test_split`). Draws use the same named random streams as
    the synthetic data.
    """
    rows = load_mcqa_files(files)
    if test_fraction is not None:
        rows = draw_test_split(rows, test_fraction, seed)
    by_domain = rows_by_domain(rows, clusters)
    for d, rows in by_domain.items():
        _check_counts(d, rows, samples_per_device, test_samples_per_domain)
    domains = list(by_domain)
    train_ex: dict[str, list[Example]] = {
        d: [r.example for r in rows if r.split == "train"] for d, rows in by_domain.items()
    }
    trial_ex = {d: [r.example for r in rows if r.split == "trial"] or train_ex[d] for d, rows in by_domain.items()}
    train = partition_examples(train_ex, clusters, devices_per_cluster, samples_per_device, mode, alpha, seed)
    weights = cluster_domain_weights(clusters, domains, mode, alpha, seed)
    trial = trial_sets(trial_ex, clusters, weights, trial_samples_per_cluster, seed)
    per = even_counts(gate_samples, len(domains))
    gate = [ex for d, k in zip(domains, per, strict=True)
            for ex in ExamplePool(train_ex[d], named_rng(seed, "data", "gate-pool", d)).take(k)]
    gate = shuffled(gate, named_rng(seed, "data", "gate-order"))
    test = {d: [r.example for r in rows if r.split == "test"][:test_samples_per_domain]
            for d, rows in by_domain.items()}
    return FederatedData(train, trial, gate, test, domains, weights)
