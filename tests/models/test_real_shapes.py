"""The real-shape bench's checkpoints, scaled down: the app loads, streams and captures from each.

``bench/bench_real_shapes.py`` builds SmolVLM-256M / Qwen2-VL-2B shaped checkpoints with
:func:`bench.real_shapes.build`; here the same builder runs with ``tiny=True`` (same classes,
processor settings and token ids; small widths), so the construction code the bench relies on is
exercised without gigabytes of weights. Nothing here is timed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.real_shapes import FAMILIES, build
from dashboard.attention.capture import capture_generate, reference_from_output_attentions
from dashboard.generation import GenerationSettings, build_inputs, stream
from dashboard.models.pool import ModelPool


def _image(width: int, height: int) -> Image.Image:
    return Image.fromarray((np.random.default_rng(1).random((height, width, 3)) * 255).astype("uint8"))


@pytest.fixture(scope="module", params=[(f, d) for f in FAMILIES for d in ("float32", "bfloat16")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    family, dtype = request.param
    folder = tmp_path_factory.mktemp(f"{family}-{dtype}") / "checkpoint-1"
    build(folder, family, getattr(torch, dtype), tiny=True)
    return family, folder, dtype


def test_saved_with_the_published_settings(checkpoint: tuple[str, Path, str]) -> None:
    family, folder, dtype = checkpoint
    config = json.loads((folder / "config.json").read_text())
    processor = json.loads((folder / "processor_config.json").read_text())
    image = processor.get("image_processor") or json.loads((folder / "preprocessor_config.json").read_text())
    assert config["dtype"] == dtype
    if family == "smolvlm_256m":
        assert config["model_type"] == "idefics3" and config["image_token_id"] == 49190
        assert config["scale_factor"] == 4 and config["text_config"]["vocab_size"] == 49280
        assert (config["vision_config"]["image_size"], config["vision_config"]["patch_size"]) == (512, 16)
        assert image["size"] == {"longest_edge": 2048} and image["max_image_size"] == {"longest_edge": 512}
        assert image["do_image_splitting"] is True and processor["image_seq_len"] == 64
    else:
        assert config["model_type"] == "qwen2_vl" and config["image_token_id"] == 151655
        assert config["text_config"]["vocab_size"] == 151936 and config["vision_config"]["patch_size"] == 14
        # min_pixels / max_pixels, as transformers 5 writes them
        assert image["size"] == {"shortest_edge": 3136, "longest_edge": 12845056} and image["merge_size"] == 2
        assert "video_processor" in processor  # what the real processor class writes


def test_pool_loads_streams_and_captures(checkpoint: tuple[str, Path, str]) -> None:
    family, folder, dtype = checkpoint
    pool = ModelPool(10**10, device="cpu", dtype=getattr(torch, dtype))
    image = _image(112, 84)
    with pool.acquire(folder) as loaded:
        assert loaded.model_type == ("idefics3" if family == "smolvlm_256m" else "qwen2_vl")
        assert next(loaded.model.parameters()).dtype == getattr(torch, dtype)
        inputs = build_inputs(loaded, image, "what is it ?")
        image_tokens = int((inputs["input_ids"] == loaded.model.config.image_token_id).sum())
        # SmolVLM upsamples to a 2048-px longest edge: 112 × 84 → 2048 × 1536 = 4 × 3 tiles of 512 + a global one,
        # 64 tokens each; Qwen2-VL keeps 112 × 84: 8 × 6 patches of 14 px, merged 2 × 2
        assert image_tokens == (13 * 64 if family == "smolvlm_256m" else 12)

        s = stream(loaded, image, "what is it ?", GenerationSettings(max_new_tokens=4))
        text = "".join(s)
        assert s.result is not None and s.result.output_tokens >= 1 and s.result.text == text.strip()

        loaded.model.generation_config.eos_token_id = None
        captured = capture_generate(loaded.model, dict(inputs), lock=loaded.lock, max_new_tokens=3, min_new_tokens=3,
                                    do_sample=False)
    assert captured.image_attention.shape[-1] == image_tokens
    if dtype == "float32":  # the capture equals output_attentions' rows (bf16 rounding differs between kernels)
        model = loaded.model
        model.set_attn_implementation("eager")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False,
                                 output_attentions=True, return_dict_in_generate=True)
        ref_image, ref_text = reference_from_output_attentions(out.attentions, captured.image_positions,
                                                               int(inputs["input_ids"].shape[1]))
        np.testing.assert_allclose(captured.image_attention, ref_image, atol=1e-5)
        np.testing.assert_allclose(captured.text_attention, ref_text, atol=1e-5)
