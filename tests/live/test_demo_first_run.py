"""Home while the demo trains (AppTest): the build starts by itself, a half-built run is shown as building
or interrupted, never as the finished demo."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.demo.build import DemoReport
from dashboard.demo.jobs import AUTOBUILD_ENV, demo_build_job
from dashboard.demo.marker import write_marker

REPO_ROOT = Path(__file__).resolve().parents[2]


class SlowBuilder:
    """Saves one real checkpoint, then waits to be released (the rest of training)."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.release = threading.Event()
        self.saved = threading.Event()

    def __call__(self, out_dir: Path, preset: str, seed: int, progress) -> DemoReport:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_marker(out_dir, {"complete": False, "preset": preset, "seed": seed})
        progress(0.1, "step 150/600")
        shutil.copytree(self.checkpoint, out_dir / "checkpoint-150")
        (out_dir / "checkpoint-150" / "trainer_state.json").write_text('{"global_step": 150}')
        self.saved.set()
        self.release.wait(60)
        write_marker(out_dir, {"complete": True, "preset": preset, "seed": seed})
        return DemoReport(path=out_dir, n_checkpoints=1, first_eval_accuracy=0.25, last_eval_accuracy=0.5,
                          seconds=2.0, preset=preset, seed=seed)


@pytest.fixture()
def empty_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO_ROOT)
    return root


def _texts(at: AppTest) -> str:
    return " ".join([*(e.value for e in at.markdown), *(e.value for e in at.caption), *(e.value for e in at.info),
                     *(e.value for e in at.warning), *(e.value for e in at.success),
                     *(str(e.proto.text) for e in at.get("progress"))])


def test_first_view_starts_the_build_and_shows_checkpoints_as_they_land(empty_root: Path, tiny_llava_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTOBUILD_ENV, "1")
    builder = SlowBuilder(tiny_llava_dir)
    job = demo_build_job(empty_root / "demo", builder=builder)
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    try:
        at.run()
        assert not at.exception, at.exception
        assert job.status.builds_started == 1  # nobody pressed anything
        assert builder.saved.wait(60)
        at.run()
        at.run()
        assert not at.exception, at.exception
        text = _texts(at)
        assert "Building the demo run" in text and "step 150/600" in text, text
        assert "Built the demo run" not in text
        assert at.session_state["_w_sidebar_run"] is not None  # the half-built run is listed, as building
        AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120).run()  # another visitor
        assert job.status.builds_started == 1
    finally:
        builder.release.set()
    assert job.wait(60).state == "done"
    at.run()
    at.run()
    assert not at.exception, at.exception
    assert "Built the demo run: 1 checkpoints" in _texts(at)


def test_an_interrupted_demo_is_not_shown_as_the_demo(empty_root: Path, tiny_llava_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOBUILD_ENV, raising=False)
    run = empty_root / "demo"
    shutil.copytree(tiny_llava_dir, run / "checkpoint-150")
    (run / "checkpoint-150" / "trainer_state.json").write_text('{"global_step": 150}')
    write_marker(run, {"complete": False, "preset": "full", "seed": 0})
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "unfinished" in warning and "1 checkpoint(s)" in warning and "resumes" in warning
    assert any(b.label == "Resume the demo build" for b in at.button)
    assert not at.success
