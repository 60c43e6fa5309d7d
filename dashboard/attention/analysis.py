"""One call per question the page asks: capture a generation, lay out its image tokens, score pointing.

Kept free of Streamlit so tests and the bench drive exactly what the page shows.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dashboard.attention.adapters import ImageLayout, adapter_for, layout_for, layouts_for
from dashboard.attention.capture import TEXT_SUMMARY_FIELDS, CaptureResult, capture_generate
from dashboard.attention.overlay import HeadMode, token_attention
from dashboard.attention.pointing import PointingReport, score_example, summarise
from dashboard.attention.rollout import full_attentions, image_rollout
from dashboard.attention.tokens import TokenNames
from dashboard.images import DEFAULT_MAX_PIXELS, load_image
from dashboard.metrics import exact_match

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass
class AttentionRun:
    """A captured generation on one checkpoint, plus everything needed to draw it."""

    checkpoint: str
    prompt: str
    image: Image.Image
    tokens: list[str]  # generated tokens as the page names them (dashboard.attention.tokens: specials marked)
    result: CaptureResult
    layout: ImageLayout
    token_names: Callable[[Sequence[int]], list[str]]
    text: str = ""  # the decoded answer (special tokens skipped)
    inputs: dict[str, Any] | None = None  # the model inputs of the prompt (for the rollout's extra forward pass)
    _full_attention: dict[int, list[np.ndarray]] = field(default_factory=dict, repr=False)
    # Several images in the prompt: all of them and their layouts, in prompt order; ``image``/``layout`` are
    # the one drawn on (:meth:`for_image`), and the captured arrays stay aligned with every image token.
    images: tuple[Image.Image, ...] = ()
    layouts: tuple[ImageLayout, ...] = ()

    @property
    def _positions(self) -> np.ndarray:
        """The image-token positions the captured arrays are aligned with (every image of the prompt)."""
        if len(self.layouts) > 1:
            return np.concatenate([layout.image_positions for layout in self.layouts])
        return self.layout.image_positions

    def for_image(self, index: int) -> AttentionRun:
        """The same capture drawn on image ``index`` (0-based, prompt order) of a several-image prompt."""
        if not self.layouts:
            if index != 0:
                raise IndexError(f"image {index + 1}: this prompt has one image")
            return self
        return replace(self, image=self.images[index], layout=self.layouts[index])

    def image_token_labels(self) -> list[str]:
        """Labels of every image token in prompt order (``i2·r1c3`` when the prompt has several images)."""
        if len(self.layouts) <= 1:
            return self.layout.token_labels()
        return [f"i{k + 1}·{label}" for k, layout in enumerate(self.layouts) for label in layout.token_labels()]

    def image_order_caption(self, shown: int) -> str:
        if len(self.layouts) <= 1:
            return self.layout.order_caption(shown)
        total = len(self._positions)
        counts = ", ".join(f"image {k + 1}: {len(layout.image_positions)}" for k, layout in enumerate(self.layouts))
        return (f"{'All' if shown >= total else f'First {shown} of'} {total} image tokens of {len(self.layouts)} "
                f"images, image after image ({counts}); each image's tokens: {self.layout.token_order}.")

    def special_steps(self) -> list[int]:
        """Generated tokens the answer text leaves out (special tokens; their labels are marked)."""
        is_special = getattr(self.token_names, "is_special", None)
        if is_special is None:
            return []
        return [i for i, t in enumerate(self.result.generated_ids) if is_special(t)]

    def grid(self, step: int, layers: Sequence[int] | None, head: int | HeadMode,
             view: str | None = None) -> np.ndarray:
        chosen = self.layout.view_or_primary(view)
        return chosen.grid(token_attention(self.result, step, layers, head), self._positions)

    def layer_grids(self, step: int, head: int | HeadMode, view: str | None = None) -> np.ndarray:
        """``[layers, rows, cols]`` for the small multiples."""
        return np.stack([self.grid(step, [layer], head, view) for layer in range(self.result.n_layers)])

    def head_grids(self, step: int, layer: int, view: str | None = None) -> np.ndarray:
        """``[heads, rows, cols]``: every head of one layer, for the heads grid (small multiples)."""
        if not 0 <= layer < self.result.n_layers:
            raise IndexError(f"layer {layer} out of range (0..{self.result.n_layers - 1})")
        return np.stack([self.grid(step, [layer], head, view) for head in range(self.result.n_heads)])

    def spatial_lens(self, layer: int, step: int = 0, view: str | None = None) -> SpatialLens:
        """The logit lens over the image: each image patch's top-1 token at ``layer``, answer token marked.

        Needs a capture with ``lens_image_tokens=True``; raises ``ValueError`` otherwise.
        """
        lens = self.result.lens
        if lens is None or lens.image_ids is None or lens.image_probs is None:
            raise ValueError("this capture has no logit lens over image tokens (capture with the lens on)")
        if not 0 <= layer < lens.image_ids.shape[0]:
            raise IndexError(f"layer {layer} out of range (0..{lens.image_ids.shape[0] - 1})")
        chosen = self.layout.view_or_primary(view)
        ids = chosen.grid(lens.image_ids[layer, :, 0], self._positions)
        probs = chosen.grid(lens.image_probs[layer, :, 0], self._positions).astype(float)
        answer_id = self.result.generated_ids[step] if 0 <= step < len(self.result.generated_ids) else None
        names = np.array(self.token_names(ids.reshape(-1).tolist()), dtype=object).reshape(ids.shape)
        answer = self.token_names([answer_id])[0] if answer_id is not None else ""
        return SpatialLens(layer, names, probs, ids == answer_id if answer_id is not None
                           else np.zeros(ids.shape, dtype=bool), answer)

    def rollout_grid(self, loaded: Any, step: int, upto: int | None = None, view: str | None = None) -> np.ndarray:
        """Attention rollout (see :mod:`dashboard.attention.rollout`) of generated token ``step`` as a grid.

        Runs one eager forward pass per token (kept, so changing layers or views is free).
        """
        if self.inputs is None:
            raise ValueError("this capture kept no model inputs; rollout needs them")
        if not 0 <= step < len(self.result.generated_ids):
            raise IndexError(f"token {step} out of range (0..{len(self.result.generated_ids) - 1})")
        if step not in self._full_attention:
            inputs = force_tokens(self.inputs, self.result.generated_ids[:step])
            self._full_attention.clear()  # one token's matrices at a time: they are seq × seq per layer
            self._full_attention[step] = full_attentions(loaded.model, inputs, getattr(loaded, "lock", None))
        values = image_rollout(self._full_attention[step], self._positions, upto)
        chosen = self.layout.view_or_primary(view)
        return chosen.grid(values, self._positions)

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
            "token_index": step, "token": self.tokens[step],
            "token_id": self.result.generated_ids[step], "layers": chosen, "head": head,
            "view": view or self.layout.primary.name, "layout": self.layout.to_dict(),
            "grid": self.grid(step, chosen, head, view).round(7).tolist(),
            "image_share_per_layer": self.image_share(step).round(7).to_dict(orient="list"),
        }


@dataclass(frozen=True)
class SpatialLens:
    """Per-patch logit lens at one layer, laid out like the image grid."""

    layer: int
    tokens: np.ndarray  # object [rows, cols]: decoded top-1 token of each patch
    probs: np.ndarray  # float [rows, cols]: its probability
    is_answer: np.ndarray  # bool [rows, cols]: the top-1 token is the chosen generated token
    answer: str

    def labels(self) -> list[list[str]]:
        """HTML-escaped token text per cell (Plotly renders a subset of HTML in text)."""
        return [[html.escape(str(t)) for t in row] for row in self.tokens]

    @property
    def answer_share(self) -> float:
        """Share of patches whose top-1 token already is the answer token."""
        return float(self.is_answer.mean()) if self.is_answer.size else 0.0


def head_value_range(grids: np.ndarray) -> tuple[float, float]:
    """One colour scale for a set of maps (the heads grid), so heads can be compared by strength."""
    return float(np.min(grids)), float(np.max(grids))


def force_tokens(inputs: Any, token_ids: Sequence[int]) -> dict[str, Any]:
    """Append already-chosen answer tokens to the prompt, so the next step predicts the token after them.

    Used to compare checkpoints on *the same* token: every checkpoint of a run shares the tokenizer,
    so the reference checkpoint's generated ids can be fed to the others (teacher forcing). A batch
    of prompts gets the same tokens on every row.
    """
    out = dict(inputs)
    if not token_ids:
        return out
    ids = out["input_ids"]
    extra = torch.as_tensor(list(token_ids), dtype=ids.dtype, device=ids.device).unsqueeze(0).expand(ids.shape[0], -1)
    out["input_ids"] = torch.cat([ids, extra], dim=1)
    for key, fill in (("attention_mask", 1), ("mm_token_type_ids", 0), ("token_type_ids", 0)):
        if key in out and out[key] is not None:
            out[key] = torch.cat([out[key], torch.full_like(extra, fill, dtype=out[key].dtype)], dim=1)
    return out


def analyse(loaded: Any, image: Image.Image, prompt: str, *, max_new_tokens: int = 16, lens_top_k: int = 5,
            lens_image_tokens: bool = True, prefill: str = "", forced: Sequence[int] = (),
            should_stop: Callable[[], bool] | None = None, more_images: Sequence[Image.Image] = ()) -> AttentionRun:
    """Generate greedily on ``loaded`` (a pooled LoadedModel) and capture attention + logit lens.

    ``forced`` answer-token ids are appended to the prompt first (see :func:`force_tokens`); the
    captured step 0 is then the token that follows them. ``should_stop`` cancels the generation
    (:class:`~dashboard.generation.GenerationCancelled`), as on every page. ``more_images`` follow
    ``image`` in the same prompt (families whose adapter maps several images); the run is drawn on
    ``image`` and :meth:`AttentionRun.for_image` draws it on another.
    """
    from dashboard.generation import build_inputs, build_prompt_inputs

    adapter_for(str(loaded.model_type or loaded.model.config.model_type))  # fail before generating
    images = (image, *more_images)
    if more_images:
        inputs = force_tokens(build_prompt_inputs(loaded, images, prompt, prefill), forced)
        layouts = layouts_for(loaded.model.config, loaded.processor, inputs["input_ids"], images, inputs)
        layout = layouts[0]
    else:
        inputs = force_tokens(build_inputs(loaded, image, prompt, prefill), forced)
        layout = layout_for(loaded.model.config, loaded.processor, inputs["input_ids"], image, inputs)
        layouts = ()
    result = capture_generate(loaded.model, dict(inputs), max_new_tokens=max_new_tokens, lens_top_k=lens_top_k,
                              lens_image_tokens=lens_image_tokens, lock=loaded.lock, should_stop=should_stop,
                              do_sample=False)
    namer = TokenNames(loaded.processor)
    tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
    text = tokenizer.decode(result.generated_ids, skip_special_tokens=True)
    return AttentionRun(str(loaded.path), prompt, image, namer(result.generated_ids), result, layout, namer, text,
                        inputs=dict(inputs), images=images if more_images else (), layouts=layouts)


def pointing_report(loaded: Any, examples: Sequence[Any], *, layers: Sequence[int] | None = None,
                    max_examples: int | None = None, progress: ProgressFn | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS, max_new_tokens: int = 4,
                    should_stop: Callable[[], bool] | None = None,
                    turn: Callable[[], AbstractContextManager[Any]] | None = None) -> PointingReport:
    """Pointing score of one checkpoint over eval examples that name a target object with a box.

    The first generated token's attention is scored; the whole answer (up to ``max_new_tokens``) is
    generated too, so each row knows whether the model was right (registry exact match), for the split.
    Images larger than ``max_pixels`` (the configured limit) are skipped with the reason.
    ``should_stop`` cancels the whole report (:class:`~dashboard.generation.GenerationCancelled`
    is a ``BaseException``: the per-example ``except Exception`` does not swallow it).
    ``turn`` (e.g. ``lambda: pool.turn(path)``) is entered around each example's generation, so a
    long report takes one FIFO turn per example instead of holding the checkpoint throughout.
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
            with turn() if turn is not None else nullcontext():
                run = analyse(loaded, image, example.prompt, max_new_tokens=max_new_tokens, lens_top_k=0,
                              lens_image_tokens=False, should_stop=should_stop)
        except Exception as exc:  # one bad example must not sink the report
            logger.warning("pointing: example %s skipped", example.id, exc_info=True)
            report.skipped.append(f"{example.id}: {type(exc).__name__}: {exc}")
            continue
        grids = run.layer_grids(0, "mean")
        output = run.tokens[0] if run.tokens else ""
        report.rows.append(score_example(example.id, grids, run.layout.primary, example.objects[example.target]["bbox"],
                                         output, example.answer, layers,
                                         answer_correct=bool(exact_match(run.text, example.answer))))
        if progress is not None:
            progress(i + 1, len(usable))
    return report


@dataclass(frozen=True)
class CheckpointPointing:
    """One checkpoint's pointing numbers (what the page's table and ``python -m dashboard pointing`` show)."""

    name: str
    step: int | None
    path: str
    report: PointingReport | None
    error: str = ""
    exception: BaseException | None = None  # the failure itself, for callers that react to its type (OOM)

    def summary(self) -> dict[str, Any]:
        base = self.report.summary() if self.report is not None else {"checkpoint": self.path, "n": 0}
        return {**base, "checkpoint": self.name, "path": self.path, "step": self.step,
                **({"error": self.error} if self.error else {})}


def pointing_over_checkpoints(pool: Any, checkpoints: Sequence[Any], examples: Sequence[Any], *,
                              max_examples: int | None = None, errors: tuple[type[BaseException], ...] = (),
                              max_pixels: int = DEFAULT_MAX_PIXELS,
                              progress: Callable[[int, int, str], None] | None = None,
                              should_stop: Callable[[], bool] | None = None) -> list[CheckpointPointing]:
    """Score every checkpoint (``CheckpointInfo``-like: ``name``, ``step``, ``path``) in step order.

    The one function behind the page's pointing table and the CLI, so both print the same numbers.
    ``errors`` listed here become a row with ``error`` instead of stopping the loop.
    """
    ordered = sorted(checkpoints, key=lambda c: (c.step is None, c.step if c.step is not None else 0, c.name))
    out: list[CheckpointPointing] = []
    from dashboard.generation import check_cancelled

    for i, info in enumerate(ordered):
        check_cancelled(should_stop, info.name)  # before loading the next model, not only between tokens
        try:
            with pool.acquire(info.path) as loaded:  # loaded and kept for the report; one turn per example
                report = pointing_report(loaded, examples, max_examples=max_examples, max_pixels=max_pixels,
                                         should_stop=should_stop, turn=functools.partial(pool.turn, info.path))
            out.append(CheckpointPointing(info.name, info.step, str(info.path), report))
        except errors as exc:
            out.append(CheckpointPointing(info.name, info.step, str(info.path), None, f"{type(exc).__name__}: {exc}",
                                          exc))
        if progress is not None:
            progress(i + 1, len(ordered), info.name)
    return out


__all__ = ["AttentionRun", "CheckpointPointing", "SpatialLens", "analyse", "force_tokens", "head_value_range",
           "pointing_over_checkpoints", "pointing_report", "summarise"]
