"""pas_models: what runs on compute nodes (networks, reductions, FLOPs, data, training).

Never imports pas_orchestrator.
"""

__version__ = "0.1.0"
