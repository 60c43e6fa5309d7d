"""The page's back end on a pooled tiny LLaVA: capture, layout, JSON export, logit lens, pointing score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard.attention.adapters import UnsupportedFamily
from dashboard.attention.analysis import analyse, pointing_report
from dashboard.evalset import EvalExample
from dashboard.models.pool import ModelPool


@pytest.fixture(scope="module")
def pool() -> ModelPool:
    return ModelPool(budget_bytes=10**9, device="cpu", dtype=torch.float32)


def _image() -> Image.Image:
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[8:24, 40:56] = (230, 40, 40)
    return Image.fromarray(arr)


def test_analyse_on_pooled_model(pool: ModelPool, tiny_llava_dir: Path) -> None:
    with pool.acquire(tiny_llava_dir) as loaded:
        before = loaded.model.config._attn_implementation
        run = analyse(loaded, _image(), "what colour is the circle ?", max_new_tokens=4, lens_top_k=3)
        assert loaded.model.config._attn_implementation == before
    assert len(run.tokens) == len(run.result.generated_ids) >= 1
    assert run.layout.primary.shape == (8, 8)
    assert run.grid(0, None, "mean").shape == (8, 8)
    assert run.layer_grids(0, "max").shape == (2, 8, 8)
    share = run.image_share(0)
    assert list(share.columns[:2]) == ["layer", "image"] and np.all((share["image"] >= 0) & (share["image"] <= 1))
    # the bar chart follows the Head choice: one head's shares are that head's numbers
    one = run.image_share(0, 1)
    np.testing.assert_allclose(one["image"], run.result.image_attention[0][:, 1].sum(-1), rtol=1e-6)
    assert np.allclose(run.image_share(0, "max")["image"], share["image"])  # max can't stack: the mean
    lens = run.lens_frame()
    assert set(lens.columns) == {"layer", "position", "rank", "token", "prob"}
    top_last = lens[(lens.layer == 1) & (lens["rank"] == 0)].sort_values("position")["token"].tolist()
    assert top_last == run.tokens  # last layer's lens = what was generated (greedy)
    assert len(run.lens_frame("image")) == 2 * 64 * 3
    payload = json.loads(json.dumps(run.to_json(0, [0, 1], "mean")))
    assert np.asarray(payload["grid"]).shape == (8, 8) and payload["token"] == run.tokens[0]
    # the grid in the JSON is the head/layer mean of the captured image attention, in grid order
    flat = run.result.image_attention[0].mean(axis=(0, 1))
    assert np.allclose(np.asarray(payload["grid"]).reshape(-1), flat, atol=1e-6)


def test_unsupported_family_message_before_generating(pool: ModelPool, tiny_llava_dir: Path) -> None:
    with pool.acquire(tiny_llava_dir) as loaded:
        original = loaded.model_type
        loaded.model_type = "mllama"
        try:
            with pytest.raises(UnsupportedFamily, match="mllama"):
                analyse(loaded, _image(), "what colour is the circle ?")
        finally:
            loaded.model_type = original


def test_pointing_report_scores_and_skips(pool: ModelPool, tiny_llava_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    _image().save(path)
    examples = [
        EvalExample("a", path, "what colour is the square ?", "red", "colour",
                    ({"shape": "square", "colour": "red", "bbox": [40, 8, 56, 24]},), 0),
        EvalExample("b", path, "what colour is the square ?", "red", "colour", (), None),
        EvalExample("c", tmp_path / "missing.png", "what colour is the square ?", "red", "colour",
                    ({"bbox": [0, 0, 8, 8]},), 0),
    ]
    with pool.acquire(tiny_llava_dir) as loaded:
        report = pointing_report(loaded, examples)
    assert [r.id for r in report.rows] == ["a"]
    assert len(report.skipped) == 2 and report.skipped[0].startswith("b:") and report.skipped[1].startswith("c:")
    summary = report.summary()
    assert summary["n"] == 1 and summary["chance"] == pytest.approx(4 / 64)
    assert 0.0 <= summary["pointing"] <= 1.0
