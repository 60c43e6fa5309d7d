"""The demo build job: one build per process, shared progress, build-then-rename."""

from __future__ import annotations

import threading
from pathlib import Path

from dashboard.demo.build import MARKER, DemoReport, _write_marker
from dashboard.demo.jobs import DemoBuildJob, demo_build_job


class FakeBuilder:
    """Writes a marker + one checkpoint folder; blocks until released, so tests control timing."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail = fail

    def __call__(self, out_dir: Path, preset: str, seed: int, progress) -> DemoReport:
        self.calls += 1
        out_dir.mkdir(parents=True)
        _write_marker(out_dir, {"complete": False})
        (out_dir / "checkpoint-1").mkdir()
        (out_dir / "eval").mkdir()
        (out_dir / "eval" / "demo.jsonl").write_text("{}\n")
        progress(0.5, "half way")
        self.started.set()
        self.release.wait(10)
        if self.fail:
            raise OSError("disk full (simulated)")
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
    assert not (tmp_path / "runs" / "demo").exists()  # nothing where the sidebar looks until complete
    builder.release.set()
    final = job.wait(10)
    assert final.state == "done" and final.builds_started == 1 and builder.calls == 1
    assert final.report is not None and final.report.path == (tmp_path / "runs" / "demo").resolve()
    assert final.report.eval_set == final.report.path / "eval" / "demo.jsonl"
    assert (tmp_path / "runs" / "demo" / "checkpoint-1").is_dir()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["demo"]  # no staging folder left


def test_failed_build_leaves_nothing_and_can_be_retried(tmp_path):
    builder = FakeBuilder(fail=True)
    builder.release.set()
    job = DemoBuildJob(tmp_path / "runs" / "demo", builder=builder)
    assert job.start()
    status = job.wait(10)
    assert status.state == "failed" and "disk full" in (status.error or "")
    assert list((tmp_path / "runs").iterdir()) == []
    builder.fail = False
    assert job.start()
    assert job.wait(10).state == "done" and job.status.builds_started == 2


def test_rebuild_replaces_a_previous_demo_run_and_refuses_other_folders(tmp_path):
    target = tmp_path / "runs" / "demo"
    target.mkdir(parents=True)
    _write_marker(target, {"complete": True})
    (target / "stale.txt").write_text("old")
    builder = FakeBuilder()
    builder.release.set()
    job = DemoBuildJob(target, builder=builder)
    job.start()
    assert job.wait(10).state == "done"
    assert (target / MARKER).is_file() and not (target / "stale.txt").exists()

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
