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


# ------------------------------------------------------------------ capture with several images
@pytest.fixture(scope="module")
def loaded_multi(family_folders: dict[str, Path]) -> dict[str, Any]:
    import torch

    from dashboard.models.loading import load_checkpoint

    return {name: load_checkpoint(family_folders[name], torch.device("cpu")) for name in ("gemma4", "qwen2_vl",
                                                                                          "gemma3")}


@pytest.mark.parametrize("name", ["gemma4", "qwen2_vl"])
def test_capture_draws_each_image_from_its_own_tokens(name: str, loaded_multi: dict[str, Any]) -> None:
    """Two images in one prompt: image k's heatmap holds exactly the captured attention at image k's
    tokens (read here straight from the capture by position), and the two maps share the image mass."""
    from dashboard.attention.analysis import analyse
    from dashboard.attention.overlay import token_attention

    first, second = Image.new("RGB", (200, 100), (200, 30, 30)), Image.new("RGB", (100, 220), (30, 30, 200))
    run = analyse(loaded_multi[name], first, "what is it ?", max_new_tokens=2, more_images=[second])
    assert len(run.layouts) == 2 and [lay.image_size for lay in run.layouts] == [(200, 100), (100, 220)]
    captured = run.result.image_positions
    every = token_attention(run.result, 0, None, "mean")  # aligned with every image token of the prompt
    total = 0.0
    for k in range(2):
        drawn = run.for_image(k)
        assert drawn.image is run.images[k] and drawn.layout is run.layouts[k]
        grid = drawn.grid(0, None, "mean")
        view = run.layouts[k].primary
        assert grid.shape == view.shape
        expected = every[np.searchsorted(captured, view.positions)]
        np.testing.assert_array_equal(grid, expected)
        total += float(grid.sum())
    assert total == pytest.approx(float(every.sum()), rel=1e-5)  # no token counted twice or lost
    labels = run.image_token_labels()
    assert len(labels) == len(captured) and labels[0].startswith("i1·") and labels[-1].startswith("i2·")
    assert "2 images, image after image" in run.image_order_caption(10)


def test_one_image_family_refuses_a_second_image_in_words(loaded_multi: dict[str, Any]) -> None:
    from dashboard.attention.analysis import analyse

    image = Image.new("RGB", (64, 64))
    with pytest.raises(LayoutError, match="one image per prompt is supported"):
        analyse(loaded_multi["gemma3"], image, "what is it ?", max_new_tokens=1, more_images=[image])
