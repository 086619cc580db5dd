"""The scenario schema: one small pydantic model per section.

Every section forbids unknown fields (so a typo is an error with a suggestion),
carries units in its field names and validates physical ranges. This module has
no heavy imports so that ``emsfl-sim validate`` is fast.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator


class Section(BaseModel):
    """Base for all scenario sections: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- time
class TimeConfig(Section):
    """When the scenario runs and how its clock is driven."""

    mode: Literal["orbital", "idealised"] = Field(
        default="orbital", description="orbital: contact plan from TLEs; idealised: round-robin slots"
    )
    start_utc: datetime = Field(
        default=datetime(2023, 7, 18, tzinfo=timezone.utc), description="scenario start (UTC, ISO 8601)"
    )
    duration_s: float | None = Field(default=None, gt=0, description="simulated duration in seconds")
    orbital_cycles: int | None = Field(default=None, gt=0, description="alternative to duration_s: number of orbital cycles")
    contact_step_s: float = Field(default=60.0, gt=0, le=600, description="coarse time step of the contact search")
    geometry_step_s: float = Field(default=10.0, gt=0, le=120, description="sampling step of pass geometry for link capacity")
    slot_duration_s: float = Field(default=600.0, gt=0, description="idealised mode: length of one connected slot")
    idle_slot_rate: float = Field(
        default=0.0, ge=0, lt=1, description="idealised mode: probability that a slot is idle (no cluster connected)"
    )

    @field_validator("start_utc")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @model_validator(mode="after")
    def _one_duration(self) -> TimeConfig:
        if self.duration_s is not None and self.orbital_cycles is not None:
            # Typical after `extends`: the parent's duration would silently win.
            raise ValueError("orbital_cycles: give either duration_s or orbital_cycles; set the other to null")
        if self.duration_s is None and self.orbital_cycles is None:
            self.duration_s = 86400.0
        return self


# ---------------------------------------------------------------- constellation
class WalkerShell(Section):
    """A Walker-delta shell i:T/P/F generated as TLEs."""

    altitude_km: float = Field(gt=100, lt=40000)
    inclination_deg: float = Field(ge=0, le=180)
    planes: int = Field(gt=0)
    sats_per_plane: int = Field(gt=0)
    phasing: int = Field(default=0, ge=0, description="Walker phasing factor F, 0 <= F < planes")
    raan_spread_deg: float = Field(default=360.0, description="360 for delta (Walker), 180 for star patterns")
    epoch_utc: datetime | None = Field(default=None, description="TLE epoch; defaults to time.start_utc")
    name_prefix: str = "WALKER"

    @field_validator("raan_spread_deg")
    @classmethod
    def _spread(cls, value: float) -> float:
        if value not in (180.0, 360.0):
            raise ValueError("must be 360 (delta) or 180 (star)")
        return value

    @model_validator(mode="after")
    def _phasing(self) -> WalkerShell:
        if self.phasing >= self.planes:
            raise ValueError(f"phasing: must be < planes ({self.planes}) (got {self.phasing})")
        return self

    @property
    def total_satellites(self) -> int:
        """T in the i:T/P/F notation."""
        return self.planes * self.sats_per_plane


class ConstellationConfig(Section):
    """Where the satellites come from: TLE files and/or Walker shells, with filters."""

    tle_files: list[str] = Field(default_factory=list, description="TLE files, relative to the scenario file")
    walker: list[WalkerShell] = Field(default_factory=list)
    satellite_names: list[str] = Field(default_factory=list, description="fnmatch patterns to keep")
    norad_ids: list[int] = Field(default_factory=list, description="NORAD ids to keep")
    max_satellites: int | None = Field(default=None, gt=0, description="keep the first N satellites after filtering")
    skip_bad_tle: bool = Field(default=False, description="skip malformed TLE entries with a warning count")

    @field_validator("walker", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("tle_files", mode="before")
    @classmethod
    def _str_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ServerConfig(Section):
    """Which satellite is the FL server."""

    mode: Literal["single", "constellation"] = "single"
    satellite: str | int | None = Field(default=None, description="name or NORAD id (single mode); default: first")
    handover: Literal["highest_elevation", "highest_capacity", "sticky"] = Field(
        default="highest_elevation", description="constellation mode: always the highest / best-capacity satellite, "
        "or sticky (stay until it sets)")


# --------------------------------------------------------------------- clusters
class ClusterConfig(Section):
    """A geographic cluster of ground devices."""

    name: str = Field(min_length=1)
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=360)
    alt_m: float = Field(default=0.0, ge=-500, le=9000)
    devices: int = Field(default=2, gt=0)
    domain: str | None = Field(default=None, description="home data domain (task) of the cluster")
    compute_profile: str = Field(default="a100-80gb", description="device profile in sim/compute.py")


# ------------------------------------------------------------------------- link
class LinkConfig(Section):
    """Satellite-ground uplink budget (see docs/link-model.md)."""

    tx_power_dbm: float = Field(default=23.0, ge=-30, le=60)
    tx_antenna_gain_dbi: float = Field(default=0.0, ge=-20, le=60)
    rx_antenna_gain_dbi: float = Field(default=40.0, ge=-20, le=70)
    carrier_frequency_hz: float = Field(default=2e9, gt=0)
    bandwidth_per_device_hz: float = Field(default=5e6, gt=0)
    total_bandwidth_hz: float | None = Field(default=None, gt=0, description="cluster uplink band shared by its devices")
    sharing: Literal["subchannel", "equal_share"] = "subchannel"
    noise_temperature_k: float = Field(default=290.0, gt=0)
    noise_figure_db: float = Field(default=0.0, ge=0, le=30)
    elevation_mask_deg: float = Field(
        default=25.0, description="minimum elevation of a contact; 0 <= mask < 90 degrees (90 leaves no contact)"
    )
    zenith_atmospheric_loss_db: float = Field(default=0.5, ge=0, le=50)
    shadowing_sigma_db: float = Field(default=0.0, ge=0, le=30)
    rain_loss_db: float = Field(default=0.0, ge=0, le=100)
    polarisation_loss_db: float = Field(default=0.0, ge=0, le=100)
    scintillation_loss_db: float = Field(default=0.0, ge=0, le=100)
    pointing_loss_db: float = Field(default=0.0, ge=0, le=100)
    other_losses_db: float = Field(default=0.0, ge=0, le=100)
    rx_g_over_t_db_per_k: float | None = Field(
        default=None, ge=-60, le=60, description="satellite G/T; replaces rx gain and noise temperature when set"
    )
    large_scale_fading_db: float | None = Field(
        default=None, le=0, description="fixed large-scale gain (e.g. -160) replacing path and atmospheric loss"
    )
    rician_k_db: float = Field(default=10.0, ge=-30, le=60)
    rician_k_horizon_db: float | None = Field(default=None, ge=-30, le=60)
    doppler_limit_hz: float | None = Field(default=None, gt=0)
    capacity_model: Literal["ergodic", "shannon_bound", "awgn"] = "ergodic"
    downlink_rate_bps: float | None = Field(
        default=None, gt=0, description="broadcast downlink rate; null neglects the downlink as the reference does"
    )
    upload_interrupt_policy: Literal["resume", "restart"] = "resume"

    @field_validator("elevation_mask_deg")
    @classmethod
    def _mask_leaves_contact(cls, value: float) -> float:
        # The one rule for the mask; orbits/ and link/ assert the same range as a precondition
        # (tests/test_link_params.py keeps the three in step).
        if value == 90.0:
            raise ValueError("an elevation mask of 90 degrees leaves no contact; use 0 <= mask < 90")
        if not 0.0 <= value < 90.0:
            raise ValueError(f"must be between 0 and 90 degrees (got {value:g})")
        return value


# ------------------------------------------------------------------------ model
#: Experts and top-k of the built-in presets (mirrors learning.models.PRESETS; a test keeps them equal).
PRESET_EXPERTS: dict[str, int] = {"tiny": 4, "small": 8}

class LoraConfig(Section):
    """LoRA on the expert weights."""

    rank: int = Field(default=4, gt=0, le=1024)
    alpha: float = Field(default=8.0, gt=0)
    targets: list[str] = Field(default_factory=lambda: ["gate_up_proj", "down_proj"])


class ModelConfig(Section):
    """The MoE model: a tiny preset, a transformers config, a checkpoint, or built from dense models."""

    architecture: str = Field(default="mixtral", description="model adapter name")
    preset: Literal["tiny", "small"] | None = "tiny"
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
    samples_per_device: int = Field(default=64, gt=0)
    trial_samples_per_cluster: int = Field(default=32, gt=0)
    gate_samples: int = Field(default=64, gt=0)
    test_samples_per_domain: int = Field(default=64, gt=0)
    max_len: int = Field(default=96, gt=8)
    jsonl_files: list[str] | dict[str, str] = Field(
        default_factory=dict,
        description="the user's MCQA JSONL files (relative to the scenario file; rows name their domain), "
        "or domain -> file; replace the synthetic data (README: Bring your own data)",
    )

    @field_validator("jsonl_files", mode="before")
    @classmethod
    def _one_or_many_files(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _files_are_mcqa(self) -> DataConfig:
        if self.jsonl_files and self.task != "mcqa":
            raise ValueError(
                f"task: data files (jsonl_files) hold multiple-choice QA; set task: mcqa (got {self.task!r})"
            )
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

    @field_validator("names", mode="before")
    @classmethod
    def _str_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

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
    compute_efficiency: float = Field(default=0.3, gt=0, le=1)


class EvaluationConfig(Section):
    """When and how the satellite's global model is evaluated."""

    every_cycles: float | None = Field(default=1.0, gt=0)
    every_s: float | None = Field(default=None, gt=0)
    target_accuracy: float = Field(default=0.5, gt=0, le=1)
    target_consecutive: int = Field(
        default=1, ge=1, description="evaluations in a row at or above the target before it counts as reached "
        "(time to target = the first of them); 2-3 keeps one noisy evaluation from deciding it",
    )


#: Table file formats of a run directory.
TableFormat = Literal["parquet", "csv"]


class OutputConfig(Section):
    """Where results go."""

    directory: str = "runs/{name}"
    formats: list[TableFormat] = Field(default_factory=lambda: list[TableFormat](["parquet", "csv"]))
    plots: bool = True


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

    #: The file this scenario was loaded from (set by the loader).
    _source_file: str | None = PrivateAttr(None)

    @property
    def source_file(self) -> str | None:
        """Path of the scenario file, if loaded from one."""
        return self._source_file

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("is empty; give a list of seeds such as [0, 1, 2] or null to run just `seed`")
        return check_seed_list(value)
