"""Uplink parameters of one device (:class:`LinkParams`), their checks, and the EMS-FL reference set."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Literal

from emsfl_sim.errors import InputError
from emsfl_sim.link.noise import system_noise_temperature_k

CapacityModel = Literal["ergodic", "shannon_bound", "awgn"]
CAPACITY_MODELS: tuple[str, ...] = ("ergodic", "shannon_bound", "awgn")
#: Elevation masks a link accepts, degrees: ``0 <= mask < 90`` (90 leaves no contact).
#: The same rule as the scenario field ``link.elevation_mask_deg``, which is validated there.
MASK_RANGE_DEG = (0.0, 90.0)

_LOSS_FIELDS = (
    "zenith_atmospheric_loss_db",
    "shadowing_sigma_db",
    "rain_loss_db",
    "polarisation_loss_db",
    "scintillation_loss_db",
    "pointing_loss_db",
    "other_losses_db",
)
_Bad = Callable[[str, str], InputError]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


@dataclass(frozen=True)
class LinkParams:
    """Uplink parameters of one device (ground -> satellite).

    Units are in the field names. ``bandwidth_hz`` is the band of *one* device
    (use :func:`emsfl_sim.link.per_device_bandwidth_hz` to derive it from a shared
    band). ``rx_g_over_t_db_per_k``, when set, replaces ``rx_antenna_gain_dbi``,
    ``noise_temperature_k`` and ``noise_figure_db`` by the satellite's figure of
    merit G/T. ``large_scale_fading_db``, when set, replaces free-space path loss
    and atmospheric loss by a fixed gain (e.g. -160 dB).
    """

    tx_power_dbm: float = 23.0
    tx_antenna_gain_dbi: float = 0.0
    rx_antenna_gain_dbi: float = 40.0
    carrier_frequency_hz: float = 2e9
    bandwidth_hz: float = 5e6
    noise_temperature_k: float = 290.0
    noise_figure_db: float = 0.0
    rx_g_over_t_db_per_k: float | None = None
    zenith_atmospheric_loss_db: float = 0.5
    shadowing_sigma_db: float = 0.0
    rain_loss_db: float = 0.0
    polarisation_loss_db: float = 0.0
    scintillation_loss_db: float = 0.0
    pointing_loss_db: float = 0.0
    other_losses_db: float = 0.0
    large_scale_fading_db: float | None = None
    rician_k_db: float = 10.0
    rician_k_horizon_db: float | None = None
    elevation_mask_deg: float = 25.0
    doppler_limit_hz: float | None = None
    capacity_model: CapacityModel = "ergodic"

    # ------------------------------------------------------------------ checks
    def validate(self, field_prefix: str = "") -> LinkParams:
        """Check every field; raise :class:`InputError` naming the first bad one.

        Parameters
        ----------
        field_prefix:
            Prepended to field names in errors (e.g. ``"link."``).

        Returns
        -------
        LinkParams
            ``self``, so ``LinkParams(...).validate()`` chains.
        """

        def bad(name: str, message: str) -> InputError:
            return InputError(message, field=f"{field_prefix}{name}")

        self._check_radio(bad)
        self._check_noise(bad)
        self._check_losses(bad)
        self._check_fading(bad)
        self._check_limits(bad)
        return self

    def _check_radio(self, bad: _Bad) -> None:
        for name in ("tx_power_dbm", "tx_antenna_gain_dbi", "rx_antenna_gain_dbi"):
            if not _finite(getattr(self, name)):
                raise bad(name, f"must be a finite number in dB (got {getattr(self, name)})")
        if not _finite(self.carrier_frequency_hz) or self.carrier_frequency_hz <= 0:
            raise bad(
                "carrier_frequency_hz",
                f"must be > 0 Hz, e.g. 2e9 for S band (got {self.carrier_frequency_hz:g})",
            )
        if not _finite(self.bandwidth_hz) or self.bandwidth_hz <= 0:
            raise bad("bandwidth_hz", f"must be > 0 Hz (got {self.bandwidth_hz:g})")

    def _check_noise(self, bad: _Bad) -> None:
        if not _finite(self.noise_temperature_k) or self.noise_temperature_k < 0:
            raise bad("noise_temperature_k", f"must be >= 0 K (got {self.noise_temperature_k:g})")
        if not _finite(self.noise_figure_db) or self.noise_figure_db < 0:
            raise bad("noise_figure_db", f"must be >= 0 dB (got {self.noise_figure_db:g})")
        if (
            self.rx_g_over_t_db_per_k is None
            and system_noise_temperature_k(self.noise_temperature_k, self.noise_figure_db) <= 0
        ):
            raise bad(
                "noise_temperature_k",
                "system noise temperature is 0 K; give a temperature > 0 or a noise figure > 0 dB",
            )
        if self.rx_g_over_t_db_per_k is not None and not _finite(self.rx_g_over_t_db_per_k):
            raise bad(
                "rx_g_over_t_db_per_k",
                f"must be a finite number in dB/K or null (got {self.rx_g_over_t_db_per_k})",
            )

    def _check_losses(self, bad: _Bad) -> None:
        for name in _LOSS_FIELDS:
            value = getattr(self, name)
            if not _finite(value) or value < 0:
                raise bad(name, f"must be >= 0 dB (a loss is written as a positive number; got {value:g})")
        if self.large_scale_fading_db is not None and (
            not _finite(self.large_scale_fading_db) or self.large_scale_fading_db > 0
        ):
            raise bad(
                "large_scale_fading_db",
                f"is a gain and must be <= 0 dB, e.g. -160 for 160 dB of loss, or null (got {self.large_scale_fading_db:g})",
            )

    def _check_fading(self, bad: _Bad) -> None:
        # K = -inf dB is Rayleigh; +inf (no scattering at all) is the 'awgn' capacity model instead.
        for name in ("rician_k_db", "rician_k_horizon_db"):
            value = getattr(self, name)
            if value is None and name == "rician_k_horizon_db":
                continue
            if value is None or math.isnan(value) or value == math.inf:
                raise bad(
                    name,
                    f"must be a number in dB (-inf for Rayleigh; use capacity_model 'awgn' for no fading; got {value})",
                )

    def _check_limits(self, bad: _Bad) -> None:
        """Elevation mask, Doppler limit and capacity model."""
        low, high = MASK_RANGE_DEG
        if not _finite(self.elevation_mask_deg) or not low <= self.elevation_mask_deg < high:
            raise bad(
                "elevation_mask_deg",
                f"must be between {low:g} and {high:g} degrees, {high:g} excluded (got {self.elevation_mask_deg:g})",
            )
        if self.doppler_limit_hz is not None and (
            not _finite(self.doppler_limit_hz) or self.doppler_limit_hz <= 0
        ):
            raise bad(
                "doppler_limit_hz", f"must be > 0 Hz or null for no limit (got {self.doppler_limit_hz:g})"
            )
        if self.capacity_model not in CAPACITY_MODELS:
            raise bad(
                "capacity_model", f"must be one of {', '.join(CAPACITY_MODELS)} (got {self.capacity_model!r})"
            )

    # ------------------------------------------------------------- derived
    @property
    def total_other_losses_db(self) -> float:
        """Rain + polarisation + scintillation + pointing + other losses, dB."""
        return (
            self.rain_loss_db
            + self.polarisation_loss_db
            + self.scintillation_loss_db
            + self.pointing_loss_db
            + self.other_losses_db
        )

    @property
    def eirp_dbm(self) -> float:
        """Equivalent isotropically radiated power of the device, dBm."""
        return self.tx_power_dbm + self.tx_antenna_gain_dbi

    def replace(self, **changes: object) -> LinkParams:
        """A copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown LinkParams fields: {sorted(unknown)}")
        return LinkParams(**{**asdict(self), **changes})


#: The EMS-FL reference parameter set (23 dBm, 40 dBi, -160 dB large-scale
#: fading, 5 MHz per device) with the noise assumption that reproduces its
#: ~5 Mbit/s per device: thermal noise at 290 K plus a 10 dB receiver noise
#: figure (-164 dBm/Hz, mean SNR 0 dB). See docs/link-model.md.
REFERENCE_LINK_PARAMS = LinkParams(
    tx_power_dbm=23.0,
    tx_antenna_gain_dbi=0.0,
    rx_antenna_gain_dbi=40.0,
    carrier_frequency_hz=2e9,
    bandwidth_hz=5e6,
    noise_temperature_k=290.0,
    noise_figure_db=10.0,
    large_scale_fading_db=-160.0,
    rician_k_db=10.0,
)
