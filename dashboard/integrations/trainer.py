"""Score checkpoints from the training job itself: a ``transformers.TrainerCallback``.

For users who want scores written by the training process (no separate ``watch`` to keep
running)::

    from dashboard.integrations.trainer import LiveScoringCallback

    trainer = Trainer(..., callbacks=[LiveScoringCallback(eval_file="eval/my_set.jsonl", limit=200)])

At every ``on_save`` the process of rank 0 (``state.is_world_process_zero``; the other ranks
return at once) scores the checkpoint just written through the watcher's own scoring path, so
the result lands in the same store, under the same key, as ``python -m dashboard eval``,
``watch`` and the app, and the Timeline shows it. The checkpoint is loaded from disk (the scores
are the saved checkpoint's, not the in-memory model's) and dropped from memory afterwards.
Training waits while it scores; on several GPUs the other ranks wait at their next collective.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from dashboard.generation import DEFAULT_GENERATION

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from dashboard.live.watcher import Watcher

logger = logging.getLogger(__name__)


class LiveScoringCallback(TrainerCallback):
    """Scores each saved checkpoint on an eval set (default: the first file in ``<output_dir>/eval/``).

    ``on_result`` receives the same dict ``watch --json`` prints per checkpoint; the last ones are
    kept in ``results``. A scoring failure is logged and training goes on.
    """

    def __init__(self, eval_file: str | Path | None = None, *, limit: int | None = None, pointing: bool = False,
                 batch_size: int = 8, max_new_tokens: int = DEFAULT_GENERATION.max_new_tokens,
                 on_result: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.eval_file = Path(eval_file) if eval_file is not None else None
        self.limit = limit
        self.pointing = pointing
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.on_result = on_result
        self.results: list[dict[str, Any]] = []
        self._watcher: Watcher | None = None

    def _watcher_for(self, run_dir: Path) -> Watcher:
        from dashboard.compare.headless import EvalRequest
        from dashboard.live.watcher import WatchConfig, Watcher

        if self._watcher is None or self._watcher.ctx.run_dir != run_dir.resolve():
            request = EvalRequest(run=run_dir, eval_file=self.eval_file, limit=self.limit,
                                  batch_size=self.batch_size, max_new_tokens=self.max_new_tokens)
            self._watcher = Watcher(WatchConfig(request, pointing=self.pointing))
        return self._watcher

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> TrainerControl:
        if not state.is_world_process_zero:
            return control
        run_dir = Path(args.output_dir)
        checkpoint = run_dir / f"checkpoint-{state.global_step}"
        if not checkpoint.is_dir():
            logger.warning("live scoring: no %s after save; skipped", checkpoint)
            return control
        try:
            watcher = self._watcher_for(run_dir)
            line = watcher.score_path(checkpoint)
            watcher.release(checkpoint)
        except Exception:  # scoring must never stop the training it observes
            logger.exception("live scoring of %s failed; training goes on", checkpoint)
            return control
        if line is not None:
            self.results.append(line)
            if self.on_result is not None:
                self.on_result(line)
        return control
