"""Paper experiment 1's MoE merged from tiny dense domain models: routing is domain-aligned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emsfl_sim.learning.splitting import assign_experts
from emsfl_sim.rng import rng
from emsfl_sim.run.world import build_learning_world
from emsfl_sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _build(cache: Path, work: Path):
    # the scenario's recipe with fewer steps (the full one takes about a minute)
    s = load_scenario(ROOT / "scenarios" / "paper-exp1-tiny.yaml", overrides={
        "time.orbital_cycles": 1, "model.dense_pretrain_steps": 200, "model.gate_pretrain_steps": 40,
        "data.test_samples_per_domain": 16, "model.cache_dir": str(cache)})
    logs: list[str] = []
    world = build_learning_world(s, log=logs.append, work_dir=work)
    return s, world, logs


@pytest.fixture(scope="module")
def merged_world(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("cache")
    return (*_build(cache, tmp_path_factory.mktemp("dense")), cache)


def test_merged_routing_sends_each_domain_to_its_own_expert(merged_world) -> None:
    s, world, logs, _ = merged_world
    eng = world.engine
    p = np.stack([eng.expert_relevance(world.initial_state, world.data.trial[c.name]) for c in s.clusters])
    # expert e was built from the dense model of cluster e's domain
    assert np.all(np.diag(p) > 0.6), p
    assert np.all(np.argmax(p, axis=1) == np.arange(len(s.clusters))), p
    groups = assign_experts(p, s.strategy.relevance_threshold, rng(s.seed, "test-split"))
    assert [list(g) for g in groups] == [[0], [1], [2]]
    line = next(m for m in logs if m.startswith("gate pre-training"))
    first, last = (float(x) for x in line.split("loss ")[1].split(" -> "))
    assert last < 0.6 * first


def test_the_merge_is_streamed_into_the_cache(merged_world) -> None:
    import json

    s, *_, cache = merged_world
    (merged,) = cache.glob("moe-merged-*")  # written once by learning.merge_stream, loaded as a checkpoint
    paths = json.loads((merged / "emsfl_merge.json").read_text())["paths"]
    assert [Path(p).name for p in paths] == [f"dense-{c.domain}" for c in s.clusters]
    assert len(list(merged.glob("model-*.safetensors"))) == 1 + 4 + 1  # embeddings, the tiny preset's 4 layers, head


def test_dense_models_are_cached_and_rebuild_identically(merged_world, tmp_path: Path) -> None:
    import torch

    s, world, logs, cache = merged_world
    assert any(m.startswith("built 3 dense domain experts") for m in logs)
    assert len(list(cache.glob("dense-*/complete"))) == 1
    _, again, logs2 = _build(cache, tmp_path)
    assert any("dense domain experts from cache" in m for m in logs2)
    a, b = world.initial_state, again.initial_state
    assert all(torch.equal(a.gate[k], b.gate[k]) for k in a.gate)
    assert all(torch.equal(a.experts[e][k], b.experts[e][k]) for e in a.experts for k in a.experts[e])
    # the cached dense copies keep their files' names, sizes and mtimes: the same merge, reused
    assert len(list(cache.glob("moe-merged-*"))) == 1
