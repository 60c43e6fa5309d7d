"""Turn a token's attention over image tokens into a heatmap drawn on the original image.

OpenCV does the colour mapping and blending (``applyColorMap`` + ``addWeighted``). The grid is
upsampled only over the region its cells cover (e.g. a LLaVA centre crop leaves the sides bare),
patch-exact (nearest) by default: smooth interpolation bleeds colour across patch borders and
suggests a resolution the model does not have.

A heatmap without its scale misleads (a map stretched to its own min–max looks "hot" even when
every weight is tiny), so every picture shown carries a colour bar labelled with the values its
ends stand for (:func:`with_colorbar`), and maps shown side by side share one range by default
(:func:`shared_range`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from dashboard.attention.adapters import GridView
from dashboard.attention.capture import CaptureResult

HeadMode = Literal["mean", "max"]
COLORMAPS = {"jet": cv2.COLORMAP_JET, "inferno": cv2.COLORMAP_INFERNO, "viridis": cv2.COLORMAP_VIRIDIS,
             "turbo": cv2.COLORMAP_TURBO, "magma": cv2.COLORMAP_MAGMA}


def token_attention(result: CaptureResult, step: int, layers: Sequence[int] | None = None,
                    head: int | HeadMode = "mean") -> np.ndarray:
    """``[n_image_tokens]`` attention of generated token ``step``: mean over ``layers``, then one head or mean/max."""
    if not 0 <= step < len(result.generated_ids):
        raise IndexError(f"token {step} out of range (0..{len(result.generated_ids) - 1})")
    chosen = list(range(result.n_layers)) if layers is None else list(layers)
    if not chosen or min(chosen) < 0 or max(chosen) >= result.n_layers:
        raise IndexError(f"layers {chosen} out of range (0..{result.n_layers - 1})")
    weights = result.image_attention[step, chosen].mean(0)  # [heads, n_image]
    if head == "mean":
        return weights.mean(0)
    if head == "max":
        return weights.max(0)
    if not 0 <= int(head) < result.n_heads:
        raise IndexError(f"head {head} out of range (0..{result.n_heads - 1})")
    return weights[int(head)]


def normalise(grid: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Scale to [0, 1]: per map by default, or over a shared ``(low, high)`` to compare maps.

    A flat map becomes all zeros rather than NaN.
    """
    grid = np.asarray(grid, dtype=np.float32)
    lo, hi = (float(grid.min()), float(grid.max())) if value_range is None else value_range
    return np.zeros_like(grid) if hi - lo < 1e-12 else np.clip((grid - lo) / (hi - lo), 0.0, 1.0)


def value_range_of(grid: np.ndarray, value_range: tuple[float, float] | None = None) -> tuple[float, float]:
    """The ``(low, high)`` a map is coloured over: the given shared range, else the map's own min–max."""
    if value_range is not None:
        return float(value_range[0]), float(value_range[1])
    grid = np.asarray(grid, dtype=np.float64)
    return float(grid.min()), float(grid.max())


def shared_range(grids: Sequence[np.ndarray]) -> tuple[float, float]:
    """One ``(low, high)`` over several maps, so equal colours mean equal weights across them."""
    if not len(grids):
        raise ValueError("no maps to share a range over")
    return (float(min(np.min(g) for g in grids)), float(max(np.max(g) for g in grids)))


def render_overlay(image: Image.Image, grid: np.ndarray, view: GridView, *, alpha: float = 0.5,
                   colormap: str = "jet", smooth: bool = False, grid_lines: bool = False,
                   value_range: tuple[float, float] | None = None) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` (the original image's size) with the heatmap blended over the view's region."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within 0..1, got {alpha}")
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose one of {sorted(COLORMAPS)}")
    grid = np.asarray(grid, dtype=np.float32)
    if grid.shape != view.shape:
        raise ValueError(f"heatmap shape {grid.shape} does not match the view's grid {view.shape}")
    base = np.asarray(image.convert("RGB"), dtype=np.uint8)
    height, width = base.shape[:2]
    x0, y0, x1, y1 = view.extent()
    left, top = max(0, round(x0)), max(0, round(y0))
    right, bottom = min(width, round(x1)), min(height, round(y1))
    out = base.copy()
    if right <= left or bottom <= top:
        return out
    region = (right - left, bottom - top)
    if smooth:
        heat = cv2.resize(normalise(grid, value_range), region, interpolation=cv2.INTER_CUBIC)
    else:  # each pixel takes its own cell's value: cells follow the view's boxes, which need not be equal
        heat = cell_heat(normalise(grid, value_range), view, (left, top, right, bottom))
    heat_u8 = np.clip(heat * 255.0, 0, 255).astype(np.uint8)
    coloured = cv2.cvtColor(cv2.applyColorMap(heat_u8, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
    patch = base[top:bottom, left:right]
    out[top:bottom, left:right] = cv2.addWeighted(coloured, alpha, patch, 1.0 - alpha, 0.0)
    if grid_lines:
        draw_grid_lines(out, view)
    return out


def cell_heat(values: np.ndarray, view: GridView, region: tuple[int, int, int, int]) -> np.ndarray:
    """``[H, W]`` of ``values[row, col]`` per pixel of ``region`` (left, top, right, bottom), by the cell whose
    box holds the pixel's centre. LLaVA-NeXT's unpadded edge rows/columns are narrower than the others, so
    stretching the grid evenly over the view (a plain resize) would shift every tile edge off its box."""
    left, top, right, bottom = region
    cols = np.searchsorted(view.boxes[0, :, 2], np.arange(left, right) + 0.5, side="right")
    rows = np.searchsorted(view.boxes[:, 0, 3], np.arange(top, bottom) + 0.5, side="right")
    cols = np.clip(cols, 0, values.shape[1] - 1)
    rows = np.clip(rows, 0, values.shape[0] - 1)
    return np.asarray(values, dtype=np.float32)[rows[:, None], cols[None, :]]


def draw_grid_lines(canvas: np.ndarray, view: GridView, colour: tuple[int, int, int] = (255, 255, 255)) -> None:
    """Thin lines on the cell borders (in place)."""
    xs = np.unique(np.round(np.concatenate([view.boxes[0, :, 0], view.boxes[0, -1:, 2]])).astype(int))
    ys = np.unique(np.round(np.concatenate([view.boxes[:, 0, 1], view.boxes[-1:, 0, 3]])).astype(int))
    x0, y0, x1, y1 = (round(v) for v in view.extent())
    for x in xs:
        cv2.line(canvas, (min(x, canvas.shape[1] - 1), y0), (min(x, canvas.shape[1] - 1), y1 - 1), colour, 1)
    for y in ys:
        cv2.line(canvas, (x0, min(y, canvas.shape[0] - 1)), (x1 - 1, min(y, canvas.shape[0] - 1)), colour, 1)


def upscale(array: np.ndarray, min_side: int = 256) -> np.ndarray:
    """Nearest-neighbour enlarge small images (64 px demo images) so they are visible on the page."""
    height, width = array.shape[:2]
    factor = max(1, int(np.ceil(min_side / max(1, min(height, width)))))
    if factor == 1:
        return array
    return cv2.resize(array, (width * factor, height * factor), interpolation=cv2.INTER_NEAREST)


def _label(value: float) -> str:
    from dashboard.formatting import fmt_number

    return fmt_number(value, 3)


def colorbar(colormap: str, value_range: tuple[float, float], height: int, width: int = 0) -> np.ndarray:
    """RGB ``[height, width, 3]``: the colormap from ``high`` (top) to ``low`` (bottom), ends labelled."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose one of {sorted(COLORMAPS)}")
    low, high = value_range
    scale = max(0.5, min(1.0, height / 320))  # ≥ 0.5: labels ~11 px tall, readable when the map is shown small
    thickness = 1
    labels = [_label(high), _label(low)]
    text_w = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for t in labels)
    text_h = cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][1]
    strip = max(10, height // 16)
    width = width or strip + text_w + 12
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    margin = text_h + 4
    span = max(1, height - 2 * margin)
    ramp = np.linspace(255, 0, span).astype(np.uint8)[:, None]  # top = high
    coloured = cv2.cvtColor(cv2.applyColorMap(np.repeat(ramp, strip, axis=1), COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
    canvas[margin:margin + span, 2:2 + strip] = coloured
    cv2.rectangle(canvas, (1, margin - 1), (2 + strip, margin + span), (80, 80, 80), 1)  # frame, outside the ramp
    x_text = strip + 6
    cv2.putText(canvas, labels[0], (x_text, margin + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness,
                cv2.LINE_AA)
    cv2.putText(canvas, labels[1], (x_text, margin + span), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness,
                cv2.LINE_AA)
    return canvas


def with_colorbar(picture: np.ndarray, colormap: str, value_range: tuple[float, float]) -> np.ndarray:
    """``picture`` with its colour bar attached on the right (one image: the scale travels with it)."""
    bar = colorbar(colormap, value_range, picture.shape[0])
    gap = np.full((picture.shape[0], 4, 3), 255, dtype=np.uint8)
    return np.concatenate([picture, gap, bar], axis=1)


def to_png(array: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the overlay as PNG")
    return encoded.tobytes()
