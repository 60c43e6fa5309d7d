"""Seeded synthetic visual task: coloured shapes on a 3×3 grid, with exactly known answers.

The demo run needs a task a tiny VLM can learn on two CPU cores in a couple of minutes, yet
rich enough that the other pages have something to show: colour / shape questions need the
model to bind attributes of one object, position questions need it to know *where* things
are (so the Attention page can score where it looked against each object's bounding box).
Every answer is 1–2 words from a small closed vocabulary, so exact match is meaningful and a
word-level tokenizer covers every prompt and answer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 96
GRID = 3  # with the demo model's 32-px patches, each grid cell is exactly one image token
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
OBJECT_SIZE = (24, 24)  # inclusive range of object width/height in pixels
JITTER = 0  # max offset (pixels) from the cell centre; with one 32-px patch per cell, jitter made
# shape recognition translation-dependent (final exact match 88 % at jitter 3, 100 % at 0)
MAX_OBJECTS = 1  # the demo uses single-object scenes (two-object scenes need far more training)

# Every word that can appear in a prompt or an answer (the tokenizer's vocabulary).
VOCAB: tuple[str, ...] = (
    "what", "colour", "is", "the", "shape", "object", "where", "at", "?",
    "top", "middle", "bottom", "left", "right", "center",
    *COLOURS, *SHAPES,
)


def cell_bounds(index: int) -> tuple[int, int]:
    """Pixel range [start, end) of grid row/column ``index`` on the canvas."""
    return round(index * CANVAS / GRID), round((index + 1) * CANVAS / GRID)


def position_name(row: int, col: int) -> str:
    """Human name of a grid cell: "top left", "top", "center", "bottom right", …"""
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


def _place(rng: random.Random, row: int, col: int) -> tuple[int, int, int, int]:
    """A random box of ``OBJECT_SIZE`` near the centre of grid cell (row, col), inclusive corners."""
    size = rng.randint(*OBJECT_SIZE)
    x_lo, x_hi = cell_bounds(col)
    y_lo, y_hi = cell_bounds(row)
    x0 = (x_lo + x_hi - size) // 2 + rng.randint(-JITTER, JITTER)
    y0 = (y_lo + y_hi - size) // 2 + rng.randint(-JITTER, JITTER)
    x0 = min(max(x0, x_lo), x_hi - size)  # stay inside the cell, so boxes never cross cells
    y0 = min(max(y0, y_lo), y_hi - size)
    return x0, y0, x0 + size - 1, y0 + size - 1


def _question(rng: random.Random, objects: list[ShapeObject], task: str) -> tuple[str, str, int | None]:
    """(prompt, answer, target index) for ``task``; objects have distinct colours and shapes."""
    target = rng.randrange(len(objects))
    obj = objects[target]
    if task == "colour":
        return f"what colour is the {obj.shape} ?", obj.colour, target
    if task == "shape":
        return f"what shape is the {obj.colour} object ?", obj.shape, target
    if task == "position":
        return f"where is the {obj.colour} {obj.shape} ?", obj.position, target
    if task == "describe":
        return f"what is at the {obj.position} ?", f"{obj.colour} {obj.shape}", target
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def generate_example(rng: random.Random, example_id: str, task: str | None = None,
                     max_objects: int = MAX_OBJECTS) -> Example:
    """One random scene with 1–``max_objects`` objects (distinct cells, colours, shapes) and one question."""
    n_objects = rng.randint(1, max_objects)
    cells = rng.sample([(r, c) for r in range(GRID) for c in range(GRID)], n_objects)
    colours = rng.sample(list(COLOURS), n_objects)
    shapes = rng.sample(list(SHAPES), n_objects)
    specs = [(shapes[i], colours[i], r, c, _place(rng, r, c)) for i, (r, c) in enumerate(cells)]
    image, objects = render(specs)
    task = task or rng.choice(TASKS)
    prompt, answer, target = _question(rng, objects, task)
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
    "CANVAS", "COLOURS", "GRID", "SHAPES", "TASKS", "VOCAB", "Example", "ShapeObject", "cell_bounds",
    "generate_example", "generate_examples", "position_name", "render", "write_eval_set",
]
