"""Load a whole run directory: checkpoints, metrics (trainer_state + TensorBoard) and problems.

Only a path outside the configured roots or a missing run directory raises; everything else
(broken JSON, NaN values, unreadable files, folders without weights) becomes a specific line in
``RunData.problems`` and the rest of the run still loads. Parsed log files are memoised by
(path, mtime, size), so reloading a live run re-reads only the files that changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard.caching import file_memo
from dashboard.paths import is_within, resolve_within
from dashboard.runs.checkpoints import (
    CheckpointInfo,
    CheckpointSelection,
    discover_checkpoints,
    listed_checkpoint_dirs,
)
from dashboard.runs.column_cache import cached_scan, cached_state
from dashboard.runs.discovery import RunListing, list_runs, looks_like_run, run_name
from dashboard.runs.files import excerpt
from dashboard.runs.hparams import build_configuration, empty_configuration
from dashboard.runs.attempts import Restart
from dashboard.runs.best import BestResolution, resolve_best
from dashboard.runs.metrics import (
    concat_metrics,
    empty_metrics,
    empty_series,
    preferred_source,
    state_series,
    surviving,
)
from dashboard.runs.results import RESULT_METRICS, empty_results, read_results
from dashboard.runs.tensorboard import EventFileData, assemble, find_event_files, folder_of, stream_folder
from dashboard.runs.trainer_log import LOG_FILE, TrainerLog, read_trainer_log
from dashboard.runs.trainer_state import ParsedState, TrainerStateSummary

__all__ = ["RunData", "RunListing", "RunNotFoundError", "TrainerStateSummary", "list_runs", "load_run",
           "looks_like_run", "run_signature"]

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
    restarts: list[Restart] = field(default_factory=list)
    """Resumptions found in the append-only logs (TensorBoard folders, trainer_log.jsonl)."""
    results: pd.DataFrame = field(default_factory=empty_results)
    """End-of-run results (metric, value, source): result files and the final summary entry."""
    derived: dict = field(default_factory=dict, repr=False, compare=False)
    """Views computed from this run and kept with it (see :func:`dashboard.timeline.series.derived`):
    a loaded run never changes (a changed file gives a new ``RunData``), so neither do they."""

    @cached_property
    def surviving_metrics(self) -> pd.DataFrame:
        """Every source's rows of the run that survived its restarts (later attempts win)."""
        return surviving(self.metrics)

    @cached_property
    def preferred_metrics(self) -> pd.DataFrame:
        """The surviving metrics with one source per metric (see ``preferred_source``), computed once per load.

        A ``RunData`` is immutable once loaded and is replaced when the run's files change, so
        this lives (and is dropped) with it; every Timeline rerun needs it several times.
        """
        return preferred_source(self.surviving_metrics, self.series)

    def resumed_from(self, restart: Restart) -> int | None:
        """The step a restart resumed from: the last checkpoint before its first logged step."""
        before = [c.step for c in self.checkpoints if c.step is not None and c.step < restart.first_step]
        return max(before) if before else None

    def restart_notices(self) -> list[str]:
        """One line per restart, e.g. ``… resumed from step 500 at …; steps 510–700 logged twice, …``."""
        return [r.notice(self.resumed_from(r)) for r in self.restarts]

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

    @cached_property
    def best(self) -> BestResolution:
        """The trainer's best checkpoint mapped onto this run's folders (see :mod:`dashboard.runs.best`)."""
        return resolve_best(self.state, [(c.name, c.step) for c in self.checkpoints], self.path)

    @property
    def best_checkpoint(self) -> CheckpointInfo | None:
        """The checkpoint :attr:`best` resolves to (Home, sidebar, Timeline and CLI all use this)."""
        return self.checkpoint(self.best.name) if self.best.name else None


# ---------------------------------------------------------------- memoised file parsers
# Keyed by (path, mtime_ns, size): reloading a live run re-parses only the files that changed
# (see dashboard/caching.py for the caching policy and how Streamlit clears these).
def data_dir() -> Path | None:
    """Where the log column cache lives (``VLMLAB_DATA_DIR``); None if settings are broken."""
    from dashboard.config import load_settings

    try:
        return load_settings().data_dir
    except Exception:  # a bad VLMLAB_* value is reported by the pages; reading still works uncached
        return None


@file_memo("trainer_state", maxsize=16)
def parse_state_file(path: Path, roots: Sequence[Path] | None = None) -> ParsedState:
    """One ``trainer_state.json``, through the Parquet column cache when the file is large."""
    return cached_state(path, data_dir(), list(roots) if roots else None)


@file_memo("event_file", maxsize=16)
def parse_event_file(path: Path) -> EventFileData:
    """One event file's summaries, through the Parquet column cache when the file is large."""
    return cached_scan(path, data_dir())


# ---------------------------------------------------------------- run loading
def _stat_mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


def state_file_candidates(run_dir: Path, selection: CheckpointSelection | None = None) -> list[Path]:
    """``trainer_state.json`` files, newest first: root and highest checkpoint's ordered by mtime,
    then the other listed checkpoints' (fallbacks when the newer ones are broken)."""
    root = run_dir / STATE_FILE
    dirs = (selection or listed_checkpoint_dirs(run_dir)).dirs
    in_ckpts = [p / STATE_FILE for _, p in reversed(dirs) if (p / STATE_FILE).is_file()]
    head = [p for p in (root, *in_ckpts[:1]) if p.is_file()]
    head.sort(key=_stat_mtime, reverse=True)
    return head + in_ckpts[1:]


def _load_state(run_dir: Path, problems: list[str], roots: tuple[Path, ...],
                selection: CheckpointSelection) -> tuple[ParsedState | None, Path | None]:
    for i, candidate in enumerate(state_file_candidates(run_dir, selection)):
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
    """trainer_state has no timestamps: borrow TensorBoard's wall time at the same step (of the
    surviving attempt: a restarted step's time is when the run that survived logged it)."""
    tb_metrics = surviving(tb_metrics)
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


parse_log_file = file_memo("trainer_log", maxsize=16)(read_trainer_log)


def _load_trainer_log(run_dir: Path, roots: tuple[Path, ...]) -> TrainerLog:
    path = run_dir / LOG_FILE
    return parse_log_file(path, roots) if path.is_file() else TrainerLog(empty_metrics())


def load_run(run_dir: Path, roots: Sequence[Path]) -> RunData:
    """Load a run for display. Raises only ``PathOutsideRoots`` and :class:`RunNotFoundError`."""
    path = resolve_within(run_dir, roots)
    if not path.is_dir():
        raise RunNotFoundError(f"run directory not found: {path}")
    problems: list[str] = []
    checkpoints = []
    root_paths = tuple(Path(r).expanduser().resolve() for r in roots)
    selection = listed_checkpoint_dirs(path)
    parsed, state_file = _load_state(path, problems, root_paths, selection)
    best_step = parsed.summary.best_global_step if parsed else None
    if selection.capped and best_step is not None:
        selection = listed_checkpoint_dirs(path, keep_steps=[best_step])
    if selection.message:
        problems.append(selection.message)
    for c in discover_checkpoints(path, root_paths, selection):
        problems.extend(f"{c.name}: {p}" for p in c.problems)
        if not is_within(c.path, roots):  # a checkpoint-N symlink pointing outside the runs root(s)
            continue
        checkpoints.append(c)
    state_metrics = parsed.metrics if parsed else empty_metrics()
    tb = assemble([(stream_folder(folder_of(f, path)), f.name, parse_event_file(f)) for f in find_event_files(path)])
    problems.extend(tb.problems)
    tb_metrics = tb.metrics
    log = _load_trainer_log(path, root_paths)
    problems.extend(log.problems)
    frames = [_attach_wall_time(state_metrics, tb_metrics), _attach_wall_time(log.metrics, tb_metrics), tb_metrics]
    metrics = concat_metrics(frames)
    if len(metrics) and not RESULT_METRICS.isdisjoint(metrics["metric"].cat.categories):
        # the end-of-run summary is a result (see RunData.results), not one-point curves
        metrics = metrics[~metrics["metric"].isin(RESULT_METRICS).to_numpy()].reset_index(drop=True)
        metrics["metric"] = metrics["metric"].cat.remove_unused_categories()
    series = pd.concat([state_series(state_metrics), state_series(log.metrics, "trainer_log"), tb.series],
                       ignore_index=True)
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
    results = read_results(path, root_paths, parsed.final_summary if parsed else None, problems)
    return RunData(path=path, name=run_name(path, roots), results=results, checkpoints=checkpoints, metrics=metrics, state=summary,
                   problems=problems, state_file=state_file, series=series, hparam_metrics=tb.hparam_metrics,
                   config=config, texts=tb.texts, other_summaries=tb.others, restarts=[*log.restarts, *tb.restarts])


# ---------------------------------------------------------------- change detection
def run_signature(run_dir: Path) -> tuple:
    """Cheap change detector: names/mtimes/sizes of the run folder, the listed checkpoints, state
    files and event files (bounded: a run with 100,000 checkpoints stats the listed ones only,
    and the run folder's own mtime changes when a checkpoint folder is added or removed)."""
    run_dir = Path(run_dir)
    parts: list[tuple] = []

    def add(p: Path) -> None:
        try:
            st = p.stat()
            parts.append((str(p.relative_to(run_dir)), st.st_mtime_ns, st.st_size))
        except (OSError, ValueError):
            pass

    add(run_dir)
    add(run_dir / STATE_FILE)
    add(run_dir / LOG_FILE)
    for _, ckpt in listed_checkpoint_dirs(run_dir).dirs:
        add(ckpt)
        add(ckpt / STATE_FILE)
    for event_file in find_event_files(run_dir):
        add(event_file)
    for name in ("config.json", "model.safetensors", "adapter_config.json"):
        add(run_dir / name)
    return (str(run_dir), *parts)
