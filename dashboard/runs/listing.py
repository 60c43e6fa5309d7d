"""What one directory holds, read once per change: the base of run discovery and checkpoint listing.

A runs root can hold hundreds of runs and a run can hold 100,000 ``checkpoint-N`` folders.
Streamlit reruns the whole script on every click, and several pages ask the same questions
("which checkpoints?", "is this a run?", "which event files?"), so each directory is scanned
once and its :class:`DirSummary` memoised under the directory's own stat (inode, mtime_ns, size,
link count): adding or removing an entry changes the directory's mtime, so a rerun costs one
``stat`` per directory instead of one ``scandir`` over its entries. A directory modified within
the last :data:`RACY_SECONDS` is not memoised (its mtime may not yet have ticked for a change
made in the same clock tick: git's "racy" rule).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from dashboard.caching import Memo

CHECKPOINT_RE = re.compile(r"^checkpoint-([0-9]{1,19})$")
"""ASCII digits only (``\\d`` also matches ``٣٤٥``), at most 19 of them: the step must fit an int64."""
MAX_STEP = 2**63 - 1
EVENT_FILE_MARKER = "tfevents"
RACY_SECONDS = 2.0
MAX_ENTRIES_KEPT = 2_000
"""Plain file names kept per directory, beyond those discovery looks for (:data:`ALWAYS_KEPT`)."""
ALWAYS_KEPT = (".json", ".jsonl", ".bin")
"""Endings of the files that make a folder a run or a model folder: kept however many files there are."""


def checkpoint_step(name: str) -> int | None:
    """``checkpoint-1200`` -> 1200; anything else -> None."""
    match = CHECKPOINT_RE.fullmatch(name)
    if not match:
        return None
    step = int(match.group(1))
    return step if step <= MAX_STEP else None


@dataclass(frozen=True)
class DirSummary:
    """The entries of one directory that run discovery cares about."""

    path: Path
    mtime: float
    checkpoints: tuple[tuple[int, str], ...]
    """``checkpoint-<step>`` sub-folders as (step, name), in numeric step order."""
    subdirs: tuple[str, ...]
    """Other sub-folders (not hidden, not checkpoints), sorted."""
    files: frozenset[str]
    """Names of regular files (symlinks followed), up to :data:`MAX_ENTRIES_KEPT`."""
    event_files: tuple[str, ...]
    """TensorBoard event files directly here, sorted."""
    safetensors: tuple[str, ...]
    """``*.safetensors`` files directly here, sorted."""

    def has_file(self, name: str) -> bool:
        return name in self.files


def _stat_key(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if time.time() - st.st_mtime < RACY_SECONDS:
        return None  # too fresh to trust its mtime: scan, do not remember
    return (str(path), st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size, st.st_nlink)


def _scan(path: Path) -> DirSummary:
    checkpoints: list[tuple[int, str]] = []
    subdirs: list[str] = []
    files: set[str] = set()
    events: list[str] = []
    safetensors: list[str] = []
    try:
        mtime = os.stat(path).st_mtime
        with os.scandir(path) as it:
            for entry in it:
                name = entry.name
                try:
                    if entry.is_dir():
                        step = checkpoint_step(name)
                        if step is not None:
                            checkpoints.append((step, name))
                        elif not name.startswith(".") and not entry.is_symlink():
                            subdirs.append(name)
                    elif entry.is_file():
                        if len(files) < MAX_ENTRIES_KEPT or name.endswith(ALWAYS_KEPT):
                            files.add(name)
                        if EVENT_FILE_MARKER in name:
                            events.append(name)
                        elif name.endswith(".safetensors"):
                            safetensors.append(name)
                except OSError:
                    continue
    except OSError:
        return DirSummary(path, 0.0, (), (), frozenset(), (), ())
    checkpoints.sort()
    return DirSummary(path, mtime, tuple(checkpoints), tuple(sorted(subdirs)), frozenset(files),
                      tuple(sorted(events)), tuple(sorted(safetensors)))


dir_summary = Memo(_scan, "dir-summaries", maxsize=8192, key=lambda path: _stat_key(Path(path)))
""":func:`_scan`, memoised by the directory's stat (see the module docstring)."""


def summary(path: str | Path) -> DirSummary:
    """The (memoised) summary of ``path``; an unreadable or missing folder gives an empty one."""
    return dir_summary(Path(path))


__all__ = ["CHECKPOINT_RE", "MAX_STEP", "DirSummary", "checkpoint_step", "dir_summary", "summary"]
