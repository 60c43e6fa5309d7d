"""The geometry oracle: does each image token's pixel box match what its vision patch actually received?

An adapter claims, per image token, a box in the *original* image. This module checks that claim
against the checkpoint's own processor, independently of the adapter's arithmetic:

1. per view of the adapter's layout, paint the original image so that every token's claimed box is
   one flat colour code (red = column, green = row, blue = 255 marks "from the image", so
   padding is told apart), then run the processor on the painted image;
2. un-normalise ``pixel_values`` with the processor's mean/std/rescale and un-flatten
   family-specific layouts (Qwen's flattened patches) into a stack of images;
3. a per-family *reader* — written from the model's forward code, not from the adapter — says
   which pixels of that stack feed each image token (merged/pooled tokens: the union of their
   patches);
4. each processed pixel is decoded to the nearest code; per token, IoU between the pixels that feed
   it and the pixels that carry its code.

Big flat blocks survive resizing: a processed pixel whose centre lies inside a block is dominated
by that block's colour for any normalised resampling kernel, so decoding by nearest code is exact
away from block edges. Pixels that decode to an even blend of two codes (the edge straddles them)
are left out of both sets: the resolution of the check is one processed pixel.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from PIL import Image

from dashboard.attention.adapters import GridView, LayoutError, adapter_for, layouts_for
from dashboard.attention.adapters.base import config_value, size_value
from dashboard.attention.adapters.multi import image_token_id, supports_several

MAX_CODES = 86  # rows or columns per painted view: code levels stay ≥ 3 apart in 8 bits
UNCLAIMED = 128  # blue of image pixels no box claims (claimed: 255; processor padding: usually 0)
AMBIGUOUS = 0.3  # a decoded level this far from both neighbours (of 0.5) is an edge blend: not counted
PROMPT = "what is it ?"

# (image index in the processed stack, y0, x0, y1, x1) in processed pixels, exclusive ends
PixelRect = tuple[int, int, int, int, int]


class GeometryError(RuntimeError):
    """The oracle cannot check this checkpoint (the message says why)."""


# ------------------------------------------------------------------------------------------ images
def processed_images(processor: Any, config: Any, inputs: Mapping[str, Any]) -> np.ndarray:
    """``pixel_values`` as ``[n, 3, H, W]`` in 0–255 image units (un-normalised, un-flattened)."""
    pixels = np.asarray(inputs["pixel_values"], dtype=np.float64)
    ip = processor.image_processor
    if "image_grid_thw" in inputs:  # Qwen-style flattened patches
        pixels = _unflatten_qwen(pixels, np.asarray(inputs["image_grid_thw"]).reshape(-1, 3), config, ip)
    elif "image_position_ids" in inputs:  # Gemma 4: padded patch lists with (x, y) per patch
        pixels = _unflatten_positioned(pixels, np.asarray(inputs["image_position_ids"]), config)
    else:
        pixels = pixels.reshape(-1, *pixels.shape[-3:])
    if getattr(ip, "do_normalize", False):
        mean = np.asarray(_channels(ip.image_mean), dtype=np.float64).reshape(1, 3, 1, 1)
        std = np.asarray(_channels(ip.image_std), dtype=np.float64).reshape(1, 3, 1, 1)
        pixels = pixels * std + mean
    if getattr(ip, "do_rescale", False):
        pixels = pixels / float(ip.rescale_factor)
    return pixels


def _channels(value: Any) -> list[float]:
    return [float(value)] * 3 if isinstance(value, int | float) else [float(v) for v in value]


def _unflatten_qwen(flat: np.ndarray, grids: np.ndarray, config: Any, ip: Any) -> np.ndarray:
    """Rows of ``C·T·P·P`` in (row-block, col-block, merge-row, merge-col) order → ``[n, C, h·P, w·P]`` (frame 0)."""
    vision = config.vision_config
    patch = int(config_value(vision, "patch_size", default=getattr(ip, "patch_size", 14)))
    merge = int(config_value(vision, "spatial_merge_size", default=getattr(ip, "merge_size", 2)))
    temporal = int(config_value(vision, "temporal_patch_size", default=getattr(ip, "temporal_patch_size", 2)))
    images, start = [], 0
    for t, h, w in (tuple(int(v) for v in row) for row in grids.tolist()):
        count = t * h * w
        block = flat[start:start + count].reshape(t, h // merge, w // merge, merge, merge, 3, temporal, patch, patch)
        start += count
        frame = block[0, ..., 0, :, :]  # [hb, wb, mh, mw, C, P, P]
        image = frame.transpose(4, 0, 2, 5, 1, 3, 6).reshape(3, h * patch, w * patch)
        images.append(image)
    return _stack_padded(images)


def _stack_padded(images: list[np.ndarray]) -> np.ndarray:
    """``[n, C, H, W]`` of images of different sizes, zero-padded at the bottom/right (no reader looks there)."""
    height = max(im.shape[-2] for im in images)
    width = max(im.shape[-1] for im in images)
    out = np.zeros((len(images), images[0].shape[0], height, width))
    for i, im in enumerate(images):
        out[i, :, :im.shape[-2], :im.shape[-1]] = im
    return out


def _unflatten_positioned(patches: np.ndarray, positions: np.ndarray, config: Any) -> np.ndarray:
    """``[n, max_patches, P·P·C]`` patches (row, col, channel inside each) placed at their ``(x, y)``
    → ``[n, C, H, W]``; the −1 padding patches are dropped. Images smaller than the largest are
    zero-padded at the bottom/right (the readers never point there)."""
    patch = int(config.vision_config.patch_size)
    patches = patches.reshape(-1, patches.shape[-2], patch, patch, 3)
    positions = positions.reshape(len(patches), -1, 2)
    real = positions >= 0
    height = int(positions[..., 1].max()) + 1
    width = int(positions[..., 0].max()) + 1
    out = np.zeros((len(patches), 3, height * patch, width * patch))
    for i in range(len(patches)):
        for k in np.flatnonzero(real[i].all(axis=-1)):
            x, y = (int(v) for v in positions[i, k])
            out[i, :, y * patch:(y + 1) * patch, x * patch:(x + 1) * patch] = patches[i, k].transpose(2, 0, 1)
    return out


# ----------------------------------------------------------------------------------------- readers
# Each reader: (config, processor, inputs, positions) -> {sequence position: pixel rects feeding it}, where
# ``positions`` are all image-token positions of the prompt in order (the model scatters image features
# into them in that order, image after image), read from ``input_ids``, not from the adapter.
Reader = Callable[[Any, Any, Mapping[str, Any], np.ndarray], dict[int, list[PixelRect]]]


def _grid_reader(rows: int, cols: int, cell_h: int, cell_w: int, positions: np.ndarray,
                 image: int = 0, oy: int = 0, ox: int = 0) -> dict[int, list[PixelRect]]:
    out: dict[int, list[PixelRect]] = {}
    for k, pos in enumerate(positions.reshape(-1)):
        r, c = divmod(k, cols)
        out[int(pos)] = [(image, oy + r * cell_h, ox + c * cell_w, oy + (r + 1) * cell_h, ox + (c + 1) * cell_w)]
    return out


def _read_llava(config: Any, processor: Any, inputs: Mapping[str, Any],
                positions: np.ndarray) -> dict[int, list[PixelRect]]:
    """CLIP patches row-major over the single input; under "full" the first token is CLS (no pixels)."""
    vision = config.vision_config
    grid = int(vision.image_size) // int(vision.patch_size)
    patch = int(vision.patch_size)
    return _grid_reader(grid, grid, patch, patch, positions[-grid * grid:])


def _read_qwen(config: Any, processor: Any, inputs: Mapping[str, Any],
               positions: np.ndarray) -> dict[int, list[PixelRect]]:
    """The merger fuses each merge×merge block of patches; tokens row-major over the blocks, image after image."""
    vision = config.vision_config
    patch, merge = int(vision.patch_size), int(vision.spatial_merge_size)
    out: dict[int, list[PixelRect]] = {}
    start = 0
    for image, (_, h, w) in enumerate(np.asarray(inputs["image_grid_thw"]).reshape(-1, 3).tolist()):
        count = (h // merge) * (w // merge)
        out.update(_grid_reader(h // merge, w // merge, patch * merge, patch * merge, positions[start:start + count],
                                image=image))
        start += count
    return out


def _read_idefics3(config: Any, processor: Any, inputs: Mapping[str, Any],
                   positions: np.ndarray) -> dict[int, list[PixelRect]]:
    """Pixel shuffle by ``scale_factor``: each token is a scale×scale block of patches; tiles then the global view."""
    vision = config.vision_config
    cell = int(vision.patch_size) * int(getattr(config, "scale_factor", 2))
    side = int(vision.image_size) // cell
    out: dict[int, list[PixelRect]] = {}
    for image in range(len(positions) // (side * side)):
        run = positions[image * side * side:(image + 1) * side * side]
        out.update(_grid_reader(side, side, cell, cell, run, image=image))
    return out


def _read_square(config: Any, processor: Any, inputs: Mapping[str, Any],
                 positions: np.ndarray) -> dict[int, list[PixelRect]]:
    """SigLIP patches row-major; Gemma 3 average-pools them to ``mm_tokens_per_image`` (union of the pooled)."""
    image_px = int(config.vision_config.image_size)
    side = math.isqrt(len(positions))
    cell = image_px // side
    return _grid_reader(side, side, cell, cell, positions)


def _read_llava_next(config: Any, processor: Any, inputs: Mapping[str, Any],
                     positions: np.ndarray) -> dict[int, list[PixelRect]]:
    """``pack_image_features``, image after image: base image (``pixel_values[i][0]``) patches, then the
    stitched tile grid (tiles row-major from ``pixel_values[i][1]``), centre-unpadded (``image_sizes[i]``),
    one newline token (no pixels) per row."""
    from transformers.image_processing_utils import select_best_resolution

    vision = config.vision_config
    tile_px, patch = int(vision.image_size), int(vision.patch_size)
    g = tile_px // patch
    stack = int(np.asarray(inputs["pixel_values"]).shape[1])  # patches per image in the padded batch
    out: dict[int, list[PixelRect]] = {}
    start = 0
    for image, (height, width) in enumerate(np.asarray(inputs["image_sizes"]).reshape(-1, 2).tolist()):
        first = image * stack
        out.update(_grid_reader(g, g, patch, patch, positions[start:start + g * g], image=first))
        best_h, best_w = select_best_resolution((int(height), int(width)),
                                                [list(p) for p in config.image_grid_pinpoints])
        tiles_w = int(best_w) // tile_px
        rows, cols = int(best_h) // patch, int(best_w) // patch
        # unpad_image (modeling code): keep the rows (or columns) the resized image covers, centred
        if width / height > cols / rows:
            kept_rows = int(round(height * (cols / width), 7))
            kept = (rows - 2 * ((rows - kept_rows) // 2), cols)
        else:
            kept_cols = int(round(width * (rows / height), 7))
            kept = (rows, cols - 2 * ((cols - kept_cols) // 2))
        r0, c0 = (rows - kept[0]) // 2, (cols - kept[1]) // 2
        count = kept[0] * (kept[1] + 1)
        grid = positions[start + g * g:start + g * g + count].reshape(kept[0], kept[1] + 1)
        start += g * g + count
        for r in range(kept[0]):
            for c in range(kept[1]):
                R, C = r0 + r, c0 + c
                tile = first + 1 + (R // g) * tiles_w + C // g
                y, x = (R % g) * patch, (C % g) * patch
                out[int(grid[r, c])] = [(tile, y, x, y + patch, x + patch)]
    return out


def _read_internvl(config: Any, processor: Any, inputs: Mapping[str, Any],
                   positions: np.ndarray) -> dict[int, list[PixelRect]]:
    """``pixel_shuffle`` (0.5): each token is a 2×2 block of patches of one ``pixel_values`` image, in order."""
    vision = config.vision_config
    tile_px, patch = int(np.ravel(vision.image_size)[0]), int(np.ravel(vision.patch_size)[0])
    cell = round(patch / float(config.downsample_ratio))
    side = tile_px // cell
    out: dict[int, list[PixelRect]] = {}
    for image in range(len(positions) // (side * side)):
        out.update(_grid_reader(side, side, cell, cell, positions[image * side * side:(image + 1) * side * side],
                                image=image))
    return out


def _read_gemma4(config: Any, processor: Any, inputs: Mapping[str, Any],
                 positions: np.ndarray) -> dict[int, list[PixelRect]]:
    """``Gemma4VisionPooler``: soft token ``x//k + (W//k)·(y//k)`` averages the k×k patches at those
    ``image_position_ids``; padding patches (−1) are dropped, so tokens run row-major over the pooled grid,
    image after image."""
    vision = config.vision_config
    patch, kernel = int(vision.patch_size), int(vision.pooling_kernel_size)
    all_ids = np.asarray(inputs["image_position_ids"])
    all_ids = all_ids.reshape(-1, *all_ids.shape[-2:])
    out: dict[int, list[PixelRect]] = {}
    start = 0
    for image, ids in enumerate(all_ids):
        ids = ids[(ids >= 0).all(axis=-1)]
        cols = (int(ids[:, 0].max()) + 1) // kernel
        rows = (int(ids[:, 1].max()) + 1) // kernel
        out.update(_grid_reader(rows, cols, patch * kernel, patch * kernel, positions[start:start + rows * cols],
                                image=image))
        start += rows * cols
    return out


READERS: dict[str, Reader] = {
    "gemma4": _read_gemma4,
    "internvl": _read_internvl,
    "llava_next": _read_llava_next, "llava_onevision": _read_llava_next,
    "llava": _read_llava, "qwen2_vl": _read_qwen, "qwen2_5_vl": _read_qwen, "qwen3_vl": _read_qwen,
    "idefics3": _read_idefics3, "smolvlm": _read_idefics3, "paligemma": _read_square, "gemma3": _read_square,
}


# ---------------------------------------------------------------------------------------- painting
def _levels(n: int) -> np.ndarray:
    return np.linspace(0.0, 255.0, n) if n > 1 else np.array([128.0])


def paint(view: GridView, size: tuple[int, int]) -> Image.Image:
    """The original-size image with each of ``view``'s boxes one flat code (pixel centres decide the box)."""
    rows, cols = view.shape
    if rows > MAX_CODES or cols > MAX_CODES:
        raise GeometryError(f"view {view.name!r} is {rows}×{cols} tokens; one painting codes at most {MAX_CODES} "
                            "per side (use smaller images)")
    width, height = size
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    # each box's claimed region; later boxes win where claims overlap (they should not within a view)
    col_of = np.full(width, -1)
    row_of = np.full(height, -1)
    x0, x1 = view.boxes[0, :, 0], view.boxes[0, :, 2]
    y0, y1 = view.boxes[:, 0, 1], view.boxes[:, 0, 3]
    for c in range(cols):
        col_of[(xs >= x0[c]) & (xs < x1[c])] = c
    for r in range(rows):
        row_of[(ys >= y0[r]) & (ys < y1[r])] = r
    red, green = _levels(cols), _levels(rows)
    # unclaimed pixels carry the nearest box's red/green (only blue differs), so a resampled edge
    # between them and a box blends blue alone and never fakes another box's code
    arr[..., 0] = np.round(red[_nearest(col_of, xs, (x0 + x1) / 2)])[None, :]
    arr[..., 1] = np.round(green[_nearest(row_of, ys, (y0 + y1) / 2)])[:, None]
    outside = (col_of[None, :] < 0) | (row_of[:, None] < 0)
    arr[..., 2] = np.where(outside, UNCLAIMED, 255)  # unclaimed image content counts against a token fed by it
    return Image.fromarray(arr)


def _nearest(index: np.ndarray, centres: np.ndarray, box_centres: np.ndarray) -> np.ndarray:
    """``index`` with every −1 replaced by the box whose centre is nearest."""
    nearest = np.abs(centres[:, None] - box_centres[None, :]).argmin(axis=1)
    return np.where(index >= 0, index, nearest)


def _is_grid_aligned(view: GridView) -> bool:
    """Paint needs boxes on a tensor grid (column edges shared by every row); every adapter's views are."""
    b = view.boxes
    return bool(np.allclose(b[..., 0], b[:1, :, 0]) and np.allclose(b[..., 2], b[:1, :, 2])
                and np.allclose(b[..., 1], b[:, :1, 1]) and np.allclose(b[..., 3], b[:, :1, 3]))


def decode(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``[n, H, W]`` code ``row·cols + col`` per processed pixel; −2 unclaimed image; −1 padding or an edge blend."""
    red, green, blue = images[:, 0], images[:, 1], images[:, 2]
    c_hat = red * (cols - 1) / 255.0 if cols > 1 else np.zeros_like(red)
    r_hat = green * (rows - 1) / 255.0 if rows > 1 else np.zeros_like(green)
    c, r = np.rint(c_hat), np.rint(r_hat)
    b_hat = blue / float(255 - UNCLAIMED)  # 0 padding, ~1 unclaimed, ~2 claimed
    b = np.rint(b_hat)
    clear = (np.abs(c_hat - c) < AMBIGUOUS) & (np.abs(r_hat - r) < AMBIGUOUS) & (np.abs(b_hat - b) < AMBIGUOUS)
    clear &= (c >= 0) & (c < cols) & (r >= 0) & (r < rows)
    codes = np.where(clear & (b == 2), r * cols + c, -1)
    codes = np.where((np.abs(b_hat - b) < AMBIGUOUS) & (b == 1), -2, codes)
    return codes.astype(np.int64)


# ------------------------------------------------------------------------------------------ checks
@dataclass(frozen=True)
class TokenCheck:
    position: int
    view: str
    row: int
    col: int
    iou: float
    box: tuple[float, float, float, float]
    image: int = 0  # which image of the prompt (0-based, prompt order)


@dataclass(frozen=True)
class CaseResult:
    size: tuple[int, int]
    tokens: tuple[TokenCheck, ...]
    sizes: tuple[tuple[int, int], ...] = ()  # every image of the prompt (several-image cases)

    @property
    def min_iou(self) -> float:
        return min((t.iou for t in self.tokens), default=0.0)

    def worst(self) -> TokenCheck | None:
        return min(self.tokens, key=lambda t: t.iou, default=None)


class Oracle:
    """One checkpoint's config + processor: build prompt inputs for one or several images and check them."""

    def __init__(self, config: Any, processor: Any, name: str = "checkpoint") -> None:
        self.config = config
        self.processor = processor
        self.model_type = str(config.model_type)
        self.adapter = adapter_for(self.model_type)  # no adapter: UnsupportedFamily says why, before anything runs
        self.reader = READERS.get(self.model_type)
        if self.reader is None:
            raise GeometryError(f"no pixel reader for {self.model_type}: the oracle cannot check it")
        self._shim = cast(Any, SimpleNamespace(processor=processor, path=Path(name)))

    def inputs(self, image: Image.Image | list[Image.Image]) -> dict[str, Any]:
        from dashboard.generation import format_prompt

        images = [image] if isinstance(image, Image.Image) else image
        text = format_prompt(self._shim, PROMPT, images=len(images))
        out = self.processor(images=[im.convert("RGB") for im in images], text=[text], return_tensors="np")
        return {k: np.asarray(v) for k, v in dict(out).items()}

    def check(self, size: tuple[int, int], *more: tuple[int, int]) -> CaseResult:
        """Check one prompt holding an image of each size: every token's box against the pixels that feed it.

        With several images, one image at a time is painted (the others one flat "unclaimed" colour), so a
        token mapped to the wrong image, or fed by another image's pixels, scores low.
        """
        sizes = (size, *more)
        blanks = [Image.new("RGB", s, (128, 128, 128)) for s in sizes]
        inputs = self.inputs(blanks)
        layouts = layouts_for(self.config, self.processor, inputs["input_ids"], blanks, inputs)
        positions = np.flatnonzero(np.asarray(inputs["input_ids"]).reshape(-1) == image_token_id(self.config,
                                                                                                  self.adapter))
        assert self.reader is not None
        sources = self.reader(self.config, self.processor, inputs, positions)
        checks: list[TokenCheck] = []
        for index, layout in enumerate(layouts):
            for view in layout.views:
                if not _is_grid_aligned(view):
                    raise GeometryError(f"view {view.name!r}: boxes are not on a grid; cannot paint")
                painted = [paint(view, s) if k == index else _foreign(s) for k, s in enumerate(sizes)]
                p_inputs = self.inputs(painted)
                if not np.array_equal(p_inputs["input_ids"], inputs["input_ids"]):
                    raise LayoutError("the painted image changed the prompt layout")
                checks.extend(_score_view(view, index, sources, processed_images(self.processor, self.config,
                                                                                p_inputs)))
        return CaseResult(size, tuple(checks), sizes)


def _foreign(size: tuple[int, int]) -> Image.Image:
    """An image none of the painted view's boxes lies in: every pixel decodes as unclaimed content."""
    return Image.new("RGB", size, (0, 0, UNCLAIMED))


def _score_view(view: GridView, image: int, sources: dict[int, list[PixelRect]],
                images: np.ndarray) -> list[TokenCheck]:
    rows, cols = view.shape
    codes = decode(images, rows, cols)
    owned = np.zeros(codes.shape, dtype=bool)  # pixels feeding some token of this view
    for pos in view.positions.reshape(-1):
        for i, y0, x0, y1, x1 in sources.get(int(pos), []):
            owned[i, y0:y1, x0:x1] = True
    clear = codes != -1
    checks = []
    for (r, c), pos in np.ndenumerate(view.positions):
        mine = np.zeros(codes.shape, dtype=bool)
        for i, y0, x0, y1, x1 in sources.get(int(pos), []):
            mine[i, y0:y1, x0:x1] = True
        if not mine.any():
            raise GeometryError(f"the reader gives no pixels for position {int(pos)} ({view.name} r{r}c{c})")
        carries = (codes == r * cols + c) & owned
        inter = np.count_nonzero(mine & carries)
        union = np.count_nonzero((mine & clear) | carries)
        iou = inter / union if union else 0.0
        checks.append(TokenCheck(int(pos), view.name, int(r), int(c), float(iou),
                                 tuple(float(v) for v in view.boxes[r, c]), image))  # type: ignore[arg-type]
    return checks


def random_sizes(n: int, seed: int, low: int, high: int, max_aspect: float = 4.0) -> list[tuple[int, int]]:
    """``n`` (width, height) pairs, area log-uniform between low² and high², aspect up to ``max_aspect``.

    Both sides stay ≥ ``low`` (the processor's working size) so the processor downsamples: a flat
    painting cannot say which part of one original pixel an upsampled processed pixel came from.
    """
    rng = random.Random(seed)
    out: list[tuple[int, int]] = []
    while len(out) < n:
        side = math.exp(rng.uniform(math.log(low), math.log(high)))
        aspect = math.exp(rng.uniform(-math.log(max_aspect), math.log(max_aspect)))
        w, h = round(side * math.sqrt(aspect)), round(side / math.sqrt(aspect))
        if min(w, h) >= low and max(w, h) <= high * 2:
            out.append((w, h))
    return out


def working_side(processor: Any) -> int:
    """The largest side the processor resizes to before the vision tower (so test images downscale)."""
    ip = processor.image_processor
    longest = size_value(getattr(ip, "size", None), "longest_edge")
    budget = getattr(ip, "max_pixels", None) or (longest if longest and int(longest) > 4096 else None)
    if budget:  # Qwen-style: a pixel budget, not a side
        return math.isqrt(int(budget))
    soft = getattr(ip, "max_soft_tokens", None)
    if soft:  # Gemma 4: a budget of soft tokens, each k×k patches
        return math.isqrt(int(soft) * (int(ip.pooling_kernel_size) * int(ip.patch_size)) ** 2)
    sides: list[int] = []
    for attr in ("size", "crop_size", "max_image_size"):
        value = getattr(ip, attr, None)
        for key in ("height", "width", "shortest_edge", "longest_edge"):
            v = size_value(value, key)
            if isinstance(v, int | float) and v:  # Qwen's size holds pixel counts, not sides
                sides.append(int(v) if v <= 4096 else math.isqrt(int(v)))
    if getattr(ip, "crop_to_patches", False) and sides:  # InternVL: up to max_patches tiles in one row
        sides.append(max(sides) * int(getattr(ip, "max_patches", 1)))
    for pin in getattr(ip, "image_grid_pinpoints", None) or []:
        sides.extend(int(v) for v in pin)
    return max(sides) if sides else 224


def run(config: Any, processor: Any, cases: int = 200, seed: int = 0, low: int | None = None,
        high: int | None = None, images: int = 1) -> dict[str, Any]:
    """The oracle's report: ``{"model_type", "cases", "images", "min_iou", "worst": {...}}`` over random sizes.

    ``images`` > 1: each case is one prompt with that many images of independent random sizes (families
    whose adapter maps several images; others are refused with the reason).
    """
    oracle = Oracle(config, processor)
    if images > 1 and not supports_several(oracle.adapter):
        raise GeometryError(f"{oracle.adapter.family}: the adapter maps one image per prompt; run without --images")
    side = working_side(processor)
    low = low or min(side, 448)
    high = high or 3 * low
    worst: tuple[CaseResult, TokenCheck] | None = None
    tokens = 0
    sizes = random_sizes(cases * images, seed, low, high)
    for k in range(cases):
        result = oracle.check(*sizes[k * images:(k + 1) * images])
        tokens += len(result.tokens)
        token = result.worst()
        if token is not None and (worst is None or token.iou < worst[1].iou):
            worst = (result, token)
    report: dict[str, Any] = {"model_type": oracle.model_type, "cases": cases, "images": images,
                              "tokens_checked": tokens, "sizes": [low, high],
                              "min_iou": worst[1].iou if worst else None, "worst": None}
    if worst is not None:
        case, token = worst
        report["worst"] = {"image_size": list(case.sizes[token.image] if case.sizes else case.size),
                           "image": token.image, "view": token.view, "row": token.row, "col": token.col,
                           "position": token.position, "iou": token.iou, "box": list(token.box)}
    return report


def run_checkpoint(folder: str | Path, cases: int = 200, seed: int = 0, low: int | None = None,
                   high: int | None = None, trust_remote_code: bool = False,
                   roots: tuple[Path, ...] | None = None, images: int = 1) -> dict[str, Any]:
    """Load only the config and processor of ``folder`` (no weights) and run the oracle.

    They are read the way every load reads them (:func:`dashboard.models.loading.load_config_and_processor`:
    the load plan's walls, then a staging folder of checked bytes), so a tokenizer or chat template
    linked outside ``roots`` (default: the checkpoint's parent) is refused, never read. A family
    without an adapter is refused before its processor is built (whose import may itself fail).
    """
    from dashboard.config import LoadOptions
    from dashboard.models.loading import load_config_and_processor
    from dashboard.runs.load_plan import plan_checkpoint

    options = LoadOptions(roots=roots, trust_remote_code=trust_remote_code)
    model_type = plan_checkpoint(folder, roots or (Path(folder).resolve().parent,)).model_type
    if model_type:
        adapter_for(model_type)  # UnsupportedFamily says why, before the processor is imported and built
    config, processor = load_config_and_processor(folder, options=options)
    return run(config, processor, cases=cases, seed=seed, low=low, high=high, images=images)
