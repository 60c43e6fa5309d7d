"""What a captured generation records: the reductions fed by :mod:`dashboard.attention.hooks`.

The reductions that ride the one capture mechanism: :class:`ImageAttentionRows` keeps, per step
and layer, each head's attention from the token-predicting query to every image token (plus a
few text sums) — ``[heads, n_image_tokens]``, never the full matrices; :class:`LogitLens` decodes
each layer's residual stream through the family's declared final norm + LM head and keeps the
top-k; :class:`HeadMeanAttention` keeps one forward pass's head-mean matrices (for rollout).
:func:`capture_generate` runs a generation with both. A new reduction is a class with a ``site``
and an ``observe(layer, value)`` here, passed to :func:`~dashboard.attention.hooks.capturing`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from dashboard.attention.hooks import CaptureError, ModelParts, Site, capturing
from dashboard.models.vision_chunks import vision_in_chunks

logger = logging.getLogger(__name__)

TEXT_SUMMARY_FIELDS = ("prompt_text", "generated", "first_token")
"""Per-head attention mass of the recorded row on: prompt tokens that are not image tokens,
tokens generated so far (including the current input token), and the very first token (the
usual attention sink). ``prompt_text`` includes ``first_token`` when it is text."""


@dataclass
class ImageAttentionRows:
    """Writes each attention row straight into preallocated CPU buffers (no list + stack copy at the end)."""

    n_layers: int
    image_positions: torch.Tensor
    prompt_len: int
    max_steps: int
    site: Site = "attention_row"
    image: torch.Tensor | None = None  # float32 [max_steps, layers, heads, n_image]
    text: torch.Tensor | None = None  # float32 [max_steps, layers, heads, 3]
    steps: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.steps = [0] * self.n_layers

    def _allocate(self, heads: int) -> None:
        self.image = torch.zeros(self.max_steps, self.n_layers, heads, len(self.image_positions), dtype=torch.float32)
        self.text = torch.zeros(self.max_steps, self.n_layers, heads, len(TEXT_SUMMARY_FIELDS), dtype=torch.float32)

    def observe(self, layer: int, value: torch.Tensor) -> None:
        if value.shape[0] != 1:
            raise CaptureError("attention capture supports one sequence at a time (batch 1, no beam search)")
        step = self.steps[layer]
        if step >= self.max_steps:  # a forward beyond max_new_tokens (e.g. a caller's extra pass): ignore
            return
        if self.image is None or self.text is None:
            self._allocate(int(value.shape[1]))
        assert self.image is not None and self.text is not None  # allocated above (narrows for mypy)
        row = value[0, :, -1, :].detach().float()  # [heads, keys]: the query that predicts the next token
        if row.shape[1] < self.prompt_len + step:  # a sliding-window cache keeps only the last keys
            raise CaptureError(f"layer {layer} attends over {row.shape[1]} keys, fewer than the "
                               f"{self.prompt_len + step} tokens so far (a sliding-window layer's cache dropped the "
                               "oldest): use a shorter prompt or a smaller image")
        image = row.index_select(1, self.image_positions)
        image_mass = image.sum(-1)
        self.image[step, layer].copy_(image)
        self.text[step, layer, :, 0].copy_(row[:, : self.prompt_len].sum(-1) - image_mass)
        self.text[step, layer, :, 1].copy_(row[:, self.prompt_len:].sum(-1))
        self.text[step, layer, :, 2].copy_(row[:, 0])
        self.steps[layer] = step + 1

    def arrays(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image, text)`` attention of the first ``steps`` generated tokens; every layer must have them."""
        if self.image is None or self.text is None or min(self.steps) < steps:
            raise CaptureError(f"recorded {min(self.steps)} steps for {steps} generated tokens — does this model "
                               "route its language-model attention through the attention interface?")
        image, text = self.image.numpy(), self.text.numpy()
        if steps < self.max_steps:  # stopped early: give back the unused tail of the buffers
            image, text = image[:steps].copy(), text[:steps].copy()
        return image, text


@dataclass
class LensRecord:
    """Logit-lens results: top-k token ids and probabilities decoded from each layer's residual stream."""

    generated_ids: np.ndarray  # int [layers, steps, k]
    generated_probs: np.ndarray  # float [layers, steps, k]
    image_ids: np.ndarray | None  # int [layers, n_image_tokens, k] (prompt's image-token positions)
    image_probs: np.ndarray | None


@dataclass
class CaptureResult:
    """What one captured generation produced. Arrays are numpy, float32, on the CPU."""

    prompt_ids: list[int]
    generated_ids: list[int]
    image_positions: np.ndarray  # int [n_image_tokens], positions in the prompt
    image_attention: np.ndarray  # float [steps, layers, heads, n_image_tokens]
    text_attention: np.ndarray  # float [steps, layers, heads, len(TEXT_SUMMARY_FIELDS)]
    lens: LensRecord | None = None

    @property
    def n_layers(self) -> int:
        return int(self.image_attention.shape[1])

    @property
    def n_heads(self) -> int:
        return int(self.image_attention.shape[2])

    def image_share(self) -> np.ndarray:
        """[steps, layers]: share of the row's attention that lands on image tokens (head mean)."""
        image = self.image_attention.sum(-1)
        total = image + self.text_attention[..., 0] + self.text_attention[..., 1]
        return (image / np.clip(total, 1e-12, None)).mean(-1)

    def nbytes(self) -> int:
        """Bytes held by the recorded attention (what scales with layers × steps × image tokens)."""
        return int(self.image_attention.nbytes + self.text_attention.nbytes)


@dataclass
class HeadMeanAttention:
    """Each layer's head-mean ``[queries, keys]`` attention of one forward pass (batch 1), as numpy.

    Only the mean is kept, not every head's matrix: that is all rollout multiplies.
    """

    n_layers: int
    site: Site = "attention_matrix"
    layers: list[np.ndarray | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.layers = [None] * self.n_layers

    def observe(self, layer: int, value: torch.Tensor) -> None:
        self.layers[layer] = value[0].detach().float().mean(0).cpu().numpy()

    def matrices(self) -> list[np.ndarray]:
        """Every layer's matrix; :class:`CaptureError` when a layer's attention never came through."""
        missing = [i for i, m in enumerate(self.layers) if m is None]
        if missing:
            raise CaptureError(f"no attention weights came through for layer(s) {missing} — does this model route "
                               "its language-model attention through the attention interface?")
        return [m for m in self.layers if m is not None]


class LogitLens:
    """Decodes each layer's output with the final norm + LM head; keeps the top-k ids and probabilities.

    Per forward pass the last position (the one predicting the next token) is decoded; with
    ``image_tokens`` the prefill's image-token positions too (in chunks, to bound the logits' size).
    """

    site: Site = "layer_output"

    def __init__(self, parts: ModelParts, image_positions: torch.Tensor, top_k: int, image_tokens: bool):
        self.norm = parts.final_norm
        self.head = parts.lm_head
        self.image_positions = image_positions
        self.top_k = top_k
        self.image_tokens = image_tokens
        n = len(parts.layers)
        self.steps: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(n)]
        self.image: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n

    def _decode(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.norm(hidden)).float()
        probs, ids = logits.softmax(-1).topk(self.top_k, dim=-1)
        return ids, probs

    def observe(self, layer: int, value: torch.Tensor) -> None:
        hidden = value[0]  # [seq, hidden]
        self.steps[layer].append(self._decode(hidden[-1:]))
        if self.image_tokens and self.image[layer] is None and hidden.shape[0] > 1:
            chunks = [self._decode(hidden[self.image_positions[i:i + 256]])
                      for i in range(0, len(self.image_positions), 256)]
            self.image[layer] = (torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks]))

    def record(self, n_steps: int) -> LensRecord:
        ids = np.stack([np.concatenate([s[0].cpu().numpy() for s in layer[:n_steps]]) for layer in self.steps])
        probs = np.stack([np.concatenate([s[1].cpu().numpy() for s in layer[:n_steps]]) for layer in self.steps])
        image_ids = image_probs = None
        if self.image_tokens and all(x is not None for x in self.image):
            image_ids = np.stack([x[0].cpu().numpy() for x in self.image])  # type: ignore[index]
            image_probs = np.stack([x[1].cpu().numpy() for x in self.image])  # type: ignore[index]
        return LensRecord(ids, probs, image_ids, image_probs)


def capture_generate(model: PreTrainedModel, inputs: dict[str, Any], *, max_new_tokens: int = 32,
                     lens_top_k: int = 0, lens_image_tokens: bool = False,
                     lock: threading.RLock | None = None, should_stop: Callable[[], bool] | None = None,
                     **generate_kwargs: Any) -> CaptureResult:
    """Generate greedily (or as ``generate_kwargs`` say, batch 1) while recording attention to the image.

    ``inputs`` is the processor output for one image + prompt (on the model's device). Pass the
    pooled model's ``lock`` so nobody else generates while the model is tapped. ``lens_top_k > 0``
    adds the logit lens. ``should_stop`` is polled every token by the generation's own
    :class:`~dashboard.generation.CancelCheck`; once True the capture raises
    :class:`~dashboard.generation.GenerationCancelled` instead of returning a cut-short run.
    """
    from transformers import StoppingCriteriaList

    from dashboard.generation import CancelCheck

    input_ids = inputs["input_ids"]
    if input_ids.shape[0] != 1:
        raise CaptureError(f"attention capture takes one prompt at a time, got a batch of {input_ids.shape[0]}")
    if int(generate_kwargs.get("num_beams", 1)) != 1:
        raise CaptureError("attention capture does not support beam search (num_beams must be 1)")
    parts = ModelParts.of(model)
    image_positions = (input_ids[0] == parts.image_token_id).nonzero().flatten()
    if image_positions.numel() == 0:
        raise CaptureError("the prompt contains no image tokens — was the image passed to the processor?")
    prompt_len = int(input_ids.shape[1])
    rows = ImageAttentionRows(len(parts.layers), image_positions.to(input_ids.device), prompt_len, max_new_tokens)
    lens = LogitLens(parts, image_positions, lens_top_k, lens_image_tokens) if lens_top_k > 0 else None
    cancel = CancelCheck(should_stop)
    criteria = StoppingCriteriaList([*(generate_kwargs.pop("stopping_criteria", None) or []), cancel])
    with capturing(parts, [rows] if lens is None else [rows, lens], lock), vision_in_chunks(model):
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, stopping_criteria=criteria,
                                **generate_kwargs)
    cancel.raise_if_cancelled("attention capture")
    sequence = output[0] if not hasattr(output, "sequences") else output.sequences[0]
    generated = [int(t) for t in sequence[prompt_len:]]
    image, text = rows.arrays(len(generated))
    return CaptureResult(
        prompt_ids=[int(t) for t in input_ids[0]],
        generated_ids=generated,
        image_positions=image_positions.cpu().numpy(),
        image_attention=image,
        text_attention=text,
        lens=lens.record(len(generated)) if lens is not None else None,
    )


def reference_from_output_attentions(attentions: tuple[tuple[torch.Tensor, ...], ...], image_positions: np.ndarray,
                                     prompt_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The same reduction applied to ``generate(output_attentions=True)`` output (used by tests/bench)."""
    positions = torch.as_tensor(image_positions)
    image_steps, text_steps = [], []
    for step in attentions:
        image_layers, text_layers = [], []
        for weights in step:
            row = weights[0, :, -1, :].float()
            image = row[:, positions]
            mass = image.sum(-1)
            image_layers.append(image)
            text_layers.append(torch.stack([row[:, :prompt_len].sum(-1) - mass, row[:, prompt_len:].sum(-1),
                                            row[:, 0]], dim=-1))
        image_steps.append(torch.stack(image_layers))
        text_steps.append(torch.stack(text_layers))
    return torch.stack(image_steps).numpy(), torch.stack(text_steps).numpy()
