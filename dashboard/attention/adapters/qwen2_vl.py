"""Qwen2-VL / Qwen2.5-VL: dynamic resolution; ``image_grid_thw`` gives the patch grid, merged 2×2.

The processor resizes the whole image (no crop) to multiples of patch×merge, the vision tower
emits patches in (row-block, col-block, 2×2) order and the merger fuses each 2×2 block, so the
image tokens are row-major over the merged ``(h / merge, w / merge)`` grid. Qwen2.5-VL's window
attention reorders internally and restores the order before the merger output. Qwen3-VL keeps the
layout (16px patches); its deepstack adds vision features to early decoder layers at the same
image-token positions, so the map is unchanged.
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
    uniform_boxes,
)


class Qwen2VLAdapter:
    family = "Qwen2-VL / Qwen2.5-VL"
    model_types: tuple[str, ...] = ("qwen2_vl", "qwen2_5_vl")
    # The merger (Qwen2-VL's projector) lives inside ``visual``: the vision tower's output is already projected.
    components = Components(vision_tower="model.visual", projector="model.visual.merger")
    token_order = "row-major over the merged 2×2 patch grid"

    def layout(self, config: Any, processor: Any, input_ids: np.ndarray, image: Any,
               inputs: Mapping[str, Any]) -> ImageLayout:
        image_size = (int(image.width), int(image.height))
        thw = inputs.get("image_grid_thw")
        if thw is None:
            raise LayoutError("Qwen2-VL: the processor output has no image_grid_thw")
        thw = np.asarray(thw).reshape(-1, 3)
        if len(thw) != 1:
            raise LayoutError(f"Qwen2-VL: one image per prompt is supported, got {len(thw)}")
        t, h, w = (int(v) for v in thw[0])
        merge = int(getattr(config.vision_config, "spatial_merge_size", 2))
        patch = int(getattr(config.vision_config, "patch_size", 14))
        rows, cols = h // merge, w // merge
        positions = image_token_positions(input_ids, int(config.image_token_id))
        if len(positions) != t * rows * cols:
            raise LayoutError(f"Qwen2-VL: found {len(positions)} image tokens, grid_thw {t}×{h}×{w} with merge {merge} "
                              f"needs {t * rows * cols}")
        if t != 1:
            raise LayoutError("Qwen2-VL: still images only (temporal patches t=1)")
        width, height = image_size
        # Whole-image resize to (h*patch, w*patch): each merged cell covers an equal share of the original.
        boxes = uniform_boxes(rows, cols, (0.0, 0.0, float(width), float(height)))
        note = (f"{rows}×{cols} merged cells ({merge}×{merge} patches of {patch}px) on a "
                f"{w * patch}×{h * patch}px resize")
        order = f"row-major over the {rows}×{cols} grid of merged {merge}×{merge} patches"
        return ImageLayout(str(config.model_type), image_size,
                           (GridView("image", positions.reshape(rows, cols), boxes),), positions, note,
                           (TokenSegment("image", rows, cols),), order)


    def per_image(self, config: Any, inputs: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        """Each image's ``image_grid_thw`` row: ``t·h·w / merge²`` tokens (the merger's output per image)."""
        merge = int(getattr(config.vision_config, "spatial_merge_size", 2))
        thw = np.asarray(inputs["image_grid_thw"]).reshape(-1, 3)
        return [(int(np.prod(row)) // (merge * merge), {"image_grid_thw": thw[i:i + 1]}) for i, row in enumerate(thw)]


class Qwen3VLAdapter(Qwen2VLAdapter):
    family = "Qwen3-VL"
    model_types: tuple[str, ...] = ("qwen3_vl",)
