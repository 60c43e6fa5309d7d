"""Checkpoint discovery: numeric order, weight formats, adapters, model types, bad folders."""

from __future__ import annotations

from pathlib import Path

from dashboard.runs.checkpoints import discover_checkpoints, inspect_checkpoint
from dashboard.runs.synthetic import write_checkpoint, write_json


def test_steps_sorted_numerically_not_lexically(tmp_path: Path) -> None:
    for step in (1000, 200, 30, 9):
        write_checkpoint(tmp_path / f"checkpoint-{step}")
    (tmp_path / "checkpoint-final").mkdir()  # not a numbered checkpoint: ignored
    (tmp_path / "checkpoint-50.txt").write_text("x")  # a file, not a folder
    found = discover_checkpoints(tmp_path)
    assert [c.step for c in found] == [9, 30, 200, 1000]
    assert [c.name for c in found] == ["checkpoint-9", "checkpoint-30", "checkpoint-200", "checkpoint-1000"]


def test_weight_formats_adapter_and_model_type(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "checkpoint-1", weights="safetensors", model_type="llava")
    write_checkpoint(tmp_path / "checkpoint-2", weights="sharded-safetensors", model_type="qwen2_vl")
    write_checkpoint(tmp_path / "checkpoint-3", weights="pickle")
    write_checkpoint(tmp_path / "checkpoint-4", weights="safetensors", model_type="", adapter=True)
    write_checkpoint(tmp_path / "checkpoint-5", weights="none")
    write_checkpoint(tmp_path / "checkpoint-6", weights="safetensors", model_type="", adapter=True)
    write_checkpoint(tmp_path / "base")
    write_json(tmp_path / "checkpoint-6" / "adapter_config.json",
               {"peft_type": "LORA", "r": 4, "base_model_name_or_path": "base"})
    by_step = {c.step: c for c in discover_checkpoints(tmp_path)}
    assert by_step[1].weight_format == "safetensors" and by_step[1].model_type == "llava" and by_step[1].loadable
    assert by_step[2].weight_format == "sharded-safetensors" and by_step[2].model_type == "qwen2_vl"
    assert by_step[2].loadable and not by_step[2].problems
    assert by_step[3].weight_format == "pickle" and any("pickle" in p for p in by_step[3].problems)
    # One rule with the loader: an adapter is loadable only with a local base model to put it on.
    assert by_step[4].is_adapter and by_step[4].model_type is None and not by_step[4].loadable
    assert any("base_model_name_or_path" in p for p in by_step[4].problems)
    assert by_step[6].is_adapter and by_step[6].loadable, by_step[6].problems
    assert not by_step[1].is_adapter
    assert by_step[5].weight_format == "none" and not by_step[5].loadable
    assert any("no model weights" in p for p in by_step[5].problems)


def test_listing_and_loader_agree_on_weight_names(tmp_path: Path) -> None:
    """Only names transformers loads count: a stray ``weights.safetensors`` is not a loadable checkpoint
    (the sidebar used to list any ``*.safetensors`` that the loader then refused)."""
    ckpt = write_checkpoint(tmp_path / "checkpoint-1")
    (ckpt / "model.safetensors").rename(ckpt / "weights.safetensors")
    info = inspect_checkpoint(ckpt)
    assert info.weight_format == "none" and not info.loadable
    assert any("weights.safetensors is not a name transformers loads" in p for p in info.problems)


def test_size_and_modified_time(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "checkpoint-7")
    info = inspect_checkpoint(ckpt)
    assert info.size_bytes == sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
    newest = max(p.stat().st_mtime for p in ckpt.rglob("*") if p.is_file())
    assert abs(info.modified.timestamp() - newest) < 1e-3


def test_missing_shard_and_broken_config_are_reported(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "checkpoint-10", weights="sharded-safetensors")
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    (ckpt / "config.json").write_text("{not json")
    info = inspect_checkpoint(ckpt)
    assert info.missing_files == ("model-00002-of-00002.safetensors",)
    assert not info.loadable
    assert any("1 of 2 shard(s) missing" in p for p in info.problems)
    assert any(p.startswith("config.json: not valid JSON") for p in info.problems)
    assert info.model_type is None


def test_run_dir_that_is_itself_a_model_folder(tmp_path: Path) -> None:
    model = write_checkpoint(tmp_path / "final-model")
    write_json(model / "trainer_state.json", {"global_step": 420, "log_history": []})
    found = discover_checkpoints(model)
    assert len(found) == 1
    assert found[0].name == "final-model" and found[0].step == 420 and found[0].path == model


def test_root_model_next_to_checkpoints_counts_only_its_own_files(tmp_path: Path) -> None:
    run = write_checkpoint(tmp_path / "run")  # save_model() output at the run root
    write_checkpoint(run / "checkpoint-5")
    found = discover_checkpoints(run)
    assert [c.name for c in found] == ["checkpoint-5", "run"]
    own = sum(p.stat().st_size for p in run.iterdir() if p.is_file())
    assert found[1].size_bytes == own


def test_empty_or_missing_dir_has_no_checkpoints(tmp_path: Path) -> None:
    assert discover_checkpoints(tmp_path) == []
    assert discover_checkpoints(tmp_path / "nope") == []
