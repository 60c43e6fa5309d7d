"""The demo run's marker file, ``demo_run.json``: which folder is a demo run, and whether it is finished.

Kept apart from :mod:`dashboard.demo.build` (which imports transformers' Trainer) so Home can tell
a finished demo from one being built on every page view without that import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MARKER = "demo_run.json"
MARKER_KIND = "vlmlab-demo-run"


def read_marker(path: Path) -> dict[str, Any] | None:
    """The demo marker of ``path`` (``kind``, ``complete``, ``preset``, ``seed`` …), or None if it has none."""
    try:
        data = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == MARKER_KIND else None


def is_demo_run(path: Path) -> bool:
    """True if ``path`` carries the marker a demo build writes (finished or not)."""
    return read_marker(path) is not None


def is_incomplete_demo(path: Path) -> bool:
    """A demo run whose build has not finished (running now, or interrupted): never shown as the demo."""
    marker = read_marker(path)
    return marker is not None and marker.get("complete") is not True


def write_marker(out_dir: Path, payload: dict[str, Any]) -> None:
    """Write the marker atomically (a reader sees the old or the new one, never half)."""
    tmp = Path(out_dir) / f"{MARKER}.tmp"
    tmp.write_text(json.dumps({"kind": MARKER_KIND, **payload}, indent=2, default=str), encoding="utf-8")
    tmp.replace(Path(out_dir) / MARKER)
