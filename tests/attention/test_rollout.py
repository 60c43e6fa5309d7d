"""Attention rollout: the arithmetic against an explicit matrix product, and on a real model against
``output_attentions`` of the same prompt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard.attention.analysis import analyse
from dashboard.attention.hooks import attention_implementation
from dashboard.attention.rollout import rollout_row
from dashboard.models.pool import ModelPool


def _random_attention(rng: np.random.Generator, seq: int) -> np.ndarray:
    """A causal row-stochastic matrix, like a decoder layer's head-mean attention."""
    raw = np.tril(rng.random((seq, seq)) + 1e-3)
    return raw / raw.sum(-1, keepdims=True)


def _explicit(attentions: list[np.ndarray], upto: int) -> np.ndarray:
    mixed = []
    for a in attentions[: upto + 1]:
        m = 0.5 * a + 0.5 * np.eye(len(a))
        mixed.append(m / m.sum(-1, keepdims=True))
    product = mixed[0]
    for m in mixed[1:]:
        product = m @ product  # later layers on the left
    return product


def test_rollout_is_the_product_of_residual_mixed_layers() -> None:
    rng = np.random.default_rng(0)
    layers = [_random_attention(rng, 7) for _ in range(3)]
    for upto in range(3):
        expected = _explicit(layers, upto)[-1]
        got = rollout_row(layers, upto=upto)
        assert np.allclose(got, expected)
        assert got.sum() == pytest.approx(1.0)
    # with no residual and one layer, rollout is that layer's own row
    assert np.allclose(rollout_row(layers[:1], residual=0.0), layers[0][-1])


def test_rollout_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one layer"):
        rollout_row([])
    with pytest.raises(IndexError, match="out of range"):
        rollout_row([np.eye(3)], upto=2)
    with pytest.raises(ValueError, match="residual"):
        rollout_row([np.eye(3)], residual=1.5)


def test_rollout_on_a_model_matches_output_attentions(tiny_llava_dir: Path) -> None:
    pool = ModelPool(budget_bytes=10**9, device="cpu", dtype=torch.float32)
    image = Image.fromarray(np.full((64, 64, 3), 90, np.uint8))
    with pool.acquire(tiny_llava_dir) as loaded:
        run = analyse(loaded, image, "what colour is the square ?", max_new_tokens=2, lens_top_k=0,
                      lens_image_tokens=False)
        assert len(run.tokens) == 2
        # the oracle: a plain eager forward with output_attentions over prompt + first generated token
        assert run.inputs is not None
        ids = torch.cat([run.inputs["input_ids"], torch.tensor([run.result.generated_ids[:1]])], dim=1)
        with attention_implementation(loaded.model, "eager"), torch.no_grad():
            out = loaded.model(input_ids=ids, pixel_values=run.inputs["pixel_values"],
                               attention_mask=torch.ones_like(ids), output_attentions=True)
        layers = [a[0].mean(0).numpy() for a in out.attentions]
        expected = _explicit(layers, len(layers) - 1)[-1][run.layout.image_positions]
        got = run.rollout_grid(loaded, step=1)
    assert got.shape == run.layout.primary.shape
    assert np.allclose(got.reshape(-1), expected, atol=1e-5)
    assert 0.0 < got.sum() <= 1.0
