"""Scenario files: pydantic schema, ``extends`` resolution, dotted overrides and one-line validation errors."""

from emsfl_sim.scenario.loader import (
    load_scenario,
    resolve_raw,
    scenario_to_yaml,
    validate_raw,
)
from emsfl_sim.scenario.overrides import apply_overrides, check_override_path, set_override
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
    "check_override_path",
    "load_scenario",
    "resolve_raw",
    "scenario_to_yaml",
    "set_override",
    "validate_raw",
]
