"""Whether a checkpoint already has a result: the one place live scoring asks the result store.

Everything that scores (``eval``, the Comparison page, ``watch``, the live switch, the Trainer
callback) saves through :func:`dashboard.compare.runner.run_eval`, under the one result identity
(:func:`dashboard.compare.identity.result_identity`: checkpoint content, eval file sha256, subset,
generation settings, scorer version), and reads back through
:func:`dashboard.compare.runner.prepare_scores`, which looks results up by that identity.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dashboard.compare.runner import prepare_scores

if TYPE_CHECKING:
    from dashboard.compare.headless import EvalContext
    from dashboard.compare.results import CheckpointScores


def saved_result(ctx: EvalContext, checkpoint: Path) -> CheckpointScores:
    """The usable saved result of ``checkpoint`` for this set and these settings (empty if none)."""
    return prepare_scores(ctx.run_dir, [checkpoint], ctx.evalset, ctx.gen, ctx.settings.data_dir)[checkpoint.name]


def has_complete_result(ctx: EvalContext, checkpoint: Path) -> bool:
    """True when every example of the set is scored for this checkpoint as it is on disk now."""
    return saved_result(ctx, checkpoint).complete
