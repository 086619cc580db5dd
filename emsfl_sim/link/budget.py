"""Satellite-ground uplink budget: geometry, losses, noise and mean SNR.

All functions are vectorised over numpy arrays and pure. Conventions (see
``docs/link-model.md``):

- Losses are positive numbers in dB that are subtracted; gains are added.
- ``large_scale_fading_db`` is a *gain* (e.g. -160) that replaces free-space
  path loss plus atmospheric loss when set, as the EMS-FL reference parameters do.
- Noise is thermal (:mod:`emsfl_sim.link.noise`): ``N = k * T_sys * B`` with
  ``T_sys = T_ant + (F - 1) * 290 K`` (Friis), i.e. ``-174 dBm/Hz`` at 290 K and a
  0 dB noise figure.
- Shadowing enters as a gain ``shadowing_db`` (a draw of N(0, sigma^2) dB;
  negative values fade the link).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from emsfl_sim.errors import InputError
from emsfl_sim.link.constants import BOLTZMANN_J_PER_K, EARTH_RADIUS_KM, SPEED_OF_LIGHT_M_S
from emsfl_sim.link.doppler import doppler_shift_hz
from emsfl_sim.link.fading import ergodic_capacity_bps, shannon_bound_bps
from emsfl_sim.link.noise import noise_power_dbm, system_noise_temperature_k
from emsfl_sim.link.params import LinkParams

#: Elevation floor for the 1/sin(elevation) atmospheric law (it diverges at the horizon).
MIN_ATMOSPHERIC_ELEVATION_DEG = 1.0

_Row = tuple[str, float, str]


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


def budget_terms(
    params: LinkParams,
    elevation_deg: np.ndarray | float,
    range_km: np.ndarray | float | None,
    shadowing_db: np.ndarray | float = 0.0,
) -> dict[str, np.ndarray]:
    """Every line of the budget as arrays (one source for SNR and the table).

    Keys: ``fspl_db`` and ``atmospheric_loss_db`` (without fixed large-scale fading),
    ``large_scale_gain_db``, ``rx_power_dbm`` and ``noise_power_dbm`` (without G/T),
    ``c_n0_dbhz`` and ``snr_db``.
    """
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
    return budget_terms(params, elevation_deg, range_km, shadowing_db)["snr_db"]


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
    params.validate()
    check_elevation(elevation_deg, params)
    if range_km is None and altitude_km is not None:
        range_km = float(slant_range_km(elevation_deg, altitude_km))
    terms = {k: float(v) for k, v in budget_terms(params, elevation_deg, range_km, shadowing_db).items()}
    rows = _transmit_rows(params, elevation_deg)
    if range_km is not None:
        rows.append(("Slant range", float(range_km), "km"))
    rows += _loss_rows(params, terms, shadowing_db)
    rows += _receive_rows(params, terms)
    rows += _capacity_rows(params, terms, elevation_deg, pass_duration_s)
    if range_rate_km_s is not None:
        rows.append(
            (
                "Doppler shift",
                float(doppler_shift_hz(range_rate_km_s, params.carrier_frequency_hz)) / 1e3,
                "kHz",
            )
        )
    return pd.DataFrame(rows, columns=["item", "value", "unit"])


def _transmit_rows(params: LinkParams, elevation_deg: float) -> list[_Row]:
    return [
        ("Elevation", float(elevation_deg), "deg"),
        ("Carrier frequency", params.carrier_frequency_hz / 1e9, "GHz"),
        ("Bandwidth per device", params.bandwidth_hz / 1e6, "MHz"),
        ("Tx power", params.tx_power_dbm, "dBm"),
        ("Tx antenna gain", params.tx_antenna_gain_dbi, "dBi"),
        ("EIRP", params.eirp_dbm, "dBm"),
    ]


def _loss_rows(params: LinkParams, terms: dict[str, float], shadowing_db: float) -> list[_Row]:
    """Path or fixed large-scale loss, the other losses that are set (other losses always), shadowing."""
    rows: list[_Row] = []
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
    return rows


def _receive_rows(params: LinkParams, terms: dict[str, float]) -> list[_Row]:
    """Receiver gain, power and noise, or the satellite's G/T when given."""
    if params.rx_g_over_t_db_per_k is not None:
        return [("Rx G/T", params.rx_g_over_t_db_per_k, "dB/K")]
    t_sys = float(system_noise_temperature_k(params.noise_temperature_k, params.noise_figure_db))
    return [
        ("Rx antenna gain", params.rx_antenna_gain_dbi, "dBi"),
        ("Received power", terms["rx_power_dbm"], "dBm"),
        ("Noise temperature (antenna)", params.noise_temperature_k, "K"),
        ("Noise figure", params.noise_figure_db, "dB"),
        ("System noise temperature", t_sys, "K"),
        ("Noise PSD", terms["noise_power_dbm"] - 10 * math.log10(params.bandwidth_hz), "dBm/Hz"),
        ("Noise power", terms["noise_power_dbm"], "dBm"),
    ]


def _capacity_rows(
    params: LinkParams, terms: dict[str, float], elevation_deg: float, pass_duration_s: float
) -> list[_Row]:
    """C/N0, SNR, K-factor, both capacities, the one used, and the volume of a pass at this elevation."""
    snr_lin = 10.0 ** (terms["snr_db"] / 10.0)
    k_db = float(rician_k_db(params, elevation_deg))
    awgn = float(shannon_bound_bps(snr_lin, params.bandwidth_hz))
    ergodic = float(ergodic_capacity_bps(snr_lin, 10.0 ** (k_db / 10.0), params.bandwidth_hz))
    chosen = ergodic if params.capacity_model == "ergodic" else awgn
    return [
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
