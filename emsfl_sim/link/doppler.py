"""Doppler shift of the uplink carrier from the contact plan's range rate.

Sign convention: ``range_rate_km_s`` is positive when the satellite recedes
(range grows), as in the contact-plan geometry. The received frequency is
``f (1 - v_r / c)``, so the shift ``f_d = -v_r / lambda`` is positive while the
satellite approaches (rise) and negative while it recedes (set). First order in
v/c (|v_r| < 8 km/s, so the neglected terms are < 1e-9 relative); the
ground station's motion with Earth's rotation is already in the topocentric range
rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emsfl_sim.errors import InputError
from emsfl_sim.link.constants import SPEED_OF_LIGHT_M_S


def doppler_shift_hz(range_rate_km_s: np.ndarray | float, carrier_frequency_hz: float) -> np.ndarray:
    """Doppler shift ``f_d = -v_r f / c`` in Hz (positive while approaching)."""
    if not carrier_frequency_hz > 0:
        raise InputError(f"must be > 0 Hz (got {carrier_frequency_hz:g})", field="carrier_frequency_hz")
    return -np.asarray(range_rate_km_s, dtype=float) * 1e3 * carrier_frequency_hz / SPEED_OF_LIGHT_M_S


def max_doppler_hz(geometry: pd.DataFrame | np.ndarray, carrier_frequency_hz: float) -> float:
    """Largest ``|f_d|`` over a pass, Hz.

    Parameters
    ----------
    geometry:
        Pass geometry with a ``range_rate_km_s`` column, or the range rates themselves.
    carrier_frequency_hz:
        Carrier frequency, > 0 Hz.
    """
    rates = (
        geometry["range_rate_km_s"].to_numpy() if isinstance(geometry, pd.DataFrame) else np.asarray(geometry)
    )
    if rates.size == 0:
        return 0.0
    return float(np.max(np.abs(doppler_shift_hz(rates, carrier_frequency_hz))))
