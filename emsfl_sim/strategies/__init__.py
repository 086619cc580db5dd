"""Federated strategies: what clusters do connected and disconnected, and how the satellite aggregates.

Strategies register by name; the scenario's ``strategy.names`` picks them.
"""

from emsfl_sim.strategies import baseline, emsfl, emsfl_enhanced  # noqa: F401  (registration)
from emsfl_sim.strategies.base import REGISTRY, LearningWorld, Payloads, Strategy, get_strategy, register

__all__ = ["REGISTRY", "LearningWorld", "Payloads", "Strategy", "get_strategy", "register"]
