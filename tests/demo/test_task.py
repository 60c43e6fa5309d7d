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
def test_bbox_is_the_tight_box_of_the_objects_pixels(seed):
    for ex in T.generate_examples(40, seed=seed):
        pixels = _pixels(ex)
        painted = np.zeros(pixels.shape[:2], dtype=int)
        for obj in ex.objects:
            x0, y0, x1, y1 = obj.bbox
            assert 0 <= x0 < x1 <= T.CANVAS and 0 <= y0 < y1 <= T.CANVAS
            region = pixels[y0:y1, x0:x1]
            mask = np.all(region == np.array(T.COLOURS[obj.colour], dtype=np.uint8), axis=-1)
            # The box is tight on all four sides and a good part of it is the object.
            assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
            assert mask.mean() >= 0.25
            painted[y0:y1, x0:x1] += 1
            # The object's centre lies in the named region its position answer refers to.
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            assert T.cell_bounds(obj.col)[0] <= cx < T.cell_bounds(obj.col)[1]
            assert T.cell_bounds(obj.row)[0] <= cy < T.cell_bounds(obj.row)[1]
        assert painted.max() <= 1  # objects never overlap
        # Nothing but background outside the boxes.
        outside = painted == 0
        assert np.all(pixels[outside] == np.array(T.BACKGROUND, dtype=np.uint8))


def test_image_has_at_least_100_patches_and_a_low_chance_rate():
    assert (T.CANVAS // T.PATCH) ** 2 >= 100
    centres = np.arange(T.PATCH / 2, T.CANVAS, T.PATCH)
    for ex in T.generate_examples(40, seed=1):
        x0, y0, x1, y1 = ex.objects[ex.target].bbox
        inside = ((centres >= x0) & (centres < x1)).sum() * ((centres >= y0) & (centres < y1)).sum()
        assert inside >= 1 and inside / len(centres) ** 2 <= 0.1


def _describes(obj, ex) -> bool:
    """Does ``obj`` fit the description the question gives of its object?"""
    return {
        "colour": lambda o: f"the {o.shape} ?" in ex.prompt,
        "shape": lambda o: f"the {o.colour} object" in ex.prompt,
        "position": lambda o: f"the {o.colour} {o.shape} ?" in ex.prompt,
        "describe": lambda o: ex.prompt.endswith(f"the {o.position} ?"),
    }[ex.task](obj)


def test_answers_follow_from_the_scene_and_need_the_right_object():
    for ex in T.generate_examples(200, seed=5):
        assert T.MIN_OBJECTS <= len(ex.objects) <= T.MAX_OBJECTS
        target = ex.objects[ex.target]
        expected = {
            "colour": target.colour,
            "shape": target.shape,
            "position": target.position,
            "describe": f"{target.colour} {target.shape}",
        }[ex.task]
        assert ex.answer == expected
        # The question's description fits the target and no other object ...
        assert [i for i, o in enumerate(ex.objects) if _describes(o, ex)] == [ex.target]
        # ... and a distractor shares the target's colour or shape, so a glance at colours or shapes is not enough.
        others = [o for i, o in enumerate(ex.objects) if i != ex.target]
        assert any(o.colour == target.colour or o.shape == target.shape for o in others)
        if ex.task == "colour":
            assert any(o.colour == target.colour for o in others)
        if ex.task == "shape":
            assert any(o.shape == target.shape for o in others)
        assert len({o.position for o in ex.objects}) == len(ex.objects)
        assert 1 <= len(ex.answer.split()) <= 2
    # the target is not always in the same slot
    assert len({ex.target for ex in T.generate_examples(40, seed=5)}) >= 3


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
    examples = list(T.generate_examples(8, seed=1))
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


def test_follow_up_questions_are_unambiguous_and_answered_from_the_scene():
    rng = random.Random(3)
    for i in range(60):
        ex = T.generate_example(rng, f"t{i}", follow_ups=3)
        assert 1 <= len(ex.follow_ups) <= 3
        for prompt, answer in ex.follow_ups:
            fits = [o for o in ex.objects if _describes(o, type(ex)(ex.id, ex.image, ex.objects, _task_of(prompt),
                                                                      prompt, answer, None))]
            assert len(fits) == 1
            obj = fits[0]
            assert answer == {"colour": obj.colour, "shape": obj.shape, "position": obj.position,
                              "describe": f"{obj.colour} {obj.shape}"}[_task_of(prompt)]
        assert "follow_ups" not in ex.to_json("x.png")  # eval rows stay single-question


def _task_of(prompt: str) -> str:
    if prompt.startswith("what colour"):
        return "colour"
    if prompt.startswith("what shape"):
        return "shape"
    return "position" if prompt.startswith("where") else "describe"
