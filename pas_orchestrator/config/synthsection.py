"""A search definition's ``synthetic:`` section: the settings of ``pas data synth`` and where they go."""

from __future__ import annotations

from dataclasses import dataclass, fields

from pas_models.data.synth import SynthConfig
from pas_models.data.synth import problem as synth_problem
from pas_orchestrator.config.yamlfile import require


@dataclass(frozen=True)
class SynthSection(SynthConfig):
    """A synthetic dataset (``pas data synth`` settings) generated into ``root`` on first use."""

    root: str = "data/synth"

    def synth_config(self) -> SynthConfig:
        return SynthConfig(**{f.name: getattr(self, f.name) for f in fields(SynthConfig)})


def check_synthetic(section: SynthSection, where: str) -> None:
    """ConfigError naming the key (``synthetic.classes``, ``synthetic.probe``, ...) and the fix."""
    bad = synth_problem(section.synth_config())
    require(bad is None, f"{where} synthetic.{bad[0] if bad else ''}", bad[1] if bad else "")
    require(section.videos_per_class >= 1 and section.val_per_class >= 1,
            f"{where} synthetic", "videos_per_class and val_per_class must be >= 1")
