"""One table of strategies x MoE families, each run end to end on a tiny idealised scenario.

PEFT's ``tests/test_custom_models.py`` runs one table of (model, config) cases on tiny models;
this is ours: every registered strategy on a tiny preset of every registered family, with
the real learning engine on CPU (one run per family serves its three strategy rows).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from emsfl_sim.learning.adapters import adapter_names
from emsfl_sim.run.runner import run_scenario
from emsfl_sim.scenario import load_scenario
from emsfl_sim.strategies import REGISTRY

TINY: dict[str, Any] = {
    "name": "table",
    "seed": 3,
    "time": {"mode": "idealised", "orbital_cycles": 1, "slot_duration_s": 600},
    "clusters": [
        {"name": "a", "lat_deg": 48, "lon_deg": 11, "devices": 1, "domain": "astronomy"},
        {"name": "b", "lat_deg": 40, "lon_deg": -105, "devices": 1, "domain": "law"},
    ],
    "model": {"preset": "tiny", "top_k": 2},
    "data": {"samples_per_device": 4, "test_samples_per_domain": 2, "trial_samples_per_cluster": 2,
             "gate_samples": 4},
    "training": {"local_steps": 1, "batch_size": 2, "round_interval_s": 250},
    "strategy": {"names": sorted(REGISTRY), "enhanced_expert_cycles": 1, "enhanced_gate_rounds": 1},
    "evaluation": {"every_cycles": 1, "target_accuracy": 0.2},
    "output": {"plots": False},
}

_RUNS: dict[str, Path] = {}


@pytest.fixture
def family_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    family = request.param
    if family not in _RUNS:
        tmp = tmp_path_factory.mktemp(family)
        path = tmp / "s.yaml"
        path.write_text(yaml.safe_dump({**TINY, "model": {**TINY["model"], "architecture": family}}))
        run_scenario(load_scenario(path), out=tmp / "run", progress=False, log=lambda _: None)
        _RUNS[family] = tmp / "run"
    return _RUNS[family]


@pytest.mark.parametrize("family_run", adapter_names(), indirect=True)
@pytest.mark.parametrize("strategy", sorted(REGISTRY))
def test_every_strategy_runs_on_every_family(family_run: Path, strategy: str) -> None:
    summary = json.loads((family_run / strategy / "summary.json").read_text())
    metrics = pd.read_csv(family_run / strategy / "metrics.csv")
    assert list(metrics["cycle"]) == [0.0, 1.0]
    assert metrics["accuracy"].between(0, 1).all()
    # a cycle is two slots (one per cluster), one round per slot: the baseline trains only the
    # device in view (2 rounds), EMS-FL devices train in every slot, connected or not (2 x 2)
    assert summary["local_rounds"] == (2 if strategy == "baseline" else 4)
    assert summary["uplink_bytes"] > 0 and summary["aggregations"] > 0
    assert summary["warnings"] == []
    scenario = yaml.safe_load((family_run / "scenario.yaml").read_text())
    assert scenario["model"]["architecture"] == family_run.parent.name.rstrip("0123456789")
