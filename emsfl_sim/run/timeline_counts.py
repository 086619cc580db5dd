"""Counts of the scenario's model config without torch: a timeline run's payloads and FLOPs, shape checks.

The same model a learning run would build (``learning/models.py``: a checkpoint's
``config.json``, else ``model.config``, else the preset), counted analytically by
``learning/config_counts.py`` (equal to the meta-device counts, ``tests/test_config_counts.py``);
``model.systems_model`` replaces it for payloads and FLOPs as in a learning run
(``run/world.py: _systems``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import emsfl_sim.learning.config_counts as cc
import emsfl_sim.learning.trained_counts as tc
from emsfl_sim.errors import InputError
from emsfl_sim.learning.systems_configs import SYSTEMS_CONFIGS
from emsfl_sim.scenario import Scenario
from emsfl_sim.strategies.base import Payloads

#: Bytes per element of ``model.dtype`` (a learning run uploads in the model's dtype).
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class TimelineSystems:
    """Counts a timeline run takes from the model's config."""

    num_experts: int
    top_k: int
    payloads: Payloads
    flops: Callable[[list[int], bool, bool], float]
    source: str


def learning_model_config(scenario: Scenario) -> tuple[dict[str, Any], str]:
    """The config dict of the model a learning run of ``scenario`` would build, and where it comes from.

    Raises
    ------
    InputError
        For a model built from dense checkpoints (its config exists only after the merge).
    """
    model = scenario.model
    if model.checkpoint_path:
        path = Path(model.checkpoint_path)
        if path.is_file():
            raise InputError("is a file; give the folder that holds config.json and the weights", path,
                             "model.checkpoint_path")
        try:
            data = cc.read_config(path)
        except (ValueError, OSError) as exc:  # not JSON, not readable
            raise InputError(f"is not valid JSON ({str(exc).splitlines()[0]}); restore it from the original "
                             "checkpoint", path / "config.json", "model.checkpoint_path") from None
        return {**data, **model.config_overrides}, f"config.json of {model.checkpoint_path}"
    if model.dense_checkpoints or model.dense_from_domains:
        raise InputError("a timeline run cannot count a model merged from dense checkpoints; give its "
                         "model.systems_model, or model.config/preset", file=scenario.source_file, field="simulate")
    if model.config is not None:
        data = SYSTEMS_CONFIGS[model.config] if isinstance(model.config, str) else dict(model.config)
        name = model.config if isinstance(model.config, str) else "model.config"
        return {**data, **model.config_overrides}, name
    assert model.preset is not None  # the schema requires a model source
    data = cc.preset_config(model.preset, model.architecture, model.num_experts, model.top_k,
                            overrides=model.config_overrides)
    return data, f"{model.preset} {model.architecture} preset"


def _counts_of(scenario: Scenario) -> dict[str, Any]:
    """Keyword arguments of :mod:`~emsfl_sim.learning.trained_counts` for the scenario's training settings."""
    t, lora = scenario.training, scenario.model.lora
    # the synthetic classification tasks have two label words each (learning/data/classification.py)
    return dict(mode=t.mode, shared=t.shared, rank=lora.rank, targets=tuple(lora.targets),
                head=scenario.model.head, num_labels=2)


def scenario_payloads(scenario: Scenario, cfg: dict[str, Any], dtype_bytes: int) -> Payloads:
    """Payload sizes of a config under the scenario's training mode, shared part and head."""
    kw = _counts_of(scenario)
    experts = cc.num_experts(cfg)
    per_expert = tc.upload_payload_bytes(cfg, 1, False, dtype_bytes=dtype_bytes, **kw)
    shared = tc.upload_payload_bytes(cfg, 0, True, dtype_bytes=dtype_bytes, **kw)
    return Payloads(per_expert, shared, per_expert * experts + shared)


def timeline_systems(scenario: Scenario) -> TimelineSystems:
    """Experts, payload sizes and the FLOPs model of a timeline run (as a learning run's world has them)."""
    cfg, source = learning_model_config(scenario)
    lora, seq_len, t = scenario.model.lora, scenario.data.max_len, scenario.training
    experts, top_k = cc.num_experts(cfg), cc.top_k(cfg)
    name = scenario.model.systems_model
    if name is None:
        payloads = scenario_payloads(scenario, cfg, DTYPE_BYTES[scenario.model.dtype])

        def flops(trained: list[int], train_gate: bool, masked: bool) -> float:
            return tc.flops_per_token(cfg, trained, train_gate, masked, lora_rank=lora.rank, seq_len=seq_len,
                                      targets=tuple(lora.targets), mode=t.mode, shared=t.shared)

        return TimelineSystems(experts, top_k, payloads, flops, source)
    payloads, sys_flops = systems_model_timing(scenario, experts)
    return TimelineSystems(experts, top_k, payloads, sys_flops, f"{source}, timed as {name}")


def systems_model_timing(scenario: Scenario,
                         proxy_experts: int) -> tuple[Payloads, Callable[[list[int], bool, bool], float]]:
    """Payloads and FLOPs of ``model.systems_model`` for a proxy model of ``proxy_experts`` experts.

    Learning and timeline runs both time themselves with it: payloads in 16-bit (under the
    scenario's training mode, shared part and head), and a device's share of the proxy's
    experts mapped onto the systems model's experts.
    """
    name = scenario.model.systems_model
    assert name is not None, "only for scenarios with a systems_model"
    sys_cfg, lora, t = SYSTEMS_CONFIGS[name], scenario.model.lora, scenario.training
    sys_experts = cc.num_experts(sys_cfg)

    def flops(trained: list[int], train_gate: bool, masked: bool) -> float:
        n = max(1, round(len(trained) * sys_experts / proxy_experts)) if trained else 0
        return tc.flops_per_token(sys_cfg, list(range(n)), train_gate, masked, lora_rank=lora.rank,
                                  seq_len=scenario.data.max_len, targets=tuple(lora.targets), mode=t.mode,
                                  shared=t.shared)

    return scenario_payloads(scenario, sys_cfg, 2), flops


def check_timeline_scenario(scenario: Scenario) -> None:
    """What a timeline run looks up, checked without torch (one-line InputErrors).

    Compute profiles, LoRA targets (the fused expert parameters every family has),
    ``model.config_overrides`` keys (only fields that size the model change a timeline
    run; any other would be accepted and unused) and the counts of the model config.
    """
    from emsfl_sim.sim.compute import check_compute_profiles

    file = scenario.source_file
    check_compute_profiles(scenario)
    check_model_shape(scenario)
    for target in scenario.model.lora.targets:
        if target not in cc.EXPERT_PARAMETERS:
            raise InputError(f"target {target!r} matches no expert parameter; use some of "
                             f"{', '.join(cc.EXPERT_PARAMETERS)}", file, "model.lora.targets")
    family = scenario.model.architecture
    sizing = set(cc.CONFIG_DEFAULTS.get(family, {})) | {"num_experts", "num_local_experts", "pad_token_id",
                                                        "bos_token_id", "eos_token_id"}
    for key in scenario.model.config_overrides:
        if key not in sizing:
            raise InputError(f"{key!r} does not size the model, so a timeline run would not use it; use one of "
                             f"{', '.join(sorted(sizing))} (or simulate: learning)", file,
                             f"model.config_overrides.{key}")
    try:
        timeline_systems(scenario)
    except InputError as exc:
        raise (exc.with_file(file) if file else exc) from None


def check_model_shape(scenario: Scenario) -> dict[str, int] | None:
    """The model config a run would build is consistent (one-line InputErrors naming the field), before any work.

    Attention heads divide the hidden size (without an explicit ``head_dim``), key-value
    heads divide the attention heads, top-k lies within the experts, and a
    ``model.config`` mapping names its ``model_type``. Returns the parameter counts
    (``config_counts.count_parameters``), None for a dense merge (its config exists only
    after the merge).
    """
    model, file = scenario.model, scenario.source_file
    if isinstance(model.config, dict) and "model_type" not in model.config and not model.checkpoint_path:
        raise InputError("has no model_type, so transformers would build its default (Mixtral-8x7B, 46.7 B "
                         "parameters); give model_type (mixtral, qwen2_moe, olmoe) and the sizes, or a named "
                         "architecture", file, "model.config")
    if model.dense_checkpoints or model.dense_from_domains:
        return None
    cfg, _ = learning_model_config(scenario)

    def field_of(key: str) -> str:
        if key in model.config_overrides:
            return f"model.config_overrides.{key}"
        return f"model.config.{key}" if model.config is not None and not model.checkpoint_path else "model"

    try:
        shape = cc.moe_shape(cfg)
    except InputError as exc:
        if exc.field == "model.architecture" and model.checkpoint_path:
            raise InputError(f"names model_type {cfg.get('model_type')!r}, which is no supported MoE family; use a "
                             "checkpoint of mixtral, olmoe or qwen2_moe", Path(model.checkpoint_path) / "config.json",
                             "model.checkpoint_path") from None
        last = (exc.field or "").rsplit(".", 1)[-1]
        key = last if last in model.config_overrides else next((k for k in model.config_overrides
                                                                 if k in exc.message), None)
        if exc.field == "model.top_k" and "num_experts_per_tok" in model.config_overrides:
            key = "num_experts_per_tok"
        raise InputError(exc.message, file, field_of(key) if key else exc.field) from None
    if cfg.get("head_dim") is None and shape.hidden_size % shape.num_heads:
        raise InputError(f"{shape.num_heads} attention heads do not divide hidden_size {shape.hidden_size}; use a "
                         "divisor of it (or set head_dim)", file, field_of("num_attention_heads"))
    if shape.num_heads % shape.num_kv_heads:
        raise InputError(f"{shape.num_kv_heads} key-value heads do not divide the {shape.num_heads} attention "
                         "heads; use a divisor of num_attention_heads", file, field_of("num_key_value_heads"))
    return cc.count_parameters(cfg)
