"""The synthetic task: deterministic for a seed, exact bounding boxes, answers consistent with the scene."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from dashboard.demo import task as T
from dashboard.demo.modeling import build_tokenizer


def _pixels(example):
    return np.asarray(example.image)


def test_same_seed_same_examples_different_seed_different():
    a = list(T.generate_examples(24, seed=3))
    b = list(T.generate_examples(24, seed=3))
    c = list(T.generate_examples(24, seed=4))
    assert [(e.prompt, e.answer, e.objects) for e in a] == [(e.prompt, e.answer, e.objects) for e in b]
    assert all(np.array_equal(_pixels(x), _pixels(y)) for x, y in zip(a, b, strict=True))
    assert [(e.prompt, e.answer, e.objects) for e in a] != [(e.prompt, e.answer, e.objects) for e in c]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bbox_is_the_tight_box_of_the_objects_colour(seed):
    for ex in T.generate_examples(40, seed=seed, max_objects=2):
        pixels = _pixels(ex)
        for obj in ex.objects:
            x0, y0, x1, y1 = obj.bbox
            assert 0 <= x0 < x1 <= T.CANVAS and 0 <= y0 < y1 <= T.CANVAS
            mask = np.all(pixels == np.array(T.COLOURS[obj.colour], dtype=np.uint8), axis=-1)
            ys, xs = np.nonzero(mask)
            # Every pixel of that colour lies inside the box and the box is tight on all four sides.
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
            # A good part of the box is the object (a thin cross ~30 %, a triangle ~50 %, a square all).
            assert mask[y0:y1, x0:x1].mean() >= 0.25
            # The box sits in the object's grid cell, whose name is the position answer.
            cx0, cx1 = T.cell_bounds(obj.col)
            cy0, cy1 = T.cell_bounds(obj.row)
            assert cx0 <= x0 and x1 <= cx1 and cy0 <= y0 and y1 <= cy1


def test_answers_follow_from_the_scene():
    for ex in T.generate_examples(80, seed=5, max_objects=2):
        target = ex.objects[ex.target]
        expected = {
            "colour": target.colour,
            "shape": target.shape,
            "position": target.position,
            "describe": f"{target.colour} {target.shape}",
        }[ex.task]
        assert ex.answer == expected
        # The question identifies exactly one object (colours and shapes are distinct in a scene).
        assert len({o.colour for o in ex.objects}) == len(ex.objects)
        assert len({o.shape for o in ex.objects}) == len(ex.objects)
        assert 1 <= len(ex.answer.split()) <= 2


def test_tasks_are_balanced_and_vocabulary_is_closed():
    examples = list(T.generate_examples(40, seed=0))
    assert {e.task for e in examples} == set(T.TASKS)
    tokenizer = build_tokenizer(T.VOCAB)
    unk = tokenizer.unk_token_id
    for ex in examples:
        assert unk not in tokenizer(f"{ex.prompt} {ex.answer}", add_special_tokens=False)["input_ids"]


def test_position_names_cover_the_grid():
    names = {T.position_name(r, c) for r in range(T.GRID) for c in range(T.GRID)}
    assert len(names) == T.GRID * T.GRID
    assert T.position_name(0, 0) == "top left" and T.position_name(1, 1) == "center"


def test_unknown_task_is_rejected():
    with pytest.raises(ValueError, match="unknown task"):
        T.generate_example(random.Random(0), "x", task="count")


def test_eval_jsonl_format(tmp_path):
    examples = list(T.generate_examples(8, seed=1, max_objects=2))
    path = T.write_eval_set(examples, tmp_path / "eval")
    assert path == tmp_path / "eval" / "demo.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 8
    for row, ex in zip(rows, examples, strict=True):
        assert set(row) == {"id", "image", "prompt", "answer", "task", "objects", "target"}
        assert row["image"] == f"images/{ex.id}.png"
        image = path.parent / row["image"]
        assert image.is_file()
        assert row["answer"] == ex.answer and row["prompt"] == ex.prompt and row["task"] == ex.task
        assert isinstance(row["target"], int) and 0 <= row["target"] < len(row["objects"])
        for obj in row["objects"]:
            assert {"shape", "colour", "bbox"} <= set(obj)
            assert len(obj["bbox"]) == 4 and all(isinstance(v, int) for v in obj["bbox"])
        # The PNG on disk is pixel-identical to the generated image (bboxes refer to it).
        from PIL import Image

        assert np.array_equal(np.asarray(Image.open(image).convert("RGB")), _pixels(ex))
