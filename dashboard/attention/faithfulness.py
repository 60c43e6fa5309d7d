"""Trust in a map: is an attention heatmap faithful to what the model actually uses on this example?

Two checks, both run on the checkpoint itself (no Streamlit, so the page, the CLI and the bench share them):

- **Deletion curve** (Petsiuk et al., RISE; Samek et al.). Patches are deleted from the *processor's
  input* — the original picture is painted over at the pixel boxes the family adapter gives for each
  image token, filled with the picture's mean colour, and the checkpoint's own processor runs again —
  in the order of the map (most attended first) and in random orders (several seeds). After each
  deletion the probability of the explained token, at the position that produced it, is measured
  (teacher forcing: the earlier generated tokens are appended to the prompt). If the map shows what
  the model uses, its curve falls faster than the random ones. The one number is the area between the
  mean random curve and the map's curve, with the x axis the fraction of patches deleted (0..1) and
  the probabilities divided by the undeleted probability: > 0 means the map beats random, 1 would be
  a map whose first deletion already takes all the probability away while random deletions take none.
  Every masked variant goes through the model in a few batched forward passes.
- **Sanity check** (Adebayo et al., "Sanity Checks for Saliency Maps", 2018). The language model's
  decoder layers of a *copy* of the model are re-initialised, cascading from the top layer down, and
  the map is computed again. The Spearman rank correlation between the original and the randomised
  map is reported per stage; a map that stays the same when the weights it should explain are random
  (correlation near 1) says more about the input than about the model. The pooled model is never
  modified: the copy is made under its lock and thrown away.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from dashboard.attention.adapters import GridView, ImageLayout
from dashboard.attention.analysis import analyse, force_tokens
from dashboard.attention.capture import capture_generate
from dashboard.attention.hooks import ModelParts
from dashboard.attention.overlay import HeadMode, token_attention
from dashboard.models.vision_chunks import vision_in_chunks

FILL = "image mean colour"  # what a deleted patch is painted with (said in every caption and export)
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
DEFAULT_POINTS = 21  # deletion fractions 0, 5 %, …, 100 % (fewer when the grid has fewer cells)
DEFAULT_BATCH = 32


class FaithfulnessError(ValueError):
    """The check cannot run on this map (no probability to delete, token out of range, …); says why."""


# ---------------------------------------------------------------------------- deletion


def deletion_steps(n_cells: int, points: int = DEFAULT_POINTS) -> np.ndarray:
    """How many cells are deleted at each point of the curve: 0 … ``n_cells``, at most ``points`` values."""
    if n_cells < 1:
        raise FaithfulnessError("the map has no cells")
    return np.unique(np.round(np.linspace(0, n_cells, max(2, points))).astype(int))


def map_order(grid: np.ndarray) -> np.ndarray:
    """Cell indices (row-major) from most to least attended; ties keep row-major order."""
    return np.argsort(-np.asarray(grid, dtype=np.float64).reshape(-1), kind="stable")


def random_orders(n_cells: int, seeds: Sequence[int]) -> np.ndarray:
    """``[seeds, n_cells]`` random deletion orders, one per seed (reproducible)."""
    return np.stack([np.random.default_rng(seed).permutation(n_cells) for seed in seeds])


def fill_colour(image: Image.Image) -> tuple[int, int, int]:
    """The picture's mean colour: a deleted patch carries no edge or object, only the average."""
    mean = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)
    return (round(mean[0]), round(mean[1]), round(mean[2]))


def cell_rectangles(view: GridView, size: tuple[int, int]) -> list[tuple[int, int, int, int] | None]:
    """Per cell (row-major), its pixel box in the original picture clipped to it; None when it lies outside
    (a padding-only cell: deleting it changes nothing the processor sees of the picture)."""
    width, height = size
    out: list[tuple[int, int, int, int] | None] = []
    for x0, y0, x1, y1 in view.boxes.reshape(-1, 4):
        left, top = max(0, int(np.floor(x0 + 1e-6))), max(0, int(np.floor(y0 + 1e-6)))
        right, bottom = min(width, int(np.ceil(x1 - 1e-6))), min(height, int(np.ceil(y1 - 1e-6)))
        out.append((left, top, right, bottom) if right > left and bottom > top else None)
    return out


def masked_image(image: Image.Image, rectangles: Sequence[tuple[int, int, int, int] | None],
                 cells: Sequence[int], colour: tuple[int, int, int]) -> Image.Image:
    """``image`` with the pixel boxes of ``cells`` painted ``colour`` (the processor then sees them deleted)."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    for cell in cells:
        rect = rectangles[int(cell)]
        if rect is not None:
            left, top, right, bottom = rect
            draw.rectangle((left, top, right - 1, bottom - 1), fill=colour)
    return out


def _batched_inputs(loaded: Any, images: Sequence[Image.Image], prompt: str, forced: Sequence[int]) -> dict[str, Any]:
    """One prompt per image; teacher forcing: the explained token is predicted after the tokens
    generated before it."""
    from dashboard.generation import build_inputs

    return force_tokens(build_inputs(loaded, list(images), prompt), forced)


def token_probabilities(loaded: Any, images: Sequence[Image.Image], prompt: str, forced: Sequence[int],
                        target_id: int, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Probability of ``target_id`` after ``prompt`` + ``forced`` for each image, in batched forward passes."""
    out: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        inputs = _batched_inputs(loaded, images[start:start + batch_size], prompt, forced)
        # only the last position's logits (the LM head is the big matmul); a batch of images × tiles through the
        # vision encoder a few at a time
        with loaded.lock, torch.inference_mode(), vision_in_chunks(loaded.model):
            logits = loaded.model(**inputs, logits_to_keep=1).logits[:, -1, :].float()
        out.append(logits.softmax(-1)[:, int(target_id)].cpu().numpy())
    return np.concatenate(out).astype(np.float64)


@dataclass(frozen=True)
class DeletionCurves:
    """The probability of the explained token as patches are deleted, by the map's order and at random."""

    fractions: list[float]  # share of the view's cells deleted at each point
    by_map: list[float]  # probability of the token
    by_random: list[list[float]]  # [seeds][points]
    seeds: list[int]
    fill: str = FILL

    @property
    def random_mean(self) -> np.ndarray:
        return np.asarray(self.by_random, dtype=np.float64).mean(0)

    @property
    def base(self) -> float:
        """The probability with nothing deleted."""
        return float(self.by_map[0])

    @property
    def score(self) -> float:
        """Area between the mean random curve and the map's curve, probabilities relative to nothing deleted.

        > 0: deleting what the map points at removes the token's probability faster than deleting at random.
        """
        if self.base <= 0:
            return float("nan")
        gap = (self.random_mean - np.asarray(self.by_map, dtype=np.float64)) / self.base
        return float(np.trapezoid(gap, np.asarray(self.fractions, dtype=np.float64)))

    @property
    def beats_random(self) -> bool:
        return bool(self.score > 0)


def deletion_curves(loaded: Any, image: Image.Image, prompt: str, grid: np.ndarray, view: GridView,
                    target_id: int, forced: Sequence[int] = (), *, seeds: Sequence[int] = DEFAULT_SEEDS,
                    points: int = DEFAULT_POINTS, batch_size: int = DEFAULT_BATCH) -> DeletionCurves:
    """Delete ``view``'s cells from ``image`` in the order of ``grid`` and in random orders; see the module doc."""
    grid = np.asarray(grid)
    if grid.shape != view.shape:
        raise FaithfulnessError(f"the map is {grid.shape}, the view {view.name!r} is {view.shape}")
    n = grid.size
    steps = deletion_steps(n, points)
    orders = np.concatenate([map_order(grid)[None], random_orders(n, seeds)])
    rectangles = cell_rectangles(view, (int(image.width), int(image.height)))
    colour = fill_colour(image)
    base = image.convert("RGB")
    # one picture per (order, step); k = 0 is the same picture for every order: computed once
    variants = [base] + [masked_image(base, rectangles, order[:k], colour) for order in orders for k in steps[1:]]
    probs = token_probabilities(loaded, variants, prompt, forced, target_id, batch_size)
    rest = probs[1:].reshape(len(orders), len(steps) - 1)
    curves = np.concatenate([np.full((len(orders), 1), probs[0]), rest], axis=1)
    return DeletionCurves([float(k) / n for k in steps], curves[0].tolist(), curves[1:].tolist(), list(seeds))


# ---------------------------------------------------------------------------- sanity check


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either map is flat."""
    ra, rb = _ranks(np.asarray(a).reshape(-1)), _ranks(np.asarray(b).reshape(-1))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (starts + (counts - 1) / 2.0)[inverse].astype(np.float64)


def randomise_layers(model: Any, layers: Sequence[Any], seed: int) -> None:
    """Re-initialise every weight matrix of ``layers`` (normal, the config's initializer range; biases 0).

    Norm scales are left alone: they are not what the map claims to explain and resetting them to 1
    changes little.
    """
    config = getattr(model.config, "text_config", None) or model.config
    std = float(getattr(config, "initializer_range", 0.02) or 0.02)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in layers:
            for module in layer.modules():
                weight = getattr(module, "weight", None)
                if isinstance(weight, torch.nn.Parameter) and weight.dim() >= 2:
                    weight.copy_(torch.randn(weight.shape, generator=generator) * std)
                    bias = getattr(module, "bias", None)
                    if isinstance(bias, torch.nn.Parameter):
                        bias.zero_()


def private_copy(loaded: Any) -> Any:
    """A deep copy of the pooled model, taken under its lock (no capture hooks are installed meanwhile)."""
    with loaded.lock:
        return copy.deepcopy(loaded.model)


def attention_map(model: Any, inputs: dict[str, Any], layout: ImageLayout, layers: Sequence[int] | None,
                  head: int | HeadMode, view: str | None) -> np.ndarray:
    """The map of the token predicted after ``inputs`` (already teacher-forced), as the page draws it."""
    result = capture_generate(model, dict(inputs), max_new_tokens=1, do_sample=False)
    chosen = layout.view(view) if view else layout.primary
    return chosen.grid(token_attention(result, 0, layers, head), layout.image_positions)


@dataclass(frozen=True)
class SanityCheck:
    """Rank correlation between the map and the same map after re-initialising the top decoder layers."""

    randomised_layers: list[int]  # stage i re-initialised this many decoder layers, counted from the top
    spearman: list[float]
    seed: int

    @property
    def full(self) -> float:
        """Correlation with every decoder layer re-initialised (the headline number)."""
        return self.spearman[-1]


def sanity_check(loaded: Any, run: Any, step: int, layers: Sequence[int] | None, head: int | HeadMode,
                 view: str | None, original: np.ndarray, *, seed: int = 0) -> SanityCheck:
    """Cascading randomisation of a *copy*'s decoder layers, top first; the pooled model is untouched."""
    if run.inputs is None:
        raise FaithfulnessError("this capture kept no model inputs; the sanity check needs them")
    inputs = force_tokens(run.inputs, run.result.generated_ids[:step])
    model = private_copy(loaded)
    try:
        decoder = ModelParts.of(model).layers
        counts, rhos = [], []
        for n in range(1, len(decoder) + 1):
            randomise_layers(model, [decoder[len(decoder) - n]], seed + n)  # cumulative: the copy keeps earlier ones
            counts.append(n)
            rhos.append(spearman(original, attention_map(model, inputs, run.layout, layers, head, view)))
    finally:
        del model
    return SanityCheck(counts, rhos, seed)


# ---------------------------------------------------------------------------- both


@dataclass(frozen=True)
class Faithfulness:
    """Both checks for one (image, token): what the page shows and the CLI prints."""

    token: str
    token_id: int
    step: int
    layers: list[int]
    head: int | str
    view: str
    deletion: DeletionCurves
    sanity: SanityCheck | None
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.deletion.score

    @property
    def beats_random(self) -> bool:
        return self.deletion.beats_random

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "token_id": self.token_id, "step": self.step, "layers": self.layers,
                "head": self.head, "view": self.view, "score": self.score, "beats_random": self.beats_random,
                "base_probability": self.deletion.base, "fill": self.deletion.fill,
                "deletion": asdict(self.deletion),
                "sanity_spearman": self.sanity.full if self.sanity is not None else None,
                "sanity": asdict(self.sanity) if self.sanity is not None else None,
                "seconds": self.seconds, **self.extra}


def check_map(loaded: Any, run: Any, step: int, layers: Sequence[int] | None = None, head: int | HeadMode = "mean",
              view: str | None = None, *, grid: np.ndarray | None = None, sanity: bool = True,
              seeds: Sequence[int] = DEFAULT_SEEDS, points: int = DEFAULT_POINTS,
              clock: Callable[[], float] = time.perf_counter) -> Faithfulness:
    """Deletion curve (+ sanity check) of the map of generated token ``step`` of ``run`` (an AttentionRun).

    ``grid`` overrides the map (tests plant one; default: the run's map for these layers, head and view).
    """
    if not 0 <= step < len(run.result.generated_ids):
        raise FaithfulnessError(f"token {step} out of range (0..{len(run.result.generated_ids) - 1})")
    start = clock()
    chosen = run.layout.view(view) if view else run.layout.primary
    shown = run.grid(step, layers, head, chosen.name) if grid is None else np.asarray(grid)
    forced = run.result.generated_ids[:step]
    target = int(run.result.generated_ids[step])
    curves = deletion_curves(loaded, run.image, run.prompt, shown, chosen, target, forced, seeds=seeds, points=points)
    check = sanity_check(loaded, run, step, layers, head, chosen.name, shown) if sanity else None
    layer_list = list(range(run.result.n_layers)) if layers is None else [int(x) for x in layers]
    return Faithfulness(run.tokens[step], target, step, layer_list, head, chosen.name, curves, check,
                        clock() - start)


@dataclass(frozen=True)
class ExampleFaithfulness:
    """One eval example's check of its first generated token's map (the CLI's per-example row)."""

    id: str
    answer: str
    result: Faithfulness

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "answer": self.answer, **self.result.to_dict()}


def over_examples(loaded: Any, examples: Sequence[Any], *, limit: int | None = None, sanity: bool = True,
                  seeds: Sequence[int] = DEFAULT_SEEDS, points: int = DEFAULT_POINTS,
                  max_pixels: int | None = None, progress: Callable[[int, int, str], None] | None = None,
                  ) -> tuple[list[ExampleFaithfulness], list[str]]:
    """Check the map (all layers, head mean, primary view) of each example's first generated token.

    Returns the rows and the skipped examples with the reason (one bad example does not sink the rest).
    """
    from dashboard.images import DEFAULT_MAX_PIXELS, load_image

    chosen = list(examples)[:limit] if limit is not None else list(examples)
    rows: list[ExampleFaithfulness] = []
    skipped: list[str] = []
    for i, example in enumerate(chosen):
        try:
            image = load_image(example.image_path, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
            run = analyse(loaded, image, example.prompt, max_new_tokens=1, lens_top_k=0, lens_image_tokens=False)
            result = check_map(loaded, run, 0, sanity=sanity, seeds=seeds, points=points)
        except Exception as exc:  # reported per example, like the pointing score's skips
            skipped.append(f"{example.id}: {type(exc).__name__}: {exc}")
            continue
        rows.append(ExampleFaithfulness(example.id, example.answer, result))
        if progress is not None:
            progress(i + 1, len(chosen), example.id)
    return rows, skipped


def summarise(rows: Sequence[Faithfulness]) -> dict[str, Any]:
    """Share of examples whose map beats random, and the mean numbers (the CLI's and the bench's summary)."""
    scored = [r for r in rows if np.isfinite(r.score)]
    rhos = [r.sanity.full for r in rows if r.sanity is not None and np.isfinite(r.sanity.full)]
    return {
        "n": len(rows),
        "n_scored": len(scored),
        "beats_random": float(np.mean([r.beats_random for r in scored])) if scored else float("nan"),
        "mean_score": float(np.mean([r.score for r in scored])) if scored else float("nan"),
        "median_score": float(np.median([r.score for r in scored])) if scored else float("nan"),
        "mean_sanity_spearman": float(np.mean(rhos)) if rhos else float("nan"),
        "mean_seconds": float(np.mean([r.seconds for r in rows])) if rows else float("nan"),
    }


__all__ = ["DEFAULT_SEEDS", "FILL", "DeletionCurves", "Faithfulness", "FaithfulnessError", "SanityCheck",
           "cell_rectangles", "check_map", "deletion_curves", "deletion_steps", "fill_colour", "map_order",
           "masked_image", "random_orders", "randomise_layers", "sanity_check", "spearman", "summarise",
           "token_probabilities"]
