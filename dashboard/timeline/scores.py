"""Per-checkpoint eval-set scores saved by the Comparison page and the CLI, as Timeline series.

One line per (eval set content, subset, generation settings, metric): results with another
identity never share a line or a band (``eval --limit 40`` next to the 200-example result is
its own, labelled line, drawn only when chosen).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pandas as pd

from dashboard.caching import Memo
from dashboard.compare.identity import FULL_SUBSET, subset_size
from dashboard.compare.results import SCORE_COLUMNS, candidate_dirs, iter_saved, load_saved_scores, migrate_legacy
from dashboard.evalset import EvalSet, EvalSetError, find_eval_sets, load_eval_set

logger = logging.getLogger(__name__)


def run_eval_sets(run_dir: Path) -> list[EvalSet]:
    """The run's own eval sets (``<run>/eval/``) that load; what old-layout results are checked against."""
    sets = []
    for path in find_eval_sets(run_dir):
        try:
            sets.append(load_eval_set(path, [run_dir]))
        except EvalSetError:
            logger.warning("eval set %s unusable for checking old results", path, exc_info=True)
    return sets


def _tree_stats(folder: Path, depth: int) -> tuple:
    """(name, kind, mtime_ns, size) of ``folder`` and what is under it, ``depth`` levels deep."""
    try:
        info = os.lstat(folder)
    except OSError:
        return (str(folder), None)
    entries: list[tuple] = []
    if stat.S_ISDIR(info.st_mode) and depth > 0:
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    if entry.is_dir(follow_symlinks=False):
                        entries.append(_tree_stats(Path(entry.path), depth - 1))
                    else:
                        item = entry.stat(follow_symlinks=False)
                        entries.append((entry.name, item.st_mode, item.st_mtime_ns, item.st_size))
        except OSError:
            return (str(folder), None)
    return (str(folder), info.st_mode, info.st_mtime_ns, tuple(sorted(entries, key=str)))


def _scores_key(run_dir: Path, data_dir: Path | None = None) -> tuple:
    """The stat of every file the scores are read from (result folders two levels deep, the run's
    eval sets that old results are checked against): saving, migrating or deleting a result, or
    editing an eval set, changes it. A few dozen ``stat`` calls instead of parsing every result."""
    run_dir = Path(run_dir)
    return (str(run_dir), str(data_dir), _tree_stats(run_dir / "eval", 1),
            tuple(_tree_stats(folder, 2) for folder in candidate_dirs(run_dir, data_dir)))


def _saved_scores(run_dir: Path, data_dir: Path | None = None) -> tuple[pd.DataFrame, str | None]:
    """(scores table, problem). Never raises: a broken results folder must not break the chart.

    Old-layout results are migrated first; those that cannot be are named in the problem text
    (saved before content keys, not comparable) rather than silently left out.
    """
    try:
        left = migrate_legacy(Path(run_dir), data_dir, lambda: run_eval_sets(Path(run_dir)))
        table = load_saved_scores(Path(run_dir), data_dir)
    except Exception as exc:  # any reader failure becomes a message next to the chart
        logger.warning("saved eval-set scores of %s unreadable", run_dir, exc_info=True)
        return pd.DataFrame(columns=SCORE_COLUMNS), f"could not read saved eval-set scores: {exc}"
    table = table[table["step"].notna()] if "step" in table else table
    messages = [item.message for item in left]
    unkeyed = sorted({f"{s.eval_set} · {s.checkpoint}" for s in iter_saved(Path(run_dir), data_dir)
                      if not s.eval_set_hash})
    if unkeyed:  # e.g. `eval --limit N` before result identities: its file hash was lost (`-nohash` folders)
        messages.append(f"{len(unkeyed)} saved result(s) carry no eval-file hash and are not drawn (not comparable "
                        f"with any result): {', '.join(unkeyed[:5])}{' …' if len(unkeyed) > 5 else ''}")
    return table, "\n\n".join(messages) or None


saved_scores = Memo(_saved_scores, "saved-scores", maxsize=64, key=_scores_key)
""":func:`_saved_scores`, re-read only when a result or eval-set file changed (Home and the Timeline
ask for it on every rerun, the Timeline twice). Shared: callers must not modify the table."""


def _settings_text(settings_keys: pd.Series) -> pd.Series:
    """Per row, the generation settings that differ between the rows' results (empty when all agree)."""
    parsed = {key: _parse(key) for key in settings_keys.unique()}
    fields = sorted({f for d in parsed.values() for f in d})
    varying = [f for f in fields if len({json.dumps(d.get(f)) for d in parsed.values()}) > 1]
    text = {key: ", ".join(f"{f}={d.get(f)}" for f in varying) for key, d in parsed.items()}
    return settings_keys.map(text)


def _parse(settings_key: str) -> dict:
    try:
        value = json.loads(settings_key)
    except ValueError:
        return {"settings": settings_key}
    return value if isinstance(value, dict) else {"settings": settings_key}


def series_labels(scores: pd.DataFrame) -> pd.Series:
    """Each row's line: one per (eval set content, subset, settings, metric), named as people read it.

    ``demo · exact_match`` for the whole set; a subset adds its size (``demo · first 40 · n = 40 ·
    exact_match``), settings or file versions that differ between saved results add what differs.
    """
    if scores.empty:
        return pd.Series([], dtype=object)
    label = scores["eval_set"].astype(str)
    versions = scores.groupby("eval_set")["eval_set_sha256"].transform("nunique")
    label = label.where(versions <= 1, label + " @" + scores["eval_set_sha256"].astype(str).str[:8])
    for _, rows in scores.groupby("eval_set"):
        settings = _settings_text(rows["settings_key"])
        label.loc[rows.index] = label.loc[rows.index].where(settings == "", label.loc[rows.index] + " · " + settings)
    sizes = scores["subset"].map(subset_size)
    partial = sizes.notna()
    label = label.where(~partial, label + " · first " + sizes.astype("Int64").astype(str) + " · n = "
                        + scores["n"].astype(str))
    return label + " · " + scores["metric"].astype(str)


def score_series_names(scores: pd.DataFrame) -> list[str]:
    """Every line's label (see :func:`series_labels`), sorted."""
    return sorted(set(series_labels(scores))) if not scores.empty else []


def default_score_labels(scores: pd.DataFrame) -> list[str]:
    """The lines drawn without asking: results on the whole eval set (a subset is drawn only when chosen)."""
    if scores.empty:
        return []
    return sorted(set(series_labels(scores)[scores["subset"] == FULL_SUBSET]))


def score_series(scores: pd.DataFrame, label: str) -> pd.DataFrame:
    """Rows of one line, in step order."""
    if scores.empty:
        return scores
    rows = scores[(series_labels(scores) == label).to_numpy()]
    return rows.sort_values("step", kind="stable")
