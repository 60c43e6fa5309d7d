"""A real (small) demo build: genuine Trainer checkpoints that reload with the Auto classes and improve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.demo.build import MARKER, DemoDirError, build_demo_run, prepare_out_dir


def _state(path: Path) -> dict:
    return json.loads((path / "trainer_state.json").read_text())


def _checkpoints(run: Path) -> list[Path]:
    return sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def test_checkpoints_are_real_and_reload_with_auto_classes(demo_run_dir: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    checkpoints = _checkpoints(demo_run_dir)
    assert len(checkpoints) >= 4
    for ckpt in checkpoints:
        assert (ckpt / "model.safetensors").is_file()
        # Weights as safetensors, no pickled weights. Trainer's own optimizer.pt / scheduler.pt /
        # rng_state.pth / training_args.bin are written, as in real runs, so an interrupted build
        # resumes; the dashboard never unpickles them.
        assert not (ckpt / "pytorch_model.bin").exists() and (ckpt / "optimizer.pt").is_file()
        processor = AutoProcessor.from_pretrained(ckpt)
        model = AutoModelForImageTextToText.from_pretrained(ckpt)
        assert type(model).__name__ == "LlavaForConditionalGeneration"
        assert processor.tokenizer.chat_template
    # Weights really change between the first and the last checkpoint.
    from safetensors.torch import load_file

    first = load_file(checkpoints[0] / "model.safetensors")
    last = load_file(checkpoints[-1] / "model.safetensors")
    assert any(not first[k].equal(last[k]) for k in first)


def test_trainer_state_has_train_and_eval_metrics(demo_run_dir: Path):
    state = _state(demo_run_dir)  # the root copy, as trainer.save_state() writes
    history = state["log_history"]
    assert any("loss" in e and "grad_norm" in e for e in history)
    evals = [e for e in history if "eval_loss" in e]
    steps = [int(p.name.split("-")[1]) for p in _checkpoints(demo_run_dir)]
    assert [e["step"] for e in evals] == steps  # an evaluation at every checkpoint
    assert all("eval_accuracy" in e and 0.0 <= e["eval_accuracy"] <= 1.0 for e in evals)
    # The short test run learns the answer format and the priors, not yet the lookup (that takes ≈ 1,500
    # steps; bench/RESULTS.md "Demo v2"), so its exact match is noise around chance: the loss must fall.
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert any("patch_loss" in e for e in history)
    best = min(evals, key=lambda e: e["eval_loss"])
    assert state["best_metric"] == pytest.approx(best["eval_loss"])
    assert Path(state["best_model_checkpoint"]).name == f"checkpoint-{best['step']}"
    assert state["global_step"] == steps[-1]


def test_eval_set_and_marker(demo_run_dir: Path):
    jsonl = demo_run_dir / "eval" / "demo.jsonl"
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) >= 16
    assert all((jsonl.parent / r["image"]).is_file() for r in rows)
    marker = json.loads((demo_run_dir / MARKER).read_text())
    assert marker["complete"] is True and marker["preset"] == "test"


def test_refuses_a_foreign_non_empty_directory(tmp_path: Path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DemoDirError, match="not a previous demo run"):
        build_demo_run(foreign, preset="test")
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="unknown preset"):
        build_demo_run(tmp_path / "new", preset="huge")


def test_previous_demo_run_is_replaced(tmp_path: Path):
    run = tmp_path / "demo"
    run.mkdir()
    (run / MARKER).write_text(json.dumps({"kind": "vlmlab-demo-run"}))
    (run / "checkpoint-5").mkdir()
    prepare_out_dir(run)
    assert run.is_dir() and not any(run.iterdir())


def test_cli_reports_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from dashboard.cli import main

    (tmp_path / "x.txt").write_text("x")
    assert main(["demo", "--out", str(tmp_path), "--preset", "test"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--preset", "nope"])
