"""A non-LLaVA family in the browser: a tiny Qwen2-VL run through the Inference and Attention pages.

The checkpoint is the family builder's (``save_pretrained`` of the real model and processor
classes, video-processor entry included), so the app goes through its image-only processor
fallback exactly as with a real Qwen2-VL run. One LM-head row (``<|video_pad|>``'s) is then
made to compete with a word, so the greedy answer holds special tokens (the test checks it
does): tokens the answer text leaves out and the token buttons must mark. What the pages should
show is computed here through the app's own loader, generation and capture, not written down.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard.attention.analysis import analyse
from dashboard.generation import GenerationSettings, generate
from dashboard.models.loading import load_checkpoint
from tests.attention import family_checkpoints as fc
from tests.browser.browser_kit import (
    StreamlitServer,
    app_text,
    click_example,
    exception_texts,
    fresh_page,
    goto,
    open_page,
    settle,
    shot,
)

pytestmark = pytest.mark.browser

MAX_NEW = 8
PROMPT = "what is it ?"
SPECIAL = " (special)"


@pytest.fixture(scope="module")
def qwen_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import Qwen2VLForConditionalGeneration

    root = tmp_path_factory.mktemp("qwen-runs")
    run = root / "qwen2-vl-run"
    folder = fc.qwen2_vl(run / "checkpoint-10")
    model = Qwen2VLForConditionalGeneration.from_pretrained(folder)
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    with torch.no_grad():  # a special token now competes with "user": the answer holds special tokens
        model.lm_head.weight[vocab["<|video_pad|>"]] = model.lm_head.weight[vocab["user"]] * 1.2
    model.save_pretrained(folder)
    arr = np.full((168, 224, 3), 128, np.uint8)
    arr[20:80, 120:200] = (230, 40, 40)
    (run / "eval" / "images").mkdir(parents=True)
    Image.fromarray(arr).save(run / "eval" / "images" / "q0.png")
    row = {"id": "q0", "image": "images/q0.png", "prompt": PROMPT, "answer": "red"}
    (run / "eval" / "tiny.jsonl").write_text(json.dumps(row) + "\n")
    return root


@pytest.fixture(scope="module")
def expected(qwen_root: Path) -> dict:
    """What the app's loader, generation and capture produce for the example (greedy, so deterministic)."""
    folder = qwen_root / "qwen2-vl-run" / "checkpoint-10"
    image = Image.open(qwen_root / "qwen2-vl-run" / "eval" / "images" / "q0.png").convert("RGB")
    loaded = load_checkpoint(folder, torch.device("cpu"))
    answer = generate(loaded, image, PROMPT, GenerationSettings(max_new_tokens=MAX_NEW)).text
    run = analyse(loaded, image, PROMPT, max_new_tokens=MAX_NEW)
    return {"answer": answer, "tokens": run.tokens, "text": run.text, "grid": run.layout.primary.shape,
            "special": run.special_steps()}


@pytest.fixture(scope="module")
def qwen_server(qwen_root: Path, tmp_path_factory: pytest.TempPathFactory,
                artifacts_dir: Path) -> Iterator[StreamlitServer]:
    srv = StreamlitServer(qwen_root, tmp_path_factory.mktemp("qwen-data"), artifacts_dir / "streamlit-qwen.log")
    yield srv
    srv.stop()


def _max_new_tokens(page, value: int) -> None:
    box = page.get_by_label("Max new tokens", exact=True).first
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def test_qwen2_vl_inference_and_attention(browser, qwen_server, expected, artifacts_dir) -> None:
    assert expected["answer"].strip() and expected["special"]  # the fixture does what its docstring says
    assert expected["text"] == expected["answer"]
    with fresh_page(browser) as page:
        goto(page, qwen_server)
        open_page(page, "Inference")
        click_example(page, "q0")
        page.get_by_text("Generation settings").first.click()
        _max_new_tokens(page, MAX_NEW)
        page.locator('[data-testid="stButton"] button').filter(has_text="Generate").first.click()
        page.get_by_text("Output tokens").first.wait_for(timeout=180_000)
        settle(page)
        text = app_text(page)
        assert "Answer (checkpoint-10)" in text, text[:2000]
        assert expected["answer"].strip() in text, text[:3000]
        assert "Cannot load" not in text and exception_texts(page) == []
        shot(page, artifacts_dir, "qwen2-vl-inference")

        open_page(page, "Attention")
        click_example(page, "q0")
        _max_new_tokens(page, MAX_NEW)
        page.locator('[data-testid="stButton"] button').filter(has_text="Generate and capture").first.click()
        tokens = page.locator('[data-testid="stButtonGroup"] button').filter(has_text=re.compile(r"^\s*\d+: "))
        tokens.first.wait_for(timeout=180_000)  # the token buttons: what the capture produces
        settle(page)
        text = app_text(page)
        assert expected["text"] in text, text[:3000]  # the output line: special tokens left out, as on Inference
        n_special = len(expected["special"])
        assert f"{n_special} of {MAX_NEW} generated tokens are special tokens" in text, text[:3000]
        labels = [t.strip() for t in tokens.all_inner_texts()]
        assert labels == [f"{i}: {t}" for i, t in enumerate(expected["tokens"])]
        assert [i for i, label in enumerate(labels) if label.endswith(SPECIAL)] == expected["special"]
        word = next(i for i, t in enumerate(expected["tokens"]) if not t.endswith(SPECIAL) and i > 0)
        tokens.nth(word).click()
        settle(page)
        caption = page.locator('[data-testid="stImage"]').filter(has_text=f"{labels[word]} — ").first
        caption.wait_for()
        overlay = caption.locator("img").first
        assert overlay.evaluate("img => img.complete && img.naturalWidth > 0")
        rows, cols = expected["grid"]
        assert f"{rows}×{cols} merged cells" in caption.inner_text()
        assert exception_texts(page) == []
        caption.scroll_into_view_if_needed()
        shot(page, artifacts_dir, "qwen2-vl-attention")
        page.locator('[data-testid="stRadio"] label').filter(has_text="image tokens").first.click()
        order = f"All {rows * cols} image tokens, in prompt order: row-major over the {rows}×{cols} grid"
        # Wait for the lens itself: a settle right after the click can run before the rerun starts
        # (a fresh-clone CI run read the page before it, 1 of 3 runs).
        page.get_by_text(order, exact=False).first.wait_for(timeout=90_000)
        settle(page)
        assert order in app_text(page)
        assert exception_texts(page) == []
