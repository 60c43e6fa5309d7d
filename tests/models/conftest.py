"""Fixtures for the pool tests: several copies of the tiny LLaVA checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tiny_checkpoints(tiny_llava_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four identical-size checkpoint folders (``run/checkpoint-{1..4}``)."""
    root = tmp_path_factory.mktemp("pool-run") / "run"
    out = []
    for step in range(1, 5):
        target = root / f"checkpoint-{step}"
        shutil.copytree(tiny_llava_dir, target)
        out.append(target)
    return out
