"""End-of-run results: the files HF example scripts and LLaMA-Factory write, and the Trainer's summary.

``trainer.save_metrics("train" | "eval" | "predict", metrics)`` writes ``<split>_results.json``
and merges every split into ``all_results.json``; the last ``log_history`` entry of a finished
run is a summary (``train_runtime``, ``train_loss``, ``total_flos``, …). These are numbers about
the whole run, shown as a *Results* table with the file each came from — not as one-point
curves. A value that several files agree on is one row naming all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dashboard.runs.files import RunFileError, excerpt, read_json

RESULT_FILES = ("all_results.json", "train_results.json", "eval_results.json", "test_results.json",
                "predict_results.json")
SUMMARY_SOURCE = "trainer_state.json (final log entry)"
RESULT_COLUMNS = ("metric", "value", "source")
RESULT_METRICS = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
                            "train_loss"})
"""Summary numbers the TensorBoard callback also logs as one-point scalars: kept out of the curves."""


def empty_results() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object if c != "value" else float) for c in RESULT_COLUMNS})


def _numbers(data: object) -> dict[str, float]:
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def read_results(run_dir: Path, roots: Sequence[Path], summary: dict[str, float] | None,
                 problems: list[str]) -> pd.DataFrame:
    """(metric, value, source) rows from the result files in the run folder and the final summary."""
    found: dict[tuple[str, float], list[str]] = {}
    for name in RESULT_FILES:
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            data = read_json(path, roots, "results")
        except (RunFileError, OSError) as exc:
            problems.append(f"{name}: cannot read ({excerpt(exc, 120)})")
            continue
        numbers = _numbers(data)
        if not numbers:
            problems.append(f"{name}: no numeric results")
        for key, value in numbers.items():
            found.setdefault((key, value), []).append(name)
    for key, value in (summary or {}).items():
        if key not in ("step",):
            found.setdefault((key, value), []).append(SUMMARY_SOURCE)
    if not found:
        return empty_results()
    rows = [{"metric": k, "value": v, "source": ", ".join(sources)} for (k, v), sources in found.items()]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).sort_values(["metric", "source"], ignore_index=True)


__all__ = ["RESULT_FILES", "RESULT_METRICS", "empty_results", "read_results"]
