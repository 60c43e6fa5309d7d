"""Capture equals ``output_attentions=True`` on tiny models of every family, and leaves the model as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dashboard.attention.capture import capture_generate, reference_from_output_attentions
from dashboard.attention.hooks import CaptureError, ModelParts
from tests.attention import attn_families as fam

STEPS = 5


def _family(name: str) -> fam.Family:
    image = fam.with_square(64, 48, (10, 10, 30, 30))
    return {"llava": fam.llava, "qwen2_vl": fam.qwen, "qwen2_5_vl": lambda im: fam.qwen(im, v25=True),
            "idefics3": fam.idefics3}[name](image)


@pytest.mark.parametrize("name", ["llava", "qwen2_vl", "qwen2_5_vl", "idefics3"])
def test_capture_matches_output_attentions(name: str) -> None:
    family = _family(name)
    model, inputs = family.model, family.inputs
    before = model.config._attn_implementation
    result = capture_generate(model, inputs, max_new_tokens=STEPS, do_sample=False, lens_top_k=3,
                              lens_image_tokens=True, min_new_tokens=STEPS)
    assert model.config._attn_implementation == before  # restored
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=STEPS, min_new_tokens=STEPS, do_sample=False,
                             output_attentions=True, return_dict_in_generate=True)
    prompt_len = inputs["input_ids"].shape[1]
    assert out.sequences[0, prompt_len:].tolist() == result.generated_ids
    image, text = reference_from_output_attentions(out.attentions, result.image_positions, prompt_len)
    n_layers = len(ModelParts.of(model).attention)
    assert result.image_attention.shape == (STEPS, n_layers, 4, len(result.image_positions))
    assert np.abs(result.image_attention - image).max() <= 1e-5
    assert np.abs(result.text_attention - text).max() <= 1e-5
    # the rows are real softmax rows: image + prompt text + generated = 1
    total = result.image_attention.sum(-1) + result.text_attention[..., 0] + result.text_attention[..., 1]
    assert np.allclose(total, 1.0, atol=1e-5)
    # logit lens: the last layer decoded through the final norm + head is the model's own greedy choice
    assert result.lens is not None
    assert result.lens.generated_ids[-1, :, 0].tolist() == result.generated_ids
    assert result.lens.image_ids.shape == (n_layers, len(result.image_positions), 3)


def test_vision_tower_attention_is_not_recorded() -> None:
    family = _family("llava")  # CLIP tower has attention layers too
    result = capture_generate(family.model, family.inputs, max_new_tokens=2, min_new_tokens=2)
    assert result.image_attention.shape[1] == family.model.config.text_config.num_hidden_layers


def test_capture_restores_implementation_after_an_error() -> None:
    family = _family("llava")
    before = family.model.config._attn_implementation
    with pytest.raises(CaptureError, match="no image tokens"):
        bad = dict(family.inputs)
        bad["input_ids"] = torch.tensor([[2, 5, 6]])
        capture_generate(family.model, bad, max_new_tokens=2)
    with pytest.raises(CaptureError, match="beam search"):
        capture_generate(family.model, family.inputs, max_new_tokens=2, num_beams=2)
    assert family.model.config._attn_implementation == before
    assert family.model.config.vision_config._attn_implementation == before
