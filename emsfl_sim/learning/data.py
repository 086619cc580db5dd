"""Data for the learning core: tokenizer, synthetic multi-domain tasks, partitioning, loaders.

Everything here is deterministic from the scenario seed (via :func:`emsfl_sim.rng.rng`)
and needs no downloads.

Two task formats share one record type, :class:`Example`:

* ``task="mcqa"``: a question about a made-up entity of a domain and 4 options, one
  correct (the reference's MCQA experiment). Each domain has a fixed fact table
  (entity -> attribute) drawn from the seed; training and test questions ask the same
  facts through different templates, so test accuracy measures learned facts.
* ``task="classification"``: sentence-pair classification (the reference's second
  experiment, one task per cluster). The options are the task's label words and the
  ``domain`` field holds the task name.

Prediction follows the reference's rule (see :mod:`emsfl_sim.learning.evaluate`): the
option with the highest mean token log-likelihood given the prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emsfl_sim.errors import InputError
from emsfl_sim.rng import rng as named_rng

__all__ = [
    "ByteTokenizer",
    "Example",
    "SYNTHETIC_DOMAINS",
    "CLASSIFICATION_TASKS",
    "SPLITS",
    "domain_names",
    "domain_facts",
    "make_domain_examples",
    "pretrain_facts",
    "make_pretrain_examples",
    "make_classification_examples",
    "cluster_domain_weights",
    "partition_examples",
    "make_lm_batch",
    "encode_prompt_option",
    "iterate_batches",
    "load_mcqa_jsonl",
    "load_text_file",
    "FederatedData",
    "build_federated_data",
]

SPLITS = ("train", "test", "trial", "gate")


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------


class ByteTokenizer:
    """Byte-level tokenizer: ids 0-255 are UTF-8 bytes, then pad, bos, eos.

    Tiny models are built with ``vocab_size`` (259) so that no download is needed.
    """

    pad_id: int = 256
    bos_id: int = 257
    eos_id: int = 258
    vocab_size: int = 259

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids of ``text`` (UTF-8 bytes), optionally preceded by ``bos_id``."""
        ids = list(text.encode("utf-8"))
        return [self.bos_id, *ids] if add_bos else ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special ids are dropped, invalid UTF-8 is replaced."""
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Synthetic MCQA domains
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _DomainSpec:
    # Entity names are two syllables from a domain-specific set, so each domain has
    # its own character statistics; attribute words are 5 letters with distinct first
    # letters (equal length avoids a length bias of the normalised score at chance,
    # distinct first bytes make the decision a single, quickly learnable token). Every
    # template ends with the entity name and one punctuation byte, so a template held
    # out for testing differs from the trained ones only before the entity.
    syllables: tuple[str, ...]
    attributes: tuple[str, ...]
    templates: tuple[str, ...]


_DOMAIN_SPECS: dict[str, _DomainSpec] = {
    "astronomy": _DomainSpec(
        ("zor", "xan", "vex", "kyr", "qua", "zel", "vox", "kex"),
        ("giant", "dwarf", "comet", "orbit", "lunar", "solar", "pulse", "radio"),
        ("what kind of star is {e}?", "astronomers class {e}:", "the sky object {e}:",
         "telescope log, type of {e}?"),
    ),
    "medicine": _DomainSpec(
        ("mel", "lin", "pim", "nol", "lem", "min", "pel", "nim"),
        ("fever", "nerve", "blood", "heart", "liver", "tonic", "ulcer", "swell"),
        ("patient sign for {e}:", "doctors link with {e}:", "which organ hurts in {e}?",
         "clinic note on {e}:"),
    ),
    "law": _DomainSpec(
        ("tar", "dru", "bro", "gra", "ter", "dor", "bar", "tru"),
        ("judge", "court", "trust", "lease", "bonds", "valid", "fraud", "proof"),
        ("under statute {e}:", "court ruling on {e}:", "which doctrine covers {e}?",
         "counsel cites {e}:"),
    ),
    "cooking": _DomainSpec(
        ("sho", "chu", "wa", "fu", "yo", "cha", "wu", "shi"),
        ("roast", "fried", "sweet", "grill", "toast", "honey", "mince", "olive"),
        ("how do you cook {e}?", "the recipe for {e}:", "chef tastes {e}:", "kitchen card, dish {e}:"),
    ),
    "geology": _DomainSpec(
        ("gro", "stu", "kan", "rok", "gas", "tun", "sko", "dar"),
        ("slate", "flint", "chalk", "magma", "ochre", "beryl", "topaz", "agate"),
        ("the rock at {e}:", "which stone forms {e}?", "field survey, layer {e}:", "what do miners dig at {e}?"),
    ),
    "music": _DomainSpec(
        ("la", "ri", "mi", "so", "fa", "do", "ti", "re"),
        ("tempo", "chord", "flute", "piano", "viola", "banjo", "sharp", "drums"),
        ("the song style of {e}:", "which sound has {e}?", "band sheet, part {e}:", "how do players tune {e}?"),
    ),
}

SYNTHETIC_DOMAINS: tuple[str, ...] = tuple(_DOMAIN_SPECS)
"""Synthetic MCQA domains, each with its own syllables, attribute words and templates."""

FACTS_PER_DOMAIN = 16
N_OPTIONS = 4


def domain_facts(domain: str, seed: int) -> dict[str, str]:
    """The fixed fact table (entity -> attribute) of ``domain`` for ``seed``.

    16 entities; each of the 8 attribute words is the answer of exactly 2 entities, so
    the correct answers are balanced and accuracy at chance is 1/4.
    """
    spec = _spec(domain)
    g = named_rng(seed, "data", "facts", domain)
    syl = spec.syllables
    pairs = [a + b for a in syl for b in syl if a != b]
    names = [pairs[i] for i in g.choice(len(pairs), size=FACTS_PER_DOMAIN, replace=False)]
    reps = FACTS_PER_DOMAIN // len(spec.attributes)
    attrs = np.repeat(np.arange(len(spec.attributes)), reps)
    g.shuffle(attrs)
    return {name: spec.attributes[a] for name, a in zip(names, attrs, strict=True)}


def _spec(domain: str) -> _DomainSpec:
    try:
        return _DOMAIN_SPECS[domain]
    except KeyError:
        raise InputError(
            f"unknown synthetic domain {domain!r}; use one of {', '.join(SYNTHETIC_DOMAINS)}",
            field="domain",
        ) from None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}", field="split")


def _heldout_template(domain: str, seed: int) -> np.ndarray:
    """Per entity, the template index reserved for the test split."""
    n_t = len(_spec(domain).templates)
    offset = int(named_rng(seed, "data", "heldout", domain).integers(n_t))
    return (np.arange(FACTS_PER_DOMAIN) + offset) % n_t


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
    _check_split(split)
    if task == "classification":
        return make_classification_examples(domain, n, seed, split)
    if task != "mcqa":
        raise InputError(f"unknown task {task!r}; use 'mcqa' or 'classification'", field="task")
    spec = _spec(domain)
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
    attrs = spec.attributes
    out = []
    for i in range(n):
        name, correct = facts[ent[i]]
        others = [a for a in attrs if a != correct]
        picks = [others[j] for j in g.choice(len(others), size=N_OPTIONS - 1, replace=False)]
        answer = int(g.integers(N_OPTIONS))
        picks.insert(answer, correct)
        prompt = spec.templates[tmpl[i]].format(e=name)
        out.append(Example(domain, "mcqa", prompt, tuple(picks), answer))
    return out


def pretrain_facts(domain: str, seed: int, n: int = FACTS_PER_DOMAIN) -> dict[str, str]:
    """A second fact table of ``domain`` for backbone pre-training, disjoint from fine-tuning.

    ``n`` entities drawn from the domain's syllable pairs that :func:`domain_facts` does
    not use for ``seed``, each with a random attribute (a separate random stream). A
    model pre-trained on these knows the domain's templates, vocabulary and answer words
    but none of the facts that fine-tuning (and the test) ask about.
    """
    spec = _spec(domain)
    used = set(domain_facts(domain, seed))
    syl = spec.syllables
    pairs = [a + b for a in syl for b in syl if a != b and a + b not in used]
    g = named_rng(seed, "data", "pretrain-facts", domain)
    names = [pairs[i] for i in g.choice(len(pairs), size=min(int(n), len(pairs)), replace=False)]
    attrs = g.integers(len(spec.attributes), size=len(names))
    return {name: spec.attributes[a] for name, a in zip(names, attrs, strict=True)}


def make_pretrain_examples(domain: str, n: int, seed: int, n_facts: int = FACTS_PER_DOMAIN) -> list[Example]:
    """``n`` MCQA examples of :func:`pretrain_facts` through all of the domain's templates."""
    spec = _spec(domain)
    facts = list(pretrain_facts(domain, seed, n_facts).items())
    g = named_rng(seed, "data", "pretrain", domain)
    out = []
    for _ in range(int(n)):
        name, correct = facts[int(g.integers(len(facts)))]
        template = spec.templates[int(g.integers(len(spec.templates)))]
        others = [a for a in spec.attributes if a != correct]
        picks = [others[j] for j in g.choice(len(others), size=N_OPTIONS - 1, replace=False)]
        answer = int(g.integers(N_OPTIONS))
        picks.insert(answer, correct)
        out.append(Example(domain, "mcqa", template.format(e=name), tuple(picks), answer))
    return out


# ---------------------------------------------------------------------------
# Synthetic sentence-pair classification
# ---------------------------------------------------------------------------

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
    syl = _DOMAIN_SPECS[domain].syllables
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
    _check_split(split)
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
            at1 = _DOMAIN_SPECS[d].attributes[int(g.integers(8))]
            at2 = _DOMAIN_SPECS[d2].attributes[int(g.integers(8))]
            prompt = f"{_entity(g, d)} is {at1}. {_entity(g, d2)} is {at2}. topic?"
        else:  # compare
            a, b = g.choice(np.arange(10, 100), size=2, replace=False)
            if (a > b) != positive:
                a, b = b, a
            prompt = f"{_entity(g, d)} has {a}. {_entity(g, d)} has {b}. first?"
        out.append(Example(task_name, "classification", prompt, labels, 0 if positive else 1))
    return out


def domain_names(task: str = "mcqa") -> list[str]:
    """Synthetic domains of ``task``: MCQA domains or classification task names."""
    if task == "mcqa":
        return list(SYNTHETIC_DOMAINS)
    if task == "classification":
        return list(CLASSIFICATION_TASKS)
    raise InputError(f"unknown task {task!r}; use 'mcqa' or 'classification'", field="task")


# ---------------------------------------------------------------------------
# Partitioning to clusters and devices
# ---------------------------------------------------------------------------


def cluster_domain_weights(
    clusters: Sequence[tuple[str, str]],
    domains: Sequence[str],
    mode: str = "by_domain",
    alpha: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each cluster's domain mix (probabilities over ``domains``).

    ``by_domain``: all mass on the cluster's home domain. ``dirichlet``: a draw from
    Dirichlet(c) with ``c_d = alpha`` for every domain plus 1 for the home domain. So
    alpha -> 0 gives the home domain only (the cluster keeps its home-domain link,
    unlike a plain Dirichlet(alpha) whose single surviving domain would be random),
    alpha -> inf gives the uniform mix, and the expected home share is
    ``(alpha + 1) / (D * alpha + 1)``.
    """
    domains = list(domains)
    out: dict[str, np.ndarray] = {}
    for name, home in clusters:
        if home not in domains:
            raise InputError(
                f"cluster {name!r} has home domain {home!r} which has no data; "
                f"use one of {', '.join(domains)}",
                field="data.clusters",
            )
        h = domains.index(home)
        if mode == "by_domain":
            w = np.zeros(len(domains))
            w[h] = 1.0
        elif mode == "dirichlet":
            if not alpha > 0:
                raise InputError(f"dirichlet alpha must be > 0 (got {alpha})", field="data.alpha")
            c = np.full(len(domains), float(alpha))
            c[h] += 1.0
            w = named_rng(seed, "data", "dirichlet", name).dirichlet(c)
        else:
            raise InputError(f"unknown partition mode {mode!r}; use 'by_domain' or 'dirichlet'", field="data.mode")
        out[name] = w
    return out


def _devices(devices_per_cluster: Mapping[str, int] | int, name: str) -> int:
    if isinstance(devices_per_cluster, Mapping):
        if name not in devices_per_cluster:
            raise InputError(f"no device count for cluster {name!r}", field="devices_per_cluster")
        n = devices_per_cluster[name]
    else:
        n = devices_per_cluster
    if int(n) < 1:
        raise InputError(f"cluster {name!r} needs at least 1 device (got {n})", field="devices_per_cluster")
    return int(n)


class _Pool:
    """Draws examples of one domain without replacement, reshuffling when exhausted."""

    def __init__(self, examples: Sequence[Example], g: np.random.Generator) -> None:
        self.examples = list(examples)
        self.g = g
        self.order = g.permutation(len(self.examples))
        self.pos = 0

    def take(self, n: int) -> list[Example]:
        out: list[Example] = []
        while len(out) < n:
            if self.pos == len(self.order):
                self.order = self.g.permutation(len(self.examples))
                self.pos = 0
            k = min(n - len(out), len(self.order) - self.pos)
            out.extend(self.examples[i] for i in self.order[self.pos : self.pos + k])
            self.pos += k
        return out


def _draw_mixed(
    pools: Mapping[str, _Pool], domains: Sequence[str], w: np.ndarray, n: int, g: np.random.Generator
) -> list[Example]:
    counts = g.multinomial(n, w)
    out: list[Example] = []
    for d, c in zip(domains, counts, strict=True):
        if c:
            out.extend(pools[d].take(int(c)))
    order = g.permutation(len(out))
    return [out[i] for i in order]


def partition_examples(
    examples_by_domain: Mapping[str, Sequence[Example]],
    clusters: Sequence[tuple[str, str]],
    devices_per_cluster: Mapping[str, int] | int,
    samples_per_device: int,
    mode: str = "by_domain",
    alpha: float = 1.0,
    seed: int = 0,
) -> dict[str, list[list[Example]]]:
    """Split domain pools into ``cluster -> device -> examples``.

    Each device gets ``samples_per_device`` examples; the domain counts of a device are
    multinomial with the cluster's mix (:func:`cluster_domain_weights`). A domain pool
    is drawn without replacement across all devices and reshuffled when exhausted, so
    examples repeat only when the pool is smaller than the demand.
    """
    domains = list(examples_by_domain)
    for d, ex in examples_by_domain.items():
        if len(ex) == 0:
            raise InputError(f"domain {d!r} has no examples", field="data")
    if samples_per_device < 1:
        raise InputError(f"samples_per_device must be >= 1 (got {samples_per_device})", field="samples_per_device")
    weights = cluster_domain_weights(clusters, domains, mode, alpha, seed)
    pools = {d: _Pool(ex, named_rng(seed, "data", "pool", d)) for d, ex in examples_by_domain.items()}
    out: dict[str, list[list[Example]]] = {}
    for name, _home in clusters:
        g = named_rng(seed, "data", "partition", name)
        out[name] = [
            _draw_mixed(pools, domains, weights[name], samples_per_device, g)
            for _ in range(_devices(devices_per_cluster, name))
        ]
    return out


# ---------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------


def encode_prompt_option(tokenizer: ByteTokenizer, prompt: str, option: str) -> tuple[list[int], list[int]]:
    """Token ids of the prompt part (``bos + prompt + " "``) and of the option part.

    The separating space belongs to the prompt so that the scored/trained continuation
    starts at the option's first (deciding) byte.
    """
    return tokenizer.encode(prompt + " ", add_bos=True), tokenizer.encode(option, add_bos=False)


def make_lm_batch(
    examples: Sequence[Example],
    tokenizer: ByteTokenizer,
    max_len: int = 96,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """A causal-LM batch of ``prompt + " " + correct option + eos``.

    ``labels`` are -100 on the prompt and padding, so the loss covers only the answer
    bytes and eos. Right padding with ``pad_id``. Sequences longer than ``max_len``
    lose prompt tokens from the left (the answer is kept).
    """
    if not examples:
        raise ValueError("make_lm_batch needs at least one example")
    rows, labs = [], []
    for ex in examples:
        p, o = encode_prompt_option(tokenizer, ex.prompt, ex.answer_text)
        o = [*o, tokenizer.eos_id]
        ids = (p + o)[-max_len:]
        n_ans = min(len(o), len(ids))
        rows.append(ids)
        labs.append([-100] * (len(ids) - n_ans) + ids[len(ids) - n_ans :])
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, labs, strict=True)):
        input_ids[i, : len(r)] = torch.tensor(r)
        labels[i, : len(r)] = torch.tensor(lab)
        mask[i, : len(r)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def iterate_batches(
    examples: Sequence[Example], batch_size: int, rng: np.random.Generator, epochs: int | None = None
) -> Iterator[list[Example]]:
    """Shuffled batches from a stream of epochs (a new permutation per epoch).

    Batches are cut from the concatenated stream, so every batch is full; with a finite
    ``epochs`` only the last batch may be shorter. ``epochs=None`` never ends.
    """
    if not examples:
        raise ValueError("iterate_batches needs at least one example")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    buf: list[Example] = []
    epoch = 0
    while epochs is None or epoch < epochs:
        buf.extend(examples[i] for i in rng.permutation(len(examples)))
        epoch += 1
        while len(buf) >= batch_size:
            yield buf[:batch_size]
            buf = buf[batch_size:]
    if buf:
        yield buf


class DeviceDataStream:
    """A device's walk through its own shard: seeded, reshuffled epochs, never restarted.

    The stream belongs to the simulated device, not to its model state, so resetting the
    model (the baseline does it every round, from the broadcast global model) continues
    the data order where it was (design note 5.4). It counts what it handed out, so a
    run can report the data each strategy really used.
    """

    def __init__(self, examples: Sequence[Example], batch_size: int, rng: np.random.Generator) -> None:
        self.examples = list(examples)
        if not self.examples:
            raise ValueError("a device data stream needs at least one example")
        self._indices = iterate_batches(list(range(len(self.examples))), batch_size, rng)
        self._seen = np.zeros(len(self.examples), dtype=bool)
        self.samples_seen = 0

    def __len__(self) -> int:
        return len(self.examples)

    def next_batch(self) -> list[Example]:
        """The next batch of the stream (full batches cut across epoch boundaries)."""
        idx = next(self._indices)
        self._seen[idx] = True
        self.samples_seen += len(idx)
        return [self.examples[i] for i in idx]

    @property
    def unique_fraction(self) -> float:
        """Share of the shard's examples handed out at least once."""
        return float(self._seen.mean())

    @property
    def epochs(self) -> float:
        """Samples handed out per shard size (passes over the data)."""
        return self.samples_seen / len(self.examples)


# ---------------------------------------------------------------------------
# User data
# ---------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError("file not found; give the path of an existing local file", file=path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8", file=path) from None


def _parse_answer(ans: object, options: list[str]) -> int | None:
    """Index of ``ans`` given as an index, an option letter or the option text."""
    if isinstance(ans, bool):
        return None
    if isinstance(ans, int):
        return ans if 0 <= ans < len(options) else None
    if isinstance(ans, str):
        s = ans.strip()
        if s in options:  # the option text wins over a letter reading
            return options.index(s)
        if len(s) == 1 and s.isascii() and s.isalpha():
            i = ord(s.upper()) - ord("A")
            return i if i < len(options) else None
        if s.isdigit() and int(s) < len(options):
            return int(s)
    return None


def load_mcqa_jsonl(path: str | Path, domain: str | None = None) -> list[Example]:
    """Multiple-choice examples from a JSONL file, one object per line.

    Each row needs ``question`` (string), ``options`` (list of >= 2 strings) and
    ``answer`` (0-based index, option letter ``"A"``..., or the option text); an
    optional ``domain`` key overrides the default domain (``domain`` or the file stem).
    Blank lines are skipped. Bad rows raise :class:`InputError` naming the file, the
    line and the fix.
    """
    path = Path(path)
    text = _read_text(path)
    default_domain = domain if domain is not None else path.stem
    out: list[Example] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg}); write one JSON object per line", path, where) from None
        if not isinstance(row, dict):
            raise InputError("row is not a JSON object; write {\"question\": ..., \"options\": [...], \"answer\": ...}", path, where)
        if "question" not in row:
            raise InputError("row has no 'question'; add \"question\": text", path, where)
        if not isinstance(row["question"], str):
            raise InputError("'question' must be a string", path, where)
        if "options" not in row:
            raise InputError("row has no 'options'; add \"options\": [list of answer strings]", path, where)
        options = row["options"]
        if not (isinstance(options, list) and len(options) >= 2 and all(isinstance(o, str) for o in options)):
            raise InputError("'options' must be a list of at least 2 strings", path, where)
        if "answer" not in row:
            raise InputError("row has no 'answer'; add \"answer\": index or letter", path, where)
        idx = _parse_answer(row["answer"], options)
        if idx is None:
            raise InputError(
                f"'answer' {row['answer']!r} matches no option; use a 0-based index below {len(options)}, "
                "an option letter or the option text",
                path,
                where,
            )
        dom = row.get("domain", default_domain)
        out.append(Example(str(dom), "mcqa", row["question"], tuple(options), idx))
    if not out:
        raise InputError("no rows; write one JSON object per line", file=path)
    return out


def load_text_file(path: str | Path) -> list[str]:
    """Non-empty lines (stripped) of a UTF-8 text file, for language-model text."""
    path = Path(path)
    lines = [s.strip() for s in _read_text(path).splitlines()]
    lines = [s for s in lines if s]
    if not lines:
        raise InputError("file has no text; write one passage per line", file=path)
    return lines


# ---------------------------------------------------------------------------
# Bundle for a federated scenario
# ---------------------------------------------------------------------------

_MAX_POOL = 50_000


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
) -> FederatedData:
    """Synthetic train/trial/gate/test data for ``clusters`` (``(name, home_domain)`` pairs)."""
    domains = list(dict.fromkeys(home for _, home in clusters))
    if not domains:
        raise InputError("no clusters given", field="clusters")
    known = domain_names(task)
    for d in domains:
        if d not in known:
            raise InputError(f"unknown {task} domain {d!r}; use one of {', '.join(known)}", field="clusters")
    total = sum(_devices(devices_per_cluster, n) for n, _ in clusters) * samples_per_device
    pool_n = max(1, min(total, _MAX_POOL))
    pools = {d: make_domain_examples(d, pool_n, seed, task, "train") for d in domains}
    train = partition_examples(pools, clusters, devices_per_cluster, samples_per_device, mode, alpha, seed)
    weights = cluster_domain_weights(clusters, domains, mode, alpha, seed)
    trial_pools = {
        d: _Pool(make_domain_examples(d, max(1, trial_samples_per_cluster), seed, task, "trial"),
                 named_rng(seed, "data", "trial-pool", d))
        for d in domains
    }
    trial = {
        name: _draw_mixed(trial_pools, domains, weights[name], trial_samples_per_cluster,
                          named_rng(seed, "data", "trial", name))
        for name, _ in clusters
    }
    per = [gate_samples // len(domains) + (i < gate_samples % len(domains)) for i in range(len(domains))]
    gate = [ex for d, k in zip(domains, per, strict=True) for ex in make_domain_examples(d, k, seed, task, "gate")]
    gate = [gate[i] for i in named_rng(seed, "data", "gate-order").permutation(len(gate))]
    test = {d: make_domain_examples(d, test_samples_per_domain, seed, task, "test") for d in domains}
    return FederatedData(train, trial, gate, test, domains, weights)
