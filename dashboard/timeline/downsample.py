"""Bound the points sent to the browser while keeping every extreme visible.

Min/max bucketing: split the series into equal-count buckets and keep, per bucket, the
indices of its minimum and maximum (in x order), plus the first and last point. Spikes
(a loss blow-up at one step) therefore survive any zoom level, unlike stride sampling.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_MAX_POINTS = 2_000


def minmax_indices(y: np.ndarray, max_points: int = DEFAULT_MAX_POINTS) -> np.ndarray:
    """Sorted indices of at most ``max_points`` points of ``y`` that include each bucket's min and max.

    ``y`` must be finite (non-finite rows are kept out of the plot before this).
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    if n <= max_points:
        return np.arange(n)
    n_buckets = (max_points - 2) // 2
    size = math.ceil(n / n_buckets)
    n_buckets = math.ceil(n / size)  # no bucket is pure padding
    pad = n_buckets * size - n
    lo = np.concatenate([y, np.full(pad, np.inf)]).reshape(n_buckets, size)
    hi = np.concatenate([y, np.full(pad, -np.inf)]).reshape(n_buckets, size)
    offsets = np.arange(n_buckets) * size
    keep = np.concatenate([[0, n - 1], offsets + lo.argmin(axis=1), offsets + hi.argmax(axis=1)])
    return np.unique(keep)


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = DEFAULT_MAX_POINTS,
               x_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points to draw: those inside ``x_range`` (full resolution when few enough), then bucketed."""
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    if x_range is not None:
        inside = (x >= x_range[0]) & (x <= x_range[1])
        x, y = x[inside], y[inside]
    idx = minmax_indices(y, max_points)
    return x[idx], y[idx]
