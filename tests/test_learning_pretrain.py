"""Synthetic backbone pre-training of presets: data disjointness, routing, determinism, cache."""

from __future__ import annotations

import pytest
import torch

from emsfl_sim.learning.adapters import adapter_for
from emsfl_sim.learning.data import SYNTHETIC_DOMAINS, domain_facts, make_pretrain_examples, pretrain_facts
from emsfl_sim.learning.models import build_model
from emsfl_sim.learning.modelspec import ModelSpec
from emsfl_sim.learning.pretrain import domain_experts
from emsfl_sim.learning.pretrain_cache import cache_dir, pretrain_key


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_pretrain_facts_are_disjoint_from_finetuning_facts(seed):
    for d in SYNTHETIC_DOMAINS:
        pre, ft = pretrain_facts(d, seed, 16), domain_facts(d, seed)
        assert len(pre) == 16 and not set(pre) & set(ft), d
    ex = make_pretrain_examples("law", 200, seed)
    assert all(e.options[e.answer] == pretrain_facts("law", seed)[e.prompt.split()[-1][:-1]] for e in ex)
    # every template is used (the held-out fine-tuning phrasing too, with other entities)
    assert {e.prompt.split(" ")[0] for e in ex} == {"under", "court", "which", "counsel"}


def test_domain_experts_mapping():
    assert [domain_experts(d, 4, 1) for d in range(6)] == [[0], [1], [2], [3], [0], [1]]
    assert [domain_experts(d, 8, 2) for d in range(5)] == [[0, 1], [2, 3], [4, 5], [6, 7], [0, 1]]


def _equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pretraining_is_deterministic_and_cached(tmp_path):
    spec = ModelSpec(preset="tiny", pretrain_steps=4, cache_dir=str(tmp_path))
    a, _ = build_model(spec, seed=3)
    assert a.emsfl_pretrain["cached"] is False and a.emsfl_pretrain["steps"] == 4
    files = list(tmp_path.glob("pretrained-tiny-*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    b, _ = build_model(spec, seed=3)
    assert b.emsfl_pretrain["cached"] is True and _equal(a, b)
    c, _ = build_model(ModelSpec(preset="tiny", pretrain_steps=4, cache_dir=""), seed=3)  # no cache
    assert c.emsfl_pretrain["cached"] is False and c.emsfl_pretrain["path"] is None and _equal(a, c)
    r, _ = build_model(ModelSpec(preset="tiny"), seed=3)
    assert not _equal(a, r)  # pre-training changed the random weights
    # the key depends on seed and recipe
    cfg = a.config
    keys = {pretrain_key(cfg, spec, 3), pretrain_key(cfg, spec, 4),
            pretrain_key(cfg, ModelSpec(preset="tiny", pretrain_steps=5), 3)}
    assert len(keys) == 3


def test_unwritable_cache_dir_still_builds(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")  # even root cannot create a directory below a file
    m, _ = build_model(ModelSpec(preset="tiny", pretrain_steps=2, cache_dir=str(blocker / "sub")), seed=0)
    assert m.emsfl_pretrain["cached"] is False and m.emsfl_pretrain["path"] is None
    ref, _ = build_model(ModelSpec(preset="tiny", pretrain_steps=2, cache_dir=""), seed=0)
    assert _equal(m, ref)


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("EMSFL_CACHE", str(tmp_path))
    assert cache_dir(ModelSpec()) == tmp_path
    assert cache_dir(ModelSpec(cache_dir="")) is None
    monkeypatch.setenv("EMSFL_CACHE", "off")
    assert cache_dir(ModelSpec()) is None
    monkeypatch.delenv("EMSFL_CACHE")
    assert cache_dir(ModelSpec()).name == "emsfl-sim"


def test_pretraining_specialises_routing_and_keeps_flags():
    # a short run already pulls each domain's tokens towards its experts (router supervision)
    from emsfl_sim.learning.data import ByteTokenizer, make_domain_examples
    from emsfl_sim.learning.splitting import expert_relevance

    m, ad = build_model(ModelSpec(preset="tiny", pretrain_steps=100, pretrain_lr=6e-3, cache_dir=""), seed=0)
    # flags kept: exactly those of the same model built without pre-training (the old all-or-nothing
    # check also passed had pre-training frozen every parameter)
    fresh, _ = build_model(ModelSpec(preset="tiny", cache_dir=""), seed=0)
    flags = {n: p.requires_grad for n, p in m.named_parameters()}
    assert flags == {n: p.requires_grad for n, p in fresh.named_parameters()}
    assert type(ad.routers(m)[0]).__name__ == "MixtralTopKRouter"  # stand-in routers removed
    tok = ByteTokenizer()
    for d, dom in enumerate(SYNTHETIC_DOMAINS[:3]):
        p = expert_relevance(m, tok, make_domain_examples(dom, 32, 0, split="trial"), 1)
        assert p[domain_experts(d, 4, 1)[0]] > 0.4, (dom, p)  # uniform routing would give 0.25
    assert adapter_for(m).num_experts == 4
