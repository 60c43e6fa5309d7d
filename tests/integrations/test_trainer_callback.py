"""``LiveScoringCallback`` inside a real (tiny) ``Trainer`` run: results in the store ``eval`` reads."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dashboard.compare.headless import EvalRequest, evaluate
from dashboard.compare.results import iter_saved
from dashboard.integrations.trainer import LiveScoringCallback

TRAINER_DIR = Path(__file__).resolve().parents[1] / "live"


def test_callback_scores_every_save_into_the_eval_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLMLAB_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    sys.path.insert(0, str(TRAINER_DIR))
    from tiny_trainer import make_trainer, write_tiny_eval_set

    run = tmp_path / "run"
    run.mkdir()
    eval_file = write_tiny_eval_set(run, 6)
    seen: list[dict] = []
    callback = LiveScoringCallback(limit=6, batch_size=3, on_result=seen.append)  # the run's eval/ set by default
    make_trainer(run, steps=8, save_steps=4, callbacks=[callback]).train()

    assert [line["checkpoint"] for line in seen] == ["checkpoint-4", "checkpoint-8"] == \
        [line["checkpoint"] for line in callback.results]
    saved = {s.checkpoint: s for s in iter_saved(run, tmp_path / "data")}
    assert set(saved) == {"checkpoint-4", "checkpoint-8"} and all(s.complete and s.n == 6 for s in saved.values())
    # The same key as the headless eval: it finds both results and computes nothing.
    report = evaluate(EvalRequest(run=run, eval_file=eval_file, limit=6, batch_size=3))
    by_name = {c["checkpoint"]: c for c in report["checkpoints"]}
    for line in seen:
        assert by_name[line["checkpoint"]]["metrics"] == line["metrics"] and line["n"] == 6
    assert callback._watcher is not None and callback._watcher._backend is not None
    assert callback._watcher._backend.pool.entries() == []  # the training process got its memory back


def test_only_rank_zero_scores(tmp_path: Path) -> None:
    from transformers import TrainerControl, TrainerState

    (tmp_path / "checkpoint-4").mkdir()
    callback = LiveScoringCallback()
    control = TrainerControl()
    state = TrainerState(global_step=4, is_world_process_zero=False)
    assert callback.on_save(SimpleNamespace(output_dir=str(tmp_path)), state, control) is control
    assert callback._watcher is None and callback.results == []
