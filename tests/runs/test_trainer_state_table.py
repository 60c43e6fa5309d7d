"""The vectorised ``trainer_state.json`` reader gives the same table as a plain per-entry reading.

The reader groups entries by key tuple and converts each group's values in one pass (issue 35);
the reference below walks entry by entry with no grouping, so a grouping, ordering or column
mix-up (values shifted between metrics, a metric's rows out of log order, a skipped group) shows
up as a difference. Compared per metric: (step, epoch, value) rows in log order.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from dashboard.runs.synthetic import log_history, trainer_state, write_json
from dashboard.runs.trainer_state import is_summary_entry, parse_log_history, read_trainer_state


def _finite_number(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


def reference_rows(entries: list) -> dict[str, list[tuple[int, float, float]]]:
    """Per metric, the (step, epoch, value) rows a demanding reader keeps, in log order: object
    entries with a finite numeric step, not the end-of-training summary; finite numbers only."""
    rows: dict[str, list[tuple[int, float, float]]] = {}
    for entry in entries:
        if type(entry) is not dict or is_summary_entry(entry) or not _finite_number(entry.get("step")):
            continue
        epoch = float(entry["epoch"]) if _finite_number(entry.get("epoch")) else math.nan
        for key, value in entry.items():
            if key not in ("step", "epoch") and _finite_number(value):
                rows.setdefault(key, []).append((int(entry["step"]), epoch, float(value)))
    return rows


def table_rows(table: pd.DataFrame) -> dict[str, list[tuple[int, float, float]]]:
    rows: dict[str, list[tuple[int, float, float]]] = {}
    for metric, step, epoch, value in zip(table["metric"].astype(str), table["step"], table["epoch"],
                                          table["value"], strict=True):
        rows.setdefault(metric, []).append((int(step), float(epoch), float(value)))
    return rows


def assert_same_rows(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for metric, expected in want.items():
        actual = got[metric]
        assert len(actual) == len(expected), metric
        for a, e in zip(actual, expected, strict=True):
            assert a[0] == e[0] and a[2] == e[2], (metric, a, e)
            assert a[1] == e[1] or (math.isnan(a[1]) and math.isnan(e[1])), (metric, a, e)


def test_synthetic_300k_log_matches_per_entry_reference(tmp_path: Path) -> None:
    entries = log_history(300_000, eval_every=1000, seed=3)
    entries.append({"epoch": 3000.0, "step": 300_000, "total_flos": 1e15, "train_loss": 0.4,
                    "train_runtime": 99.0, "train_samples_per_second": 1.0, "train_steps_per_second": 1.0})
    path = write_json(tmp_path / "trainer_state.json", trainer_state(entries, 300_000))
    parsed = read_trainer_state(path)
    assert parsed.readable and len(parsed.metrics) == 3 * 300_000 + 4 * 300
    assert_same_rows(table_rows(parsed.metrics), reference_rows(entries))
    assert parsed.final_summary["train_runtime"] == 99.0  # the summary entry is a result, not a point
    assert "train_loss" not in set(parsed.metrics["metric"].astype(str))


HOSTILE_ENTRIES = [
    {"loss": 2.0, "grad_norm": 1, "learning_rate": 1e-4, "epoch": 0.01, "step": 1},
    {"loss": float("nan"), "grad_norm": 1.5, "learning_rate": 1e-4, "epoch": 0.02, "step": 2},
    {"loss": 1.5, "grad_norm": None, "learning_rate": 1e-4, "epoch": 0.03, "step": 3},
    {"loss": "diverged", "grad_norm": 2.5, "learning_rate": 1e-4, "epoch": 0.04, "step": 4},
    {"loss": 1.2, "learning_rate": 1e-4, "epoch": 0.05},                       # no step
    {"step": 6, "epoch": 0.06, "learning_rate": 9e-5, "loss": 1.1, "grad_norm": 2},  # other key order
    ["not", "an", "object"],
    "garbage",
    {"loss": 1.0, "grad_norm": float("inf"), "learning_rate": 8e-5, "epoch": 0.07, "step": 7},
    {"eval_loss": 1.3, "eval_accuracy": 0.5, "run_name": "probe", "epoch": 0.07, "step": 7},
    {"eval_loss": 1.25, "eval_accuracy": 1, "run_name": "probe", "step": 8},    # no epoch
    {"loss": 0.9, "grad_norm": 1.0, "learning_rate": 7e-5, "epoch": None, "step": 9},
    {"loss": 0.8, "grad_norm": 1.0, "learning_rate": 6e-5, "epoch": 0.1, "step": 10},
    {"train_runtime": 12.0, "total_flos": 3.0, "train_loss": 1.1, "epoch": 0.1, "step": 10},
]


def test_hostile_ish_log_matches_reference_through_both_parsers(tmp_path: Path) -> None:
    """With a NaN literal the file goes through ``json``; without one, through orjson."""
    with_nan = tmp_path / "nan" / "trainer_state.json"
    with_nan.parent.mkdir()
    with_nan.write_text(json.dumps({"global_step": 10, "log_history": HOSTILE_ENTRIES}), encoding="utf-8")
    clean_entries = [e for e in HOSTILE_ENTRIES if not (type(e) is dict and any(
        isinstance(v, float) and not math.isfinite(v) for v in e.values()))]
    clean = tmp_path / "clean" / "trainer_state.json"
    clean.parent.mkdir()
    clean.write_text(json.dumps({"global_step": 10, "log_history": clean_entries}), encoding="utf-8")
    assert b"NaN" in with_nan.read_bytes() and b"NaN" not in clean.read_bytes()
    for path, entries in ((with_nan, HOSTILE_ENTRIES), (clean, clean_entries)):
        parsed = read_trainer_state(path)
        assert parsed.readable
        assert_same_rows(table_rows(parsed.metrics), reference_rows(entries))
        assert "run_name" not in set(parsed.metrics["metric"].astype(str))
        text = "\n".join(parsed.problems)
        assert "1 entry has no numeric 'step'" in text and "2 entries are not objects" in text
        assert "non-numeric value(s) for 'loss'" in text
        assert parsed.final_summary == {"train_runtime": 12.0, "total_flos": 3.0, "train_loss": 1.1,
                                        "epoch": 0.1, "step": 10.0}


def test_group_conversion_keeps_per_column_decisions() -> None:
    """A group whose first value is text goes column by column: an all-text column is dropped,
    a numeric column beside it is kept; a column float64 refuses does not hide its neighbours."""
    entries = [{"note": "a", "loss": 1.0, "step": 1}, {"note": "b", "loss": 0.5, "step": 2},
               {"loss": [1], "acc": 0.1, "step": 3}, {"loss": 0.2, "acc": 0.3, "step": 4}]
    table, problems = parse_log_history(entries)
    assert_same_rows(table_rows(table), reference_rows(entries))
    assert "note" not in set(table["metric"].astype(str))
    assert any("non-numeric value(s) for 'loss'" in p for p in problems)


def test_same_keys_in_another_order_and_nulls_stay_on_the_one_pass_path() -> None:
    """Entries with the first entry's keys in another order, nulls, ints, an eval entry of the same
    length but other keys (that one forces the general grouping) all give the reference rows."""
    train = [{"loss": 1.0, "grad_norm": 2, "step": 1, "epoch": 0.1},
             {"step": 2, "epoch": 0.2, "grad_norm": 1.5, "loss": None},
             {"grad_norm": float("nan"), "loss": 0.5, "epoch": None, "step": 3},
             {"loss": 0.25, "grad_norm": 1.0, "step": 4, "epoch": 0.4}]
    evals = [{"eval_loss": 0.7, "eval_acc": 0.5, "epoch": 0.2, "step": 2}]             # same length
    longer = [{"eval_loss": 0.6, "eval_acc": 0.6, "eval_runtime": 1.0, "epoch": 0.4, "step": 4}]
    for entries in (train, train + longer, train[:2] + evals + train[2:], train + longer + evals):
        table, _ = parse_log_history(entries)
        assert_same_rows(table_rows(table), reference_rows(entries))
