"""Family adapters: map image-token positions in a prompt to the image's patch grid(s)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dashboard.attention.adapters.base import GridView, ImageLayout, LayoutError, UnsupportedFamily
from dashboard.attention.adapters.idefics3 import Idefics3Adapter
from dashboard.attention.adapters.llava import LlavaAdapter
from dashboard.attention.adapters.qwen2_vl import Qwen2VLAdapter

ADAPTERS = (LlavaAdapter(), Qwen2VLAdapter(), Idefics3Adapter())
SUPPORTED = tuple(t for a in ADAPTERS for t in a.model_types)

_WHY_NOT = {
    "llava_next": "LLaVA-NeXT's any-resolution tiles with unpadding and image_newline tokens",
    "llava_onevision": "LLaVA-OneVision's any-resolution tiles with unpadding",
    "mllama": "Mllama's cross-attention to image tiles (image tokens are not in the text sequence)",
    "paligemma": "PaliGemma's image grid",
    "qwen3_vl": "Qwen3-VL's deepstack layout",
}


def adapter_for(model_type: str) -> Any:
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    missing = _WHY_NOT.get(model_type, f"a mapping from {model_type!r} image tokens to the patch grid")
    raise UnsupportedFamily(f"Attention maps are not available for model type {model_type!r}: no adapter for "
                            f"{missing}. Supported: {', '.join(SUPPORTED)}.")


def layout_for(config: Any, processor: Any, input_ids: Any, image: Any, inputs: Mapping[str, Any]) -> ImageLayout:
    """The image-token layout for one prompt (``image`` is the original PIL image)."""
    adapter = adapter_for(str(getattr(config, "model_type", "")))
    ids = np.asarray(input_ids.detach().cpu() if hasattr(input_ids, "detach") else input_ids).reshape(-1)
    plain = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in dict(inputs).items()}
    size = (int(image.width), int(image.height))
    if isinstance(adapter, Idefics3Adapter):
        return adapter.layout(config, processor, ids, size, plain, image=image)
    return adapter.layout(config, processor, ids, size, plain)


__all__ = ["ADAPTERS", "SUPPORTED", "GridView", "ImageLayout", "LayoutError", "UnsupportedFamily", "adapter_for",
           "layout_for"]
