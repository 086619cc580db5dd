"""User MCQA files in the layouts of the reference's datasets: MMLU, MedMCQA, CMExam (issue 15, part B).

Each layout: rows -> Examples, a malformed row -> one line with its line number; the
scenario syntax (``data.jsonl_files`` entries, ``data.test_fraction``); the sample files
of ``scenarios/data/`` and one tiny end-to-end run mixing the layouts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from emsfl_sim.errors import InputError
from emsfl_sim.learning.data import Example, build_federated_data
from emsfl_sim.learning.data.files import DataFile, load_mcqa_files, load_mcqa_jsonl, load_mcqa_rows
from emsfl_sim.learning.data.from_files import draw_test_split
from emsfl_sim.run.runner import run_scenario
from emsfl_sim.scenario import load_scenario
from emsfl_sim.scenario.loader import validate_raw

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "scenarios" / "data"


def _jsonl(tmp_path: Path, rows: list[object], name: str = "f.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _csv(tmp_path: Path, header: list[str], rows: list[list[str]], name: str = "f.csv") -> Path:
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])
    return path


MMLU_ROW = {"question": "Closest planet to the Sun?", "subject": "astronomy", "choices": ["Venus", "Mercury"], "answer": 1}
MEDMCQA_ROW = {"id": "x", "question": "Which organ makes insulin?", "opa": "Liver", "opb": "Pancreas", "opc": "Kidney",
               "opd": "Lung", "cop": 2, "choice_type": "single", "subject_name": "Physiology", "exp": "..."}
CMEXAM_ROW = {"Question": "最高审判机关是", "Options": "A 最高人民检察院\nB 最高人民法院\nC 司法部", "Answer": "B",
              "Explanation": ""}


# --------------------------------------------------------------- each layout: rows -> Examples
def test_mmlu_rows() -> None:
    rows = load_mcqa_rows(DATA / "mmlu-astronomy.jsonl", "astronomy", "mmlu")
    assert len(rows) == 20 and {r.split for r in rows} == {"train"} and not any(r.split_given for r in rows)
    assert [r.example for r in rows[:2]] == [
        Example("astronomy", "mcqa", "Which planet is closest to the Sun?", ("Venus", "Mercury", "Earth", "Mars"), 1),
        Example("astronomy", "mcqa", "What is the largest planet in the Solar System?",
                ("Saturn", "Neptune", "Jupiter", "Uranus"), 2),
    ]


def test_mmlu_answer_forms(tmp_path: Path) -> None:
    rows = [MMLU_ROW, {**MMLU_ROW, "answer": "A"}, {**MMLU_ROW, "answer": "Mercury"}, {**MMLU_ROW, "domain": "law"}]
    got = load_mcqa_jsonl(_jsonl(tmp_path, rows), "astronomy", "mmlu")
    assert [(e.domain, e.answer) for e in got] == [("astronomy", 1), ("astronomy", 0), ("astronomy", 1), ("law", 1)]


def test_medmcqa_rows(tmp_path: Path) -> None:
    train = load_mcqa_rows(DATA / "medmcqa-medicine-train.jsonl", "medicine", "medmcqa", "train")
    dev = load_mcqa_rows(DATA / "medmcqa-medicine-dev.jsonl", "medicine", "medmcqa", "test")
    assert (len(train), len(dev)) == (14, 6) and {r.split for r in dev} == {"test"} and dev[0].split_given
    assert train[0].example == Example("medicine", "mcqa", "Which organ produces insulin?",
                                       ("Liver", "Pancreas", "Kidney", "Spleen"), 1)  # cop 2 = opb
    assert dev[2].example.answer_text == "Vitamin K"  # cop 4 = opd
    # cop counts from 1 (the MedMCQA release); a letter a..d and a CSV cell are read too
    rows = [MEDMCQA_ROW, {**MEDMCQA_ROW, "cop": 1}, {**MEDMCQA_ROW, "cop": 4}, {**MEDMCQA_ROW, "cop": "c"}]
    assert [e.answer for e in load_mcqa_jsonl(_jsonl(tmp_path, rows), "medicine", "medmcqa")] == [1, 0, 3, 2]
    keys = ["question", "opa", "opb", "opc", "opd", "cop"]
    path = _csv(tmp_path, keys, [["q?", "a", "b", "c", "d", "3"]])
    assert load_mcqa_jsonl(path, "medicine", "medmcqa") == [Example("medicine", "mcqa", "q?", ("a", "b", "c", "d"), 2)]


def test_cmexam_rows(tmp_path: Path) -> None:
    rows = load_mcqa_rows(DATA / "cmexam-law.csv", "law", "cmexam")
    assert len(rows) == 20 and [r.line for r in rows[:3]] == [2, 6, 10]  # a record starts after 4 lines
    assert rows[0].example == Example("law", "mcqa", "中华人民共和国的根本大法是", ("刑法", "宪法", "民法典", "刑事诉讼法"), 1)
    assert rows[-1].example.answer_text == "七日"
    # the JSON(L) form of the same shape; lower-case keys; separators after the letter
    lower = {"question": "q", "options": "A. one\nB、two\n\nC) three", "answer": " c "}
    got = load_mcqa_jsonl(_jsonl(tmp_path, [CMEXAM_ROW, lower]), "law", "cmexam")
    assert got == [Example("law", "mcqa", "最高审判机关是", ("最高人民检察院", "最高人民法院", "司法部"), 1),
                   Example("law", "mcqa", "q", ("one", "two", "three"), 2)]


def test_emsfl_layout_in_csv_and_entries(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [{"question": "q", "options": ["a", "b"], "answer": 1, "split": "trial"}])
    rows = load_mcqa_files([DataFile(path, "emsfl", "geo", "test")])  # the row's own split wins over the file's
    assert [(r.example.domain, r.split, r.split_given) for r in rows] == [("geo", "trial", True)]
    both = load_mcqa_files({"geo": DataFile(path, split="test"), "art": str(path)})
    assert [(r.example.domain, r.split) for r in both] == [("geo", "trial"), ("art", "trial")]
    with pytest.raises(InputError, match="the entry under 'geo' names domain 'art'"):
        load_mcqa_files({"geo": DataFile(path, domain="art")})


# --------------------------------------------------------------- a malformed row: one line with its line number
BAD_ROWS = [
    ("mmlu", {**MMLU_ROW, "answer": 4}, "answer: 4 is out of range for 2 options; use a 0-based index 0..1"),
    ("mmlu", {k: v for k, v in MMLU_ROW.items() if k != "choices"}, "choices: missing; add \"choices\": [\"first"),
    ("mmlu", {k: v for k, v in MMLU_ROW.items() if k != "domain"} | {"choices": ["x", "x"]},
     "choices: 'x' appears more than once; every option must differ"),
    ("medmcqa", {**MEDMCQA_ROW, "cop": 0}, "cop: 0 is no option: MedMCQA's cop counts from 1 (1 = opa .. 4 = opd"),
    ("medmcqa", {**MEDMCQA_ROW, "cop": 5}, "cop: 5 is out of range; use 1..4 (1 = opa .. 4 = opd"),
    ("medmcqa", {k: v for k, v in MEDMCQA_ROW.items() if k != "cop"},
     "cop: missing; add \"cop\": the correct option, 1..4 (1 = opa); MedMCQA's test release has no answers"),
    ("medmcqa", {**MEDMCQA_ROW, "opc": ""}, "opc: must be a non-empty string (got \"\")"),
    ("cmexam", {**CMEXAM_ROW, "Answer": "AC"}, "Answer: \"AC\" names 2 options (a multiple-answer question); "
     "the task is single-answer: remove the row or keep one letter"),
    ("cmexam", {**CMEXAM_ROW, "Answer": "D"}, "Answer: \"D\" is not an option letter; give the letter of the correct "
     "option, one of A, B, C"),
    ("cmexam", {**CMEXAM_ROW, "Options": "A one\nC two"}, "Options: option line 2 (\"C two\") does not start with "
     "\"B \"; write \"A first answer\\nB second answer\\n...\""),
    ("cmexam", {**CMEXAM_ROW, "Options": ["A one", "B two"]}, "Options: must be a non-empty string"),
    ("emsfl", {"question": "q", "options": ["a", "b"], "answer": 2}, "answer: 2 is out of range for 2 options"),
    ("mmlu", "[1, 2]", "the row is a JSON list, not an object; write {\"question\": ..., \"choices\": [...]"),
    ("medmcqa", "{\"question\": ", "not valid JSON (Expecting value at column 14); write one object {\"question\": "
     "..., \"opa\": ..."),
]


@pytest.mark.parametrize(("fmt", "row", "message"), BAD_ROWS)
def test_a_bad_row_is_one_line_with_its_line_number(tmp_path: Path, fmt: str, row: object, message: str) -> None:
    good = {"mmlu": MMLU_ROW, "medmcqa": MEDMCQA_ROW, "cmexam": CMEXAM_ROW,
            "emsfl": {"question": "q", "options": ["a", "b"], "answer": 0}}[fmt]
    path = _jsonl(tmp_path, [good, "", row])
    with pytest.raises(InputError) as err:
        load_mcqa_rows(path, "dom", fmt)
    text = str(err.value)
    assert text.startswith(f"{path}:3: {message}"), text
    assert "\n" not in text


def test_a_bad_csv_record_names_the_line_it_starts_on(tmp_path: Path) -> None:
    header = ["Question", "Options", "Answer"]
    path = _csv(tmp_path, header, [["q1", "A x\nB y", "A"], ["q2", "A x\nB y\nC z", "ABC"]])
    with pytest.raises(InputError) as err:
        load_mcqa_rows(path, "law", "cmexam")
    assert str(err.value).startswith(f"{path}:4: Answer: \"ABC\" names 3 options (a multiple-answer question)")
    path.write_text("Question,Options,Answer\nq1,\"A x\nB y\",A,extra\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"f\.csv:2: 4 cells where the header \(line 1\) has 3; quote cells"):
        load_mcqa_rows(path, "law", "cmexam")
    path.write_text("Question,Options,Answer\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"f\.csv: no rows; write a header row, then one record a row"):
        load_mcqa_rows(path, "law", "cmexam")


def test_layout_rows_need_a_domain_and_a_known_format(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [MMLU_ROW])
    with pytest.raises(InputError) as err:
        load_mcqa_rows(path, None, "mmlu")
    assert str(err.value) == (f"{path}:1: domain: missing; mmlu rows name no domain: give the file's domain in the "
                              "scenario (data.jsonl_files: [{path: ..., format: mmlu, domain: NAME}])")
    with pytest.raises(InputError, match="unknown format 'mmmlu'; use one of emsfl, mmlu, medmcqa, cmexam"):
        load_mcqa_rows(path, "x", "mmmlu")


# --------------------------------------------------------------- splits: per file, per row, seeded
def test_seeded_test_split_draws_only_rows_without_a_split(tmp_path: Path) -> None:
    free = _jsonl(tmp_path, [{**MMLU_ROW, "question": f"q{i}"} for i in range(10)], "a.jsonl")
    fixed = _jsonl(tmp_path, [{**MMLU_ROW, "question": f"t{i}"} for i in range(3)], "b.jsonl")
    rows = load_mcqa_files([DataFile(free, "mmlu", "astronomy"), DataFile(fixed, "mmlu", "astronomy", "train")])
    drawn = draw_test_split(rows, 0.25, seed=0)
    assert [r.example for r in drawn] == [r.example for r in rows]  # order kept
    test = [r.example.prompt for r in drawn if r.split == "test"]
    assert len(test) == 3 and all(p.startswith("q") for p in test)  # round(0.25 * 10); the train file untouched
    assert draw_test_split(rows, 0.25, seed=0) == drawn and draw_test_split(rows, 0.25, seed=1) != drawn
    assert sum(r.split == "test" for r in draw_test_split(rows[:2], 0.01, 0)) == 1  # at least one ...
    assert sum(r.split == "test" for r in draw_test_split(rows[:2], 0.99, 0)) == 1  # ... and one left to train


def test_trial_rows_feed_the_trial_sets(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "options": ["a", "b"], "answer": 0} for i in range(6)]
    trial = [{"question": f"trial{i}", "options": ["a", "b"], "answer": 1, "split": "trial"} for i in range(2)]
    path = _jsonl(tmp_path, [*rows, *trial])
    fd = build_federated_data("mcqa", [("k", "geo")], 1, 4, 5, 4, 4, jsonl_files={"geo": path}, test_fraction=0.3)
    assert {e.prompt for e in fd.trial["k"]} == {"trial0", "trial1"}
    assert all(not e.prompt.startswith("trial") for e in fd.gate + [e for dev in fd.train["k"] for e in dev])
    assert len(fd.test["geo"]) == 2 and all(e.prompt.startswith("q") for e in fd.test["geo"])


# --------------------------------------------------------------- the scenario syntax
def _raw(tmp_path: Path, data: dict[str, object]) -> dict[str, object]:
    return {"name": "x", "time": {"mode": "idealised"}, "data": data,
            "clusters": [{"name": "a", "lat_deg": 0, "lon_deg": 0, "domain": "law"}]}


def test_scenario_entries_paths_and_forms(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for name in ("m.jsonl", "p.jsonl"):
        (tmp_path / "data" / name).write_text(json.dumps(MMLU_ROW) + "\n")
    entry = {"path": "data/m.jsonl", "format": "mmlu", "domain": "law", "split": "test"}
    forms = {
        "list": [entry, "data/p.jsonl"],
        "one": entry,
        "mapping": {"law": {"path": "data/m.jsonl", "format": "mmlu", "split": "test"}, "med": "data/p.jsonl"},
    }
    for form, files in forms.items():
        path = tmp_path / f"{form}.yaml"
        path.write_text(yaml.safe_dump(_raw(tmp_path, {"jsonl_files": files, "test_fraction": 0.5})))
        got = load_scenario(path).data.data_files()
        assert (got[0].path, got[0].format, got[0].domain, got[0].split) == (
            str(tmp_path / "data" / "m.jsonl"), "mmlu", "law", "test"), form  # only the path is resolved
        if form != "one":
            assert (got[1].path, got[1].format) == (str(tmp_path / "data" / "p.jsonl"), "emsfl")
            assert got[1].domain == ("med" if form == "mapping" else None)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([{"path": "a.jsonl", "format": "mmul"}],
         "data.jsonl_files[0].format: expected one of 'emsfl', 'mmlu', 'medmcqa' or 'cmexam' (got 'mmul')"),
        (["b.jsonl", {"path": "a.jsonl", "fromat": "mmlu"}],
         "data.jsonl_files[1].fromat: unknown field; an entry has path, format, domain, split"),
        ({"law": {"path": "a.jsonl", "split": "val"}},
         "data.jsonl_files.law.split: expected one of 'train', 'test' or 'trial' (got 'val')"),
        ({"law": {"path": "a.jsonl", "domain": "med"}},
         "data.jsonl_files.law.domain: the entry under 'law' names domain 'med'; the key is its domain"),
        ([{"path": "missing.jsonl", "format": "mmlu"}],
         "data.jsonl_files[0].path: missing.jsonl not found; paths are relative to the scenario file"),
    ],
)
def test_scenario_entry_errors(tmp_path: Path, files: object, message: str) -> None:
    with pytest.raises(InputError) as err:
        validate_raw(_raw(tmp_path, {"jsonl_files": files}))
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_test_fraction_needs_files_and_a_share() -> None:
    with pytest.raises(InputError, match="data.test_fraction: splits the rows of data files"):
        validate_raw(_raw(Path("."), {"test_fraction": 0.2}))
    with pytest.raises(InputError, match=r"data.test_fraction: must be greater than 0 and less than 1 \(got 1.5\)"):
        validate_raw(_raw(Path("."), {"test_fraction": 1.5, "jsonl_files": ["x"]}))


def test_sample_scenario_builds_its_data() -> None:
    from emsfl_sim.run.world import cluster_domains

    scenario = load_scenario(ROOT / "scenarios" / "quickstart-layouts.yaml")
    d = scenario.data
    fd = build_federated_data(d.task, cluster_domains(scenario), {c.name: c.devices for c in scenario.clusters},
                              d.samples_per_device, d.trial_samples_per_cluster, d.gate_samples,
                              d.test_samples_per_domain, d.partition, d.dirichlet_alpha, scenario.seed,
                              d.data_files(), d.test_fraction)
    assert fd.domains == ["astronomy", "medicine", "law"]
    assert {k: len(v) for k, v in fd.test.items()} == {"astronomy": 5, "medicine": 6, "law": 5}
    assert [e.prompt for e in fd.test["medicine"]][0] == "The first vaccine was developed against"  # the dev file
    assert all(fd.n_samples(c.name) == [6, 6] for c in scenario.clusters)


# --------------------------------------------------------------- trains: one tiny run mixing the layouts
def test_a_tiny_run_trains_on_the_three_layouts(tmp_path: Path) -> None:
    files = [
        {"path": str(DATA / "mmlu-astronomy.jsonl"), "format": "mmlu", "domain": "astronomy"},
        {"path": str(DATA / "medmcqa-medicine-train.jsonl"), "format": "medmcqa", "domain": "medicine",
         "split": "train"},
        {"path": str(DATA / "medmcqa-medicine-dev.jsonl"), "format": "medmcqa", "domain": "medicine", "split": "test"},
        {"path": str(DATA / "cmexam-law.csv"), "format": "cmexam", "domain": "law"},
    ]
    raw = {
        "name": "layouts", "seed": 1,
        "time": {"mode": "idealised", "orbital_cycles": 1, "slot_duration_s": 600},
        "clusters": [{"name": n, "lat_deg": 10 * i, "lon_deg": 0, "devices": 1, "domain": d}
                     for i, (n, d) in enumerate([("a", "astronomy"), ("m", "medicine"), ("l", "law")])],
        "model": {"preset": "tiny", "top_k": 2},
        "data": {"jsonl_files": files, "test_fraction": 0.25, "samples_per_device": 4, "test_samples_per_domain": 3,
                 "trial_samples_per_cluster": 2, "gate_samples": 6},
        "training": {"local_steps": 1, "batch_size": 2, "round_interval_s": 250},
        "strategy": {"names": ["baseline", "emsfl"]},
        "evaluation": {"every_cycles": 1, "target_accuracy": 0.2},
        "output": {"plots": False},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    run_scenario(load_scenario(path), out=tmp_path / "run", progress=False, log=lambda _: None)
    for strategy in ("baseline", "emsfl"):
        summary = json.loads((tmp_path / "run" / strategy / "summary.json").read_text())
        metrics = pd.read_csv(tmp_path / "run" / strategy / "metrics.csv")
        assert list(metrics["cycle"]) == [0.0, 1.0] and metrics["accuracy"].between(0, 1).all()
        assert summary["local_rounds"] > 0 and summary["aggregations"] > 0
