"""Drift and patching on every family whose adapter declares its parts (tiny checkpoints, real classes).

B = A with noise in its projector (found by drift's name grouping). Patching must then restore
the whole gap at the projector and at the LM head, nothing at the text embeddings, and — where
the vision tower's output is upstream of the projector — nothing at the vision tower.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from dashboard.analysis.drift import compare_checkpoints
from dashboard.analysis.modules import NameScheme, module_of
from dashboard.analysis.patching import Divergence, patch_divergence
from dashboard.attention.adapters import REGISTRY
from dashboard.evalset import EvalExample
from dashboard.generation import build_inputs
from dashboard.models.loading import load_checkpoint
from tests.attention import family_checkpoints as fc

FAMILIES = sorted(f for f in fc.BUILDERS if f in REGISTRY)
# the merger runs inside ``visual``: its output is projected
PROJECTOR_INSIDE_VISION = {"qwen2_vl", "qwen2_5_vl", "qwen3_vl"}


def _image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (56, 80, 3), dtype=np.uint8))


def _planted(a: Path, b: Path, model_type: str) -> None:
    shutil.copytree(a, b)
    scheme, _ = NameScheme.for_model_type(model_type)
    tensors = load_file(str(a / "model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    hit = [n for n in tensors if module_of(n, scheme) == "projector"]
    assert hit
    for name in hit:
        t = tensors[name].float()
        tensors[name] = (t + torch.randn(t.shape, generator=generator) * 3 * max(float(t.std()), 0.02)).to(
            tensors[name].dtype)
    save_file(tensors, str(b / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.parametrize("name", FAMILIES)
def test_projector_plant_is_found_in_every_family(name: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    a_path = fc.BUILDERS[name](run / "checkpoint-1")
    a = load_checkpoint(a_path, torch.device("cpu"), torch.float32)
    _planted(a_path, run / "checkpoint-2", a.model_type)
    drift = compare_checkpoints(a_path, run / "checkpoint-2", [run])
    assert drift.ranked()[0].module == "projector" and not drift.generic_grouping
    b = load_checkpoint(run / "checkpoint-2", torch.device("cpu"), torch.float32)
    image, prompt = _image(), "what is it ?"
    with torch.inference_mode():  # the two tokens the checkpoints disagree on most
        logits = [m.model(**build_inputs(m, image, prompt)).logits[0, -1] for m in (a, b)]
    token_b, token_a = int((logits[1] - logits[0]).argmax()), int((logits[1] - logits[0]).argmin())
    example = EvalExample("x", tmp_path / "x.png", prompt, "")
    found = Divergence(example, image, ((token_a,), (token_b,)), ("a", "b"), 0)
    report = patch_divergence(a, b, found)
    restored = {c["component"]: c["restored"] for c in report.components}
    assert restored["LM head"] == pytest.approx(1.0, abs=1e-3)
    assert restored["projector"] == pytest.approx(1.0, abs=1e-3)
    assert restored["text embeddings"] == pytest.approx(0.0, abs=1e-3)
    if name in PROJECTOR_INSIDE_VISION:
        assert restored["vision tower"] == pytest.approx(1.0, abs=1e-3)
    else:
        assert restored["vision tower"] == pytest.approx(0.0, abs=1e-3)
        assert report.component_ranking()[0] == "projector"
    assert len(report.layers) == 3 * 2 * len(set(r["layer"] for r in report.layers))
