"""InternVL: the image resized onto a rows×cols canvas of square tiles, plus a thumbnail; pixel shuffle 0.5.

The GotOcr2 image processor (``crop_to_patches``) picks the canvas with the closest aspect ratio
(``get_optimal_tiled_canvas``), resizes the whole image to exactly ``rows·S × cols·S``, cuts the
tiles row-major and, with more than one tile, appends the whole image resized to ``S×S``. The
prompt holds one ``<img>…</img>`` run: each tile's tokens row-major (``pixel_shuffle`` merges
2×2 patches and keeps row-major order), then the thumbnail's.
"""

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
    image_token_positions,
    size_value,
    uniform_boxes,
)


def tile_grid(processor: Any, width: int, height: int) -> tuple[int, int]:
    """(rows, cols) of tiles the processor cuts for an image of this size (1×1: no tiles, the whole image)."""
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

    ip = processor.image_processor
    if not getattr(ip, "crop_to_patches", False):
        return 1, 1
    tile = int(size_value(ip.size, "height"))
    cols, rows = get_optimal_tiled_canvas((height, width), (tile, tile), int(ip.min_patches), int(ip.max_patches))
    return int(rows), int(cols)


class InternVLAdapter:
    family = "InternVL"
    model_types: tuple[str, ...] = ("internvl",)
    components = Components()
    token_order = "tile by tile (each tile row-major), then the thumbnail"

    def layout(self, config: Any, processor: Any, input_ids: np.ndarray, image: Any,
               inputs: Mapping[str, Any]) -> ImageLayout:
        width, height = int(image.width), int(image.height)
        vision = config.vision_config
        tile_px = int(np.ravel(vision.image_size)[0])
        patch = int(np.ravel(vision.patch_size)[0])
        side = int(tile_px // patch * float(config.downsample_ratio))
        per = side * side
        positions = image_token_positions(input_ids, int(config.image_token_id))
        rows, cols = tile_grid(processor, width, height)
        n_tiles = rows * cols if rows * cols > 1 else 0
        expected = (n_tiles + 1) * per
        if len(positions) != expected:
            raise LayoutError(f"InternVL: found {len(positions)} image tokens, expected {expected} ({n_tiles} tiles + "
                              f"{'thumbnail' if n_tiles else 'the whole image'}, {side}×{side} each; one image per "
                              "prompt is supported)")
        full = (0.0, 0.0, float(width), float(height))
        views = []
        if n_tiles:
            stitched = np.empty((rows * side, cols * side), dtype=np.int64)
            for k in range(n_tiles):
                r, c = divmod(k, cols)
                stitched[r * side:(r + 1) * side, c * side:(c + 1) * side] = positions[k * per:(k + 1) * per].reshape(
                    side, side)
            views.append(GridView("tiles", stitched, uniform_boxes(rows * side, cols * side, full)))
        name = "thumbnail" if n_tiles else "image"
        views.append(GridView(name, positions[n_tiles * per:].reshape(side, side), uniform_boxes(side, side, full)))
        note = (f"{rows}×{cols} tiles + thumbnail, {side}×{side} tokens each" if n_tiles
                else f"the whole image, {side}×{side} tokens")
        segments = (*(TokenSegment("tile", side, side, k + 1, f"t{k + 1}") for k in range(n_tiles)),
                    TokenSegment(name, side, side, short="th" if n_tiles else ""))
        order = (f"tile by tile over the {rows}×{cols} tiles (row by row), each tile's {side}×{side} tokens "
                 f"row-major, then the thumbnail's {side}×{side}" if n_tiles
                 else f"the image's {side}×{side} tokens, row-major (one tile)")
        return ImageLayout("internvl", (width, height), tuple(views), positions, note, segments, order)
