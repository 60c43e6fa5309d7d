"""Where a number came from: run, checkpoint, step, generation settings, eval set, app version.

Every export (CSV / JSON) carries these fields, so a table found later in a folder of results
still says which checkpoint of which run produced it, with which settings and which version of
the eval set (by content hash — a file keeps its name when its rows change).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dashboard import __version__
from dashboard.runs.checkpoints import checkpoint_step
from dashboard.runs.files import open_checked

CHUNK = 1 << 20


def file_sha256(path: Path, roots: Iterable[str | Path]) -> str:
    """SHA-256 of a run file's content, read through the run-file opener (confined, size-limited)."""
    digest = hashlib.sha256()
    with open_checked(path, roots, "evalset") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance(*, run: Path | None, checkpoint: Path, settings: Mapping[str, Any],
               eval_set: Path | None = None, roots: Iterable[str | Path] = ()) -> dict[str, Any]:
    """The provenance block of an export (JSON-friendly)."""
    block: dict[str, Any] = {
        "app_version": __version__,
        "run": None if run is None else Path(run).name,
        "run_path": None if run is None else str(run),
        "checkpoint": Path(checkpoint).name,
        "checkpoint_path": str(checkpoint),
        "step": checkpoint_step(Path(checkpoint).name),
        "settings": dict(settings),
    }
    if eval_set is not None:
        block["eval_set"] = {"name": Path(eval_set).stem, "file": Path(eval_set).name,
                             "sha256": file_sha256(Path(eval_set), roots)}
    return block


def provenance_columns(block: Mapping[str, Any]) -> dict[str, Any]:
    """The same block flattened into CSV columns (settings as one JSON cell)."""
    eval_set = block.get("eval_set") or {}
    return {"run": block.get("run"), "checkpoint": block.get("checkpoint"), "step": block.get("step"),
            "settings": json.dumps(block.get("settings", {}), sort_keys=True),
            "eval_set": eval_set.get("name"), "eval_set_sha256": eval_set.get("sha256"),
            "app_version": block.get("app_version")}


def with_provenance(rows: Sequence[Mapping[str, Any]], block: Mapping[str, Any]) -> list[dict[str, Any]]:
    """CSV rows: each result row followed by the provenance columns."""
    columns = provenance_columns(block)
    return [{**row, **columns} for row in rows]
