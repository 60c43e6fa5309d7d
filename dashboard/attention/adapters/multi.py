"""Several images in one prompt: each image's tokens mapped to their own image.

The models scatter image features into the image-token positions in prompt order, image after image
(``masked_scatter``), so image ``i`` owns the ``count_i`` image tokens that follow image ``i − 1``'s.
An adapter that supports several images says how many tokens each image has and which part of the
processor output belongs to it (``per_image``); its single-image ``layout`` then runs unchanged on
that part, with the other images' tokens hidden from it, so one code path draws both cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from dashboard.attention.adapters.base import FamilyAdapter, ImageLayout, LayoutError, config_value


class MultiImageAdapter(FamilyAdapter, Protocol):
    def per_image(self, config: Any, inputs: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        """Per image, in prompt order: (its number of image tokens, the processor outputs that are its own)."""
        ...


HIDDEN = -1  # a token id no vocabulary has: other images' tokens while one image is laid out


def supports_several(adapter: FamilyAdapter) -> bool:
    return callable(getattr(adapter, "per_image", None))


def image_token_id(config: Any, adapter: FamilyAdapter) -> int:
    return int(config_value(config, adapter.components.image_token_id, "image_token_id", "image_token_index"))


def split_layouts(adapter: FamilyAdapter, config: Any, processor: Any, input_ids: np.ndarray,
                  images: Sequence[Any], inputs: Mapping[str, Any]) -> tuple[ImageLayout, ...]:
    """One layout per image (``images`` in prompt order); each holds only that image's token positions."""
    if len(images) == 1:
        return (adapter.layout(config, processor, input_ids, images[0], inputs),)
    if not supports_several(adapter):
        raise LayoutError(f"{adapter.family}: one image per prompt is supported (this prompt has {len(images)})")
    parts = adapter.per_image(config, inputs)  # type: ignore[attr-defined]
    if len(parts) != len(images):
        raise LayoutError(f"{adapter.family}: the processor output describes {len(parts)} images, "
                          f"the prompt was given {len(images)}")
    ids = np.asarray(input_ids).reshape(-1)
    token = image_token_id(config, adapter)
    positions = np.flatnonzero(ids == token)
    if sum(count for count, _ in parts) != len(positions):
        raise LayoutError(f"{adapter.family}: {len(positions)} image tokens in the prompt, the images need "
                          f"{' + '.join(str(c) for c, _ in parts)}")
    layouts, start = [], 0
    for (count, own), image in zip(parts, images, strict=True):
        mine = positions[start:start + count]
        start += count
        masked = np.where(ids == token, HIDDEN, ids)
        masked[mine] = token
        layouts.append(adapter.layout(config, processor, masked, image, own))
    return tuple(layouts)
