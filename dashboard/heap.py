"""Hand freed heap memory back to the operating system after a big, rare allocation.

glibc keeps what Python and Pillow free in its arenas (one per thread that allocated, up to 8 per
core): after a 25 MB upload was parsed or a 40 MP image decoded and reduced, the freed buffers stayed
in the process as resident memory and the server grew past its budget under an uploading client
(bench/RESULTS.md, issue 30). ``malloc_trim(0)`` returns the free pages of every arena. It walks the
heap (milliseconds), so it is called after such work only, not per rerun. No-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def _malloc_trim() -> Any:  # the ctypes function, or None off glibc
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Return freed heap pages to the OS; True when glibc did release some."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
