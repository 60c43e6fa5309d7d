"""Score a model answer against a reference answer.

The metrics follow the SQuAD conventions analysts already know: answers are normalised
(Unicode NFKC, case-folded, punctuation and English articles removed, whitespace collapsed)
before comparison, so "The Red." and "red" count as the same answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Canonical form used by every metric."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    # Unicode-aware punctuation removal: drop every character in a P* (punctuation) or S* (symbol) category.
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(output: str, reference: str) -> float:
    return float(normalize_answer(output) == normalize_answer(reference))


def contains(output: str, reference: str) -> float:
    """1.0 when the normalised reference appears as a whole-word run inside the normalised output."""
    ref = normalize_answer(reference).split()
    out = normalize_answer(output).split()
    if not ref:
        return float(not out)
    n = len(ref)
    return float(any(out[i:i + n] == ref for i in range(len(out) - n + 1)))


def token_f1(output: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bag of normalised words)."""
    out = normalize_answer(output).split()
    ref = normalize_answer(reference).split()
    if not out or not ref:
        return float(out == ref)
    common = sum((Counter(out) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(out), common / len(ref)
    return 2 * precision * recall / (precision + recall)


Metric = Callable[[str, str], float]
METRICS: Mapping[str, Metric] = {"exact_match": exact_match, "contains": contains, "token_f1": token_f1}
METRIC_LABELS: Mapping[str, str] = {"exact_match": "Exact match", "contains": "Contains", "token_f1": "Token F1"}


def score(output: str, reference: str, metrics: Iterable[str] = tuple(METRICS)) -> dict[str, float]:
    """Scores for the named metrics; an unknown name raises ``KeyError`` naming the choices."""
    result: dict[str, float] = {}
    for name in metrics:
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
        result[name] = METRICS[name](output, reference)
    return result


def mean_scores(rows: Iterable[Mapping[str, float]], metrics: Iterable[str] = tuple(METRICS)) -> dict[str, float]:
    """Per-metric mean over rows (NaN-free: metrics missing from every row are left out)."""
    totals: dict[str, list[float]] = {m: [] for m in metrics}
    for row in rows:
        for m in totals:
            if m in row:
                totals[m].append(float(row[m]))
    return {m: sum(v) / len(v) for m, v in totals.items() if v}
