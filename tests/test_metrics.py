"""The metric registry: normalisation, answer metrics, lookup of logged names, and one score per output
everywhere (Inference batch, Comparison, Attention pointing, demo trainer, Timeline best choice)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dashboard.attention.adapters.base import GridView, uniform_boxes
from dashboard.attention.pointing import score_example
from dashboard.compare.results import CheckpointScores
from dashboard.compare.sweep import result_row
from dashboard.demo.train import exact_match_metrics
from dashboard.generation import GenerationResult
from dashboard.metrics import (
    aggregate_scores,
    answer_metrics,
    best_mode,
    contains,
    default_metrics,
    describe,
    exact_match,
    format_metric,
    get_metric,
    normalize_answer,
    register_metric,
    score,
    token_f1,
)
from dashboard.timeline.series import default_mode


@pytest.mark.parametrize(("raw", "norm"), [
    ("The Red.", "red"), ("  a   BLUE  square!! ", "blue square"), ("ＲＥＤ", "red"),
    ("top-left", "top left"), ("Ünïcode", "ünïcode"), ("", ""),
])
def test_normalize(raw: str, norm: str) -> None:
    assert normalize_answer(raw) == norm


def test_exact_match() -> None:
    assert exact_match("The red.", "red") == 1.0
    assert exact_match("red circle", "red") == 0.0


def test_contains_is_whole_word() -> None:
    assert contains("it is the red circle", "red circle") == 1.0
    assert contains("reddish", "red") == 0.0
    assert contains("circle red", "red circle") == 0.0


def test_token_f1() -> None:
    assert token_f1("red circle", "red circle") == 1.0
    assert token_f1("blue", "red") == 0.0
    assert token_f1("red square", "red circle") == pytest.approx(0.5)
    assert token_f1("big red circle", "red circle") == pytest.approx(0.8)
    assert token_f1("", "") == 1.0
    assert token_f1("", "red") == 0.0


def test_score_selects_metrics_and_rejects_unknown() -> None:
    assert score("red", "red", ["contains"]) == {"contains": 1.0}
    with pytest.raises(KeyError, match="unknown metric 'bleu'"):
        score("red", "red", ["bleu"])


def test_aggregate_scores() -> None:
    rows = [{"exact_match": 1.0, "token_f1": 1.0}, {"exact_match": 0.0, "token_f1": 0.5}]
    assert aggregate_scores(rows, ["exact_match", "token_f1", "contains"]) == {"exact_match": 0.5, "token_f1": 0.75}


def test_defaults_and_labels() -> None:
    assert default_metrics() == ("exact_match", "contains", "token_f1")
    assert score("red", "red") == {"exact_match": 1.0, "contains": 1.0, "token_f1": 1.0}
    assert [m.name for m in answer_metrics()][:3] == list(default_metrics())
    assert get_metric("token_f1").label == "Token F1"
    assert format_metric("exact_match", 0.675) == "67.5%"
    assert format_metric("eval_loss", 0.123456) == "0.1235"


def test_registering_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_metric("exact_match", label="again", higher_is_better=True)(lambda o, r: 0.0)
    with pytest.raises(TypeError, match="read from training logs"):
        get_metric("loss").score("a", "b")


@pytest.mark.parametrize(("name", "mode", "kind"), [
    ("loss", "min", "loss"), ("eval_loss", "min", "loss"), ("train/loss", "min", "loss"),
    ("eval_runtime", "min", "seconds"), ("eval_samples_per_second", "max", "rate"),
    ("eval_accuracy", "max", "fraction"), ("eval_accuracy_colour", "max", "fraction"),
    ("eval_exact_match", "max", "fraction"), ("eval_wer", "min", "number"), ("eval_mse", "min", "number"),
    # Word, not substring: "answer" holds "wer", "precision" holds nothing lower-better.
    ("eval_answer_accuracy", "max", "fraction"), ("eval_precision", "max", "fraction"),
    ("grad_norm", "max", "number"),
])
def test_describe_logged_names(name: str, mode: str, kind: str) -> None:
    info = describe(name)
    assert (info.mode, info.kind) == (mode, kind)
    assert best_mode(name) == mode


def test_timeline_best_choice_follows_the_registry() -> None:
    """Before the registry the Timeline matched substrings: ``eval_answer_accuracy`` holds "wer" → min."""
    for name in ("eval_answer_accuracy", "eval_mse", "eval_loss", "eval_accuracy"):
        assert default_mode(name) == best_mode(name)
    assert default_mode("eval_answer_accuracy") == "max"
    assert default_mode("eval_mse") == "min"


# (model output, reference answer): outputs that differ from the reference only in case,
# punctuation, articles, Unicode width — the same answer — and plainly wrong ones.
SAME_ANSWER = [("red", "The RED."), ("Red", "red"), ("ｒｅｄ", "red"), ("the red .", "red")]
WRONG_ANSWER = [("blue", "red"), ("", "red")]


def _pointing_correct(output: str, answer: str) -> bool:
    view = GridView("image", np.arange(4).reshape(2, 2), uniform_boxes(2, 2, (0, 0, 64, 64)))
    grids = np.ones((1, 2, 2))
    return score_example("x", grids, view, (0, 0, 32, 32), output, answer).correct


def _comparison_exact_match(output: str, answer: str) -> float:
    """Fresh rows (runner) and rescored saved rows (results) both."""
    example = SimpleNamespace(id="1", prompt="q", image_path=Path("a.png"), answer=answer)
    result = GenerationResult(text=output, prompt_tokens=1, output_tokens=1, latency_s=0.1, ttft_s=0.1,
                              tokens_per_s=10.0)
    fresh = result_row(example, result, None)["scores"]["exact_match"]  # type: ignore[arg-type]
    saved = CheckpointScores(checkpoint="c", step=1, eval_set="e", settings={}, settings_key="k",
                             checkpoint_signature="s", rows=[{"id": "1", "output": output}], total=1)
    rescored = saved.rescored({"1": answer}).metrics["exact_match"]
    assert fresh == rescored
    return fresh


def _demo_trainer_accuracy(output: str, answer: str) -> float:
    return exact_match_metrics([SimpleNamespace(answer=answer, task="colour")], [output])["accuracy"]  # type: ignore[list-item]


@pytest.mark.parametrize(("output", "answer"), SAME_ANSWER + WRONG_ANSWER)
def test_the_same_output_scores_the_same_on_every_page(output: str, answer: str) -> None:
    """Comparison, the demo trainer's eval and the Attention pointing check agree with the registry.

    (The Inference batch table is checked through the page in ``tests/pages/test_inference.py``.)
    Before the registry: the demo trainer kept "the" and the Attention check compared raw
    lower-cased words, so "the red ." / "ｒｅｄ" were right on one page and wrong on another.
    """
    expected = exact_match(output, answer)
    assert expected == (1.0 if (output, answer) in SAME_ANSWER else 0.0)
    assert _comparison_exact_match(output, answer) == expected
    assert _demo_trainer_accuracy(output, answer) == expected
    assert _pointing_correct(output, answer) == bool(expected)


def test_display_kind_needs_the_name_and_the_range() -> None:
    from dashboard.metrics import display_kind, format_metric

    assert display_kind("eval_accuracy", [0.5, 1.0]) == "fraction"
    assert display_kind("eval_accuracy", [50.0, 100.0]) == "number"  # logged as 0–100: left as numbers
    assert display_kind("eval_loss", [0.1]) == "loss" and display_kind("grad_norm") == "number"
    assert format_metric("eval_accuracy", 1.0) == "100.0%" and format_metric("eval_loss", 0.0026) == "0.0026"
