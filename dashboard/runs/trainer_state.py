"""Parse ``trainer_state.json`` into the tidy metrics table and a run summary.

``log_history`` entries mix keys (train entries: loss/grad_norm/learning_rate; eval entries:
eval_*; a final train summary). Entries are grouped by their key set and each group's columns
are converted in one C-level pass (``np.fromiter``); the dominant (train) group is even found
without a per-entry key tuple. No Python code runs per entry on a regular log: that is what
keeps 10⁶ entries under the cost of ``json.load`` alone.
Non-finite values (NaN/inf/null) are kept out of the table and reported by metric and step.
"""

from __future__ import annotations

import gc
import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, compress
from operator import itemgetter
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard.runs.checkpoints import checkpoint_step
from dashboard.runs.files import JsonFileError, RunFileError, parse_json, read_bytes
from dashboard.runs.metrics import empty_metrics, make_metrics

NON_METRIC_KEYS = frozenset({"step", "epoch"})
SUMMARY_MARKERS = frozenset({"train_runtime", "total_flos"})
SUMMARY_KEYS = SUMMARY_MARKERS | {"train_loss", "train_samples_per_second", "train_steps_per_second", "step", "epoch"}
"""The Trainer's end-of-training summary entry has only these keys (and one of the markers): it is a
result of the whole run, not one more point of each curve. Any other key makes it an ordinary entry."""


def is_summary_entry(keys) -> bool:
    keys = set(keys)
    return not SUMMARY_MARKERS.isdisjoint(keys) and keys <= SUMMARY_KEYS
MAX_LISTED = 5
CONFIG_FIELDS = ("max_steps", "num_train_epochs", "train_batch_size", "logging_steps", "eval_steps", "save_steps",
                 "is_hyper_param_search", "trial_name")
"""Run-level ``TrainerState`` fields that describe how the run was configured (not how it went)."""


@dataclass
class TrainerStateSummary:
    """The run-level fields of ``trainer_state.json`` (any may be missing in older versions)."""

    global_step: int | None = None
    epoch: float | None = None
    best_metric: float | None = None
    best_model_checkpoint: str | None = None
    best_global_step: int | None = None
    eval_steps: int | float | None = None
    logging_steps: int | float | None = None
    save_steps: int | float | None = None
    config: dict[str, object] = field(default_factory=dict)
    """How the run was set up: :data:`CONFIG_FIELDS` present, plus ``trial_params`` flattened."""

    @property
    def best_checkpoint_name(self) -> str | None:
        """Folder name of ``best_model_checkpoint`` (often an absolute path from another machine)."""
        if not self.best_model_checkpoint:
            return None
        return Path(str(self.best_model_checkpoint).replace("\\", "/")).name or None


@dataclass
class ParsedState:
    metrics: pd.DataFrame
    summary: TrainerStateSummary
    problems: list[str]
    readable: bool = True
    """False when the file could not be read or parsed at all (the run falls back to another copy)."""
    final_summary: dict[str, float] = field(default_factory=dict)
    """The end-of-training summary entry's numbers (``train_runtime``, ``train_loss``, ``total_flos``, …)."""

    @classmethod
    def unreadable(cls, problem: str) -> ParsedState:
        return cls(empty_metrics(), TrainerStateSummary(), [problem], readable=False)


def _number(value, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value) if integer and float(value).is_integer() else value


def _summary(state: dict, problems: list[str]) -> TrainerStateSummary:
    summary = TrainerStateSummary(
        global_step=_number(state.get("global_step"), integer=True),
        epoch=_number(state.get("epoch")),
        best_metric=_number(state.get("best_metric")),
        best_model_checkpoint=state.get("best_model_checkpoint") if isinstance(
            state.get("best_model_checkpoint"), str) else None,
        best_global_step=_number(state.get("best_global_step"), integer=True),
        eval_steps=_number(state.get("eval_steps")),
        logging_steps=_number(state.get("logging_steps")),
        save_steps=_number(state.get("save_steps")),
    )
    summary.config = _config(state)
    if summary.best_global_step is None and summary.best_checkpoint_name:
        summary.best_global_step = checkpoint_step(summary.best_checkpoint_name)
    if "global_step" not in state:
        problems.append("trainer_state.json: no 'global_step'")
    return summary


def _config(state: dict) -> dict[str, object]:
    config: dict[str, object] = {k: state[k] for k in CONFIG_FIELDS
                                 if isinstance(state.get(k), (int, float, str, bool)) and state.get(k) is not None}
    trial = state.get("trial_params")
    if isinstance(trial, dict):
        config.update({f"trial_params.{k}": v for k, v in trial.items() if isinstance(v, (int, float, str, bool))})
    return config


def _as_floats(values: list, name: str, problems: list[str]) -> np.ndarray:
    """Convert a metric column to float64; non-numbers become NaN (reported by the caller)."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        out = np.full(len(values), np.nan)
        bad = 0
        for i, v in enumerate(values):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[i] = v
            elif v is not None:
                bad += 1
        if bad:
            problems.append(f"log_history: {bad} non-numeric value(s) for '{name}' ignored")
        return out


def _dominant_group(log_history: list) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The entries with the first entry's key set, and their columns as float64, in two C-level
    passes (lengths, then values picked by key); None where the general grouping must decide.

    A long log is nearly all train entries with one key set; evals and the summary have other
    lengths. An entry of the same length either has exactly these keys (dict keys are unique) or
    makes the key lookup fail, so no per-entry key tuple is needed. Values convert as
    ``np.array(column, dtype=float64)`` does (numbers, bools, None as NaN); a value it refuses, or
    a text-looking first entry, sends the whole log down the general path.
    """
    head = log_history[0] if log_history else None
    if type(head) is not dict or len(head) < 2 or any(isinstance(v, (str, list, dict)) for v in head.values()):
        return None
    keys = tuple(head)
    try:
        same = np.fromiter(map(len, log_history), dtype=np.int64, count=len(log_history)) == len(keys)
        size = int(same.sum())
        flat = np.fromiter(chain.from_iterable(map(itemgetter(*keys), compress(log_history, same))),
                           dtype=np.float64, count=size * len(keys))
    except (TypeError, ValueError, OverflowError, KeyError, IndexError):
        return None
    by_key = flat.reshape(size, len(keys)).T.copy()  # one contiguous row per key
    return same, {key: by_key[j] for j, key in enumerate(keys)}


def _group_by_keys(log_history: list) -> tuple[dict[tuple | None, int], np.ndarray]:
    """Group id of each entry by its key tuple (``None`` for non-objects), ids in first-seen order.

    Nearly every entry of a long log has the train key set, so when all entries are dicts the
    first entry's keys are compared against all of them in one C-level pass; only the others
    (evals, summaries) are looked at one by one.
    """
    n = len(log_history)
    group_ids: dict[tuple | None, int] = {}
    if n and set(map(type, log_history)) == {dict}:
        first = tuple(log_history[0])
        same = np.fromiter(map(first.__eq__, map(tuple, log_history)), dtype=bool, count=n)
        group_ids[first] = 0
        gid = np.zeros(n, dtype=np.int32)
        setdefault = group_ids.setdefault
        for i in np.flatnonzero(~same).tolist():
            gid[i] = setdefault(tuple(log_history[i]), len(group_ids))
        return group_ids, gid
    keysets = [tuple(e) if type(e) is dict else None for e in log_history]
    setdefault = group_ids.setdefault
    gid = np.array([setdefault(k, len(group_ids)) for k in keysets], dtype=np.int32)
    return group_ids, gid


def _group_columns(entries: list[dict], keys: tuple) -> dict[str, np.ndarray] | None:
    """All columns of one key group as float64 in one pass over the entries' values, or None
    where the per-column path must decide (a text-looking first value, or a value float64 refuses).

    Same conversion as ``np.array(column, dtype=float64)`` value by value (numbers, bools, None
    as NaN), so the table is identical to the per-column path's.
    """
    head = entries[0]
    if any(isinstance(head[k], (str, list, dict)) for k in keys):
        return None
    try:
        flat = np.fromiter(chain.from_iterable(map(dict.values, entries)), dtype=np.float64,
                           count=len(entries) * len(keys))
    except (TypeError, ValueError, OverflowError):
        return None
    matrix = flat.reshape(len(entries), len(keys))
    return {key: matrix[:, j] for j, key in enumerate(keys)}


def parse_log_history(log_history: list, source: str = "trainer_state") -> tuple[pd.DataFrame, list[str]]:
    """``log_history`` -> tidy metrics table (train/eval apart by name) plus problems."""
    table, problems, _ = _parse_log_history(log_history, source)
    return table, problems


def _parse_log_history(log_history: list, source: str = "trainer_state"
                       ) -> tuple[pd.DataFrame, list[str], dict[str, float]]:
    """The table, its problems and the final summary entry's numbers (found from the key groups,
    so no second pass over the entries)."""
    problems: list[str] = []
    if not isinstance(log_history, list):
        return empty_metrics(), [f"trainer_state.json: 'log_history' is {type(log_history).__name__}, not a list"], {}
    # Group entries by key set (train / eval / summary entries): one column pull per group and key.
    dominant = _dominant_group(log_history)
    if dominant is None:
        group_ids, gid = _group_by_keys(log_history)
    else:
        group_ids = {tuple(log_history[0]): 0}
        gid = np.zeros(len(log_history), dtype=np.int32)
        setdefault = group_ids.setdefault
        for i in np.flatnonzero(~dominant[0]).tolist():  # the few other entries (evals, summary)
            entry = log_history[i]
            gid[i] = setdefault(tuple(entry) if type(entry) is dict else None, len(group_ids))
    not_dicts = int((gid == group_ids[None]).sum()) if None in group_ids else 0
    if not_dicts:
        problems.append(f"log_history: {not_dicts} entr{'y is' if not_dicts == 1 else 'ies are'} not objects; skipped")
    summary_groups = [g for keys, g in group_ids.items() if keys is not None and is_summary_entry(keys)]
    last_summary = int(np.flatnonzero(np.isin(gid, summary_groups))[-1]) if summary_groups else None
    final = _summary_numbers(log_history[last_summary]) if last_summary is not None else {}

    names: dict[str, int] = {}
    parts: dict[int, list[tuple[np.ndarray, ...]]] = defaultdict(list)  # metric code -> (order, step, epoch, value)
    no_step = 0
    nonfinite: dict[str, list[int]] = defaultdict(list)
    for keys, g in group_ids.items():
        if keys is None or is_summary_entry(keys):
            continue
        in_group = gid == g
        idx = np.flatnonzero(in_group) if len(group_ids) > 1 else np.arange(len(gid))
        if "step" not in keys:
            no_step += len(idx)
            continue
        columns: dict[str, np.ndarray] | None
        if dominant is not None and g == 0:
            entries, columns = [], dominant[1]
        else:
            entries = log_history if len(idx) == len(log_history) else list(compress(log_history, in_group))
            columns = _group_columns(entries, keys)
        steps = columns["step"] if columns else _as_floats([e["step"] for e in entries], "step", problems)
        ok_step = np.isfinite(steps) & (np.abs(steps) < 2.0**62)  # a step beyond int64 would wrap around
        if not ok_step.all():
            no_step += int((~ok_step).sum())
        if "epoch" not in keys:
            epochs = np.full(len(idx), np.nan)
        else:
            epochs = columns["epoch"] if columns else _as_floats([e["epoch"] for e in entries], "epoch", problems)
        for key in keys:
            if key in NON_METRIC_KEYS:
                continue
            if columns:
                values = columns[key]
            else:
                raw = [e[key] for e in entries]
                if raw and isinstance(raw[0], (str, list, dict)) and all(isinstance(v, (str, list, dict))
                                                                         for v in raw):
                    continue  # a text field (e.g. a run name), not a metric
                values = _as_floats(raw, key, problems)
            is_finite = np.isfinite(values)
            finite = is_finite & ok_step
            bad = ~is_finite & ok_step
            if bad.any():
                nonfinite[key].extend(steps[bad].astype(np.int64).tolist())
            n = int(finite.sum())
            if not n:
                continue
            all_ok = n == len(values)
            parts[names.setdefault(key, len(names))].append((
                idx if all_ok else idx[finite], (steps if all_ok else steps[finite]).astype(np.int64),
                epochs if all_ok else epochs[finite], values if all_ok else values[finite]))
    if no_step:
        problems.append(f"log_history: {no_step} entr{'y has' if no_step == 1 else 'ies have'} "
                        "no numeric 'step'; skipped")
    for key, bad_steps in sorted(nonfinite.items()):
        shown = ", ".join(str(s) for s in bad_steps[:MAX_LISTED]) + ("…" if len(bad_steps) > MAX_LISTED else "")
        problems.append(f"'{key}' has {len(bad_steps)} NaN/inf/null value(s) (step {shown}); not plotted")
    if not parts:
        return empty_metrics(), problems, final
    # Rows grouped by metric (first appearance), log order inside each: a metric seen in one key
    # group is already in order; one seen in several is merged by entry index (no global sort).
    stacks: list[list[np.ndarray]] = [[], [], []]
    lengths = []
    for code in range(len(names)):
        pieces = parts[code]
        if len(pieces) == 1:
            merged = pieces[0][1:]
        else:
            sort = np.argsort(np.concatenate([p[0] for p in pieces]), kind="stable")
            merged = tuple(np.concatenate([p[i] for p in pieces])[sort] for i in (1, 2, 3))
        for stack, array in zip(stacks, merged, strict=True):
            stack.append(array)
        lengths.append(len(merged[0]))
    step, epoch, value = (np.concatenate(stack) for stack in stacks)
    table = make_metrics(step, epoch, np.full(len(step), np.nan),
                         np.repeat(np.arange(len(names), dtype=np.int32), lengths), value, source=source,
                         names=list(names))
    return table, problems, final


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while 10⁶ dicts are created and read: none of them forms a cycle, yet
    each generation-2 pass walks all of them (measured: a third of the read on a 300k log)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_trainer_state(path: Path, roots: Sequence[Path] | None = None) -> ParsedState:
    with _gc_paused():
        return _read_trainer_state(path, roots)


def _read_trainer_state(path: Path, roots: Sequence[Path] | None = None) -> ParsedState:
    """Read one ``trainer_state.json``; broken files give problems and an empty table, not errors.

    Parsed with orjson through the run-file opener (several times faster than ``json.load``,
    which dominated the cost of a large log). orjson refuses the bare ``NaN``/``Infinity`` that
    Python's ``json.dump`` writes for a diverged loss, so such a file is re-parsed with the
    standard library (NaNs are then reported per metric and step, not plotted).
    """
    path = Path(path)
    problems: list[str] = []
    try:
        data = read_bytes(path, roots or [path.parent], "trainer_state")
        try:
            state = parse_json(data, path.name)
        except JsonFileError:
            try:
                state = json.loads(data)
            except RecursionError as exc:
                raise JsonFileError(f"{path.name}: nested too deeply") from exc
            except ValueError as exc:
                raise JsonFileError(f"{path.name}: {type(exc).__name__}") from exc
    except JsonFileError as exc:
        return ParsedState.unreadable(f"{path}: not valid JSON ({exc})")
    except (RunFileError, OSError) as exc:
        reason = exc if isinstance(exc, RunFileError) else (exc.strerror or exc)
        return ParsedState.unreadable(f"{path}: cannot read ({reason})")
    if not isinstance(state, dict):
        return ParsedState.unreadable(f"{path}: expected a JSON object, got {type(state).__name__}")
    summary = _summary(state, problems)
    if "log_history" not in state:
        problems.append("trainer_state.json: no 'log_history'; no metrics")
        return ParsedState(empty_metrics(), summary, problems)
    table, more, final = _parse_log_history(state["log_history"])
    return ParsedState(table, summary, problems + more, final_summary=final)


def final_summary(log_history: object) -> dict[str, float]:
    """The last end-of-training summary entry's finite numbers (``step``/``epoch`` included)."""
    if not isinstance(log_history, list):
        return {}
    for entry in reversed(log_history):
        if type(entry) is dict and is_summary_entry(entry):
            return _summary_numbers(entry)
    return {}


def _summary_numbers(entry: dict) -> dict[str, float]:
    return {str(k): float(v) for k, v in entry.items() if isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v)}


def read_state_summary(path: Path, roots: Sequence[Path] | None = None) -> TrainerStateSummary | None:
    """Only the run-level fields of a ``trainer_state.json`` (no metrics table): the runs table's
    per-run best checkpoint. None when the file cannot be read."""
    try:
        with _gc_paused():
            state = parse_json(read_bytes(path, roots or [path.parent], "trainer_state"), path.name)
    except (RunFileError, OSError):
        return None
    return _summary(state, []) if isinstance(state, dict) else None
