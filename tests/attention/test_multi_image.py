"""Several images in one prompt: each image's tokens mapped to their own image, checked by the geometry oracle.

The oracle paints one image at a time (the others a flat "unclaimed" colour) and reads, from the
model's own order of scattering image features (image after image), which pixels feed each token; an
adapter that gave one image's tokens to another fails it (shown below by reversing the per-image split).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from transformers import AutoConfig

from dashboard.attention import geometry
from dashboard.attention.adapters import REGISTRY, LayoutError, layouts_for, several_images
from dashboard.cli import main
from dashboard.models.processors import load_processor

MULTI = ["gemma4", "llava_next", "llava_onevision", "qwen2_5_vl", "qwen2_vl", "qwen3_vl"]
CASES = 25  # prompts of three images each (the single-image oracle runs 200 sizes per family)


def _parts(folder: Path) -> tuple[Any, Any]:
    return AutoConfig.from_pretrained(folder, local_files_only=True), load_processor(folder)


def test_families_that_map_several_images() -> None:
    assert sorted(t for t in REGISTRY if several_images(t)) == MULTI


@pytest.mark.parametrize("name", MULTI)
def test_oracle_passes_with_three_images_per_prompt(name: str, family_folders: dict[str, Path]) -> None:
    config, processor = _parts(family_folders[name])
    report = geometry.run(config, processor, cases=CASES, seed=1, images=3)
    assert report["images"] == 3 and report["cases"] == CASES
    assert report["min_iou"] >= 0.99, report["worst"]


@pytest.mark.parametrize("name", ["gemma4", "llava_next", "qwen2_vl"])
def test_oracle_catches_tokens_given_to_the_wrong_image(name: str, family_folders: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config, processor = _parts(family_folders[name])
    adapter = type(REGISTRY[name])
    real = adapter.per_image
    monkeypatch.setattr(adapter, "per_image", lambda self, *a: real(self, *a)[::-1])
    # LLaVA-NeXT: the reversed token counts no longer fit the image sizes, so the layout itself refuses
    with pytest.raises(LayoutError) if name == "llava_next" else nullcontext():
        report = geometry.run(config, processor, cases=4, seed=1, images=2)
        assert report["min_iou"] < 0.8, report["worst"]


@pytest.mark.parametrize("name", MULTI)
def test_each_image_owns_its_tokens_in_prompt_order(name: str, family_folders: dict[str, Path]) -> None:
    config, processor = _parts(family_folders[name])
    oracle = geometry.Oracle(config, processor)
    images = [Image.new("RGB", size, (128, 128, 128)) for size in [(300, 200), (150, 330), (260, 260)]]
    inputs = oracle.inputs(images)
    layouts = layouts_for(config, processor, inputs["input_ids"], images, inputs)
    assert [layout.image_size for layout in layouts] == [im.size for im in images]
    every = np.concatenate([layout.image_positions for layout in layouts])
    assert np.all(np.diff(every) > 0)  # disjoint and image after image
    ids = np.asarray(inputs["input_ids"]).reshape(-1)
    assert np.array_equal(every, np.flatnonzero(ids == ids[every[0]]))  # together: every image token


@pytest.mark.parametrize("name", ["gemma3", "idefics3"])
def test_one_image_families_refuse_several_with_the_reason(name: str, family_folders: dict[str, Path]) -> None:
    config, processor = _parts(family_folders[name])
    assert not several_images(name)
    with pytest.raises(geometry.GeometryError, match="one image per prompt"):
        geometry.run(config, processor, cases=1, images=2)


def test_cli_geometry_with_several_images(family_folders: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["geometry", "--checkpoint", str(family_folders["qwen3_vl"]), "--cases", "3", "--images", "2",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 2 and report["min_iou"] >= 0.99
    assert report["worst"]["image"] in (0, 1)
