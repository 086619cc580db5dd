"""The uploads each strategy sends for a scenario: bytes per part and passes of the scenario's link they need.

Counted from the model's config without torch (:mod:`~emsfl_sim.learning.trained_counts`),
for the model a learning run builds (in its ``model.dtype``) and for ``model.systems_model``
(16-bit, as runs time themselves), under ``training.mode``, ``training.shared`` and
``model.head``. What a strategy uploads is what its class declares in ``uploads``; a
device of an EMS-FL strategy uploads its cluster's experts (``strategy.expert_groups``,
else an even split: ``ceil(E / clusters)``).
"""

from __future__ import annotations

import math

import pandas as pd

import emsfl_sim.learning.config_counts as cc
from emsfl_sim.learning.systems_configs import SYSTEMS_CONFIGS
from emsfl_sim.run.timeline_counts import DTYPE_BYTES, learning_model_config, scenario_payloads
from emsfl_sim.scenario import Scenario
from emsfl_sim.strategies.base import Payloads, get_strategy

__all__ = ["PAYLOAD_COLUMNS", "payload_table", "models_of"]

PAYLOAD_COLUMNS = ["model", "strategy", "upload", "experts", "expert_bytes", "shared_bytes", "bytes", "mb",
                   "passes_needed"]


def models_of(scenario: Scenario) -> list[tuple[str, dict, int]]:
    """``(label, config, bytes per value)`` of the learning model and, if set, the systems model."""
    cfg, source = learning_model_config(scenario)
    out = [(source, cfg, DTYPE_BYTES[scenario.model.dtype])]
    if scenario.model.systems_model:
        out.append((scenario.model.systems_model, dict(SYSTEMS_CONFIGS[scenario.model.systems_model]), 2))
    return out


def _own_experts(scenario: Scenario, experts: int, learning_experts: int) -> int:
    """Experts one EMS-FL device uploads: its cluster's fixed group (the largest), else an even split.

    A systems model with another expert count gets the same share of its experts (as
    :func:`~emsfl_sim.run.timeline_counts.systems_model_timing` times it).
    """
    groups = scenario.strategy.expert_groups
    if groups is not None:
        return max(1, round(max(len(g) for g in groups.values()) * experts / learning_experts))
    return max(1, math.ceil(experts / len(scenario.clusters)))


def _rows(scenario: Scenario, label: str, payloads: Payloads, experts: int, learning_experts: int,
          median_pass_bytes: float) -> list[dict]:
    shared_trains = scenario.training.shared != "none"
    rows = []
    for name in scenario.strategy.names:
        cls = get_strategy(name)
        n = experts if cls.footprint.experts == "all" else _own_experts(scenario, experts, learning_experts)
        for upload in cls.uploads:
            has_experts, has_shared = "experts" in upload, "shared" in upload and shared_trains
            if not has_experts and not has_shared:
                continue
            expert_bytes = payloads.per_expert_bytes * n if has_experts else 0
            shared_bytes = payloads.gate_bytes if has_shared else 0
            total = expert_bytes + shared_bytes
            what = upload if shared_trains else upload.replace("+shared", "")
            rows.append(dict(model=label, strategy=name, upload=what, experts=n if has_experts else 0,
                             expert_bytes=expert_bytes, shared_bytes=shared_bytes, bytes=total, mb=total / 1e6,
                             passes_needed=total / median_pass_bytes if median_pass_bytes > 0 else math.nan))
    return rows


def payload_table(scenario: Scenario, median_pass_bytes: float) -> pd.DataFrame:
    """One row per model, strategy and upload kind: bytes (experts, shared part, total) and passes needed.

    ``passes_needed`` is the upload's bytes over ``median_pass_bytes``, the median volume
    one device moves in a pass of the scenario's link (``emsfl-sim link-budget``).
    """
    rows = []
    models = models_of(scenario)
    learning_experts = cc.num_experts(models[0][1])
    for label, cfg, dtype_bytes in models:
        rows += _rows(scenario, label, scenario_payloads(scenario, cfg, dtype_bytes), cc.num_experts(cfg),
                      learning_experts, median_pass_bytes)
    return pd.DataFrame(rows, columns=PAYLOAD_COLUMNS)
