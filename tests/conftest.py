"""Shared fixtures: tiny models built from configs and a small, genuinely trained demo run.

Nothing here downloads anything; every model is built locally in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny LLaVA checkpoint folder (safetensors + processor), ~0.7 MB."""
    from dashboard.demo.modeling import save_tiny_llava

    return save_tiny_llava(tmp_path_factory.mktemp("tiny-llava") / "model")


@pytest.fixture(scope="session")
def demo_runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs root holding ``demo/``: a small demo run trained with the "test" preset."""
    from dashboard.demo.build import build_demo_run

    root = tmp_path_factory.mktemp("runs")
    build_demo_run(root / "demo", preset="test", seed=0)
    return root


@pytest.fixture(scope="session")
def demo_run_dir(demo_runs_root: Path) -> Path:
    return demo_runs_root / "demo"


@pytest.fixture()
def app_env(demo_runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the app at the demo runs root and a fresh data dir; returns the data dir."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(demo_runs_root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO_ROOT)
    return data_dir
