"""Confine every user-supplied path to the configured runs roots.

A path typed into the sidebar, read from ``best_model_checkpoint`` or carried in
``session_state`` is resolved (symlinks and ``..`` included) before anything is read, so a
symlink inside a run cannot lead the app elsewhere on disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class PathOutsideRoots(PermissionError):
    """The path resolves outside every allowed root."""


def resolve_within(path: str | Path, roots: Iterable[str | Path], *, name_roots: bool = True) -> Path:
    """Return ``path`` resolved, or raise :class:`PathOutsideRoots` (naming the roots unless told not to).

    Relative paths are taken relative to the first root. Roots themselves are resolved, so a
    relative runs root is interpreted against the current working directory exactly once.
    """
    root_list = [Path(r).expanduser().resolve() for r in roots]
    if not root_list:
        raise PathOutsideRoots("no runs root is configured (set VLMLAB_RUNS_ROOT)")
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = root_list[0] / candidate
    resolved = candidate.resolve()
    for root in root_list:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    shown = f" ({', '.join(str(r) for r in root_list)})" if name_roots else ""
    raise PathOutsideRoots(f"{Path(path).name or path} is outside the runs root{shown}")


def is_within(path: str | Path, roots: Iterable[str | Path]) -> bool:
    try:
        resolve_within(path, roots)
    except PathOutsideRoots:
        return False
    return True
