"""The tidy metrics table shared by the trainer-state and TensorBoard readers.

One row per (step, metric) observation. Building it column-wise from numpy arrays (not from a
list of row dicts) keeps a 1,000,000-entry log in the sub-second range.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ("step", "epoch", "wall_time", "metric", "value", "split", "source")
EVAL_PREFIXES = ("eval_", "test_", "predict_")
SOURCES = ("trainer_state", "tensorboard")
SERIES_COLUMNS = ("metric", "group", "folder", "tag", "kind", "source")
"""One row per metric name: which (event folder, tag) it is read from, the chart group it shares
(``loss/train`` and ``loss/val`` are both in group ``loss``) and ``kind`` (``direct`` /
``sub-run`` for ``add_scalars`` series / ``log_history`` for trainer_state)."""


EVAL_SUB_RUNS = frozenset({"val", "valid", "validation", "eval", "test"})


def split_of(metric: str) -> str:
    """``eval_*`` (and ``test_*``/``predict_*``) metrics and ``add_scalars`` sub-runs named like
    ``loss/val`` are evaluation metrics; the rest are train."""
    if metric.startswith(EVAL_PREFIXES):
        return "eval"
    return "eval" if "/" in metric and metric.rsplit("/", 1)[1].lower() in EVAL_SUB_RUNS else "train"


def empty_metrics() -> pd.DataFrame:
    return make_metrics([], [], [], np.array([], dtype=np.int32), [], source="trainer_state", names=[])


def empty_series() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in SERIES_COLUMNS})


def state_series(metrics: pd.DataFrame) -> pd.DataFrame:
    """Series rows for trainer_state metrics: each is its own group, read from ``log_history``."""
    names = [str(m) for m in metrics["metric"].cat.categories] if len(metrics) else []
    return pd.DataFrame({"metric": names, "group": names, "folder": [""] * len(names), "tag": names,
                         "kind": ["log_history"] * len(names), "source": ["trainer_state"] * len(names)},
                        columns=list(SERIES_COLUMNS))


def make_metrics(steps, epochs, wall_times, metrics, values, source: str,
                 names: list[str] | None = None) -> pd.DataFrame:
    """Assemble the table from parallel arrays.

    ``metrics`` is either a sequence of names or, with ``names`` given, integer codes into
    ``names``. The text columns are categoricals: 10⁶ rows share a handful of names, and
    materialising millions of Python/Arrow strings would cost seconds.
    """
    if names is None:
        codes, uniques = pd.factorize(np.asarray(metrics, dtype=object))
        names = [str(u) for u in uniques]
    else:
        codes = np.asarray(metrics, dtype=np.int32)
    codes = np.asarray(codes, dtype=np.int32)
    metric = pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object))
    split_names = sorted({split_of(n) for n in names} | {"train", "eval"})
    split_lookup = np.array([split_names.index(split_of(n)) for n in names], dtype=np.int32)
    split = pd.Categorical.from_codes(split_lookup[codes] if len(names) else codes,
                                      categories=pd.Index(split_names, dtype=object))
    source_col = pd.Categorical.from_codes(np.zeros(len(codes), dtype=np.int8),
                                           categories=pd.Index(SOURCES, dtype=object))
    if source != SOURCES[0]:
        source_col = pd.Categorical.from_codes(np.full(len(codes), SOURCES.index(source), dtype=np.int8),
                                               categories=pd.Index(SOURCES, dtype=object))
    return pd.DataFrame({
        "step": np.asarray(steps, dtype=np.int64),
        "epoch": np.asarray(epochs, dtype=np.float64),
        "wall_time": np.asarray(wall_times, dtype=np.float64),
        "metric": metric,
        "value": np.asarray(values, dtype=np.float64),
        "split": split,
        "source": source_col,
    }, copy=False)  # no block consolidation: copying 3×10⁶ floats into one block cost ~0.5 s


def concat_metrics(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate tables, unifying the categorical columns so they stay categorical (cheap)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_metrics()
    if len(frames) == 1:
        return frames[0]
    frames = [f.copy(deep=False) for f in frames]
    for column in ("metric", "split", "source"):
        categories = list(dict.fromkeys(c for f in frames for c in f[column].cat.categories))
        for f in frames:
            f[column] = f[column].cat.set_categories(categories)
    return pd.concat(frames, ignore_index=True)


def preferred_source(metrics: pd.DataFrame, series: pd.DataFrame | None = None) -> pd.DataFrame:
    """One source per metric: trainer_state where it has the metric, TensorBoard otherwise.

    Both sources usually log the same values; drawing both would double every curve. With the
    ``series`` table, a TensorBoard tag logged directly (in any folder) whose group trainer_state
    also has is dropped too, while ``add_scalars`` sub-runs (``loss/train``) always stay: the
    Trainer never writes those into ``log_history``.
    """
    if metrics.empty or metrics["source"].nunique() < 2:
        return metrics
    from_state = set(metrics.loc[metrics["source"] == "trainer_state", "metric"].astype(object).unique())
    duplicated = set(from_state)
    if series is not None and len(series):
        direct = series[(series["source"] == "tensorboard") & (series["kind"] == "direct")]
        duplicated |= set(direct.loc[direct["group"].isin(from_state), "metric"])
    keep = (metrics["source"] == "trainer_state") | ~metrics["metric"].isin(duplicated)
    return metrics[keep]
