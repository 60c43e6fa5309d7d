"""Resumed training: split an append-only log into attempts and keep what the surviving run is.

After pre-emption a run is restarted with ``resume_from_checkpoint``: the Trainer restores
``trainer_state.json`` from the checkpoint (so it holds each step once), but every *other* log
keeps both passes — TensorBoard gets one event file per process in the same folder, an
append-only ``trainer_log.jsonl`` (LLaMA-Factory) gets the second pass appended. Sorting such a
log by step draws a zig-zag. Here each log *stream* (one TensorBoard folder, one JSONL file) is
split into attempts:

- a new event file started after the previous files ended (a later process: one
  ``SummaryWriter`` per process) whose first step is below the highest step logged before it,
- inside one file or JSONL, a row whose step drops below the previous row's *and* below the
  same metric's previous step (so an eval logged late for an earlier step is not a restart).

The run that survived is, as HF resumption implies, each attempt up to where the next one
starts: a row of attempt *j* is **superseded** when a later attempt starts at or before its
step. Every view that shows "the run" (curves, smoothing, markers, best checkpoint) uses the
surviving rows; the Timeline can still draw each attempt as its own trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np


@dataclass(frozen=True)
class Restart:
    """One resumption found in one log stream."""

    stream: str
    """Where it was seen: ``TensorBoard runs/Dec06_host`` or ``trainer_log.jsonl``."""
    attempt: int
    """The later attempt's number (1 = the first run, 2 = the first restart, …)."""
    first_step: int
    """The first step the later attempt logged."""
    wall_time: float | None
    """When the later attempt logged its first value (seconds since the epoch), if known."""
    overlap: tuple[int, int] | None
    """Steps the earlier attempt(s) had already logged from ``first_step`` on: (first, last)."""

    def notice(self, resumed_from: int | None = None) -> str:
        """``resumed from step 500 at 2026-12-06 12:00 UTC; steps 510–700 logged twice, showing the later attempt``."""
        start = f"step {resumed_from}" if resumed_from is not None else f"before step {self.first_step}"
        when = "" if self.wall_time is None or not np.isfinite(self.wall_time) else \
            " at " + datetime.fromtimestamp(self.wall_time, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = f"{self.stream}: attempt {self.attempt} resumed from {start}{when}"
        if self.overlap is None:
            return text + "; no step was logged twice"
        lo, hi = self.overlap
        span = f"step {lo}" if lo == hi else f"steps {lo}–{hi}"
        return text + f"; {span} logged twice, showing the later attempt"


def row_restarts(steps: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Attempt number (0-based) of each row of one append-only sequence, in log order.

    A row starts a new attempt when its step is below the previous row's and below the previous
    step logged for the same metric (``codes``: one integer per metric).
    """
    n = len(steps)
    if n < 2:
        return np.zeros(n, dtype=np.int32)
    steps = np.asarray(steps, dtype=np.int64)
    drop = np.zeros(n, dtype=bool)
    drop[1:] = steps[1:] < steps[:-1]
    if not drop.any():
        return np.zeros(n, dtype=np.int32)
    # The previous step of the same metric: sort stably by metric, shift inside each group.
    order = np.argsort(codes, kind="stable")
    s_sorted, c_sorted = steps[order], np.asarray(codes)[order]
    prev_same = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    same = np.zeros(n, dtype=bool)
    same[1:] = c_sorted[1:] == c_sorted[:-1]
    shifted = np.empty(n, dtype=np.int64)
    shifted[0] = np.iinfo(np.int64).min
    shifted[1:] = s_sorted[:-1]
    prev_same[order] = np.where(same, shifted, np.iinfo(np.int64).min)
    drop &= steps < prev_same
    return np.cumsum(drop).astype(np.int32)


def superseded(steps: np.ndarray, attempts: np.ndarray) -> np.ndarray:
    """Rows of one stream that a later attempt replaced: step at or after a later attempt's first step."""
    steps = np.asarray(steps, dtype=np.int64)
    attempts = np.asarray(attempts, dtype=np.int64)
    if not len(steps) or attempts.max(initial=0) == 0:
        return np.zeros(len(steps), dtype=bool)
    n_attempts = int(attempts.max()) + 1
    starts = np.full(n_attempts, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(starts, attempts, steps)
    # Smallest start among the attempts *after* each one.
    later = np.full(n_attempts, np.iinfo(np.int64).max, dtype=np.int64)
    later[:-1] = np.minimum.accumulate(starts[::-1])[::-1][1:]
    return steps >= later[attempts]


def describe(stream: str, steps: np.ndarray, walls: np.ndarray | None, attempts: np.ndarray) -> list[Restart]:
    """The restarts of one stream: for each later attempt, where it started and what it re-logged."""
    steps = np.asarray(steps, dtype=np.int64)
    attempts = np.asarray(attempts, dtype=np.int64)
    out: list[Restart] = []
    for k in range(1, int(attempts.max(initial=0)) + 1):
        mine = attempts == k
        if not mine.any():
            continue
        first_row = int(np.flatnonzero(mine)[0])
        first = int(steps[mine].min())
        earlier = steps[(attempts < k) & (steps >= first)]
        wall = float(walls[first_row]) if walls is not None and len(walls) else None
        out.append(Restart(stream=stream, attempt=k + 1, first_step=first, wall_time=wall,
                           overlap=(first, int(earlier.max())) if len(earlier) else None))
    return out


def file_attempts(first_walls: list[float], last_walls: list[float], first_steps: list[int],
                  top_steps: list[int]) -> list[int]:
    """Attempt number of each event file of one folder (given in creation order).

    A file is a later attempt when it was started after every earlier file ended *and* its first
    step is below the highest step logged before it (training went back). Files whose time
    ranges overlap were written side by side and share an attempt; a later file that goes on
    from where the others stopped (HF's closing ``evaluate()`` opens a second writer) does too.
    """
    out: list[int] = []
    attempt, ended, top = 0, -np.inf, None
    for i, (first, last, step, high) in enumerate(zip(first_walls, last_walls, first_steps, top_steps, strict=True)):
        if i and np.isfinite(first) and first >= ended and top is not None and step < top:
            attempt += 1
        out.append(attempt)
        if np.isfinite(last):
            ended = max(ended, last)
        top = high if top is None else max(top, high)
    return out


__all__ = ["Restart", "describe", "file_attempts", "row_restarts", "superseded"]
