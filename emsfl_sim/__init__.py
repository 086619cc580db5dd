"""emsfl-sim: discrete-event simulator for federated fine-tuning of MoE models
over satellite-terrestrial networks (EMS-FL and baselines).
"""

__version__ = "0.1.0"
