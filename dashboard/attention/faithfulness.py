"""Trust in a map: is an attention heatmap faithful to what the model actually uses on this example?

Two checks, both run on the checkpoint itself (no Streamlit, so the page, the CLI and the bench share them):

- **Deletion and insertion curves** (Petsiuk et al., RISE, 2018). Patches are deleted from the *processor's
  input* — the original picture is painted over at the pixel boxes the family adapter gives for each image
  token, filled with the picture's mean colour, and the checkpoint's own processor runs again — in the order of
  the map (most attended first) and in random orders. After each step the probability of the explained token,
  at the position that produced it, is measured (teacher forcing: the earlier generated tokens are appended to
  the prompt). *Deletion* asks whether what the map points at is **necessary**: its curve should fall faster
  than the random ones. *Insertion* starts from the fully painted picture and puts patches back in the same
  orders; it asks whether what the map points at is **sufficient**: its curve should rise faster. Both are
  needed because deletion is blind to the answer a model gives a blank picture (deleting the evidence for
  that answer leaves its probability where it was), while insertion shows it at once.

  Each curve's number is the area between the mean random curve and the map's curve (x = share of patches
  deleted or inserted, 0..1; probabilities relative to the whole picture's), signed so that > 0 means better
  than random. Whether the map *beats random* is a permutation test, not the sign of that mean: each curve's
  area is ranked among the random orders' areas, p = (1 + orders at least as good) / (1 + orders), and the two
  curves are tested together by the **Westfall–Young min-p** adjustment (Westfall & Young, *Resampling-Based
  Multiple Testing*, 1993): every order's smaller curve p is computed the same way, and the map's adjusted p is
  the share of orders (the map's included) whose smaller p is at least as small as the map's. It is exact under
  the same null as each curve's p (the map's order is one more random order) and, unlike Bonferroni's doubling,
  does not pay twice for two curves that measure one order: a random order that reaches the object early is good
  on both. The map beats random when that p ≤ ``ALPHA``. The default draws 99 random orders: with 39 a map whose
  evidence is one patch of 100 lost its significance whenever a single random order also started with that
  patch (one chance in three), though the map's true p is about 0.01. The curve's points are
  dense at the start (1, 2, 3, … patches, then wider steps): a map's claim is mostly about its first patches.
  Every picture goes through the model in a few batched forward passes.
- **Sanity check** (Adebayo et al., "Sanity Checks for Saliency Maps", 2018). The language model's
  decoder layers of a *copy* of the model are re-initialised, cascading from the top layer down, and
  the map is computed again. The Spearman rank correlation between the original and the randomised
  map is reported per stage; a map that stays the same when the weights it should explain are random
  (correlation near 1) says more about the input than about the model. The pooled model is never
  modified: the copy is made under its lock and thrown away.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from dashboard.attention.adapters import GridView, ImageLayout
from dashboard.attention.analysis import analyse, force_tokens
from dashboard.attention.capture import capture_generate
from dashboard.attention.hooks import ModelParts
from dashboard.attention.overlay import HeadMode, token_attention
from dashboard.models.vision_chunks import vision_in_chunks

FILL = "image mean colour"  # what a deleted patch is painted with (said in every caption and export)
ALPHA = 0.05  # family-wise level of "beats random" over the two curves (Westfall–Young min-p)
DEFAULT_SEEDS = tuple(range(99))  # random orders: p in steps of 1/100
DEFAULT_POINTS = 21  # points on each curve at most (fewer when the grid has fewer cells)
DEFAULT_BATCH = 32
FEWEST_ORDERS = math.ceil(1 / ALPHA - 1 - 1e-9)  # 19: with fewer random orders no p can reach ALPHA (p ≥ 1/(1+N))
Kind = Literal["deletion", "insertion"]
Box = tuple[int, int, int, int]


class FaithfulnessError(ValueError):
    """The check cannot run on this map (no probability to delete, token out of range, …); says why."""


# ---------------------------------------------------------------------------- curves


def deletion_steps(n_cells: int, points: int = DEFAULT_POINTS) -> np.ndarray:
    """How many cells are deleted (or inserted) at each point: 0 … ``n_cells``, at most ``points`` values.

    Geometrically spaced (1, 2, 3, 4, 5, 7, 9, … on 100 cells): the difference between a map and a random
    order is in the first few patches, which even spacing (every 5 %) would step over.
    """
    if n_cells < 1:
        raise FaithfulnessError("the map has no cells")
    if points < 2:
        raise FaithfulnessError("a curve needs at least 2 points")
    steps = np.unique(np.round(np.geomspace(1, n_cells, points - 1)).astype(int))
    return np.concatenate([[0], steps])


def map_order(grid: np.ndarray) -> np.ndarray:
    """Cell indices (row-major) from most to least attended; ties keep row-major order."""
    return np.argsort(-np.asarray(grid, dtype=np.float64).reshape(-1), kind="stable")


def random_orders(n_cells: int, seeds: Sequence[int]) -> np.ndarray:
    """``[seeds, n_cells]`` random orders, one per seed (reproducible)."""
    return np.stack([np.random.default_rng(seed).permutation(n_cells) for seed in seeds])


def fill_colour(image: Image.Image) -> tuple[int, int, int]:
    """The picture's mean colour: a deleted patch carries no edge or object, only the average.

    (The per-channel median — the background itself on a picture that has one — gave the same verdicts on the
    demo, 87 % against 88 % of the last checkpoint's 100 examples: the fill is not what decides them.)
    """
    mean = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)
    return (round(mean[0]), round(mean[1]), round(mean[2]))


def cell_rectangles(view: GridView, size: tuple[int, int]) -> list[Box | None]:
    """Per cell (row-major), its pixel box in the original picture clipped to it; None when it lies outside
    (a padding-only cell: deleting it changes nothing the processor sees of the picture)."""
    width, height = size
    out: list[Box | None] = []
    for x0, y0, x1, y1 in view.boxes.reshape(-1, 4):
        left, top = max(0, int(np.floor(x0 + 1e-6))), max(0, int(np.floor(y0 + 1e-6)))
        right, bottom = min(width, int(np.ceil(x1 - 1e-6))), min(height, int(np.ceil(y1 - 1e-6)))
        out.append((left, top, right, bottom) if right > left and bottom > top else None)
    return out


def _copy_cells(target: np.ndarray, source: np.ndarray, rectangles: Sequence[Box | None],
                cells: Sequence[int]) -> np.ndarray:
    out = target.copy()
    for cell in cells:
        rect = rectangles[int(cell)]
        if rect is not None:
            left, top, right, bottom = rect
            out[top:bottom, left:right] = source[top:bottom, left:right]
    return out


def curve_pictures(image: Image.Image, rectangles: Sequence[Box | None], orders: np.ndarray,
                   inner: Sequence[int] | np.ndarray) -> Iterator[Image.Image]:
    """Every picture the curves need, in this order: the whole picture, the picture painted all over (the fill
    at every cell's box), then for each order and each ``k`` in ``inner`` the picture with its first ``k`` cells
    deleted (painted), then the same with only those cells inserted into the painted picture.

    Made as the model reaches them, from one array of the picture and one of the fill: ~3,200 pictures of a
    1,024 px upload held at once would be ~10 GB."""
    pixels = np.asarray(image.convert("RGB"))
    painted = np.full_like(pixels, fill_colour(image))
    yield Image.fromarray(pixels)
    yield Image.fromarray(_copy_cells(pixels, painted, rectangles, range(len(rectangles))))
    for source, target in ((painted, pixels), (pixels, painted)):  # deletion, then insertion
        for order in orders:
            for k in inner:
                yield Image.fromarray(_copy_cells(target, source, rectangles, order[:k]))


def _batched_inputs(loaded: Any, images: Sequence[Image.Image], prompt: str, forced: Sequence[int]) -> dict[str, Any]:
    """One prompt per image; teacher forcing: the explained token is predicted after the tokens
    generated before it."""
    from dashboard.generation import build_inputs

    return force_tokens(build_inputs(loaded, list(images), prompt), forced)


BatchTurn = Callable[[], contextlib.AbstractContextManager[Any]]
"""Entered around each batch's forward pass: public mode takes a checkpoint turn per batch there, so other
visitors' generations run between batches instead of waiting for the whole check."""


def token_probabilities(loaded: Any, images: Iterable[Image.Image], prompt: str, forced: Sequence[int],
                        target_id: int, batch_size: int = DEFAULT_BATCH,
                        batch_turn: BatchTurn = contextlib.nullcontext) -> np.ndarray:
    """Probability of ``target_id`` after ``prompt`` + ``forced`` for each image, in batched forward passes.

    ``images`` is consumed ``batch_size`` at a time, so a generator keeps only one batch of pictures alive."""
    out: list[np.ndarray] = []
    remaining = iter(images)
    while batch := list(itertools.islice(remaining, batch_size)):
        inputs = _batched_inputs(loaded, batch, prompt, forced)
        # only the last position's logits (the LM head is the big matmul); a batch of images × tiles through the
        # vision encoder a few at a time
        with batch_turn(), loaded.lock, torch.inference_mode(), vision_in_chunks(loaded.model):
            logits = loaded.model(**inputs, logits_to_keep=1).logits[:, -1, :].float()
        out.append(logits.softmax(-1)[:, int(target_id)].cpu().numpy())
    return np.concatenate(out).astype(np.float64)


@dataclass(frozen=True)
class PatchCurves:
    """The probability of the explained token as patches are deleted (or inserted), by the map's order and at
    random. ``fractions[i]`` of the view's cells are deleted (inserted) at point ``i``."""

    kind: Kind
    fractions: list[float]
    by_map: list[float]  # probability of the token
    by_random: list[list[float]]  # [seeds][points]
    seeds: list[int]
    fill: str = FILL

    @property
    def random_mean(self) -> np.ndarray:
        return np.asarray(self.by_random, dtype=np.float64).mean(0)

    @property
    def base(self) -> float:
        """The probability with the whole picture (nothing deleted, everything inserted)."""
        return float(self.by_map[0] if self.kind == "deletion" else self.by_map[-1])

    def signed_area(self, curve: Sequence[float] | np.ndarray) -> float:
        """Area under a curve, probabilities relative to the whole picture's, signed so that larger is better."""
        area = float(np.trapezoid(np.asarray(curve, dtype=np.float64) / self.base,
                                  np.asarray(self.fractions, dtype=np.float64)))
        return -area if self.kind == "deletion" else area

    @property
    def score(self) -> float:
        """Area between the map's curve and the mean random curve; > 0: the map's order is better than random
        (deletion: the probability falls faster; insertion: it comes back faster)."""
        if self.base <= 0:
            return float("nan")
        return self.signed_area(self.by_map) - self.signed_area(self.random_mean)

    def order_p_values(self) -> np.ndarray:
        """Every order's one-sided permutation p among all orders, the map's first: the share of orders (itself
        included) whose area is at least as good. NaN when the whole picture gives the token no probability."""
        if self.base <= 0:
            return np.full(1 + len(self.by_random), np.nan)
        areas = np.array([self.signed_area(curve) for curve in [self.by_map, *self.by_random]])
        return (areas[None, :] >= areas[:, None] - 1e-12).sum(1) / len(areas)

    @property
    def p_value(self) -> float:
        """One-sided permutation p of this curve alone: (1 + random orders at least as good) / (1 + orders)."""
        return float(self.order_p_values()[0])

    @property
    def significant(self) -> bool:
        """Better than random at ``ALPHA`` on its own (not corrected for the second curve; the verdict is)."""
        return bool(self.p_value <= ALPHA + 1e-12)


def min_p_adjusted(curves: Sequence[PatchCurves]) -> float:
    """Westfall–Young min-p: the share of orders (the map's included) whose smallest curve p is at least as
    small as the map's. With one curve it is that curve's p; it is never above Bonferroni's ``len × min p``
    (ties included) and below it as far as the curves agree on which orders are good."""
    per_curve = [c.order_p_values() for c in curves]
    usable = [p for p in per_curve if np.isfinite(p).all()]
    if not usable:
        return float("nan")
    smallest = np.min(np.stack(usable), axis=0)
    return float((smallest <= smallest[0] + 1e-12).sum() / len(smallest))


def picture_count(n_cells: int, random_orders: int, points: int = DEFAULT_POINTS) -> int:
    """Pictures :func:`patch_curves` runs the model on: the whole and the painted picture, then every inner point
    of both curves for the map's order and each random order (what a job declares to the admission gate)."""
    inner = len(deletion_steps(n_cells, points)) - 2
    return 2 + 2 * (1 + random_orders) * inner


@dataclass(frozen=True)
class CheckPlan:
    """How big a map check is: random orders, curve points, batch size, and whether the sanity check runs."""

    seeds: tuple[int, ...] = DEFAULT_SEEDS
    points: int = DEFAULT_POINTS
    batch_size: int = DEFAULT_BATCH
    sanity: bool = True

    def pictures(self, n_cells: int) -> int:
        return picture_count(n_cells, len(self.seeds), self.points)

    @classmethod
    def within(cls, n_cells: int, max_pictures: int, batch_size: int) -> CheckPlan:
        """The plan for a budget of ``max_pictures``: the fewest random orders with which p can still reach
        ``ALPHA`` (``FEWEST_ORDERS``), the most curve points (≤ ``DEFAULT_POINTS``) that fit, no sanity check."""
        seeds = tuple(range(FEWEST_ORDERS))
        for points in range(DEFAULT_POINTS, 2, -1):
            if picture_count(n_cells, len(seeds), points) <= max_pictures:
                return cls(seeds, points, batch_size, sanity=False)
        raise FaithfulnessError(f"{max_pictures} pictures cannot hold {FEWEST_ORDERS} random orders with even one "
                                "point inside each curve")


LOCAL_PLAN = CheckPlan()


def patch_curves(loaded: Any, image: Image.Image, prompt: str, grid: np.ndarray, view: GridView, target_id: int,
                 forced: Sequence[int] = (), *, seeds: Sequence[int] = DEFAULT_SEEDS, points: int = DEFAULT_POINTS,
                 batch_size: int = DEFAULT_BATCH, batch_turn: BatchTurn = contextlib.nullcontext,
                 ) -> tuple[PatchCurves, PatchCurves]:
    """Deletion and insertion curves of ``view``'s cells in the order of ``grid`` and in random orders, from
    one batched run of every picture; see the module doc."""
    grid = np.asarray(grid)
    if grid.shape != view.shape:
        raise FaithfulnessError(f"the map is {grid.shape}, the view {view.name!r} is {view.shape}")
    n = grid.size
    steps = deletion_steps(n, points)
    orders = np.concatenate([map_order(grid)[None], random_orders(n, seeds)])
    rectangles = cell_rectangles(view, (int(image.width), int(image.height)))
    inner = steps[1:-1]  # the two ends are the same picture for every order: the whole one and the painted one
    probs = token_probabilities(loaded, curve_pictures(image, rectangles, orders, inner), prompt, forced, target_id,
                                batch_size, batch_turn)
    p_whole, p_painted = probs[0], probs[1]
    middle = probs[2:].reshape(2, len(orders), len(inner))
    deleted = np.concatenate([np.full((len(orders), 1), p_whole), middle[0], np.full((len(orders), 1), p_painted)], 1)
    inserted = np.concatenate([np.full((len(orders), 1), p_painted), middle[1], np.full((len(orders), 1), p_whole)], 1)
    fractions = [float(k) / n for k in steps]
    return (PatchCurves("deletion", fractions, deleted[0].tolist(), deleted[1:].tolist(), list(seeds)),
            PatchCurves("insertion", fractions, inserted[0].tolist(), inserted[1:].tolist(), list(seeds)))


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
    chosen = layout.view_or_primary(view)
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
    deletion: PatchCurves
    insertion: PatchCurves
    sanity: SanityCheck | None
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def curves(self) -> tuple[PatchCurves, PatchCurves]:
        return self.deletion, self.insertion

    @property
    def p_value(self) -> float:
        """Both curves' permutation p, adjusted for testing two (Westfall–Young min-p; ≤ ALPHA: beats random)."""
        return min_p_adjusted(self.curves)

    @property
    def beats_random(self) -> bool:
        """Deleting what the map points at removes the token, or inserting it alone restores the token, faster
        than random orders do — significantly (see the module doc)."""
        return bool(self.p_value <= ALPHA + 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "token_id": self.token_id, "step": self.step, "layers": self.layers,
                "head": self.head, "view": self.view, "beats_random": self.beats_random, "p_value": self.p_value,
                "alpha": ALPHA, "deletion_score": self.deletion.score, "deletion_p": self.deletion.p_value,
                "insertion_score": self.insertion.score, "insertion_p": self.insertion.p_value,
                "base_probability": self.deletion.base, "fill": self.deletion.fill,
                "deletion": asdict(self.deletion), "insertion": asdict(self.insertion),
                "sanity_spearman": self.sanity.full if self.sanity is not None else None,
                "sanity": asdict(self.sanity) if self.sanity is not None else None,
                "seconds": self.seconds, **self.extra}


def check_map(loaded: Any, run: Any, step: int, layers: Sequence[int] | None = None, head: int | HeadMode = "mean",
              view: str | None = None, *, grid: np.ndarray | None = None, plan: CheckPlan = LOCAL_PLAN,
              batch_turn: BatchTurn = contextlib.nullcontext,
              clock: Callable[[], float] = time.perf_counter) -> Faithfulness:
    """Deletion and insertion curves (+ sanity check) of the map of generated token ``step`` of ``run`` (an
    AttentionRun).

    ``grid`` overrides the map (tests plant one; default: the run's map for these layers, head and view);
    ``plan`` sizes the check (random orders, points, batch size, sanity check); ``batch_turn`` goes to
    :func:`token_probabilities` (public mode: a turn per batch).
    """
    if not 0 <= step < len(run.result.generated_ids):
        raise FaithfulnessError(f"token {step} out of range (0..{len(run.result.generated_ids) - 1})")
    start = clock()
    chosen = run.layout.view_or_primary(view)
    shown = run.grid(step, layers, head, chosen.name) if grid is None else np.asarray(grid)
    forced = run.result.generated_ids[:step]
    target = int(run.result.generated_ids[step])
    deletion, insertion = patch_curves(loaded, run.image, run.prompt, shown, chosen, target, forced,
                                       seeds=plan.seeds, points=plan.points, batch_size=plan.batch_size,
                                       batch_turn=batch_turn)
    check = sanity_check(loaded, run, step, layers, head, chosen.name, shown) if plan.sanity else None
    layer_list = list(range(run.result.n_layers)) if layers is None else [int(x) for x in layers]
    return Faithfulness(run.tokens[step], target, step, layer_list, head, chosen.name, deletion, insertion, check,
                        clock() - start)


@dataclass(frozen=True)
class ExampleFaithfulness:
    """One eval example's check of its first generated token's map (the CLI's per-example row)."""

    id: str
    answer: str
    result: Faithfulness

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "answer": self.answer, **self.result.to_dict()}


def over_examples(loaded: Any, examples: Sequence[Any], *, limit: int | None = None, plan: CheckPlan = LOCAL_PLAN,
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
            result = check_map(loaded, run, 0, plan=plan)
        except Exception as exc:  # reported per example, like the pointing score's skips
            skipped.append(f"{example.id}: {type(exc).__name__}: {exc}")
            continue
        rows.append(ExampleFaithfulness(example.id, example.answer, result))
        if progress is not None:
            progress(i + 1, len(chosen), example.id)
    return rows, skipped


def summarise(rows: Sequence[Faithfulness]) -> dict[str, Any]:
    """Share of examples whose map beats random, and the mean numbers (the CLI's and the bench's summary)."""
    scored = [r for r in rows if np.isfinite(r.p_value)]
    rhos = [r.sanity.full for r in rows if r.sanity is not None and np.isfinite(r.sanity.full)]

    def share(values: list[bool]) -> float:
        return float(np.mean(values)) if values else float("nan")

    def stat(values: list[float], how: Callable[[Any], Any]) -> float:
        finite = [v for v in values if np.isfinite(v)]
        return float(how(finite)) if finite else float("nan")

    return {
        "n": len(rows),
        "n_scored": len(scored),
        "alpha": ALPHA,
        "beats_random": share([r.beats_random for r in scored]),
        "deletion_significant": share([r.deletion.significant for r in scored]),
        "insertion_significant": share([r.insertion.significant for r in scored]),
        "mean_deletion_score": stat([r.deletion.score for r in scored], np.mean),
        "mean_insertion_score": stat([r.insertion.score for r in scored], np.mean),
        "median_p_value": stat([r.p_value for r in scored], np.median),
        "mean_sanity_spearman": float(np.mean(rhos)) if rhos else float("nan"),
        "mean_seconds": float(np.mean([r.seconds for r in rows])) if rows else float("nan"),
    }


__all__ = ["ALPHA", "DEFAULT_SEEDS", "FEWEST_ORDERS", "FILL", "LOCAL_PLAN", "CheckPlan", "Faithfulness",
           "FaithfulnessError", "PatchCurves", "SanityCheck", "cell_rectangles", "check_map", "curve_pictures",
           "deletion_steps", "fill_colour", "map_order", "min_p_adjusted", "patch_curves", "picture_count",
           "random_orders", "randomise_layers", "sanity_check", "spearman", "summarise", "token_probabilities"]
