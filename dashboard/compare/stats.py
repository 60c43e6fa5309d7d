"""How sure can we be about an eval score, and about a difference between two checkpoints?

With 200 examples a 3-point gap may be noise. Everything here is computed over *examples*:

- :func:`proportion_ci` — the exact Clopper–Pearson interval of a right/wrong rate (exact match,
  contains, pointing hit rate). Unlike a percentile bootstrap it stays honest at the edges: 80 of 80
  right gives [95.5 %, 100 %], not [100 %, 100 %]. (Wilson's closed form was the other candidate; its
  coverage at n = 80, p = 0.5 is 94.3 %, below the 95 % it names, while Clopper–Pearson's never is.)
  Computed with the regularised incomplete beta function below — no scipy at run time.
- :func:`bootstrap_ci` — a seeded percentile bootstrap of the mean, kept for continuous metrics
  (token F1).
- **Clustered by image**: when several examples share an image (or an eval-file ``cluster``),
  they are not independent; :func:`clustered_se` is the cluster-robust standard error, and both
  intervals widen with it (the proportion through the design effect, the bootstrap by resampling
  whole clusters). With one example per image nothing changes.
- :func:`mcnemar_exact` — the exact McNemar test for paired right/wrong outcomes: only the
  discordant examples (A right & B wrong, or the reverse) carry information, and under "no
  difference" each is a fair coin, so the p-value is a two-sided binomial tail.
- :func:`paired_bootstrap` — the same question for continuous metrics (token F1): resample
  the per-example differences, centred on zero, and count how often chance alone gives a
  mean difference as large as the one seen.

- :func:`holm` — Holm's step-down adjustment when several pairs are tested on one metric.
- :func:`minimum_detectable_difference` — the smallest true difference the paired test would find
  with 80 % power at α = 0.05 for this n (from the observed spread of the per-example differences).

Seeded, so a page reload, the headless CLI and an export all print the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
ALPHA = 0.05


POWER = 0.8
CLOPPER_PEARSON = "clopper_pearson"
BOOTSTRAP = "bootstrap"


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` examples with its 95 % interval (NaN when n = 0).

    ``method``: ``clopper_pearson`` or ``bootstrap``; ``se`` the standard error (cluster-robust when
    ``clusters`` < ``n``, i.e. when examples share an image).
    """

    value: float
    ci95: tuple[float, float]
    n: int
    method: str = BOOTSTRAP
    se: float = math.nan
    clusters: int | None = None
    """Number of distinct images (clusters) when fewer than ``n``; None when every example is its own."""

    def as_dict(self, with_n: bool = False) -> dict[str, object]:
        data: dict[str, object] = {"value": self.value, "ci95": [self.ci95[0], self.ci95[1]],
                                   "method": self.method, "se": self.se}
        if self.clusters is not None:
            data["clusters"] = self.clusters
        if with_n:
            data["n"] = self.n
        return data


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) for a, b > 0 (the CDF of Beta(a, b) at x)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b), by bisection on :func:`betainc` (monotone in x)."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


@lru_cache(maxsize=4096)
def clopper_pearson(k: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for k successes in n trials; k and n may be effective
    (non-integer) counts. 0 of n gives a lower bound of exactly 0, n of n an upper bound of exactly 1."""
    if n <= 0:
        return math.nan, math.nan
    k = min(max(k, 0.0), n)
    tail = (1.0 - level) / 2.0
    lo = 0.0 if k <= 0 else beta_ppf(tail, k, n - k + 1.0)
    hi = 1.0 if k >= n else beta_ppf(1.0 - tail, k + 1.0, n - k)
    return lo, hi


def _cluster_ids(clusters: Sequence[Hashable] | None, n: int) -> np.ndarray | None:
    """Integer cluster ids, or None when there are none or every example is its own cluster."""
    if clusters is None or len(clusters) != n:
        return None
    _, ids = np.unique(np.asarray([str(c) for c in clusters], dtype=object), return_inverse=True)
    return ids if ids.max(initial=-1) + 1 < n else None


def naive_se(values: Sequence[float]) -> float:
    data = np.asarray(values, dtype=float)
    return float(data.std(ddof=1) / math.sqrt(data.size)) if data.size > 1 else math.nan


def clustered_se(values: Sequence[float], clusters: Sequence[Hashable] | None) -> float:
    """Cluster-robust standard error of the mean (CR1: residual sums per cluster, G/(G−1) correction).

    Equals :func:`naive_se` when every example is its own cluster; grows with the correlation of
    examples that share an image.
    """
    data = np.asarray(values, dtype=float)
    ids = _cluster_ids(clusters, int(data.size))
    if ids is None:
        return naive_se(values)
    groups = int(ids.max()) + 1
    if groups < 2:
        return math.nan
    sums = np.bincount(ids, weights=data - data.mean(), minlength=groups)
    variance = groups / (groups - 1) * float(np.sum(sums ** 2)) / data.size ** 2
    return math.sqrt(variance)


def proportion_ci(values: Sequence[float], clusters: Sequence[Hashable] | None = None,
                  level: float = 0.95) -> Estimate:
    """Rate of right answers (values 0/1) with its Clopper–Pearson interval.

    With clusters (examples sharing an image) the counts are shrunk to the effective sample size
    n / design effect, the design effect being (clustered SE / naive SE)² (at least 1).
    """
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return Estimate(math.nan, (math.nan, math.nan), 0, CLOPPER_PEARSON)
    mean = float(data.mean())
    ids = _cluster_ids(clusters, n)
    se = naive_se(values)
    n_eff = float(n)
    groups = None
    if ids is not None:
        groups = int(ids.max()) + 1
        robust = clustered_se(values, clusters)
        if se > 0 and math.isfinite(robust):
            n_eff = n / max(1.0, (robust / se) ** 2)
        se = robust
    lo, hi = clopper_pearson(round(mean * n_eff, 9), round(n_eff, 9), level)
    return Estimate(mean, (min(lo, mean), max(hi, mean)), n, CLOPPER_PEARSON, se, groups)


def bootstrap_ci(values: Sequence[float], *, seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
                 level: float = 0.95, clusters: Sequence[Hashable] | None = None) -> Estimate:
    """Mean of ``values`` and its percentile-bootstrap interval over examples (over whole clusters
    when examples share an image)."""
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return Estimate(math.nan, (math.nan, math.nan), 0)
    mean = float(data.mean())
    rng = np.random.default_rng(seed)
    ids = _cluster_ids(clusters, n)
    if ids is None:
        means = data[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
        se, groups = naive_se(values), None
    else:
        groups = int(ids.max()) + 1
        sums, counts = np.bincount(ids, weights=data, minlength=groups), np.bincount(ids, minlength=groups)
        picks = rng.integers(0, groups, size=(resamples, groups))
        means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
        se = clustered_se(values, clusters)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    # The percentile interval of a mean always brackets it up to float rounding; clamp that away.
    return Estimate(mean, (min(float(lo), mean), max(float(hi), mean)), n, BOOTSTRAP, se, groups)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control for several tests), in input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def minimum_detectable_difference(a: Sequence[float], b: Sequence[float],
                                  clusters: Sequence[Hashable] | None = None, *, alpha: float = ALPHA,
                                  power: float = POWER) -> float:
    """Smallest true mean difference the paired test finds with ``power`` at two-sided ``alpha``.

    (z₁₋α/₂ + z_power) × SE of the mean per-example difference (cluster-robust when examples share
    an image). When no example differs, the spread is taken as if 3 of n could (the rule of three),
    so the answer is an honest bound rather than zero.
    """
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    n = int(diff.size)
    if n < 2:
        return math.nan
    se = clustered_se(list(diff), clusters)
    if not se > 0:
        se = math.sqrt(min(1.0, 3.0 / n) / n)
    return (_z(1.0 - alpha) + NormalDist().inv_cdf(power)) * se


def detectable_sentence(n: int, mdd: float, power: float = POWER) -> str:
    """"With 80 examples, differences under 12 points are not detectable at 80 % power"."""
    if not math.isfinite(mdd):
        return f"With {n} example(s), no difference is detectable."
    return (f"With {n} examples, differences under {mdd * 100:.0f} points are not detectable at "
            f"{power:.0%} power (α = {ALPHA}).").replace("%", " %")


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts.

    ``a_only`` examples only A got right, ``b_only`` only B. Under H0 the smaller count is
    Binomial(a_only + b_only, 1/2); the p-value is twice its lower tail, capped at 1.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError("counts must be non-negative")
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of checkpoints A and B on the same examples for one metric."""

    a: str
    b: str
    metric: str
    n: int
    a_only: int
    """Examples where A scored higher than B (for exact match: A right, B wrong)."""
    b_only: int
    p_value: float
    test: str
    """``"mcnemar_exact"`` or ``"paired_bootstrap"``."""
    mean_a: float
    mean_b: float
    min_detectable: float = math.nan
    """:func:`minimum_detectable_difference` for this n (a fraction: 0.12 = 12 points)."""

    @property
    def verdict(self) -> str:
        return verdict(self.a, self.b, self.mean_a, self.mean_b, self.p_value)

    def as_dict(self) -> dict[str, object]:
        """The headless report's ``paired`` entry."""
        return {"a": self.a, "b": self.b, "metric": self.metric, "n": self.n, "a_only": self.a_only,
                "b_only": self.b_only, "test": self.test, "p_value": self.p_value,
                "min_detectable_difference": self.min_detectable}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, seed: int = DEFAULT_SEED,
                     resamples: int = DEFAULT_RESAMPLES) -> float:
    """Two-sided p-value that mean(b − a) differs from 0 (centred bootstrap of the differences)."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    n = int(diff.size)
    if n == 0:
        return 1.0
    observed = abs(float(diff.mean()))
    if observed == 0.0:
        return 1.0
    centred = diff - diff.mean()
    rng = np.random.default_rng(seed)
    means = centred[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    extreme = int(np.count_nonzero(np.abs(means) >= observed - 1e-12))
    return (extreme + 1) / (resamples + 1)


def compare_paired(a_name: str, b_name: str, metric: str, a: Sequence[float], b: Sequence[float], *,
                   binary: bool, seed: int = DEFAULT_SEED, clusters: Sequence[Hashable] | None = None) -> PairedResult:
    """McNemar for a right/wrong metric, paired bootstrap otherwise; inputs aligned by example."""
    if len(a) != len(b):
        raise ValueError("paired scores must be aligned example by example")
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x > y)
    b_only = sum(1 for x, y in zip(a, b, strict=True) if y > x)
    if binary:
        p, test = mcnemar_exact(a_only, b_only), "mcnemar_exact"
    else:
        p, test = paired_bootstrap(a, b, seed=seed), "paired_bootstrap"
    n = len(a)
    mean_a = float(np.mean(a)) if n else math.nan
    mean_b = float(np.mean(b)) if n else math.nan
    return PairedResult(a_name, b_name, metric, n, a_only, b_only, p, test, mean_a, mean_b,
                        minimum_detectable_difference(a, b, clusters))


def format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def verdict(a: str, b: str, mean_a: float, mean_b: float, p_value: float, alpha: float = ALPHA) -> str:
    """Plain words: "checkpoint-900 better, p = 0.003" or "no detectable difference (p = 0.41)"."""
    if math.isnan(p_value) or p_value >= alpha or mean_a == mean_b:
        return f"no detectable difference ({format_p(p_value)})"
    better = b if mean_b > mean_a else a
    return f"{better} better, {format_p(p_value)}"
