"""Run a VLM's vision encoder over its images (or tiles) a few at a time: the same features, a fraction of the peak.

Why: transformers runs the vision encoder on every image or tile of a prompt as one batch. SmolVLM
splits a 1,536 px image into 17 SigLIP tiles of 1,024 patches, and at fp32 one encoder layer's MLP
activations (17 × 1,024 × 3,072, plus the GELU's output) are ~0.43 GB — the largest allocation of
the whole generation, 8× the text prefill's (measured in ``bench/RESULTS.md``, issue 35). The
encoders listed in :data:`ENCODERS` are ViTs whose attention stays inside one image, so every batch
row is computed independently and running them in chunks, then concatenating, gives the same
outputs. Families whose encoder packs all images into one sequence (Qwen2-VL's ``visual``, Pixtral,
Gemma 4's variable-resolution encoder) are not listed and run as before.

The chunking is installed on the loaded model *instance* (its encoder module's ``forward``) only
while :func:`vision_in_chunks` is entered; weights and transformers are untouched, and hooks on the
encoder module still see one call with the whole batch's output.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers.utils import ModelOutput

ENCODERS: dict[str, str] = {
    "llava": "model.vision_tower",  # CLIP / SigLIP
    "llava_next": "model.vision_tower",  # CLIP over every tile of every image
    "llava_onevision": "model.vision_tower",  # SigLIP over every tile
    "aya_vision": "model.vision_tower",  # SigLIP
    "paligemma": "model.vision_tower",  # SigLIP
    "gemma3": "model.vision_tower",  # SigLIP (pan & scan crops are separate rows)
    "internvl": "model.vision_tower",  # InternViT over every tile
    "idefics3": "model.vision_model",  # SigLIP-like over every tile, with a per-tile patch mask
    "smolvlm": "model.vision_model",
}
"""model_type → where its batch-independent vision encoder lives on the ``*ForConditionalGeneration`` model."""

TOKEN_BUDGET = 2048
"""Patches per chunk (at least one image). SmolVLM's 1,024-patch tiles go two at a time: the encoder's
transient then stays near the text prefill's own (~80 MiB at fp32 for 1,134 tokens), while each chunk is
still a large enough matmul that CPU throughput does not drop."""


def vision_encoder(model: nn.Module) -> nn.Module | None:
    """The module :func:`vision_in_chunks` wraps, or ``None`` for a family not known to be batch-independent."""
    path = ENCODERS.get(str(getattr(getattr(model, "config", None), "model_type", "")))
    if path is None:
        return None
    try:
        module = operator.attrgetter(path)(model)
    except AttributeError:  # a layout this table does not know: leave the model as it is
        return None
    return module if isinstance(module, nn.Module) else None


def _patches_per_image(encoder: nn.Module, pixel_values: torch.Tensor) -> int:
    patch = getattr(getattr(encoder, "config", None), "patch_size", None)
    if isinstance(patch, (list, tuple)):
        patch = patch[0]
    if not isinstance(patch, int) or patch <= 0:
        return int(pixel_values.shape[-1] * pixel_values.shape[-2])  # no patch size: count pixels, over-cautious
    return max(1, (int(pixel_values.shape[-2]) // patch) * (int(pixel_values.shape[-1]) // patch))


def _slice(value: Any, rows: int, start: int, stop: int) -> Any:
    """Per-image tensors (first dimension = the batch of images) are cut; everything else passes through."""
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows:
        return value[start:stop]
    return value


def _concat(pieces: list[Any]) -> Any:
    """Join the chunks' outputs along the batch; a tuple field (e.g. ``hidden_states``) is joined element-wise,
    each element's chunk pieces dropped as soon as they are copied, so the join holds one extra layer at a time."""
    first = pieces[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat(pieces, dim=0)
    if isinstance(first, ModelOutput):
        fields = [dict(p.items()) for p in pieces]
        pieces.clear()  # the ModelOutputs go; their fields live on in ``fields`` until joined
        joined = {key: _concat([f.pop(key) for f in fields]) for key in list(fields[0])}
        return type(first)(**joined)
    if isinstance(first, (tuple, list)):
        columns = [list(p) for p in pieces]
        pieces.clear()
        out = []
        for i in range(len(columns[0])):
            out.append(_concat([c[i] for c in columns]))
            for c in columns:
                c[i] = None
        return type(first)(out)
    raise TypeError(f"cannot join vision-encoder outputs of type {type(first).__name__}")


class _Chunked:
    """The encoder's own ``forward``, called on at most ``budget`` patches' worth of images at a time."""

    def __init__(self, encoder: nn.Module, forward: Callable[..., Any], token_budget: int) -> None:
        self.encoder, self.forward, self.token_budget = encoder, forward, token_budget

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        pixel_values = kwargs["pixel_values"] if "pixel_values" in kwargs else (args[0] if args else None)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() < 3:
            return self.forward(*args, **kwargs)
        rows = int(pixel_values.shape[0])
        per_chunk = max(1, self.token_budget // _patches_per_image(self.encoder, pixel_values))
        if rows <= per_chunk:
            return self.forward(*args, **kwargs)
        pieces = [self.forward(*(_slice(a, rows, start, start + per_chunk) for a in args),
                               **{k: _slice(v, rows, start, start + per_chunk) for k, v in kwargs.items()})
                  for start in range(0, rows, per_chunk)]
        return _concat(pieces)


@contextmanager
def vision_in_chunks(model: nn.Module, token_budget: int | None = None) -> Iterator[None]:
    """While the block runs, ``model``'s vision encoder works through its images ``token_budget`` patches at a time.

    A no-op for families not in :data:`ENCODERS` and when already entered (nested calls, or another thread
    generating on the same model: the outputs are the same either way, so a race only costs memory).
    """
    encoder = vision_encoder(model)
    if encoder is None or isinstance(encoder.__dict__.get("forward"), _Chunked):
        yield
        return
    previous = encoder.__dict__.get("forward")  # an instance-level forward already there (accelerate's hooks) stays
    chunked = _Chunked(encoder, encoder.forward, TOKEN_BUDGET if token_budget is None else token_budget)
    encoder.forward = chunked  # type: ignore[method-assign]  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        if encoder.__dict__.get("forward") is chunked:
            if previous is None:
                del encoder.__dict__["forward"]
            else:
                encoder.__dict__["forward"] = previous
