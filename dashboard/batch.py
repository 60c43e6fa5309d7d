"""Inference batch results as rows people read and export: answer, ✓/✗ against the reference, timings.

Scoring goes through the metric registry, exactly as on the Comparison page (one metric, one place), and
the timings follow :class:`~dashboard.generation.GenerationResult`: a row's phase timings are its
batch's, so each row says how many rows shared them and its per-example share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dashboard.formatting import fmt_fraction, fmt_seconds
from dashboard.generation import GenerationResult, result_stats
from dashboard.metrics import score

CORRECT, WRONG = "✓", "✗"


@dataclass(frozen=True)
class BatchItem:
    """What went into one row: image name, prompt, and the reference answer when it came from an eval set."""

    image: str
    prompt: str
    reference: str | None = None


def batch_rows(items: Sequence[BatchItem], results: Sequence[GenerationResult]) -> list[dict[str, Any]]:
    """One row per item: output, ``correct`` (✓/✗ by exact match, only with a reference), every default
    metric of the registry (as on the Comparison page) and timings."""
    rows = []
    for item, result in zip(items, results, strict=True):
        row: dict[str, Any] = {"image": item.image, "prompt": item.prompt, "output": result.text}
        if item.reference is not None:
            scores = score(result.text, item.reference)
            row.update(reference=item.reference, correct=CORRECT if scores["exact_match"] == 1.0 else WRONG,
                       **scores)
        row.update(result_stats(result))
        rows.append(row)
    return rows


def batch_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """``17 / 40 correct (42.5% exact match) · 40 answers in 12.3 s, 308 ms per example``."""
    parts = []
    scored = [r for r in rows if "exact_match" in r]
    if scored:
        right = sum(1 for r in scored if r["exact_match"] == 1.0)
        parts.append(f"{right} / {len(scored)} correct ({fmt_fraction(right / len(scored))} exact match)")
    total = sum(float(r.get("per_example_s") or 0.0) for r in rows)
    if rows:
        parts.append(f"{len(rows)} answers in {fmt_seconds(total)}, {fmt_seconds(total / len(rows))} per example")
    return " · ".join(parts)
