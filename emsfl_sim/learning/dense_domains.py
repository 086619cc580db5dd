"""Paper experiment 1 in miniature: one tiny dense Llama per domain, merged into an MoE.

A shared backbone is first pre-trained on all domains, then each domain's model
continues on its own domain (FFN only), so the merged MoE's attention fits every
expert. For MCQA the pre-training text is the preset recipe's corpus: every template,
entities *disjoint* from the fine-tuning fact table, so the dense experts know their
domain's language and phrasings, not the answers. The router starts from the mergekit
``hidden`` method on each domain's prompts. The dense models are cached like the
pre-trained presets, keyed by the recipe, seed and torch version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from emsfl_sim.learning.data import (
    SYNTHETIC_DOMAINS,
    ByteTokenizer,
    Example,
    iterate_batches,
    make_domain_examples,
    make_lm_batch,
    make_pretrain_examples,
)
from emsfl_sim.learning.pretrain import PRETRAIN_FACTS_PER_DOMAIN, pretrain_dense
from emsfl_sim.rng import rng, stable_int

#: bump when the dense-domain pre-training recipe changes (invalidates cached dense models)
DENSE_RECIPE_VERSION = 2


@dataclass(frozen=True)
class DenseDomainRecipe:
    """How the dense domain models are pre-trained (every field enters the cache key)."""

    seed: int
    task: str
    domains: tuple[str, ...]
    steps: int
    lr: float
    batch_size: int
    max_len: int
    probe_weight: float
    preset: str = "tiny"

    def key(self) -> str:
        """Hash of the recipe, its version, the fact-table size and the torch version."""
        recipe = dict(version=DENSE_RECIPE_VERSION, seed=self.seed, task=self.task, domains=list(self.domains),
                      steps=self.steps, lr=self.lr, batch=self.batch_size, max_len=self.max_len,
                      probe=self.probe_weight, preset=self.preset, facts=PRETRAIN_FACTS_PER_DOMAIN,
                      torch=torch.__version__)
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class DenseDomainModels:
    """The dense checkpoints (one per domain, in order) and each domain's router-init prompts."""

    paths: list[str]
    prompts: list[list[str]]
    cached: bool


def dense_domain_models(recipe: DenseDomainRecipe, directory: str | Path, cache_root: Path | None,
                        log: Callable[[str], None] = print) -> DenseDomainModels:
    """Build (or load from ``cache_root``) one dense model per domain of ``recipe``.

    Parameters
    ----------
    recipe
        The pre-training recipe.
    directory
        Where freshly built models are saved.
    cache_root
        The model cache (None: no cache).
    log
        Progress messages.
    """
    pre_seed = stable_int(recipe.seed, "dense-pretrain-facts") % (2**31)
    prompts = [[ex.prompt for ex in make_domain_examples(d, 32, pre_seed, recipe.task, "trial")]
               for d in recipe.domains]
    cached = cache_root / f"dense-{recipe.key()}" if cache_root is not None else None
    if cached is not None and (cached / "complete").exists():
        log(f"dense domain experts from cache {cached}")
        return DenseDomainModels([str(cached / f"dense-{d}") for d in recipe.domains], prompts, True)
    paths = _train_dense_models(recipe, Path(directory), pre_seed)
    log(f"built {len(paths)} dense domain experts ({recipe.steps} shared + {max(1, recipe.steps // 2)} own "
        f"pre-training steps) in {directory}")
    if cached is not None:
        _store(Path(directory), recipe.domains, cached, log)
    return DenseDomainModels(paths, prompts, False)


def _train_dense_models(recipe: DenseDomainRecipe, directory: Path, pre_seed: int) -> list[str]:
    """Pre-train the shared base on every domain, then each domain's FFN on its own domain."""
    tok = ByteTokenizer()
    all_domains = list(SYNTHETIC_DOMAINS) if recipe.task == "mcqa" else list(recipe.domains)
    all_domains += [d for d in recipe.domains if d not in all_domains]
    index = {d: i for i, d in enumerate(all_domains)}

    def batches(examples: list[Example], name: str, labelled: bool = False) -> Iterator[Any]:
        for b in iterate_batches(examples, recipe.batch_size, rng(recipe.seed, "dense-batches", name)):
            batch = make_lm_batch(b, tok, recipe.max_len)
            yield (batch, torch.tensor([index[ex.domain] for ex in b])) if labelled else batch

    def corpus(d: str, n: int) -> list[Example]:
        if recipe.task == "mcqa":
            # every template, entities disjoint from fine-tuning's (as the preset pre-training)
            return make_pretrain_examples(d, n, recipe.seed, PRETRAIN_FACTS_PER_DOMAIN)
        return make_domain_examples(d, n, pre_seed, recipe.task, "train")

    # The shared base learns all domains and, through linear domain probes, to keep the
    # domain readable in its hidden states, which the merged router then reads.
    mixed = [ex for d in all_domains for ex in corpus(d, 512)]
    base = pretrain_dense(batches(mixed, "base", labelled=recipe.probe_weight > 0), recipe.steps, lr=recipe.lr,
                          seed=recipe.seed, preset=recipe.preset, domain_probe_weight=recipe.probe_weight,
                          num_domains=len(all_domains))
    paths = []
    for d in recipe.domains:
        path = directory / f"dense-{d}"
        # Only the FFN specialises: the merged MoE keeps the base's attention for every expert.
        pretrain_dense(batches(corpus(d, 512), d), max(1, recipe.steps // 2), lr=recipe.lr, seed=recipe.seed,
                       init_from=base, save_to=path, train_only=".mlp.")
        paths.append(str(path))
    return paths


def _store(directory: Path, domains: tuple[str, ...], target: Path, log: Callable[[str], None]) -> None:
    """Copy freshly built dense models into the cache (copy, then rename: never half-written)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + "-"))
        for d in domains:
            shutil.copytree(directory / f"dense-{d}", tmp / f"dense-{d}")
        (tmp / "complete").touch()
        try:
            tmp.rename(target)
        except OSError:  # another run stored it first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:  # an unwritable cache only costs the rebuild next time
        log(f"dense domain experts not cached ({exc})")

