"""Scenario sections of the learning: model (with LoRA), data, strategy, training, evaluation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from emsfl_sim.scenario.datafiles import DataFileConfig, data_file_entries, parse_jsonl_files
from emsfl_sim.scenario.section import Section

# ------------------------------------------------------------------------ model
#: Experts and top-k of the built-in presets (mirrors learning.models.PRESETS; a test keeps them equal).
PRESET_EXPERTS: dict[str, int] = {"tiny": 4, "small": 8}

class LoraConfig(Section):
    """LoRA on the expert weights."""

    rank: int = Field(default=4, gt=0, le=1024)
    alpha: float = Field(default=8.0, gt=0)
    targets: list[str] = Field(default_factory=lambda: ["gate_up_proj", "down_proj"], min_length=1,
                               description="expert parameters LoRA adapts (some of gate_up_proj, down_proj)")


class ModelConfig(Section):
    """The MoE model: a tiny preset, a transformers config, a checkpoint, or built from dense models."""

    architecture: str = Field(default="mixtral", description="model adapter name")
    preset: Literal["tiny", "small"] | None = "tiny"
    config: dict[str, Any] | Literal["llama3-8b-x3", "mixtral-8x7b", "qwen1.5-moe-a2.7b", "olmoe-1b-7b"] | None = Field(
        default=None, description="a transformers config (a config.json mapping with model_type, or a named real "
        "architecture) built with seeded random weights; used when there is no checkpoint or dense merge (set preset: "
        "null); config_overrides apply on top (e.g. num_hidden_layers)",
    )
    config_overrides: dict[str, Any] = Field(default_factory=dict)
    checkpoint_path: str | None = None
    dense_checkpoints: list[str] = Field(default_factory=list)
    dense_from_domains: bool = Field(
        default=False, description="pre-train one tiny dense model per domain and build the MoE from them"
    )
    dense_pretrain_steps: int = Field(default=150, ge=0)
    dense_probe_weight: float = Field(
        default=1.0, ge=0, description="weight of the linear domain probes in the shared dense pre-training "
        "(makes the hidden states tell the domains apart, as a real LLM's do; 0 disables)",
    )
    router_init: Literal["random", "hidden"] = "random"
    num_experts: int | None = Field(default=None, gt=0)
    top_k: int | None = Field(default=None, gt=0)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    systems_model: Literal["llama3-8b-x3", "mixtral-8x7b", "qwen1.5-moe-a2.7b", "olmoe-1b-7b"] | None = Field(
        default=None, description="real architecture whose payload sizes and FLOPs time the simulation "
        "(computed without weights) while the proxy model learns; null: the learning model itself",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig)
    head: Literal["lm", "classification"] = Field(
        default="lm", description="lm: the causal-LM head, answers scored by option likelihood; classification: the "
        "architecture's sequence-classification class (transformers' MixtralForSequenceClassification), one class "
        "per option of the task, cross-entropy on labels, accuracy by argmax (needs data.task: classification)",
    )
    gate_pretrain_steps: int = Field(default=0, ge=0, description="router-only pre-training on the shared gate sample: "
                                     "language-model loss, or for dense_from_domains supervision by domain (a top-1 "
                                     "Mixtral router gets no LM gradient: its single weight is renormalised to 1)")
    router_weighting: Literal["renormalised", "softmax_topk", "straight_through"] = Field(
        default="renormalised", description="weights of the kept top-k experts: softmax_topk is the reference's eq. (9) "
        "(top-k of the softmax, not renormalised: a top-1 weight is p_max, so the gate learns from the task loss); "
        "renormalised is Mixtral's (a top-1 weight is 1: no gate gradient); straight_through is renormalised in "
        "value with the gradient of log p for top-1",
    )
    pretrain_steps: int = Field(default=0, ge=0, description="synthetic pre-training of a preset's backbone and routers "
                                "(facts disjoint from the fine-tuning data; cached on disk)")
    pretrain_lr: float = Field(default=3e-3, gt=0, le=1)
    pretrain_batch_size: int = Field(default=16, gt=0)
    cache_dir: str | None = Field(default=None, description="cache of pre-trained presets (default $EMSFL_CACHE or "
                                  "~/.cache/emsfl-sim; empty string disables)")

    @model_validator(mode="before")
    @classmethod
    def _lora_null(cls, data: Any) -> Any:
        # `lora: null` drops LoRA settings a scenario inherits (extends:), e.g. for training.mode: full
        if isinstance(data, dict) and "lora" in data and data["lora"] is None:
            return {k: v for k, v in data.items() if k != "lora"}
        return data

    @model_validator(mode="after")
    def _has_source(self) -> ModelConfig:
        if self.preset is None and not (self.checkpoint_path or self.dense_checkpoints or self.dense_from_domains
                                        or self.config is not None):
            raise ValueError("preset: is null and no other model source is given; set preset (tiny, small), "
                             "config, checkpoint_path, dense_checkpoints or dense_from_domains: true")
        return self

    @model_validator(mode="after")
    def _top_k(self) -> ModelConfig:
        experts = self.num_experts or PRESET_EXPERTS.get(self.preset or "", None)
        if self.top_k is not None and experts is not None and self.top_k > experts:
            raise ValueError(
                f"top_k: {self.top_k} is larger than the number of experts ({experts}); use top_k <= {experts}"
            )
        return self


# ------------------------------------------------------------------------- data
class DataConfig(Section):
    """Federated data: synthetic domains or user files."""

    task: Literal["mcqa", "classification"] = "mcqa"
    partition: Literal["by_domain", "dirichlet"] = "by_domain"
    dirichlet_alpha: float = Field(default=1.0, gt=0)
    samples_per_device: int = Field(default=64, gt=0, le=100_000, description="training samples per device (at "
                                    "most 100 000: every device keeps its shard in memory)")
    trial_samples_per_cluster: int = Field(default=32, gt=0)
    gate_samples: int = Field(default=64, gt=0)
    test_samples_per_domain: int = Field(default=64, gt=0)
    max_len: int = Field(default=96, gt=8)
    prompt_format: Literal["plain", "chat_template"] = Field(
        default="plain", description="plain: the option continues the prompt + ' '; chat_template: the prompt is the "
        "user turn of the checkpoint tokenizer's chat template and the option the assistant's reply (needs a "
        "checkpoint whose tokenizer has a template; the presets' byte tokenizer has none)",
    )
    jsonl_files: list[str | DataFileConfig] | dict[str, str | DataFileConfig] = Field(
        default_factory=dict,
        description="the user's MCQA files (relative to the scenario file): paths (rows name their domain) or "
        "entries {path, format, domain, split}, or domain -> path or entry; replace the synthetic data "
        "(README: Bring your own data)",
    )
    test_fraction: float | None = Field(
        default=None, gt=0, lt=1, description="data files: per domain, this share of the rows whose split neither "
        "the row nor its file gives is drawn (seeded) for the test set; null: they are train rows",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_or_many_files(cls, data: Any) -> Any:
        if isinstance(data, dict) and "jsonl_files" in data:  # entries first: their errors name their field
            return {**data, "jsonl_files": parse_jsonl_files(data["jsonl_files"])}
        return data

    def data_files(self) -> list[DataFileConfig]:
        """``jsonl_files`` as entries (:func:`~emsfl_sim.scenario.datafiles.data_file_entries`)."""
        return data_file_entries(self.jsonl_files)

    @model_validator(mode="after")
    def _files_are_mcqa(self) -> DataConfig:
        if self.jsonl_files and self.task != "mcqa":
            raise ValueError(
                f"task: data files (jsonl_files) hold multiple-choice QA; set task: mcqa (got {self.task!r})"
            )
        if self.test_fraction is not None and not self.jsonl_files:
            raise ValueError("test_fraction: splits the rows of data files (jsonl_files); synthetic data have their "
                             "own test set: remove test_fraction or give jsonl_files")
        data_file_entries(self.jsonl_files)  # a mapping's entries name no other domain
        return self


# --------------------------------------------------------------------- strategy
class StrategyConfig(Section):
    """Which strategies run and their parameters."""

    names: list[str] = Field(
        default_factory=lambda: ["baseline", "emsfl"], min_length=1,
        description="strategies to run, by registry name (checked against emsfl_sim.strategies at run time)",
    )
    split_every_cycles: int = Field(default=2, gt=0, description="EMS-FL re-splitting period in orbital cycles")
    relevance_threshold: float = Field(default=0.05, ge=0, lt=1, description="delta: truncation of p_{k,e}")
    enhanced_expert_cycles: int = Field(default=5, ge=0, description="enhanced: cycles of masked expert-only training")
    enhanced_gate_rounds: int = Field(default=3, ge=0, description="enhanced: standard EMS-FL rounds to tune the gate")
    enhanced_gate_timeout_cycles: float | None = Field(
        default=None, gt=0, description="enhanced: a gate period ends after this many orbital cycles even if some "
        "cluster has not had its gate rounds (null: 2 x enhanced_gate_rounds)",
    )

    expert_groups: dict[str, list[int]] | None = Field(
        default=None,
        description="fixed EMS-FL expert groups by cluster name (disjoint, covering every expert) instead of the "
        "relevance-driven splitting; null: split by relevance (a timeline run, without a model, draws on uniform "
        "relevances)",
    )

    @field_validator("names", mode="before")
    @classmethod
    def _str_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("expert_groups")
    @classmethod
    def _disjoint(cls, value: dict[str, list[int]] | None) -> dict[str, list[int]] | None:
        if value is None:
            return value
        seen: dict[int, str] = {}
        for cluster, experts in value.items():
            for e in experts:
                if e < 0:
                    raise ValueError(f"{cluster}: expert {e} is negative; experts are numbered from 0")
                if e in seen:
                    raise ValueError(f"expert {e} is in the groups of {seen[e]!r} and {cluster!r}; groups are disjoint")
                seen[e] = cluster
        return value

    @field_validator("names")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(f"strategy {twice[0]!r} is listed twice; give each strategy once")
        return value


# --------------------------------------------------------------------- training
class TrainingConfig(Section):
    """Local training of devices."""

    learning_rate: float = Field(default=1e-3, gt=0, le=10)
    gate_learning_rate: float | None = Field(default=None, gt=0, le=10, description="default: learning_rate")
    optimizer: Literal["sgd", "adamw"] = "adamw"
    local_steps: int = Field(default=4, gt=0)
    batch_size: int = Field(default=8, gt=0)
    round_interval_s: float | None = Field(
        default=None, gt=0, description="simulated time of a local round; null: from the compute model"
    )
    devices_per_round: int | None = Field(
        default=None, gt=0, description="devices of a cluster that train in each local round, drawn anew every round "
        "(seeded); the others keep their state; null: every device")
    rounds_per_slot: int | None = Field(
        default=None, gt=0, le=1000, description="idealised time: local rounds per slot, aligned to the slot (null: 1, "
        "as in the reference); a round must fit in slot_duration_s / rounds_per_slot",
    )
    simulated_tokens_per_round: float | None = Field(
        default=None, gt=0, description="compute model: tokens one local round stands for (e.g. an epoch of a "
        "device's real data); null: the tokens the proxy model really processes"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int | None = Field(
        default=1, ge=1, description="torch CPU threads (1 is fastest for tiny models and parallel sweeps; null: torch default)"
    )
    lora_aggregation: Literal["exact", "factors"] = "exact"
    mode: Literal["lora", "full"] = Field(
        default="lora", description="lora: devices train LoRA factors of their experts (base weights frozen); full: "
        "devices train their experts' weights directly and upload them, the satellite averages them per expert "
        "weighted by samples (training from scratch; model.lora is not used)",
    )
    shared: Literal["gate", "gate_backbone", "none"] = Field(
        default="gate", description="what the connected cluster trains in its connected-phase round (and the baseline "
        "in every round) besides experts: gate (router weights), gate_backbone (routers plus attention, norms, "
        "embeddings and the task head), none (nothing shared trains: no gate round)",
    )
    compute_efficiency: float = Field(default=0.3, gt=0, le=1)
    max_batch_tokens: int | None = Field(
        default=None, gt=0, description="run each batch as micro-batches of at most this many padded tokens "
        "(gradient accumulation: same loss and gradients, bounded activation memory); null: one pass per batch",
    )
    gradient_checkpointing: bool = Field(
        default=False, description="recompute activations in the backward pass (less memory, about 30 % more compute)",
    )


class EvaluationConfig(Section):
    """When and how the satellite's global model is evaluated."""

    every_cycles: float | None = Field(default=1.0, gt=0)
    every_s: float | None = Field(default=None, gt=0)
    target_accuracy: float = Field(default=0.5, gt=0, le=1)
    target_consecutive: int = Field(
        default=1, ge=1, description="evaluations in a row at or above the target before it counts as reached "
        "(time to target = the first of them); 2-3 keeps one noisy evaluation from deciding it",
    )
