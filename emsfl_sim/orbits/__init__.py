"""emsfl_sim.orbits."""
