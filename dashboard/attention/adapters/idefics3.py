"""Idefics3 / SmolVLM: the image is resized, split into square tiles (rows × cols) plus a global view.

Prompt layout (processing_idefics3.replace_image_token): for each tile, row-major,
``<fake><row_r_col_c>`` + ``<image>``×seq_len; then the global view ``<fake><global-img>``
+ ``<image>``×seq_len ``<fake>``. Without splitting only the global view is present. Inside a
tile the connector's pixel shuffle keeps the reduced grid row-major.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from dashboard.attention.adapters.base import (
    Components,
    GridView,
    ImageLayout,
    LayoutError,
    TokenSegment,
    contiguous_runs,
    image_token_positions,
    size_value,
    uniform_boxes,
)


def _rows_cols(processor: Any, inputs: Mapping[str, Any], image: Any) -> tuple[int, int]:
    if "rows" in inputs and "cols" in inputs:
        return int(np.asarray(inputs["rows"]).reshape(-1)[0]), int(np.asarray(inputs["cols"]).reshape(-1)[0])
    if image is None:
        raise LayoutError("Idefics3: need the image (or rows/cols from the processor) to know the tile split")
    info = processor.image_processor(images=[[image]], return_row_col_info=True, return_tensors="np")
    return int(np.asarray(info["rows"]).reshape(-1)[0]), int(np.asarray(info["cols"]).reshape(-1)[0])


class Idefics3Adapter:
    family = "Idefics3 / SmolVLM"
    model_types: tuple[str, ...] = ("idefics3", "smolvlm")
    components = Components(text_model="model.text_model", vision_tower="model.vision_model",
                            projector="model.connector")
    token_order = "tile by tile (each tile row-major), then the global view"

    def layout(self, config: Any, processor: Any, input_ids: np.ndarray, image: Any,
               inputs: Mapping[str, Any]) -> ImageLayout:
        image_size = (int(image.width), int(image.height))
        vision = config.vision_config
        tile_px, patch = int(vision.image_size), int(vision.patch_size)
        scale = int(getattr(config, "scale_factor", 2))
        side = tile_px // patch // scale
        seq_len = side * side
        positions = image_token_positions(input_ids, int(config.image_token_id))
        runs = contiguous_runs(positions)
        if any(len(r) != seq_len for r in runs):
            raise LayoutError(f"Idefics3: image-token runs of lengths {sorted({len(r) for r in runs})}, "
                              f"expected {seq_len} per tile ({tile_px}px / {patch}px / scale {scale})")
        rows, cols = _rows_cols(processor, inputs, image)
        n_tiles = rows * cols
        if len(runs) != n_tiles + 1:
            raise LayoutError(f"Idefics3: {len(runs)} image-token runs, expected {n_tiles} tiles + 1 global view "
                              "(one image per prompt is supported)")
        max_edge = size_value(getattr(processor.image_processor, "max_image_size", None), "longest_edge")
        if max_edge and int(max_edge) != tile_px:
            raise LayoutError(f"Idefics3: processor tiles of {max_edge}px but the vision tower takes {tile_px}px")
        width, height = image_size
        full = (0.0, 0.0, float(width), float(height))
        views = []
        if n_tiles:
            # The resized image is exactly rows*tile × cols*tile (both resizes scale the whole image).
            stitched = np.empty((rows * side, cols * side), dtype=np.int64)
            for k in range(n_tiles):
                r, c = divmod(k, cols)
                stitched[r * side:(r + 1) * side, c * side:(c + 1) * side] = runs[k].reshape(side, side)
            views.append(GridView("tiles", stitched, uniform_boxes(rows * side, cols * side, full)))
        views.append(GridView("global", runs[-1].reshape(side, side), uniform_boxes(side, side, full)))
        note = (f"{rows}×{cols} tiles + global view, {side}×{side} tokens each" if n_tiles
                else f"global view only, {side}×{side} tokens")
        segments = (*(TokenSegment("tile", side, side, k + 1, f"t{k + 1}") for k in range(n_tiles)),
                    TokenSegment("global view", side, side, short="g"))
        order = (f"tile by tile over the {rows}×{cols} tiles (row by row), each tile's {side}×{side} tokens "
                 f"row-major, then the global view's {side}×{side}" if n_tiles
                 else f"the global view's {side}×{side} tokens, row-major (no tiles)")
        return ImageLayout(str(config.model_type), image_size, tuple(views), positions, note, segments, order)


def expected_tiles(height: int, width: int, tile: int) -> tuple[int, int]:
    """Tile rows/cols for an image already resized to multiples of ``tile`` (used in tests)."""
    return math.ceil(height / tile), math.ceil(width / tile)
