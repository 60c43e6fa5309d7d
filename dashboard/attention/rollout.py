"""Attention rollout (Abnar & Zuidema, 2020) for one generated token over the language model's layers.

Raw attention of a late layer says where that layer read from, but what sits at a position by then
is already a mix of other positions. Rollout follows the mixing back to the inputs: each layer's
head-mean attention gets the residual path added (``0.5·A + 0.5·I``, rows renormalised) and the
layers are multiplied, so the query row of the product says how much of each *input* token —
here: each image token — flowed into the position that predicts the chosen token.

Rollout needs every layer's full ``seq × seq`` attention, which the streaming capture deliberately
never keeps, so it runs one extra eager forward pass over the prompt plus the tokens generated
before the chosen one, through the same capture mechanism with the head-mean reduction
(:class:`~dashboard.attention.capture.HeadMeanAttention`: one ``seq × seq`` matrix per layer, not one
per head as ``output_attentions=True`` would keep). It depends on the captured generation only
through the token ids and image positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dashboard.attention.capture import HeadMeanAttention
from dashboard.attention.hooks import ModelParts, capturing
from dashboard.models.vision_chunks import vision_in_chunks


def rollout_row(attentions: Sequence[np.ndarray], query: int = -1, upto: int | None = None,
                residual: float = 0.5) -> np.ndarray:
    """Rollout of one query row through layers ``0..upto`` (all by default).

    ``attentions``: per layer a head-mean ``[seq, seq]`` attention matrix (rows sum to 1).
    Returns ``[seq]``: the share of the query position's representation traced back to each input
    position (sums to 1). Computed as a row vector times the layer matrices from the top down, so
    only ``seq``-sized vectors are formed, never the full product.
    """
    if not attentions:
        raise ValueError("rollout needs at least one layer")
    last = len(attentions) - 1 if upto is None else upto
    if not 0 <= last < len(attentions):
        raise IndexError(f"layer {upto} out of range (0..{len(attentions) - 1})")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual weight must be within 0..1, got {residual}")
    row: np.ndarray | None = None
    for layer in range(last, -1, -1):
        matrix = np.asarray(attentions[layer], dtype=np.float64)
        mixed = (1.0 - residual) * matrix + residual * np.eye(matrix.shape[0])
        mixed /= mixed.sum(-1, keepdims=True)
        row = mixed[query].copy() if row is None else row @ mixed
    assert row is not None
    return row


def full_attentions(model: Any, inputs: dict[str, Any], lock: Any = None) -> list[np.ndarray]:
    """Head-mean ``[seq, seq]`` attention of every language-model layer for ``inputs`` (batch 1), via eager."""
    parts = ModelParts.of(model)
    mean = HeadMeanAttention(len(parts.layers))
    with capturing(parts, [mean], lock), vision_in_chunks(model):
        model(**inputs, use_cache=False)
    return mean.matrices()


def image_rollout(attentions: Sequence[np.ndarray], image_positions: np.ndarray, upto: int | None = None
                  ) -> np.ndarray:
    """``[n_image_tokens]`` rollout share of each image token for the last position."""
    return rollout_row(attentions, -1, upto)[np.asarray(image_positions)]
