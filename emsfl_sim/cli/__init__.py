"""emsfl_sim.cli."""
