"""emsfl_sim.link: satellite-ground uplink budget, fading, capacity through a pass.

Public API (see ``docs/link-model.md``)::

    from emsfl_sim.link import LinkParams, pass_capacity, link_budget_table
    cap = pass_capacity(geometry_df, LinkParams(...).validate(), rng)
    t_done, carried = cap.completion_time(t0_s, payload_bytes)
"""

from emsfl_sim.link.budget import (
    atmospheric_loss_db,
    check_elevation,
    free_space_path_loss_db,
    link_budget_table,
    mean_snr_db,
    rician_k_db,
    slant_range_km,
)
from emsfl_sim.link.capacity import (
    PassCapacity,
    capacity_series,
    draw_shadowing_db,
    pass_capacity,
    pass_volume_stats,
    per_device_bandwidth_hz,
)
from emsfl_sim.link.constants import BOLTZMANN_J_PER_K, EARTH_RADIUS_KM, SPEED_OF_LIGHT_M_S
from emsfl_sim.link.doppler import doppler_shift_hz, max_doppler_hz
from emsfl_sim.link.fading import (
    awgn_capacity_bps,
    ergodic_capacity_bps,
    ergodic_spectral_efficiency,
    rayleigh_ergodic_capacity_bps,
    sample_rician_gain,
    shannon_bound_bps,
)
from emsfl_sim.link.noise import noise_power_dbm, system_noise_temperature_k
from emsfl_sim.link.params import CAPACITY_MODELS, REFERENCE_LINK_PARAMS, LinkParams

__all__ = [
    "BOLTZMANN_J_PER_K",
    "CAPACITY_MODELS",
    "EARTH_RADIUS_KM",
    "REFERENCE_LINK_PARAMS",
    "SPEED_OF_LIGHT_M_S",
    "LinkParams",
    "PassCapacity",
    "atmospheric_loss_db",
    "awgn_capacity_bps",
    "capacity_series",
    "check_elevation",
    "doppler_shift_hz",
    "draw_shadowing_db",
    "ergodic_capacity_bps",
    "ergodic_spectral_efficiency",
    "free_space_path_loss_db",
    "link_budget_table",
    "max_doppler_hz",
    "mean_snr_db",
    "noise_power_dbm",
    "pass_capacity",
    "pass_volume_stats",
    "per_device_bandwidth_hz",
    "rayleigh_ergodic_capacity_bps",
    "rician_k_db",
    "sample_rician_gain",
    "shannon_bound_bps",
    "slant_range_km",
    "system_noise_temperature_k",
]
