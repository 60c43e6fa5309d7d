"""The one capture mechanism: where a model is tapped during a forward pass, and for how long.

Split as nnsight splits it: *select* — :class:`ModelParts` takes the modules to tap from the
family adapter's declared :class:`~dashboard.attention.adapters.Components` (no probing);
*transform + record* — a :class:`Reduction` turns what one site delivers into what it keeps;
*lifetime* — :func:`capturing` installs the taps for the duration of a ``with`` block, under the
pooled model's lock, and removes every one of them (and restores the attention implementation)
on the way out, error or not. What to compute lives in the reductions
(:mod:`dashboard.attention.capture`), never here.

Three sites:

- ``"attention_row"``: each language-model attention module's weights for the query that predicts
  the next token, ``[batch, heads, 1, keys]``. Delivered by an attention function registered with
  transformers' ``AttentionInterface``; not by ``output_attentions=True``, which keeps every
  layer's full ``[heads, seq, seq]`` prefill matrix (hundreds of MB on a 576-image-token prompt).
  At prefill the function computes just that row's weights (output via SDPA); decode steps run
  the model's own *eager* attention (one row anyway). Only the language model's attention is
  delivered (matched by module identity), never the vision tower's.
- ``"attention_matrix"``: the same modules' full eager weights, ``[batch, heads, queries, keys]``
  (what rollout needs). While anything reads it, every tapped layer runs eager — costly on long
  prompts, so it is meant for one forward pass, not a generation.
- ``"layer_output"``: the hidden states leaving each decoder layer, ``[batch, seq, hidden]``
  (forward hooks on the declared layers).

Beside the sites, an :class:`OutputTap` sees a whole module's output (vision tower, projector,
token embeddings, language model, LM head, each layer's attention and MLP — see
:func:`output_modules`) and may *replace* it: activation patching between checkpoints records
with one tap and replaces with another (:mod:`dashboard.analysis.patching`).
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

if TYPE_CHECKING:
    from dashboard.attention.adapters import Components

CAPTURE_IMPLEMENTATION = "vlmlab_capture"

Site = Literal["attention_row", "attention_matrix", "layer_output"]
SITES: tuple[Site, ...] = ("attention_row", "attention_matrix", "layer_output")


class CaptureError(RuntimeError):
    """The model cannot be captured (unsupported architecture or inputs); the message says why."""


class Reduction(Protocol):
    """What to compute from one site and keep. ``observe`` is called once per layer per forward pass."""

    site: Site

    def observe(self, layer: int, value: torch.Tensor) -> None: ...


@dataclass(frozen=True)
class ModelParts:
    """The language model's parts of one loaded VLM, where its family adapter declares them."""

    model: PreTrainedModel
    family: str
    text_model: nn.Module  # the decoder stack
    layers: tuple[nn.Module, ...]
    attention: tuple[nn.Module, ...]  # the self-attention of each layer, same order
    final_norm: nn.Module
    lm_head: nn.Module
    image_token_id: int
    declared: Components | None = None  # the adapter's declaration: parts resolved on demand (output_modules)

    @classmethod
    def of(cls, model: PreTrainedModel) -> ModelParts:
        """Resolve every declared path; :class:`CaptureError` names the family and the path that is missing."""
        from dashboard.attention.adapters import LayoutError, UnsupportedFamily, adapter_for

        try:
            adapter = adapter_for(str(model.config.model_type))
            parts, family = adapter.components, adapter.family

            def part(root: Any, path: str) -> Any:
                return parts.resolve(root, path, family)

            text_model = part(model, parts.text_model)
            layers = tuple(part(text_model, parts.layers))
            return cls(model, family, text_model, layers, tuple(part(layer, parts.attention) for layer in layers),
                       part(text_model, parts.final_norm), part(model, parts.lm_head),
                       int(part(model.config, parts.image_token_id)), parts)
        except (UnsupportedFamily, LayoutError) as exc:
            raise CaptureError(str(exc)) from exc


class OutputTap(Protocol):
    """Sees the whole output of one module (named as in :func:`output_modules`) on every forward pass.

    ``tap`` returns ``None`` to leave the output as it is (recording) or the value the model
    continues with instead (patching).
    """

    module: str

    def tap(self, output: Any) -> Any: ...


def output_modules(parts: ModelParts) -> dict[str, nn.Module]:
    """The modules an :class:`OutputTap` can name, in forward order, from the adapter's declared parts.

    ``vision_tower``, ``projector``, ``embeddings``, ``layers.{i}.attention``, ``layers.{i}.mlp``,
    ``language_model`` (the decoder stack and its final norm) and ``lm_head``.
    """
    declared = parts.declared
    if declared is None:
        raise CaptureError(f"{parts.family}: no declared parts to tap")

    def part(root: Any, path: str) -> nn.Module:
        from dashboard.attention.adapters import LayoutError

        try:
            return declared.resolve(root, path, parts.family)  # type: ignore[no-any-return]  # attrgetter: Any
        except LayoutError as exc:
            raise CaptureError(str(exc)) from exc

    modules = {"vision_tower": part(parts.model, declared.vision_tower),
               "projector": part(parts.model, declared.projector),
               "embeddings": part(parts.text_model, declared.embed_tokens)}
    for i, (layer, attention) in enumerate(zip(parts.layers, parts.attention, strict=True)):
        modules[f"layers.{i}.attention"] = attention
        modules[f"layers.{i}.mlp"] = part(layer, declared.mlp)
    return modules | {"language_model": parts.text_model, "lm_head": parts.lm_head}


def _output_hook(tap: OutputTap) -> Callable[..., Any]:
    def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
        return tap.tap(output)
    return hook


@dataclass(frozen=True)
class _Session:
    """The reductions of one ``capturing`` block, grouped by site."""

    attention_layer: dict[int, int]  # id(attention module) -> layer index
    readers: dict[Site, tuple[Reduction, ...]]
    untapped: dict[int, str | None] = field(default_factory=dict)
    """id(config) -> the attention implementation it had before the capture switched it (see
    :func:`_untapped_attention`)."""

    def deliver(self, site: Site, layer: int, value: torch.Tensor) -> None:
        for reduction in self.readers[site]:
            reduction.observe(layer, value)


_ACTIVE: contextvars.ContextVar[_Session | None] = contextvars.ContextVar("vlmlab_capture_session", default=None)
_EAGER_CACHE: dict[type, Callable[..., Any]] = {}
_SWITCH_LOCK = threading.RLock()


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
    """Attention that delivers the ``attention_row`` site without keeping full weight matrices.

    Prefill of a tapped (language-model) layer, when nobody reads full matrices: the output comes
    from SDPA (no ``seq × seq`` matrix) and the weights are computed for the last query row only,
    exactly as eager would. Everything else (decode steps, vision tower, unusual attention, the
    ``attention_matrix`` site) runs the model's own eager code.
    """
    session = _ACTIVE.get()
    layer = session.attention_layer.get(id(module)) if session is not None else None
    if (session is not None and layer is not None and not session.readers["attention_matrix"]
            and query.shape[2] > 1 and _plain_attention(module, kwargs)):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        scaling = kwargs.get("scaling")
        scaling = module.scaling if scaling is None else scaling
        output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=0.0,
                                           scaling=scaling, is_causal=None)
        session.deliver("attention_row", layer, _last_row_weights(module, query, key, attention_mask, scaling))
        return output, None
    if session is not None and layer is None:
        untapped = _untapped_attention(module, session)
        if untapped is not None:
            return untapped(module, query, key, value, attention_mask, **kwargs)
    output, weights = _eager_for(module)(module, query, key, value, attention_mask, **kwargs)
    if session is not None and layer is not None and weights is not None:
        session.deliver("attention_matrix", layer, weights)
        session.deliver("attention_row", layer, weights[:, :, -1:, :])
    return output, None


def _untapped_attention(module: nn.Module, session: _Session) -> Callable[..., Any] | None:
    """The implementation an attention module that nobody taps (e.g. the vision tower) ran before the capture.

    Why: switching the whole model to the capture implementation would otherwise run the vision
    tower eager, materialising every ``[heads, patches, patches]`` matrix — on SmolVLM's 17 tiles
    of 1,024 patches that alone is ~0.9 GB per layer, more than everything the capture saves.
    ``None`` (run eager) when the module had eager, or its implementation is unknown.
    """
    name = session.untapped.get(id(getattr(module, "config", None)))
    if not isinstance(name, str) or name in ("eager", CAPTURE_IMPLEMENTATION):
        return None
    try:
        return ALL_ATTENTION_FUNCTIONS[name]
    except KeyError:
        return None


AttentionInterface.register(CAPTURE_IMPLEMENTATION, _capture_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(CAPTURE_IMPLEMENTATION, eager_mask)


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


def _layer_hook(session: _Session, layer: int) -> Callable[..., None]:
    def hook(_module: nn.Module, _args: Any, output: Any) -> None:
        with torch.no_grad():
            session.deliver("layer_output", layer, _layer_output(output))
    return hook


@contextmanager
def capturing(parts: ModelParts, reductions: Sequence[Reduction],
              lock: threading.RLock | None = None, outputs: Sequence[OutputTap] = ()) -> Iterator[None]:
    """Feed every reduction from its site, and every output tap, while the block runs (under ``lock``, gradients off).

    Taps are installed only for sites some reduction reads; all are gone when the block exits.
    Pass the pooled model's ``lock`` so nobody else runs the model while it is tapped.
    """
    unknown = [r for r in reductions if r.site not in SITES]
    if unknown:
        raise CaptureError(f"unknown capture site {unknown[0].site!r}; sites are {', '.join(SITES)}")
    readers = {site: tuple(r for r in reductions if r.site == site) for site in SITES}
    untapped = {id(cfg): cfg._attn_implementation_internal for cfg in _all_configs(parts.model)}
    session = _Session({id(module): i for i, module in enumerate(parts.attention)}, readers, untapped)
    with ExitStack() as stack:
        if lock is not None:
            stack.enter_context(lock)
        if readers["attention_row"] or readers["attention_matrix"]:
            stack.enter_context(attention_implementation(parts.model, CAPTURE_IMPLEMENTATION))
            stack.callback(_ACTIVE.reset, _ACTIVE.set(session))
        if readers["layer_output"]:
            for i, layer in enumerate(parts.layers):
                stack.callback(layer.register_forward_hook(_layer_hook(session, i)).remove)
        if outputs:
            modules = output_modules(parts)
            unknown_modules = [t.module for t in outputs if t.module not in modules]
            if unknown_modules:
                raise CaptureError(f"no module {unknown_modules[0]!r} to tap; modules are {', '.join(modules)}")
            for tap in outputs:
                stack.callback(modules[tap.module].register_forward_hook(_output_hook(tap)).remove)
        stack.enter_context(torch.no_grad())
        yield
