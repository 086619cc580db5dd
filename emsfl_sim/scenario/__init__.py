"""emsfl_sim.scenario."""
