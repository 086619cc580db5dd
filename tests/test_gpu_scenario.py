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
    # validate reads the data files as a run would: rows in each layout, enough for 2 devices x 256 samples
    samples = REPO / "scenarios" / "data"
    for name, sample in (("mmlu-train.jsonl", "mmlu-astronomy.jsonl"), ("mmlu-test.jsonl", "mmlu-astronomy.jsonl"),
                         ("cmexam-train.csv", "cmexam-law.csv"), ("cmexam-test.csv", "cmexam-law.csv"),
                         ("medmcqa-train.jsonl", "medmcqa-medicine-train.jsonl"),
                         ("medmcqa-dev.jsonl", "medmcqa-medicine-dev.jsonl")):
        lines = (samples / sample).read_text().splitlines(keepends=True)
        header, body = (lines[:1], lines[1:]) if sample.endswith(".csv") else ([], lines)
        (root / "data" / name).write_text("".join(header + body * 60))
    assert main(["validate", str(root / "scenarios" / "gpu" / "paper-exp1-llama3.yaml")]) == 0
    assert "ok:" in capsys.readouterr().out
