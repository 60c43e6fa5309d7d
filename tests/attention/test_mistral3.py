"""Mistral 3 without torchvision: the slow image processor exists, the processor class does not import,
and the Attention page (its capture) and ``python -m dashboard geometry`` say so in words.

The checkpoint is saved by the real ``Mistral3ForConditionalGeneration`` and ``PixtralProcessor`` (the
latter in a child process, see ``family_checkpoints._PIXTRAL_SAVE_SCRIPT``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers.utils import is_torchvision_available

from dashboard.attention.adapters import UnsupportedFamily, unavailable_reason
from dashboard.attention.sweep import capture
from dashboard.cli import main
from dashboard.models.loading import CheckpointLoadError, load_checkpoint
from dashboard.models.pool import ModelPool
from tests.attention import family_checkpoints as fc

pytestmark = pytest.mark.skipif(is_torchvision_available(), reason="the facts checked here hold without torchvision")

WHY = "its processor class PixtralProcessor cannot be imported without torchvision"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fc.mistral3(tmp_path_factory.mktemp("runs") / "run" / "checkpoint-1")


def test_slow_image_processor_exists_but_the_processor_class_needs_torchvision(checkpoint: Path) -> None:
    from transformers import AutoImageProcessor, AutoProcessor, PixtralImageProcessorPil

    image_processor = AutoImageProcessor.from_pretrained(checkpoint, use_fast=False, local_files_only=True)
    assert isinstance(image_processor, PixtralImageProcessorPil)
    with pytest.raises(ImportError, match="PixtralProcessor requires the Torchvision library"):
        AutoProcessor.from_pretrained(checkpoint, local_files_only=True)
    with pytest.raises(CheckpointLoadError, match="PixtralProcessor requires the Torchvision"):
        load_checkpoint(checkpoint, torch.device("cpu"))


def test_attention_capture_says_why_there_is_no_map(checkpoint: Path) -> None:
    """What the Attention page's "Generate and capture" calls: refused with the reason, before any load."""
    assert WHY in unavailable_reason("mistral3")[1]
    pool = ModelPool(budget_bytes=2 * 1024**3, device="cpu", dtype=torch.float32)
    with pytest.raises(UnsupportedFamily) as info:
        capture(pool, checkpoint, Image.new("RGB", (64, 48)), "what is it ?", 2)
    message = str(info.value)
    assert "Mistral 3 (mistral3)" in message and WHY in message
    assert "still work" not in message  # it does not load at all, so Inference does not work either
    assert not pool.entries()  # nothing was loaded


def test_geometry_says_why(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["geometry", "--checkpoint", str(checkpoint), "--cases", "2"]) == 2
    err = capsys.readouterr().err
    assert "attention view not available for Mistral 3 (mistral3)" in err and WHY in err
