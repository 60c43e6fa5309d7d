"""Processor loading: image-only fallback for video processors, and failures before any weights load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoProcessor

from dashboard.models import loading
from dashboard.models.loading import CheckpointLoadError, load_checkpoint
from dashboard.models.processors import load_processor
from tests.attention import family_checkpoints as fc


def test_qwen2_vl_checkpoint_with_video_entry_loads_images_only(tmp_path: Path) -> None:
    folder = fc.qwen2_vl(tmp_path / "q")
    with pytest.raises(ImportError, match="Torchvision"):  # what plain AutoProcessor does in this environment
        AutoProcessor.from_pretrained(folder, local_files_only=True)
    processor = load_processor(folder)
    assert type(processor).__name__ == "Qwen2VLProcessor" and processor.image_processor is not None


def test_broken_processor_is_reported_before_weights_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = fc.paligemma(tmp_path / "p")
    (folder / "tokenizer.json").write_text("{ not json", encoding="utf-8")
    (folder / "tokenizer_config.json").unlink()
    called: list[Path] = []
    monkeypatch.setattr(loading, "_auto_model", lambda path, *a, **k: called.append(path))
    with pytest.raises(CheckpointLoadError, match="processor"):
        load_checkpoint(folder, torch.device("cpu"))
    assert called == []
