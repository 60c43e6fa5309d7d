"""LLaVA(-1.5) family: one fixed square grid of patches, row-major, after the processor's resize/crop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dashboard.attention.adapters.base import (
    Components,
    GridView,
    ImageLayout,
    LayoutError,
    TokenSegment,
    config_value,
    image_token_positions,
    size_value,
)


def _geometry(image_processor: Any, image_size: tuple[int, int], target: int) -> tuple[float, float, float, float,
                                                                                        float, float]:
    """Affine map processed-pixel -> original-pixel as (scale_x, scale_y, offset_x, offset_y, out_w, out_h).

    Follows the CLIP/LLaVA image processors: optional pad-to-square, resize (shortest edge or
    fixed height/width), optional centre crop.
    """
    w, h = (float(v) for v in image_size)
    pad_x = pad_y = 0.0
    if getattr(image_processor, "do_pad", False):  # LLaVA's expand-to-square, centred
        side = max(w, h)
        pad_x, pad_y = (side - w) // 2, (side - h) // 2
        w = h = side
    rw, rh = w, h
    if getattr(image_processor, "do_resize", True):
        size = getattr(image_processor, "size", None)
        shortest = size_value(size, "shortest_edge")
        if shortest:
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = float(shortest), float(int(shortest * long / short))
            rw, rh = (new_short, new_long) if w <= h else (new_long, new_short)
        elif size_value(size, "height") and size_value(size, "width"):
            rw, rh = float(size_value(size, "width")), float(size_value(size, "height"))
    left = top = 0.0
    out_w, out_h = rw, rh
    if getattr(image_processor, "do_center_crop", False):
        crop = getattr(image_processor, "crop_size", None)
        cw, ch = float(size_value(crop, "width")), float(size_value(crop, "height"))
        top, left = float(int((rh - ch) / 2.0)), float(int((rw - cw) / 2.0))
        out_w, out_h = cw, ch
    if int(out_w) != target or int(out_h) != target:
        raise LayoutError(f"processor output {int(out_w)}×{int(out_h)} does not match the vision tower's "
                          f"{target}px input")
    sx, sy = w / rw, h / rh
    return sx, sy, left * sx - pad_x, top * sy - pad_y, out_w, out_h


class LlavaAdapter:
    """``<image>`` expands to grid² tokens (or grid²+1 with the CLS token under the "full" strategy)."""

    family = "LLaVA"
    model_types: tuple[str, ...] = ("llava",)
    components = Components()
    token_order = "row-major over the patch grid"

    def layout(self, config: Any, processor: Any, input_ids: np.ndarray, image: Any,
               inputs: Mapping[str, Any]) -> ImageLayout:
        image_size = (int(image.width), int(image.height))
        vision = config.vision_config
        image_px, patch = int(vision.image_size), int(vision.patch_size)
        grid = image_px // patch
        token_id = int(config_value(config, "image_token_id", "image_token_index"))
        positions = image_token_positions(input_ids, token_id)
        expected = grid * grid
        if config_value(config, "vision_feature_select_strategy", default="default") == "full":
            expected += 1
        if len(positions) != expected:
            raise LayoutError(f"LLaVA: found {len(positions)} image tokens, expected {expected} for a "
                              f"{grid}×{grid} grid (one image per prompt is supported)")
        grid_positions = positions[-grid * grid:].reshape(grid, grid)  # "full" keeps CLS first: drop it
        sx, sy, ox, oy, _, _ = _geometry(processor.image_processor, image_size, image_px)
        xs = np.arange(grid + 1) * patch * sx + ox
        ys = np.arange(grid + 1) * patch * sy + oy
        boxes = np.empty((grid, grid, 4))
        boxes[..., 0], boxes[..., 2] = xs[None, :-1], xs[None, 1:]
        boxes[..., 1], boxes[..., 3] = ys[:-1, None], ys[1:, None]
        note = f"{grid}×{grid} patches of {patch}px on a {image_px}px input"
        segments: tuple[TokenSegment, ...] = (TokenSegment("image", grid, grid),)
        order = f"row-major over the {grid}×{grid} patch grid"
        if len(positions) > grid * grid:
            segments = (TokenSegment("CLS token", 1, 1, short="cls"), TokenSegment("image", grid, grid, short="p"))
            order = "the CLS token, then " + order
        return ImageLayout("llava", image_size, (GridView("image", grid_positions, boxes),), positions, note,
                           segments, order)
