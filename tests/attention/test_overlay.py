"""Overlay shapes, dtypes, alpha blending, placement; pointing-score arithmetic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from dashboard.attention.adapters.base import GridView, uniform_boxes
from dashboard.attention.charts import lens_figure, share_figure
from dashboard.attention.overlay import (
    colorbar,
    normalise,
    render_overlay,
    shared_range,
    to_png,
    upscale,
    value_range_of,
    with_colorbar,
)
from dashboard.attention.pointing import chance_rate, mass_in_box, point_hit, score_example


def _view(rows: int, cols: int, region: tuple[float, float, float, float]) -> GridView:
    return GridView("image", np.arange(rows * cols).reshape(rows, cols), uniform_boxes(rows, cols, region))


def _image(width: int = 80, height: int = 64, value: int = 100) -> Image.Image:
    return Image.new("RGB", (width, height), (value, value, value))


def test_overlay_keeps_image_size_and_dtype() -> None:
    grid = np.random.default_rng(0).random((8, 8))
    out = render_overlay(_image(), grid, _view(8, 8, (0, 0, 80, 64)), alpha=0.4)
    assert out.shape == (64, 80, 3) and out.dtype == np.uint8


def test_alpha_zero_is_the_image_and_alpha_one_is_the_colormap() -> None:
    grid = np.zeros((4, 4))
    grid[1, 2] = 1.0
    view = _view(4, 4, (0, 0, 64, 64))
    image = _image(64, 64)
    assert np.array_equal(render_overlay(image, grid, view, alpha=0.0), np.asarray(image))
    full = render_overlay(image, grid, view, alpha=1.0, smooth=False)
    hot = cv2.cvtColor(cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)[0, 0]
    cold = cv2.cvtColor(cv2.applyColorMap(np.array([[0]], np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)[0, 0]
    assert np.array_equal(full[16 + 8, 32 + 8], hot)  # row 1, col 2 → y 16..32, x 32..48
    assert np.array_equal(full[0, 0], cold)
    half = render_overlay(image, grid, view, alpha=0.5, smooth=False)
    expected = np.round(0.5 * hot.astype(float) + 0.5 * 100)
    assert np.abs(half[24, 40].astype(float) - expected).max() <= 1


def test_blocky_peak_lands_on_the_right_cell_not_transposed() -> None:
    grid = np.zeros((4, 8))
    grid[3, 1] = 1.0  # bottom row, second column
    out = render_overlay(_image(80, 40), grid, _view(4, 8, (0, 0, 80, 40)), alpha=1.0, smooth=False)
    hot = np.all(out == out[35, 15], axis=-1)
    ys, xs = np.nonzero(hot)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (30, 39, 10, 19)


def test_overlay_only_covers_the_views_region() -> None:
    image = _image(96, 64)
    out = render_overlay(image, np.ones((8, 8)), _view(8, 8, (16, 0, 80, 64)), alpha=1.0)
    assert np.array_equal(out[:, :16], np.asarray(image)[:, :16])
    assert np.array_equal(out[:, 80:], np.asarray(image)[:, 80:])
    assert not np.array_equal(out[:, 16:80], np.asarray(image)[:, 16:80])


def test_grid_lines_and_bad_arguments() -> None:
    view = _view(2, 2, (0, 0, 64, 64))
    out = render_overlay(_image(64, 64, 0), np.zeros((2, 2)), view, alpha=0.0, grid_lines=True)
    assert (out[32, 10] == 255).all() and (out[10, 32] == 255).all() and (out[10, 10] == 0).all()
    with pytest.raises(ValueError, match="does not match"):
        render_overlay(_image(), np.zeros((3, 3)), view)
    with pytest.raises(ValueError, match="alpha"):
        render_overlay(_image(), np.zeros((2, 2)), view, alpha=1.5)


def test_normalise_png_and_upscale() -> None:
    assert normalise(np.full((2, 2), 3.0)).max() == 0.0
    assert normalise(np.array([[1.0, 3.0]])).tolist() == [[0.0, 1.0]]
    assert normalise(np.array([[1.0, 3.0]]), (0.0, 4.0)).tolist() == [[0.25, 0.75]]  # shared scale
    png = to_png(np.zeros((4, 5, 3), np.uint8))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert upscale(np.zeros((64, 64, 3), np.uint8)).shape == (256, 256, 3)


def test_pointing_hit_chance_and_mass() -> None:
    view = _view(4, 4, (0, 0, 64, 64))
    grid = np.zeros((4, 4))
    grid[0, 3] = 1.0  # centre (56, 8)
    assert point_hit(grid, view, (48, 0, 64, 16))
    assert not point_hit(grid, view, (0, 48, 16, 64))  # the transposed cell's box
    assert chance_rate(view, (0, 0, 32, 32)) == pytest.approx(4 / 16)
    assert mass_in_box(grid, view, (48, 0, 64, 16)) == pytest.approx(1.0)
    layers = np.stack([grid, np.flipud(grid)])
    row = score_example("x", layers, view, (48, 0, 64, 16), "red", "red")
    assert row.correct and row.per_layer_hit == (True, False)
    assert score_example("y", layers, view, (48, 0, 64, 16), "top", "top left").correct  # first word
    assert not score_example("z", layers, view, (48, 0, 64, 16), "left", "top left").correct


def test_default_rendering_is_patch_exact() -> None:
    """Nearest by default: every pixel of a patch has the patch's colour (no bleeding across borders)."""
    grid = np.arange(9, dtype=float).reshape(3, 3)
    out = render_overlay(_image(96, 96), grid, _view(3, 3, (0, 0, 96, 96)), alpha=1.0)
    for r in range(3):
        for c in range(3):
            patch = out[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32].reshape(-1, 3)
            assert (patch == patch[0]).all()
    smooth = render_overlay(_image(96, 96), grid, _view(3, 3, (0, 0, 96, 96)), alpha=1.0, smooth=True)
    assert len(np.unique(smooth[:32, :32].reshape(-1, 3), axis=0)) > 1


def test_every_heatmap_carries_its_scale() -> None:
    picture = np.full((256, 256, 3), 128, np.uint8)
    framed = with_colorbar(picture, "jet", (0.001, 0.04))
    assert framed.shape[0] == 256 and framed.shape[1] > 256
    assert np.array_equal(framed[:, :256], picture)  # the map itself is untouched
    bar = colorbar("jet", (0.001, 0.04), 256)
    hot = cv2.cvtColor(cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)[0, 0]
    cold = cv2.cvtColor(cv2.applyColorMap(np.array([[0]], np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)[0, 0]
    column = bar[:, 5]
    coloured = [tuple(p) for p in column if tuple(p) != (255, 255, 255)]
    assert tuple(hot) in coloured[:20] and tuple(cold) in coloured[-20:]  # high on top, low at the bottom
    assert (bar[:, bar.shape[1] // 2:] < 128).any()  # the end labels are drawn
    with pytest.raises(ValueError, match="unknown colormap"):
        colorbar("nope", (0, 1), 100)


def test_shared_and_own_ranges() -> None:
    a, b = np.array([[0.1, 0.2]]), np.array([[0.0, 0.5]])
    assert shared_range([a, b]) == (0.0, 0.5)
    assert value_range_of(a) == pytest.approx((0.1, 0.2)) and value_range_of(a, (0.0, 1.0)) == (0.0, 1.0)
    with pytest.raises(ValueError):
        shared_range([])


def test_special_tokens_stay_visible_in_plotly_labels() -> None:
    import pandas as pd

    lens = pd.DataFrame({"layer": [0, 1], "position": [0, 0], "rank": [0, 0], "token": ["</s>", "<image>"],
                         "prob": [0.5, 0.9]})
    fig = lens_figure(lens, ["</s>"], "top-1 <b>")
    trace = fig.data[0]
    assert list(trace.x) == ["0:&lt;/s&gt;"]
    assert trace.text.tolist() == [["&lt;/s&gt;"], ["&lt;image&gt;"]]
    assert fig.layout.title.text == "top-1 &lt;b&gt;"
    share = pd.DataFrame({"layer": [0], "image": [0.5], "prompt_text": [0.3], "generated": [0.2]})
    assert "head 2" in share_figure(share, "</s>", 2).layout.title.text
    assert "mean over heads" in share_figure(share, "x", "max").layout.title.text
    assert "&lt;/s&gt;" in share_figure(share, "</s>", 2).layout.title.text


def test_cells_follow_unequal_boxes() -> None:
    """LLaVA-NeXT's unpadded edge rows are narrower (150×64 image: rows 13.7, 18.3, 18.3, 13.7 px tall): every
    pixel takes the value of the box holding it, so each painted cell matches its box exactly; main stretched
    the grid evenly over the view, moving the inner edges ~2 px off their boxes."""
    ys = np.array([0.0, 13.71, 32.0, 50.29, 64.0])
    xs = np.linspace(0.0, 150.0, 9)
    boxes = np.empty((4, 8, 4))
    boxes[..., 0], boxes[..., 2] = xs[None, :-1], xs[None, 1:]
    boxes[..., 1], boxes[..., 3] = ys[:-1, None], ys[1:, None]
    view = GridView("tiles", np.arange(32).reshape(4, 8), boxes)
    values = np.arange(32, dtype=float).reshape(4, 8)
    picture = render_overlay(Image.new("RGB", (150, 64), (128, 128, 128)), values, view, alpha=1.0)
    for r in range(4):
        for c in range(8):
            inside = (slice(int(np.ceil(ys[r] - 0.5)), int(np.ceil(ys[r + 1] - 0.5))),
                      slice(int(np.ceil(xs[c] - 0.5)), int(np.ceil(xs[c + 1] - 0.5))))
            cell = picture[inside].reshape(-1, 3)
            assert (cell == cell[0]).all(), (r, c)  # one flat colour over exactly the box's pixels
    edges = np.flatnonzero(np.any(picture[1:, 0] != picture[:-1, 0], axis=-1)) + 1
    assert edges.tolist() == [14, 32, 50]  # row edges where the boxes put them (pixel centres)
