"""Synthetic sentence-pair classification (the reference's second experiment, one task per cluster).

The options of an example are the task's two label words and its ``domain`` field holds
the task name.
"""

from __future__ import annotations

import numpy as np

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data.domains import DOMAIN_SPECS, SYNTHETIC_DOMAINS
from emsfl_sim.learning.data.example import Example, check_split
from emsfl_sim.rng import rng as named_rng

__all__ = ["CLASSIFICATION_TASKS", "make_classification_examples"]

_CLS_LABELS: dict[str, tuple[str, str]] = {
    # (positive, negative) label words; distinct across tasks and in their first byte.
    "same_entity": ("yes", "no"),
    "negation": ("true", "false"),
    "same_topic": ("match", "differ"),
    "compare": ("more", "less"),
}
CLASSIFICATION_TASKS: tuple[str, ...] = tuple(_CLS_LABELS)
"""Sentence-pair classification tasks (paper experiment 2: one task per cluster)."""

_VERBS = ("sings", "sleeps", "runs", "waits", "glows", "falls", "grows", "hides")
_ADJS = ("hot", "cold", "wet", "dry", "big", "old", "new", "low")


def _entity(g: np.random.Generator, domain: str) -> str:
    syl = DOMAIN_SPECS[domain].syllables
    a, b = g.choice(len(syl), size=2, replace=False)
    return syl[a] + syl[b]


def make_classification_examples(task_name: str, n: int, seed: int, split: str = "train") -> list[Example]:
    """``n`` sentence-pair examples of one classification task (labels balanced at random).

    Tasks (prompt ``"<s1> <s2> <question>"``, options ``(positive, negative)``):

    * ``same_entity``: do both sentences name the same entity? (``yes``/``no``)
    * ``negation``: is sentence 2 the negation of sentence 1 (same subject and adjective
      plus ``not``)? Negatives restate s1 or negate another adjective. (``true``/``false``)
    * ``same_topic``: are both entities from the same synthetic domain? (``match``/``differ``)
    * ``compare``: is the first number larger? (``more``/``less``)
    """
    check_split(split)
    if task_name not in _CLS_LABELS:
        raise InputError(
            f"unknown classification task {task_name!r}; use one of {', '.join(CLASSIFICATION_TASKS)}",
            field="task",
        )
    labels = _CLS_LABELS[task_name]
    g = named_rng(seed, "data", "classification", task_name, split)
    doms = SYNTHETIC_DOMAINS
    out = []
    for _ in range(n):
        positive = bool(g.integers(2))
        d = doms[int(g.integers(len(doms)))]
        if task_name == "same_entity":
            e1 = _entity(g, d)
            e2 = e1
            while not positive and e2 == e1:
                e2 = _entity(g, d)  # same domain: the names must be compared, not their statistics
            v1, v2 = (_VERBS[i] for i in g.choice(len(_VERBS), size=2))
            prompt = f"{e1} {v1}. {e2} {v2}. same one?"
        elif task_name == "negation":
            e = _entity(g, d)
            a1, a2 = (_ADJS[i] for i in g.choice(len(_ADJS), size=2, replace=False))
            if positive:
                s2 = f"{e} is not {a1}."
            elif g.integers(2):
                s2 = f"{e} is {a1}."
            else:
                s2 = f"{e} is not {a2}."
            prompt = f"{e} is {a1}. {s2} negates?"
        elif task_name == "same_topic":
            d2 = d
            if not positive:
                d2 = doms[(doms.index(d) + 1 + int(g.integers(len(doms) - 1))) % len(doms)]
            at1 = DOMAIN_SPECS[d].attributes[int(g.integers(8))]
            at2 = DOMAIN_SPECS[d2].attributes[int(g.integers(8))]
            prompt = f"{_entity(g, d)} is {at1}. {_entity(g, d2)} is {at2}. topic?"
        else:  # compare
            a, b = g.choice(np.arange(10, 100), size=2, replace=False)
            if (a > b) != positive:
                a, b = b, a
            prompt = f"{_entity(g, d)} has {a}. {_entity(g, d)} has {b}. first?"
        out.append(Example(task_name, "classification", prompt, labels, 0 if positive else 1))
    return out

