"""An eval-set comparison as numbers with their uncertainty: what the page, CLI and export share.

From saved per-example scores (:class:`~dashboard.compare.results.CheckpointScores`) this
builds, per checkpoint, each metric's mean with a bootstrap 95 % interval and n, the same
per task / category, and paired tests between checkpoints on the examples both scored.
:func:`eval_report` is the headless JSON schema (``python -m dashboard eval --json``); the
Comparison page draws its tables from the same objects, so the numbers cannot drift apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dashboard.compare.results import CheckpointScores
from dashboard.compare.stats import (
    DEFAULT_SEED,
    Estimate,
    PairedResult,
    bootstrap_ci,
    compare_paired,
    holm,
    proportion_ci,
)
from dashboard.evalset import EvalExample, EvalSet

BINARY_METRICS = frozenset({"exact_match", "contains", "first_word_match"})
"""Right/wrong metrics (tested with McNemar); the others get a paired bootstrap."""
NO_GROUP = "(none)"
MAX_GROUPS = 50
"""A column with more distinct values than this (or than half the rows) is an id, not a category."""


def evalset_block(evalset: EvalSet) -> dict[str, Any]:
    """The eval set as every report and export names it: the file's sha256 and the subset, apart."""
    return {"name": evalset.name, "file": evalset.path.name, "sha256": evalset.content_hash,
            "subset": evalset.subset, "n": len(evalset.examples)}


def group_value(example: EvalExample, column: str) -> str:
    """The example's category in ``column`` (``task`` or any extra column of the eval file)."""
    value = example.task if column == "task" else example.extra.get(column)
    return NO_GROUP if value is None or value == "" else str(value)


def categorical_columns(evalset: EvalSet) -> list[str]:
    """Columns worth grouping by: ``task`` when present, then extra columns with few scalar values."""
    columns = ["task"] if any(ex.task for ex in evalset.examples) else []
    extra_keys = sorted({k for ex in evalset.examples for k in ex.extra})
    for key in extra_keys:
        values = [ex.extra.get(key) for ex in evalset.examples]
        if all(v is None or isinstance(v, (str, int, bool)) for v in values) and \
                1 < len({str(v) for v in values}) <= min(MAX_GROUPS, len(values) // 2):
            columns.append(key)
    return columns


@dataclass
class CheckpointSummary:
    """One checkpoint's metrics (value, CI, n) overall and per group."""

    checkpoint: str
    step: int | None
    n: int
    total: int
    complete: bool
    metrics: dict[str, Estimate]
    by_group: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    """:meth:`ResultIdentity.as_dict` of the scored result (with its ``key``)."""

    def as_dict(self) -> dict[str, Any]:
        """The headless report's ``checkpoints`` entry."""
        return {"checkpoint": self.checkpoint, "step": self.step, "n": self.n, "identity": self.identity,
                "metrics": {m: e.as_dict() for m, e in self.metrics.items()},
                "by_task": {g: {m: e.as_dict(with_n=True) for m, e in per.items()}
                            for g, per in self.by_group.items()}}


def _metric_values(rows: Iterable[Mapping[str, Any]], metric: str) -> list[float]:
    return [float(r["scores"][metric]) for r in rows if metric in (r.get("scores") or {})]


def image_clusters(rows: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """Which image each row asked about (rows sharing one are correlated); None when rows don't say."""
    images = [r.get("cluster", r.get("image")) for r in rows]
    return None if any(i is None for i in images) else [str(i) for i in images]


def estimate(rows: Sequence[Mapping[str, Any]], metric: str, *, seed: int = DEFAULT_SEED) -> Estimate:
    """A metric's mean over ``rows`` with its 95 % interval: the one estimator of page, CLI, export, Timeline.

    Right/wrong metrics get the exact Clopper–Pearson interval, others (token F1) the bootstrap;
    both clustered by image when examples share one (:mod:`dashboard.compare.stats`).
    """
    scored = [r for r in rows if metric in (r.get("scores") or {})]
    values = _metric_values(scored, metric)
    clusters = image_clusters(scored)
    if metric in BINARY_METRICS:
        return proportion_ci(values, clusters)
    return bootstrap_ci(values, seed=seed, clusters=clusters)


def summarize(evalset: EvalSet, scores: CheckpointScores, metrics: Sequence[str], *, group_by: str | None = "task",
              seed: int = DEFAULT_SEED) -> CheckpointSummary:
    """Means with 95 % bootstrap CIs over the scored examples, overall and per ``group_by`` value."""
    rows = scores.rows
    overall = {m: estimate(rows, m, seed=seed) for m in metrics}
    by_group: dict[str, dict[str, Estimate]] = {}
    if group_by:
        examples = evalset.by_id()
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            ex = examples.get(str(row["id"]))
            if ex is not None:
                grouped.setdefault(group_value(ex, group_by), []).append(row)
        by_group = {g: {m: estimate(grouped[g], m, seed=seed) for m in metrics}
                    for g in sorted(grouped)}
    return CheckpointSummary(scores.checkpoint, scores.step, scores.n, scores.total, scores.complete, overall,
                             by_group, scores.identity.as_dict())


def paired(a: CheckpointScores, b: CheckpointScores, metric: str, *, seed: int = DEFAULT_SEED) -> PairedResult:
    """Paired test of ``b`` against ``a`` on the examples both have a score for."""
    a_rows = {str(r["id"]): r for r in a.rows if metric in (r.get("scores") or {})}
    b_rows = {str(r["id"]): r for r in b.rows if metric in (r.get("scores") or {})}
    common = [i for i in a_rows if i in b_rows]
    return compare_paired(a.checkpoint, b.checkpoint, metric,
                          [float(a_rows[i]["scores"][metric]) for i in common],
                          [float(b_rows[i]["scores"][metric]) for i in common],
                          binary=metric in BINARY_METRICS, seed=seed,
                          clusters=image_clusters([a_rows[i] for i in common]))


def paired_family(scores: Mapping[str, CheckpointScores], pairs: Sequence[tuple[str, str]], metrics: Sequence[str],
                  *, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """Every pair's test per metric, with Holm-adjusted p-values within each metric's family of pairs
    (``p_holm``; equal to ``p_value`` when only one pair is compared)."""
    out: list[dict[str, Any]] = []
    for m in metrics:
        results = [paired(scores[a], scores[b], m, seed=seed) for a, b in pairs]
        for result, adjusted in zip(results, holm([r.p_value for r in results]), strict=True):
            out.append({**result.as_dict(), "p_holm": adjusted, "family_size": len(results)})
    order = {(a, b): i for i, (a, b) in enumerate(pairs)}
    return sorted(out, key=lambda f: order[(f["a"], f["b"])])


def default_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Each checkpoint against the next, plus first against last (when that is not already a pair)."""
    pairs = list(itertools.pairwise(names))
    if len(names) > 2:
        pairs.append((names[0], names[-1]))
    return pairs


def eval_report(evalset: EvalSet, scores: Mapping[str, CheckpointScores], *, settings: Mapping[str, Any],
                metrics: Sequence[str], group_by: str | None = "task",
                pairs: Sequence[tuple[str, str]] | None = None, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """The headless JSON: eval set, settings, per-checkpoint metrics + by-task, paired tests."""
    names = list(scores)
    chosen_pairs = default_pairs(names) if pairs is None else list(pairs)
    return {
        "eval_set": evalset_block(evalset),
        "settings": dict(settings),
        "checkpoints": [summarize(evalset, scores[n], metrics, group_by=group_by, seed=seed).as_dict()
                        for n in names],
        "paired": paired_family(scores, chosen_pairs, metrics, seed=seed),
    }


def summary_table(summaries: Sequence[CheckpointSummary], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Rows for the page / CSV: one per checkpoint, each metric as value, CI bounds and n."""
    rows = []
    for s in summaries:
        row: dict[str, Any] = {"checkpoint": s.checkpoint, "step": s.step, "n": s.n, "complete": s.complete}
        for m in metrics:
            est = s.metrics[m]
            row.update({m: est.value, f"{m} ci95 low": est.ci95[0], f"{m} ci95 high": est.ci95[1]})
        rows.append(row)
    return rows


def group_table(summaries: Sequence[CheckpointSummary], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Rows per (group, checkpoint): each metric's value, CI bounds and n within the group."""
    rows = []
    groups = sorted({g for s in summaries for g in s.by_group})
    for g in groups:
        for s in summaries:
            per = s.by_group.get(g)
            if per is None:
                continue
            row: dict[str, Any] = {"group": g, "checkpoint": s.checkpoint, "n": next(iter(per.values())).n}
            for m in metrics:
                est = per[m]
                row.update({m: est.value, f"{m} ci95 low": est.ci95[0], f"{m} ci95 high": est.ci95[1]})
            rows.append(row)
    return rows
