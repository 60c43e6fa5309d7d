"""Examples a later checkpoint broke (and the ones it fixed), for the regression list.

An aggregate can stay flat while the model trades examples: 5 newly right and 5 newly wrong.
This lists the individual trades between an earlier and a later checkpoint, worst first,
each with what both checkpoints said so the page can word-diff them against the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dashboard.compare.diff import diff_text
from dashboard.compare.results import CheckpointScores
from dashboard.evalset import EvalExample, EvalSet


@dataclass(frozen=True)
class Change:
    """One example whose score moved between the two checkpoints."""

    example: EvalExample
    earlier_output: str
    later_output: str
    earlier_score: float
    later_score: float

    @property
    def delta(self) -> float:
        return self.later_score - self.earlier_score

    def as_dict(self) -> dict[str, Any]:
        ref = self.example.answer
        return {"id": self.example.id, "image": str(self.example.image_path), "prompt": self.example.prompt,
                "reference": ref, "task": self.example.task,
                "earlier_output": self.earlier_output, "later_output": self.later_output,
                "earlier_score": self.earlier_score, "later_score": self.later_score,
                "earlier_diff": diff_text(ref, self.earlier_output), "later_diff": diff_text(ref, self.later_output)}


@dataclass
class Regressions:
    """Examples ``later`` got worse on (``broke``) and better on (``fixed``) than ``earlier``."""

    earlier: str
    later: str
    metric: str
    broke: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"earlier": self.earlier, "later": self.later, "metric": self.metric,
                "broke": [c.as_dict() for c in self.broke], "fixed": [c.as_dict() for c in self.fixed]}


def _scored(scores: CheckpointScores, metric: str) -> Mapping[str, Mapping[str, Any]]:
    return {str(r["id"]): r for r in scores.rows if metric in (r.get("scores") or {})}


def find_regressions(evalset: EvalSet, earlier: CheckpointScores, later: CheckpointScores,
                     metric: str = "exact_match") -> Regressions:
    """Per example scored by both: a lower score later is a regression, a higher one a fix.

    For exact match that is "right earlier, wrong later" and the reverse; for continuous
    metrics the biggest drops come first. Order within equal drops follows the eval set.
    """
    a, b = _scored(earlier, metric), _scored(later, metric)
    result = Regressions(earlier.checkpoint, later.checkpoint, metric)
    for ex in evalset.examples:
        if ex.id not in a or ex.id not in b:
            continue
        before, after = float(a[ex.id]["scores"][metric]), float(b[ex.id]["scores"][metric])
        if before == after:
            continue
        change = Change(ex, str(a[ex.id].get("output", "")), str(b[ex.id].get("output", "")), before, after)
        (result.broke if after < before else result.fixed).append(change)
    result.broke.sort(key=lambda c: c.delta)
    result.fixed.sort(key=lambda c: -c.delta)
    return result
