"""emsfl_sim.link."""
