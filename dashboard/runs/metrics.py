"""The tidy metrics table shared by the trainer-state and TensorBoard readers.

One row per (step, metric) observation. Building it column-wise from numpy arrays (not from a
list of row dicts) keeps a 1,000,000-entry log in the sub-second range.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ("step", "epoch", "wall_time", "metric", "value", "split", "source", "attempt", "superseded")
"""``attempt``: which training attempt of its log stream wrote the row (0 = the first run; see
:mod:`dashboard.runs.attempts`); ``superseded``: a later attempt re-logged from this step on, so
the surviving run does not contain it."""
EVAL_PREFIXES = ("eval_", "test_", "predict_")
SOURCES = ("trainer_state", "trainer_log", "tensorboard")
"""In order of preference when several log the same metric (see :func:`preferred_source`)."""
SOURCE_FILES = {"trainer_state": "trainer_state.json", "trainer_log": "trainer_log.jsonl",
                "tensorboard": "TensorBoard events"}
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


def state_series(metrics: pd.DataFrame, source: str = "trainer_state") -> pd.DataFrame:
    """Series rows for trainer_state (or trainer_log) metrics: each is its own group, read from the log."""
    names = [str(m) for m in metrics["metric"].cat.categories] if len(metrics) else []
    kind = "log_history" if source == "trainer_state" else source
    return pd.DataFrame({"metric": names, "group": names, "folder": [""] * len(names), "tag": names,
                         "kind": [kind] * len(names), "source": [source] * len(names)},
                        columns=list(SERIES_COLUMNS))


def make_metrics(steps, epochs, wall_times, metrics, values, source: str,
                 names: list[str] | None = None, attempts=None, superseded=None) -> pd.DataFrame:
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
        "attempt": (np.zeros(len(codes), dtype=np.int16) if attempts is None
                    else np.asarray(attempts, dtype=np.int16)),
        "superseded": (np.zeros(len(codes), dtype=bool) if superseded is None
                       else np.asarray(superseded, dtype=bool)),
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


def surviving(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of the run that survived its restarts (no ``superseded`` rows)."""
    if metrics.empty or not metrics["superseded"].any():
        return metrics
    return metrics[~metrics["superseded"].to_numpy()]


def source_choices(metrics: pd.DataFrame, series: pd.DataFrame | None = None) -> dict[str, list[str]]:
    """Metric -> the sources that log it, in preference order, where more than one does.

    A TensorBoard tag counts as the same metric as a trainer_state/trainer_log one when it has
    that name or is logged directly in its group (``loss (runs/x)`` for ``loss``); ``add_scalars``
    sub-runs (``loss/train``) never do: the Trainer never writes those into ``log_history``.
    """
    if metrics.empty or metrics["source"].nunique() < 2:
        return {}
    present = metrics.groupby("metric", observed=True)["source"].unique()
    by_metric: dict[str, set[str]] = {str(m): {str(s) for s in sources} for m, sources in present.items()}
    if series is not None and len(series):
        direct = series[(series["source"] == "tensorboard") & (series["kind"] == "direct")]
        for metric, group in zip(direct["metric"], direct["group"], strict=True):
            if group != metric and group in by_metric and not ({"trainer_state", "trainer_log"}
                                                                 .isdisjoint(by_metric[group])):
                by_metric[group].add("tensorboard")
    return {m: [s for s in SOURCES if s in found] for m, found in by_metric.items() if len(found) > 1}


def source_counts(metrics: pd.DataFrame, metric: str) -> dict[str, int]:
    """How many points each source logged for ``metric``."""
    rows = metrics[metrics["metric"] == metric]
    return {str(k): int(v) for k, v in rows.groupby("source", observed=True).size().items()}


def _tb_alias(series: pd.DataFrame | None, metrics: set[str]) -> dict[str, str]:
    """TensorBoard metric -> the trainer_state/trainer_log metric it duplicates (its group)."""
    if series is None or series.empty:
        return {}
    direct = series[(series["source"] == "tensorboard") & (series["kind"] == "direct")]
    return {str(m): str(g) for m, g in zip(direct["metric"], direct["group"], strict=True) if g in metrics}


def preferred_source(metrics: pd.DataFrame, series: pd.DataFrame | None = None,
                     choice: dict[str, str] | None = None) -> pd.DataFrame:
    """One source per metric: trainer_state, else trainer_log, else TensorBoard (:data:`SOURCES`).

    Two sources usually log the same values; drawing both would double every curve. ``choice``
    overrides the preference per metric (``{"loss": "tensorboard"}``; ``"all"`` keeps every
    source). A TensorBoard tag logged directly in a metric's group (``loss (runs/x)``) follows
    the group's choice; ``add_scalars`` sub-runs always stay (see :func:`source_choices`).
    """
    if metrics.empty or metrics["source"].nunique() < 2:
        return metrics
    choice = choice or {}
    options = source_choices(metrics, series)
    if not options:
        return metrics
    cats = [str(c) for c in metrics["metric"].cat.categories]
    codes = metrics["metric"].cat.codes.to_numpy()
    is_tb = (metrics["source"] == "tensorboard").to_numpy()
    alias = _tb_alias(series, set(options))
    key_of = {c: i for i, c in enumerate(cats)}
    # Each row's metric as the choice sees it: TensorBoard tags of a chosen metric's group map to it.
    tb_key = np.array([key_of.get(alias.get(c, c), i) for i, c in enumerate(cats)], dtype=np.int64)
    keys = np.where(is_tb, tb_key[codes], codes)
    src_codes = metrics["source"].cat.codes.to_numpy()
    src_cats = [str(c) for c in metrics["source"].cat.categories]
    keep = np.ones(len(metrics), dtype=bool)
    for metric, available in options.items():
        wanted = choice.get(metric, available[0])
        if wanted == "all":
            continue
        if wanted not in available:
            wanted = available[0]
        rows = keys == key_of[metric]
        keep &= ~rows | (src_codes == src_cats.index(wanted))
    return metrics[keep]
