"""Run loading: trainer_state parsing, TensorBoard events, listing, signatures, malformed input."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from dashboard.paths import PathOutsideRoots
from dashboard.runs import run as run_module
from dashboard.runs.run import RunNotFoundError, list_runs, load_run, run_signature
from dashboard.runs.synthetic import (
    hf_scalars,
    log_history,
    trainer_state,
    write_checkpoint,
    write_event_file,
    write_json,
    write_run,
)
from dashboard.runs.tensorboard import read_event_file
from dashboard.runs.trainer_state import parse_log_history


def _series(metrics, metric, source="trainer_state"):
    rows = metrics[(metrics["metric"] == metric) & (metrics["source"] == source)]
    return rows["step"].tolist(), rows["value"].tolist()


def test_metrics_equal_the_log_exactly_and_splits_by_name(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=250, save_every=100, eval_every=50)
    entries = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    run = load_run(run_dir, [tmp_path])
    for key in ("loss", "grad_norm", "learning_rate", "eval_loss", "eval_accuracy"):
        expected = [(e["step"], e[key]) for e in entries if key in e]
        steps, values = _series(run.metrics, key)
        assert list(zip(steps, values, strict=True)) == expected, key
    m = run.metrics
    assert set(m.loc[m["metric"].str.startswith("eval_"), "split"]) == {"eval"}
    assert set(m.loc[m["metric"] == "loss", "split"]) == {"train"}
    loss_rows = m[m["metric"] == "loss"]
    assert loss_rows["epoch"].tolist() == [e["epoch"] for e in entries if "loss" in e]
    assert list(m.columns) == ["step", "epoch", "wall_time", "metric", "value", "split", "source", "attempt",
                              "superseded"]
    assert m["step"].dtype == np.int64


def test_summary_and_best_checkpoint_mapped_by_folder_name(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=300, best_step=200)
    run = load_run(run_dir, [tmp_path])
    assert run.state.global_step == 300 and run.state.eval_steps == 100 and run.state.save_steps == 100
    assert run.state.best_model_checkpoint == "/home/someone/output/checkpoint-200"  # another machine's path
    assert run.best_checkpoint is not None and run.best_checkpoint.path == run_dir / "checkpoint-200"
    assert run.checkpoint(200).name == "checkpoint-200"
    assert run.checkpoint("checkpoint-300").step == 300
    assert run.checkpoint(str(run_dir / "checkpoint-100")).step == 100
    assert run.checkpoint(999) is None
    assert run.state_file == run_dir / "trainer_state.json"


def test_nan_inf_rows_kept_out_and_reported_by_metric_and_step() -> None:
    entries = [{"loss": 1.0, "step": 1, "epoch": 0.1}, {"loss": float("nan"), "step": 2, "epoch": 0.2},
               {"loss": float("inf"), "grad_norm": 2.0, "step": 3, "epoch": 0.3}, {"loss": None, "step": 4},
               {"loss": 0.5, "step": 5, "epoch": 0.5}]
    table, problems = parse_log_history(entries)
    steps, values = _series(table, "loss")
    assert steps == [1, 5] and values == [1.0, 0.5]
    assert _series(table, "grad_norm") == ([3], [2.0])
    assert any("'loss' has 3 NaN/inf/null value(s) (step 2, 3, 4)" in p for p in problems)
    assert all(math.isfinite(v) for v in table["value"])
    assert table.loc[(table["metric"] == "loss") & (table["step"] == 5), "epoch"].iloc[0] == 0.5


def test_malformed_entries_are_skipped_with_messages() -> None:
    entries = [{"loss": 1.0, "step": 1}, "garbage", {"loss": 2.0}, {"loss": "high", "step": 2},
               {"loss": 0.3, "step": 3}, {"run_name": "x", "step": 3}]
    table, problems = parse_log_history(entries)
    assert _series(table, "loss") == ([1, 3], [1.0, 0.3])
    assert "run_name" not in set(table["metric"])
    text = "\n".join(problems)
    assert "1 entry is not objects; skipped" in text
    assert "1 entry has no numeric 'step'" in text
    assert "non-numeric value(s) for 'loss'" in text


def test_broken_root_state_falls_back_to_highest_checkpoint(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=300)
    (run_dir / "trainer_state.json").write_text('{"log_history": [')
    run = load_run(run_dir, [tmp_path])
    assert any(p.startswith("trainer_state.json: not valid JSON") for p in run.problems)
    assert run.state_file == run_dir / "checkpoint-300" / "trainer_state.json"
    assert run.state.global_step == 300
    assert _series(run.metrics, "loss")[0][-1] == 300


def test_newer_checkpoint_state_wins_over_stale_root(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=200)
    root = run_dir / "trainer_state.json"
    os.utime(root, (1_000_000, 1_000_000))  # a stale root from an earlier training session
    run = load_run(run_dir, [tmp_path])
    assert run.state_file == run_dir / "checkpoint-200" / "trainer_state.json"


def test_missing_keys_and_unreadable_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "r"
    write_checkpoint(run_dir / "checkpoint-1")
    write_json(run_dir / "trainer_state.json", {"epoch": 1.0})
    run = load_run(run_dir, [tmp_path])
    assert "trainer_state.json: no 'log_history'; no metrics" in run.problems
    assert "trainer_state.json: no 'global_step'" in run.problems
    assert len(run.checkpoints) == 1 and run.metrics.empty

    real_open = os.open

    def deny(path, *args, **kwargs):  # the run-file opener opens with os.open (O_NOFOLLOW)
        if Path(path).name == "trainer_state.json":
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    run_module.parse_state_file.clear()
    run = load_run(run_dir, [tmp_path])
    assert any("cannot read" in p and "Permission denied" in p for p in run.problems)
    assert len(run.checkpoints) == 1


def test_checkpoint_without_weights_still_loads_the_rest(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=200)
    (run_dir / "checkpoint-100" / "model.safetensors").unlink()
    run = load_run(run_dir, [tmp_path])
    assert "checkpoint-100: no model weights (model.safetensors missing)" in run.problems
    assert [c.loadable for c in run.checkpoints] == [False, True]
    assert len(_series(run.metrics, "loss")[0]) == 200


def test_path_outside_roots_and_missing_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = write_run(tmp_path / "elsewhere", n_steps=100)
    with pytest.raises(PathOutsideRoots):
        load_run(outside, [root])
    (root / "link").symlink_to(outside)
    with pytest.raises(PathOutsideRoots):
        load_run(root / "link", [root])
    with pytest.raises(RunNotFoundError):
        load_run(root / "missing", [root])


def test_best_checkpoint_missing_locally_is_reported(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=200, best_step=200)
    state = json.loads((run_dir / "trainer_state.json").read_text())
    state["best_model_checkpoint"] = "C:\\runs\\x\\checkpoint-900"
    write_json(run_dir / "trainer_state.json", state)
    run = load_run(run_dir, [tmp_path])
    assert run.state.best_checkpoint_name == "checkpoint-900"
    assert any("no folder checkpoint-900 in this run" in p for p in run.problems)


def test_tensorboard_events_read_into_same_table(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    write_checkpoint(run_dir / "checkpoint-4")
    entries = log_history(40, eval_every=10)
    write_event_file(run_dir / "runs" / "Nov23_host", hf_scalars(entries), start_time=1_700_000_000.0)
    run = load_run(run_dir, [tmp_path])
    m = run.metrics
    assert set(m["source"]) == {"tensorboard"}
    steps, values = _series(m, "loss", "tensorboard")
    assert steps == [e["step"] for e in entries if "loss" in e]
    assert np.allclose(values, [e["loss"] for e in entries if "loss" in e], rtol=1e-6)  # float32 on disk
    assert _series(m, "eval_loss", "tensorboard")[0] == [10, 20, 30, 40]
    assert "epoch" not in set(m["metric"])
    eval_rows = m[m["metric"] == "eval_loss"]
    assert np.allclose(eval_rows["epoch"], [0.1, 0.2, 0.3, 0.4])
    assert np.allclose(eval_rows["wall_time"], [1_700_000_000.0 + s * 0.5 for s in (10, 20, 30, 40)])
    assert set(eval_rows["split"]) == {"eval"}


def test_tensor_form_scalars_and_wall_time_borrowed_by_trainer_state(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=20, save_every=10, eval_every=10)
    entries = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    write_event_file(run_dir / "runs" / "a", hf_scalars(entries), start_time=1_000.0, tensor_form=True)
    run = load_run(run_dir, [tmp_path])
    assert len(_series(run.metrics, "loss", "tensorboard")[0]) == 20
    state_loss = run.metrics[(run.metrics["metric"] == "loss") & (run.metrics["source"] == "trainer_state")]
    assert np.allclose(state_loss["wall_time"], 1_000.0 + state_loss["step"] * 0.5)


def test_truncated_event_file_keeps_what_was_read(tmp_path: Path) -> None:
    path = write_event_file(tmp_path / "tb", [("train/loss", s, 1.0 / s) for s in range(1, 101)], start_time=0.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])
    table, _problems = read_event_file(path)
    assert 90 <= len(table) < 100
    assert table["step"].tolist() == list(range(1, len(table) + 1))


def test_nan_in_event_file_reported(tmp_path: Path) -> None:
    path = write_event_file(tmp_path / "tb", [("train/loss", 1, 1.0), ("train/loss", 2, float("nan"))],
                            start_time=0.0)
    table, problems = read_event_file(path)
    assert table["value"].tolist() == [1.0]
    assert any("'train/loss' has 1 NaN/inf value(s) (step 2)" in p for p in problems)


def test_list_runs_and_signature(tmp_path: Path) -> None:
    write_run(tmp_path / "b-run", n_steps=200)
    write_run(tmp_path / "a-run", n_steps=100)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a run")
    write_event_file(tmp_path / "tb-only" / "runs" / "x", [("train/loss", 1, 1.0)], start_time=0.0)
    listings = list_runs(tmp_path)
    assert [r.name for r in listings] == ["a-run", "b-run", "tb-only"]
    assert [r.n_checkpoints for r in listings] == [1, 2, 0]
    assert list_runs(tmp_path / "missing") == []

    run_dir = tmp_path / "a-run"
    before = run_signature(run_dir)
    assert run_signature(run_dir) == before
    write_checkpoint(run_dir / "checkpoint-200", trainer_state(log_history(200), 200))
    assert run_signature(run_dir) != before


def test_unchanged_files_are_not_reparsed(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=100)
    write_event_file(run_dir / "runs" / "x", [("train/loss", 1, 1.0)], start_time=0.0)
    load_run(run_dir, [tmp_path])
    state_calls, tb_calls = run_module.parse_state_file.calls, run_module.parse_event_file.calls
    load_run(run_dir, [tmp_path])
    assert (run_module.parse_state_file.calls, run_module.parse_event_file.calls) == (state_calls, tb_calls)
    entries = log_history(150)
    write_json(run_dir / "trainer_state.json", trainer_state(entries, 150))
    run = load_run(run_dir, [tmp_path])
    assert run_module.parse_state_file.calls == state_calls + 1
    assert run_module.parse_event_file.calls == tb_calls
    assert run.state.global_step == 150


def test_corrupt_event_record_keeps_earlier_points(tmp_path: Path) -> None:
    path = write_event_file(tmp_path / "tb", [("train/loss", s, float(s)) for s in range(1, 51)], start_time=0.0)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = b"\xff" * 8  # garbage where a record should be
    path.write_bytes(bytes(data))
    table, problems = read_event_file(path)
    assert 10 < len(table) < 50
    assert table["value"].tolist() == [float(s) for s in range(1, len(table) + 1)]
    assert len(problems) == 1 and "kept the" in problems[0]


def test_event_file_matches_tensorboard_reader(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    entries = log_history(60, eval_every=20)
    path = write_event_file(tmp_path / "tb", hf_scalars(entries), start_time=5.0)
    ours, _ = read_event_file(path)
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    for tag, name in (("train/loss", "loss"), ("eval/loss", "eval_loss"), ("train/grad_norm", "grad_norm")):
        ref = acc.Scalars(tag)
        rows = ours[ours["metric"] == name]
        assert rows["step"].tolist() == [e.step for e in ref]
        assert rows["value"].tolist() == [e.value for e in ref]
        assert rows["wall_time"].tolist() == [e.wall_time for e in ref]


def test_root_that_is_itself_a_run_lists_only_itself(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "solo", n_steps=100)
    write_event_file(run_dir / "runs" / "Nov23", [("train/loss", 1, 1.0)], start_time=0.0)
    assert [r.name for r in list_runs(run_dir)] == ["solo"]


def test_unreadable_state_is_typed_not_recognised_by_message(tmp_path: Path) -> None:
    """Fallback to another trainer_state.json is decided by ``ParsedState.readable``, not by text."""
    from dashboard.runs.trainer_state import read_trainer_state

    broken = tmp_path / "trainer_state.json"
    broken.write_text("{not json")
    assert read_trainer_state(broken).readable is False
    broken.write_text("[1, 2]")
    assert read_trainer_state(broken).readable is False
    broken.write_text('{"log_history": [], "global_step": 0}')
    assert read_trainer_state(broken).readable is True
