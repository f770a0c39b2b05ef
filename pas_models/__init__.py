"""pas_models: what runs on compute nodes (networks, reductions, FLOPs, data, training).

Never imports pas_orchestrator.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def source_files() -> list[Path]:
    """Every ``.py`` file of this package (``__pycache__`` left out), sorted: what decides the code that runs, for
    the keys that must change when it changes (the FLOPs cache, the fork server's address)."""
    root = Path(__file__).resolve().parent
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.relative_to(root).parts)
