"""Load a whole run directory: checkpoints, metrics (trainer_state + TensorBoard) and problems.

Only a path outside the configured roots or a missing run directory raises; everything else
(broken JSON, NaN values, unreadable files, folders without weights) becomes a specific line in
``RunData.problems`` and the rest of the run still loads. Parsed log files are memoised by
(path, mtime, size), so reloading a live run re-reads only the files that changed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard.caching import file_memo
from dashboard.paths import is_within, resolve_within
from dashboard.runs.checkpoints import (
    CheckpointInfo,
    checkpoint_dirs,
    checkpoint_step,
    discover_checkpoints,
    is_model_folder,
)
from dashboard.runs.column_cache import cached_scan
from dashboard.runs.files import excerpt
from dashboard.runs.hparams import build_configuration, empty_configuration
from dashboard.runs.metrics import concat_metrics, empty_metrics, empty_series, preferred_source, state_series
from dashboard.runs.tensorboard import EventFileData, assemble, find_event_files, folder_of
from dashboard.runs.trainer_state import ParsedState, TrainerStateSummary, read_trainer_state

__all__ = ["RunData", "RunListing", "RunNotFoundError", "TrainerStateSummary", "list_runs", "load_run",
           "run_signature"]

STATE_FILE = "trainer_state.json"


class RunNotFoundError(FileNotFoundError):
    """The run directory does not exist (or is not a directory)."""


@dataclass
class RunData:
    path: Path
    name: str
    checkpoints: list[CheckpointInfo]
    metrics: pd.DataFrame
    state: TrainerStateSummary | None
    problems: list[str] = field(default_factory=list)
    state_file: Path | None = None
    """Which ``trainer_state.json`` the metrics came from."""
    series: pd.DataFrame = field(default_factory=empty_series)
    """One row per metric: its (event folder, tag), chart group and kind (see ``metrics.SERIES_COLUMNS``)."""
    hparam_metrics: pd.DataFrame | None = None
    """``add_hparams`` results (folder, tag, step, wall_time, value): per session, not training curves."""
    config: pd.DataFrame = field(default_factory=empty_configuration)
    """The run's configuration (key, value, source), see :mod:`dashboard.runs.hparams`."""
    texts: pd.DataFrame | None = None
    """Text summaries (folder, tag, step, wall_time, text), e.g. sample generations per eval step."""
    other_summaries: pd.DataFrame | None = None
    """Summaries present but not plotted (folder, tag, kind, count): images, histograms, audio, …"""

    @cached_property
    def preferred_metrics(self) -> pd.DataFrame:
        """The metrics with one source per metric (see ``preferred_source``), computed once per load.

        A ``RunData`` is immutable once loaded and is replaced when the run's files change, so
        this lives (and is dropped) with it; every Timeline rerun needs it several times.
        """
        return preferred_source(self.metrics, self.series)

    def checkpoint(self, name_or_step: str | int | Path) -> CheckpointInfo | None:
        """Look a checkpoint up by folder name, path, or step (``checkpoint-N`` folders win ties)."""
        if isinstance(name_or_step, (int, np.integer)) and not isinstance(name_or_step, bool):
            matches = [c for c in self.checkpoints if c.step == int(name_or_step)]
            return matches[0] if matches else None
        text = str(name_or_step).replace("\\", "/").rstrip("/")
        name = text.rsplit("/", 1)[-1]
        for c in self.checkpoints:
            if c.name == name or str(c.path) == text:
                return c
        return None

    @property
    def loadable_checkpoints(self) -> list[CheckpointInfo]:
        """Checkpoints a page may offer to load: inside the runs root(s) and with weights."""
        return [c for c in self.checkpoints if c.loadable]

    @property
    def lfs_pointers(self) -> bool:
        """Files of this run are Git LFS pointers (a ``git clone`` without ``git lfs pull``)."""
        return any("Git LFS pointer" in p for p in self.problems)

    def why_not_loadable(self) -> str | None:
        """Why no checkpoint of this run can be loaded, naming the run and the reason; None if one can."""
        if any(c.loadable for c in self.checkpoints):
            return None
        if self.lfs_pointers:
            reason = "its weights are Git LFS pointers — run `git lfs pull`"
        elif not self.checkpoints:
            reason = "it has no checkpoint folders with model weights"
        else:
            reasons = sorted({p for c in self.checkpoints for p in c.problems}) or ["no weights"]
            reason = "; ".join(reasons[:3]) + ("…" if len(reasons) > 3 else "")
        return f"Run {self.name} has no loadable checkpoint: {reason}"

    @property
    def best_checkpoint(self) -> CheckpointInfo | None:
        """The local checkpoint ``best_model_checkpoint`` names (mapped by folder name)."""
        if self.state is None:
            return None
        if self.state.best_checkpoint_name:
            found = self.checkpoint(self.state.best_checkpoint_name)
            if found:
                return found
        return self.checkpoint(self.state.best_global_step) if self.state.best_global_step is not None else None


@dataclass(frozen=True)
class RunListing:
    name: str
    path: Path
    n_checkpoints: int
    modified: datetime


# ---------------------------------------------------------------- memoised file parsers
# Keyed by (path, mtime_ns, size): reloading a live run re-parses only the files that changed
# (see dashboard/caching.py for the caching policy and how Streamlit clears these).
parse_state_file = file_memo("trainer_state", maxsize=16)(read_trainer_state)


def _data_dir() -> Path | None:
    """Where the event-file column cache lives (``VLMLAB_DATA_DIR``); None if settings are broken."""
    from dashboard.config import load_settings

    try:
        return load_settings().data_dir
    except Exception:  # a bad VLMLAB_* value is reported by the pages; reading still works uncached
        return None


@file_memo("event_file", maxsize=16)
def parse_event_file(path: Path) -> EventFileData:
    """One event file's summaries, through the Parquet column cache when the file is large."""
    return cached_scan(path, _data_dir())


# ---------------------------------------------------------------- run loading
def _stat_mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


def state_file_candidates(run_dir: Path) -> list[Path]:
    """``trainer_state.json`` files, newest first: root and highest checkpoint's ordered by mtime,
    then the other checkpoints' (fallbacks when the newer ones are broken)."""
    root = run_dir / STATE_FILE
    in_ckpts = [p / STATE_FILE for _, p in reversed(checkpoint_dirs(run_dir)) if (p / STATE_FILE).is_file()]
    head = [p for p in (root, *in_ckpts[:1]) if p.is_file()]
    head.sort(key=_stat_mtime, reverse=True)
    return head + in_ckpts[1:]


def _load_state(run_dir: Path, problems: list[str],
                roots: tuple[Path, ...]) -> tuple[ParsedState | None, Path | None]:
    for i, candidate in enumerate(state_file_candidates(run_dir)):
        parsed = parse_state_file(candidate, roots)
        rel = candidate.relative_to(run_dir)
        broken = not parsed.readable
        for problem in parsed.problems:
            for prefix in (f"{candidate}: ", f"{STATE_FILE}: "):
                problem = problem.removeprefix(prefix)
            problems.append(f"{rel}: {problem}")
        if broken:
            continue
        if i:
            problems.append(f"using {rel} (newer trainer_state.json files could not be read)")
        return parsed, candidate
    return None, None


def _attach_wall_time(state_metrics: pd.DataFrame, tb_metrics: pd.DataFrame) -> pd.DataFrame:
    """trainer_state has no timestamps: borrow TensorBoard's wall time at the same step."""
    if state_metrics.empty or tb_metrics.empty:
        return state_metrics
    by_step = tb_metrics.groupby("step", sort=True)["wall_time"].min()
    steps = by_step.index.to_numpy()
    pos = np.searchsorted(steps, state_metrics["step"].to_numpy())
    pos_c = np.clip(pos, 0, len(steps) - 1)
    hit = steps[pos_c] == state_metrics["step"].to_numpy()
    wall = np.where(hit, by_step.to_numpy()[pos_c], np.nan)
    out = state_metrics.copy()
    out["wall_time"] = wall
    return out


def load_run(run_dir: Path, roots: Sequence[Path]) -> RunData:
    """Load a run for display. Raises only ``PathOutsideRoots`` and :class:`RunNotFoundError`."""
    path = resolve_within(run_dir, roots)
    if not path.is_dir():
        raise RunNotFoundError(f"run directory not found: {path}")
    problems: list[str] = []
    checkpoints = []
    root_paths = tuple(Path(r).expanduser().resolve() for r in roots)
    for c in discover_checkpoints(path, root_paths):
        problems.extend(f"{c.name}: {p}" for p in c.problems)
        if not is_within(c.path, roots):  # a checkpoint-N symlink pointing outside the runs root(s)
            continue
        checkpoints.append(c)
    parsed, state_file = _load_state(path, problems, root_paths)
    state_metrics = parsed.metrics if parsed else empty_metrics()
    tb = assemble([(folder_of(f, path), f.name, parse_event_file(f)) for f in find_event_files(path)])
    problems.extend(tb.problems)
    tb_metrics = tb.metrics
    frames = [_attach_wall_time(state_metrics, tb_metrics), tb_metrics]
    metrics = concat_metrics(frames)
    series = pd.concat([state_series(state_metrics), tb.series], ignore_index=True)
    summary = parsed.summary if parsed else None
    config = build_configuration(path, summary.config if summary else None, tb.hparams, tb.texts, problems)
    if summary and summary.best_checkpoint_name:
        names = {c.name for c in checkpoints}
        if summary.best_checkpoint_name not in names:
            fallback = (f"; using best_global_step {summary.best_global_step}"
                        if summary.best_global_step is not None and any(c.step == summary.best_global_step
                                                                        for c in checkpoints) else "")
            problems.append(f"best_model_checkpoint {excerpt(summary.best_model_checkpoint, 60)!r}: no folder "
                            f"{excerpt(summary.best_checkpoint_name)} in this run{fallback}")
    if not checkpoints and metrics.empty and parsed is None:
        problems.append("no checkpoints, no trainer_state.json and no TensorBoard events found here")
    return RunData(path=path, name=path.name, checkpoints=checkpoints, metrics=metrics, state=summary,
                   problems=problems, state_file=state_file, series=series, hparam_metrics=tb.hparam_metrics,
                   config=config, texts=tb.texts, other_summaries=tb.others)


# ---------------------------------------------------------------- listing and change detection
def looks_like_run(path: Path) -> bool:
    """A folder with checkpoints, a trainer_state.json, event files, or model files of its own."""
    if checkpoint_dirs(path) or (path / STATE_FILE).is_file() or is_model_folder(path):
        return True
    return bool(find_event_files(path, max_depth=2))


def list_runs(root: Path) -> list[RunListing]:
    """Run directories directly under ``root``, by name; just ``root`` when it is itself a run."""
    root = Path(root)
    listings: list[RunListing] = []
    candidates: list[Path] = []
    if root.is_dir() and (checkpoint_dirs(root) or (root / STATE_FILE).is_file()):
        candidates.append(root)  # the root is itself a run: its sub-folders are parts of it
    else:
        try:
            with os.scandir(root) as it:
                subdirs = sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))
        except OSError:
            subdirs = []
        candidates += [d for d in subdirs if checkpoint_step(d.name) is None]
    for candidate in candidates:
        try:
            if not looks_like_run(candidate):
                continue
            n = len(checkpoint_dirs(candidate)) or (1 if is_model_folder(candidate) else 0)
            modified = max([_stat_mtime(candidate), *(_stat_mtime(p) for _, p in checkpoint_dirs(candidate)[-1:]),
                            _stat_mtime(candidate / STATE_FILE)])
        except OSError:
            continue
        listings.append(RunListing(name=candidate.name, path=candidate, n_checkpoints=n,
                                   modified=datetime.fromtimestamp(max(modified, 0), tz=timezone.utc)))
    return listings


def run_signature(run_dir: Path) -> tuple:
    """Cheap change detector: names/mtimes/sizes of checkpoints, state files and event files."""
    run_dir = Path(run_dir)
    parts: list[tuple] = []

    def add(p: Path) -> None:
        try:
            st = p.stat()
            parts.append((str(p.relative_to(run_dir)), st.st_mtime_ns, st.st_size))
        except (OSError, ValueError):
            pass

    add(run_dir / STATE_FILE)
    for _, ckpt in checkpoint_dirs(run_dir):
        add(ckpt)
        add(ckpt / STATE_FILE)
    for event_file in find_event_files(run_dir):
        add(event_file)
    for name in ("config.json", "model.safetensors", "adapter_config.json"):
        add(run_dir / name)
    return (str(run_dir), *parts)
