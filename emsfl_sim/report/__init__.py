"""emsfl_sim.report."""
