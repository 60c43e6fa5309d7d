"""Eval-set loading: good rows kept, every bad row reported with its line number, paths confined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dashboard.evalset import EvalSetError, find_eval_sets, load_eval_set, parse_eval_set


@pytest.fixture()
def eval_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run" / "eval"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(folder / "images" / "a.png")
    (folder / "images" / "broken.png").write_bytes(b"not an image")
    return folder


def _jsonl(folder: Path, rows: list[object], name: str = "set.jsonl", tail: bytes = b"") -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path = folder / name
    path.write_bytes(("\n".join(lines) + "\n").encode() + tail)
    return path


GOOD = {"id": "00012", "image": "images/a.png", "prompt": "what colour is the circle ?", "answer": "red",
        "task": "colour", "objects": [{"shape": "circle", "colour": "red", "bbox": [0, 0, 4, 4]}], "target": 0}


def test_demo_format_row(eval_dir: Path) -> None:
    es = load_eval_set(_jsonl(eval_dir, [GOOD]))
    assert es.problems == []
    (ex,) = es.examples
    assert es.name == "set"
    assert ex.id == "00012" and ex.answer == "red" and ex.task == "colour" and ex.target == 0
    assert ex.image_path == (eval_dir / "images" / "a.png").resolve()
    assert ex.objects[0]["bbox"] == [0, 0, 4, 4]


def test_bad_rows_are_reported_with_line_numbers(eval_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    Image.new("RGB", (4, 4)).save(outside)
    rows = [
        GOOD,                                                          # 1 ok
        "{not json",                                                   # 2
        {**GOOD, "id": "b", "image": "images/missing.png"},            # 3
        {**GOOD, "id": "c", "image": "images/broken.png"},             # 4
        {**GOOD, "id": "d", "image": "../../outside.png"},             # 5 escapes the folder
        {**GOOD, "id": "e", "prompt": "   "},                          # 6
        {"id": "f", "image": "images/a.png", "prompt": "q"},           # 7 no answer
        {**GOOD, "id": "g", "target": "two"},                          # 8
        {**GOOD, "id": "h", "target": 5},                              # 9
        [1, 2],                                                        # 10
        GOOD,                                                          # 11 duplicate id
        "",                                                            # 12 blank: ignored
        {**GOOD, "id": "ok2", "answer": 7},                            # 13 number answer is fine
    ]
    es = load_eval_set(_jsonl(eval_dir, rows, tail=b'{"id": "\xff"}\n'))
    assert [ex.id for ex in es.examples] == ["00012", "ok2"]
    assert es.examples[1].answer == "7"
    problems = "\n".join(es.problems)
    for expected in ["line 2: invalid JSON", "line 3: image not found: images/missing.png",
                     "line 4: image 'images/broken.png' is unreadable", "line 5: image '../../outside.png' is outside",
                     "line 6: prompt is empty", "line 7: missing field(s): answer", "line 8: target must be an integer",
                     "line 9: target 5 is not an index", "line 10: expected a JSON object",
                     "line 11: duplicate id '00012'", "line 14: not valid UTF-8"]:
        assert expected in problems, f"{expected!r} not in {es.problems}"
    assert len(es.problems) == 11


def test_images_may_live_in_an_allowed_root(eval_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "shared"
    other.mkdir()
    Image.new("RGB", (4, 4)).save(other / "x.png")
    path = _jsonl(eval_dir, [{**GOOD, "image": str(other / "x.png")}])
    assert "outside" in load_eval_set(path).problems[0]
    assert load_eval_set(path, roots=[other]).examples[0].image_path == (other / "x.png").resolve()


def test_symlink_out_of_the_folder_is_refused(eval_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(secret)
    (eval_dir / "images" / "link.png").symlink_to(secret)
    es = load_eval_set(_jsonl(eval_dir, [{**GOOD, "image": "images/link.png"}]))
    assert es.examples == [] and "outside" in es.problems[0]


def test_csv_with_aliases_multiline_and_bad_rows(eval_dir: Path) -> None:
    path = eval_dir / "user.csv"
    path.write_bytes(
        b"\xef\xbb\xbfimage_path,question,reference,objects,note\n"
        b'images/a.png,"multi\nline prompt",red,,hello\n'
        b"images/a.png,q,\xff\xfe,,\n"
        b"images/a.png,q,red,[oops,\n"
        b",,,,\n"
        b"images/a.png,q,blue,,x,extra-field\n"
        b'images/a.png,q2,"blue, green",[],\n')
    es = load_eval_set(path)
    assert [ex.prompt for ex in es.examples] == ["multi\nline prompt", "q2"]
    assert es.examples[0].id == "line-2" and es.examples[0].extra == {"note": "hello"}
    assert es.examples[1].answer == "blue, green"
    assert es.problems == ["line 4: not valid UTF-8", "line 5: column 'objects' is not valid JSON",
                           "line 7: more fields than header columns"]


def test_csv_missing_columns(eval_dir: Path) -> None:
    path = eval_dir / "bad.csv"
    path.write_text("img,prompt\nimages/a.png,q\n")
    es = load_eval_set(path)
    assert es.examples == []
    assert es.problems == ["line 1: header is missing column(s): image, answer (found: img, prompt)"]


def test_whole_file_errors(eval_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="not found"):
        load_eval_set(eval_dir / "nope.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(EvalSetError, match=r"\.jsonl or \.csv"):
        load_eval_set(tmp_path / "x.txt")
    empty = _jsonl(eval_dir, [], name="empty.jsonl")
    assert load_eval_set(empty).problems == ["the file has no rows"]


def test_uploaded_bytes_resolve_against_first_root(eval_dir: Path) -> None:
    data = json.dumps({**GOOD, "image": "eval/images/a.png"}).encode()
    es = parse_eval_set(data, name="up", path=Path("up.jsonl"), base_dir=None, roots=[eval_dir.parent], fmt="jsonl")
    assert es.problems == [] and es.examples[0].image_path.name == "a.png"


def test_find_eval_sets(eval_dir: Path) -> None:
    _jsonl(eval_dir, [GOOD], name="b.jsonl")
    (eval_dir / "a.csv").write_text("image,prompt,answer\n")
    (eval_dir / "notes.txt").write_text("x")
    assert [p.name for p in find_eval_sets(eval_dir.parent)] == ["a.csv", "b.jsonl"]
    assert find_eval_sets(eval_dir) == []
