"""emsfl-sim: discrete-event simulator of federated MoE fine-tuning over satellite links.

EMS-FL, enhanced EMS-FL and the synchronous baseline over satellite-terrestrial networks.
"""

__version__ = "0.1.0"
