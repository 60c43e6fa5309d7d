"""Saved scores: atomic files next to the run, read-only fallback, Timeline table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.compare.results import (
    CheckpointScores,
    checkpoint_step,
    fallback_dir,
    load_saved_scores,
    load_scores,
    result_relpath,
    safe_name,
    save_scores,
    write_json_atomic,
)
from dashboard.metrics import score


def _scores(ckpt: str, outputs: dict[str, str], total: int | None = None, eval_set: str = "demo") -> CheckpointScores:
    rows = [{"id": i, "output": o, "scores": score(o, "red")} for i, o in outputs.items()]
    return CheckpointScores(checkpoint=ckpt, step=checkpoint_step(ckpt), eval_set=eval_set,
                            settings={"max_new_tokens": 8}, settings_key="k", checkpoint_signature="s",
                            rows=rows, total=len(outputs) if total is None else total)


def test_checkpoint_step_and_safe_name() -> None:
    assert checkpoint_step("checkpoint-120") == 120
    assert checkpoint_step("final") is None
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("my set (v2)") == "my_set_v2"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    path = save_scores(run, _scores("checkpoint-10", {"a": "red", "b": "blue"}))
    assert path == run / "eval_results" / result_relpath("demo", "", "checkpoint-10", "k")
    data = json.loads(path.read_text())
    assert data["checkpoint"] == "checkpoint-10" and data["step"] == 10 and data["n"] == 2
    assert data["metrics"] == {"exact_match": 0.5, "contains": 0.5, "token_f1": 0.5}
    assert data["settings"] == {"max_new_tokens": 8} and data["complete"] is True
    assert [r["id"] for r in data["rows"]] == ["a", "b"]
    loaded = load_scores(run, "demo", "checkpoint-10")
    assert loaded is not None and loaded.rows == data["rows"] and loaded.complete
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"v": object()})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_fallback_used_when_run_path_is_blocked(tmp_path: Path) -> None:
    """Works as root too: a file where the results folder should be makes the run dir unusable."""
    run, data = tmp_path / "run", tmp_path / "data"
    run.mkdir()
    (run / "eval_results").write_text("in the way")
    path = save_scores(run, _scores("checkpoint-5", {"a": "red"}), data_dir=data)
    assert path.is_relative_to(fallback_dir(run, data))
    with pytest.raises(OSError, match="could not save scores"):
        save_scores(run, _scores("checkpoint-5", {"a": "red"}))


def test_load_saved_scores_table(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    save_scores(run, _scores("checkpoint-20", {"a": "red", "b": "red"}))
    save_scores(run, _scores("checkpoint-10", {"a": "red", "b": "blue"}))
    save_scores(run, _scores("checkpoint-30", {"a": "red"}, total=2))  # stopped half-way: excluded
    (run / "eval_results" / result_relpath("demo", "", "checkpoint-40", "k")).write_text("{corrupt")
    df = load_saved_scores(run)
    assert list(df.columns) == ["step", "checkpoint", "eval_set", "metric", "value", "ci95_low", "ci95_high"]
    em = df[df.metric == "exact_match"]
    assert list(em.step) == [10, 20] and list(em.value) == [0.5, 1.0]
    assert list(em.ci95_low) == [0.0, 1.0] and list(em.ci95_high) == [1.0, 1.0]  # n = 2: {0, ½, 1} resamples
    assert set(df.metric) == {"exact_match", "contains", "token_f1"}
    assert str(df["step"].dtype) == "Int64"
    assert load_saved_scores(tmp_path / "nothing").empty


def test_rescored_uses_current_answers() -> None:
    s = _scores("checkpoint-1", {"a": "red", "b": "blue"})
    again = s.rescored({"a": "blue", "b": "blue", "c": "x"})
    assert [r["scores"]["exact_match"] for r in again.rows] == [0.0, 1.0]
    assert again.total == 3 and not again.complete
