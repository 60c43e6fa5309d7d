"""Processor loading: image-only fallback for video processors, and failures before any weights load."""

from __future__ import annotations

import json
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


def test_smolvlm_video_entry_is_what_the_real_class_writes(tmp_path: Path) -> None:
    # SmolVLM's video-processor module imports without torchvision, so here the real class can be
    # built in this process: the saved entry must equal its to_dict (what save_pretrained writes).
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    folder = fc.smolvlm(tmp_path / "s")
    saved = json.loads((folder / "processor_config.json").read_text())["video_processor"]
    real = SmolVLMVideoProcessor(size={"longest_edge": 96}, max_image_size={"longest_edge": 32}).to_dict()
    assert saved == json.loads(json.dumps(real))
    assert type(load_processor(folder)).__name__ == "SmolVLMProcessor"


def test_qwen2_vl_video_entry_has_the_real_class_fields(tmp_path: Path) -> None:
    saved = json.loads((fc.qwen2_vl(tmp_path / "q") / "processor_config.json").read_text())["video_processor"]
    assert saved["video_processor_type"] == "Qwen2VLVideoProcessor"
    # the class turns min/max_pixels into size and adds its own frame settings
    assert saved["size"] == {"shortest_edge": 28 * 28, "longest_edge": 28 * 28 * 64}
    assert {"min_frames", "max_frames", "max_video_tokens", "image_mean"} <= set(saved)
