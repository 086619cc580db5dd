"""emsfl_sim.strategies."""
