"""Find and describe the checkpoints of a Hugging Face ``Trainer`` run directory.

Everything here only looks at file names, sizes, mtimes and small JSON files: describing a
checkpoint must never load weights (and never unpickle anything), so a run with hundreds of
multi-GB checkpoints can be listed in milliseconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dashboard.runs.files import RunFileError, confine, read_json
from dashboard.runs.load_plan import ADAPTER_WEIGHTS, MODEL_WEIGHTS, WeightFormat, plan_checkpoint

CHECKPOINT_RE = re.compile(r"^checkpoint-([0-9]{1,19})$")
"""ASCII digits only (``\\d`` also matches ``٣٤٥``), at most 19 of them: the step must fit an int64."""
MAX_STEP = 2**63 - 1
OWN_WEIGHTS = tuple(n for w in (MODEL_WEIGHTS, ADAPTER_WEIGHTS) for n in (w.single, w.index, w.pickle_single,
                                                                          w.pickle_index))
"""The weight names the loader reads (:mod:`dashboard.runs.load_plan`): one rule for listing and loading."""
MODEL_MARKERS = ("config.json", "adapter_config.json", *OWN_WEIGHTS)


@dataclass(frozen=True)
class CheckpointInfo:
    """What the dashboard needs to know about one checkpoint folder before loading it."""

    name: str
    path: Path
    step: int | None
    size_bytes: int
    modified: datetime
    weight_format: WeightFormat
    is_adapter: bool
    model_type: str | None
    problems: tuple[str, ...] = ()
    missing_files: tuple[str, ...] = ()
    """Files the folder promises (shards listed in an index) but lacks."""
    plan_loadable: bool = False
    """:attr:`dashboard.runs.load_plan.LoadPlan.loadable` of the folder's load plan."""

    @property
    def loadable(self) -> bool:
        """The loader's own verdict (:class:`~dashboard.runs.load_plan.LoadPlan`): weights complete, every
        file a load reads passes the walls, a config (or an adapter's local base) to build from.

        ``pickle`` checkpoints count as loadable here; whether pickles are allowed is the
        model pool's decision (``Settings.allow_pickle``).
        """
        return self.plan_loadable


def checkpoint_step(name: str) -> int | None:
    """``checkpoint-1200`` -> 1200; anything else -> None."""
    match = CHECKPOINT_RE.fullmatch(name)
    if not match:
        return None
    step = int(match.group(1))
    return step if step <= MAX_STEP else None


def is_model_folder(path: Path) -> bool:
    """A folder that holds a model (config or weights) directly, e.g. a final ``save_model`` output."""
    return any((path / marker).is_file() for marker in MODEL_MARKERS)


def has_own_weights(path: Path) -> bool:
    """Weight files the loader would read directly in ``path`` (not a Git LFS pointer, not a bare config)."""
    plan = plan_checkpoint(path, [path])
    return bool(plan.weight_files)


def _read_json(path: Path, roots: Sequence[Path] | None = None) -> tuple[dict | None, str | None]:
    """Read a small JSON object through the run-file opener; return (data, problem) instead of raising."""
    try:
        data = read_json(path, roots or [path.parent])
    except RunFileError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{path.name}: cannot read ({exc.strerror or type(exc).__name__})"
    if not isinstance(data, dict):
        return None, f"{path.name}: expected a JSON object, got {type(data).__name__}"
    return data, None


def _folder_size_and_mtime(path: Path, problems: list[str], recursive: bool = True) -> tuple[int, float]:
    """Sum of file sizes and newest file mtime (the save time) below ``path``."""
    total, newest = 0, 0.0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError as exc:
            problems.append(f"cannot list {current.name}/ ({exc.strerror or exc})")
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append(Path(entry.path))
                    continue
                st = entry.stat()
            except OSError as exc:
                problems.append(f"cannot stat {entry.name} ({exc.strerror or exc})")
                continue
            total += st.st_size
            newest = max(newest, st.st_mtime)
    if newest == 0.0:
        try:
            newest = path.stat().st_mtime
        except OSError:
            newest = 0.0
    return total, newest


def inspect_checkpoint(path: Path, name: str | None = None, step: int | None = None,
                       roots: Sequence[Path] | None = None) -> CheckpointInfo:
    """Describe one model folder from its :func:`~dashboard.runs.load_plan.plan_checkpoint` (the loader's
    own plan, so "loadable" here means the loader will try); nothing raises for bad contents.

    ``roots`` confine every file read (default: the folder's parent, i.e. its run).
    """
    path = Path(path)
    name = name or path.name
    roots = list(roots) if roots else [path.parent]
    problems: list[str] = []
    # A run root that is also a model folder holds the checkpoints: count only its own files.
    size, mtime = _folder_size_and_mtime(path, problems, recursive=checkpoint_step(path.name) is not None
                                         or not checkpoint_dirs(path))
    plan = plan_checkpoint(path, roots)
    problems.extend(plan.problems)
    if plan.base is not None:
        problems.extend(f"base model {plan.base.path.name}: {p}" for p in plan.base.problems)
    if plan.weight_format == "pickle":
        problems.append("only pickle (.bin) weights; loading them needs allow_pickle (weights_only=True)")
    return CheckpointInfo(
        name=name, path=path, step=step if step is not None else checkpoint_step(name), size_bytes=size,
        modified=datetime.fromtimestamp(mtime, tz=timezone.utc), weight_format=plan.weight_format,
        is_adapter=plan.is_adapter, model_type=plan.model_type, problems=tuple(problems),
        missing_files=plan.missing_files, plan_loadable=plan.loadable,
    )


def checkpoint_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """``checkpoint-<step>`` sub-folders as (step, path), sorted numerically (100 < 1000)."""
    found: list[tuple[int, Path]] = []
    try:
        with os.scandir(run_dir) as it:
            for entry in it:
                step = checkpoint_step(entry.name)
                if step is not None and entry.is_dir():
                    found.append((step, Path(entry.path)))
    except OSError:
        return []
    found.sort(key=lambda item: (item[0], item[1].name))
    return found


def _root_model_step(run_dir: Path, roots: Sequence[Path]) -> int | None:
    """For a run dir that is itself a model folder: its global_step, when a trainer_state says so."""
    state_path = run_dir / "trainer_state.json"
    state, _ = _read_json(state_path, roots) if state_path.is_file() else (None, None)
    step = state.get("global_step") if state else None
    return step if isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= MAX_STEP else None


def root_is_checkpoint(run_dir: Path) -> bool:
    """Whether the run folder itself counts as a checkpoint.

    A folder that is only a model (no ``checkpoint-*`` beside it) always does. Next to
    ``checkpoint-*`` folders it counts only with weights of its own: a LoRA run root holding
    just ``adapter_config.json`` (PEFT writes it there) is not one more checkpoint.
    """
    if not is_model_folder(run_dir):
        return False
    return not checkpoint_dirs(run_dir) or has_own_weights(run_dir)


def _outside(info: CheckpointInfo, roots: Sequence[Path]) -> CheckpointInfo | None:
    """A checkpoint folder that resolves outside the roots, marked unloadable (None when inside)."""
    try:
        confine(info.path, roots)
        return None
    except RunFileError:
        return CheckpointInfo(name=info.name, path=info.path, step=info.step, size_bytes=0,
                              modified=datetime.fromtimestamp(0, tz=timezone.utc), weight_format="none",
                              is_adapter=False, model_type=None,
                              problems=("links outside the runs root; not read",))


def discover_checkpoints(run_dir: Path, roots: Sequence[Path] | None = None) -> list[CheckpointInfo]:
    """All checkpoints of a run, in numeric step order.

    A run directory that is itself a model folder (a ``save_model`` output, with or without
    ``checkpoint-*`` folders beside it, see :func:`root_is_checkpoint`) counts as one more
    checkpoint, named after the folder, with the step from its ``trainer_state.json`` if any; it
    sorts after checkpoints of equal step. A ``checkpoint-N`` that links outside ``roots``
    (default: the run folder) is listed as unloadable and never read.
    """
    run_dir = Path(run_dir)
    roots = list(roots) if roots else [run_dir]
    found: list[CheckpointInfo] = []
    for step, path in checkpoint_dirs(run_dir):
        stub = CheckpointInfo(name=path.name, path=path, step=step, size_bytes=0,
                              modified=datetime.fromtimestamp(0, tz=timezone.utc), weight_format="none",
                              is_adapter=False, model_type=None)
        found.append(_outside(stub, roots) or inspect_checkpoint(path, step=step, roots=roots))
    if run_dir.is_dir() and root_is_checkpoint(run_dir):
        found.append(inspect_checkpoint(run_dir, name=run_dir.name, step=_root_model_step(run_dir, roots),
                                        roots=roots))
        found.sort(key=lambda c: (c.step is None, c.step or 0, c.path != run_dir))
    return found
