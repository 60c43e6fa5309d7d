"""Session fixtures for the attention tests: each family's checkpoint folder and its geometry-oracle report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoConfig

from dashboard.attention import geometry
from dashboard.attention.adapters import REGISTRY
from dashboard.models.processors import load_processor
from tests.attention import family_checkpoints as fc

ORACLE_CASES = 200


@pytest.fixture(scope="session")
def family_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("family_folders")
    return {name: build(root / name) for name, build in fc.BUILDERS.items()}


@pytest.fixture(scope="session")
def oracle_reports(family_folders: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The oracle over ``ORACLE_CASES`` random sizes for every fixture family that has an adapter and a reader."""
    reports = {}
    for name, folder in family_folders.items():
        if name in REGISTRY and name in geometry.READERS:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
            reports[name] = geometry.run(config, load_processor(folder), cases=ORACLE_CASES, seed=0)
    return reports
