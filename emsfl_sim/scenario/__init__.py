"""Scenario files: pydantic schema, ``extends`` resolution and one-line validation errors."""

from emsfl_sim.scenario.loader import (
    apply_overrides,
    load_scenario,
    resolve_raw,
    scenario_to_yaml,
    validate_raw,
)
from emsfl_sim.scenario.schema import (
    ClusterConfig,
    ConstellationConfig,
    DataConfig,
    EvaluationConfig,
    LinkConfig,
    LoraConfig,
    ModelConfig,
    OutputConfig,
    Scenario,
    ServerConfig,
    StrategyConfig,
    SweepConfig,
    TimeConfig,
    TrainingConfig,
    WalkerShell,
)

__all__ = [
    "ClusterConfig",
    "ConstellationConfig",
    "DataConfig",
    "EvaluationConfig",
    "LinkConfig",
    "LoraConfig",
    "ModelConfig",
    "OutputConfig",
    "Scenario",
    "ServerConfig",
    "StrategyConfig",
    "SweepConfig",
    "TimeConfig",
    "TrainingConfig",
    "WalkerShell",
    "apply_overrides",
    "load_scenario",
    "resolve_raw",
    "scenario_to_yaml",
    "validate_raw",
]
