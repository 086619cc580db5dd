"""The scenario schema: one small pydantic model per section.

Every section forbids unknown fields (so a typo is an error with a suggestion),
carries units in its field names and validates physical ranges. This module has
no heavy imports so that ``emsfl-sim validate`` is fast.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from emsfl_sim.scenario.learning_sections import (  # noqa: F401  (the schema's public names)
    PRESET_EXPERTS,
    DataConfig,
    EvaluationConfig,
    LoraConfig,
    ModelConfig,
    StrategyConfig,
    TrainingConfig,
)
from emsfl_sim.scenario.network_sections import (  # noqa: F401
    ClusterConfig,
    ConstellationConfig,
    LinkConfig,
    ServerConfig,
    TimeConfig,
    WalkerShell,
)
from emsfl_sim.scenario.section import Section

#: Table file formats of a run directory.
TableFormat = Literal["parquet", "csv"]


class OutputConfig(Section):
    """Where results go."""

    directory: str = "runs/{name}"
    formats: list[TableFormat] = Field(default_factory=lambda: list[TableFormat](["parquet", "csv"]))
    plots: bool = True
    checkpoints: bool = Field(
        default=True,
        description="keep a checkpoint of each running strategy at every evaluation, so a killed run resumes "
        "from the last evaluation with the same results (one file per strategy, removed when it finishes)",
    )


#: Most seeds one list may hold (``seeds`` and ``sweep.seeds``).
MAX_SEEDS = 1000


def check_seed_list(value: list[int]) -> list[int]:
    """The rules of every list of seeds: at most :data:`MAX_SEEDS`, non-negative, each once.

    Raises
    ------
    ValueError
        Saying which rule the list breaks (pydantic reports it on the field).
    """
    if len(value) > MAX_SEEDS:
        raise ValueError(f"has {len(value)} seeds, more than the limit of {MAX_SEEDS}; run fewer seeds")
    negative = [s for s in value if s < 0]
    if negative:
        raise ValueError(f"must be non-negative integers (got {negative[0]})")
    duplicates = sorted({s for s in value if value.count(s) > 1})
    if duplicates:
        raise ValueError(f"seed {duplicates[0]} is listed twice; give each seed once")
    return value


class SweepConfig(Section):
    """A parameter sweep over dotted field paths."""

    mode: Literal["product", "zip"] = "product"
    parameters: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=list)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        return check_seed_list(value)

    @model_validator(mode="after")
    def _lists(self) -> SweepConfig:
        if not self.parameters and not self.seeds:
            raise ValueError("the sweep has no parameters and no seeds; give at least one (or remove sweep)")
        if "seed" in self.parameters and self.seeds:
            raise ValueError("parameters.seed: seed is swept twice; use either sweep.seeds or sweep.parameters.seed")
        for key, values in self.parameters.items():
            if not values:
                raise ValueError(f"parameters.{key}: has no values; give a non-empty list")
        if self.mode == "zip":
            lengths = {len(v) for v in self.parameters.values()}
            if len(lengths) > 1:
                raise ValueError(f"zip sweep needs lists of equal length, got lengths {sorted(lengths)}")
        return self


# --------------------------------------------------------------------- scenario
class Scenario(Section):
    """A complete, validated scenario."""

    name: str = Field(min_length=1)
    seed: int = 0
    seeds: list[int] | None = Field(
        default=None, description="run every seed (emsfl-sim run --seeds overrides); null: just `seed`"
    )
    description: str = ""
    simulate: Literal["learning", "timeline"] = Field(
        default="learning",
        description="learning: real training and evaluation (torch); timeline: the same event loop, links, uploads "
        "and aggregations with round times from the compute model and payloads from the model's config, no torch "
        "(no accuracy; for constellation and idle-slot studies at scale)",
    )
    time: TimeConfig = Field(default_factory=TimeConfig)
    constellation: ConstellationConfig = Field(default_factory=ConstellationConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    clusters: list[ClusterConfig] = Field(min_length=1)
    link: LinkConfig = Field(default_factory=LinkConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    sweep: SweepConfig | None = None

    @model_validator(mode="after")
    def _rounds_per_slot_needs_slots(self) -> Scenario:
        if self.training.rounds_per_slot is not None and self.time.mode != "idealised":
            raise ValueError("training.rounds_per_slot: only idealised time has slots; remove it or use "
                             "time.mode: idealised (orbital rounds last training.round_interval_s)")
        interval = self.training.round_interval_s
        if self.time.mode == "idealised" and interval is not None:
            share = self.time.slot_duration_s / (self.training.rounds_per_slot or 1)
            if interval > share:
                raise ValueError(f"training.round_interval_s: a {interval:g} s round does not fit in the {share:g} s "
                                 "each round gets in idealised time (time.slot_duration_s / training.rounds_per_slot); "
                                 "use a shorter round or fewer rounds_per_slot")
        return self

    @model_validator(mode="after")
    def _training_mode_settings(self) -> Scenario:
        if self.model.head == "classification" and self.data.task != "classification":
            raise ValueError(f"model.head: a classification head needs labels; set data.task: classification or "
                             f"model.head: lm (got data.task: {self.data.task})")
        if self.model.head == "classification":
            if self.model.pretrain_steps:
                raise ValueError("model.pretrain_steps: the synthetic pre-training trains a language-model head; "
                                 "with model.head: classification set pretrain_steps: 0")
            if self.model.dense_checkpoints or self.model.dense_from_domains:
                raise ValueError("model.head: a dense -> MoE merge builds a causal LM; use model.head: lm, or a "
                                 "preset, config or checkpoint_path with the classification head")
        if self.training.mode == "full":
            if "lora" in self.model.model_fields_set:
                raise ValueError("model.lora: LoRA settings are not used with training.mode: full (experts train "
                                 "their weights); remove model.lora (model.lora: null drops inherited ones) or use "
                                 "training.mode: lora")
            if self.training.lora_aggregation != "exact":
                raise ValueError("training.lora_aggregation: there are no LoRA factors with training.mode: full; "
                                 "remove it or use training.mode: lora")
        return self

    #: The file this scenario was loaded from (set by the loader).
    _source_file: str | None = PrivateAttr(None)

    @property
    def source_file(self) -> str | None:
        """Path of the scenario file, if loaded from one."""
        return self._source_file

    @model_validator(mode="after")
    def _expert_groups_name_clusters(self) -> Scenario:
        groups = self.strategy.expert_groups
        if groups is None:
            return self
        names = [c.name for c in self.clusters]
        unknown = sorted(set(groups) - set(names))
        if unknown:
            raise ValueError(f"strategy.expert_groups: {unknown[0]!r} is not a cluster; use the names {names}")
        missing = [n for n in names if n not in groups]
        if missing:
            raise ValueError(f"strategy.expert_groups: cluster {missing[0]!r} has no group; give every cluster one "
                             "(an empty list for none)")
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("is empty; give a list of seeds such as [0, 1, 2] or null to run just `seed`")
        return check_seed_list(value)
