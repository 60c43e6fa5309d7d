"""Inference batch rows: ✓/✗ by the shared exact match, accuracy summary, per-example time."""

from __future__ import annotations

from dashboard.batch import BatchItem, batch_rows, batch_summary
from dashboard.generation import GenerationResult
from dashboard.metrics import exact_match


def _result(text: str, latency: float = 1.0, batch: int = 2) -> GenerationResult:
    return GenerationResult(text=text, prompt_tokens=10, output_tokens=2, latency_s=latency, ttft_s=0.5,
                            tokens_per_s=2.0, preprocess_s=0.1, decode_s=0.4, batch_size=batch)


def test_rows_score_like_the_comparison_page() -> None:
    items = [BatchItem("a.png", "colour?", "The red."), BatchItem("b.png", "shape?", "circle"),
             BatchItem("up.png", "what?")]
    rows = batch_rows(items, [_result("red"), _result("square"), _result("a cat", batch=1)])
    assert [r.get("correct") for r in rows] == ["✓", "✗", None]
    # same normalisation as Comparison's exact match ("The red." == "red"), not a bare lower()
    assert rows[0]["exact_match"] == exact_match("red", "The red.") == 1.0
    assert "reference" not in rows[2]
    assert rows[0]["per_example_s"] == 0.5 and rows[0]["batch_size"] == 2


def test_summary_counts_correct_answers_and_time_per_example() -> None:
    items = [BatchItem("a", "p", "red"), BatchItem("b", "p", "blue"), BatchItem("c", "p", "red")]
    rows = batch_rows(items, [_result("red"), _result("red"), _result("red", latency=0.6, batch=1)])
    assert batch_summary(rows) == "2 / 3 correct (66.7% exact match) · 3 answers in 1.60 s, 533 ms per example"
    assert batch_summary(batch_rows([BatchItem("u", "p")], [_result("x", batch=1)])) == \
        "1 answers in 1.00 s, 1.00 s per example"
