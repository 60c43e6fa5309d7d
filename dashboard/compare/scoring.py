"""Transition re-export: answer metrics now live in :mod:`dashboard.metrics` (the one registry).

Import from ``dashboard.metrics``; this module goes once no caller is left.
"""

from __future__ import annotations

from dashboard.metrics import aggregate_scores as mean_scores
from dashboard.metrics import contains, default_metrics, exact_match, get_metric, normalize_answer, score, token_f1

METRICS = {name: get_metric(name).score for name in default_metrics()}
METRIC_LABELS = {name: get_metric(name).label for name in default_metrics()}

__all__ = ["METRICS", "METRIC_LABELS", "contains", "exact_match", "mean_scores", "normalize_answer", "score",
           "token_f1"]
