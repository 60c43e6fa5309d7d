"""Gemma 4: an aspect-preserving whole-image resize, patches average-pooled k×k into soft tokens.

The image processor resizes the whole image (no crop, no padding of pixels) to the largest size
whose sides are multiples of ``patch·k`` within the patch budget, cuts it into patches and records
each patch's ``(x, y)`` in ``image_position_ids`` (−1 pads the patch list to a fixed length).
``Gemma4VisionPooler`` averages every k×k block of patches into one soft token, indexed
``x//k + (width//k)·(y//k)``: row-major over the pooled grid, and padding is dropped. So each
image token covers an equal share of the original image, on a grid read from the position ids.
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


def pooled_grid(position_ids: np.ndarray, kernel: int) -> tuple[int, int]:
    """(rows, cols) of soft tokens for one image's ``image_position_ids`` (``[patches, 2]`` of x, y; −1 pads)."""
    real = position_ids[(position_ids >= 0).all(axis=-1)]
    if len(real) == 0:
        raise LayoutError("Gemma 4: the image has no patches")
    width, height = int(real[:, 0].max()) + 1, int(real[:, 1].max()) + 1
    if width % kernel or height % kernel:
        raise LayoutError(f"Gemma 4: a {height}×{width} patch grid does not pool by {kernel}")
    return height // kernel, width // kernel


class Gemma4Adapter:
    family = "Gemma 4"
    model_types: tuple[str, ...] = ("gemma4",)
    components = Components(projector="model.embed_vision")
    token_order = "row-major over the k×k-pooled patch grid of the aspect-preserving resize"

    def layout(self, config: Any, processor: Any, input_ids: np.ndarray, image: Any,
               inputs: Mapping[str, Any]) -> ImageLayout:
        ids = inputs.get("image_position_ids")
        if ids is None:
            raise LayoutError("Gemma 4: the processor output has no image_position_ids")
        ids = np.asarray(ids)
        ids = ids.reshape(-1, *ids.shape[-2:])
        if len(ids) != 1:
            raise LayoutError(f"Gemma 4: one image per prompt is supported, got {len(ids)}")
        kernel = int(config.vision_config.pooling_kernel_size)
        patch = int(config.vision_config.patch_size)
        rows, cols = pooled_grid(ids[0], kernel)
        positions = image_token_positions(input_ids, int(config.image_token_id))
        if len(positions) != rows * cols:
            raise LayoutError(f"Gemma 4: found {len(positions)} image tokens, the {rows}×{cols} pooled grid needs "
                              f"{rows * cols}")
        width, height = int(image.width), int(image.height)
        boxes = uniform_boxes(rows, cols, (0.0, 0.0, float(width), float(height)))
        side = patch * kernel
        note = (f"{rows}×{cols} soft tokens ({kernel}×{kernel} pooled patches of {patch}px) on a "
                f"{cols * side}×{rows * side}px aspect-preserving resize")
        order = f"row-major over the {rows}×{cols} grid of {kernel}×{kernel}-pooled patches"
        return ImageLayout(str(config.model_type), (width, height),
                           (GridView("image", positions.reshape(rows, cols), boxes),), positions, note,
                           (TokenSegment("image", rows, cols),), order)

    def per_image(self, config: Any, inputs: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        """Each image's ``image_position_ids``: its pooled grid's ``rows·cols`` soft tokens."""
        ids = np.asarray(inputs["image_position_ids"])
        ids = ids.reshape(-1, *ids.shape[-2:])
        kernel = int(config.vision_config.pooling_kernel_size)
        out = []
        for i in range(len(ids)):
            rows, cols = pooled_grid(ids[i], kernel)
            out.append((rows * cols, {"image_position_ids": ids[i:i + 1]}))
        return out
