"""The synthetic dataset of a search definition (``synthetic:``), generated on first use."""

from __future__ import annotations

import json
from pathlib import Path

from pas_models.data.formats import DatasetConfig, load_dataset_config
from pas_orchestrator.config.search import SearchDef
from pas_orchestrator.errors import ConfigError


def ensure_data(search: SearchDef, progress: bool = True) -> DatasetConfig:
    """Generate the synthetic dataset on first use (resumable: finished videos are kept); returns
    the dataset config to train on. A root made with other synthetic settings is refused."""
    if search.synthetic is None:
        return search.data
    from tqdm import tqdm  # generating videos: imported only when there are some to make

    from pas_models.data import synth

    root = Path(search.synthetic.root)
    cfg = search.synthetic.synth_config()
    stamp = root / "synth.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != synth.stamp(cfg):
        raise ConfigError(f"{search.source}: synthetic: {root} holds a synthetic dataset made with other settings "
                          f"or by another version of the generator ({stamp}); delete the folder or set "
                          "synthetic.root to another one")
    if not (root / "dataset.yaml").is_file() or not stamp.is_file():
        root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(synth.stamp(cfg), indent=2) + "\n")
        with tqdm(total=synth.total_videos(cfg), desc=f"synthetic dataset -> {root}", unit="video",
                  disable=not progress or None) as bar:
            synth.generate(root, cfg, progress=bar.update)
    return load_dataset_config(root / "dataset.yaml")
