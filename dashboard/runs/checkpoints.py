"""Find and describe the checkpoints of a Hugging Face ``Trainer`` run directory.

Everything here only looks at file names, sizes, mtimes and small JSON files: describing a
checkpoint must never load weights (and never unpickle anything), so a run with hundreds of
multi-GB checkpoints can be listed in milliseconds.
"""

from __future__ import annotations

__all__ = ["CHECKPOINT_RE", "MAX_STEP", "CheckpointInfo", "CheckpointSelection", "checkpoint_dirs",
           "checkpoint_step", "discover_checkpoints", "inspect_checkpoint", "is_model_folder",
           "listed_checkpoint_dirs", "root_is_checkpoint"]

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dashboard.runs.files import RunFileError, confine, read_json
from dashboard.runs.listing import CHECKPOINT_RE, MAX_STEP, checkpoint_step, summary
from dashboard.runs.load_plan import ADAPTER_WEIGHTS, MODEL_WEIGHTS, WeightFormat, plan_checkpoint

MAX_LISTED_CHECKPOINTS = 500
"""Checkpoints inspected and listed per run; beyond it an evenly spaced subset (first, last and
best always in) is shown with a message, so a run with 100,000 folders stays cheap to open."""
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


def is_model_folder(path: Path) -> bool:
    """A folder that holds a model (config or weights) directly, e.g. a final ``save_model`` output."""
    found = summary(path)  # cached by the folder's mtime (dashboard.runs.listing)
    return any(found.has_file(marker) for marker in MODEL_MARKERS)


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
                                         or not summary(path).checkpoints)
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
    """``checkpoint-<step>`` sub-folders as (step, path), sorted numerically (100 < 1000).

    All of them (memoised per directory change, see :mod:`dashboard.runs.listing`); what a page
    lists is :func:`listed_checkpoint_dirs`.
    """
    run_dir = Path(run_dir)
    return [(step, run_dir / name) for step, name in summary(run_dir).checkpoints]


@dataclass(frozen=True)
class CheckpointSelection:
    """The checkpoint folders a run lists, and how many it has in all."""

    dirs: list[tuple[int, Path]]
    total: int

    @property
    def capped(self) -> bool:
        return len(self.dirs) < self.total

    @property
    def message(self) -> str | None:
        if not self.capped:
            return None
        return (f"{self.total:,} checkpoint folders; listing {len(self.dirs):,} of them (evenly spaced by step, "
                f"first, last and best included) to keep the run fast to open")


def listed_checkpoint_dirs(run_dir: Path, keep_steps: Sequence[int] = (),
                           cap: int = MAX_LISTED_CHECKPOINTS) -> CheckpointSelection:
    """At most ``cap`` checkpoint folders: all when there are few, else an evenly spaced subset
    that always holds the first, the last and every step in ``keep_steps`` that exists."""
    run_dir = Path(run_dir)
    every = summary(run_dir).checkpoints  # (step, name): paths are made for the listed ones only
    if len(every) <= cap:
        return CheckpointSelection([(step, run_dir / name) for step, name in every], len(every))
    wanted = set(keep_steps)
    kept = {i for i, (step, _) in enumerate(every) if step in wanted} if wanted else set()
    last = len(every) - 1
    spaced = {round(k * last / (cap - len(kept) - 1)) for k in range(cap - len(kept))} if cap > len(kept) + 1 \
        else {0, last}
    return CheckpointSelection([(every[i][0], run_dir / every[i][1]) for i in sorted(spaced | kept)], len(every))


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
    return not summary(run_dir).checkpoints or has_own_weights(run_dir)


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


def discover_checkpoints(run_dir: Path, roots: Sequence[Path] | None = None,
                         selection: CheckpointSelection | None = None) -> list[CheckpointInfo]:
    """All checkpoints of a run, in numeric step order.

    A run directory that is itself a model folder (a ``save_model`` output, with or without
    ``checkpoint-*`` folders beside it, see :func:`root_is_checkpoint`) counts as one more
    checkpoint, named after the folder, with the step from its ``trainer_state.json`` if any; it
    sorts after checkpoints of equal step. A ``checkpoint-N`` that links outside ``roots``
    (default: the run folder) is listed as unloadable and never read. Only the folders of
    ``selection`` (default: :func:`listed_checkpoint_dirs`) are inspected.
    """
    run_dir = Path(run_dir)
    roots = list(roots) if roots else [run_dir]
    found: list[CheckpointInfo] = []
    selection = selection or listed_checkpoint_dirs(run_dir)
    for step, path in selection.dirs:
        stub = CheckpointInfo(name=path.name, path=path, step=step, size_bytes=0,
                              modified=datetime.fromtimestamp(0, tz=timezone.utc), weight_format="none",
                              is_adapter=False, model_type=None)
        found.append(_outside(stub, roots) or inspect_checkpoint(path, step=step, roots=roots))
    if run_dir.is_dir() and root_is_checkpoint(run_dir):
        found.append(inspect_checkpoint(run_dir, name=run_dir.name, step=_root_model_step(run_dir, roots),
                                        roots=roots))
        found.sort(key=lambda c: (c.step is None, c.step or 0, c.path != run_dir))
    return found
