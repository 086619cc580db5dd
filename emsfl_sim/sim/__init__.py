"""emsfl_sim.sim."""
