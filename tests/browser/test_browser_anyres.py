"""A LLaVA-NeXT any-res checkpoint on the Attention page: the heatmap's tiles line up with the image.

The image (150×64) makes LLaVA-NeXT unpad its 4×8 tile grid with narrower edge rows (13.7 px against
18.3 px): a heatmap stretched evenly over the view would put its inner row edges at 16/32/48 px instead of
the boxes' 14/32/50. The overlay the browser shows is fetched and read back: every box of the layout (the
boxes the geometry oracle checks against the processor) is one flat colour, and the colour changes where
the boxes end. The screenshot is kept in ``test-artifacts/llava-next-anyres-attention.png``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard.attention.analysis import analyse
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

SIZE = (150, 64)
PROMPT = "what is it ?"


@pytest.fixture(scope="module")
def anyres_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("anyres-runs")
    run = root / "llava-next-run"
    fc.llava_next(run / "checkpoint-5")
    (run / "eval" / "images").mkdir(parents=True)
    Image.new("RGB", SIZE, (128, 128, 128)).save(run / "eval" / "images" / "wide.png")
    row = {"id": "wide", "image": "images/wide.png", "prompt": PROMPT, "answer": "grey"}
    (run / "eval" / "tiny.jsonl").write_text(json.dumps(row) + "\n")
    return root


@pytest.fixture(scope="module")
def tiles(anyres_root: Path) -> np.ndarray:
    """The tile view's boxes, from the app's own loader and capture."""
    folder = anyres_root / "llava-next-run" / "checkpoint-5"
    image = Image.open(anyres_root / "llava-next-run" / "eval" / "images" / "wide.png").convert("RGB")
    run = analyse(load_checkpoint(folder, torch.device("cpu")), image, PROMPT, max_new_tokens=1)
    assert run.layout.primary.name == "tiles"
    return run.layout.primary.boxes


@pytest.fixture(scope="module")
def anyres_server(anyres_root: Path, tmp_path_factory: pytest.TempPathFactory,
                  artifacts_dir: Path) -> Iterator[StreamlitServer]:
    srv = StreamlitServer(anyres_root, tmp_path_factory.mktemp("anyres-data"), artifacts_dir / "streamlit-anyres.log")
    yield srv
    srv.stop()


def _pixel_edges(edges: np.ndarray) -> list[int]:
    """First pixel (by its centre) of each box after the first."""
    return [int(np.ceil(e - 0.5)) for e in edges]


def test_anyres_heatmap_tiles_line_up_with_the_image(browser, anyres_server, tiles, artifacts_dir) -> None:
    ys = np.r_[tiles[:, 0, 1], tiles[-1, 0, 3]]
    xs = np.r_[tiles[0, :, 0], tiles[0, -1, 2]]
    assert len(set(np.round(np.diff(ys), 3))) > 1  # unequal rows: the case an even stretch gets wrong
    with fresh_page(browser) as page:
        goto(page, anyres_server)
        open_page(page, "Attention")
        click_example(page, "wide")
        page.locator('[data-testid="stButton"] button').filter(has_text="Generate and capture").first.click()
        caption = page.locator('[data-testid="stImage"]').filter(has_text="tiles grid").first
        caption.wait_for(timeout=180_000)
        settle(page)
        assert exception_texts(page) == [] and "failed" not in app_text(page).lower()
        overlay = caption.locator("img").first
        src = overlay.get_attribute("src")
        assert src
        data = page.request.get(src if src.startswith("http") else f"{anyres_server.url}{src}").body()
        caption.scroll_into_view_if_needed()
        shot(page, artifacts_dir, "llava-next-anyres-attention")
    (artifacts_dir / "llava-next-anyres-overlay.img").write_bytes(data)  # what the browser received
    picture = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    factor = picture.shape[0] // SIZE[1]  # upscaled by a whole factor; the colour bar is on the right
    assert picture.shape[0] == SIZE[1] * factor and picture.shape[1] > SIZE[0] * factor
    # one sample per original pixel (the centre of its factor×factor block: the served image may be JPEG)
    original = picture[factor // 2::factor, factor // 2::factor][:SIZE[1], :SIZE[0]]
    for axis, edges in ((0, ys), (1, xs)):
        starts = [0, *_pixel_edges(edges[1:-1]), SIZE[1 - axis]]
        lines = original if axis == 0 else original.transpose(1, 0, 2)  # [line, along, 3]
        checked = 0
        for k in range(1, len(starts) - 1):
            before, after = lines[starts[k - 1]:starts[k]], lines[starts[k]:starts[k + 1]]
            for along in range(lines.shape[1]):
                low, high = np.median(before[:, along], axis=0), np.median(after[:, along], axis=0)
                if np.abs(low - high).sum() < 40:  # these two cells look alike here: no visible edge
                    continue
                span = lines[starts[k - 1]:starts[k + 1], along]
                nearer_after = np.abs(span - high).sum(-1) < np.abs(span - low).sum(-1)
                first = starts[k - 1] + int(np.argmax(nearer_after))
                assert nearer_after.any() and first == starts[k], (axis, k, along, first, starts[k])
                assert nearer_after[first - starts[k - 1]:].all(), (axis, k, along)
                checked += 1
        assert checked >= 2 * (len(starts) - 2), f"too few visible edges on axis {axis} to check"
