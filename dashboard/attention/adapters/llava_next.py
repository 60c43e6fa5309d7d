"""LLaVA-NeXT and LLaVA-OneVision: a stretched base image, then unpadded any-res tiles, a newline per row.

Follows transformers' ``LlavaNextModel.pack_image_features`` and the image processor:

* ``pixel_values[0]`` is the whole image resized (stretched) to the tower's square input: its
  ``g×g`` patch tokens come first, row-major, each an equal share of the original image;
* the image is resized keeping its aspect to fit the best pinpoint resolution, pasted centred on a
  black canvas of that resolution and cut into square tiles; the tiles' patch features are stitched
  into one ``(tiles_h·g) × (tiles_w·g)`` grid, ``unpad_image`` drops the rows (or columns) that are
  pure padding, and ``image_newline`` is appended after every remaining row.

So each high-resolution token maps back through the paste offset and the aspect-preserving scale;
boxes are clipped to the image where a kept edge row still straddles the padding.

LLaVA-OneVision packs the same way (SigLIP tower: no CLS, so its "full" strategy keeps every
patch) but bilinearly shrinks the unpadded grid when it exceeds ``anyres_max_N`` tiles by more
than 10 %; then each token blends neighbouring patches and has no box, which the layout says.
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
    config_value,
    image_token_positions,
    uniform_boxes,
)


def best_resolution(height: int, width: int, pinpoints: list[list[int]]) -> tuple[int, int]:
    """transformers' ``select_best_resolution``: most effective pixels, then least waste; (height, width)."""
    from transformers.image_processing_utils import select_best_resolution

    h, w = select_best_resolution((height, width), [list(p) for p in pinpoints])
    return int(h), int(w)


def resized_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """``get_patch_output_size``: the aspect-preserving size inside ``target`` (height, width)."""
    th, tw = target
    scale_w, scale_h = tw / width, th / height
    if scale_w < scale_h:
        return min(int(np.ceil(height * scale_w)), th), tw
    return th, min(int(np.ceil(width * scale_h)), tw)


def unpadded_rows_cols(height: int, width: int, rows: int, cols: int) -> tuple[int, int, int, int]:
    """``unpad_image`` on a ``rows×cols`` feature grid: (first row, row count, first col, col count) kept."""
    if width / height > cols / rows:
        new_rows = int(round(height * (cols / width), 7))
        pad = (rows - new_rows) // 2
        return pad, rows - 2 * pad, 0, cols
    new_cols = int(round(width * (rows / height), 7))
    pad = (cols - new_cols) // 2
    return 0, rows, pad, cols - 2 * pad


class LlavaNextAdapter:
    family = "LLaVA-NeXT"
    model_types: tuple[str, ...] = ("llava_next",)
    components = Components()
    token_order = ("the base image row-major, then the unpadded tile grid row by row, "
                   "a newline token after each row")

    def _check_strategy(self, config: Any) -> None:
        if config_value(config, "vision_feature_select_strategy", default="default") != "default":
            raise LayoutError(f"{self.family}: only the 'default' feature strategy (CLS dropped) is mapped")

    def _check_resampling(self, config: Any, rows: int, cols: int, g: int) -> None:
        """LLaVA-NeXT keeps the unpadded grid as is."""

    def per_image(self, config: Any, inputs: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        """Each image's ``image_sizes`` row: its base grid plus its unpadded tile grid and newlines."""
        g = int(config.vision_config.image_size) // int(config.vision_config.patch_size)
        tile_px = int(config.vision_config.image_size)
        out = []
        for height, width in np.asarray(inputs["image_sizes"]).reshape(-1, 2).tolist():
            best_h, best_w = best_resolution(int(height), int(width), [list(p) for p in config.image_grid_pinpoints])
            _, n_rows, _, n_cols = unpadded_rows_cols(int(height), int(width), best_h // tile_px * g,
                                                      best_w // tile_px * g)
            self._check_resampling(config, n_rows, n_cols, g)
            out.append((g * g + n_rows * (n_cols + 1), {"image_sizes": np.asarray([[height, width]])}))
        return out

    def layout(self, config: Any, processor: Any, input_ids: np.ndarray, image: Any,
               inputs: Mapping[str, Any]) -> ImageLayout:
        width, height = int(image.width), int(image.height)
        vision = config.vision_config
        tile_px, patch = int(vision.image_size), int(vision.patch_size)
        g = tile_px // patch
        self._check_strategy(config)
        pinpoints = [list(p) for p in config.image_grid_pinpoints]
        best_h, best_w = best_resolution(height, width, pinpoints)
        tiles_h, tiles_w = best_h // tile_px, best_w // tile_px
        rows, cols = tiles_h * g, tiles_w * g
        r0, n_rows, c0, n_cols = unpadded_rows_cols(height, width, rows, cols)
        self._check_resampling(config, n_rows, n_cols, g)
        token_id = int(config_value(config, "image_token_id", "image_token_index"))
        positions = image_token_positions(input_ids, token_id)
        expected = g * g + n_rows * (n_cols + 1)
        if len(positions) != expected:
            raise LayoutError(f"{self.family}: found {len(positions)} image tokens, expected {expected} "
                              f"({g}×{g} base + {n_rows} rows of {n_cols} + newline; one image per prompt is "
                              "supported)")
        full = (0.0, 0.0, float(width), float(height))
        base = GridView("base image", positions[:g * g].reshape(g, g), uniform_boxes(g, g, full))
        grid = positions[g * g:].reshape(n_rows, n_cols + 1)
        # canvas pixel -> original pixel: undo the centred paste and the aspect-preserving resize
        new_h, new_w = resized_size(height, width, (best_h, best_w))
        paste_y, paste_x = (best_h - new_h) // 2, (best_w - new_w) // 2
        xs = (np.arange(c0, c0 + n_cols + 1) * patch - paste_x) * (width / new_w)
        ys = (np.arange(r0, r0 + n_rows + 1) * patch - paste_y) * (height / new_h)
        xs, ys = np.clip(xs, 0.0, float(width)), np.clip(ys, 0.0, float(height))
        boxes = np.empty((n_rows, n_cols, 4))
        boxes[..., 0], boxes[..., 2] = xs[None, :-1], xs[None, 1:]
        boxes[..., 1], boxes[..., 3] = ys[:-1, None], ys[1:, None]
        tiles = GridView("tiles", grid[:, :n_cols], boxes)
        note = (f"{g}×{g} base image + {tiles_h}×{tiles_w} tiles of {tile_px}px at {best_w}×{best_h}, "
                f"unpadded to {n_rows}×{n_cols} tokens + a newline per row")
        segments = (TokenSegment("base image", g, g, short="b"),
                    TokenSegment("tile grid", n_rows, n_cols + 1, short="hr", row_end=True))
        order = (f"the base image's {g}×{g} tokens row-major, then the {n_rows}×{n_cols} unpadded tile grid row by "
                 "row, each row followed by a newline token")
        return ImageLayout(str(config.model_type), (width, height), (tiles, base), positions, note, segments, order)


class LlavaOnevisionAdapter(LlavaNextAdapter):
    family = "LLaVA-OneVision"
    model_types: tuple[str, ...] = ("llava_onevision",)
    token_order = LlavaNextAdapter.token_order

    def _check_strategy(self, config: Any) -> None:
        strategy = config_value(config, "vision_feature_select_strategy", default="full")
        has_cls = str(getattr(config.vision_config, "model_type", "")) == "clip_vision_model"
        if (strategy == "default") != has_cls:
            raise LayoutError(f"LLaVA-OneVision: strategy {strategy!r} with a "
                              f"{'CLIP' if has_cls else 'SigLIP'} tower is not mapped")

    def _check_resampling(self, config: Any, rows: int, cols: int, g: int) -> None:
        """``pack_image_features``: above ``anyres_max_N`` tiles (×1.1) the grid is bilinearly shrunk."""
        max_tiles = int(str(getattr(config, "vision_aspect_ratio", "anyres_max_9")).removeprefix("anyres_max_"))
        ratio = math.sqrt(rows * cols / (max_tiles * g * g))
        if ratio > 1.1:
            raise LayoutError(f"LLaVA-OneVision: this image's {rows}×{cols} tile grid is bilinearly shrunk by "
                              f"{ratio:.2f} (more than {max_tiles} tiles), so each token blends neighbouring "
                              "patches and has no pixel box; use a smaller image")
