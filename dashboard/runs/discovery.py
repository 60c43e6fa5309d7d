"""Find the runs below a runs root at any depth, and name them by their path relative to it.

Training folders come as ``output_dir/<project>/<run>/checkpoint-N`` as often as
``output_dir/<run>``, so a run is any folder that *looks like one* (see :func:`looks_like_run`),
found at any depth up to :data:`MAX_RUN_DEPTH` and named like ``projA/run1``. The walk never
descends into a run (a run's ``checkpoint-N`` and log folders are parts of it), skips hidden and
symlinked folders, and stops after :data:`MAX_FOLDERS_WALKED` folders with a message. Every
folder's listing is memoised per change (:mod:`dashboard.runs.listing`), so listing 500 runs on
a rerun costs a few ``stat`` calls per run.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from dashboard.paths import is_within
from dashboard.runs.listing import DirSummary, summary

MAX_RUN_DEPTH = 6
"""Folders below the root a run may sit (``projA/run1`` is depth 2)."""
MAX_FOLDERS_WALKED = 20_000
MAX_NAME_CHARS = 400
STATE_FILE = "trainer_state.json"
RUN_FILES = (STATE_FILE, "trainer_log.jsonl", "all_results.json", "train_results.json", "eval_results.json")
"""Files only a training run writes into its output folder (HF Trainer, example scripts, LLaMA-Factory)."""
MODEL_FILES = ("config.json", "adapter_config.json", "model.safetensors", "adapter_model.safetensors",
               "model.safetensors.index.json", "adapter_model.safetensors.index.json", "pytorch_model.bin",
               "adapter_model.bin", "pytorch_model.bin.index.json")
LOG_DIR = "runs"
"""HF ``TrainingArguments.logging_dir`` default: ``<output_dir>/runs/<date>_<host>/``."""


@dataclass(frozen=True)
class RunListing:
    name: str
    """Path relative to the runs root, POSIX-style (``projA/run1``); the root's own name if it is the run."""
    path: Path
    n_checkpoints: int
    modified: datetime


@dataclass(frozen=True)
class RunDiscovery:
    runs: list[RunListing]
    problems: list[str] = field(default_factory=list)


def _has_hf_logs(folder: Path, found: DirSummary) -> bool:
    """Event files in ``runs/`` or ``runs/<date>/`` (where the Trainer's TensorBoard callback writes)."""
    if LOG_DIR not in found.subdirs:
        return False
    logs = summary(folder / LOG_DIR)
    return bool(logs.event_files) or any(summary(folder / LOG_DIR / d).event_files for d in logs.subdirs[:50])


def _looks_like_run(folder: Path, found: DirSummary) -> bool:
    return bool(found.checkpoints or found.event_files or found.safetensors
                or any(found.has_file(f) for f in RUN_FILES + MODEL_FILES) or _has_hf_logs(folder, found))


def looks_like_run(path: Path) -> bool:
    """A folder with checkpoints, run files (trainer_state, results, logs), event files or model files."""
    return _looks_like_run(Path(path), summary(path))


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _listing(folder: Path, name: str, found: DirSummary) -> RunListing:
    n = len(found.checkpoints) or (1 if any(found.has_file(f) for f in MODEL_FILES) or found.safetensors else 0)
    newest = [found.mtime, _mtime(folder / STATE_FILE)]
    if found.checkpoints:
        newest.append(_mtime(folder / found.checkpoints[-1][1]))
    return RunListing(name=name, path=folder, n_checkpoints=n,
                      modified=datetime.fromtimestamp(max(max(newest), 0), tz=timezone.utc))


def discover_runs(root: Path, max_depth: int = MAX_RUN_DEPTH,
                  max_folders: int = MAX_FOLDERS_WALKED) -> RunDiscovery:
    """Runs below ``root`` in name order; just ``root`` when it is itself a run."""
    root = Path(root)
    top = summary(root)
    if _looks_like_run(root, top):
        return RunDiscovery([_listing(root, root.name, top)])
    runs: list[RunListing] = []
    problems: list[str] = []
    queue: deque[tuple[Path, PurePosixPath, int]] = deque([(root, PurePosixPath(), 0)])
    walked = 0
    while queue:
        folder, rel, depth = queue.popleft()
        for sub in summary(folder).subdirs:
            walked += 1
            if walked > max_folders:
                problems.append(f"stopped looking for runs after {max_folders:,} folders; runs deeper or later "
                                "in name order are not listed (point the runs root at a smaller folder)")
                queue.clear()
                break
            path, name = folder / sub, rel / sub
            found = summary(path)
            if _looks_like_run(path, found):
                runs.append(_listing(path, name.as_posix(), found))
            elif depth + 1 < max_depth:
                queue.append((path, name, depth + 1))
    runs.sort(key=lambda r: r.name)
    return RunDiscovery(runs, problems)


def discover_within(root: Path, roots: Sequence[Path]) -> RunDiscovery:
    """:func:`discover_runs` for a root that must itself lie inside ``roots`` (else nothing).

    Every run found is then inside too, without resolving each one: the walk never follows a
    symlinked folder, so it cannot leave the root (loads still resolve their path, see
    ``dashboard.paths``).
    """
    if not is_within(root, roots):
        return RunDiscovery([], [f"{root} is outside the runs root(s)"])
    return discover_runs(root)


def list_runs(root: Path) -> list[RunListing]:
    """The runs of :func:`discover_runs`, without its problems."""
    return discover_runs(root).runs


def valid_run_name(name: str | None) -> str | None:
    """``name`` if it can be a run's relative name: no ``..``/``.``/empty parts, not absolute, no
    backslash or NUL, not absurdly long (a URL or CLI value is never a way out of the root)."""
    if not name or len(name) > MAX_NAME_CHARS or "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return name


def find_run(name: str | None, roots: Sequence[Path]) -> Path | None:
    """The run called ``name`` (as listed) under one of ``roots``, resolved and inside them; else None.

    Looked up among the discovered runs, never by joining the name to a root and opening it.
    """
    plain = valid_run_name(name)
    if plain is None:
        return None
    for root in roots:
        for listing in list_runs(Path(root)):
            if listing.name == plain and is_within(listing.path, roots):
                return listing.path.resolve()
    return None


def run_name(path: Path, roots: Sequence[Path]) -> str:
    """A run folder's name as listed: its path relative to the root holding it (POSIX-style)."""
    resolved = Path(path).resolve()
    for root in roots:
        base = Path(root).expanduser().resolve()
        if resolved == base:
            return base.name
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix()
    return resolved.name


def resolve_run_arg(value: str, roots: Sequence[Path]) -> Path:
    """A CLI ``--run``: an existing folder path as given, else a run name under the runs root(s)."""
    given = Path(value).expanduser()
    if given.is_dir():
        return given
    found = find_run(value, roots)
    return found if found is not None else given


__all__ = ["MAX_RUN_DEPTH", "RunDiscovery", "RunListing", "discover_runs", "discover_within", "find_run", "list_runs",
           "looks_like_run", "resolve_run_arg", "run_name", "valid_run_name"]
