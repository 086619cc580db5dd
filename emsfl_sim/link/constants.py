"""Physical constants of the link layer (shared by the budget, noise and Doppler modules)."""

from __future__ import annotations

#: Mean Earth radius (spherical Earth), km.
EARTH_RADIUS_KM = 6371.0
#: Boltzmann constant (exact, SI 2019), J/K.
BOLTZMANN_J_PER_K = 1.380649e-23
#: Speed of light in vacuum (exact), m/s.
SPEED_OF_LIGHT_M_S = 299_792_458.0
#: IEEE reference temperature for noise figures, K.
REFERENCE_TEMPERATURE_K = 290.0
