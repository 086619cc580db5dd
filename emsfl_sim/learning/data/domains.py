"""Vocabularies of the synthetic MCQA domains (syllables, answer words, templates).

The MCQA questions (:mod:`.mcqa`) and the sentence-pair tasks (:mod:`.classification`)
are both built from these.
"""

from __future__ import annotations

from dataclasses import dataclass

from emsfl_sim.errors import InputError

__all__ = ["DomainSpec", "DOMAIN_SPECS", "SYNTHETIC_DOMAINS", "domain_spec"]


@dataclass(frozen=True)
class DomainSpec:
    """Syllables of entity names, attribute (answer) words and question templates of a domain.

    Entity names are two syllables from a domain-specific set, so each domain has its
    own character statistics; attribute words are 5 letters with distinct first letters
    (equal length avoids a length bias of the normalised score at chance, distinct first
    bytes make the decision a single, quickly learnable token). Every template ends with
    the entity name and one punctuation byte, so a template held out for testing differs
    from the trained ones only before the entity.
    """

    syllables: tuple[str, ...]
    attributes: tuple[str, ...]
    templates: tuple[str, ...]


DOMAIN_SPECS: dict[str, DomainSpec] = {
    "astronomy": DomainSpec(
        ("zor", "xan", "vex", "kyr", "qua", "zel", "vox", "kex"),
        ("giant", "dwarf", "comet", "orbit", "lunar", "solar", "pulse", "radio"),
        ("what kind of star is {e}?", "astronomers class {e}:", "the sky object {e}:",
         "telescope log, type of {e}?"),
    ),
    "medicine": DomainSpec(
        ("mel", "lin", "pim", "nol", "lem", "min", "pel", "nim"),
        ("fever", "nerve", "blood", "heart", "liver", "tonic", "ulcer", "swell"),
        ("patient sign for {e}:", "doctors link with {e}:", "which organ hurts in {e}?",
         "clinic note on {e}:"),
    ),
    "law": DomainSpec(
        ("tar", "dru", "bro", "gra", "ter", "dor", "bar", "tru"),
        ("judge", "court", "trust", "lease", "bonds", "valid", "fraud", "proof"),
        ("under statute {e}:", "court ruling on {e}:", "which doctrine covers {e}?",
         "counsel cites {e}:"),
    ),
    "cooking": DomainSpec(
        ("sho", "chu", "wa", "fu", "yo", "cha", "wu", "shi"),
        ("roast", "fried", "sweet", "grill", "toast", "honey", "mince", "olive"),
        ("how do you cook {e}?", "the recipe for {e}:", "chef tastes {e}:", "kitchen card, dish {e}:"),
    ),
    "geology": DomainSpec(
        ("gro", "stu", "kan", "rok", "gas", "tun", "sko", "dar"),
        ("slate", "flint", "chalk", "magma", "ochre", "beryl", "topaz", "agate"),
        ("the rock at {e}:", "which stone forms {e}?", "field survey, layer {e}:", "what do miners dig at {e}?"),
    ),
    "music": DomainSpec(
        ("la", "ri", "mi", "so", "fa", "do", "ti", "re"),
        ("tempo", "chord", "flute", "piano", "viola", "banjo", "sharp", "drums"),
        ("the song style of {e}:", "which sound has {e}?", "band sheet, part {e}:", "how do players tune {e}?"),
    ),
}

SYNTHETIC_DOMAINS: tuple[str, ...] = tuple(DOMAIN_SPECS)
"""Synthetic MCQA domains, each with its own syllables, attribute words and templates."""


def domain_spec(domain: str) -> DomainSpec:
    """The vocabulary of a synthetic MCQA domain; :class:`InputError` for an unknown one."""
    try:
        return DOMAIN_SPECS[domain]
    except KeyError:
        raise InputError(
            f"unknown synthetic domain {domain!r}; use one of {', '.join(SYNTHETIC_DOMAINS)}",
            field="domain",
        ) from None
