"""Heads grid, spatial logit lens and pointing split by correctness, on a pooled tiny LLaVA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard.attention.analysis import analyse, head_value_range
from dashboard.attention.pointing import PointingReport, score_example
from dashboard.models.pool import ModelPool


@pytest.fixture(scope="module")
def run_and_pool(tiny_llava_dir: Path):
    pool = ModelPool(budget_bytes=10**9, device="cpu", dtype=torch.float32)
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[8:24, 40:56] = (230, 40, 40)
    with pool.acquire(tiny_llava_dir) as loaded:
        run = analyse(loaded, Image.fromarray(arr), "what colour is the square ?", max_new_tokens=3, lens_top_k=3)
    return run, pool


def test_heads_grid_is_every_head_of_the_layer(run_and_pool) -> None:
    run, _ = run_and_pool
    grids = run.head_grids(0, layer=1)
    assert grids.shape == (run.result.n_heads, 8, 8)
    for head in range(run.result.n_heads):
        flat = run.result.image_attention[0, 1, head]  # the captured row of that head
        assert np.allclose(grids[head].reshape(-1), flat)
    lo, hi = head_value_range(grids)
    assert lo == pytest.approx(grids.min()) and hi == pytest.approx(grids.max())
    with pytest.raises(IndexError):
        run.head_grids(0, layer=run.result.n_layers)


def test_spatial_lens_is_the_image_token_lens_laid_out_as_the_grid(run_and_pool) -> None:
    run, _ = run_and_pool
    lens = run.result.lens
    last = run.result.n_layers - 1
    spatial = run.spatial_lens(last, step=0)
    assert spatial.tokens.shape == spatial.probs.shape == spatial.is_answer.shape == (8, 8)
    # row-major grid order = image-token order for LLaVA; values are the lens' top-1
    assert np.allclose(spatial.probs.reshape(-1), lens.image_probs[last, :, 0])
    assert list(spatial.tokens.reshape(-1)) == run.token_names(lens.image_ids[last, :, 0].tolist())
    answer_id = run.result.generated_ids[0]
    assert np.array_equal(spatial.is_answer.reshape(-1), lens.image_ids[last, :, 0] == answer_id)
    assert spatial.answer == run.tokens[0]
    assert 0.0 <= spatial.answer_share <= 1.0


def test_spatial_lens_escapes_tokens_and_needs_image_lens(run_and_pool) -> None:
    run, _ = run_and_pool
    spatial = run.spatial_lens(0)
    hostile = type(spatial)(0, np.array([["<b>x</b>", "a&b"]], dtype=object), np.zeros((1, 2)),
                            np.zeros((1, 2), bool), "x")
    assert hostile.labels() == [["&lt;b&gt;x&lt;/b&gt;", "a&amp;b"]]
    from dataclasses import replace

    bare = replace(run, result=replace(run.result, lens=None))
    with pytest.raises(ValueError, match="no logit lens"):
        bare.spatial_lens(0)




def test_pointing_split_by_correctness() -> None:
    from dashboard.attention.adapters.base import GridView

    boxes = np.array([[[0, 0, 8, 8], [8, 0, 16, 8]]], dtype=float)  # 1×2 grid
    view = GridView("full", np.array([[0, 1]]), boxes)
    bbox = (0, 0, 8, 8)
    on, off = np.array([[[1.0, 0.0]]]), np.array([[[0.0, 1.0]]])
    rows = [
        score_example("a", on, view, bbox, "red", "red", answer_correct=True),
        score_example("b", on, view, bbox, "red", "red", answer_correct=True),
        score_example("c", off, view, bbox, "blue", "red", answer_correct=False),
        score_example("d", on, view, bbox, "blue", "red", answer_correct=False),
    ]
    split = {s["answer"]: s for s in PointingReport("ck", rows, []).split_by_correctness()}
    assert split["right"]["n"] == 2 and split["right"]["pointing"] == 1.0
    assert split["wrong"]["n"] == 2 and split["wrong"]["pointing"] == 0.5
    assert PointingReport("ck", rows, []).summary()["exact_match"] == 0.5
