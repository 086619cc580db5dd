"""Scenario sections of the network: time, constellation, server, clusters, link."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from emsfl_sim.scenario.section import Section

# --------------------------------------------------------------------------- time
#: Longest simulated time (366 days): contact plans and event logs grow with it.
MAX_DURATION_S = 366 * 86400.0
#: Most orbital cycles (a 90-minute LEO orbit runs about 5900 a year).
MAX_ORBITAL_CYCLES = 6000


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
        default=0.0, ge=0, le=0.99, description="idealised mode: probability that a slot is idle (no cluster "
        "connected); at most 0.99 (100 idle slots per connected one)"
    )

    @field_validator("start_utc")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @field_validator("start_utc", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        # a bare number would be read as a Unix timestamp (12345678901234 is the year 2361)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"{value!r} is a number; give an ISO 8601 UTC time such as 2023-07-18T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _one_duration(self) -> TimeConfig:
        if self.duration_s is not None and self.duration_s > MAX_DURATION_S:
            raise ValueError(f"duration_s: {self.duration_s:g} s is longer than the limit of {MAX_DURATION_S:g} s "
                             "(366 days); simulate at most a year")
        if self.orbital_cycles is not None and self.orbital_cycles > MAX_ORBITAL_CYCLES:
            raise ValueError(f"orbital_cycles: {self.orbital_cycles} cycles is more than the limit of "
                             f"{MAX_ORBITAL_CYCLES} (about a year of LEO orbits); use fewer cycles or duration_s")
        rate = self.idle_slot_rate
        if self.mode == "idealised" and self.orbital_cycles is not None and rate > 0 \
                and self.orbital_cycles / (1 - rate) > MAX_ORBITAL_CYCLES:
            raise ValueError(f"idle_slot_rate: {rate:g} stretches {self.orbital_cycles} connected cycles to about "
                             f"{self.orbital_cycles / (1 - rate):,.0f} cycles, more than the limit of "
                             f"{MAX_ORBITAL_CYCLES}; use a lower idle_slot_rate or fewer cycles")
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
    walker: list[WalkerShell] = Field(default_factory=list, description="Walker shells; their satellites get "
                                      "consecutive NORAD ids from 90000 (ending at 99999 when they do not fit)")
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

    @field_validator("walker")
    @classmethod
    def _catalogue_numbers(cls, value: list[WalkerShell]) -> list[WalkerShell]:
        # Shells are numbered consecutively from 90000 (or so that the last ends at 99999)
        total = sum(shell.total_satellites for shell in value)
        if total > 99999:
            raise ValueError(f"the shells hold {total} satellites in all, more than the 99999 five-digit catalogue "
                             "numbers; use fewer satellites")
        return value


class ServerConfig(Section):
    """Which satellite is the FL server."""

    mode: Literal["single", "constellation"] = "single"
    satellite: str | int | None = Field(default=None, description="name or NORAD id (single mode); default: first")
    handover: Literal["highest_elevation", "highest_capacity", "sticky"] = Field(
        default="highest_elevation", description="constellation mode: always the highest / best-capacity satellite, "
        "or sticky (stay until it sets)")
    model_sync_delay_s: float | None = Field(
        default=None, ge=0, description="constellation mode: an aggregation at one satellite reaches the others this "
        "many seconds later (inter-satellite links); until then a cluster served by another satellite trains from "
        "that satellite's older model; null: every satellite sees one global model at once")

    @model_validator(mode="after")
    def _sync_needs_constellation(self) -> ServerConfig:
        if self.model_sync_delay_s is not None and self.mode != "constellation":
            raise ValueError("model_sync_delay_s: only constellation mode has several server satellites; remove it "
                             "or use mode: constellation")
        return self


# --------------------------------------------------------------------- clusters
#: Most devices one cluster may have: every device keeps its own adapter (LoRA) state,
#: optimizer state and data stream in memory (``LearningEngine``'s per-device state), so
#: a count beyond this cannot be held by one run; model more with fewer, larger clusters.
MAX_DEVICES_PER_CLUSTER = 10_000


class ClusterConfig(Section):
    """A geographic cluster of ground devices."""

    name: str = Field(min_length=1)
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=360)
    alt_m: float = Field(default=0.0, ge=-500, le=9000)
    devices: int = Field(default=2, gt=0, description="devices in the cluster (each holds its own adapter state "
                         f"in memory; at most {MAX_DEVICES_PER_CLUSTER})")
    domain: str | None = Field(default=None, description="home data domain (task) of the cluster")
    compute_profile: str = Field(default="a100-80gb", description="device profile in sim/compute.py")
    gpus: int | None = Field(default=None, gt=0, description="GPUs (of compute_profile) the cluster's devices share "
                             "for local rounds: a device's round holds one, devices beyond the count queue; null: "
                             "one per device (every device trains at once)")

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: int) -> int:
        if value > MAX_DEVICES_PER_CLUSTER:
            raise ValueError(f"{value} devices is more than the limit of {MAX_DEVICES_PER_CLUSTER} per cluster (each "
                             "device keeps its own adapter, optimizer and data state in memory); use fewer devices")
        return value


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
    upload_interrupt_policy: Literal["resume", "finish_snapshot", "restart"] = Field(
        default="resume", description="an upload cut by loss of signal: resume continues its unsent rest at the next "
        "pass unless the device trained since (then it restarts with the new content); finish_snapshot always "
        "continues the snapshot taken at its first byte (newer training goes in the next upload; for payloads that "
        "need many passes); restart always starts over",
    )

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
