"""Learning sanity: pre-trained tiny MoE, expert-driven splitting, local training of a cluster's experts.

Tiny preset on CPU (one thread). The base model is the ``tiny`` preset after the
synthetic backbone pre-training (:func:`emsfl_sim.learning.models.pretrain_backbone`):
all domains, facts disjoint from the fine-tuning facts, routers pre-trained on the mixed
sample to send each domain to its experts. It is cached in a per-session temporary
directory, so this module pays the pre-training once (400 steps, about 25 s on one free core).
"""

from __future__ import annotations

import numpy as np
import pytest

from emsfl_sim.learning.data import build_federated_data, domain_facts, make_domain_examples
from emsfl_sim.learning.engine import LearningEngine
from emsfl_sim.learning.lora import LoraSpec
from emsfl_sim.learning.modelspec import ModelSpec
from emsfl_sim.learning.splitting import assign_experts, check_partition
from emsfl_sim.learning.train import TrainSpec

DOMAINS = ["astronomy", "law"]
THRESHOLD = 0.05
SEED = 0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    eng = LearningEngine(
        ModelSpec(preset="tiny", pretrain_steps=400, pretrain_lr=6e-3,
                  cache_dir=str(tmp_path_factory.mktemp("emsfl-cache"))),
        LoraSpec(rank=8, alpha=16),
        TrainSpec(learning_rate=1e-2, batch_size=16, max_len=96),
        seed=SEED,
        device="cpu",
    )
    fd = build_federated_data("mcqa", [(f"c{i}", d) for i, d in enumerate(DOMAINS)], 1, 256,
                              test_samples_per_domain=128, seed=SEED)
    s1 = eng.initial_state()
    P = np.stack([eng.expert_relevance(s1, fd.trial[f"c{i}"]) for i in range(len(DOMAINS))])
    groups = assign_experts(P, THRESHOLD, np.random.default_rng(0))
    return eng, fd, s1, P, groups


def test_splitting_follows_routing(setup):
    eng, fd, s1, P, groups = setup
    check_partition(groups, eng.num_experts)
    assert all(groups), groups  # every cluster gets experts
    for k, g in enumerate(groups):
        for e in g:
            assert P[k, e] >= THRESHOLD or P[:, e].max() < THRESHOLD  # only experts its data routes to
        # the pre-trained gate sends most of a domain's routing decisions to one expert,
        # and splitting gives the cluster that expert
        assert P[k].max() > 0.6, P
        assert int(P[k].argmax()) in g, (P, groups)
    assert P[0].argmax() != P[1].argmax()  # different domains, different experts
    # the expert a cluster routes to relatively most (largest q) is its own whenever q is decisive
    q = np.where(P >= THRESHOLD, P, 0)
    q = q / np.maximum(q.sum(0, keepdims=True), 1e-12)
    for e in range(eng.num_experts):
        if q[:, e].max() > 0.99:
            assert e in groups[int(q[:, e].argmax())]


@pytest.fixture(scope="module")
def trained(setup):
    eng, fd, s1, P, groups = setup
    dev = eng.new_device("c0-d0", s1, groups[0], train_gate=False, masked=False)
    res = eng.train_local(dev, fd.train["c0"][0], 150, train_gate=False)
    return eng.aggregate(s1, [eng.make_upload(dev, dev.experts, False)]), res


def test_local_training_learns_the_clusters_facts(setup, trained):
    eng, fd, s1, P, groups = setup
    state, res = trained
    assert len(groups[0]) < eng.num_experts  # a cluster training part of the model, not all of it
    assert np.mean(res.losses[-10:]) < 0.5 * np.mean(res.losses[:10])
    # questions on the trained phrasings (fresh draws, not the training list itself)
    seen = {DOMAINS[0]: make_domain_examples(DOMAINS[0], 128, seed=SEED, split="trial")}
    before = eng.evaluate(s1, seen)[f"accuracy/{DOMAINS[0]}"]
    after = eng.evaluate(state, seen)[f"accuracy/{DOMAINS[0]}"]
    assert after >= 0.6 and after > before + 0.25, (before, after)


def test_pretraining_did_not_teach_the_finetuning_facts(setup):
    eng, fd, s1, P, groups = setup
    # the backbone saw other entities only: before local training the domain is at chance
    assert not set(domain_facts(DOMAINS[0], SEED)) & set(_pretrain_entities())
    before = eng.evaluate(s1, {DOMAINS[0]: fd.test[DOMAINS[0]]})[f"accuracy/{DOMAINS[0]}"]
    assert before < 0.45, before


def _pretrain_entities() -> list[str]:
    from emsfl_sim.learning.data import pretrain_facts
    from emsfl_sim.learning.pretrain import PRETRAIN_FACTS_PER_DOMAIN

    return list(pretrain_facts(DOMAINS[0], SEED, PRETRAIN_FACTS_PER_DOMAIN))


def test_local_training_raises_heldout_accuracy_well_above_chance(setup, trained):
    eng, fd, s1, P, groups = setup
    state, _ = trained
    acc = eng.evaluate(state, {DOMAINS[0]: fd.test[DOMAINS[0]]})[f"accuracy/{DOMAINS[0]}"]
    # the held-out template is never trained: the facts must transfer to a new phrasing. Chance is
    # 1/4 (N_OPTIONS); 128 questions give a binomial sd of about 0.044, so 0.45 is 4.5 sd above chance.
    # Measured 0.49 on 2026-12-02 (Xeon with AVX-512, torch 2.13.0 CPU); >= 0.5 on earlier machines.
    assert acc >= 0.45, acc
