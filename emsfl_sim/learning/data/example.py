"""The record type shared by every task and data source, and the split names."""

from __future__ import annotations

from dataclasses import dataclass

from emsfl_sim.errors import InputError

__all__ = ["Example", "SPLITS", "check_split"]

SPLITS = ("train", "test", "trial", "gate")
"""Synthetic data splits; each draws from its own random stream."""


@dataclass(frozen=True)
class Example:
    """One multiple-choice item (MCQA question or sentence pair with label words).

    Parameters
    ----------
    domain:
        Data domain (MCQA) or classification task name; used for per-domain metrics.
    task:
        ``"mcqa"`` or ``"classification"``.
    prompt:
        Text given to the model; each option is scored as the continuation ``" " + option``.
    options:
        Candidate answers.
    answer:
        Index of the correct option.
    """

    domain: str
    task: str
    prompt: str
    options: tuple[str, ...]
    answer: int

    @property
    def answer_text(self) -> str:
        """The correct option."""
        return self.options[self.answer]



def check_split(split: str) -> None:
    """Raise :class:`InputError` unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}", field="split")
