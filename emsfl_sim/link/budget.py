"""Satellite-ground uplink budget: geometry, losses, noise and mean SNR.

All functions are vectorised over numpy arrays and pure. Conventions (see
``docs/link-model.md``):

- Losses are positive numbers in dB that are subtracted; gains are added.
- ``large_scale_fading_db`` is a *gain* (e.g. -160) that replaces free-space
  path loss plus atmospheric loss when set, as the EMS-FL reference parameters do.
- Noise is thermal: ``N = k * T_sys * B`` with ``T_sys = T_ant + (F - 1) * 290 K``
  (Friis), i.e. ``-174 dBm/Hz`` at 290 K and a 0 dB noise figure.
- Shadowing enters as a gain ``shadowing_db`` (a draw of N(0, sigma^2) dB;
  negative values fade the link).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal

import numpy as np
import pandas as pd

from emsfl_sim.errors import InputError

#: Mean Earth radius (spherical Earth), km.
EARTH_RADIUS_KM = 6371.0
#: Boltzmann constant (exact, SI 2019), J/K.
BOLTZMANN_J_PER_K = 1.380649e-23
#: Speed of light in vacuum (exact), m/s.
SPEED_OF_LIGHT_M_S = 299_792_458.0
#: IEEE reference temperature for noise figures, K.
REFERENCE_TEMPERATURE_K = 290.0
#: Elevation floor for the 1/sin(elevation) atmospheric law (it diverges at the horizon).
MIN_ATMOSPHERIC_ELEVATION_DEG = 1.0

CapacityModel = Literal["ergodic", "shannon_bound", "awgn"]
CAPACITY_MODELS: tuple[str, ...] = ("ergodic", "shannon_bound", "awgn")


def _finite(value: float) -> bool:
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
        for name in (
            "zenith_atmospheric_loss_db",
            "shadowing_sigma_db",
            "rain_loss_db",
            "polarisation_loss_db",
            "scintillation_loss_db",
            "pointing_loss_db",
            "other_losses_db",
        ):
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
        if not _finite(self.elevation_mask_deg) or not 0 <= self.elevation_mask_deg < 90:
            raise bad(
                "elevation_mask_deg",
                f"must be between 0 and 90 degrees, 90 excluded (got {self.elevation_mask_deg:g})",
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
        return self

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


# ---------------------------------------------------------------- geometry
def _check_elevation_range(elevation_deg: np.ndarray, field: str = "elevation_deg") -> None:
    if np.any(~np.isfinite(elevation_deg)) or np.any(elevation_deg < 0) or np.any(elevation_deg > 90):
        bad = elevation_deg[~((elevation_deg >= 0) & (elevation_deg <= 90))].ravel()[0]
        raise InputError(f"must be between 0 and 90 degrees (got {bad:g})", field=field)


def slant_range_km(elevation_deg: np.ndarray | float, altitude_km: np.ndarray | float) -> np.ndarray:
    """Ground-to-satellite distance for a spherical Earth (R = 6371 km).

    Exact law of cosines in the triangle Earth centre / station / satellite:
    ``d = sqrt((R + h)^2 - (R cos e)^2) - R sin e``.

    Parameters
    ----------
    elevation_deg:
        Elevation of the satellite above the local horizon, 0 to 90 degrees.
    altitude_km:
        Satellite altitude above the spherical Earth, > 0 km.
    """
    elev = np.asarray(elevation_deg, dtype=float)
    alt = np.asarray(altitude_km, dtype=float)
    _check_elevation_range(np.atleast_1d(elev))
    if np.any(~np.isfinite(alt)) or np.any(alt <= 0):
        raise InputError(f"must be > 0 km (got {np.atleast_1d(alt).min():g})", field="altitude_km")
    e = np.radians(elev)
    r = EARTH_RADIUS_KM
    return np.sqrt((r + alt) ** 2 - (r * np.cos(e)) ** 2) - r * np.sin(e)


def free_space_path_loss_db(range_km: np.ndarray | float, frequency_hz: np.ndarray | float) -> np.ndarray:
    """Free-space path loss ``20 log10(4 pi d f / c)`` in dB."""
    d_m = np.asarray(range_km, dtype=float) * 1e3
    f = np.asarray(frequency_hz, dtype=float)
    if np.any(~(f > 0)):
        raise InputError(f"must be > 0 Hz (got {np.atleast_1d(f).min():g})", field="carrier_frequency_hz")
    if np.any(~(d_m > 0)):
        raise InputError(f"must be > 0 km (got {np.atleast_1d(d_m).min() / 1e3:g})", field="range_km")
    return 20.0 * np.log10(4.0 * np.pi * d_m * f / SPEED_OF_LIGHT_M_S)


def atmospheric_loss_db(elevation_deg: np.ndarray | float, zenith_loss_db: float) -> np.ndarray:
    """Atmospheric loss ``zenith / sin(elevation)`` in dB (flat-layer model).

    The elevation is floored at :data:`MIN_ATMOSPHERIC_ELEVATION_DEG` so the loss
    stays finite at the horizon (the flat-layer law is poor below ~5 degrees anyway).
    """
    elev = np.maximum(np.asarray(elevation_deg, dtype=float), MIN_ATMOSPHERIC_ELEVATION_DEG)
    return zenith_loss_db / np.sin(np.radians(elev))


def system_noise_temperature_k(
    noise_temperature_k: float | np.ndarray, noise_figure_db: float | np.ndarray = 0.0
):
    """``T_sys = T_ant + (F - 1) * 290 K`` (Friis; F the linear noise factor)."""
    return (
        np.asarray(noise_temperature_k, dtype=float)
        + (10.0 ** (np.asarray(noise_figure_db, dtype=float) / 10.0) - 1.0) * REFERENCE_TEMPERATURE_K
    )


def noise_power_dbm(
    bandwidth_hz: np.ndarray | float,
    noise_temperature_k: np.ndarray | float = REFERENCE_TEMPERATURE_K,
    noise_figure_db: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Thermal noise power ``k T_sys B`` in dBm.

    Assumes white thermal noise only (no interference): at 290 K and 0 dB noise
    figure this is the textbook -174 dBm/Hz + 10 log10(B).
    """
    b = np.asarray(bandwidth_hz, dtype=float)
    if np.any(~(b > 0)):
        raise InputError(f"must be > 0 Hz (got {np.atleast_1d(b).min():g})", field="bandwidth_hz")
    t_sys = system_noise_temperature_k(noise_temperature_k, noise_figure_db)
    return 10.0 * np.log10(BOLTZMANN_J_PER_K * t_sys * b * 1e3)


# ------------------------------------------------------------------ budget
def rician_k_db(params: LinkParams, elevation_deg: np.ndarray | float) -> np.ndarray:
    """Rician K-factor in dB at ``elevation_deg``.

    Constant ``params.rician_k_db`` unless ``rician_k_horizon_db`` is set; then K
    (in dB) grows linearly from the horizon value at the elevation mask to
    ``rician_k_db`` at zenith (clipped outside that range).
    """
    elev = np.asarray(elevation_deg, dtype=float)
    if params.rician_k_horizon_db is None:
        return np.full(elev.shape, float(params.rician_k_db))
    mask = params.elevation_mask_deg
    frac = np.clip((elev - mask) / (90.0 - mask), 0.0, 1.0)
    return params.rician_k_horizon_db + (params.rician_k_db - params.rician_k_horizon_db) * frac


def _budget_terms(
    params: LinkParams,
    elevation_deg: np.ndarray | float,
    range_km: np.ndarray | float | None,
    shadowing_db: np.ndarray | float = 0.0,
) -> dict[str, np.ndarray]:
    """Every line of the budget as arrays (one source for SNR and the table)."""
    elev = np.asarray(elevation_deg, dtype=float)
    terms: dict[str, np.ndarray] = {}
    if params.large_scale_fading_db is None:
        if range_km is None:
            raise InputError("is needed when large_scale_fading_db is not set", field="range_km")
        terms["fspl_db"] = free_space_path_loss_db(range_km, params.carrier_frequency_hz)
        terms["atmospheric_loss_db"] = atmospheric_loss_db(elev, params.zenith_atmospheric_loss_db)
        large_scale_gain = -(terms["fspl_db"] + terms["atmospheric_loss_db"])
    else:
        large_scale_gain = np.full(elev.shape, float(params.large_scale_fading_db))
    terms["large_scale_gain_db"] = large_scale_gain
    shadow = np.asarray(shadowing_db, dtype=float)
    path_gain = large_scale_gain - params.total_other_losses_db + shadow
    if params.rx_g_over_t_db_per_k is None:
        n0_dbm_hz = noise_power_dbm(1.0, params.noise_temperature_k, params.noise_figure_db)
        rx_power = params.eirp_dbm + path_gain + params.rx_antenna_gain_dbi
        terms["rx_power_dbm"] = rx_power
        terms["noise_power_dbm"] = np.asarray(n0_dbm_hz + 10.0 * np.log10(params.bandwidth_hz))
        c_n0 = rx_power - n0_dbm_hz
    else:
        # C/N0 = EIRP - L + G/T - 10 log10(k), with k in mW/(Hz K) because EIRP is in dBm.
        k_dbm = 10.0 * math.log10(BOLTZMANN_J_PER_K * 1e3)
        c_n0 = params.eirp_dbm + path_gain + params.rx_g_over_t_db_per_k - k_dbm
    terms["c_n0_dbhz"] = np.asarray(c_n0)
    terms["snr_db"] = np.asarray(c_n0 - 10.0 * np.log10(params.bandwidth_hz))
    return terms


def mean_snr_db(
    params: LinkParams,
    elevation_deg: np.ndarray | float,
    range_km: np.ndarray | float | None = None,
    shadowing_db: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Mean received SNR (over small-scale fading, E|h|^2 = 1) in dB.

    ``range_km`` may be omitted when ``params.large_scale_fading_db`` is set.
    ``shadowing_db`` is a gain (negative = fade).
    """
    return _budget_terms(params, elevation_deg, range_km, shadowing_db)["snr_db"]


def check_elevation(
    elevation_deg: float | np.ndarray, params: LinkParams, field: str = "elevation_deg"
) -> None:
    """Raise :class:`InputError` unless every elevation lies in [mask, 90] degrees.

    Used where a user asks for a budget at an elevation (CLI ``--elevation``).
    """
    elev = np.atleast_1d(np.asarray(elevation_deg, dtype=float))
    ok = np.isfinite(elev) & (elev >= params.elevation_mask_deg) & (elev <= 90.0)
    if not np.all(ok):
        bad = elev[~ok][0]
        raise InputError(
            f"must be between the elevation mask {params.elevation_mask_deg:g} deg and 90 deg "
            f"(got {bad:g}); below the mask there is no link",
            field=field,
        )


def link_budget_table(
    params: LinkParams,
    elevation_deg: float,
    altitude_km: float | None = None,
    range_km: float | None = None,
    *,
    shadowing_db: float = 0.0,
    range_rate_km_s: float | None = None,
    pass_duration_s: float = 600.0,
) -> pd.DataFrame:
    """A link budget at one elevation, line by line.

    Parameters
    ----------
    params:
        Link parameters (validated here).
    elevation_deg:
        Elevation in [mask, 90] degrees (else :class:`InputError`).
    altitude_km, range_km:
        Satellite altitude (slant range is derived) or the slant range itself; one is
        needed unless ``params.large_scale_fading_db`` is set.
    shadowing_db:
        Shadowing gain to apply (0 = median link).
    range_rate_km_s:
        Optional range rate for a Doppler line (positive = receding).
    pass_duration_s:
        Duration used for the "bits per pass at this elevation" line.

    Returns
    -------
    pandas.DataFrame
        Columns ``item``, ``value``, ``unit``; losses are positive numbers.
    """
    from emsfl_sim.link.doppler import doppler_shift_hz  # local: avoid an import cycle
    from emsfl_sim.link.fading import ergodic_capacity_bps, shannon_bound_bps

    params.validate()
    check_elevation(elevation_deg, params)
    if range_km is None and altitude_km is not None:
        range_km = float(slant_range_km(elevation_deg, altitude_km))
    terms = {k: float(v) for k, v in _budget_terms(params, elevation_deg, range_km, shadowing_db).items()}
    rows: list[tuple[str, float, str]] = [
        ("Elevation", float(elevation_deg), "deg"),
        ("Carrier frequency", params.carrier_frequency_hz / 1e9, "GHz"),
        ("Bandwidth per device", params.bandwidth_hz / 1e6, "MHz"),
        ("Tx power", params.tx_power_dbm, "dBm"),
        ("Tx antenna gain", params.tx_antenna_gain_dbi, "dBi"),
        ("EIRP", params.eirp_dbm, "dBm"),
    ]
    if range_km is not None:
        rows.append(("Slant range", float(range_km), "km"))
    if params.large_scale_fading_db is None:
        rows += [
            ("Free-space path loss", terms["fspl_db"], "dB"),
            ("Atmospheric loss", terms["atmospheric_loss_db"], "dB"),
        ]
    else:
        rows.append(("Large-scale fading (fixed gain)", float(params.large_scale_fading_db), "dB"))
    for label, name in (
        ("Rain loss", "rain_loss_db"),
        ("Polarisation loss", "polarisation_loss_db"),
        ("Scintillation loss", "scintillation_loss_db"),
        ("Pointing loss", "pointing_loss_db"),
        ("Other losses", "other_losses_db"),
    ):
        if getattr(params, name) or name == "other_losses_db":
            rows.append((label, getattr(params, name), "dB"))
    rows.append(("Shadowing (gain)", float(shadowing_db), "dB"))
    rows.append(("Shadowing sigma", params.shadowing_sigma_db, "dB"))
    if params.rx_g_over_t_db_per_k is None:
        t_sys = float(system_noise_temperature_k(params.noise_temperature_k, params.noise_figure_db))
        rows += [
            ("Rx antenna gain", params.rx_antenna_gain_dbi, "dBi"),
            ("Received power", terms["rx_power_dbm"], "dBm"),
            ("Noise temperature (antenna)", params.noise_temperature_k, "K"),
            ("Noise figure", params.noise_figure_db, "dB"),
            ("System noise temperature", t_sys, "K"),
            ("Noise PSD", terms["noise_power_dbm"] - 10 * math.log10(params.bandwidth_hz), "dBm/Hz"),
            ("Noise power", terms["noise_power_dbm"], "dBm"),
        ]
    else:
        rows.append(("Rx G/T", params.rx_g_over_t_db_per_k, "dB/K"))
    snr_lin = 10.0 ** (terms["snr_db"] / 10.0)
    k_db = float(rician_k_db(params, elevation_deg))
    awgn = float(shannon_bound_bps(snr_lin, params.bandwidth_hz))
    ergodic = float(ergodic_capacity_bps(snr_lin, 10.0 ** (k_db / 10.0), params.bandwidth_hz))
    chosen = ergodic if params.capacity_model == "ergodic" else awgn
    rows += [
        ("C/N0", terms["c_n0_dbhz"], "dB-Hz"),
        ("Mean SNR", terms["snr_db"], "dB"),
        ("Rician K-factor", k_db, "dB"),
        ("AWGN / Shannon-bound capacity", awgn / 1e6, "Mbit/s"),
        ("Ergodic capacity (Rician)", ergodic / 1e6, "Mbit/s"),
        (f"Capacity used ({params.capacity_model})", chosen / 1e6, "Mbit/s"),
        (
            f"Volume per {pass_duration_s / 60:g}-min pass at this elevation",
            chosen * pass_duration_s / 8e6,
            "MB",
        ),
    ]
    if range_rate_km_s is not None:
        rows.append(
            (
                "Doppler shift",
                float(doppler_shift_hz(range_rate_km_s, params.carrier_frequency_hz)) / 1e3,
                "kHz",
            )
        )
    return pd.DataFrame(rows, columns=["item", "value", "unit"])
