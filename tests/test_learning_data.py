"""Synthetic data, partitioning, batching and user-data loaders of emsfl_sim.learning.data."""

from __future__ import annotations

import hashlib
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
    DeviceDataStream,
    Example,
    build_federated_data,
    cluster_domain_weights,
    domain_facts,
    domain_names,
    iterate_batches,
    load_mcqa_files,
    load_mcqa_jsonl,
    load_mcqa_rows,
    load_text_file,
    make_classification_examples,
    make_domain_examples,
    make_lm_batch,
    make_pretrain_examples,
    partition_examples,
    pretrain_facts,
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
        from emsfl_sim.learning.data.domains import DOMAIN_SPECS

        attr_domain = {a: d for d in SYNTHETIC_DOMAINS for a in DOMAIN_SPECS[d].attributes}
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


def _write(tmp_path, rows: list[str], name: str = "bio.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


def _row(**kw) -> str:
    row = {"domain": "bio", "question": "q?", "options": ["a", "b"], "answer": 0}
    row.update(kw)
    return json.dumps({k: v for k, v in row.items() if v is not None})


def test_load_mcqa_jsonl(tmp_path):
    rows = [
        json.dumps({"domain": "math", "question": "2+2?", "options": ["3", "4", "5", "6"], "answer": 1}),
        "",
        json.dumps({"domain": "geo", "question": "Capital?", "options": ["Rome", "Oslo"], "answer": "B",
                    "split": "test"}),
        json.dumps({"domain": "art", "question": "Colour?", "options": ["red", "blue", "green"], "answer": "green",
                    "id": 7}),  # other keys are ignored
        json.dumps({"domain": "art", "question": "Shade?", "options": ["A", "B", "dark"], "answer": "b"}),
    ]
    path = _write(tmp_path, rows)
    exs = load_mcqa_jsonl(path)
    assert exs == [
        Example("math", "mcqa", "2+2?", ("3", "4", "5", "6"), 1),
        Example("geo", "mcqa", "Capital?", ("Rome", "Oslo"), 1),
        Example("art", "mcqa", "Colour?", ("red", "blue", "green"), 2),
        Example("art", "mcqa", "Shade?", ("A", "B", "dark"), 1),  # "b" is no option text: a letter
    ]
    got = load_mcqa_rows(path)
    assert [(r.split, r.line, r.where) for r in got] == [
        ("train", 1, f"{path}:1"), ("test", 3, f"{path}:3"), ("train", 4, f"{path}:4"), ("train", 5, f"{path}:5")
    ]
    # a default domain (a data.jsonl_files mapping) fills rows without one; a row's own domain wins
    p2 = _write(tmp_path, [json.dumps({"question": "q", "options": ["a", "b"], "answer": 0}), _row(domain="law")], "x.jsonl")
    assert [e.domain for e in load_mcqa_jsonl(p2, domain="math")] == ["math", "law"]
    both = load_mcqa_files({"med": p2, "art": path})
    assert [r.example.domain for r in both] == ["med", "law", "math", "geo", "art", "art"]
    assert load_mcqa_files([path]) == got


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"domain": "bio", "question": "q", ', "not valid JSON (Expecting property name enclosed in double quotes "
         "at column 36); write one object"),
        ("[1, 2]", "the row is a JSON list, not an object; write {\"domain\": ..."),
        (_row(domain=None), "domain: missing; add \"domain\": \"name\" (a cluster's data domain)"),
        (_row(domain=""), "domain: must be a non-empty string (got \"\")"),
        (_row(question=None), "question: missing; add \"question\": \"the question text\""),
        (_row(question=3), "question: must be a non-empty string (got 3)"),
        (_row(options=None), "options: missing; add \"options\": [\"first answer\""),
        (_row(options="ab"), "options: must be a list of at least 2 non-empty strings (got \"ab\")"),
        (_row(options=["a"]), "options: must be a list of at least 2 non-empty strings (got [\"a\"])"),
        (_row(options=["a", ""]), "options: must be a list of at least 2 non-empty strings"),
        (_row(options=["a", "a"]), "options: 'a' appears more than once; every option must differ"),
        (_row(answer=None), "answer: missing; add \"answer\": the correct option (use a 0-based index 0..1, "
         "a letter A..B or the text of an option)"),
        (_row(answer=5), "answer: 5 is out of range for 2 options; use a 0-based index 0..1, a letter A..B or "
         "the text of an option"),
        (_row(answer=-1), "answer: -1 is out of range for 2 options"),
        (_row(answer="C"), "answer: \"C\" matches none of the 2 options; use a 0-based index 0..1"),
        (_row(answer=True), "answer: true matches none of the 2 options"),
        (_row(split="val"), "split: \"val\" is not a split; use \"train\", \"test\" or \"trial\" (or leave it out: "
         "train, or drawn by data.test_fraction)"),
    ],
)
def test_load_mcqa_jsonl_errors(tmp_path, row, message):
    p = _write(tmp_path, [_row(), "", row])
    with pytest.raises(InputError) as err:
        load_mcqa_jsonl(p)
    text = str(err.value)
    assert text.startswith(f"{p}:3: {message}"), text
    assert "\n" not in text and err.value.file == f"{p}:3"


def test_load_files_missing_or_empty(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_mcqa_jsonl(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(InputError, match="e.jsonl: no rows; write one JSON object"):
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


# --------------------------------------------------------------- federated data from files
FILE_CLUSTERS = [("k0", "math"), ("k1", "geo"), ("k2", "math")]


def _qa_rows(domain: str, n_train: int, n_test: int) -> list[str]:
    rows = [_row(domain=domain, question=f"{domain} q{i}?", options=[f"x{i}", f"y{i}", f"z{i}"], answer=i % 3)
            for i in range(n_train)]
    return rows + [_row(domain=domain, question=f"{domain} t{i}?", options=["p", "q"], answer="B", split="test")
                   for i in range(n_test)]


def test_federated_data_from_files(tmp_path):
    a = _write(tmp_path, _qa_rows("math", 10, 5), "a.jsonl")
    b = _write(tmp_path, _qa_rows("geo", 6, 2), "b.jsonl")
    fd = build_federated_data("mcqa", FILE_CLUSTERS, {"k0": 2, "k1": 1, "k2": 3}, samples_per_device=4,
                              trial_samples_per_cluster=5, gate_samples=7, test_samples_per_domain=3, seed=2,
                              jsonl_files=[str(a), str(b)])
    train_rows = {d: [r.example for r in load_mcqa_rows(p) if r.split == "train"] for d, p in (("math", a), ("geo", b))}
    assert fd.domains == ["math", "geo"]
    assert [fd.n_samples(k) for k, _ in FILE_CLUSTERS] == [[4, 4], [4], [4, 4, 4]]
    for name, home in FILE_CLUSTERS:
        assert all(e in train_rows[home] for dev in fd.train[name] for e in dev)
        assert len(fd.trial[name]) == 5 and all(e in train_rows[home] for e in fd.trial[name])
    # the math pool (10 rows) is dealt without replacement across k0 and k2 while it lasts
    k0 = [e for dev in fd.train["k0"] for e in dev]
    assert len(set(k0)) == 8 and len({e for dev in fd.train["k2"] for e in dev} | set(k0)) == 10
    assert sorted(e.domain for e in fd.gate) == ["geo"] * 3 + ["math"] * 4
    assert all(e in train_rows[e.domain] for e in fd.gate)
    # test: the first test_samples_per_domain test rows in file order (all of them if fewer)
    assert [e.prompt for e in fd.test["math"]] == ["math t0?", "math t1?", "math t2?"]
    assert [e.prompt for e in fd.test["geo"]] == ["geo t0?", "geo t1?"] and fd.test["geo"][0].answer == 1
    # the same partition as partition_examples on the train rows; deterministic; a mapping works too
    assert fd.train == partition_examples(train_rows, FILE_CLUSTERS, {"k0": 2, "k1": 1, "k2": 3}, 4, seed=2)
    again = build_federated_data("mcqa", FILE_CLUSTERS, {"k0": 2, "k1": 1, "k2": 3}, 4, 5, 7, 3, seed=2,
                                 jsonl_files={"math": a, "geo": b})
    assert (again.train, again.trial, again.gate, again.test) == (fd.train, fd.trial, fd.gate, fd.test)
    dirichlet = build_federated_data("mcqa", FILE_CLUSTERS, 2, 4, 5, 7, 3, "dirichlet", 1.0, 2, [a, b])
    assert set(dirichlet.weights) == {"k0", "k1", "k2"} and all(len(w) == 2 for w in dirichlet.weights.values())


def _build(files, spd=4, task="mcqa"):
    return build_federated_data(task, FILE_CLUSTERS, 1, spd, 4, 4, 4, jsonl_files=files)


def test_federated_data_from_files_errors(tmp_path):
    a = _write(tmp_path, _qa_rows("math", 4, 1), "a.jsonl")
    b = _write(tmp_path, _qa_rows("geo", 4, 1), "b.jsonl")
    c = _write(tmp_path, [*_qa_rows("geo", 1, 0), _row(domain="art"), _row(domain="art")], "c.jsonl")
    with pytest.raises(InputError) as err:
        _build([a, b, c])
    assert str(err.value) == (f"{c}:2: domain: 'art' is the domain of no cluster (2 rows); use one of math, geo "
                              "(the clusters' domains), give a cluster this domain, or remove these rows")
    with pytest.raises(InputError) as err:
        _build([a])
    assert str(err.value) == ("data.jsonl_files: cluster 'k1' has domain 'geo', which no row of the data files "
                              "has; add rows with \"domain\": \"geo\" or set the cluster's domain to one the files "
                              "have (math)")
    with pytest.raises(InputError) as err:
        _build([a, b], spd=5)
    assert str(err.value) == (f"{a}: data.samples_per_device: domain 'math' has 4 train rows, fewer than "
                              "samples_per_device (5); add train rows or set data.samples_per_device to at most 4")
    no_test = _write(tmp_path, _qa_rows("geo", 4, 0), "d.jsonl")
    with pytest.raises(InputError) as err:
        _build([a, no_test])
    assert str(err.value) == (f"{no_test}: split: domain 'geo' has no test rows; mark some of its rows "
                              "\"split\": \"test\", give a file of test rows (split: test in data.jsonl_files) or set "
                              "data.test_fraction (e.g. 0.2) to draw them (up to data.test_samples_per_domain = 4 are used)")
    only_test = _write(tmp_path, _qa_rows("geo", 0, 2), "e.jsonl")
    with pytest.raises(InputError, match=r"e.jsonl: split: domain 'geo' has no train rows \(all 2 are"):
        _build([a, only_test])
    with pytest.raises(InputError, match="data.task: data files hold multiple-choice QA; set data.task: mcqa"):
        _build([a, b], task="classification")
    bad = _write(tmp_path, [_row(domain="math"), _row(domain="math", answer=9)], "f.jsonl")
    with pytest.raises(InputError, match=f"^{re.escape(str(bad))}:2: answer: 9 is out of range for 2 options"):
        _build([bad, b])


def test_sample_file_and_scenario():
    from pathlib import Path

    from emsfl_sim.run.world import cluster_domains
    from emsfl_sim.scenario import load_scenario

    root = Path(__file__).resolve().parents[1]
    scenario = load_scenario(root / "scenarios" / "quickstart-jsonl.yaml")
    assert scenario.data.jsonl_files == [str(root / "scenarios" / "data" / "mcqa-sample.jsonl")]  # resolved
    d = scenario.data
    fd = build_federated_data(d.task, cluster_domains(scenario), {c.name: c.devices for c in scenario.clusters},
                              d.samples_per_device, d.trial_samples_per_cluster, d.gate_samples,
                              d.test_samples_per_domain, d.partition, d.dirichlet_alpha, scenario.seed,
                              d.jsonl_files)
    assert fd.domains == ["astronomy", "medicine", "law"]
    assert {k: len(v) for k, v in fd.test.items()} == {"astronomy": 8, "medicine": 8, "law": 8}
    rows = load_mcqa_rows(root / "scenarios" / "data" / "mcqa-sample.jsonl")
    assert len(rows) == 96 and sum(r.split == "test" for r in rows) == 24
    # the sample's facts are the synthetic seed-0 fact tables
    for r in rows:
        entity = re.findall(r"(\w+)\W*$", r.example.prompt)[0]
        assert domain_facts(r.example.domain, 0)[entity] == r.example.answer_text


# --------------------------------------------------------------- the split package = the old module
def _digest(obj) -> str:
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def _fed_digest(task: str, mode: str, alpha: float, seed: int, doms: list[str]) -> str:
    cl = [(f"c{i}", d) for i, d in enumerate(doms)]
    fd = build_federated_data(task, cl, {c: 2 for c, _ in cl}, 24, 16, 30, 10, mode, alpha, seed)
    return _digest((fd.train, fd.trial, fd.gate, fd.test, fd.domains, {k: v.tolist() for k, v in fd.weights.items()}))


def test_split_package_gives_the_pre_split_data():
    # Values produced by the pre-split emsfl_sim/learning/data.py (one 789-line module) at
    # commit 6d74b17 (HEAD of today, before the split), with exactly these calls.
    assert _fed_digest("mcqa", "by_domain", 1.0, 0, ["astronomy", "medicine", "law"]) == "14a6804addb2c1f7"
    assert _fed_digest("mcqa", "dirichlet", 0.5, 3, ["law", "music", "cooking"]) == "e2491ce9ec17c0e2"
    # The classification generators were redesigned in issue 14 (learnable from random init:
    # learning/data/classification.py); this digest is of the redesigned data, the MCQA ones are unchanged.
    assert _fed_digest("classification", "by_domain", 1.0, 1, list(CLASSIFICATION_TASKS)) == "9a107ce02ebe0469"
    assert _digest(make_pretrain_examples("geology", 40, 2, 12)) == "bcac02a081589f1f"
    assert _digest(pretrain_facts("music", 2)) == "a3dab545add71f7d"
    exs = make_domain_examples("medicine", 13, 5)
    stream = DeviceDataStream(exs, 4, np.random.default_rng(9))
    assert _digest([stream.next_batch() for _ in range(7)]) == "5656006ebb0a1790"
    assert _digest({k: v.tolist() for k, v in make_lm_batch(exs[:5], TOK, 20).items()}) == "1cb53720936ed6d0"
    # and readable samples of the same
    assert make_domain_examples("astronomy", 2, 0, split="test") == [
        Example("astronomy", "mcqa", "astronomers class zorvex:", ("lunar", "comet", "solar", "giant"), 1),
        Example("astronomy", "mcqa", "telescope log, type of vexkyr?", ("radio", "orbit", "solar", "lunar"), 3),
    ]
    cl = [("c0", "astronomy"), ("c1", "medicine"), ("c2", "law")]
    fd = build_federated_data("mcqa", cl, {c: 2 for c, _ in cl}, 24, 16, 30, 10, "by_domain", 1.0, 0)
    assert fd.train["c1"][1][:2] == [
        Example("medicine", "mcqa", "doctors link with pelmel:", ("ulcer", "swell", "nerve", "liver"), 2),
        Example("medicine", "mcqa", "which organ hurts in melpim?", ("liver", "ulcer", "fever", "blood"), 3),
    ]
    assert fd.gate[0] == Example("astronomy", "mcqa", "telescope log, type of zelvex?",
                                 ("radio", "solar", "lunar", "dwarf"), 1)
    w = build_federated_data("mcqa", [("c0", "law"), ("c1", "music"), ("c2", "cooking")], 2, 24, 16, 30, 10,
                             "dirichlet", 0.5, 3).weights
    assert w["c2"].tolist() == [0.0007186811582885492, 0.49026218305555846, 0.509019135786153]
