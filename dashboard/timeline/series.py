"""Turn a loaded run into what the Timeline draws: metric series, checkpoint markers, best pick.

Pure functions over :class:`~dashboard.runs.run.RunData` so they are unit-tested without
Streamlit; values are taken from the metrics table untouched (smoothing is a separate layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import pandas as pd

from dashboard.metrics import best_mode, format_metric
from dashboard.runs.checkpoints import CheckpointInfo
from dashboard.runs.metrics import preferred_source
from dashboard.runs.run import RunData

T = TypeVar("T")

XAxis = Literal["step", "epoch", "wall_time"]
X_LABELS: dict[str, str] = {"step": "Step", "epoch": "Epoch", "wall_time": "Wall time"}


@dataclass(frozen=True)
class Series:
    """One metric of one run, in step order, finite values only."""

    metric: str
    step: np.ndarray
    x: np.ndarray
    y: np.ndarray
    source: str
    split: str = "train"
    """``train`` / ``eval`` (eval series are sparse: a point per evaluation)."""


@dataclass(frozen=True)
class BestCheckpoint:
    """The best checkpoint by one metric, and the best logged step overall for honesty's sake.

    Only steps that have a checkpoint can be opened, so the pick is made among them; when a
    step without a checkpoint logged a better value, :attr:`explanation` says so.
    """

    checkpoint: CheckpointInfo | None
    step: int
    value: float
    metric: str
    mode: Literal["min", "max"]
    candidates: int = 0
    """How many checkpoint steps logged the metric (0: none did; the pick is over all steps)."""
    overall_step: int | None = None
    overall_value: float | None = None

    @property
    def explanation(self) -> str:
        word = "lowest" if self.mode == "min" else "highest"
        value = format_metric(self.metric, self.value)
        if self.checkpoint is None:
            return (f"no checkpoint step logged {self.metric}; the {word} logged value is {value} at step "
                    f"{self.step}, which has no checkpoint")
        text = (f"{word} {self.metric} among the {self.candidates} checkpoint(s) that logged it: {value} at step "
                f"{self.step} ({self.checkpoint.name})")
        if self.overall_step is not None and self.overall_step != self.step and self.overall_value is not None \
                and self.overall_value != self.value:
            text += (f". A better value, {format_metric(self.metric, self.overall_value)}, was logged at step "
                     f"{self.overall_step}, which has no checkpoint")
        return text


def plot_metrics(run: RunData, sources: dict[str, str] | None = None) -> pd.DataFrame:
    """The surviving run's metrics with one source per metric (trainer_state preferred, or as
    ``sources`` picks per metric; see :func:`dashboard.runs.metrics.preferred_source`)."""
    if not sources:
        return run.preferred_metrics
    return preferred_source(run.surviving_metrics, run.series, sources)


def attempt_metrics(run: RunData, sources: dict[str, str] | None = None) -> pd.DataFrame:
    """Like :func:`plot_metrics` but with every attempt's rows, the replaced ones included."""
    return preferred_source(run.metrics, run.series, sources)


def attempt_series(metrics: pd.DataFrame, metric: str, x_axis: XAxis = "step") -> list[Series]:
    """One :class:`Series` per training attempt that logged ``metric`` (named ``loss · attempt 2``
    when there are several), each exactly as that attempt logged it."""
    rows = metrics[metrics["metric"] == metric]
    attempts = sorted({int(a) for a in rows["attempt"].unique()}) if len(rows) else []
    if len(attempts) < 2:
        return [metric_series(metrics, metric, x_axis)]
    out = []
    for attempt in attempts:
        one = metric_series(rows[rows["attempt"].to_numpy() == attempt], metric, x_axis)
        out.append(Series(metric=f"{metric} · attempt {attempt + 1}", step=one.step, x=one.x, y=one.y,
                          source=one.source, split=one.split))
    return out


def group_of(series_table: pd.DataFrame | None) -> dict[str, str]:
    """metric -> its chart group (``loss/train`` -> ``loss``); metrics not listed are their own group."""
    if series_table is None or series_table.empty:
        return {}
    return {str(m): str(g) for m, g in zip(series_table["metric"], series_table["group"], strict=True)}


def chart_rows(chosen: list[str], series_table: pd.DataFrame | None) -> list[tuple[str, list[str]]]:
    """Chosen metrics arranged into chart rows: one row per group, its members in chosen order.

    ``add_scalars`` sub-runs of one tag (``loss/train``, ``loss/val``) share a row as separate
    curves, the way TensorBoard draws one chart per tag with a line per run.
    """
    groups = group_of(series_table)
    rows: dict[str, list[str]] = {}
    for metric in chosen:
        group = groups.get(metric, metric)
        members = rows.setdefault(group, [])
        if metric not in members:
            members.append(metric)
    return [(group if len(members) > 1 or _is_sub_run(members[0], group) else members[0], members)
            for group, members in rows.items()]


def _is_sub_run(metric: str, group: str) -> bool:
    return metric.startswith(group + "/")


def with_siblings(chosen: list[str], series_table: pd.DataFrame | None, available: list[str]) -> list[str]:
    """``chosen`` plus the other sub-runs of any chosen ``add_scalars`` group (train with val)."""
    groups = group_of(series_table)
    wanted = {groups.get(m, m) for m in chosen}
    out = list(chosen)
    out += [m for m in available if m not in out and m in groups and groups[m] in wanted and _is_sub_run(m, groups[m])]
    return out


def _first_split(metrics: pd.DataFrame) -> dict:
    """Each logged metric's split (its first row's), as ``groupby("metric").split.first()`` gives it,
    from the categorical codes: a few array passes instead of grouping 10⁶ rows on every rerun."""
    metric, split = metrics["metric"], metrics["split"]
    if not (isinstance(metric.dtype, pd.CategoricalDtype) and isinstance(split.dtype, pd.CategoricalDtype)):
        return dict(metrics.groupby("metric", observed=True)["split"].first().items())
    codes, split_codes = metric.cat.codes.to_numpy(), split.cat.codes.to_numpy()
    names, split_names = metric.cat.categories, split.cat.categories
    out: dict = {}
    for code in np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(names))):
        rows = np.flatnonzero((codes == code) & (split_codes >= 0))[:1]  # first() skips missing splits
        out[names[code]] = split_names[split_codes[rows[0]]] if len(rows) else np.nan
    return out


def metric_groups(metrics: pd.DataFrame) -> dict[str, list[str]]:
    """Metric names grouped by split: ``{"train": [...], "eval": [...]}`` in a stable order."""
    if metrics.empty:
        return {"train": [], "eval": []}
    groups: dict[str, list[str]] = {"train": [], "eval": []}
    for name, split in _first_split(metrics).items():
        groups.setdefault(str(split), []).append(str(name))
    for names in groups.values():
        names.sort(key=_metric_sort_key)
    return groups


def _metric_sort_key(name: str) -> tuple[int, str]:
    common = ("loss", "eval_loss", "eval_accuracy", "learning_rate", "grad_norm")
    return (common.index(name) if name in common else len(common), name)


def default_metrics(metrics: pd.DataFrame, series_table: pd.DataFrame | None = None) -> list[str]:
    """loss / eval_loss / eval_accuracy when logged, else the first two; sub-runs come with their siblings."""
    groups = metric_groups(metrics)
    available = groups["train"] + groups["eval"]
    chosen: list[str] = [m for m in ("loss", "eval_loss", "eval_accuracy") if m in available]
    return with_siblings(chosen or available[:2], series_table, available)


def available_axes(metrics: pd.DataFrame) -> list[str]:
    """Step always; epoch / wall time only when the logs have them."""
    axes = ["step"]
    if not metrics.empty and metrics["epoch"].notna().any():
        axes.append("epoch")
    if not metrics.empty and metrics["wall_time"].notna().any():
        axes.append("wall_time")
    return axes


def derived(run: RunData, key: tuple, compute: Callable[[], T]) -> T:
    """``compute()`` kept in ``run.derived`` under ``key``: a chart control that changes only how a
    series is drawn (smoothing, log scale) does not filter the run's table again. Shared between
    reruns and sessions: callers must not modify the result."""
    if key not in run.derived:
        run.derived[key] = compute()
    return run.derived[key]  # type: ignore[no-any-return]


def run_metric_series(run: RunData, metrics: pd.DataFrame, metric: str, x_axis: XAxis = "step") -> Series:
    """:func:`metric_series`, kept with the run when drawn from its own preferred table."""
    if metrics is not run.preferred_metrics:
        return metric_series(metrics, metric, x_axis)
    return derived(run, ("metric_series", metric, x_axis), lambda: metric_series(metrics, metric, x_axis))


def metric_series(metrics: pd.DataFrame, metric: str, x_axis: XAxis = "step") -> Series:
    """Values of ``metric`` exactly as logged, sorted by step; rows without an x value dropped.

    Only the columns drawn are taken (not every column of a 10⁶-row table per metric)."""
    keep = (metrics["metric"] == metric).to_numpy()
    if x_axis != "step":
        keep = keep & metrics[x_axis].notna().to_numpy()
    idx = np.flatnonzero(keep)
    steps = metrics["step"].to_numpy()[idx]
    order = np.argsort(steps, kind="stable") if len(steps) and np.any(np.diff(steps) < 0) else slice(None)
    y = metrics["value"].to_numpy()[idx][order]
    steps = steps[order]
    x = steps if x_axis == "step" else metrics[x_axis].to_numpy()[idx][order]
    if x_axis == "wall_time":
        x = pd.to_datetime(x, unit="s", utc=True).to_numpy()
    source = str(metrics["source"].iloc[idx[0]]) if len(idx) else ""
    split = str(metrics["split"].iloc[idx[0]]) if len(idx) and "split" in metrics else "train"
    return Series(metric=metric, step=steps, x=x, y=y, source=source, split=split)


def value_asof(series: Series, step: int) -> float | None:
    """The latest logged value at or before ``step`` (where a marker sits on the curve)."""
    pos = np.searchsorted(series.step, step, side="right") - 1
    return float(series.y[pos]) if pos >= 0 else None


def default_mode(metric: str) -> Literal["min", "max"]:
    """Which extreme is best, from the metric registry (``eval_loss`` → min, ``eval_accuracy`` → max)."""
    return best_mode(metric)


def best_checkpoint(run: RunData, metric: str, mode: Literal["min", "max"] | None = None,
                    metrics: pd.DataFrame | None = None) -> BestCheckpoint | None:
    """The checkpoint with the best logged ``metric`` among steps that have a checkpoint.

    Falls back to the best value over all steps (with ``checkpoint=None``) when no checkpoint
    step has the metric, so the explanation still says where the optimum was.
    """
    metrics = plot_metrics(run) if metrics is None else metrics
    mode = mode or default_mode(metric)
    rows = metrics[metrics["metric"] == metric]
    if rows.empty:
        return None
    by_step = rows.groupby("step")["value"].last()
    ckpt_steps = {c.step: c for c in run.checkpoints if c.step is not None}
    at_ckpts = by_step[by_step.index.isin(list(ckpt_steps))]
    pool = at_ckpts if len(at_ckpts) else by_step
    step = int(pool.idxmin() if mode == "min" else pool.idxmax())
    overall = int(by_step.idxmin() if mode == "min" else by_step.idxmax())
    return BestCheckpoint(checkpoint=ckpt_steps.get(step) if len(at_ckpts) else None, step=step,
                          value=float(pool.loc[step]), metric=metric, mode=mode, candidates=len(at_ckpts),
                          overall_step=overall, overall_value=float(by_step.loc[overall]))


def epoch_at_steps(metrics: pd.DataFrame, steps: np.ndarray) -> np.ndarray:
    """Epoch at arbitrary steps, interpolated from the logged (step, epoch) pairs."""
    if not len(steps):
        return np.full(0, np.nan)  # no 10⁶-row de-duplication for a run without checkpoints
    known = metrics.loc[metrics["epoch"].notna(), ["step", "epoch"]].drop_duplicates("step").sort_values("step")
    if known.empty:
        return np.full(len(steps), np.nan)
    return np.interp(steps, known["step"].to_numpy(), known["epoch"].to_numpy(), left=np.nan, right=np.nan)


def checkpoint_table(run: RunData, metric_names: list[str], metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per checkpoint with a step: x positions for each axis and the metrics logged at it.
    Kept with the run when built from its preferred table (callers must not modify it)."""
    metrics = plot_metrics(run) if metrics is None else metrics
    if metrics is run.preferred_metrics:
        return derived(run, ("checkpoint_table", tuple(metric_names)),
                       lambda: _checkpoint_table(run, metric_names, metrics))
    return _checkpoint_table(run, metric_names, metrics)


def _checkpoint_table(run: RunData, metric_names: list[str], metrics: pd.DataFrame) -> pd.DataFrame:
    ckpts = [c for c in run.checkpoints if c.step is not None]
    steps = np.array([c.step for c in ckpts], dtype=np.int64)
    table = pd.DataFrame({
        "checkpoint": [c.name for c in ckpts],
        "path": [str(c.path) for c in ckpts],
        "step": steps,
        "epoch": epoch_at_steps(metrics, steps),
        "wall_time": pd.to_datetime([c.modified for c in ckpts], utc=True),
        "size_bytes": [c.size_bytes for c in ckpts],
        "loadable": [c.loadable for c in ckpts],
    })
    at_checkpoints = metrics["step"].isin(steps).to_numpy()  # only these rows can fill the table
    for name in metric_names:
        rows = metrics[at_checkpoints & (metrics["metric"] == name).to_numpy()].groupby("step")["value"].last()
        table[name] = [rows.get(int(s), np.nan) for s in steps]
    return table

