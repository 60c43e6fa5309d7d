"""Small PNG previews of images: eval-set pickers, comparison tables and history, one path for all.

The image is decoded reduced (``load_image(reduce_to=…)``), never kept at full size.
Thumbnails are memoised by the file's (path, mtime, size) — see :mod:`dashboard.caching` — and a
broken file's error message is memoised too, so a bad image is decoded once, not on every rerun.
"""

from __future__ import annotations

import base64
from pathlib import Path

from dashboard.caching import file_memo
from dashboard.images import DEFAULT_MAX_PIXELS, ImageError, load_image, to_png_bytes


@file_memo("thumbnails", maxsize=1024)
def thumbnail_png(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, side: int = 96) -> bytes | str:
    """PNG bytes at most ``side`` pixels on the long edge, or the reason there is none."""
    try:
        return to_png_bytes(load_image(path, max_pixels=max_pixels, reduce_to=side), max_side=side)
    except (ImageError, OSError) as exc:
        return str(exc)


def png_data_uri(png: bytes | None) -> str | None:
    """``data:image/png;base64,…`` for ``st.column_config.ImageColumn`` (None stays None)."""
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def thumbnail_uri(path: str | Path, side: int = 48, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """A thumbnail as a data URI; None when the image is unusable (a thumbnail is decoration)."""
    png = thumbnail_png(path, max_pixels, side)
    return png_data_uri(png) if isinstance(png, bytes) else None
