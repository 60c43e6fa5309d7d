"""Upload budgets: decode once per content, thumbnails without full decodes, per-visitor pixel budget,
uploaded eval sets parsed with a row cap and images found next to the run's own set."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from dashboard.evalset import parse_eval_set
from dashboard.images import DecodedImages, ImageError, image_size, load_image


def _png(width: int, height: int, colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_the_same_bytes_are_decoded_once():
    cache = DecodedImages(max_total_pixels=10_000_000)
    data = _png(300, 200)
    first, digest = cache.get(data, "a.png", 40_000_000)
    again, digest_again = cache.get(bytes(data), "renamed.png", 40_000_000)  # a rerun / another tab
    assert again is first and digest_again == digest and cache.decodes == 1


def test_the_cache_stays_within_its_pixel_total():
    cache = DecodedImages(max_total_pixels=100_000)
    for colour in ("red", "green", "blue", "white"):
        cache.get(_png(200, 200, colour), colour, 40_000_000)  # 40,000 px each
        assert cache.pixels <= 100_000
    cache.get(_png(400, 400), "big", 40_000_000)  # larger than the whole cache: decoded, not kept
    assert cache.pixels <= 100_000


def test_the_digest_is_unchanged_by_hashing_strip_by_strip():
    """History rows keep digests: the strip-wise hash must equal the whole-buffer hash it replaced."""
    import hashlib

    from dashboard.images import image_digest

    image = Image.effect_noise((301, 701), 64).convert("RGB")  # rows not a multiple of the strip height
    whole = hashlib.sha256(b"RGB:301x701:" + image.tobytes()).hexdigest()
    assert image_digest(image) == whole


def test_concurrent_requests_for_one_content_decode_it_once():
    import threading

    cache = DecodedImages(max_total_pixels=10_000_000)
    data = _png(500, 500)
    threads = [threading.Thread(target=cache.get, args=(data, f"{i}.png", 40_000_000)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert cache.decodes == 1


def test_a_large_upload_is_kept_reduced_and_cached_as_such():
    cache = DecodedImages(max_total_pixels=10_000_000)
    data = _png(3000, 1500)
    reduced, _ = cache.get(data, "wide.png", 40_000_000, keep_side=1000)
    assert reduced.size == (1000, 500) and reduced.mode == "RGB"
    assert cache.pixels == 500_000  # what is held is the reduced image
    again, _ = cache.get(data, "wide.png", 40_000_000, keep_side=1000)
    full, _ = cache.get(data, "wide.png", 40_000_000)  # local use: the full resolution, its own entry
    assert again is reduced and full.size == (3000, 1500) and cache.decodes == 2
    small, _ = cache.get(_png(300, 200), "small.png", 40_000_000, keep_side=1000)
    assert small.size == (300, 200)  # never enlarged


def test_public_controls_cap_the_batch_size(monkeypatch):
    from dashboard.public import LIMITS
    from dashboard.ui import gate

    monkeypatch.setattr(gate, "public_mode", lambda: True)
    assert gate.max_batch_size() == LIMITS.max_batch_size < 64
    monkeypatch.setattr(gate, "public_mode", lambda: False)
    assert gate.max_batch_size() == 64


def test_the_size_comes_from_the_header():
    assert image_size(_png(640, 480)) == (640, 480)
    with pytest.raises(ImageError):
        image_size(b"not an image")


def test_a_thumbnail_is_decoded_reduced():
    image = load_image(_jpeg(2000, 1000), reduce_to=96)
    assert max(image.size) <= 96 and image.mode == "RGB"


def test_a_batch_of_uploads_stays_within_the_visitor_budget():
    from dashboard.ui.image_input import within_budget

    files = [(f"big{i}.png", _png(1000, 1000)) for i in range(3)]  # 1 MP each
    kept, refused = within_budget(files, budget=2_500_000)
    assert [name for name, _ in kept] == ["big0.png", "big1.png"]
    assert len(refused) == 1 and "big2.png" in refused[0] and "budget" in refused[0]
    assert within_budget(files, budget=None) == (files, [])  # local use: no budget


@pytest.fixture()
def run_with_eval(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "demo"
    (run / "eval" / "images").mkdir(parents=True)
    rows = []
    for i in range(5):
        (run / "eval" / "images" / f"{i}.png").write_bytes(_png(8, 8))
        rows.append({"id": str(i), "image": f"images/{i}.png", "prompt": "colour ?", "answer": "red"})
    (run / "eval" / "demo.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return run


def test_the_runs_own_file_uploaded_unchanged_is_usable(run_with_eval: Path):
    """On main an upload's relative images were looked up in the run folder only: 'no usable examples'."""
    data = (run_with_eval / "eval" / "demo.jsonl").read_bytes()
    parsed = parse_eval_set(data, name="demo", path=Path("demo.jsonl"),
                            base_dir=[run_with_eval / "eval", run_with_eval], roots=[run_with_eval.parent],
                            fmt="jsonl")
    assert len(parsed.examples) == 5 and parsed.problems == []
    only_run = parse_eval_set(data, name="demo", path=Path("demo.jsonl"), base_dir=run_with_eval,
                              roots=[run_with_eval.parent], fmt="jsonl")
    assert only_run.examples == []  # what main did


def test_an_uploaded_set_is_read_up_to_the_row_cap(run_with_eval: Path):
    data = (run_with_eval / "eval" / "demo.jsonl").read_bytes()
    parsed = parse_eval_set(data, name="demo", path=Path("demo.jsonl"), base_dir=[run_with_eval / "eval"],
                            roots=[run_with_eval.parent], fmt="jsonl", max_rows=3)
    assert [e.id for e in parsed.examples] == ["0", "1", "2"]
    assert any("only the first 3 rows" in p for p in parsed.problems)
