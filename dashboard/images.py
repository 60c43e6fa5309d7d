"""Turn untrusted image input (uploads, eval-set files) into a bounded, upright RGB image.

Every failure is an :class:`ImageError` whose message can be shown to the user as is, so a bad
upload never takes the app down. The pixel bound is checked from the header *before* decoding
(Pillow's global ``MAX_IMAGE_PIXELS`` is process-wide and not thread-safe to change).
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dashboard.heap import release_freed_memory
from dashboard.runs.files import RunFileError, read_bytes

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 40_000_000
MAX_SIDE = 16_384
"""Longest side accepted. Browsers and ``st.image`` fail on images wider than 65,535 px, and a
processor that resizes the *shortest* side to a fixed size turns a long thin strip into a huge one."""
MAX_ASPECT = 20.0
"""Longest/shortest side: a 2,000,000×20 strip has few pixels, but CLIP-style resizing upsizes it
to ~9.6M×96 (GBs) before cropping."""
MAX_FILE_BYTES = 200 * 2**20
"""Refuse files larger than this outright (a compressed image of 40 MP is far smaller)."""


class ImageError(ValueError):
    """The input is not a usable image; the message says why."""


def _read_bytes(source: bytes | str | Path | BinaryIO) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "upload"
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            if path.is_dir():
                raise IsADirectoryError(path)
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ImageError(f"{path.name} is {size / 2**20:.0f} MB; images over {MAX_FILE_BYTES // 2**20} MB "
                                 "are refused")
            return read_bytes(path, [path.parent], "image"), path.name
        except RunFileError as exc:
            raise ImageError(str(exc)) from exc
        except FileNotFoundError as exc:
            raise ImageError(f"image file {path.name} does not exist") from exc
        except IsADirectoryError as exc:
            raise ImageError(f"{path.name} is a folder, not an image") from exc
        except OSError as exc:
            raise ImageError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    name = str(getattr(source, "name", "upload"))
    data = source.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MB; refused")
    return data, name


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB: alpha composited on white, 16-bit/float rescaled, CMYK/P converted."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scaled = np.zeros_like(array) if high <= low else (array - low) / (high - low) * 255.0
        return Image.fromarray(np.nan_to_num(scaled).astype(np.uint8), mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if mode == "RGB" else image.convert("RGB")


def check_shape(width: int, height: int, name: str = "image") -> None:
    """Refuse shapes that are cheap to store but expensive to process or display."""
    if max(width, height) > MAX_SIDE:
        raise ImageError(f"{name} is {width}×{height}: its longest side is over the limit of {MAX_SIDE:,} px; "
                         "downscale it first")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageError(f"{name} is {width}×{height}: an aspect ratio over {MAX_ASPECT:.0f}:1 is refused "
                         "(the model's processor would blow it up); crop it first")


def image_size(data: bytes, name: str = "upload") -> tuple[int, int]:
    """(width, height) from the header alone: what a decode would cost, before paying it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not an image Pillow can read (unknown or non-image format)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} is over Pillow's pixel limit (possible decompression bomb)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name} is corrupt or truncated: {exc}") from exc


def load_image(source: bytes | str | Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS,
               reduce_to: int | None = None) -> Image.Image:
    """Decode ``source`` into an RGB image, EXIF orientation applied, at most ``max_pixels`` pixels.

    ``reduce_to``: a thumbnail at most that many pixels on a side, decoded reduced where the format
    allows (JPEG's DCT scaling through ``Image.thumbnail``'s draft), never the full image kept.
    """
    data, name = _read_bytes(source)
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ImageError(f"{name} has an empty size {width}×{height}")
            check_shape(width, height, name)
            if width * height > max_pixels:
                raise ImageError(f"{name} is {width}×{height} = {width * height / 1e6:.1f} MP, over the limit of "
                                 f"{max_pixels / 1e6:.1f} MP (possible decompression bomb); downscale it first")
            image.seek(0)  # first frame of animations
            if reduce_to is None:
                image.load()
            else:
                image.thumbnail((reduce_to, reduce_to))
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not an image Pillow can read (unknown or non-image format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses > 2× its own pixel cap inside Image.open, before our header check runs.
        raise ImageError(f"{name} is over the limit of {max_pixels / 1e6:.1f} MP (possible decompression bomb; "
                         f"{exc}); downscale it first") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name} is corrupt or truncated: {exc}") from exc
    try:
        image = ImageOps.exif_transpose(image) or image
    except Exception:  # a broken EXIF block must not lose the image
        logger.warning("%s: EXIF orientation unreadable; shown as stored", name, exc_info=True)
    try:
        return _to_rgb(image)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{name}: cannot convert mode {image.mode} to RGB: {exc}") from exc


class DecodedImages:
    """Decoded images by content hash, bounded in total pixels: decode once, however often asked.

    A page reruns its script on every click, and a batch of uploads was decoded again each time
    (12 s and GBs for twelve 40 MP files). Here the same bytes — this rerun's, another tab's,
    another visitor's — map to one decoded image and its digest; the least recently used go
    first when the pixel total would pass ``max_total_pixels``.
    """

    def __init__(self, max_total_pixels: int) -> None:
        self.max_total_pixels = max_total_pixels
        self.decodes = 0
        self._lock = threading.Lock()
        self._decoding = threading.Lock()
        self._entries: OrderedDict[tuple[str, int, int | None], tuple[Image.Image, str]] = OrderedDict()
        self._pixels = 0

    @property
    def pixels(self) -> int:
        with self._lock:
            return self._pixels

    def get(self, data: bytes, name: str, max_pixels: int, keep_side: int | None = None) -> tuple[Image.Image, str]:
        """(RGB image, :func:`image_digest`) of ``data``; raises :class:`ImageError` like :func:`load_image`.

        ``keep_side``: an image larger than this on a side is kept reduced to it (aspect kept), so
        a 40 MP upload costs its full decode once and then a few MB, wherever it is held.

        One decode at a time in the process: twenty sessions uploading 40 MP images at once would
        otherwise hold twenty decodes (and their digests' buffers) in memory together, outside any
        job gate (bench/RESULTS.md, issue 30). A session that waited finds the same content already
        decoded by the one before it.
        """
        key = (hashlib.sha256(data).hexdigest(), max_pixels, keep_side)
        hit = self._cached(key)
        if hit is not None:
            return hit
        with self._decoding:
            hit = self._cached(key)
            if hit is not None:
                return hit
            image = load_image(data, max_pixels=max_pixels, reduce_to=keep_side)
            entry = (image, image_digest(image))
            size = image.width * image.height
            with self._lock:  # kept before the next decoder looks
                self.decodes += 1
                if size <= self.max_total_pixels and key not in self._entries:
                    self._entries[key] = entry
                    self._pixels += size
                    while self._pixels > self.max_total_pixels:
                        _, (old, _digest) = self._entries.popitem(last=False)
                        self._pixels -= old.width * old.height
            release_freed_memory()  # the full-size decode's buffers, freed, back to the OS
        return entry

    def _cached(self, key: tuple[str, int, int | None]) -> tuple[Image.Image, str] | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
            return hit


def image_digest(image: Image.Image) -> str:
    """SHA-256 over mode, size and pixels: equal images → equal digest, whatever file they came from."""
    digest = hashlib.sha256()
    width, height = image.size
    digest.update(f"{image.mode}:{width}x{height}:".encode())
    # Strip by strip: the same bytes as ``image.tobytes()`` (rows are packed one after another)
    # without a second full copy of a 40 MP image in memory.
    for top in range(0, height, _DIGEST_ROWS):
        digest.update(image.crop((0, top, width, min(height, top + _DIGEST_ROWS))).tobytes())
    return digest.hexdigest()


_DIGEST_ROWS = 256


def to_png_bytes(image: Image.Image, max_side: int | None = None) -> bytes:
    """PNG encoding (optionally a thumbnail no larger than ``max_side``) for storage/download."""
    if max_side is not None and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
