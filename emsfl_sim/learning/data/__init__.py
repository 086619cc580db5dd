"""Data for the learning core: tokenizer, synthetic multi-domain tasks, user files, partitioning, loaders.

Everything here is deterministic from the scenario seed (via :func:`emsfl_sim.rng.rng`)
and needs no downloads.

Two task formats share one record type, :class:`Example`:

* ``task="mcqa"``: a question about a made-up entity of a domain and 4 options, one
  correct (the reference's MCQA experiment). Each domain has a fixed fact table
  (entity -> attribute) drawn from the seed; training and test questions ask the same
  facts through different templates, so test accuracy measures learned facts.
  The user's own MCQA rows (JSONL or CSV, :mod:`.files`; the layouts of MMLU, MedMCQA
  and CMExam too, :mod:`.layouts`) become the same examples.
* ``task="classification"``: sentence-pair classification (the reference's second
  experiment, one task per cluster). The options are the task's label words and the
  ``domain`` field holds the task name.

Prediction follows the reference's rule (see :mod:`emsfl_sim.learning.evaluate`): the
option with the highest mean token log-likelihood given the prompt.

Modules: :mod:`.tokenizer`, :mod:`.example` (record, splits), :mod:`.domains`
(synthetic vocabularies), :mod:`.mcqa`, :mod:`.classification`, :mod:`.synthetic`
(one entry point), :mod:`.partition` (clusters and devices), :mod:`.batching`,
:mod:`.stream` (a device's data order), :mod:`.files` (user files; their row layouts in
:mod:`.layouts`, field checks in :mod:`.fields`), :mod:`.bundle`
(:class:`FederatedData`), :mod:`.from_files` and :mod:`.federated` (the builders).
"""

from __future__ import annotations

from emsfl_sim.learning.data.batching import (
    encode_prompt_option,
    iterate_batches,
    make_classification_batch,
    make_lm_batch,
)
from emsfl_sim.learning.data.bundle import FederatedData
from emsfl_sim.learning.data.classification import CLASSIFICATION_TASKS, make_classification_examples
from emsfl_sim.learning.data.domains import SYNTHETIC_DOMAINS
from emsfl_sim.learning.data.example import SPLITS, Example
from emsfl_sim.learning.data.federated import build_federated_data
from emsfl_sim.learning.data.files import (
    FORMATS,
    JSONL_SPLITS,
    DataFile,
    McqaRow,
    load_mcqa_files,
    load_mcqa_jsonl,
    load_mcqa_rows,
    load_text_file,
)
from emsfl_sim.learning.data.from_files import federated_data_from_files
from emsfl_sim.learning.data.mcqa import (
    FACTS_PER_DOMAIN,
    N_OPTIONS,
    domain_facts,
    make_pretrain_examples,
    pretrain_facts,
)
from emsfl_sim.learning.data.partition import cluster_domain_weights, partition_examples
from emsfl_sim.learning.data.stream import DeviceDataStream
from emsfl_sim.learning.data.synthetic import domain_names, make_domain_examples
from emsfl_sim.learning.data.tokenizer import (
    PROMPT_FORMATS,
    ByteTokenizer,
    HFTokenizer,
    Tokenizer,
    byte_tokenizer,
    dense_tokenizer,
    load_checkpoint_tokenizer,
)

__all__ = [
    "make_classification_batch",
    "ByteTokenizer",
    "HFTokenizer",
    "Tokenizer",
    "PROMPT_FORMATS",
    "byte_tokenizer",
    "dense_tokenizer",
    "load_checkpoint_tokenizer",
    "Example",
    "SYNTHETIC_DOMAINS",
    "CLASSIFICATION_TASKS",
    "SPLITS",
    "JSONL_SPLITS",
    "FACTS_PER_DOMAIN",
    "N_OPTIONS",
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
    "DeviceDataStream",
    "FORMATS",
    "DataFile",
    "McqaRow",
    "load_mcqa_rows",
    "load_mcqa_jsonl",
    "load_mcqa_files",
    "load_text_file",
    "FederatedData",
    "build_federated_data",
    "federated_data_from_files",
]
