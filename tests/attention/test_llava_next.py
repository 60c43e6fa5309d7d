"""LLaVA-NeXT / OneVision arithmetic against transformers' own functions, over many sizes."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
from transformers.models.llava_next.modeling_llava_next import unpad_image

from dashboard.attention.adapters import LayoutError
from dashboard.attention.adapters.llava_next import LlavaOnevisionAdapter, unpadded_rows_cols


def test_unpadded_rows_cols_equals_transformers_unpad_image() -> None:
    rng = random.Random(0)
    for _ in range(500):
        height, width = rng.randint(20, 3000), rng.randint(20, 3000)
        rows, cols = rng.choice([1, 2, 3]) * 24, rng.choice([1, 2, 3]) * 24
        grid = torch.arange(rows * cols).reshape(1, rows, cols)
        kept = unpad_image(grid, (height, width))[0]
        r0, n_rows, c0, n_cols = unpadded_rows_cols(height, width, rows, cols)
        assert kept.shape == (n_rows, n_cols)
        if kept.numel():  # extreme aspect ratios can keep nothing, in both
            assert int(kept[0, 0]) == r0 * cols + c0  # the same rows and columns are kept


def test_onevision_refuses_a_bilinearly_shrunk_grid() -> None:
    config = SimpleNamespace(vision_aspect_ratio="anyres_max_4")
    LlavaOnevisionAdapter()._check_resampling(config, 48, 48, 24)  # 4 tiles: kept as is
    with pytest.raises(LayoutError, match="bilinearly shrunk"):
        LlavaOnevisionAdapter()._check_resampling(config, 72, 72, 24)  # 9 tiles > 4 × 1.1²
