"""One call per question the page asks: capture a generation, lay out its image tokens, score pointing.

Kept free of Streamlit so tests and the bench drive exactly what the page shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dashboard.attention.adapters import ImageLayout, adapter_for, layout_for
from dashboard.attention.capture import TEXT_SUMMARY_FIELDS, CaptureResult, capture_generate
from dashboard.attention.overlay import HeadMode, token_attention
from dashboard.attention.pointing import PointingReport, score_example
from dashboard.images import DEFAULT_MAX_PIXELS, load_image

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass
class AttentionRun:
    """A captured generation on one checkpoint, plus everything needed to draw it."""

    checkpoint: str
    prompt: str
    image: Image.Image
    tokens: list[str]  # decoded generated tokens
    result: CaptureResult
    layout: ImageLayout
    token_names: Callable[[Sequence[int]], list[str]]
    text: str = ""  # the decoded answer (special tokens skipped)

    def grid(self, step: int, layers: Sequence[int] | None, head: int | HeadMode,
             view: str | None = None) -> np.ndarray:
        chosen = self.layout.view(view) if view else self.layout.primary
        return chosen.grid(token_attention(self.result, step, layers, head), self.layout.image_positions)

    def layer_grids(self, step: int, head: int | HeadMode, view: str | None = None) -> np.ndarray:
        """``[layers, rows, cols]`` for the small multiples."""
        return np.stack([self.grid(step, [layer], head, view) for layer in range(self.result.n_layers)])

    def image_share(self, step: int, head: int | HeadMode = "mean") -> pd.DataFrame:
        """Per layer: share of the token's attention on image tokens vs prompt text vs generated text.

        For one head, that head's shares; for ``"mean"`` (and ``"max"``, whose per-category maxima
        would come from different heads and not add up to one) the mean over heads — the chart's
        title says which.
        """
        image_by_head = self.result.image_attention[step].sum(-1)  # [layers, heads]
        text_by_head = self.result.text_attention[step]  # [layers, heads, fields]
        if isinstance(head, int):
            image, text = image_by_head[:, head], text_by_head[:, head]
        else:
            image, text = image_by_head.mean(-1), text_by_head.mean(-2)
        frame = pd.DataFrame({"layer": np.arange(self.result.n_layers), "image": image})
        for i, name in enumerate(TEXT_SUMMARY_FIELDS):
            frame[name] = text[:, i]
        return frame

    def lens_frame(self, which: str = "generated") -> pd.DataFrame:
        """Long table of the logit lens: layer, position, rank, token, probability."""
        lens = self.result.lens
        if lens is None:
            return pd.DataFrame(columns=["layer", "position", "rank", "token", "prob"])
        ids, probs = ((lens.generated_ids, lens.generated_probs) if which == "generated"
                      else (lens.image_ids, lens.image_probs))
        if ids is None or probs is None:
            return pd.DataFrame(columns=["layer", "position", "rank", "token", "prob"])
        layers, positions, k = ids.shape
        names = self.token_names(ids.reshape(-1).tolist())
        return pd.DataFrame({
            "layer": np.repeat(np.arange(layers), positions * k),
            "position": np.tile(np.repeat(np.arange(positions), k), layers),
            "rank": np.tile(np.arange(k), layers * positions),
            "token": names,
            "prob": probs.reshape(-1).astype(float),
        })

    def to_json(self, step: int, layers: Sequence[int] | None, head: int | HeadMode, view: str | None = None) -> dict:
        """The numbers behind one overlay (for download)."""
        chosen = list(range(self.result.n_layers)) if layers is None else list(layers)
        return {
            "checkpoint": self.checkpoint, "prompt": self.prompt, "generated_tokens": self.tokens,
            "token_index": step, "token": self.tokens[step], "layers": chosen, "head": head,
            "view": view or self.layout.primary.name, "layout": self.layout.to_dict(),
            "grid": self.grid(step, chosen, head, view).round(7).tolist(),
            "image_share_per_layer": self.image_share(step).round(7).to_dict(orient="list"),
        }


def _token_namer(processor: Any) -> Callable[[Sequence[int]], list[str]]:
    tokenizer = getattr(processor, "tokenizer", processor)

    def names(ids: Sequence[int]) -> list[str]:
        return [str(t) for t in tokenizer.convert_ids_to_tokens([int(i) for i in ids])]

    return names


def force_tokens(inputs: Any, token_ids: Sequence[int]) -> dict[str, Any]:
    """Append already-chosen answer tokens to the prompt, so the next step predicts the token after them.

    Used to compare checkpoints on *the same* token: every checkpoint of a run shares the tokenizer,
    so the reference checkpoint's generated ids can be fed to the others (teacher forcing).
    """
    out = dict(inputs)
    if not token_ids:
        return out
    ids = out["input_ids"]
    extra = torch.as_tensor(list(token_ids), dtype=ids.dtype, device=ids.device).unsqueeze(0)
    out["input_ids"] = torch.cat([ids, extra], dim=1)
    for key, fill in (("attention_mask", 1), ("mm_token_type_ids", 0), ("token_type_ids", 0)):
        if key in out and out[key] is not None:
            out[key] = torch.cat([out[key], torch.full_like(extra, fill, dtype=out[key].dtype)], dim=1)
    return out


def analyse(loaded: Any, image: Image.Image, prompt: str, *, max_new_tokens: int = 16, lens_top_k: int = 5,
            lens_image_tokens: bool = True, prefill: str = "", forced: Sequence[int] = ()) -> AttentionRun:
    """Generate greedily on ``loaded`` (a pooled LoadedModel) and capture attention + logit lens.

    ``forced`` answer-token ids are appended to the prompt first (see :func:`force_tokens`); the
    captured step 0 is then the token that follows them.
    """
    from dashboard.generation import build_inputs

    adapter_for(str(loaded.model_type or loaded.model.config.model_type))  # fail before generating
    inputs = force_tokens(build_inputs(loaded, image, prompt, prefill), forced)
    layout = layout_for(loaded.model.config, loaded.processor, inputs["input_ids"], image, inputs)
    result = capture_generate(loaded.model, dict(inputs), max_new_tokens=max_new_tokens, lens_top_k=lens_top_k,
                              lens_image_tokens=lens_image_tokens, lock=loaded.lock, do_sample=False)
    namer = _token_namer(loaded.processor)
    tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
    text = tokenizer.decode(result.generated_ids, skip_special_tokens=True)
    return AttentionRun(str(loaded.path), prompt, image, namer(result.generated_ids), result, layout, namer, text)


def pointing_report(loaded: Any, examples: Sequence[Any], *, layers: Sequence[int] | None = None,
                    max_examples: int | None = None, progress: ProgressFn | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> PointingReport:
    """Pointing score of one checkpoint over eval examples that name a target object with a box.

    Images larger than ``max_pixels`` (the configured limit) are skipped with the reason.
    """

    usable = [e for e in examples if e.target is not None and 0 <= e.target < len(e.objects)
              and "bbox" in e.objects[e.target]]
    skipped = [f"{e.id}: no target object with a bbox" for e in examples if e not in usable]
    if max_examples is not None:
        usable = usable[:max_examples]
    report = PointingReport(str(loaded.path), [], skipped)
    for i, example in enumerate(usable):
        try:
            image = load_image(example.image_path, max_pixels=max_pixels)
            run = analyse(loaded, image, example.prompt, max_new_tokens=1, lens_top_k=0, lens_image_tokens=False)
        except Exception as exc:  # one bad example must not sink the report
            logger.warning("pointing: example %s skipped", example.id, exc_info=True)
            report.skipped.append(f"{example.id}: {type(exc).__name__}: {exc}")
            continue
        grids = run.layer_grids(0, "mean")
        output = run.tokens[0] if run.tokens else ""
        report.rows.append(score_example(example.id, grids, run.layout.primary, example.objects[example.target]["bbox"],
                                         output, example.answer, layers))
        if progress is not None:
            progress(i + 1, len(usable))
    return report
