"""Synthetic data, partitioning, batching and user-data loaders of emsfl_sim.learning.data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data import (
    CLASSIFICATION_TASKS,
    SYNTHETIC_DOMAINS,
    ByteTokenizer,
    Example,
    build_federated_data,
    cluster_domain_weights,
    domain_facts,
    domain_names,
    iterate_batches,
    load_mcqa_jsonl,
    load_text_file,
    make_classification_examples,
    make_domain_examples,
    make_lm_batch,
    partition_examples,
)

TOK = ByteTokenizer()


def _byte_hist(examples: list[Example]) -> np.ndarray:
    text = "".join(e.prompt + " " + e.answer_text for e in examples).encode()
    h = np.bincount(np.frombuffer(text, np.uint8), minlength=256).astype(float)
    return h / h.sum()


def test_tokenizer_roundtrip_and_specials():
    assert TOK.vocab_size == 259 and {TOK.pad_id, TOK.bos_id, TOK.eos_id} == {256, 257, 258}
    ids = TOK.encode("héllo")
    assert ids[0] == TOK.bos_id and ids[1:] == list("héllo".encode())
    assert TOK.encode("ab", add_bos=False) == [97, 98]
    assert TOK.decode([TOK.bos_id, *ids[1:], TOK.eos_id, TOK.pad_id]) == "héllo"


@pytest.mark.parametrize("task", ["mcqa", "classification"])
def test_synthetic_data_is_deterministic(task):
    d = domain_names(task)[1]
    a = make_domain_examples(d, 50, seed=7, task=task, split="train")
    assert a == make_domain_examples(d, 50, seed=7, task=task, split="train")
    assert a != make_domain_examples(d, 50, seed=8, task=task, split="train")
    assert a != make_domain_examples(d, 50, seed=7, task=task, split="trial")


def test_domain_names():
    assert len(domain_names("mcqa")) >= 4 and domain_names("mcqa") == list(SYNTHETIC_DOMAINS)
    assert domain_names("classification") == list(CLASSIFICATION_TASKS) and len(CLASSIFICATION_TASKS) == 4
    with pytest.raises(InputError, match="unknown task"):
        domain_names("qa")


@pytest.mark.parametrize("domain", SYNTHETIC_DOMAINS)
def test_mcqa_format_and_facts(domain):
    facts = domain_facts(domain, seed=3)
    assert len(facts) == 16
    # answers balanced: each attribute is the answer of the same number of entities
    assert len(set(np.unique(list(facts.values()), return_counts=True)[1])) == 1
    train = make_domain_examples(domain, 400, seed=3)
    test = make_domain_examples(domain, 200, seed=3, split="test")
    for ex in train + test:
        assert ex.task == "mcqa" and ex.domain == domain
        assert len(ex.options) == 4 and len(set(ex.options)) == 4
        assert len({o[0] for o in ex.options}) == 4  # options differ in their first byte
        assert len(ex.prompt.encode()) < 64
        entity = re.findall(r"(\w+)\W*$", ex.prompt)[0]
        assert facts[entity] == ex.answer_text  # the correct option is the fact
    # answer positions roughly uniform (chance is 1/4 for any fixed position)
    pos = np.bincount([e.answer for e in train], minlength=4) / len(train)
    assert np.all(np.abs(pos - 0.25) < 0.07)
    # test questions re-phrase learned facts: every test entity is trained, no test prompt is
    train_prompts = {e.prompt for e in train}
    assert not train_prompts & {e.prompt for e in test}
    assert {re.findall(r"(\w+)\W*$", e.prompt)[0] for e in test} <= set(facts)


def test_domains_have_distinct_byte_statistics():
    hists = {d: _byte_hist(make_domain_examples(d, 400, seed=0)) for d in SYNTHETIC_DOMAINS}
    for i, a in enumerate(SYNTHETIC_DOMAINS):
        same = 0.5 * np.abs(hists[a] - _byte_hist(make_domain_examples(a, 400, 0, split="test"))).sum()
        assert same < 0.05
        for b in SYNTHETIC_DOMAINS[i + 1 :]:
            tv = 0.5 * np.abs(hists[a] - hists[b]).sum()  # total-variation distance
            assert tv > 0.12, (a, b, tv)


def _check_rule(ex: Example) -> bool:
    """Independent re-derivation of each classification label from the prompt text."""
    s1, s2 = [s.strip() for s in ex.prompt.split(".")[:2]]
    if ex.domain == "same_entity":
        return s1.split()[0] == s2.split()[0]
    if ex.domain == "negation":
        return s2 == s1.replace(" is ", " is not ")
    if ex.domain == "same_topic":
        attr_domain = {}
        for d in SYNTHETIC_DOMAINS:
            for a in set(domain_facts(d, 0).values()):
                attr_domain[a] = d
        return attr_domain[s1.split()[-1]] == attr_domain[s2.split()[-1]]
    return int(s1.split()[-1]) > int(s2.split()[-1])


@pytest.mark.parametrize("task_name", CLASSIFICATION_TASKS)
def test_classification_labels_follow_rule(task_name):
    exs = make_classification_examples(task_name, 300, seed=1, split="train")
    labels = {ex.options for ex in exs}
    assert len(labels) == 1 and len(next(iter(labels))) == 2
    for ex in exs:
        assert ex.task == "classification" and ex.domain == task_name
        assert (ex.answer == 0) == _check_rule(ex), ex
        assert len(ex.prompt.encode()) < 64
    share = np.mean([ex.answer == 0 for ex in exs])
    assert 0.4 < share < 0.6
    # label words are distinct between tasks
    all_labels = [w for t in CLASSIFICATION_TASKS for w in make_classification_examples(t, 1, 0)[0].options]
    assert len(set(all_labels)) == len(all_labels)


def test_unknown_domain_and_split():
    with pytest.raises(InputError, match="unknown synthetic domain 'poetry'"):
        make_domain_examples("poetry", 3, 0)
    with pytest.raises(InputError, match="unknown split"):
        make_domain_examples("law", 3, 0, split="val")


CLUSTERS = [("c0", "astronomy"), ("c1", "medicine"), ("c2", "law"), ("c3", "cooking")]


def _pools(n=200):
    return {d: make_domain_examples(d, n, 0) for _, d in CLUSTERS}


def test_partition_by_domain_sizes():
    devs = {"c0": 2, "c1": 3, "c2": 1, "c3": 4}
    part = partition_examples(_pools(), CLUSTERS, devs, samples_per_device=30, mode="by_domain", seed=1)
    assert list(part) == [c for c, _ in CLUSTERS]
    for name, home in CLUSTERS:
        assert len(part[name]) == devs[name]
        for device in part[name]:
            assert len(device) == 30 and {e.domain for e in device} == {home}
    # pool drawn without replacement across devices while it lasts: c3's 4 devices x 30 < 200
    ids = [id(e) for dev in part["c3"] for e in dev]
    assert len(set(ids)) == len(ids)
    assert part == partition_examples(_pools(), CLUSTERS, devs, 30, "by_domain", seed=1)


def _home_share(alpha: float, seeds=range(20)) -> float:
    shares = []
    for s in seeds:
        w = cluster_domain_weights(CLUSTERS, [d for _, d in CLUSTERS], "dirichlet", alpha, seed=s)
        shares += [w[name][i] for i, (name, _) in enumerate(CLUSTERS)]
    return float(np.mean(shares))


def test_dirichlet_heterogeneity_trend():
    # Expected home share (alpha + 1) / (D alpha + 1) with D = 4 domains.
    shares = [_home_share(a) for a in (0.01, 0.3, 1.0, 100.0)]
    assert shares[0] > 0.95 and abs(shares[-1] - 0.25) < 0.03
    assert all(a > b for a, b in zip(shares, shares[1:], strict=False))
    assert abs(_home_share(1.0, range(200)) - 2 / 5) < 0.04
    # the partitioned data follow the mix
    part = partition_examples(_pools(), CLUSTERS, 4, 100, mode="dirichlet", alpha=1000.0, seed=2)
    for name, _ in CLUSTERS:
        doms = [e.domain for dev in part[name] for e in dev]
        counts = np.array([doms.count(d) for _, d in CLUSTERS]) / len(doms)
        assert np.all(np.abs(counts - 0.25) < 0.08)


def test_partition_bad_input():
    with pytest.raises(InputError, match="home domain 'music' which has no data"):
        partition_examples(_pools(), [("cx", "music")], 1, 5)
    with pytest.raises(InputError, match="alpha must be > 0"):
        partition_examples(_pools(), CLUSTERS, 1, 5, mode="dirichlet", alpha=0.0)
    with pytest.raises(InputError, match="unknown partition mode"):
        partition_examples(_pools(), CLUSTERS, 1, 5, mode="iid")
    with pytest.raises(InputError, match="no device count for cluster 'c3'"):
        partition_examples(_pools(), CLUSTERS, {"c0": 1, "c1": 1, "c2": 1}, 5)


def test_make_lm_batch_labels_only_answer():
    exs = [Example("d", "mcqa", "q one?", ("aa", "bbbb"), 1), Example("d", "mcqa", "longer question?", ("x", "y"), 0)]
    b = make_lm_batch(exs, TOK, max_len=96)
    assert set(b) == {"input_ids", "attention_mask", "labels"}
    ids, mask, lab = b["input_ids"], b["attention_mask"], b["labels"]
    assert ids.shape == mask.shape == lab.shape and ids.dtype == torch.long
    full0 = [TOK.bos_id, *b"q one? bbbb", TOK.eos_id]
    assert ids[0, : len(full0)].tolist() == full0 and mask[0].sum() == len(full0)
    assert (ids[0, len(full0) :] == TOK.pad_id).all() and (mask[0, len(full0) :] == 0).all()  # right padding
    assert [t for t in lab[0].tolist() if t != -100] == [*b"bbbb", TOK.eos_id]
    assert [t for t in lab[1].tolist() if t != -100] == [*b"x", TOK.eos_id]
    # truncation keeps the answer, drops prompt bytes from the left
    t = make_lm_batch(exs[:1], TOK, max_len=6)
    assert t["input_ids"][0].tolist() == [*b"?", *b" bbbb"][-5:] + [TOK.eos_id]
    assert [x for x in t["labels"][0].tolist() if x != -100] == [*b"bbbb", TOK.eos_id]


def test_iterate_batches_epochs_and_determinism():
    exs = make_domain_examples("law", 10, 0)
    batches = list(iterate_batches(exs, 4, np.random.default_rng(5), epochs=2))
    assert [len(b) for b in batches] == [4, 4, 4, 4, 4]
    flat = [e for b in batches for e in b]
    assert sorted(map(id, flat[:10])) == sorted(map(id, exs)) == sorted(map(id, flat[10:]))
    again = list(iterate_batches(exs, 4, np.random.default_rng(5), epochs=2))
    assert [[id(e) for e in b] for b in batches] == [[id(e) for e in b] for b in again]
    it = iterate_batches(exs, 3, np.random.default_rng(0))
    assert all(len(next(it)) == 3 for _ in range(20))  # endless, always full


def _write(tmp_path, rows: list[str]):
    p = tmp_path / "bio.jsonl"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


def test_load_mcqa_jsonl(tmp_path):
    rows = [
        json.dumps({"question": "2+2?", "options": ["3", "4", "5", "6"], "answer": 1}),
        "",
        json.dumps({"question": "Capital?", "options": ["Rome", "Oslo"], "answer": "B"}),
        json.dumps({"question": "Colour?", "options": ["red", "blue", "green"], "answer": "green", "domain": "art"}),
    ]
    exs = load_mcqa_jsonl(_write(tmp_path, rows))
    assert [e.answer for e in exs] == [1, 1, 2]
    assert [e.domain for e in exs] == ["bio", "bio", "art"]
    assert exs[0] == Example("bio", "mcqa", "2+2?", ("3", "4", "5", "6"), 1)
    assert load_mcqa_jsonl(_write(tmp_path, rows[:1]), domain="math")[0].domain == "math"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"question": "q", "options": ["a", "b"]}', "row has no 'answer'; add \"answer\": index or letter"),
        ('{"options": ["a", "b"], "answer": 0}', "row has no 'question'; add \"question\": text"),
        ('{"question": "q", "answer": 0}', "row has no 'options'; add \"options\": [list of answer strings]"),
        ('{"question": "q", "options": "ab", "answer": 0}', "'options' must be a list of at least 2 strings"),
        (
            '{"question": "q", "options": ["a", "b"], "answer": 5}',
            "'answer' 5 matches no option; use a 0-based index below 2, an option letter or the option text",
        ),
        ('{"question": "q", "options": ["a", "b"], "answer": "C"}', "'answer' 'C' matches no option"),
        ('{"question": "q", ', "not valid JSON"),
        ("[1, 2]", "row is not a JSON object"),
    ],
)
def test_load_mcqa_jsonl_errors(tmp_path, row, message):
    good = json.dumps({"question": "ok", "options": ["a", "b"], "answer": 0})
    p = _write(tmp_path, [good, "", row])
    with pytest.raises(InputError) as err:
        load_mcqa_jsonl(p)
    assert str(err.value).startswith(f"{p}: line 3: {message}")
    assert err.value.file == str(p) and err.value.field == "line 3"


def test_load_files_missing_or_empty(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_mcqa_jsonl(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(InputError, match="no rows"):
        load_mcqa_jsonl(tmp_path / "e.jsonl")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(InputError, match="not UTF-8"):
        load_text_file(tmp_path / "b.txt")


def test_load_text_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("first line\n\n  second  \r\nthird\n", encoding="utf-8")
    assert load_text_file(p) == ["first line", "second", "third"]


@pytest.mark.parametrize("task", ["mcqa", "classification"])
def test_build_federated_data(task):
    doms = domain_names(task)[:3]
    clusters = [(f"k{i}", d) for i, d in enumerate(doms)]
    fd = build_federated_data(task, clusters, devices_per_cluster=2, samples_per_device=20,
                              trial_samples_per_cluster=16, gate_samples=31, test_samples_per_domain=12,
                              mode="by_domain", seed=4)
    assert fd.domains == doms
    for name, home in clusters:
        assert len(fd.train[name]) == 2 and fd.n_samples(name) == [20, 20]
        assert len(fd.trial[name]) == 16 and {e.domain for e in fd.trial[name]} == {home}
    assert len(fd.gate) == 31
    assert sorted(np.unique([e.domain for e in fd.gate], return_counts=True)[1].tolist()) == [10, 10, 11]
    assert set(fd.test) == set(doms) and all(len(v) == 12 for v in fd.test.values())
    assert all(e.task == task for e in fd.gate)
    fd2 = build_federated_data(task, clusters, 2, 20, 16, 31, 12, mode="by_domain", seed=4)
    assert fd2.train == fd.train and fd2.gate == fd.gate and fd2.test == fd.test


def test_build_federated_data_dirichlet_trial_follows_mix():
    clusters = [("a", "law"), ("b", "music")]
    fd = build_federated_data("mcqa", clusters, 1, 10, trial_samples_per_cluster=400, gate_samples=8,
                              test_samples_per_domain=4, mode="dirichlet", alpha=1.0, seed=0)
    for name, _ in clusters:
        share = np.mean([e.domain == fd.domains[0] for e in fd.trial[name]])
        assert abs(share - fd.weights[name][0]) < 0.08
