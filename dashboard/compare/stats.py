"""How sure can we be about an eval score, and about a difference between two checkpoints?

With 200 examples a 3-point gap may be noise. Everything here is computed over *examples*:

- :func:`bootstrap_ci` — a seeded percentile bootstrap of the mean (any metric in [0, 1]).
- :func:`mcnemar_exact` — the exact McNemar test for paired right/wrong outcomes: only the
  discordant examples (A right & B wrong, or the reverse) carry information, and under "no
  difference" each is a fair coin, so the p-value is a two-sided binomial tail.
- :func:`paired_bootstrap` — the same question for continuous metrics (token F1): resample
  the per-example differences, centred on zero, and count how often chance alone gives a
  mean difference as large as the one seen.

Seeded, so a page reload, the headless CLI and an export all print the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
ALPHA = 0.05


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` examples with its 95 % bootstrap interval (NaN when n = 0)."""

    value: float
    ci95: tuple[float, float]
    n: int

    def as_dict(self, with_n: bool = False) -> dict[str, object]:
        data: dict[str, object] = {"value": self.value, "ci95": [self.ci95[0], self.ci95[1]]}
        if with_n:
            data["n"] = self.n
        return data


def bootstrap_ci(values: Sequence[float], *, seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
                 level: float = 0.95) -> Estimate:
    """Mean of ``values`` and its percentile-bootstrap interval over examples."""
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return Estimate(math.nan, (math.nan, math.nan), 0)
    mean = float(data.mean())
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    # The percentile interval of a mean always brackets it up to float rounding; clamp that away.
    return Estimate(mean, (min(float(lo), mean), max(float(hi), mean)), n)


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

    @property
    def verdict(self) -> str:
        return verdict(self.a, self.b, self.mean_a, self.mean_b, self.p_value)

    def as_dict(self) -> dict[str, object]:
        """The headless report's ``paired`` entry."""
        return {"a": self.a, "b": self.b, "metric": self.metric, "a_only": self.a_only, "b_only": self.b_only,
                "p_value": self.p_value}


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
                   binary: bool, seed: int = DEFAULT_SEED) -> PairedResult:
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
    return PairedResult(a_name, b_name, metric, n, a_only, b_only, p, test, mean_a, mean_b)


def format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def verdict(a: str, b: str, mean_a: float, mean_b: float, p_value: float, alpha: float = ALPHA) -> str:
    """Plain words: "checkpoint-900 better, p = 0.003" or "no detectable difference (p = 0.41)"."""
    if math.isnan(p_value) or p_value >= alpha or mean_a == mean_b:
        return f"no detectable difference ({format_p(p_value)})"
    better = b if mean_b > mean_a else a
    return f"{better} better, {format_p(p_value)}"
