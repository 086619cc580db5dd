"""emsfl_sim.learning."""
