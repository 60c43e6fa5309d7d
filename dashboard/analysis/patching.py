"""Activation patching between two checkpoints: which part of the model changed the answer.

Checkpoints A and B answer one example differently. Both are teacher-forced on the shared prompt
and the answer tokens they agree on, up to the first token where they differ (A says ``t_A``, B
says ``t_B``). The metric is the logit difference ``LD = logit(t_B) − logit(t_A)`` at that
position. A is run again with **B's activation at one site** (recorded from B's run on the same
input) and the share of the gap restored is, as TransformerLens ``patching.py`` normalises it,

    restored = (LD_patched − LD_A) / (LD_B − LD_A)        1 = B's behaviour, 0 = A's

(``b-to-a`` swaps the roles: B runs with A's activations and 1 means A's behaviour).

Sites (all on the one capture mechanism, :func:`dashboard.attention.hooks.capturing` with
:class:`~dashboard.attention.hooks.OutputTap`s — a recording tap on B, a replacing tap on A):

* **components**, whole outputs: vision tower, projector, text embeddings, the language model
  (decoder stack + final norm) and the LM head. Patching a component's output also carries every
  change *upstream* of it (B's projector output already holds B's vision tower), so beside
  ``restored`` each component has ``introduced``: what it restores beyond what arrives at its
  input — ``restored(vision)``, ``restored(projector) − restored(vision)``,
  ``restored(embeddings)``, ``restored(language model) − restored(projector + embeddings)``,
  ``restored(LM head) − restored(language model)``. The change *enters* where ``introduced`` is
  large; components are ranked by it.
* **layers**: each decoder layer's attention output and MLP output (what the layer adds to the
  residual stream), at the image-token positions, the text positions, or all positions.

All patched runs of one example are one batch (row 0 unpatched), so one example costs one
forward pass of B and one batched forward pass of A.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from dashboard.attention.hooks import CaptureError, ModelParts, capturing
from dashboard.evalset import EvalExample
from dashboard.generation import GenerationSettings, build_inputs
from dashboard.images import load_image
from dashboard.models.loading import LoadedModel
from dashboard.runs.files import read_bytes

Direction = Literal["a-to-b", "b-to-a"]
Positions = Literal["image", "text", "all"]
POSITIONS: tuple[Positions, ...] = ("image", "text", "all")
LAYER_SITES = ("attention", "mlp")
COMPONENTS = ("vision tower", "projector", "text embeddings", "language model", "LM head")
_COMPONENT_MODULES = {"vision tower": ("vision_tower",), "projector": ("projector",),
                      "text embeddings": ("embeddings",), "language model": ("language_model",),
                      "LM head": ("lm_head",), "language-model input": ("projector", "embeddings")}
_UPSTREAM = {"vision tower": None, "projector": "vision tower", "text embeddings": None,
             "language model": "language-model input", "LM head": "language model"}
_SEQUENCE_MODULES_PREFIX = ("embeddings", "layers.", "language_model")


class PatchError(ValueError):
    """The two checkpoints cannot be patched on this example; the message says why."""


@dataclass(frozen=True)
class Divergence:
    """Where two checkpoints' greedy answers to one example part ways."""

    example: EvalExample
    image: Image.Image
    answer_ids: tuple[tuple[int, ...], tuple[int, ...]]  # generated ids of A and of B
    answers: tuple[str, str]
    index: int  # first answer position where the ids differ

    @property
    def shared(self) -> tuple[int, ...]:
        return self.answer_ids[0][: self.index]

    @property
    def tokens(self) -> tuple[int, int]:
        return self.answer_ids[0][self.index], self.answer_ids[1][self.index]


@dataclass
class PatchReport:
    """What ``python -m dashboard patch`` prints and the "Why?" view draws (one code path)."""

    example: str
    direction: Direction
    a: dict[str, Any]
    b: dict[str, Any]
    answer_position: int
    logit_diff: dict[str, float]  # LD = logit(t_B) − logit(t_A) of A's run, B's run
    components: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    n_image_tokens: int
    n_text_tokens: int
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def component_ranking(self) -> list[str]:
        """Components by what they introduce, largest first."""
        return [c["component"] for c in sorted(self.components, key=lambda c: -c["introduced"])]

    def layer_ranking(self) -> list[int]:
        """Decoder layers by their largest restoration at any of their sites, largest first."""
        best: dict[int, float] = {}
        for row in self.layers:
            best[row["layer"]] = max(best.get(row["layer"], float("-inf")), row["restored"])
        return sorted(best, key=lambda layer: -best[layer])


# ----------------------------------------------------------------------------- answers
def example_image(example: EvalExample, roots: Sequence[Path]) -> Image.Image:
    """The example's image, read through the run-file checks."""
    return load_image(read_bytes(example.image_path, roots, "image"))


def _greedy_ids(loaded: LoadedModel, image: Image.Image, prompt: str, settings: GenerationSettings) -> list[int]:
    from dashboard.generation import _count_new_tokens

    inputs = build_inputs(loaded, image, prompt)
    with loaded.lock, torch.inference_mode():
        output = loaded.model.generate(**inputs, **settings.generate_kwargs())
    new = output[0, inputs["input_ids"].shape[1]:]
    return [int(t) for t in new[: _count_new_tokens(new, loaded)]]


def divergence(a: LoadedModel, b: LoadedModel, example: EvalExample, image: Image.Image,
               settings: GenerationSettings) -> Divergence | None:
    """The first answer token where A's and B's greedy answers differ, or None when they agree."""
    ids_a = _greedy_ids(a, image, example.prompt, settings)
    ids_b = _greedy_ids(b, image, example.prompt, settings)
    index = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y), None)
    if index is None:
        return None  # equal, or one a prefix of the other (stopped by the token budget)
    answers = tuple(a.processor.decode(ids, skip_special_tokens=True).strip() for ids in (ids_a, ids_b))
    return Divergence(example, image, (tuple(ids_a), tuple(ids_b)), (answers[0], answers[1]), index)


def find_divergence(a: LoadedModel, b: LoadedModel, examples: Sequence[EvalExample], roots: Sequence[Path],
                    settings: GenerationSettings, example_id: str | None = None, scan_batch: int = 8) -> Divergence:
    """The named example, or the first example of the eval set where A and B answer differently.

    The scan generates ``scan_batch`` examples at a time with the eval's own batched generation;
    a candidate is confirmed one at a time (batch 1), whose token ids the patching uses.
    """
    from dashboard.generation import generate_batch

    if example_id is not None:
        chosen = [e for e in examples if e.id == example_id]
        if not chosen:
            raise PatchError(f"no example {example_id!r} in the eval set")
        found = divergence(a, b, chosen[0], example_image(chosen[0], roots), settings)
        if found is None:
            raise PatchError(f"{a.path.name} and {b.path.name} give the same answer to {example_id!r}: "
                             "nothing to explain")
        return found
    step = max(1, scan_batch)
    for start in range(0, len(examples), step):
        chunk = list(examples[start:start + step])
        images = [example_image(e, roots) for e in chunk]
        prompts = [e.prompt for e in chunk]
        texts_a = generate_batch(a, images, prompts, settings, batch_size=step)
        texts_b = generate_batch(b, images, prompts, settings, batch_size=step)
        for example, image, ra, rb in zip(chunk, images, texts_a, texts_b, strict=True):
            if ra.text != rb.text:
                found = divergence(a, b, example, image, settings)
                if found is not None:
                    return found
    raise PatchError(f"{a.path.name} and {b.path.name} give the same answer on all {len(examples)} examples")


# ----------------------------------------------------------------------------- taps
def _zip_map(a: Any, b: Any, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Any:
    """Apply ``fn`` to every pair of tensors in two outputs of the same structure."""
    if isinstance(a, torch.Tensor):
        return fn(a, b)
    if isinstance(a, dict):  # ModelOutput
        return type(a)(**{k: _zip_map(a[k], b[k], fn) for k in a})
    if isinstance(a, tuple | list):
        return type(a)(_zip_map(x, y, fn) for x, y in zip(a, b, strict=True))
    return a


@dataclass
class _Record:
    """Keeps a module's output from the source model's run."""

    module: str
    output: Any = None

    def tap(self, output: Any) -> None:
        # A snapshot: transformers may fill the returned output object further after the hook ran.
        self.output = _zip_map(output, output, lambda tensor, _same: tensor.detach().clone())


@dataclass
class _Replace:
    """Puts the source's output in the rows (and, for sequence modules, positions) that ``mask`` marks."""

    module: str
    source: Any
    mask: torch.Tensor  # bool [rows, seq] (sequence modules) or [rows]

    def _mix(self, base: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        mask = self.mask
        rows = int(mask.shape[0])
        if mask.dim() == 2 and (base.dim() < 2 or base.shape[0] != rows or base.shape[1] != mask.shape[1]):
            mask = mask.any(1)  # a tensor without the sequence axis: whole rows
        if base.shape[0] != rows:  # rows flattened into the first axis (Qwen2-VL's vision tokens): per row, k items
            if source.shape[0] * rows != base.shape[0]:
                raise PatchError(f"cannot line up {self.module}'s output {tuple(base.shape)} with {rows} rows")
            mask = mask.any(1) if mask.dim() == 2 else mask
            mask = mask.repeat_interleave(source.shape[0])
            source = source.repeat(rows, *([1] * (source.dim() - 1)))
        shape = list(mask.shape) + [1] * (base.dim() - mask.dim())
        return torch.where(mask.reshape(shape).to(base.device), source.to(base.device, base.dtype), base)

    def tap(self, output: Any) -> Any:
        return _zip_map(output, self.source, self._mix)


def _is_sequence(module: str) -> bool:
    return module.startswith(_SEQUENCE_MODULES_PREFIX)


@dataclass(frozen=True)
class _Row:
    name: str
    patches: tuple[tuple[str, Positions], ...]


def _rows(n_layers: int) -> list[_Row]:
    rows = [_Row("A", ())]
    rows += [_Row(name, tuple((m, "all") for m in modules)) for name, modules in _COMPONENT_MODULES.items()]
    rows += [_Row(f"layers.{i}.{site}.{pos}", ((f"layers.{i}.{site}", pos),))
             for i in range(n_layers) for site in LAYER_SITES for pos in POSITIONS]
    return rows


def _forward_kwargs(model: Any) -> dict[str, Any]:
    params = inspect.signature(model.forward).parameters
    return {"use_cache": False} | ({"logits_to_keep": 1} if "logits_to_keep" in params else {})


def _teacher_forced(loaded: LoadedModel, found: Divergence, rows: int = 1) -> dict[str, Any]:
    """The prompt plus the shared answer tokens, repeated ``rows`` times along the first axis.

    Repeating every tensor along its first axis suits both layouts: a per-example batch axis
    (``[1, …]`` → ``[rows, …]``) and patches of all images flattened into one (Qwen2-VL's
    ``pixel_values``: ``[patches, dim]`` → ``[rows × patches, dim]``, with ``image_grid_thw`` per row).
    """
    inputs = dict(build_inputs(loaded, found.image, found.example.prompt))
    inputs.pop("labels", None)  # PaliGemma's processor adds training labels; no loss here
    if found.shared:
        ids = inputs["input_ids"]
        extra = torch.tensor([found.shared], dtype=ids.dtype, device=ids.device)
        inputs["input_ids"] = torch.cat([ids, extra], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if "token_type_ids" in inputs:  # PaliGemma / Gemma 3: answered tokens are causal suffix (type 1)
            inputs["token_type_ids"] = torch.cat([inputs["token_type_ids"], torch.ones_like(extra)], dim=1)
    if rows == 1:
        return inputs
    return {k: (v.repeat(rows, *([1] * (v.dim() - 1))) if isinstance(v, torch.Tensor) and v.dim() else v)
            for k, v in inputs.items()}


def _logit_diff(logits: torch.Tensor, target: int, other: int) -> torch.Tensor:
    last = logits[:, -1, :].double()
    return last[:, target] - last[:, other]


def patch_divergence(a: LoadedModel, b: LoadedModel, found: Divergence, direction: Direction = "a-to-b",
                     batch_size: int = 32) -> PatchReport:
    """Patch the source model's activations into the base model, one site per batch row."""
    started = time.perf_counter()
    base, source = (a, b) if direction == "a-to-b" else (b, a)
    token_a, token_b = found.tokens
    target, other = (token_b, token_a) if direction == "a-to-b" else (token_a, token_b)
    inputs = _teacher_forced(base, found)
    source_inputs = _teacher_forced(source, found)
    if not torch.equal(inputs["input_ids"], source_inputs["input_ids"]):
        raise PatchError(f"{a.path.name} and {b.path.name} tokenise the prompt differently: positions do not line up")
    try:
        base_parts, source_parts = ModelParts.of(base.model), ModelParts.of(source.model)
    except CaptureError as exc:
        raise PatchError(str(exc)) from exc
    if len(base_parts.layers) != len(source_parts.layers):
        raise PatchError("the two checkpoints have different numbers of decoder layers")
    ids = inputs["input_ids"][0]
    image = ids == base_parts.image_token_id
    position_masks = {"image": image, "text": ~image, "all": torch.ones_like(image)}
    rows = _rows(len(base_parts.layers))
    modules = sorted({m for row in rows for m, _ in row.patches})
    records = [_Record(m) for m in modules]
    kwargs = _forward_kwargs(base.model)
    with capturing(source_parts, [], source.lock, outputs=records), torch.inference_mode():
        source_ld = float(_logit_diff(source.model(**source_inputs, **kwargs).logits, target, other)[0])
    recorded = {r.module: r.output for r in records}
    diffs: list[float] = []
    for start in range(0, len(rows), max(1, batch_size)):
        chunk = rows[start:start + batch_size]
        taps = []
        for module in modules:
            mask = torch.zeros(len(chunk), len(ids), dtype=torch.bool, device=ids.device)
            for r, row in enumerate(chunk):
                for patched, positions in row.patches:
                    if patched == module:
                        mask[r] |= position_masks[positions] if _is_sequence(module) else True
            if mask.any():
                taps.append(_Replace(module, recorded[module], mask if _is_sequence(module) else mask.any(1)))
        batch = _teacher_forced(base, found, len(chunk))
        with capturing(base_parts, [], base.lock, outputs=taps), torch.inference_mode():
            diffs += _logit_diff(base.model(**batch, **kwargs).logits, target, other).tolist()
    base_ld = diffs[0]
    gap = source_ld - base_ld
    if abs(gap) < 1e-9:
        raise PatchError("the two checkpoints' logit differences coincide: nothing to restore")
    restored = {row.name: (d - base_ld) / gap for row, d in zip(rows, diffs, strict=True)}
    components = []
    for name in COMPONENTS:
        upstream = _UPSTREAM[name]
        components.append({"component": name, "restored": restored[name],
                           "introduced": restored[name] - (restored[upstream] if upstream else 0.0)})
    layers = [{"layer": i, "site": site, "positions": pos, "restored": restored[f"layers.{i}.{site}.{pos}"]}
              for i in range(len(base_parts.layers)) for site in LAYER_SITES for pos in POSITIONS]
    decode = a.processor.decode
    ld_a, ld_b = (base_ld, source_ld) if direction == "a-to-b" else (-source_ld, -base_ld)
    return PatchReport(
        example=found.example.id, direction=direction,
        a={"checkpoint": a.path.name, "answer": found.answers[0], "token": decode([token_a])},
        b={"checkpoint": b.path.name, "answer": found.answers[1], "token": decode([token_b])},
        answer_position=found.index, logit_diff={"a": ld_a, "b": ld_b},
        components=components, layers=layers, n_image_tokens=int(image.sum()), n_text_tokens=int((~image).sum()),
        seconds=time.perf_counter() - started)


def patch_checkpoints(a: LoadedModel, b: LoadedModel, examples: Sequence[EvalExample], roots: Sequence[Path], *,
                      example_id: str | None = None, direction: Direction = "a-to-b",
                      settings: GenerationSettings = GenerationSettings(max_new_tokens=16)) -> PatchReport:
    """Find the example (named, or the first where the answers differ) and patch it."""
    if direction not in ("a-to-b", "b-to-a"):
        raise PatchError(f"direction must be 'a-to-b' or 'b-to-a', not {direction!r}")
    started = time.perf_counter()
    report = patch_divergence(a, b, find_divergence(a, b, examples, roots, settings, example_id), direction)
    report.seconds = time.perf_counter() - started
    return report
