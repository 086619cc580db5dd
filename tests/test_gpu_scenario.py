"""The GPU scenario of README "Running the reference's experiment 1 on your GPUs" stays valid."""

from __future__ import annotations

import shutil
from pathlib import Path

from emsfl_sim.cli.main import main

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_scenario_validates_once_its_files_are_in_place(tmp_path: Path, capsys) -> None:
    root = tmp_path / "repo"
    (root / "scenarios" / "gpu").mkdir(parents=True)
    shutil.copy(REPO / "scenarios" / "paper-exp1-tiny.yaml", root / "scenarios")
    shutil.copy(REPO / "scenarios" / "gpu" / "paper-exp1-llama3.yaml", root / "scenarios" / "gpu")
    for name in ("general", "chinese-medical", "english-medical"):
        (root / "checkpoints" / f"llama3-8b-{name}").mkdir(parents=True)
    (root / "data").mkdir()
    for name in ("mmlu-train.jsonl", "mmlu-test.jsonl", "cmexam-train.csv", "cmexam-test.csv",
                 "medmcqa-train.jsonl", "medmcqa-dev.jsonl"):
        (root / "data" / name).write_text("")
    assert main(["validate", str(root / "scenarios" / "gpu" / "paper-exp1-llama3.yaml")]) == 0
    assert "ok:" in capsys.readouterr().out
