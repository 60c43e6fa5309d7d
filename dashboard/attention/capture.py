"""Record, during generation, how much each generated token attends to every image token.

Why not ``output_attentions=True``: that keeps every layer's full ``[heads, seq, seq]`` prefill
matrix plus a row per step — hundreds of MB on a 576-image-token prompt. Here a registered
attention function keeps only the query row that predicts the next token, reduced to
``[heads, n_image_tokens]`` plus a few per-head text sums. At prefill it computes just that row's
weights (output via SDPA); decode steps run the model's own *eager* attention (one row anyway).

Only the language model's layers are recorded (matched by module identity), never the vision
tower's attention. The model's attention implementation is switched for the duration of the call
and restored afterwards, under the pooled model's lock.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

logger = logging.getLogger(__name__)

CAPTURE_IMPLEMENTATION = "vlmlab_capture"
TEXT_SUMMARY_FIELDS = ("prompt_text", "generated", "first_token")
"""Per-head attention mass of the recorded row on: prompt tokens that are not image tokens,
tokens generated so far (including the current input token), and the very first token (the
usual attention sink). ``prompt_text`` includes ``first_token`` when it is text."""

_ACTIVE: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar("vlmlab_attention_recorder", default=None)
_EAGER_CACHE: dict[type, Callable[..., Any]] = {}
_SWITCH_LOCK = threading.RLock()


class CaptureError(RuntimeError):
    """The model cannot be captured (unsupported architecture or inputs); the message says why."""


def _eager_for(module: nn.Module) -> Callable[..., Any]:
    """The ``eager_attention_forward`` of the module's own modeling file (exactly what eager runs)."""
    cls = type(module)
    fn = _EAGER_CACHE.get(cls)
    if fn is None:
        fn = getattr(sys.modules.get(cls.__module__), "eager_attention_forward", None)
        if fn is None:
            raise CaptureError(f"{cls.__name__} has no eager_attention_forward in {cls.__module__}")
        _EAGER_CACHE[cls] = fn
    return fn


def _plain_attention(module: nn.Module, kwargs: dict[str, Any]) -> bool:
    """True when the layer's eager attention is plain softmax(QK^T·s + mask)·V (no softcap / sinks)."""
    return kwargs.get("softcap") is None and getattr(module, "sinks", None) is None and (
        kwargs.get("dropout", 0.0) == 0.0 or not module.training)


def _last_row_weights(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                      attention_mask: torch.Tensor | None, scaling: float) -> torch.Tensor:
    """Eager's attention weights for the last query row only: ``[batch, heads, 1, keys]``."""
    groups = getattr(module, "num_key_value_groups", 1)
    keys = key if groups == 1 else key.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query[:, :, -1:, :], keys.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, -1:, : keys.shape[-2]]
    return nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)


def _capture_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention that hands the recorder the row it needs, without keeping full weight matrices.

    Prefill of a recorded (language-model) layer: the output comes from SDPA (no ``seq × seq``
    matrix) and the weights are computed for the last query row only, exactly as eager would.
    Everything else (decode steps, vision tower, unusual attention) runs the model's own eager code.
    """
    recorder = _ACTIVE.get()
    if recorder is not None and id(module) not in recorder.layer_of:
        recorder = None  # not a recorded (language-model) attention
    if recorder is not None and query.shape[2] > 1 and _plain_attention(module, kwargs):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        scaling = kwargs.get("scaling")
        scaling = module.scaling if scaling is None else scaling
        output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=0.0,
                                           scaling=scaling, is_causal=None)
        recorder.observe(module, _last_row_weights(module, query, key, attention_mask, scaling))
        return output, None
    output, weights = _eager_for(module)(module, query, key, value, attention_mask, **kwargs)
    if recorder is not None and weights is not None:
        recorder.observe(module, weights)
    return output, None


AttentionInterface.register(CAPTURE_IMPLEMENTATION, _capture_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(CAPTURE_IMPLEMENTATION, eager_mask)


@dataclass
class _Recorder:
    """Writes each recorded row straight into preallocated CPU buffers (no list + stack copy at the end)."""

    layer_of: dict[int, int]
    image_positions: torch.Tensor
    prompt_len: int
    max_steps: int
    image: torch.Tensor | None = None  # float32 [max_steps, layers, heads, n_image]
    text: torch.Tensor | None = None  # float32 [max_steps, layers, heads, 3]
    steps: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.steps = [0] * len(set(self.layer_of.values()))

    def _allocate(self, heads: int) -> None:
        layers = len(self.steps)
        self.image = torch.zeros(self.max_steps, layers, heads, len(self.image_positions), dtype=torch.float32)
        self.text = torch.zeros(self.max_steps, layers, heads, len(TEXT_SUMMARY_FIELDS), dtype=torch.float32)

    def observe(self, module: nn.Module, weights: torch.Tensor) -> None:
        layer = self.layer_of.get(id(module))
        if layer is None:  # vision tower or another non-LM attention
            return
        if weights.shape[0] != 1:
            raise CaptureError("attention capture supports one sequence at a time (batch 1, no beam search)")
        step = self.steps[layer]
        if step >= self.max_steps:  # a forward beyond max_new_tokens (e.g. a caller's extra pass): ignore
            return
        if self.image is None or self.text is None:
            self._allocate(int(weights.shape[1]))
        assert self.image is not None and self.text is not None  # allocated above (narrows for mypy)
        row = weights[0, :, -1, :].detach().float()  # [heads, keys]: the query that predicts the next token
        image = row.index_select(1, self.image_positions)
        image_mass = image.sum(-1)
        self.image[step, layer].copy_(image)
        self.text[step, layer, :, 0].copy_(row[:, : self.prompt_len].sum(-1) - image_mass)
        self.text[step, layer, :, 1].copy_(row[:, self.prompt_len:].sum(-1))
        self.text[step, layer, :, 2].copy_(row[:, 0])
        self.steps[layer] = step + 1


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


def _adapter(model: PreTrainedModel) -> Any:
    from dashboard.attention.adapters import UnsupportedFamily, adapter_for

    try:
        return adapter_for(str(model.config.model_type))
    except UnsupportedFamily as exc:
        raise CaptureError(str(exc)) from exc


def _part(model: PreTrainedModel, root: Any, path: str) -> Any:
    from dashboard.attention.adapters import LayoutError

    adapter = _adapter(model)
    try:
        return adapter.components.resolve(root, path, adapter.family)
    except LayoutError as exc:
        raise CaptureError(str(exc)) from exc


def language_model(model: PreTrainedModel) -> nn.Module:
    """The decoder stack of a VLM, where its family adapter declares it."""
    return _part(model, model, _adapter(model).components.text_model)


def decoder_layers(model: PreTrainedModel) -> list[nn.Module]:
    return list(_part(model, language_model(model), _adapter(model).components.layers))


def final_norm(model: PreTrainedModel) -> nn.Module:
    return _part(model, language_model(model), _adapter(model).components.final_norm)


def lm_head(model: PreTrainedModel) -> nn.Module:
    return _part(model, model, _adapter(model).components.lm_head)


def language_attention_modules(model: PreTrainedModel) -> dict[int, int]:
    """id(attention module) -> layer index, for the language model's self-attention only."""
    path = _adapter(model).components.attention
    return {id(_part(model, layer, path)): index for index, layer in enumerate(decoder_layers(model))}


def image_token_id(model: PreTrainedModel) -> int:
    return int(_part(model, model.config, _adapter(model).components.image_token_id))


def _all_configs(model: nn.Module) -> list[Any]:
    seen: dict[int, Any] = {}
    stack = [getattr(m, "config", None) for m in model.modules()]
    while stack:
        cfg = stack.pop()
        if cfg is None or id(cfg) in seen or not hasattr(cfg, "_attn_implementation_internal"):
            continue
        seen[id(cfg)] = cfg
        stack.extend(getattr(cfg, key, None) for key in getattr(cfg, "sub_configs", {}))
    return list(seen.values())


@contextmanager
def attention_implementation(model: PreTrainedModel, name: str) -> Iterator[None]:
    """Switch the whole model to ``name`` and restore every (sub-)config exactly afterwards."""
    with _SWITCH_LOCK:
        configs = _all_configs(model)
        saved = [(cfg, cfg._attn_implementation_internal) for cfg in configs]
        try:
            model.set_attn_implementation(name)
            yield
        finally:
            for cfg, value in saved:
                cfg._attn_implementation_internal = value


def _layer_output(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output


class _Lens:
    """Forward hooks on decoder layers: decode the residual stream with the final norm + LM head."""

    def __init__(self, model: PreTrainedModel, image_positions: torch.Tensor, top_k: int, image_tokens: bool):
        self.layers = decoder_layers(model)
        self.norm: nn.Module = final_norm(model)
        self.head: nn.Module = lm_head(model)
        self.image_positions = image_positions
        self.top_k = top_k
        self.image_tokens = image_tokens
        n = len(self.layers)
        self.steps: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(n)]
        self.image: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n
        self.handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(self.layers)]

    def _decode(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.norm(hidden)).float()
        probs, ids = logits.softmax(-1).topk(self.top_k, dim=-1)
        return ids, probs

    def _hook(self, index: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            hidden = _layer_output(output)[0]  # [seq, hidden]
            with torch.no_grad():
                self.steps[index].append(self._decode(hidden[-1:])[0:2])
                if self.image_tokens and self.image[index] is None and hidden.shape[0] > 1:
                    chunks = [self._decode(hidden[self.image_positions[i:i + 256]])
                              for i in range(0, len(self.image_positions), 256)]
                    self.image[index] = (torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks]))
        return hook

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()

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
    pooled model's ``lock`` so nobody else generates while the attention implementation is switched.
    ``should_stop`` is polled every token by the generation's own
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
    image_positions = (input_ids[0] == image_token_id(model)).nonzero().flatten()
    if image_positions.numel() == 0:
        raise CaptureError("the prompt contains no image tokens — was the image passed to the processor?")
    prompt_len = int(input_ids.shape[1])
    recorder = _Recorder(language_attention_modules(model), image_positions.to(input_ids.device), prompt_len,
                         max_new_tokens)
    lens = _Lens(model, image_positions, lens_top_k, lens_image_tokens) if lens_top_k > 0 else None
    cancel = CancelCheck(should_stop)
    criteria = StoppingCriteriaList([*(generate_kwargs.pop("stopping_criteria", None) or []), cancel])
    token = _ACTIVE.set(recorder)
    try:
        with lock if lock is not None else nullcontext(), attention_implementation(model, CAPTURE_IMPLEMENTATION), \
                torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, stopping_criteria=criteria,
                                    **generate_kwargs)
    finally:
        _ACTIVE.reset(token)
        if lens is not None:
            lens.close()
    cancel.raise_if_cancelled("attention capture")
    sequence = output[0] if not hasattr(output, "sequences") else output.sequences[0]
    generated = [int(t) for t in sequence[prompt_len:]]
    steps = len(generated)
    if recorder.image is None or recorder.text is None or min(recorder.steps) < steps:
        raise CaptureError(f"recorded {min(recorder.steps)} steps for {steps} generated tokens — does this model "
                           "route its language-model attention through the attention interface?")
    image, text = recorder.image.numpy(), recorder.text.numpy()
    if steps < max_new_tokens:  # stopped early: give back the unused tail of the buffers
        image, text = image[:steps].copy(), text[:steps].copy()
    return CaptureResult(
        prompt_ids=[int(t) for t in input_ids[0]],
        generated_ids=generated,
        image_positions=image_positions.cpu().numpy(),
        image_attention=image,
        text_attention=text,
        lens=lens.record(steps) if lens is not None else None,
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
