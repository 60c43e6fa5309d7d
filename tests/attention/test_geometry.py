"""The geometry oracle over every family with attention: 200 random image sizes each, min IoU ≥ 0.99.

Processor-only (config + processor of the saved fixture; no forward pass). The oracle itself is
shown able to fail: an adapter whose boxes are off by a third of a cell, or whose rows are
flipped, is caught.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import AutoConfig

from dashboard.attention import geometry
from dashboard.attention.adapters import REGISTRY, GridView, ImageLayout
from dashboard.cli import main
from dashboard.models.processors import load_processor
from tests.attention import family_checkpoints as fc
from tests.attention.conftest import ORACLE_CASES as CASES

CHECKED = sorted(set(fc.BUILDERS) & set(REGISTRY))
THRESHOLD = 0.99


@pytest.fixture(scope="module")
def folders(family_folders: dict[str, Path]) -> dict[str, Path]:
    return family_folders


def _parts(folder: Path) -> tuple[Any, Any]:
    return AutoConfig.from_pretrained(folder, local_files_only=True), load_processor(folder)


def test_every_family_with_attention_has_a_pixel_reader() -> None:
    assert set(REGISTRY) <= set(geometry.READERS)
    existing = {"llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "paligemma", "gemma3"}
    assert existing <= set(CHECKED)


@pytest.mark.parametrize("name", CHECKED)
def test_oracle_passes_over_random_sizes(name: str, oracle_reports: dict[str, dict[str, Any]]) -> None:
    report = oracle_reports[name]
    assert report["model_type"] == name and report["cases"] == CASES
    assert report["tokens_checked"] >= CASES * 4
    assert report["min_iou"] >= THRESHOLD, report["worst"]


def _tampered(change: Any) -> Any:
    real = geometry.layouts_for

    def layouts_for(*args: Any) -> tuple[ImageLayout, ...]:
        out = []
        for layout in real(*args):
            views = tuple(GridView(v.name, v.positions, change(v.boxes.copy())) for v in layout.views)
            out.append(ImageLayout(layout.family, layout.image_size, views, layout.image_positions, layout.note,
                                   layout.segments, layout.token_order))
        return tuple(out)

    return layouts_for


def _shift_third(boxes: np.ndarray) -> np.ndarray:
    width = boxes[..., 2] - boxes[..., 0]
    boxes[..., 0] += width / 3
    boxes[..., 2] += width / 3
    return boxes


@pytest.mark.parametrize("name", ["llava", "llava_next", "qwen2_vl", "idefics3", "internvl", "gemma3", "gemma4"])
@pytest.mark.parametrize("change", [_shift_third, lambda b: b[::-1].copy()], ids=["shifted", "rows flipped"])
def test_oracle_catches_a_wrong_adapter(name: str, change: Any, folders: dict[str, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config, processor = _parts(folders[name])
    monkeypatch.setattr(geometry, "layouts_for", _tampered(change))
    report = geometry.run(config, processor, cases=5, seed=0)
    assert report["min_iou"] < 0.8, report["worst"]


def test_cli_geometry_json(folders: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["geometry", "--checkpoint", str(folders["gemma3"]), "--cases", "7", "--seed", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"model_type", "cases", "min_iou", "worst"} <= set(report)
    assert report["model_type"] == "gemma3" and report["cases"] == 7 and report["min_iou"] >= THRESHOLD
    assert set(report["worst"]) >= {"image_size", "view", "row", "col", "iou", "box"}


def test_cli_geometry_unsupported_family_exits_2(folders: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["geometry", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_geometry_family_without_adapter_says_why(folders: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["geometry", "--checkpoint", str(folders["aya_vision"]), "--cases", "2"]) == 2
    assert "attention view not available for aya_vision" in capsys.readouterr().err
