"""Seeded synthetic visual task v2: 2–5 coloured shapes on a 160-px canvas, exactly known answers.

The demo run has to show what attention tools are for, so a question must only be answerable by
*finding* one object among look-alikes: every scene holds 2–5 objects, and the distractors share
a colour or a shape with the asked-about ``target`` (``what colour is the cross ?`` next to
another object of the cross's colour, ``where is the red square ?`` next to a red triangle and a
blue square). With 16-px patches the image is 10×10 = 100 image tokens, and an object covers
2×2 of them, so a random patch lands in the target box ~4 % of the time.

Objects are drawn on the patch lattice (their 32-px block starts on a multiple of 16): a tiny VLM
trained for minutes on two CPU cores then sees each shape as the same four patch patterns, where
free pixel offsets made shape recognition translation-dependent in the first demo. Every answer
is 1–2 words from a closed vocabulary, so exact match is meaningful and a word-level tokenizer
covers every prompt and answer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 160
PATCH = 16  # the demo model's patch size: objects are placed on this lattice
LATTICE = CANVAS // PATCH  # 10 × 10 image tokens
OBJECT_PATCHES = 2  # an object's block is 2 × 2 patches (32 px); the shape is drawn inside it
MARGIN = 2  # pixels between the block edge and the drawn shape, so neighbours never touch
GRID = 3  # named regions: top/middle/bottom × left/middle/right (by the object's centre)
BACKGROUND = (120, 118, 110)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 70),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
}
SHAPES = ("square", "triangle", "cross")  # far-apart pixel patterns (circle vs square was near-identical)
ROWS = ("top", "middle", "bottom")
COLS = ("left", "middle", "right")
TASKS = ("colour", "shape", "position", "describe")
MIN_OBJECTS = 2
MAX_OBJECTS = 5

# Every word that can appear in a prompt or an answer (the tokenizer's vocabulary).
VOCAB: tuple[str, ...] = (
    "what", "colour", "is", "the", "shape", "object", "where", "at", "?",
    "top", "middle", "bottom", "left", "right", "center",
    *COLOURS, *SHAPES,
)


def cell_bounds(index: int) -> tuple[int, int]:
    """Pixel range [start, end) of named region row/column ``index`` on the canvas."""
    return round(index * CANVAS / GRID), round((index + 1) * CANVAS / GRID)


def region_slots(index: int) -> list[int]:
    """Lattice offsets (in patches) of a block whose centre lies in region row/column ``index``."""
    lo, hi = cell_bounds(index)
    half = OBJECT_PATCHES * PATCH // 2
    return [k for k in range(LATTICE - OBJECT_PATCHES + 1) if lo <= k * PATCH + half < hi]


def position_name(row: int, col: int) -> str:
    """Human name of a region: "top left", "top", "center", "bottom right", …"""
    if row == 1 and col == 1:
        return "center"
    if row == 1:
        return COLS[col]
    if col == 1:
        return ROWS[row]
    return f"{ROWS[row]} {COLS[col]}"


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object; ``bbox`` is the tight pixel box [x0, y0, x1, y1) of its drawn pixels."""

    shape: str
    colour: str
    row: int
    col: int
    bbox: tuple[int, int, int, int]

    @property
    def position(self) -> str:
        return position_name(self.row, self.col)

    def to_json(self) -> dict:
        return {"shape": self.shape, "colour": self.colour, "bbox": list(self.bbox), "position": self.position}


@dataclass(frozen=True)
class Example:
    """A generated example: the image plus one question about it and its exact answer."""

    id: str
    image: Image.Image
    objects: tuple[ShapeObject, ...]
    task: str
    prompt: str
    answer: str
    target: int | None
    follow_ups: tuple[tuple[str, str], ...] = ()  # more (prompt, answer) turns about the same scene (training)

    def to_json(self, image_ref: str) -> dict:
        """The row written to the eval JSONL (``image_ref`` relative to the JSONL file)."""
        return {
            "id": self.id,
            "image": image_ref,
            "prompt": self.prompt,
            "answer": self.answer,
            "task": self.task,
            "objects": [obj.to_json() for obj in self.objects],
            "target": self.target,
        }


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box  # inclusive corners, as PIL expects
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif shape == "cross":
        arm = (x1 - x0 + 1) // 3
        cx0 = x0 + (x1 - x0 + 1 - arm) // 2
        cy0 = y0 + (y1 - y0 + 1 - arm) // 2
        draw.rectangle((cx0, y0, cx0 + arm - 1, y1), fill=fill)
        draw.rectangle((x0, cy0, x1, cy0 + arm - 1), fill=fill)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


ObjectSpec = tuple[str, str, int, int, tuple[int, int, int, int]]  # shape, colour, row, col, inclusive box


def render(objects: list[ObjectSpec]) -> tuple[Image.Image, list[ShapeObject]]:
    """Draw ``(shape, colour, row, col, box)`` objects; bboxes are measured from the drawn pixels."""
    canvas = np.zeros((CANVAS, CANVAS, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    drawn: list[ShapeObject] = []
    for shape, colour, row, col, box in objects:
        mask_img = Image.new("L", (CANVAS, CANVAS), 0)
        _draw_shape(ImageDraw.Draw(mask_img), shape, box, 255)
        mask = np.asarray(mask_img) > 0
        ys, xs = np.nonzero(mask)
        canvas[mask] = COLOURS[colour]
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        drawn.append(ShapeObject(shape, colour, row, col, bbox))
    return Image.fromarray(canvas, "RGB"), drawn


def _block_box(kx: int, ky: int) -> tuple[int, int, int, int]:
    """Inclusive pixel box of the shape drawn in the block whose top-left patch is (kx, ky)."""
    size = OBJECT_PATCHES * PATCH
    x0, y0 = kx * PATCH + MARGIN, ky * PATCH + MARGIN
    return x0, y0, x0 + size - 2 * MARGIN - 1, y0 + size - 2 * MARGIN - 1


def _place(rng: random.Random, regions: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """Non-overlapping lattice blocks ``(kx, ky)``, one inside each region; None if this try collides."""
    taken: set[tuple[int, int]] = set()
    blocks = []
    for row, col in regions:
        kx, ky = rng.choice(region_slots(col)), rng.choice(region_slots(row))
        cells = {(kx + dx, ky + dy) for dx in range(OBJECT_PATCHES) for dy in range(OBJECT_PATCHES)}
        if cells & taken:
            return None
        taken |= cells
        blocks.append((kx, ky))
    return blocks


Attributes = tuple[str, str]  # shape, colour


def _distractors(rng: random.Random, target: Attributes, task: str, n: int) -> list[Attributes]:
    """``n`` look-alikes that keep the question's description unique to the target.

    colour ("the <shape>"): other shapes, and one of them in the target's colour;
    shape ("the <colour> object"): other colours, and one of them in the target's shape;
    position ("the <colour> <shape>") and describe ("the <position>"): any other combination,
    with one sharing the colour and (when there is room) one sharing the shape.
    """
    shape, colour = target
    if task == "colour":
        pool = [(s, c) for s in SHAPES for c in COLOURS if s != shape]
        must = [(s, colour) for s in SHAPES if s != shape]
    elif task == "shape":
        pool = [(s, c) for s in SHAPES for c in COLOURS if c != colour]
        must = [(shape, c) for c in COLOURS if c != colour]
    else:
        pool = [(s, c) for s in SHAPES for c in COLOURS if (s, c) != target]
        must = [(s, colour) for s in SHAPES if s != shape]
    chosen = [rng.choice(must)]
    if task in ("position", "describe") and n >= 2:
        chosen.append(rng.choice([(shape, c) for c in COLOURS if c != colour]))
    while len(chosen) < n:
        chosen.append(rng.choice(pool))
    return chosen[:n]


def _question(obj: ShapeObject, task: str) -> tuple[str, str]:
    """(prompt, answer) about ``obj`` for ``task``."""
    if task == "colour":
        return f"what colour is the {obj.shape} ?", obj.colour
    if task == "shape":
        return f"what shape is the {obj.colour} object ?", obj.shape
    if task == "position":
        return f"where is the {obj.colour} {obj.shape} ?", obj.position
    if task == "describe":
        return f"what is at the {obj.position} ?", f"{obj.colour} {obj.shape}"
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def _identifies(objects: tuple[ShapeObject, ...] | list[ShapeObject], index: int, task: str) -> bool:
    """Does ``task``'s description of object ``index`` fit no other object of the scene?"""
    key = {"colour": lambda o: o.shape, "shape": lambda o: o.colour, "position": lambda o: (o.colour, o.shape),
           "describe": lambda o: o.position}[task]
    return sum(key(o) == key(objects[index]) for o in objects) == 1


def follow_up_questions(rng: random.Random, objects: tuple[ShapeObject, ...], n: int) -> tuple[tuple[str, str], ...]:
    """Up to ``n`` more unambiguous (prompt, answer) pairs about a scene, different tasks first.

    Training asks several questions per image (a multi-turn chat, as real VLM instruction data
    does): the image tokens dominate a step's cost, so more answers per image is more signal per second.
    """
    pairs = [(task, i) for task in TASKS for i in range(len(objects)) if _identifies(objects, i, task)]
    rng.shuffle(pairs)
    seen: dict[str, int] = {}
    rank = []
    for task, _ in pairs:  # round-robin over tasks: the k-th question of a task sorts with the other k-th ones
        rank.append(seen.get(task, 0))
        seen[task] = rank[-1] + 1
    ordered = [p for _, p in sorted(zip(rank, pairs, strict=True), key=lambda rp: rp[0])]
    return tuple(_question(objects[i], task) for task, i in ordered[:n])


def generate_example(rng: random.Random, example_id: str, task: str | None = None,
                     max_objects: int = MAX_OBJECTS, follow_ups: int = 0) -> Example:
    """One scene of ``MIN_OBJECTS``–``max_objects`` objects (distinct regions) and one question."""
    task = task or rng.choice(TASKS)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    n_objects = rng.randint(MIN_OBJECTS, max(MIN_OBJECTS, max_objects))
    target_attrs = (rng.choice(SHAPES), rng.choice(list(COLOURS)))
    attrs = [target_attrs, *_distractors(rng, target_attrs, task, n_objects - 1)]
    order = list(range(n_objects))
    rng.shuffle(order)  # the target is not always object 0
    attrs = [attrs[i] for i in order]
    target = order.index(0)
    blocks = None
    while blocks is None:
        regions = rng.sample([(r, c) for r in range(GRID) for c in range(GRID)], n_objects)
        blocks = _place(rng, regions)
    specs = [(s, c, r, col, _block_box(kx, ky))
             for (s, c), (r, col), (kx, ky) in zip(attrs, regions, blocks, strict=True)]
    image, objects = render(specs)
    prompt, answer = _question(objects[target], task)
    extra = follow_up_questions(rng, tuple(objects), follow_ups) if follow_ups else ()
    return Example(example_id, image, tuple(objects), task, prompt, answer, target, extra)


def generate_examples(n: int, seed: int, prefix: str = "", max_objects: int = MAX_OBJECTS) -> Iterator[Example]:
    """``n`` examples, identical for the same ``seed``; tasks cycle so every type is balanced."""
    rng = random.Random(seed)
    for i in range(n):
        yield generate_example(rng, f"{prefix}{i:05d}", task=TASKS[i % len(TASKS)], max_objects=max_objects)


def write_eval_set(examples: list[Example], eval_dir: Path, name: str = "demo") -> Path:
    """Write ``<eval_dir>/<name>.jsonl`` and ``<eval_dir>/images/<id>.png``; returns the JSONL path."""
    image_dir = eval_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    jsonl = eval_dir / f"{name}.jsonl"
    tmp = jsonl.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for ex in examples:
            ex.image.save(image_dir / f"{ex.id}.png")
            fh.write(json.dumps(ex.to_json(f"images/{ex.id}.png")) + "\n")
    tmp.replace(jsonl)
    return jsonl


__all__ = [
    "CANVAS", "COLOURS", "GRID", "PATCH", "SHAPES", "TASKS", "VOCAB", "Example", "ShapeObject", "cell_bounds",
    "generate_example", "generate_examples", "position_name", "region_slots", "render", "write_eval_set",
]
