"""The watcher's pieces that need no training job: when a checkpoint counts as complete, its status, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dashboard.cli import main
from dashboard.live.watcher import Settler, WatchStatus
from dashboard.models.loading import inspect_checkpoint


def _inspect(path: Path) -> None:
    inspect_checkpoint(path, roots=[path.parent])


def test_a_checkpoint_is_ready_only_once_unchanged_over_two_polls(tiny_llava_dir: Path, tmp_path: Path) -> None:
    ckpt = shutil.copytree(tiny_llava_dir, tmp_path / "run" / "checkpoint-1")
    settler = Settler(_inspect)
    assert not settler.ready(ckpt, trainer_run=False)  # first sight: nothing to compare with
    assert settler.ready(ckpt, trainer_run=False)
    (ckpt / "extra.json").write_text("{}")  # still being written
    assert not settler.ready(ckpt, trainer_run=False)
    assert settler.ready(ckpt, trainer_run=False)


def test_a_truncated_weight_file_is_not_ready_however_long_it_sits(tiny_llava_dir: Path, tmp_path: Path) -> None:
    ckpt = shutil.copytree(tiny_llava_dir, tmp_path / "run" / "checkpoint-1")
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    settler = Settler(_inspect)
    assert [settler.ready(ckpt, trainer_run=False) for _ in range(3)] == [False, False, False]


def test_a_trainer_checkpoint_waits_for_its_trainer_state(tiny_llava_dir: Path, tmp_path: Path) -> None:
    ckpt = shutil.copytree(tiny_llava_dir, tmp_path / "run" / "checkpoint-1")
    settler = Settler(_inspect)
    settler.ready(ckpt, trainer_run=True)
    assert not settler.ready(ckpt, trainer_run=True)  # Trainer writes trainer_state.json last
    (ckpt / "trainer_state.json").write_text('{"global_step": 1}')
    settler.ready(ckpt, trainer_run=True)
    assert settler.ready(ckpt, trainer_run=True)


def test_status_line_says_what_is_being_scored() -> None:
    assert WatchStatus(state="scoring", checkpoint="checkpoint-1200", done=40, total=200).text() == \
        "scoring checkpoint-1200: 40/200"
    waiting = WatchStatus(state="waiting", scored=("checkpoint-1",), waiting_for=("checkpoint-2",)).text()
    assert "1 scored" in waiting and "checkpoint-2 still being written" in waiting


@pytest.mark.parametrize("args", [["--run", "/nonexistent/run"], ["--eval", "/nonexistent.jsonl"], ["--limit", "0"]])
def test_watch_bad_input_exits_2(args: list[str], tiny_checkpoints: list[Path], capsys: pytest.CaptureFixture) -> None:
    run = tiny_checkpoints[0].parent
    full = ["watch", *args] if args[0] == "--run" else ["watch", "--run", str(run), *args]
    assert main(full) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_watch_scores_through_ray_when_the_address_is_set(tiny_llava_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep backend selection is eval's own: ``VLMLAB_RAY_ADDRESS`` set → the Ray backend does the work."""
    import dashboard.compare.ray_backend as ray_backend
    from dashboard.compare.headless import EvalRequest
    from dashboard.compare.sweep import SweepOutcome, result_row
    from dashboard.demo.task import generate_examples, write_eval_set
    from dashboard.live.watcher import WatchConfig, Watcher

    made: list[str] = []

    class FakeRay:
        name = "ray"

        def __init__(self, address: str, **kwargs: object) -> None:
            made.append(address)

        def run(self, jobs, settings, *, batch_size, max_image_pixels, on_rows, on_status, should_stop):
            for job in jobs:
                on_rows(job.name, [result_row(ex, None, None) for ex in job.examples])
            return SweepOutcome()

    monkeypatch.setattr(ray_backend, "RayBackend", FakeRay)
    monkeypatch.setenv("VLMLAB_RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    run = tmp_path / "run"
    shutil.copytree(tiny_llava_dir, run / "checkpoint-1")
    write_eval_set(list(generate_examples(3, seed=1)), run / "eval", name="mini")
    lines: list[dict] = []
    watcher = Watcher(WatchConfig(EvalRequest(run=run)), on_result=lines.append)
    watcher.poll()  # first sight
    watcher.poll()  # unchanged: complete, scored
    assert made == ["ray://head:10001"]
    assert [(line["checkpoint"], line["n"]) for line in lines] == [("checkpoint-1", 3)]
    watcher.poll()
    assert len(lines) == 1  # saved under eval's key: never scored twice
