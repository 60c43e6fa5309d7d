"""PaliGemma and Gemma 3: the whole image is resized (no crop) to the SigLIP tower's square input.

PaliGemma's prompt holds one image token per patch, row-major. Gemma 3 average-pools the patch
grid to ``mm_tokens_per_image`` soft tokens, still row-major over a square grid. Either way each
token covers an equal share of the original image.
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
    image_token_positions,
    uniform_boxes,
)


class SquareGridAdapter:
    """One square grid of ``side²`` image tokens covering the whole (stretched) image."""

    def __init__(self, family: str, model_types: tuple[str, ...], tokens_per_image: str | None) -> None:
        self.family = family
        self.model_types = model_types
        self.components = Components()
        self.token_order = "row-major over a square grid covering the whole (resized) image"
        self._tokens_config = tokens_per_image  # config attribute with the token count; None: (image/patch)²

    def _side(self, config: Any) -> int:
        if self._tokens_config is not None:
            count = int(getattr(config, self._tokens_config))
        else:
            count = (int(config.vision_config.image_size) // int(config.vision_config.patch_size)) ** 2
        side = math.isqrt(count)
        if side * side != count:
            raise LayoutError(f"{self.family}: {count} image tokens do not form a square grid")
        return side

    def layout(self, config: Any, processor: Any, input_ids: np.ndarray, image: Any,
               inputs: Mapping[str, Any]) -> ImageLayout:
        side = self._side(config)
        positions = image_token_positions(input_ids, int(config.image_token_id))
        if len(positions) != side * side:
            raise LayoutError(f"{self.family}: found {len(positions)} image tokens, expected {side * side} "
                              "(one image per prompt is supported)")
        width, height = int(image.width), int(image.height)
        boxes = uniform_boxes(side, side, (0.0, 0.0, float(width), float(height)))
        note = f"{side}×{side} tokens over the whole image (resized to the vision tower's square input)"
        return ImageLayout(str(config.model_type), (width, height),
                           (GridView("image", positions.reshape(side, side), boxes),), positions, note,
                           (TokenSegment("image", side, side),), f"row-major over the {side}×{side} grid")
