"""Untrusted image input → bounded, upright RGB, or an ImageError with a clear message."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dashboard.images import ImageError, image_digest, load_image, to_png_bytes


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_rgb_png_roundtrip_from_bytes_path_and_file(tmp_path):
    image = Image.new("RGB", (20, 10), (10, 200, 30))
    data = encode(image)
    (tmp_path / "x.png").write_bytes(data)
    for source in (data, tmp_path / "x.png", str(tmp_path / "x.png"), io.BytesIO(data)):
        out = load_image(source)
        assert out.mode == "RGB" and out.size == (20, 10)
        assert out.getpixel((3, 3)) == (10, 200, 30)


def test_rgba_is_composited_on_white():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    image.putpixel((0, 0), (0, 0, 255, 255))
    out = load_image(encode(image))
    assert out.mode == "RGB"
    assert out.getpixel((1, 1)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (0, 0, 255)


def test_grayscale_cmyk_and_palette():
    assert load_image(encode(Image.new("L", (5, 5), 128))).getpixel((0, 0)) == (128, 128, 128)
    cmyk = load_image(encode(Image.new("CMYK", (5, 5), (0, 255, 255, 0)), "JPEG"))
    r, g, b = cmyk.getpixel((2, 2))
    assert cmyk.mode == "RGB" and r > 200 and g < 60 and b < 60
    palette = Image.new("P", (5, 5), 0)
    palette.putpalette([0, 255, 0] + [0] * 765)
    assert load_image(encode(palette)).getpixel((0, 0)) == (0, 255, 0)


def test_16_bit_is_rescaled_not_clipped():
    array = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    image = Image.fromarray(array)  # mode I;16
    assert image.mode.startswith("I;16")
    out = load_image(encode(image))
    values = np.asarray(out)[..., 0]
    assert out.mode == "RGB"
    assert values.min() == 0 and values.max() == 255
    assert len(np.unique(values)) > 32  # a gradient survives, not a saturated white image


def test_exif_rotation_is_honoured():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° CW to display
    out = load_image(encode(image, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    r, _g, b = load_image(buffer.getvalue()).getpixel((2, 2))
    assert r > 200 and b < 50


def test_giant_image_is_refused_before_decoding():
    bomb = encode(Image.new("1", (4000, 3000)))  # 12 MP, a few KB compressed
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match=r"4000×3000.*over the limit of 1.0 MP.*decompression bomb"):
        load_image(bomb, max_pixels=1_000_000)
    assert load_image(bomb, max_pixels=20_000_000).size == (4000, 3000)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"this is a text file, not a picture\n" * 10, "not an image"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not an image"),
])
def test_non_images(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_png_is_reported_as_corrupt():
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"))
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_digest_depends_on_pixels_not_encoding():
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    from_png = load_image(encode(image))
    from_bmp = load_image(encode(image, "BMP"))
    assert image_digest(from_png) == image_digest(from_bmp)
    other = image.copy()
    other.putpixel((0, 0), (1, 2, 4))
    assert image_digest(other) != image_digest(image)


def test_png_thumbnail_is_bounded():
    thumb = Image.open(io.BytesIO(to_png_bytes(Image.new("RGB", (400, 100)), max_side=128)))
    assert max(thumb.size) == 128
