"""Family adapters: a registry keyed by ``config.model_type``; each adapter declares itself.

An adapter states where the language model's layers, attention modules, final norm and LM head
live (:class:`Components`) and how image tokens map to the patch grid (``layout``). Families
whose image path the attention view cannot show are listed in ``NOT_AVAILABLE`` with the reason;
they still load, generate and compare. A new family = one adapter module + one registry line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dashboard.attention.adapters.base import (
    Components,
    FamilyAdapter,
    GridView,
    ImageLayout,
    LayoutError,
    TokenSegment,
    UnsupportedFamily,
)
from dashboard.attention.adapters.gemma4 import Gemma4Adapter
from dashboard.attention.adapters.idefics3 import Idefics3Adapter
from dashboard.attention.adapters.internvl import InternVLAdapter
from dashboard.attention.adapters.llava import LlavaAdapter
from dashboard.attention.adapters.llava_next import LlavaNextAdapter, LlavaOnevisionAdapter
from dashboard.attention.adapters.multi import split_layouts, supports_several
from dashboard.attention.adapters.qwen2_vl import Qwen2VLAdapter, Qwen3VLAdapter
from dashboard.attention.adapters.square_grid import SquareGridAdapter

ADAPTERS: tuple[FamilyAdapter, ...] = (
    LlavaAdapter(), LlavaNextAdapter(), LlavaOnevisionAdapter(), Qwen2VLAdapter(), Qwen3VLAdapter(),
    Idefics3Adapter(), InternVLAdapter(), Gemma4Adapter(),
    SquareGridAdapter("PaliGemma", ("paligemma",), tokens_per_image=None),
    SquareGridAdapter("Gemma 3", ("gemma3",), tokens_per_image="mm_tokens_per_image"),
)
REGISTRY: dict[str, FamilyAdapter] = {t: a for a in ADAPTERS for t in a.model_types}
SUPPORTED = tuple(REGISTRY)

NOT_AVAILABLE = {
    "mllama": ("Mllama", "it cross-attends to image tiles, so image tokens are not in the text sequence"),
}


NO_ADAPTER = "no adapter maps its image tokens to the patch grid"  # any other image-text-to-text family

# Families whose processor class cannot even be imported without torchvision (which the pinned CPU torch
# wheel cannot use): their image prompts cannot be built here, so no map could be checked or drawn.
# Mistral 3's ``PixtralProcessor`` imports the torchvision image processor module at import time; the slow
# ``PixtralImageProcessorPil`` exists (``use_fast=False``) but only the processor expands ``[IMG]`` tokens.
NEEDS_TORCHVISION = {"mistral3": ("Mistral 3", "PixtralProcessor")}


def _torchvision_missing() -> bool:
    from transformers.utils import is_torchvision_available

    return not is_torchvision_available()


def unavailable_reason(model_type: str) -> tuple[str, str]:
    """(family name, why the attention view has no map for it) for a model type without an adapter."""
    if model_type in NEEDS_TORCHVISION and _torchvision_missing():
        family, processor = NEEDS_TORCHVISION[model_type]
        return family, (f"its processor class {processor} cannot be imported without torchvision, which is not "
                        "installed, so its image prompts cannot be built (it does not load either)")
    return NOT_AVAILABLE.get(model_type, (model_type, NO_ADAPTER))


def adapter_for(model_type: str) -> FamilyAdapter:
    """The adapter registered for ``model_type``, or :class:`UnsupportedFamily` saying why not."""
    adapter = REGISTRY.get(model_type)
    if adapter is not None:
        return adapter
    family, why = unavailable_reason(model_type)
    still = "" if "does not load" in why else " Inference and Comparison still work."
    raise UnsupportedFamily(f"attention view not available for {family} ({model_type}): {why}.{still} "
                            f"Supported: {', '.join(SUPPORTED)}.")


def _plain(input_ids: Any, inputs: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    ids = np.asarray(input_ids.detach().cpu() if hasattr(input_ids, "detach") else input_ids).reshape(-1)
    return ids, {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in dict(inputs).items()}


def layout_for(config: Any, processor: Any, input_ids: Any, image: Any, inputs: Mapping[str, Any]) -> ImageLayout:
    """The image-token layout for one prompt (``image`` is the original PIL image)."""
    adapter = adapter_for(str(config.model_type))
    ids, plain = _plain(input_ids, inputs)
    return adapter.layout(config, processor, ids, image, plain)


def layouts_for(config: Any, processor: Any, input_ids: Any, images: Sequence[Any],
                inputs: Mapping[str, Any]) -> tuple[ImageLayout, ...]:
    """One layout per image of a prompt (``images`` in prompt order), each with only its own tokens' boxes."""
    adapter = adapter_for(str(config.model_type))
    ids, plain = _plain(input_ids, inputs)
    return split_layouts(adapter, config, processor, ids, images, plain)


def several_images(model_type: str) -> bool:
    """Whether the family's adapter maps several images in one prompt (each to its own image)."""
    adapter = REGISTRY.get(model_type)
    return adapter is not None and supports_several(adapter)


__all__ = [
    "ADAPTERS",
    "NEEDS_TORCHVISION",
    "NOT_AVAILABLE",
    "NO_ADAPTER",
    "REGISTRY",
    "SUPPORTED",
    "Components",
    "FamilyAdapter",
    "GridView",
    "ImageLayout",
    "LayoutError",
    "TokenSegment",
    "UnsupportedFamily",
    "adapter_for",
    "layout_for",
    "layouts_for",
    "several_images",
    "unavailable_reason",
]
