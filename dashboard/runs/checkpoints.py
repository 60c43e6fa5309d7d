"""Find and describe the checkpoints of a Hugging Face ``Trainer`` run directory.

Everything here only looks at file names, sizes, mtimes and small JSON files: describing a
checkpoint must never load weights (and never unpickle anything), so a run with hundreds of
multi-GB checkpoints can be listed in milliseconds.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

WeightFormat = Literal["safetensors", "sharded-safetensors", "pickle", "none"]

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
SAFETENSORS_INDEXES = ("model.safetensors.index.json", "adapter_model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "adapter_model.bin", "pytorch_model.bin.index.json")
MODEL_MARKERS = ("config.json", "adapter_config.json", "model.safetensors", "adapter_model.safetensors",
                 *SAFETENSORS_INDEXES, *PICKLE_WEIGHTS)


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

    @property
    def loadable(self) -> bool:
        """Weights present and complete, and a config (or adapter config) to build the model from.

        ``pickle`` checkpoints count as loadable here; whether pickles are allowed is the
        model pool's decision (``Settings.allow_pickle``).
        """
        return (self.weight_format != "none" and not self.missing_files
                and (self.model_type is not None or self.is_adapter))


def checkpoint_step(name: str) -> int | None:
    """``checkpoint-1200`` -> 1200; anything else -> None."""
    match = CHECKPOINT_RE.match(name)
    return int(match.group(1)) if match else None


def is_model_folder(path: Path) -> bool:
    """A folder that holds a model (config or weights) directly, e.g. a final ``save_model`` output."""
    return any((path / marker).is_file() for marker in MODEL_MARKERS) or any(path.glob("*.safetensors"))


def _read_json(path: Path) -> tuple[dict | None, str | None]:
    """Read a small JSON object; return (data, problem) instead of raising."""
    try:
        with path.open("rb") as fh:
            data = json.load(fh)
    except OSError as exc:
        return None, f"{path.name}: cannot read ({exc.strerror or exc})"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"{path.name}: not valid JSON ({exc})"
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


def _weight_format(path: Path, problems: list[str]) -> tuple[WeightFormat, tuple[str, ...]]:
    """Classify the weights present; list shards an index names but the folder lacks."""
    for index_name in SAFETENSORS_INDEXES:
        index_path = path / index_name
        if index_path.is_file():
            data, problem = _read_json(index_path)
            if problem or data is None:
                problems.append(problem or f"{index_name}: empty")
                return "sharded-safetensors", (index_name,)
            weight_map = data.get("weight_map")
            if not isinstance(weight_map, dict):
                problems.append(f"{index_name}: no 'weight_map' object")
                return "sharded-safetensors", (index_name,)
            shards = sorted({str(v) for v in weight_map.values()})
            missing = tuple(s for s in shards if not (path / s).is_file())
            if missing:
                problems.append(f"{index_name}: {len(missing)} of {len(shards)} shard(s) missing: "
                                + ", ".join(missing[:3]) + ("…" if len(missing) > 3 else ""))
            return "sharded-safetensors", missing
    if any(path.glob("*.safetensors")):
        return "safetensors", ()
    if any((path / name).is_file() for name in PICKLE_WEIGHTS):
        problems.append("only pickle (.bin) weights; loading them needs allow_pickle (weights_only=True)")
        return "pickle", ()
    problems.append("no weight files (no *.safetensors, no pytorch_model.bin)")
    return "none", ()


def inspect_checkpoint(path: Path, name: str | None = None, step: int | None = None) -> CheckpointInfo:
    """Describe one model folder; every problem is recorded, nothing raises for bad contents."""
    path = Path(path)
    name = name or path.name
    problems: list[str] = []
    # A run root that is also a model folder holds the checkpoints: count only its own files.
    size, mtime = _folder_size_and_mtime(path, problems, recursive=checkpoint_step(path.name) is not None
                                         or not checkpoint_dirs(path))
    weight_format, missing = _weight_format(path, problems)
    is_adapter = (path / "adapter_config.json").is_file()
    model_type: str | None = None
    config_path = path / "config.json"
    if config_path.is_file():
        config, problem = _read_json(config_path)
        if problem:
            problems.append(problem)
        elif config is not None and isinstance(config.get("model_type"), str):
            model_type = config["model_type"]
        else:
            problems.append("config.json: no 'model_type'")
    elif is_adapter:
        _, problem = _read_json(path / "adapter_config.json")
        if problem:
            problems.append(problem)
    else:
        problems.append("no config.json")
    return CheckpointInfo(
        name=name, path=path, step=step if step is not None else checkpoint_step(name), size_bytes=size,
        modified=datetime.fromtimestamp(mtime, tz=timezone.utc), weight_format=weight_format,
        is_adapter=is_adapter, model_type=model_type, problems=tuple(problems), missing_files=missing,
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


def _root_model_step(run_dir: Path) -> int | None:
    """For a run dir that is itself a model folder: its global_step, when a trainer_state says so."""
    state_path = run_dir / "trainer_state.json"
    state, _ = _read_json(state_path) if state_path.is_file() else (None, None)
    step = state.get("global_step") if state else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def discover_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """All checkpoints of a run, in numeric step order.

    A run directory that is itself a model folder (a ``save_model`` output, with or without
    ``checkpoint-*`` folders beside it) counts as one more checkpoint, named after the folder,
    with the step from its ``trainer_state.json`` if any; it sorts after checkpoints of equal step.
    """
    run_dir = Path(run_dir)
    found = [inspect_checkpoint(path, step=step) for step, path in checkpoint_dirs(run_dir)]
    if run_dir.is_dir() and is_model_folder(run_dir):
        found.append(inspect_checkpoint(run_dir, name=run_dir.name, step=_root_model_step(run_dir)))
        found.sort(key=lambda c: (c.step is None, c.step or 0, c.path != run_dir))
    return found
