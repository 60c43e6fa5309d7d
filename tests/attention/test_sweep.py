"""Attention's loops over checkpoints: results next to per-checkpoint failures, never an exception."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

from dashboard.attention.sweep import capture_across, pointing_per_checkpoint
from dashboard.models.pool import CheckpointLoadError, ModelPool
from dashboard.runs.checkpoints import discover_checkpoints


class _PoolRefusing:
    """A pool whose named checkpoints fail to load, the others delegate to a real pool."""

    def __init__(self, real: ModelPool, broken: set[str]):
        self.real, self.broken = real, broken

    @contextmanager
    def turn(self, path: Path, wait_limit_s: float | None = None, on_wait=None):
        """The sweeps take a fair (FIFO) turn per checkpoint, as every generating caller does."""
        if Path(path).name in self.broken:
            raise CheckpointLoadError(f"{Path(path).name}: no weights")
        with self.real.turn(path, wait_limit_s, on_wait) as loaded:
            yield loaded

    @contextmanager
    def acquire(self, path: Path):
        """Pointing pins the model for the report and takes a turn per example."""
        if Path(path).name in self.broken:
            raise CheckpointLoadError(f"{Path(path).name}: no weights")
        with self.real.acquire(path) as loaded:
            yield loaded


def test_capture_across_keeps_results_and_failures_apart(tiny_llava_dir: Path, tmp_path: Path) -> None:
    import shutil

    for name in ("checkpoint-1", "checkpoint-2"):
        shutil.copytree(tiny_llava_dir, tmp_path / name)
    pool = _PoolRefusing(ModelPool(budget_bytes=10**9, device="cpu", dtype=torch.float32), {"checkpoint-2"})
    paths = [str(tmp_path / "checkpoint-1"), str(tmp_path / "checkpoint-2")]
    runs, errors = capture_across(pool, paths, Image.new("RGB", (64, 64), "red"), "what colour ?", ())
    assert list(runs) == paths[:1] and len(runs[paths[0]].tokens) == 1
    assert list(errors) == paths[1:] and isinstance(errors[paths[1]], CheckpointLoadError)


def test_pointing_reports_each_checkpoint_it_could_not_load(tiny_llava_dir: Path, tmp_path: Path) -> None:
    import shutil

    for name in ("checkpoint-1", "checkpoint-2"):
        shutil.copytree(tiny_llava_dir, tmp_path / name)
    infos = discover_checkpoints(tmp_path)
    pool = _PoolRefusing(ModelPool(budget_bytes=10**9, device="cpu"), {"checkpoint-1", "checkpoint-2"})
    progress: list[tuple[int, int, str]] = []
    rows, errors = pointing_per_checkpoint(pool, infos, [], 4, on_progress=lambda *a: progress.append(a))
    assert rows == {}
    assert [p[:2] for p in progress] == [(1, 2), (2, 2)]  # the bar advances past checkpoints that failed
    assert sorted(Path(p).name for p in errors) == ["checkpoint-1", "checkpoint-2"]


def test_capture_stops_mid_generation_when_cancelled(tiny_llava_dir: Path, tmp_path: Path) -> None:
    import shutil

    import pytest

    from dashboard.attention.sweep import capture
    from dashboard.generation import GenerationCancelled
    from tests.cancel_kit import MidGenerationCancel

    for name in ("checkpoint-1", "checkpoint-2"):
        shutil.copytree(tiny_llava_dir, tmp_path / name)
    pool = ModelPool(budget_bytes=10**9, device="cpu", dtype=torch.float32)
    first = tmp_path / "checkpoint-1"
    with pool.acquire(first) as loaded:
        cancel = MidGenerationCancel(loaded, after=3)
    image = Image.new("RGB", (64, 64), "red")
    with pytest.raises(GenerationCancelled):
        capture(pool, first, image, "what colour ?", 40, should_stop=cancel.should_stop)
    assert cancel.calls <= 4, cancel.calls  # 40 forward passes without the wiring
    # Across checkpoints: the first capture is cancelled and the second checkpoint is never loaded.
    cancel.calls, cancel.after, cancel.flag = 0, 1, False
    with pytest.raises(GenerationCancelled):
        capture_across(pool, [str(first), str(tmp_path / "checkpoint-2")], image, "what colour ?", (),
                       should_stop=cancel.should_stop)
    assert pool.load_count == 1
    with pytest.raises(GenerationCancelled):  # the pointing sweep: nothing loaded once the session is gone
        pointing_per_checkpoint(pool, discover_checkpoints(tmp_path), [], 4, should_stop=lambda: True)
    assert pool.load_count == 1
