"""Expert-driven splitting (design note 5.1): routing counts, relevance, seeded assignment."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data import ByteTokenizer, make_domain_examples, make_lm_batch
from emsfl_sim.learning.splitting import (
    assign_experts,
    assignment_table,
    check_partition,
    expert_relevance,
    relevance_matrix,
    routing_counts,
)
from tests.fakes import tiny_mixtral as make_tiny_mixtral

TOK = ByteTokenizer()



def _is_partition(groups, n_exp):
    flat = [e for g in groups for e in g]
    return sorted(flat) == list(range(n_exp)) and len(flat) == len(set(flat))


# ---------------------------------------------------------------- routing counts


def test_routing_counts_hand_made_logits():
    layer0 = torch.tensor([[5.0, 1, 0, 0], [0, 5, 1, 0], [0, 0, 1, 5], [1, 0, 5, 0]])
    layer1 = torch.tensor([[0.0, 0, 9, 1], [9, 1, 0, 0], [9, 0, 1, 0], [0, 2, 1, 9]])
    assert routing_counts([layer0, layer1], top_k=1).tolist() == [3, 1, 2, 2]
    # top-2 adds each token's runner-up: layer0 -> 1, 2, 2, 0; layer1 -> 3, 1, 2, 1
    assert routing_counts([layer0, layer1], top_k=2).tolist() == [4, 4, 5, 3]
    # batch 2 x seq 2 with the second token of each sequence padded
    mask = torch.tensor([[1, 0], [1, 0]])
    assert routing_counts([layer0, layer1], 1, mask).tolist() == [2, 0, 1, 1]
    # [batch, seq, E] layout and masked-out experts (-inf) give the same decisions
    assert routing_counts([layer0.reshape(2, 2, 4)], 1, mask).tolist() == [1, 0, 0, 1]
    masked = layer0.clone()
    masked[:, 0] = -torch.inf
    assert routing_counts([masked], 1).tolist() == [0, 2, 1, 1]


def test_routing_counts_bad_input():
    with pytest.raises(InputError, match="top_k must be between 1 and the number of experts 4"):
        routing_counts([torch.zeros(3, 4)], top_k=5)
    with pytest.raises(InputError, match="no router logits"):
        routing_counts([], top_k=1)
    with pytest.raises(ValueError, match="mask has 4"):
        routing_counts([torch.zeros(3, 4)], 1, torch.ones(2, 2))


# ---------------------------------------------------------------- relevance on a real MoE


@pytest.fixture(scope="module")
def tiny_mixtral():
    return make_tiny_mixtral(top_k=2)


def test_expert_relevance_matches_router_hooks(tiny_mixtral):
    """Independent reference: record the experts each router actually selected."""
    exs = make_domain_examples("law", 7, 0) + make_domain_examples("music", 6, 0)
    picked = []
    hooks = [layer.mlp.gate.register_forward_hook(lambda m, i, o: picked.append(o[2].detach()))
             for layer in tiny_mixtral.model.layers]
    try:
        batch = make_lm_batch(exs, TOK)
        with torch.no_grad():
            tiny_mixtral(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for h in hooks:
            h.remove()
    keep = batch["attention_mask"].reshape(-1).bool()
    ref = sum(torch.bincount(p[keep].reshape(-1), minlength=4) for p in picked).numpy()
    n_real = int(keep.sum())
    assert ref.sum() == 2 * 2 * n_real  # layers x tokens x top_k
    p = expert_relevance(tiny_mixtral, TOK, exs, batch_size=5)  # top_k from the config
    np.testing.assert_allclose(p, ref / ref.sum())


def test_relevance_matrix_rows(tiny_mixtral):
    trial = {"a": make_domain_examples("law", 8, 0, split="trial"),
             "b": make_domain_examples("astronomy", 8, 0, split="trial")}
    p = relevance_matrix(tiny_mixtral, TOK, trial, top_k=1)
    assert p.shape == (2, 4)
    np.testing.assert_allclose(p.sum(1), 1.0)
    groups = assign_experts(p, 0.1, np.random.default_rng(0))
    assert _is_partition(groups, 4) and all(groups)
    with pytest.raises(InputError, match="cluster 'c' has an empty trial set"):
        relevance_matrix(tiny_mixtral, TOK, {"c": []})


# ---------------------------------------------------------------- assignment


def test_assignment_is_a_partition_for_random_p():
    g = np.random.default_rng(123)
    for _ in range(400):
        k, e = int(g.integers(1, 7)), int(g.integers(1, 11))
        p = g.dirichlet(np.full(e, float(g.choice([0.1, 1.0, 10.0]))), size=k)
        thr = float(g.choice([0.0, g.uniform(0, 0.5), 1.0]))
        groups = assign_experts(p, thr, np.random.default_rng(int(g.integers(1 << 30))))
        assert len(groups) == k and _is_partition(groups, e)
        assert sum(1 for grp in groups if grp) == min(k, e)  # coverage: as many clusters as possible
        check_partition(groups, e)


def test_more_clusters_than_experts():
    # 5 clusters, 3 experts: exactly 3 clusters get one expert each (sampled owners keep
    # theirs; empty clusters can only take experts from clusters holding two or more)
    p = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8], [0.34, 0.33, 0.33]])
    seen = set()
    for seed in range(60):
        groups = assign_experts(p, 0.0, np.random.default_rng(seed))
        assert _is_partition(groups, 3)
        assert sorted(len(grp) for grp in groups) == [0, 0, 1, 1, 1], groups
        seen.add(tuple(len(grp) for grp in groups))
    assert len(seen) > 1  # which clusters go without depends on the draw
    # with truncation, only cluster 0 holds mass on expert 0 etc.: the owners are fixed
    assert assign_experts(p, 0.75, np.random.default_rng(0)) == [[0], [1], [], [2], []]


def test_expert_without_mass_goes_to_highest_untruncated_p():
    p = np.array([[0.6, 0.35, 0.05], [0.1, 0.8, 0.1]])
    for seed in range(50):
        groups = assign_experts(p, 0.2, np.random.default_rng(seed))
        assert 0 in groups[0] and 2 in groups[1]  # expert 2: all p below 0.2, highest p in cluster 1


def test_threshold_above_all_p_and_ties():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.15, 0.15, 0.7]])
    assert assign_experts(p, 1.0, np.random.default_rng(0)) == [[0], [1], [2]]  # argmax per expert
    # all tied: every expert goes to cluster 0 (lowest index), then cluster 1 takes the
    # lowest-index expert as its most relevant one
    flat = np.full((2, 4), 0.25)
    assert assign_experts(flat, 0.5, np.random.default_rng(0)) == [[1, 2, 3], [0]]
    # tied q (threshold 0): each expert is a fair coin between the two clusters
    owners = np.array([[0 in grp for grp in assign_experts(flat, 0.0, np.random.default_rng(s))]
                       for s in range(600)])
    assert abs(owners[:, 0].mean() - 0.5) < 0.08


def test_determinism_for_same_seed():
    p = np.random.default_rng(1).dirichlet(np.ones(8), size=4)
    a = [assign_experts(p, 0.05, np.random.default_rng(s)) for s in range(20)]
    b = [assign_experts(p, 0.05, np.random.default_rng(s)) for s in range(20)]
    assert a == b
    assert len({str(x) for x in a}) > 1  # the seed matters


def test_sampling_frequencies_follow_q():
    # cluster 0 owns expert 0 and cluster 1 expert 1 exclusively, so coverage never binds;
    # experts 2 and 3 are shared with q = (0.75, 0.25) and (1/3, 2/3).
    p = np.array([[0.5, 0.0, 0.3, 0.2], [0.0, 0.5, 0.1, 0.4]])
    n = 3000
    to0 = np.zeros(4)
    for s in range(n):
        groups = assign_experts(p, 0.05, np.random.default_rng(s))
        to0[groups[0]] += 1
    freq = to0 / n
    assert freq[0] == 1.0 and freq[1] == 0.0
    assert abs(freq[2] - 0.75) < 4 * np.sqrt(0.75 * 0.25 / n)
    assert abs(freq[3] - 1 / 3) < 4 * np.sqrt(2 / 9 / n)


def test_diagonal_relevance_gives_each_cluster_its_dominant_experts():
    k, e = 4, 8
    p = np.full((k, e), 0.2 / 6)
    for c in range(k):
        p[c, 2 * c : 2 * c + 2] = 0.4
    # the threshold cuts the off-diagonal mass: deterministic
    assert assign_experts(p, 0.05, np.random.default_rng(0)) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    # without truncation q_own = 0.4 / (0.4 + 3 * 0.2 / 6) = 0.8: mostly, not always, own experts
    hits = np.mean([[set(range(2 * c, 2 * c + 2)) <= set(grp) for c, grp in
                     enumerate(assign_experts(p, 0.0, np.random.default_rng(s)))] for s in range(400)])
    assert 0.55 < hits < 0.75  # P(both own experts) = 0.8^2 = 0.64


def test_assign_experts_bad_input():
    with pytest.raises(ValueError, match="shape"):
        assign_experts(np.ones(3), 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-negative"):
        assign_experts(np.array([[0.5, -0.1]]), 0.1, np.random.default_rng(0))
    with pytest.raises(InputError, match="splitting.threshold: must be between 0 and 1"):
        assign_experts(np.ones((2, 2)) / 2, 1.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="not a partition"):
        check_partition([[0, 1], [1]], 2)


def test_assignment_table():
    t = assignment_table([[0, 2], [1], []], ["north", "south", "east"])
    assert t == {"groups": {"north": [0, 2], "south": [1], "east": []}, "owner": ["north", "south", "north"]}
