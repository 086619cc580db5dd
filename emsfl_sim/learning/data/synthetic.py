"""One entry point to the synthetic generators: examples of a domain or task, domain names."""

from __future__ import annotations

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data.classification import CLASSIFICATION_TASKS, make_classification_examples
from emsfl_sim.learning.data.domains import SYNTHETIC_DOMAINS
from emsfl_sim.learning.data.example import Example, check_split
from emsfl_sim.learning.data.mcqa import make_mcqa_examples

__all__ = ["make_domain_examples", "domain_names"]


def make_domain_examples(
    domain: str, n: int, seed: int, task: str = "mcqa", split: str = "train"
) -> list[Example]:
    """``n`` synthetic examples of ``domain`` (an MCQA domain or a classification task).

    MCQA: each question asks the attribute of one entity of the domain's fact table
    through one of 4 templates; options are the correct attribute and 3 other
    attributes of the domain in random order. Each entity has one template reserved
    for ``split="test"``; ``train``, ``trial`` and ``gate`` use the other three, so a
    test question is a re-phrasing of facts seen in training, never a seen string.
    Splits draw from independent random streams.
    """
    check_split(split)
    if task == "classification":
        return make_classification_examples(domain, n, seed, split)
    if task != "mcqa":
        raise InputError(f"unknown task {task!r}; use 'mcqa' or 'classification'", field="task")
    return make_mcqa_examples(domain, n, seed, split)


def domain_names(task: str = "mcqa") -> list[str]:
    """Synthetic domains of ``task``: MCQA domains or classification task names."""
    if task == "mcqa":
        return list(SYNTHETIC_DOMAINS)
    if task == "classification":
        return list(CLASSIFICATION_TASKS)
    raise InputError(f"unknown task {task!r}; use 'mcqa' or 'classification'", field="task")
