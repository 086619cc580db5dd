"""Synthetic sentence-pair classification (the reference's second experiment, one task per cluster).

The options of an example are the task's two label words and its ``domain`` field holds
the task name.
"""

from __future__ import annotations

import numpy as np

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data.domains import DOMAIN_SPECS
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

#: Each task draws its words from its own synthetic domains, so the four clusters' inputs
#: differ (the experts that suit one task are not the ones that suit another).
_TASK_DOMAINS: dict[str, tuple[str, ...]] = {
    "same_entity": ("astronomy",),
    "negation": ("medicine",),
    "same_topic": ("law", "cooking"),
    "compare": ("geology",),
}
_VERBS = ("sings", "sleeps", "runs", "waits")
_ADJS = ("hot", "cold", "wet", "dry", "big", "old")
_NAMES_PER_TASK = 6
_ATTRIBUTES_PER_TOPIC = 4


def task_names(task_name: str) -> tuple[str, ...]:
    """The task's entity names: two consecutive syllables of its domain (a small fixed set)."""
    syl = DOMAIN_SPECS[_TASK_DOMAINS[task_name][0]].syllables
    return tuple(syl[i] + syl[(i + 1) % len(syl)] for i in range(_NAMES_PER_TASK))


def _other(g: np.random.Generator, n: int, i: int) -> int:
    """A uniformly drawn index in ``0..n-1`` other than ``i``."""
    return (i + 1 + int(g.integers(n - 1))) % n


def _prompt(task_name: str, positive: bool, g: np.random.Generator) -> str:
    names = task_names(task_name) if task_name != "same_topic" else ()
    if task_name == "same_entity":
        i = int(g.integers(len(names)))
        j = i if positive else _other(g, len(names), i)
        v1, v2 = (_VERBS[int(k)] for k in g.integers(len(_VERBS), size=2))
        return f"{names[i]} {v1}. {names[j]} {v2}. same one?"
    if task_name == "negation":
        e, a = names[int(g.integers(len(names)))], _ADJS[int(g.integers(len(_ADJS)))]
        return f"{e} is {a}. {e} is {'not ' if positive else ''}{a}. negates?"
    if task_name == "same_topic":
        topics = _TASK_DOMAINS[task_name]
        d1 = int(g.integers(len(topics)))
        d2 = d1 if positive else _other(g, len(topics), d1)
        a1, a2 = (DOMAIN_SPECS[topics[d]].attributes[int(g.integers(_ATTRIBUTES_PER_TOPIC))] for d in (d1, d2))
        return f"it is {a1}. it is {a2}. topic?"
    first, second = (int(x) for x in g.choice(10, size=2, replace=False))
    if (first > second) != positive:
        first, second = second, first
    e1, e2 = (names[int(k)] for k in g.integers(len(names), size=2))
    return f"{e1} has {first}. {e2} has {second}. first?"


def make_classification_examples(task_name: str, n: int, seed: int, split: str = "train") -> list[Example]:
    """``n`` sentence-pair examples of one classification task (labels balanced at random).

    Tasks (prompt ``"<s1> <s2> <question>"``, options ``(positive, negative)``):

    * ``same_entity``: do both sentences name the same entity (one of six astronomy names)?
      (``yes``/``no``)
    * ``negation``: is sentence 2 the negation of sentence 1 (``not`` before the same
      adjective), or does it restate it? (``true``/``false``)
    * ``same_topic``: are both attributes from the same topic (law or cooking, four words
      each)? (``match``/``differ``)
    * ``compare``: is the first digit larger? (``more``/``less``)

    The vocabularies are small on purpose: a tiny MoE trained from random init learns all
    four within a few hundred steps (the centralised upper bound of paper-exp2-tiny). The
    first design (random two-syllable names of any domain, two-digit numbers, negatives
    negating another adjective, topics over six domains of eight words) stayed near chance
    from scratch (0.57 after 400 steps, ``experiments/upper_bound.py``), so it could not
    show the reference's experiment.
    """
    check_split(split)
    if task_name not in _CLS_LABELS:
        raise InputError(
            f"unknown classification task {task_name!r}; use one of {', '.join(CLASSIFICATION_TASKS)}",
            field="task",
        )
    labels = _CLS_LABELS[task_name]
    g = named_rng(seed, "data", "classification", task_name, split)
    out = []
    for _ in range(n):
        positive = bool(g.integers(2))
        out.append(Example(task_name, "classification", _prompt(task_name, positive, g), labels, 0 if positive else 1))
    return out
