"""The demo build job: one build per process, shared progress, built in place and marked unfinished until done;
an interrupted real build resumes from its last checkpoint."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dashboard.demo.build import MARKER, DemoReport, _write_marker
from dashboard.demo.jobs import AUTOBUILD_ENV, DemoBuildJob, autobuild_enabled, demo_build_job, ensure_demo_build
from dashboard.demo.marker import is_incomplete_demo, read_marker


class FakeBuilder:
    """Writes a marker + one checkpoint folder; blocks until released, so tests control timing."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail = fail

    def __call__(self, out_dir: Path, preset: str, seed: int, progress) -> DemoReport:
        self.calls += 1
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_marker(out_dir, {"complete": False})
        (out_dir / "checkpoint-1").mkdir(exist_ok=True)
        (out_dir / "eval").mkdir(exist_ok=True)
        (out_dir / "eval" / "demo.jsonl").write_text("{}\n")
        progress(0.5, "half way")
        self.started.set()
        self.release.wait(10)
        if self.fail:
            raise OSError("disk full (simulated)")
        _write_marker(out_dir, {"complete": True})
        return DemoReport(path=out_dir, n_checkpoints=1, first_eval_accuracy=0.25, last_eval_accuracy=0.75,
                          seconds=1.0, preset=preset, seed=seed, eval_set=out_dir / "eval" / "demo.jsonl")


def test_concurrent_starts_run_one_build_and_share_its_progress(tmp_path):
    builder = FakeBuilder()
    job = DemoBuildJob(tmp_path / "runs" / "demo", builder=builder)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(job.start())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    builder.started.wait(5)
    status = job.status
    assert status.state == "running" and status.fraction == 0.5 and status.message == "half way"
    # Built in place: the checkpoints so far are where the app looks, marked as unfinished.
    assert (tmp_path / "runs" / "demo" / "checkpoint-1").is_dir()
    assert is_incomplete_demo(tmp_path / "runs" / "demo")
    builder.release.set()
    final = job.wait(10)
    assert final.state == "done" and final.builds_started == 1 and builder.calls == 1
    assert final.report is not None and final.report.path == (tmp_path / "runs" / "demo").resolve()
    assert final.report.eval_set == final.report.path / "eval" / "demo.jsonl"
    assert not is_incomplete_demo(tmp_path / "runs" / "demo")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["demo"]


def test_failed_build_stays_marked_unfinished_and_can_be_retried(tmp_path):
    builder = FakeBuilder(fail=True)
    builder.release.set()
    job = DemoBuildJob(tmp_path / "runs" / "demo", builder=builder)
    assert job.start()
    status = job.wait(10)
    assert status.state == "failed" and "disk full" in (status.error or "")
    assert is_incomplete_demo(tmp_path / "runs" / "demo")  # never taken for the finished demo
    builder.fail = False
    assert job.start()
    assert job.wait(10).state == "done" and job.status.builds_started == 2


def test_rebuild_goes_into_a_previous_demo_run_and_refuses_other_folders(tmp_path):
    target = tmp_path / "runs" / "demo"
    target.mkdir(parents=True)
    _write_marker(target, {"complete": True})
    (target / "stale.txt").write_text("old")
    builder = FakeBuilder()
    builder.release.set()
    job = DemoBuildJob(target, builder=builder)
    job.start()
    assert job.wait(10).state == "done"
    assert builder.calls == 1 and (target / MARKER).is_file()  # emptying it is the builder's job (prepare_out_dir)

    other = tmp_path / "runs" / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    job = DemoBuildJob(other, builder=builder)
    job.start()
    status = job.wait(10)
    assert status.state == "failed" and "not a previous demo run" in (status.error or "")
    assert (other / "notes.txt").read_text() == "keep me"


def test_one_job_object_per_folder_per_process(tmp_path):
    assert demo_build_job(tmp_path / "a") is demo_build_job(tmp_path / "a" / ".." / "a")
    assert demo_build_job(tmp_path / "a") is not demo_build_job(tmp_path / "b")


@pytest.mark.parametrize("turned_on_by", [(AUTOBUILD_ENV, "1"), ("SPACE_ID", "someone/vlm-lab")])
def test_autobuild_starts_only_for_a_missing_or_unfinished_demo(tmp_path, monkeypatch, turned_on_by):
    """Under launch.sh and on a Space alike: a missing demo is built, an interrupted one resumed."""
    builder = FakeBuilder()
    builder.release.set()
    done = tmp_path / "done"
    done.mkdir()
    _write_marker(done, {"complete": True})
    for folder in (done, tmp_path / "missing", tmp_path / "half"):
        demo_build_job(folder, builder=builder)  # registers the fake builder for this folder
    half = tmp_path / "half"
    half.mkdir()
    _write_marker(half, {"complete": False})

    monkeypatch.delenv(AUTOBUILD_ENV, raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert ensure_demo_build(tmp_path / "missing") is None  # off unless asked for (or on a Space)
    monkeypatch.setenv(*turned_on_by)
    assert ensure_demo_build(done) is None
    for folder in (tmp_path / "missing", half):
        job = ensure_demo_build(folder)
        assert job is not None and job.wait(10).state == "done"
        assert ensure_demo_build(folder) is None  # finished: nothing more to do
    assert builder.calls == 2


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),  # a plain `streamlit run Home.py`: the button
    ({AUTOBUILD_ENV: "1"}, True),  # scripts/launch.sh
    ({AUTOBUILD_ENV: "0"}, False),
    ({"SPACE_ID": "someone/vlm-lab"}, True),  # a Space: its visitors never wait behind a button
    ({"SPACE_ID": "someone/vlm-lab", AUTOBUILD_ENV: "0"}, False),  # … unless the Space turns it off
    ({"SPACE_ID": "  "}, False),
])
def test_autobuild_is_on_under_launch_sh_and_on_a_space(env, on):
    assert autobuild_enabled(env) is on


def test_an_interrupted_build_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    """A real (very short) build killed after its first checkpoint: the next build continues from it."""
    from dataclasses import replace

    import dashboard.demo.build as build

    tiny = build.Preset(replace(build.RECIPE, max_steps=6, save_steps=2, logging_steps=1, batch_size=2,
                                eval_batch_size=4, render_workers=0), n_eval=4)
    monkeypatch.setitem(build.PRESETS, "tiny", tiny)
    out = tmp_path / "runs" / "demo"

    class Interrupted(Exception):
        pass

    def crash_after_first_save(fraction: float, message: str) -> None:
        if (out / "checkpoint-2" / "trainer_state.json").is_file() and message.startswith("step 3/"):
            raise Interrupted(message)

    try:
        build.build_demo_run(out, preset="tiny", progress=crash_after_first_save)
    except Interrupted:
        pass
    else:
        raise AssertionError("the build was not interrupted")
    assert is_incomplete_demo(out) and sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]

    messages: list[str] = []
    report = build.build_demo_run(out, preset="tiny", progress=lambda f, m: messages.append(m))
    assert report.resumed_from == "checkpoint-2"
    assert messages[0] == "resuming the interrupted build from checkpoint-2"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    marker = read_marker(out)
    assert marker is not None and marker["complete"] is True and marker["resumed_from"] == "checkpoint-2"
    import json

    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    train_steps = [e["step"] for e in history if "loss" in e]
    assert train_steps == sorted(set(train_steps)) and train_steps[0] == 1 and train_steps[-1] == 6
    assert not any(m.startswith("step 1/") or m.startswith("step 2/") for m in messages)  # not retrained

    # Another preset finds nothing of its own to resume: it starts again and says so.
    monkeypatch.setitem(build.PRESETS, "tiny2", tiny)
    _write_marker(out, {"complete": False, "preset": "tiny", "seed": 0})
    messages.clear()
    report = build.build_demo_run(out, preset="tiny2", progress=lambda f, m: messages.append(m))
    assert report.resumed_from is None and messages[0].startswith("restarting the interrupted build from scratch")
