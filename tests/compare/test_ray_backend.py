"""Sweeps on a real local Ray cluster: same rows as in-process, retries after a killed actor.

The cluster is started by the test (``ray.init(num_cpus=2)``, token authentication left on as
Ray 2.60 defaults) and shut down afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from dashboard.compare.results import load_scores
from dashboard.compare.runner import run_eval
from dashboard.evalset import EvalSet, load_eval_set
from dashboard.generation import GenerationSettings
from dashboard.models.pool import ModelPool

ray = pytest.importorskip("ray")

SETTINGS = GenerationSettings(max_new_tokens=6)  # greedy
N_EXAMPLES = 12
BATCH = 4


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def kill_worker_process(actor: Any) -> None:
    """SIGKILL the actor's worker process (as the OOM killer would) and wait until it is gone."""
    try:
        pid = ray.get(actor.pid.remote(), timeout=60)
    except ray.exceptions.RayActorError:
        return  # already dead
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _copy_run(demo_run_dir: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name / "demo"
    shutil.copytree(demo_run_dir, target, ignore=shutil.ignore_patterns("eval_results"))
    return target


def _evalset(run: Path, n: int = N_EXAMPLES) -> EvalSet:
    full = load_eval_set(run / "eval" / "demo.jsonl")
    return full.first(n)


def _comparable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["id"], r["output"], r["scores"], r["prompt_tokens"], r["output_tokens"]) for r in rows]


def _checkpoints(run: Path) -> list[Path]:
    return sorted((p for p in run.glob("checkpoint-*")), key=lambda p: int(p.name.split("-")[1]))[-3:]


def test_ray_sweep_matches_in_process(ray_cluster: Any, demo_run_dir: Path, tmp_path: Path) -> None:
    from dashboard.compare.ray_backend import RayBackend

    local_run, ray_run = _copy_run(demo_run_dir, tmp_path, "local"), _copy_run(demo_run_dir, tmp_path, "ray")
    local = run_eval(ModelPool(budget_bytes=10**9, device="cpu"), local_run, _checkpoints(local_run),
                     _evalset(local_run), SETTINGS, batch_size=BATCH)
    assert local.backend == "local" and local.computed == 3 * N_EXAMPLES
    seen: list[tuple[int, int, str]] = []
    remote = run_eval(None, ray_run, _checkpoints(ray_run), _evalset(ray_run), SETTINGS, batch_size=BATCH,
                      backend=RayBackend("auto"), on_progress=lambda d, t, m: seen.append((d, t, m)))
    assert remote.backend == "ray" and not remote.errors and remote.computed == 3 * N_EXAMPLES
    assert seen[-1][:2] == (3 * N_EXAMPLES, 3 * N_EXAMPLES)
    assert len([s for s in seen if ": " in s[2] and "/" in s[2]]) == 3 * N_EXAMPLES // BATCH  # one per batch
    for ckpt in _checkpoints(local_run):
        a = load_scores(local_run, "demo", ckpt.name)
        b = load_scores(ray_run, "demo", ckpt.name)
        assert a is not None and b is not None and a.complete and b.complete
        assert _comparable(a.rows) == _comparable(b.rows)
    assert ray.cluster_resources().get("CPU") == 2  # every actor was released


def test_killed_actor_is_retried_and_complete_results_stay(ray_cluster: Any, demo_run_dir: Path,
                                                         tmp_path: Path) -> None:
    from dashboard.compare.ray_backend import RayBackend

    run = _copy_run(demo_run_dir, tmp_path, "kill")
    ckpts = _checkpoints(run)
    evalset = _evalset(run)
    # The first checkpoint is already complete from an earlier run: the sweep must not touch it.
    run_eval(ModelPool(budget_bytes=10**9, device="cpu"), run, ckpts[:1], evalset, SETTINGS, batch_size=BATCH)
    (done_file,) = (run / "eval_results").glob(f"demo-*/{ckpts[0].name}-*.json")  # keyed by content + settings
    before = (done_file.read_bytes(), done_file.stat().st_mtime_ns)

    actors: dict[str, list[Any]] = {}
    killed: list[str] = []

    def kill_once(done: int, total: int, message: str) -> None:
        victim = ckpts[1].name
        if not killed and message.startswith(f"{victim}: {BATCH}/"):  # its first batch was saved
            kill_worker_process(actors[victim][-1])
            killed.append(victim)

    backend = RayBackend("auto", max_retries=2,
                         on_actor_started=lambda name, actor: actors.setdefault(name, []).append(actor))
    report = run_eval(None, run, ckpts, evalset, SETTINGS, batch_size=BATCH, backend=backend, on_progress=kill_once)
    assert killed == [ckpts[1].name]
    assert report.retries == {ckpts[1].name: 1} and not report.errors
    assert len(actors[ckpts[1].name]) == 2 and ckpts[0].name not in actors
    assert (done_file.read_bytes(), done_file.stat().st_mtime_ns) == before
    retried = load_scores(run, "demo", ckpts[1].name)
    assert retried is not None and retried.complete
    assert [r["id"] for r in retried.rows] == [ex.id for ex in evalset.examples]  # no duplicates, in order

    # In-process reference for the retried checkpoint: identical rows.
    ref_run = _copy_run(demo_run_dir, tmp_path, "ref")
    run_eval(ModelPool(budget_bytes=10**9, device="cpu"), ref_run, [ref_run / ckpts[1].name], _evalset(ref_run),
             SETTINGS, batch_size=BATCH)
    reference = load_scores(ref_run, "demo", ckpts[1].name)
    assert reference is not None and _comparable(reference.rows) == _comparable(retried.rows)


def test_retries_are_bounded_and_partial_rows_are_kept(ray_cluster: Any, demo_run_dir: Path,
                                                      tmp_path: Path) -> None:
    from dashboard.compare.ray_backend import RayBackend

    run = _copy_run(demo_run_dir, tmp_path, "bounded")
    ckpt = _checkpoints(run)[-1]
    actors: list[Any] = []
    killed: set[int] = set()

    def kill_each_worker_after_a_batch(done: int, total: int, message: str) -> None:
        if message.startswith(f"{ckpt.name}: ") and "/" in message and actors and len(actors) not in killed:
            killed.add(len(actors))
            kill_worker_process(actors[-1])

    backend = RayBackend("auto", max_retries=1, on_actor_started=lambda name, actor: actors.append(actor))
    report = run_eval(None, run, [ckpt], _evalset(run, 6 * BATCH), SETTINGS, batch_size=BATCH, backend=backend,
                      on_progress=kill_each_worker_after_a_batch)
    assert "worker died 2 times" in report.errors[ckpt.name]
    assert len(actors) == 2
    saved = load_scores(run, "demo", ckpt.name)
    assert saved is not None and not saved.complete and saved.n >= BATCH  # partial rows survive


def test_bad_checkpoint_fails_with_its_reason_without_retry(ray_cluster: Any, demo_run_dir: Path,
                                                           tmp_path: Path) -> None:
    from dashboard.compare.ray_backend import RayBackend

    run = _copy_run(demo_run_dir, tmp_path, "bad")
    broken = run / "checkpoint-999"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    report = run_eval(None, run, [broken], _evalset(run), SETTINGS, batch_size=BATCH, backend=RayBackend("auto"))
    assert "checkpoint-999" in report.errors and not report.retries
    assert "config" in report.errors["checkpoint-999"].lower()


def test_ray_worker_confines_to_the_pools_roots(ray_cluster: Any, demo_run_dir: Path, tmp_path: Path) -> None:
    """A Ray worker loads with the pool's :class:`~dashboard.config.LoadOptions`, runs roots included.
    On main the worker called ``load_checkpoint`` without roots, so a checkpoint folder linked to a
    model outside the runs root (which the pool refuses) was loaded by the worker."""
    from dashboard.compare.ray_backend import RayBackend
    from dashboard.config import LoadOptions

    run = _copy_run(demo_run_dir, tmp_path, "confined")
    outside = tmp_path / "outside-model"
    shutil.copytree(_checkpoints(run)[-1], outside)
    linked = run / "checkpoint-99999"
    linked.symlink_to(outside, target_is_directory=True)
    backend = RayBackend("auto", options=LoadOptions(roots=(run,)))
    report = run_eval(None, run, [linked], _evalset(run, BATCH), SETTINGS, batch_size=BATCH, backend=backend)
    assert "outside the runs root" in report.errors.get(linked.name, ""), report.errors
