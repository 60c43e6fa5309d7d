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
                            rows=rows, total=len(outputs) if total is None else total, eval_set_hash="ab" * 32)


def test_checkpoint_step_and_safe_name() -> None:
    assert checkpoint_step("checkpoint-120") == 120
    assert checkpoint_step("final") is None
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("my set (v2)") == "my_set_v2"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    path = save_scores(run, _scores("checkpoint-10", {"a": "red", "b": "blue"}))
    assert path == run / "eval_results" / result_relpath("demo", "ab" * 32, "checkpoint-10", "k")
    data = json.loads(path.read_text())
    assert data["checkpoint"] == "checkpoint-10" and data["step"] == 10 and data["n"] == 2
    assert data["metrics"] == {"exact_match": 0.5, "contains": 0.5, "token_f1": 0.5}
    assert data["settings"] == {"max_new_tokens": 8} and data["complete"] is True
    assert [r["id"] for r in data["rows"]] == ["a", "b"]
    loaded = load_scores(run, "demo", "checkpoint-10")
    assert loaded is not None and loaded.rows == data["rows"] and loaded.complete
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_a_runs_first_result_is_saved_without_an_unreadable_warning(tmp_path: Path, caplog) -> None:
    """No ``eval_results/`` folder yet is the normal first save (every demo build hits it): not
    "unreadable" with a traceback in the server log, which it was (the missing folder surfaces as
    the file reader's "a folder on its path changed" error). A broken result still warns."""
    run = tmp_path / "run"
    run.mkdir()
    with caplog.at_level("WARNING", logger="dashboard.compare.results"):
        save_scores(run, _scores("checkpoint-10", {"a": "red"}))
        assert load_scores(run, "demo", "checkpoint-20") is None
    assert [r.getMessage() for r in caplog.records] == []
    broken = run / "eval_results" / result_relpath("demo", "ab" * 32, "checkpoint-10", "k")
    broken.write_text("{not json")
    with caplog.at_level("WARNING", logger="dashboard.compare.results"):
        assert load_scores(run, "demo", "checkpoint-10") is None
    assert any("unreadable" in r.getMessage() for r in caplog.records)


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
    (run / "eval_results" / result_relpath("demo", "ab" * 32, "checkpoint-40", "k")).write_text("{corrupt")
    df = load_saved_scores(run)
    assert list(df.columns) == ["step", "checkpoint", "eval_set", "eval_set_sha256", "subset", "settings_key",
                                "result_key", "metric", "value", "ci95_low", "ci95_high", "n"]
    em = df[df.metric == "exact_match"]
    assert list(em.step) == [10, 20] and list(em.value) == [0.5, 1.0]
    # n = 2, exact (Clopper–Pearson) intervals: wide, and 2 of 2 right is not certainty
    assert em.ci95_low.iloc[0] < 0.5 < em.ci95_high.iloc[0] and em.ci95_high.iloc[1] == 1.0
    assert em.ci95_low.iloc[1] < 0.2 and list(em.n) == [2, 2]
    assert set(df.metric) == {"exact_match", "contains", "token_f1"}
    assert str(df["step"].dtype) == "Int64"
    assert load_saved_scores(tmp_path / "nothing").empty


def test_rescored_uses_current_answers() -> None:
    s = _scores("checkpoint-1", {"a": "red", "b": "blue"})
    again = s.rescored({"a": "blue", "b": "blue", "c": "x"})
    assert [r["scores"]["exact_match"] for r in again.rows] == [0.0, 1.0]
    assert again.total == 3 and not again.complete


# ------------------------------------------------------------------ results saved before content keys
def _legacy_run(tmp_path: Path, prompts: tuple[str, ...] = ("what colour ?", "what colour ?")) -> Path:
    """A run with eval/demo.jsonl (2 rows) and checkpoint-1's complete result in the old layout:
    ``eval_results/demo/checkpoint-1.json``, no content hash (as written before content keys)."""
    from PIL import Image

    run = tmp_path / "run"
    (run / "eval" / "images").mkdir(parents=True)
    lines = []
    for i, colour in enumerate(("red", "blue")):
        Image.new("RGB", (8, 8), colour).save(run / "eval" / "images" / f"{i}.png")
        lines.append(json.dumps({"id": str(i), "image": f"images/{i}.png", "prompt": "what colour ?",
                                 "answer": colour}))
    (run / "eval" / "demo.jsonl").write_text("\n".join(lines) + "\n")
    old = _scores("checkpoint-1", {"0": "red", "1": "red"})
    for row, prompt in zip(old.rows, prompts, strict=True):
        row.update(prompt=prompt, image=f"{row['id']}.png")
    data = old.to_json()
    del data["eval_set_hash"]
    (run / "eval_results" / "demo").mkdir(parents=True)
    (run / "eval_results" / "demo" / "checkpoint-1.json").write_text(json.dumps(data))
    return run


def test_old_layout_result_is_moved_under_its_content_key(tmp_path: Path) -> None:
    from dashboard.compare.results import migrate_legacy
    from dashboard.evalset import load_eval_set
    from dashboard.timeline.scores import saved_scores

    run = _legacy_run(tmp_path)
    evalset = load_eval_set(run / "eval" / "demo.jsonl")
    assert load_scores(run, "demo", "checkpoint-1", eval_set_hash=evalset.content_hash) is None  # not read as is
    table, problem = saved_scores(run)  # the Timeline's read migrates it
    assert problem is None
    assert not (run / "eval_results" / "demo").exists()  # the old file (and its emptied folder) is gone
    moved = load_scores(run, "demo", "checkpoint-1", eval_set_hash=evalset.content_hash, settings_key="k")
    assert moved is not None and moved.complete and [r["output"] for r in moved.rows] == ["red", "red"]
    assert (run / "eval_results" / result_relpath("demo", evalset.content_hash, "checkpoint-1", "k")).is_file()
    assert set(table["checkpoint"]) == {"checkpoint-1"} and len(table) == len(moved.metrics)
    assert migrate_legacy(run, None, lambda: [evalset]) == []  # nothing left to do


def test_old_layout_result_that_no_longer_matches_is_reported_not_mixed_in(tmp_path: Path) -> None:
    from dashboard.compare.results import iter_saved, migrate_legacy
    from dashboard.compare.runner import prepare_scores
    from dashboard.evalset import load_eval_set
    from dashboard.generation import GenerationSettings
    from dashboard.timeline.scores import saved_scores

    run = _legacy_run(tmp_path, prompts=("what colour ?", "an older prompt"))
    evalset = load_eval_set(run / "eval" / "demo.jsonl")
    table, problem = saved_scores(run)
    assert problem is not None and "saved before results were keyed by eval-set content, not comparable" in problem
    assert "demo · checkpoint-1" in problem and "prompts or images differ" in problem
    assert table.empty and list(iter_saved(run)) == []  # not plotted as if it were the current set's
    assert (run / "eval_results" / "demo" / "checkpoint-1.json").is_file()  # kept for the user to look at
    fresh = prepare_scores(run, [run / "checkpoint-1"], evalset, GenerationSettings())
    assert fresh["checkpoint-1"].n == 0  # the Comparison page starts afresh for this set
    (other,) = migrate_legacy(run, None, lambda: [])  # no eval set of that name in the run
    assert "no eval set of that name" in other.message


def test_old_layout_never_replaces_a_fuller_new_result(tmp_path: Path) -> None:
    from dashboard.compare.results import migrate_legacy
    from dashboard.evalset import load_eval_set

    run = _legacy_run(tmp_path)
    evalset = load_eval_set(run / "eval" / "demo.jsonl")
    newer = _scores("checkpoint-1", {"0": "blue", "1": "blue"})
    newer.eval_set_hash = evalset.content_hash
    save_scores(run, newer)
    assert migrate_legacy(run, None, lambda: [evalset]) == []
    kept = load_scores(run, "demo", "checkpoint-1", eval_set_hash=evalset.content_hash, settings_key="k")
    assert kept is not None and [r["output"] for r in kept.rows] == ["blue", "blue"]
    assert not (run / "eval_results" / "demo" / "checkpoint-1.json").exists()
