"""TensorBoard's scalar smoothing (debiased exponential moving average), vectorised.

TensorBoard's ``classicSmoothing``: ``last = last·w + (1-w)·v``; ``out = last / (1 - w^n)``
with ``n`` counting the finite points so far; non-finite points and constant series pass through
unchanged. The debiased EMA equals pandas' ``ewm(alpha=1-w, adjust=True, ignore_na=True)``,
which runs in C: 10⁶ points in milliseconds instead of a Python loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def tb_smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Smooth ``values`` like TensorBoard's slider at ``weight`` (0 = raw, must be < 1)."""
    values = np.asarray(values, dtype=np.float64)
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    if weight == 0.0 or values.size == 0:
        return values.copy()
    finite = np.isfinite(values)
    if finite.all() and values.min() == values.max():  # constant series: TensorBoard leaves it as is
        return values.copy()
    out = values.copy()
    if finite.any():
        smoothed = pd.Series(values[finite]).ewm(alpha=1.0 - weight, adjust=True).mean().to_numpy()
        out[finite] = smoothed
    return out


def tb_smooth_reference(values, weight: float) -> list[float]:
    """The loop exactly as TensorBoard writes it; used by tests to check :func:`tb_smooth`."""
    data = [float(v) for v in values]
    is_constant = all(v == data[0] for v in data)
    last, num_accum, out = 0.0, 0, []
    for v in data:
        if is_constant or not np.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        num_accum += 1
        debias = 1.0 - weight ** num_accum if weight != 1 else 1.0
        out.append(last / debias)
    return out
