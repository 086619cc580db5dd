"""Thermal receiver noise: system noise temperature (Friis) and noise power.

``N = k * T_sys * B`` with ``T_sys = T_ant + (F - 1) * 290 K``, i.e. ``-174 dBm/Hz``
at 290 K and a 0 dB noise figure. White thermal noise only (no interference).
"""

from __future__ import annotations

import numpy as np

from emsfl_sim.errors import InputError
from emsfl_sim.link.constants import BOLTZMANN_J_PER_K, REFERENCE_TEMPERATURE_K


def system_noise_temperature_k(
    noise_temperature_k: float | np.ndarray, noise_figure_db: float | np.ndarray = 0.0
) -> np.ndarray:
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
