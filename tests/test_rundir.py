"""A run directory belongs to one resolved scenario and one run at a time (emsfl_sim.run.rundir)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emsfl_sim import __version__
from emsfl_sim.errors import InputError
from emsfl_sim.run import runner
from emsfl_sim.run.rundir import check_resume, code_fingerprint, input_digests, run_lock, scenario_differences
from emsfl_sim.scenario import scenario_to_yaml
from emsfl_sim.scenario.schema import Scenario

RAW: dict[str, Any] = {
    "name": "resume", "seed": 0,
    "time": {"mode": "idealised", "duration_s": 1800},
    "clusters": [{"name": "a", "lat_deg": 0, "lon_deg": 0}, {"name": "b", "lat_deg": 0, "lon_deg": 90}],
    "strategy": {"names": ["baseline", "emsfl"]},
    "training": {"round_interval_s": 100.0},
    "output": {"formats": ["csv"], "plots": False},
}


def scenario(**changes: Any) -> Scenario:
    raw = json.loads(json.dumps(RAW))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = raw
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return Scenario.model_validate(raw)


def finished_dir(tmp_path: Path, sc: Scenario, version: str = __version__, code: str | None = None) -> Path:
    directory = tmp_path / "run"
    (directory / "baseline").mkdir(parents=True)
    (directory / "baseline" / "summary.json").write_text("{}")
    (directory / "scenario.yaml").write_text(scenario_to_yaml(sc))
    (directory / "run.json").write_text(json.dumps({"emsfl_sim": version, "code": code or code_fingerprint(),
                                                    "inputs": input_digests(sc)}))
    return directory


def test_an_edited_data_file_behind_the_same_path_is_not_resumed(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"domain": "law", "question": "q?", "options": ["a", "b"], "answer": 0}\n')
    sc = scenario(data__jsonl_files=[str(data)], data__task="mcqa")
    directory = finished_dir(tmp_path, sc)
    assert check_resume(sc, directory, ["baseline"], fresh=False) is None
    data.write_text('{"domain": "law", "question": "q?", "options": ["a", "b"], "answer": 1}\n')
    with pytest.raises(InputError) as err:
        check_resume(sc, directory, ["baseline"], fresh=False)
    assert f"computed from other contents of {data}" in str(err.value) and "\n" not in str(err.value)


def test_the_same_scenario_resumes_and_fields_that_compute_nothing_are_ignored(tmp_path: Path) -> None:
    directory = finished_dir(tmp_path, scenario())
    stored = (directory / "scenario.yaml").read_text()
    harmless = scenario(seeds=[0, 1], description="x", output__plots=True)
    assert scenario_differences(stored, scenario()) == []
    assert scenario_differences(stored, harmless) == []  # fields that compute nothing are not compared
    assert scenario_differences(stored, scenario(seed=3)) == ["seed"]  # ... while one that does is
    assert check_resume(scenario(), directory, ["baseline", "emsfl"], fresh=False) is None  # no InputError
    assert check_resume(harmless, directory, ["baseline"], fresh=False) is None


def test_another_seed_duration_or_mask_is_refused_in_one_line(tmp_path: Path) -> None:
    directory = finished_dir(tmp_path, scenario())
    other = scenario(seed=3, time__duration_s=3600, link={"elevation_mask_deg": 10})
    with pytest.raises(InputError) as err:
        check_resume(other, directory, ["baseline"], fresh=False)
    text = str(err.value)
    assert "another scenario" in text and "--fresh" in text and "\n" not in text
    assert "seed" in text and "time.duration_s" in text and "link.elevation_mask_deg" in text
    check_resume(other, directory, ["baseline"], fresh=True)  # --fresh replaces them
    check_resume(other, directory, ["emsfl"], fresh=False)  # nothing of emsfl to reuse


def test_another_code_version_or_no_scenario_file_is_refused(tmp_path: Path) -> None:
    directory = finished_dir(tmp_path, scenario(), version="0.0.1")
    with pytest.raises(InputError, match="emsfl-sim 0.0.1"):
        check_resume(scenario(), directory, ["baseline"], fresh=False)
    directory = finished_dir(tmp_path / "code", scenario(), code="0123456789abcdef")  # an older commit
    with pytest.raises(InputError, match="code 0123456789abcdef"):
        check_resume(scenario(), directory, ["baseline"], fresh=False)
    (directory / "scenario.yaml").unlink()
    with pytest.raises(InputError, match="no scenario.yaml"):
        check_resume(scenario(), directory, ["baseline"], fresh=False)


def test_differences_are_dotted_paths() -> None:
    assert scenario_differences(scenario_to_yaml(scenario()), scenario(training__learning_rate=0.5)) == [
        "training.learning_rate"]


def test_a_second_run_into_a_held_directory_is_told_who_holds_it(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    with run_lock(directory):
        with pytest.raises(InputError, match=r"another run is writing here \(pid \d+"):
            with run_lock(directory):
                pass  # pragma: no cover
    with run_lock(directory):  # released at the end of the first run
        pass


def test_run_scenario_refuses_to_mix_results_of_two_scenarios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_strategy(scenario: Scenario, schedule: Any, world: Any, name: str, directory: Path,
                      progress: bool = True, log: Any = None, resume: bool = True) -> dict[str, Any]:
        directory.mkdir(parents=True, exist_ok=True)
        summary = {"strategy": name, "seed": scenario.seed, "final_accuracy": 0.1 * (1 + scenario.seed)}
        (directory / "summary.json").write_text(json.dumps(summary))
        return summary

    monkeypatch.setattr(runner, "build_world", lambda *a, **k: None)
    monkeypatch.setattr(runner, "run_strategy", fake_strategy)
    out = tmp_path / "out"
    first = runner.run_scenario(scenario(), out=out, progress=False, log=lambda m: None)
    again = runner.run_scenario(scenario(), out=out, progress=False, log=lambda m: None)  # resumes
    assert list(again["final_accuracy"]) == list(first["final_accuracy"])
    with pytest.raises(InputError, match="differs in seed"):
        runner.run_scenario(scenario(seed=2), out=out, progress=False, log=lambda m: None)
    assert "seed: 0" in (out / "scenario.yaml").read_text()  # the refused run wrote nothing
    fresh = runner.run_scenario(scenario(seed=2), out=out, fresh=True, progress=False, log=lambda m: None)
    assert list(fresh["final_accuracy"]) == [pytest.approx(0.3)] * 2


def test_learning_specs_take_every_setting_from_the_scenario_sections() -> None:
    """A spec field a section also holds is fed from it; the rest are the documented spec-only ones."""
    import dataclasses

    from emsfl_sim.learning.lora import LoraSpec
    from emsfl_sim.learning.modelspec import ModelSpec
    from emsfl_sim.learning.train import TrainSpec
    from emsfl_sim.run.world import SPEC_ONLY_FIELDS, model_spec, spec_from_sections
    from emsfl_sim.scenario.schema import DataConfig, LoraConfig, ModelConfig, TrainingConfig

    for spec, sections in [(ModelSpec, [ModelConfig]), (TrainSpec, [TrainingConfig, DataConfig]),
                           (LoraSpec, [LoraConfig])]:
        names = {f.name for f in dataclasses.fields(spec)}
        fed = names & set().union(*(set(s.model_fields) for s in sections))
        assert names - fed == SPEC_ONLY_FIELDS[spec.__name__]
    sc = scenario(model__top_k=2, model__router_weighting="softmax_topk", model__config_overrides={"x": 1},
                  training__learning_rate=0.02, data__max_len=64)
    spec = model_spec(sc)
    assert (spec.top_k, spec.router_weighting, spec.config_overrides) == (2, "softmax_topk", {"x": 1})
    assert spec.config_overrides is not sc.model.config_overrides  # a copy, never an alias
    train = spec_from_sections(TrainSpec, sc.training, sc.data)
    assert (train.learning_rate, train.max_len) == (0.02, 64)
