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
    assert set(strong.as_dict()) == {"a", "b", "metric", "n", "a_only", "b_only", "test", "p_value",
                                     "min_detectable_difference"}
    with pytest.raises(ValueError):
        compare_paired("a", "b", "exact_match", [1], [1, 0], binary=True)


def test_verdict_words() -> None:
    assert verdict("A", "B", 0.9, 0.5, 0.0004) == "A better, p < 0.001"
    assert verdict("A", "B", 0.5, 0.52, 0.41) == "no detectable difference (p = 0.410)"


# ------------------------------------------------------------------ intervals honest at the edges (issue 36)
from dashboard.compare.stats import (  # noqa: E402
    clopper_pearson,
    clustered_se,
    detectable_sentence,
    holm,
    minimum_detectable_difference,
    naive_se,
    proportion_ci,
)


@pytest.mark.parametrize("n", [20, 80, 200])
@pytest.mark.parametrize("p", [0.5, 0.9, 1.0])
def test_proportion_interval_coverage_by_simulation(n: int, p: float) -> None:
    """A 95 % interval must contain the true rate in ≥ 94 % of repeated evals (seeded simulation)."""
    rng = np.random.default_rng(1234 + n)
    draws = rng.binomial(n, p, size=2000)
    covered = 0
    for k in draws:
        lo, hi = proportion_ci([1.0] * int(k) + [0.0] * (n - int(k))).ci95
        covered += lo <= p <= hi
    assert covered / len(draws) >= 0.94, (n, p, covered / len(draws))


@pytest.mark.parametrize("n", [20, 80, 200])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.95, 1.0])
def test_proportion_interval_exact_coverage_is_at_least_nominal(n: int, p: float) -> None:
    """The same property without sampling noise: the binomial probability of the k whose interval covers p."""
    coverage = sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k)
                   for k in range(n + 1) if clopper_pearson(k, n)[0] <= p <= clopper_pearson(k, n)[1])
    assert coverage >= 0.95 - 1e-9


def test_all_right_is_not_certainty() -> None:
    """Before: 80/80 correct gave ci95 [1.0, 1.0] (percentile bootstrap)."""
    est = proportion_ci([1.0] * 80)
    assert est.value == 1.0 and est.ci95[1] == 1.0 and 0.9 < est.ci95[0] < 0.97 and est.method == "clopper_pearson"
    none = proportion_ci([0.0] * 80)
    assert none.ci95[0] == 0.0 and 0.03 < none.ci95[1] < 0.1
    assert math.isnan(proportion_ci([]).value)


def test_clopper_pearson_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for n in (1, 7, 20, 80, 200):
        for k in range(0, n + 1, max(1, n // 9)):
            lo, hi = clopper_pearson(k, n)
            want_lo = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
            want_hi = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
            assert (lo, hi) == pytest.approx((want_lo, want_hi), abs=1e-9)


def test_shared_images_widen_the_interval_like_fewer_examples() -> None:
    """Each example asked three times about one image carries one example's worth of evidence."""
    base = [1.0] * 30 + [0.0] * 20
    tripled = [v for v in base for _ in range(3)]
    images = [f"img{i}" for i in range(len(base)) for _ in range(3)]
    assert clustered_se(base, [f"img{i}" for i in range(len(base))]) == pytest.approx(naive_se(base))
    assert clustered_se(tripled, images) == pytest.approx(naive_se(base), rel=1e-9)
    assert clustered_se(tripled, images) > 1.5 * naive_se(tripled)
    clustered, naive, single = proportion_ci(tripled, images), proportion_ci(tripled), proportion_ci(base)
    assert clustered.clusters == 50 and naive.clusters is None
    width = lambda e: e.ci95[1] - e.ci95[0]  # noqa: E731
    assert width(clustered) > 1.5 * width(naive)
    assert width(clustered) == pytest.approx(width(single), rel=0.05)
    boot = bootstrap_ci(tripled, clusters=images)
    assert width(boot) > 1.4 * width(bootstrap_ci(tripled)) and boot.clusters == 50


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2]) == [0.2] and holm([]) == []
    adjusted = holm([0.001, 0.5, 0.02, 0.04])
    assert all(a >= p for a, p in zip(adjusted, [0.001, 0.5, 0.02, 0.04], strict=True)) and max(adjusted) <= 1


def test_minimum_detectable_difference_shrinks_with_n() -> None:
    def mdd(n: int) -> float:
        a = [0.0] * (n // 2) + [1.0] * (n - n // 2)
        b = [1.0] * (n // 4) + [0.0] * (n // 4) + [1.0] * (n - n // 2)  # a quarter discordant each way
        return minimum_detectable_difference(a, b)

    assert mdd(80) > mdd(320) > 0
    assert mdd(320) == pytest.approx(mdd(80) / 2, rel=0.1)  # ∝ 1/√n
    assert minimum_detectable_difference([1.0] * 80, [1.0] * 80) > 0  # no disagreement seen is not "any difference"
    assert detectable_sentence(80, 0.12) == ("With 80 examples, differences under 12 points are not detectable "
                                             "at 80 % power (α = 0.05).")
