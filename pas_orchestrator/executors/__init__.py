"""Where hypotheses run: local subprocesses or SLURM, behind one small interface (base.py).

``make_executor(profile, layout, backbone)`` is the one factory; each executor states its capacity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pas_models.layout import RunLayout
    from pas_orchestrator.config.cluster import ClusterProfile
    from pas_orchestrator.executors.base import Executor


def make_executor(profile: ClusterProfile, layout: RunLayout, backbone: str) -> Executor:
    if profile.executor == "slurm":
        from pas_orchestrator.executors.slurm import SlurmExecutor

        return SlurmExecutor(layout.submitit, profile, backbone, min_query_s=min(10.0, profile.poll_seconds))
    from pas_orchestrator.executors.local import LocalExecutor

    return LocalExecutor(layout.submitit, profile, backbone)
