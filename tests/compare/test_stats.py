"""Bootstrap intervals and McNemar tests against hand-computed cases and scipy's oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dashboard.compare.stats import (
    bootstrap_ci,
    compare_paired,
    mcnemar_exact,
    paired_bootstrap,
    verdict,
)


@pytest.mark.parametrize(("a_only", "b_only", "expected"), [
    (1, 9, 2 * (1 + 10) / 1024),     # 2 · P(X ≤ 1), X ~ Bin(10, ½) = 2 · 11/1024
    (0, 5, 2 / 32),                  # 2 · (½)^5
    (5, 0, 2 / 32),                  # symmetric
    (2, 2, 1.0),                     # doubled tail > 1 is capped
    (0, 0, 1.0),                     # no discordant pairs: no evidence
    (3, 12, 2 * (1 + 15 + 105 + 455) / 2 ** 15),
])
def test_mcnemar_exact_hand_computed(a_only: int, b_only: int, expected: float) -> None:
    assert mcnemar_exact(a_only, b_only) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_exact_matches_scipy_binomtest() -> None:
    stats = pytest.importorskip("scipy.stats")
    for a_only in range(0, 25):
        for b_only in range(0, 25):
            if a_only + b_only == 0:
                continue
            oracle = stats.binomtest(a_only, a_only + b_only, 0.5, alternative="two-sided").pvalue
            assert mcnemar_exact(a_only, b_only) == pytest.approx(oracle, rel=1e-9, abs=1e-15)


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_bootstrap_ci_constant_and_empty() -> None:
    est = bootstrap_ci([1.0] * 30)
    assert est.value == 1.0 and est.ci95 == (1.0, 1.0) and est.n == 30
    empty = bootstrap_ci([])
    assert empty.n == 0 and math.isnan(empty.value) and all(math.isnan(x) for x in empty.ci95)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = [1.0] * 37 + [0.0] * 63
    a, b, c = bootstrap_ci(values, seed=0), bootstrap_ci(values, seed=0), bootstrap_ci(values, seed=1)
    assert a == b and a.ci95 != c.ci95
    assert a.value == pytest.approx(0.37)
    assert a.ci95[0] < a.value < a.ci95[1]


def test_bootstrap_ci_close_to_the_normal_interval_of_a_proportion() -> None:
    """n = 400, p̂ = 0.5: the textbook interval is 0.5 ± 1.96·√(0.25/400) = [0.451, 0.549]."""
    values = [1.0, 0.0] * 200
    lo, hi = bootstrap_ci(values, resamples=4000).ci95
    half = 1.96 * math.sqrt(0.25 / 400)
    assert lo == pytest.approx(0.5 - half, abs=0.008) and hi == pytest.approx(0.5 + half, abs=0.008)


def test_bootstrap_ci_matches_scipy_percentile_bootstrap() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    values = rng.uniform(0, 1, 150)
    ours = bootstrap_ci(values, resamples=5000).ci95
    oracle = stats.bootstrap((values,), np.mean, n_resamples=5000, method="percentile",
                             random_state=np.random.default_rng(3)).confidence_interval
    assert ours[0] == pytest.approx(oracle.low, abs=0.01) and ours[1] == pytest.approx(oracle.high, abs=0.01)


def test_paired_bootstrap_detects_shift_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 200)
    assert paired_bootstrap(a, a) == 1.0
    assert paired_bootstrap(a, np.clip(a + 0.2, 0, 1)) < 0.001
    noise = a + rng.normal(0, 0.01, 200)
    assert paired_bootstrap(a, noise - (noise - a).mean()) > 0.5


def test_paired_bootstrap_agrees_with_a_paired_t_test() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 300)
    b = a + rng.normal(0.03, 0.25, 300)
    oracle = stats.ttest_rel(b, a).pvalue
    assert paired_bootstrap(a, b, resamples=5000) == pytest.approx(oracle, abs=0.02)


def test_compare_paired_counts_and_verdict() -> None:
    a = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    b = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    result = compare_paired("ckpt-a", "ckpt-b", "exact_match", a, b, binary=True)
    assert (result.a_only, result.b_only, result.n) == (2, 9, 12)
    assert result.test == "mcnemar_exact"
    assert result.p_value == pytest.approx(2 * (1 + 11 + 55) / 2 ** 11)
    assert result.verdict == f"no detectable difference (p = {result.p_value:.3f})"
    strong = compare_paired("ckpt-a", "ckpt-b", "exact_match", [0] * 10, [1] * 10, binary=True)
    assert strong.verdict == "ckpt-b better, p = 0.002"
    assert set(strong.as_dict()) == {"a", "b", "metric", "a_only", "b_only", "p_value"}
    with pytest.raises(ValueError):
        compare_paired("a", "b", "exact_match", [1], [1, 0], binary=True)


def test_verdict_words() -> None:
    assert verdict("A", "B", 0.9, 0.5, 0.0004) == "A better, p < 0.001"
    assert verdict("A", "B", 0.5, 0.52, 0.41) == "no detectable difference (p = 0.410)"
