"""Read an append-only ``trainer_log.jsonl`` (LLaMA-Factory's ``LogCallback``) into the metrics table.

One JSON object per line, e.g. ``{"current_steps": 10, "total_steps": 100, "loss": 1.2, "lr": 5e-05,
"epoch": 0.1, "percentage": 10.0, "elapsed_time": "0:00:10", "remaining_time": "0:01:30"}``.
A resumed run appends its second pass to the same file, so the steps go back where it resumed:
rows are split into attempts and the replaced ones marked (:mod:`dashboard.runs.attempts`).
Lines that are not JSON objects (a torn last line of a live run) are counted, not fatal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard.runs.attempts import Restart, describe, row_restarts, superseded
from dashboard.runs.files import RunFileError, read_bytes
from dashboard.runs.metrics import empty_metrics, make_metrics

LOG_FILE = "trainer_log.jsonl"
STEP_KEY = "current_steps"
RENAMED = {"lr": "learning_rate"}
"""LLaMA-Factory's names -> the Trainer's (so the same metric from two sources is recognised)."""
BOOKKEEPING = frozenset({STEP_KEY, "total_steps", "percentage", "epoch", "elapsed_time", "remaining_time"})


@dataclass
class TrainerLog:
    metrics: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def parse_trainer_log(data: bytes, name: str = LOG_FILE) -> TrainerLog:
    """The metrics of a ``trainer_log.jsonl`` body, with restarts found in line order."""
    steps: list[int] = []
    epochs: list[float] = []
    keys: list[str] = []
    values: list[float] = []
    bad_lines = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            bad_lines += 1
            continue
        step = _number(entry.get(STEP_KEY)) if isinstance(entry, dict) else None
        if step is None or not float(step).is_integer():
            bad_lines += 1
            continue
        epoch = _number(entry.get("epoch"))
        for key, raw in entry.items():
            value = _number(raw)
            if key in BOOKKEEPING or value is None:
                continue
            steps.append(int(step))
            epochs.append(np.nan if epoch is None else epoch)
            keys.append(RENAMED.get(key, key))
            values.append(value)
    problems = [f"{name}: {bad_lines} line(s) without a JSON object with a numeric '{STEP_KEY}'; skipped"] \
        if bad_lines else []
    if not steps:
        return TrainerLog(empty_metrics(), problems)
    step_arr = np.array(steps, dtype=np.int64)
    codes, names = pd.factorize(np.array(keys, dtype=object))
    attempts = row_restarts(step_arr, codes)
    replaced = superseded(step_arr, attempts)
    table = make_metrics(step_arr, np.array(epochs), np.full(len(steps), np.nan), codes, np.array(values),
                         source="trainer_log", names=[str(n) for n in names], attempts=attempts, superseded=replaced)
    return TrainerLog(table, problems, describe(name, step_arr, None, attempts))


def read_trainer_log(path: Path, roots: Sequence[Path]) -> TrainerLog:
    """Read through the run-file opener (confined, size-limited); problems instead of errors."""
    try:
        data = read_bytes(path, roots, "trainer_state")
    except (RunFileError, OSError) as exc:
        reason = exc if isinstance(exc, RunFileError) else (exc.strerror or exc)
        return TrainerLog(empty_metrics(), [f"{path.name}: cannot read ({reason})"])
    return parse_trainer_log(data, path.name)


__all__ = ["LOG_FILE", "TrainerLog", "parse_trainer_log", "read_trainer_log"]
