"""Seeded synthetic visual task: find the named object among look-alikes on a 10×10 patch grid.

Each 160-px scene holds 2–5 small coloured shapes, one per 16-px grid cell, so each object lies
inside exactly one of the demo model's 100 image tokens (a patch is 1 % of the image). The
question names the target by its colour — "where is the red object ?" — and at least one
distractor has the target's *shape*, so no pixel statistic gives the answer away: the model has
to find the red patch among the others and read where it is (the image's quadrant). The four
answers are balanced (chance 25 %; the first checkpoints score about that); the Attention page can
then score where the model looked against every object's bounding box.

Why only this one question: the tiny model learns to look objects up by colour within the
5-minute CPU budget but not by shape (bench/RESULTS.md, "Demo v2"); a mix with a shape question
stayed at its 31 % prior for 2,500 steps and held the position question back.
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
GRID = 10  # with the demo model's 16-px patches, each grid cell is exactly one image token
BACKGROUND = (120, 118, 110)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 70),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
}
SHAPES = ("square", "triangle", "cross")  # far-apart pixel patterns (circle vs square was near-identical)
ROWS = ("top", "bottom")  # answers name the quadrant: "top left" … "bottom right"
COLS = ("left", "right")
TASKS = ("position",)
OBJECT_SIZE = 12  # pixels; centred in its 16-px cell, so an object never touches a neighbouring token
MIN_OBJECTS, MAX_OBJECTS = 2, 5
PATCH_BACKGROUND = "background"  # the word an empty patch is trained to decode to (see train.py)

# Every word that can appear in a prompt, an answer or a per-patch target (the tokenizer's vocabulary),
# plus the earlier demo's question words, so free-typed prompts like "what colour is the square ?" still
# tokenize without <unk>.
VOCAB: tuple[str, ...] = (
    "what", "colour", "is", "the", "shape", "object", "where", "at", "?",
    "top", "middle", "bottom", "left", "right", "center", PATCH_BACKGROUND,
    *COLOURS, *SHAPES,
)


def cell_bounds(index: int) -> tuple[int, int]:
    """Pixel range [start, end) of grid row/column ``index`` on the canvas."""
    return round(index * CANVAS / GRID), round((index + 1) * CANVAS / GRID)


def position_name(row: int, col: int) -> str:
    """The quadrant a grid cell lies in: "top left", "top right", "bottom left" or "bottom right"."""
    return f"{ROWS[row * 2 // GRID]} {COLS[col * 2 // GRID]}"


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

    @property
    def words(self) -> tuple[str, ...]:
        """What the object's patch is: colour, shape and its quadrant's row and column words."""
        return (self.colour, self.shape, *self.position.split())

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

    def patch_words(self) -> list[tuple[str, ...]]:
        """Per image token (row-major over the grid): the words of the object in it, or ``background``."""
        words: list[tuple[str, ...]] = [(PATCH_BACKGROUND,)] * (GRID * GRID)
        for obj in self.objects:
            words[obj.row * GRID + obj.col] = obj.words
        return words


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


def _place(row: int, col: int) -> tuple[int, int, int, int]:
    """The ``OBJECT_SIZE`` box centred in grid cell (row, col), inclusive corners."""
    x_lo, x_hi = cell_bounds(col)
    y_lo, y_hi = cell_bounds(row)
    x0 = (x_lo + x_hi - OBJECT_SIZE) // 2
    y0 = (y_lo + y_hi - OBJECT_SIZE) // 2
    return x0, y0, x0 + OBJECT_SIZE - 1, y0 + OBJECT_SIZE - 1


def _scene_objects(rng: random.Random, n_objects: int) -> list[tuple[str, str]]:
    """(shape, colour) pairs, the target first: its colour is unique, and with two or more objects
    one distractor shares its shape (the look-alike); the others are random in the other colours."""
    target_colour = rng.choice(list(COLOURS))
    other_colours = [c for c in COLOURS if c != target_colour]
    target_shape = rng.choice(SHAPES)
    pairs = [(target_shape, target_colour)]
    if n_objects >= 2:
        pairs.append((target_shape, rng.choice(other_colours)))
    pairs += [(rng.choice(SHAPES), rng.choice(other_colours)) for _ in range(n_objects - len(pairs))]
    return pairs


def _question(objects: list[ShapeObject], target: int, task: str) -> tuple[str, str]:
    """(prompt, answer) for ``task`` about ``objects[target]``."""
    obj = objects[target]
    if task == "position":
        return f"where is the {obj.colour} object ?", obj.position
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def generate_example(rng: random.Random, example_id: str, task: str | None = None,
                     max_objects: int = MAX_OBJECTS, min_objects: int = MIN_OBJECTS) -> Example:
    """One random scene with ``min_objects``–``max_objects`` objects in distinct cells, and one question."""
    task = task or rng.choice(TASKS)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    n_objects = rng.randint(min_objects, max_objects)
    cells = [divmod(i, GRID) for i in rng.sample(range(GRID * GRID), n_objects)]
    pairs = _scene_objects(rng, n_objects)
    order = list(range(n_objects))
    rng.shuffle(order)  # the target is not always the first object drawn or listed
    specs = [(pairs[i][0], pairs[i][1], *cells[k], _place(*cells[k])) for k, i in enumerate(order)]
    image, objects = render(specs)
    target = order.index(0)
    prompt, answer = _question(objects, target, task)
    return Example(example_id, image, tuple(objects), task, prompt, answer, target)


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
    "CANVAS", "COLOURS", "GRID", "PATCH_BACKGROUND", "SHAPES", "TASKS", "VOCAB", "Example", "ShapeObject",
    "cell_bounds", "generate_example", "generate_examples", "position_name", "render", "write_eval_set",
]
