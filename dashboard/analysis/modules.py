"""Which module of a VLM a weight name belongs to, from the family adapter's declared parts.

Checkpoint files do not use the runtime module paths (transformers 5 saves LLaVA's decoder as
``language_model.model.layers.0…`` while the loaded model has ``model.language_model.layers.0…``,
and PEFT prefixes ``base_model.model.``), so names are matched by their *segments*: the last
segment of each declared part (``vision_tower``, ``multi_modal_projector``, ``self_attn``, ``mlp``,
``embed_tokens``, ``lm_head``) plus common aliases for families without an adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dashboard.attention.adapters import Components, UnsupportedFamily, adapter_for

VISION_ALIASES = ("vision_tower", "vision_model", "visual", "vision_encoder")
PROJECTOR_ALIASES = ("multi_modal_projector", "connector", "merger", "mm_projector")
LAYER_ALIASES = ("layers", "blocks", "layer", "h")
ATTENTION_ALIASES = ("self_attn", "self_attention", "attn", "attention")
MLP_ALIASES = ("mlp", "feed_forward", "ffn")
EMBED_ALIASES = ("embed_tokens", "wte", "word_embeddings")


def _last(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _with(first: str, aliases: tuple[str, ...]) -> tuple[str, ...]:
    return (first, *(a for a in aliases if a != first))


@dataclass(frozen=True)
class NameScheme:
    """Segment names that mark each part, declared names first (then the generic aliases)."""

    vision: tuple[str, ...] = VISION_ALIASES
    projector: tuple[str, ...] = PROJECTOR_ALIASES
    layers: tuple[str, ...] = LAYER_ALIASES
    attention: tuple[str, ...] = ATTENTION_ALIASES
    mlp: tuple[str, ...] = MLP_ALIASES
    embed: tuple[str, ...] = EMBED_ALIASES
    lm_head: str = "lm_head"
    final_norm: str = "norm"

    @classmethod
    def from_components(cls, parts: Components) -> NameScheme:
        return cls(vision=_with(_last(parts.vision_tower), VISION_ALIASES),
                   projector=_with(_last(parts.projector), PROJECTOR_ALIASES),
                   layers=_with(_last(parts.layers), LAYER_ALIASES),
                   attention=_with(_last(parts.attention), ATTENTION_ALIASES),
                   mlp=_with(_last(parts.mlp), MLP_ALIASES), embed=_with(_last(parts.embed_tokens), EMBED_ALIASES),
                   lm_head=_last(parts.lm_head), final_norm=_last(parts.final_norm))

    @classmethod
    def for_model_type(cls, model_type: str | None) -> tuple[NameScheme, bool]:
        """The adapter's scheme, or the generic one (``False``) when the family has no adapter."""
        try:
            return cls.from_components(adapter_for(str(model_type)).components), True
        except UnsupportedFamily:
            return cls(), False


_INT = re.compile(r"^\d+$")


def _layer_index(segments: list[str], start: int, names: tuple[str, ...]) -> tuple[int, int] | None:
    """``(index, position after it)`` of the first ``layers.N`` at or after ``start``."""
    for i in range(start, len(segments) - 1):
        if segments[i] in names and _INT.match(segments[i + 1]):
            return int(segments[i + 1]), i + 2
    return None


def module_of(name: str, scheme: NameScheme) -> str:
    """The module a weight belongs to: ``vision_tower.layers.3``, ``projector``, ``embeddings``,
    ``decoder.layers.5.attention`` / ``.mlp`` / ``.norms``, ``final_norm``, ``lm_head``; else ``other``.

    The projector is checked before the vision tower (Qwen2-VL keeps its merger inside ``visual``).
    """
    segments = name.split(".")
    if any(s in scheme.projector for s in segments):
        return "projector"
    vision = next((i for i, s in enumerate(segments) if s in scheme.vision), None)
    if vision is not None:
        layer = _layer_index(segments, vision + 1, scheme.layers)
        return f"vision_tower.layers.{layer[0]}" if layer else "vision_tower.other"
    if scheme.lm_head in segments:
        return "lm_head"
    if any(s in scheme.embed for s in segments):
        return "embeddings"
    layer = _layer_index(segments, 0, scheme.layers)
    if layer is not None:
        index, after = layer
        rest = segments[after:]
        if any(s in scheme.attention for s in rest):
            return f"decoder.layers.{index}.attention"
        if any(s in scheme.mlp for s in rest):
            return f"decoder.layers.{index}.mlp"
        return f"decoder.layers.{index}.norms"
    if scheme.final_norm in segments:
        return "final_norm"
    return "other"


def module_order(module: str) -> tuple[int, int, int, str]:
    """Forward order: vision tower, projector, embeddings, decoder layers, final norm, LM head, other."""
    head = {"vision_tower": 0, "projector": 1, "embeddings": 2, "decoder": 3, "final_norm": 4, "lm_head": 5}
    parts = module.split(".")
    rank = head.get(parts[0], 6)
    index = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 10**9
    sub = {"attention": 0, "mlp": 1, "norms": 2}.get(parts[-1], 0)
    return rank, index, sub, module
