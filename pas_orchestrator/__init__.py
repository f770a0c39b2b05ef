"""pas_orchestrator: the controller side of pas (configs, ledger, SLURM submission, CLI)."""

__version__ = "0.1.0"
