"""Builders for hostile inputs: broken images, bombs, renamed documents, broken runs.

Everything is generated here (nothing downloaded) and small on disk, even the "huge" images:
PNGs of zeros compress ~1000×, so a 20000×20000 picture is a few hundred KB.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
       b'<script>alert(1)</script><rect width="64" height="64" fill="red"/></svg>')
HTML = b"<!doctype html><html><body><script>alert('x')</script><img src=x onerror=alert(1)></body></html>"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def zero_png(width: int, height: int, bit_depth: int = 8, colour_type: int = 0, rows: int | None = None) -> bytes:
    """A PNG of ``width``×``height`` black pixels, streamed row by row (never held in memory).

    ``rows`` < height writes only that many rows of pixel data (a truncated file whose header still
    claims the full size: the shape of a decompression bomb that is cheap to build).
    """
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row_bytes = 1 + (width * channels * bit_depth + 7) // 8
    compressor = zlib.compressobj(9)
    parts = []
    row = b"\0" * row_bytes
    block = row * max(1, 4_000_000 // row_bytes)
    per_block = len(block) // row_bytes
    todo = height if rows is None else rows
    while todo > 0:
        n = min(todo, per_block)
        parts.append(compressor.compress(block if n == per_block else row * n))
        todo -= n
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def sample_rgb(size: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB")


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (48, 32), colour) for colour in ("red", "green", "blue")]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def tiff_16bit() -> bytes:
    array = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    image = Image.fromarray(array)  # uint16 → mode I;16
    assert image.mode.startswith("I;16"), image.mode
    return encode(image, "TIFF")


def cmyk_jpeg() -> bytes:
    return encode(sample_rgb().convert("CMYK"), "JPEG", quality=90)


def upload_cases() -> dict[str, tuple[str, bytes, str | None]]:
    """name → (file name, bytes, expected substring of the error; None = must be accepted)."""
    png = encode(sample_rgb(), "PNG")
    jpeg = encode(sample_rgb(), "JPEG", quality=90)
    rng = np.random.default_rng(1)
    return {
        "zero-bytes": ("empty.png", b"", "empty (0 bytes)"),
        "random-bytes": ("random.png", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
                         "not an image Pillow can read"),
        "truncated-png": ("truncated.png", png[: len(png) // 2], "corrupt or truncated"),
        "truncated-jpeg": ("truncated.jpg", jpeg[: len(jpeg) // 3], "corrupt or truncated"),
        "decompression-bomb": ("bomb.png", zero_png(100_000, 100_000, bit_depth=1, rows=64), "over the limit"),
        "20000x20000": ("huge.png", zero_png(20_000, 20_000), "over the limit"),
        "svg-renamed": ("drawing.png", SVG, "not an image Pillow can read"),
        "html-renamed": ("page.jpg", HTML, "not an image Pillow can read"),
        "animated-gif": ("anim.gif", animated_gif(), None),
        "tiff-16bit": ("deep.tiff", tiff_16bit(), None),
        "cmyk-jpeg": ("cmyk.jpg", cmyk_jpeg(), None),
    }


def write_upload_cases(folder: Path) -> dict[str, tuple[Path, str | None]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (file_name, data, expected) in upload_cases().items():
        path = folder / f"{name}-{file_name}"
        path.write_bytes(data)
        out[name] = (path, expected)
    return out


def over_limit_file(path: Path, megabytes: int = 26) -> Path:
    """A valid PNG header followed by padding, larger than Streamlit's 25 MB upload limit."""
    with path.open("wb") as handle:
        handle.write(encode(sample_rgb(), "PNG"))
        handle.write(os.urandom(megabytes * 2**20))
    return path


# ----------------------------------------------------------------------------- broken runs
def trainer_state(log_history: list, **extra) -> str:
    return json.dumps({"global_step": extra.pop("global_step", 0), "log_history": log_history, **extra})


def huge_log_history(entries: int) -> list[dict]:
    """``entries`` train log rows plus an eval row every 1000 steps (like a long pre-training run)."""
    rows: list[dict] = []
    for step in range(1, entries + 1):
        rows.append({"loss": 3.0 / (1 + step / 1000), "grad_norm": 1.0, "learning_rate": 1e-4,
                     "epoch": step / entries, "step": step})
        if step % 1000 == 0:
            rows.append({"eval_loss": 2.0 / (1 + step / 1000), "epoch": step / entries, "step": step})
    return rows


def nan_inf_log_history() -> list[dict]:
    return [{"loss": 1.0, "step": 1}, {"loss": float("nan"), "step": 2}, {"loss": float("inf"), "step": 3},
            {"loss": float("-inf"), "step": 4}, {"loss": 0.5, "step": 5}, {"eval_loss": float("nan"), "step": 5}]
