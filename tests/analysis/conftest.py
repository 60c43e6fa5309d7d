"""Planted changes: checkpoint B = the trained demo checkpoint A with large noise in exactly one part."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

VISION_LAYER = "vision_tower.encoder.layers.{layer}."
PROJECTOR = "multi_modal_projector."
DECODER_MLP = "language_model.model.layers.{layer}.mlp."
NOISE_SCALE = 10.0  # noise std = this × the tensor's own std: large enough that answers change


@dataclass(frozen=True)
class Plant:
    """Where the noise went, in the names drift and patch report."""

    kind: str
    layer: int
    prefix: str  # the weight-name prefix in the checkpoint file
    drift_module: str
    component: str


def plant_for(kind: str, seed: int, n_decoder_layers: int) -> Plant:
    if kind == "projector":
        return Plant(kind, -1, PROJECTOR, "projector", "projector")
    if kind == "vision":  # the demo's vision tower has one layer
        return Plant(kind, 0, VISION_LAYER.format(layer=0), "vision_tower.layers.0", "vision tower")
    layer = seed % n_decoder_layers
    return Plant(kind, layer, DECODER_MLP.format(layer=layer), f"decoder.layers.{layer}.mlp", "language model")


def make_planted(a: Path, out: Path, plant: Plant, seed: int) -> Path:
    """Copy checkpoint ``a`` to ``out`` with Gaussian noise added to every tensor under ``plant.prefix``."""
    shutil.copytree(a, out)
    tensors = load_file(str(a / "model.safetensors"))
    generator = torch.Generator().manual_seed(seed)
    hit = 0
    for name, tensor in tensors.items():
        if name.startswith(plant.prefix):
            scale = NOISE_SCALE * float(tensor.float().std()) if tensor.numel() > 1 else NOISE_SCALE
            noise = torch.randn(tensor.shape, generator=generator) * max(scale, 1e-2)
            tensors[name] = (tensor.float() + noise).to(tensor.dtype)
            hit += 1
    assert hit, f"no tensor starts with {plant.prefix!r}"
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


@dataclass(frozen=True)
class PlantedRoot:
    """A runs root of its own: ``A`` (the demo run's last checkpoint) and the planted B folders."""

    root: Path
    a: Path
    n_decoder_layers: int

    def planted(self, kind: str, seed: int) -> tuple[Path, Plant]:
        plant = plant_for(kind, seed, self.n_decoder_layers)
        out = self.root / f"planted-{kind}-{seed}"
        if not out.exists():
            make_planted(self.a, out, plant, seed)
        return out, plant


@pytest.fixture(scope="session")
def planted_root(demo_run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PlantedRoot:
    from dashboard.runs.checkpoints import checkpoint_dirs

    root = tmp_path_factory.mktemp("planted")
    a = shutil.copytree(checkpoint_dirs(demo_run_dir)[-1][1], root / "A")
    config = json.loads((a / "config.json").read_text())
    return PlantedRoot(root, a, int(config["text_config"]["num_hidden_layers"]))
