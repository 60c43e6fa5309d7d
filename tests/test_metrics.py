"""Answer metrics: normalisation, exact match, contains, token F1."""

from __future__ import annotations

import pytest

from dashboard.compare.scoring import contains, exact_match, mean_scores, normalize_answer, score, token_f1


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


def test_mean_scores() -> None:
    rows = [{"exact_match": 1.0, "token_f1": 1.0}, {"exact_match": 0.0, "token_f1": 0.5}]
    assert mean_scores(rows, ["exact_match", "token_f1", "contains"]) == {"exact_match": 0.5, "token_f1": 0.75}
