"""Hostile uploads at the decoder: each either becomes a bounded RGB image or a specific ImageError.

(The same files go through the real server and browser in ``tests/browser/test_browser_hostile.py``.)
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

from dashboard.images import ImageError, load_image
from tests.hostile.hostile_files import upload_cases, zero_png

CASES = upload_cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_upload_case_is_decoded_or_refused_with_a_specific_message(case):
    _, data, expected = CASES[case]
    if expected is None:
        image = load_image(data)
        assert image.mode == "RGB" and image.width > 0 and image.height > 0
    else:
        with pytest.raises(ImageError) as info:
            load_image(data)
        assert expected in str(info.value), str(info.value)


def test_huge_images_are_refused_from_the_header_without_decoding():
    """A 20000×20000 (400 MP) image would need 1.2 GB as RGB; refusing it must cost almost nothing."""
    data = zero_png(20_000, 20_000)
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ImageError, match="over the limit"):
        load_image(data)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 2**20, f"refusal allocated {peak / 2**20:.0f} MB"
    assert elapsed < 30  # generous: it is a header read; this only guards against a full decode


def test_limit_is_configurable_and_exact():
    data = zero_png(100, 100)
    assert load_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageError, match="101×100"):
        load_image(zero_png(101, 100), max_pixels=10_000)


def test_animated_gif_first_frame_and_16_bit_tiff_keep_their_content():
    _, gif, _ = CASES["animated-gif"]
    first = load_image(gif)
    assert first.size == (48, 32)
    red, green, blue = first.getpixel((10, 10))
    assert red > 200 and green < 50 and blue < 50  # the first frame (red), not a later one
    _, tiff, _ = CASES["tiff-16bit"]
    deep = load_image(tiff)
    low, high = deep.convert("L").getextrema()
    assert low == 0 and high == 255  # rescaled over the full range, not clipped to white
