"""Synthetic MCQA: fixed per-domain fact tables and questions about them.

Each domain has a fact table (entity -> attribute) drawn from the seed; training and
test questions ask the same facts through different templates, so test accuracy
measures learned facts. A second, disjoint fact table serves backbone pre-training.
"""

from __future__ import annotations

import numpy as np

from emsfl_sim.learning.data.domains import domain_spec
from emsfl_sim.learning.data.example import Example
from emsfl_sim.rng import rng as named_rng

__all__ = [
    "FACTS_PER_DOMAIN",
    "N_OPTIONS",
    "domain_facts",
    "make_mcqa_examples",
    "pretrain_facts",
    "make_pretrain_examples",
]

FACTS_PER_DOMAIN = 16
N_OPTIONS = 4


def domain_facts(domain: str, seed: int) -> dict[str, str]:
    """The fixed fact table (entity -> attribute) of ``domain`` for ``seed``.

    16 entities; each of the 8 attribute words is the answer of exactly 2 entities, so
    the correct answers are balanced and accuracy at chance is 1/4.
    """
    spec = domain_spec(domain)
    g = named_rng(seed, "data", "facts", domain)
    syl = spec.syllables
    pairs = [a + b for a in syl for b in syl if a != b]
    names = [pairs[i] for i in g.choice(len(pairs), size=FACTS_PER_DOMAIN, replace=False)]
    reps = FACTS_PER_DOMAIN // len(spec.attributes)
    attrs = np.repeat(np.arange(len(spec.attributes)), reps)
    g.shuffle(attrs)
    return {name: spec.attributes[a] for name, a in zip(names, attrs, strict=True)}


def _heldout_template(domain: str, seed: int) -> np.ndarray:
    """Per entity, the template index reserved for the test split."""
    n_t = len(domain_spec(domain).templates)
    offset = int(named_rng(seed, "data", "heldout", domain).integers(n_t))
    return (np.arange(FACTS_PER_DOMAIN) + offset) % n_t


def _options(g: np.random.Generator, attributes: tuple[str, ...], correct: str) -> tuple[tuple[str, ...], int]:
    """``correct`` and 3 other attributes in random order, and the index of ``correct``."""
    others = [a for a in attributes if a != correct]
    picks = [others[j] for j in g.choice(len(others), size=N_OPTIONS - 1, replace=False)]
    answer = int(g.integers(N_OPTIONS))
    picks.insert(answer, correct)
    return tuple(picks), answer


def make_mcqa_examples(domain: str, n: int, seed: int, split: str = "train") -> list[Example]:
    """``n`` synthetic MCQA questions of ``domain`` (``split`` is not checked here).

    Each question asks the attribute of one entity of the domain's fact table through
    one of 4 templates; options are the correct attribute and 3 other attributes of the
    domain in random order. Each entity has one template reserved for ``split="test"``;
    the other splits use the other three.
    """
    spec = domain_spec(domain)
    facts = list(domain_facts(domain, seed).items())
    heldout = _heldout_template(domain, seed)
    n_t = len(spec.templates)
    g = named_rng(seed, "data", "mcqa", domain, split)
    ent = g.integers(FACTS_PER_DOMAIN, size=n)
    if split == "test":
        tmpl = heldout[ent]
    else:
        # one of the n_t - 1 non-held-out templates
        tmpl = (heldout[ent] + 1 + g.integers(n_t - 1, size=n)) % n_t
    out = []
    for i in range(n):
        name, correct = facts[ent[i]]
        options, answer = _options(g, spec.attributes, correct)
        prompt = spec.templates[tmpl[i]].format(e=name)
        out.append(Example(domain, "mcqa", prompt, options, answer))
    return out


def pretrain_facts(domain: str, seed: int, n: int = FACTS_PER_DOMAIN) -> dict[str, str]:
    """A second fact table of ``domain`` for backbone pre-training, disjoint from fine-tuning.

    ``n`` entities drawn from the domain's syllable pairs that :func:`domain_facts` does
    not use for ``seed``, each with a random attribute (a separate random stream). A
    model pre-trained on these knows the domain's templates, vocabulary and answer words
    but none of the facts that fine-tuning (and the test) ask about.
    """
    spec = domain_spec(domain)
    used = set(domain_facts(domain, seed))
    syl = spec.syllables
    pairs = [a + b for a in syl for b in syl if a != b and a + b not in used]
    g = named_rng(seed, "data", "pretrain-facts", domain)
    names = [pairs[i] for i in g.choice(len(pairs), size=min(int(n), len(pairs)), replace=False)]
    attrs = g.integers(len(spec.attributes), size=len(names))
    return {name: spec.attributes[a] for name, a in zip(names, attrs, strict=True)}


def make_pretrain_examples(domain: str, n: int, seed: int, n_facts: int = FACTS_PER_DOMAIN) -> list[Example]:
    """``n`` MCQA examples of :func:`pretrain_facts` through all of the domain's templates."""
    spec = domain_spec(domain)
    facts = list(pretrain_facts(domain, seed, n_facts).items())
    g = named_rng(seed, "data", "pretrain", domain)
    out = []
    for _ in range(int(n)):
        name, correct = facts[int(g.integers(len(facts)))]
        template = spec.templates[int(g.integers(len(spec.templates)))]
        options, answer = _options(g, spec.attributes, correct)
        out.append(Example(domain, "mcqa", template.format(e=name), options, answer))
    return out
