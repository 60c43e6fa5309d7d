"""The trainer's best checkpoint, mapped onto the folders of this run — the one rule for every page.

``trainer_state.json`` records ``best_model_checkpoint`` as a path on the training machine
(often another machine: ``/home/x/out/checkpoint-900`` or ``C:\\runs\\out\\checkpoint-900``) and,
in newer versions, ``best_global_step``. The folder is matched by its last path component
(either separator), else by ``best_global_step``. When neither resolves, the reason names what
is missing: most often the folder was deleted by ``save_total_limit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dashboard.runs.files import excerpt
from dashboard.runs.trainer_state import TrainerStateSummary


@dataclass(frozen=True)
class BestResolution:
    name: str | None
    """The checkpoint folder of this run (None: none resolves)."""
    step: int | None
    reason: str
    """How it was found, or why nothing was (plain text)."""


def resolve_best(state: TrainerStateSummary | None, checkpoints: Sequence[tuple[str, int | None]],
                 run_dir: Path) -> BestResolution:
    """Map the trainer's record onto ``checkpoints`` ((folder name, step) of the listed folders)."""
    if state is None:
        return BestResolution(None, None, "no readable trainer_state.json, so no best checkpoint is recorded")
    name, step = state.best_checkpoint_name, state.best_global_step
    if not name and step is None:
        return BestResolution(None, None, "trainer_state.json records no best checkpoint "
                                          "(training ran without metric_for_best_model)")
    by_name = {n: s for n, s in checkpoints}
    if name and name in by_name:
        # The folder name only: the rest is a path on the training machine (for a run built here, this
        # server's own path, which public mode never shows).
        return BestResolution(name, by_name[name], f"best_model_checkpoint …/{name}")
    if step is not None:
        at_step = next((n for n, s in checkpoints if s == step), None)
        if at_step is not None:
            via = f" (no folder {excerpt(name)} here)" if name else ""
            return BestResolution(at_step, step, f"best_global_step {step}{via}")
    missing = name or f"checkpoint-{step}"
    if not (run_dir / missing).exists():
        return BestResolution(None, step, f"the best checkpoint, {excerpt(missing)}, was deleted from this run "
                                          "(save_total_limit removes older checkpoints)")
    return BestResolution(None, step, f"the best checkpoint, {excerpt(missing)}, is not among the listed "
                                      "checkpoints (outside the runs root or not listed)")


__all__ = ["BestResolution", "resolve_best"]
