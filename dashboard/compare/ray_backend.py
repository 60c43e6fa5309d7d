"""Sweeps on a Ray cluster: one actor per checkpoint, batches streamed back as they finish.

Imported only when ``VLMLAB_RAY_ADDRESS`` is set (see :func:`dashboard.compare.backends.default_backend`).

- The examples of all jobs are put in the object store **once**; each actor receives the
  reference at creation and resolves it a single time.
- Each actor asks for one GPU when the cluster has GPUs, one CPU otherwise, loads its
  checkpoint (the same loader and the same :class:`~dashboard.config.LoadOptions` as the pool —
  runs roots included) and scores batches with
  the same :func:`~dashboard.compare.sweep.score_chunk` as the in-process path.
- Batches are returned in order per checkpoint; each one goes to ``on_rows`` (and so to the
  result file) the moment it is done. Two batches per actor are kept in flight so a worker
  never idles waiting for the driver.
- Stop kills every actor. A *dead* actor (node lost, OOM-killed, ``ray.kill``) is replaced
  and continues with the examples not yet returned, at most ``max_retries`` times; an error
  raised by the work itself (bad checkpoint) is not retried — it would fail the same way.
- Workers need the checkpoints and the eval-set images at the same paths as the dashboard
  (a shared filesystem); a worker that sees other checkpoint content than the result's identity
  names (:func:`~dashboard.compare.identity.checkpoint_signature`, e.g. a node whose copy is stale)
  refuses to score it, so its rows never land under that identity; and this repository importable
  (``runtime_env`` ships the package when connecting to a remote cluster).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashboard.compare.sweep import OnRows, OnStatus, SweepJob, SweepOutcome, chunks, error_text
from dashboard.config import LoadOptions

if TYPE_CHECKING:
    from dashboard.evalset import EvalExample
    from dashboard.generation import GenerationSettings

IN_FLIGHT_PER_ACTOR = 2
WAIT_S = 0.25
"""How often the driver looks at ``should_stop`` while batches run."""
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


class CheckpointWorker:
    """Ray actor body: one checkpoint's model, kept loaded across batches."""

    def __init__(self, checkpoint: str, examples: dict[str, EvalExample], settings: GenerationSettings,
                 batch_size: int, max_image_pixels: int, load_options: LoadOptions,
                 expected_signature: str | None = None):
        self.checkpoint = checkpoint
        self.expected_signature = expected_signature
        self.load_options = load_options
        self.examples = examples  # resolved once from the object store
        self.settings = settings
        self.max_image_pixels = max_image_pixels
        from dashboard.compare.sweep import BatchState

        self.state = BatchState(batch_size=batch_size)
        self._loaded: Any = None

    def load(self) -> float:
        """Load the checkpoint (on this actor's GPU when Ray gave it one); returns seconds."""
        import ray

        from dashboard.compare.identity import checkpoint_signature
        from dashboard.models.loading import load_checkpoint, resolve_device

        seen = checkpoint_signature(self.checkpoint)
        if self.expected_signature is not None and seen != self.expected_signature:
            raise RuntimeError(f"{Path(self.checkpoint).name}: this worker sees other checkpoint content "
                               f"({seen}) than the result's identity ({self.expected_signature})")
        t0 = time.perf_counter()
        device = resolve_device("cuda" if ray.get_gpu_ids() else "cpu")
        self._loaded = load_checkpoint(self.checkpoint, device, options=self.load_options)
        return time.perf_counter() - t0

    def run_batch(self, ids: list[str]) -> tuple[list[dict[str, Any]], float]:
        """Rows for these example ids and the seconds it took."""
        from dashboard.compare.sweep import score_chunk

        if self._loaded is None:
            self.load()
        t0 = time.perf_counter()
        chunk = [self.examples[i] for i in ids]
        rows = score_chunk(self._loaded, chunk, self.settings, self.state, self.max_image_pixels)
        return rows, time.perf_counter() - t0

    def pid(self) -> int:
        import os

        return os.getpid()


@dataclass
class _Lane:
    """Driver-side bookkeeping of one checkpoint: its actor, queued and in-flight batches."""

    job: SweepJob
    todo: deque[list[str]]
    in_flight: deque[tuple[Any, list[str]]] = field(default_factory=deque)
    actor: Any = None
    retries: int = 0
    done: bool = False


def _use_token_auth_when_a_token_exists() -> None:
    """A driver joining an existing cluster sends Ray's auth token only with ``RAY_AUTH_MODE=token``.

    Clusters started by Ray 2.60 require the token by default; if one is available (the
    variable, a token path, or ``~/.ray/auth_token``) and the mode is unset, turn it on.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or \
            (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def connect(address: str) -> Any:
    """``ray.init`` once per process (reusing a connection the caller already made)."""
    _use_token_auth_when_a_token_exists()  # before importing ray: its C++ config reads the mode once
    import ray

    if not ray.is_initialized():
        runtime_env: dict[str, Any] = {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}
        if address.startswith("ray://"):  # a remote cluster cannot see this checkout: ship the package
            runtime_env["py_modules"] = [str(_PACKAGE_DIR)]
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    return ray


class RayBackend:
    """:class:`~dashboard.compare.sweep.SweepBackend` on Ray (see the module docstring)."""

    name = "ray"

    def __init__(self, address: str = "auto", *, max_retries: int = 2, options: LoadOptions | None = None,
                 on_actor_started: Callable[[str, Any], None] | None = None):
        self.address = address
        self.load_options = options or LoadOptions()
        self.max_retries = max_retries
        self.on_actor_started = on_actor_started
        """Test hook: called with (checkpoint name, actor handle) whenever an actor starts."""

    def _actor_options(self, ray: Any) -> dict[str, Any]:
        gpus = ray.cluster_resources().get("GPU", 0)
        return {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}

    def run(self, jobs: Sequence[SweepJob], settings: GenerationSettings, *, batch_size: int,
            max_image_pixels: int, on_rows: OnRows, on_status: OnStatus,
            should_stop: Callable[[], bool]) -> SweepOutcome:
        outcome = SweepOutcome()
        lanes = [_Lane(job, deque([ex.id for ex in c] for c in chunks(job.examples, batch_size)))
                 for job in jobs if job.examples]
        if not lanes:
            return outcome
        try:
            ray = connect(self.address)
        except Exception as exc:  # unreachable cluster, bad token: every checkpoint says why
            reason = f"Ray cluster at {self.address} unavailable: {error_text(exc).splitlines()[0]}"
            for lane in lanes:
                outcome.errors[lane.job.name] = reason
                on_status(lane.job.name, f"failed: {reason}")
            return outcome
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        died = (RayActorError, ActorDiedError, ActorUnavailableError)
        examples = {ex.id: ex for lane in lanes for ex in lane.job.examples}
        examples_ref = ray.put(examples)  # once, shared by every actor
        worker_cls = ray.remote(CheckpointWorker).options(**self._actor_options(ray), max_restarts=0,
                                                          max_task_retries=0)

        def start(lane: _Lane) -> None:
            identity = lane.job.identity
            lane.actor = worker_cls.remote(str(lane.job.checkpoint), examples_ref, settings, batch_size,
                                           max_image_pixels, self.load_options,
                                           identity.checkpoint_signature if identity is not None else None)
            on_status(lane.job.name, "starting worker" if not lane.retries else f"retry {lane.retries}")
            if self.on_actor_started is not None:
                self.on_actor_started(lane.job.name, lane.actor)
            # Batches that were in flight on a dead actor go back to the front, in order.
            while lane.in_flight:
                lane.todo.appendleft(lane.in_flight.pop()[1])
            fill(lane)

        def fill(lane: _Lane) -> None:
            while lane.todo and len(lane.in_flight) < IN_FLIGHT_PER_ACTOR:
                ids = lane.todo.popleft()
                lane.in_flight.append((lane.actor.run_batch.remote(ids), ids))

        def finish(lane: _Lane) -> None:
            lane.done = True
            if lane.actor is not None:
                ray.kill(lane.actor)  # frees its CPU/GPU for a checkpoint still waiting
                lane.actor = None

        try:
            for lane in lanes:
                start(lane)
            while not all(lane.done for lane in lanes):
                if should_stop():
                    outcome.stopped = True
                    break
                heads = {lane.in_flight[0][0]: lane for lane in lanes if not lane.done and lane.in_flight}
                ready, _ = ray.wait(list(heads), num_returns=1, timeout=WAIT_S)
                for ref in ready:
                    lane = heads[ref]
                    try:
                        rows, seconds = ray.get(ref)
                    except died as exc:
                        lane.retries += 1
                        outcome.retries[lane.job.name] = lane.retries
                        if lane.retries > self.max_retries:
                            outcome.errors[lane.job.name] = (f"worker died {lane.retries} times; last: "
                                                             f"{error_text(exc).splitlines()[0]}")
                            on_status(lane.job.name, f"failed: {outcome.errors[lane.job.name]}")
                            lane.in_flight.clear()
                            finish(lane)
                        else:
                            start(lane)
                        continue
                    except Exception as exc:  # the work itself failed (bad checkpoint): not retried
                        cause = getattr(exc, "cause", None) or exc
                        outcome.errors[lane.job.name] = error_text(cause).splitlines()[0]
                        on_status(lane.job.name, f"failed: {outcome.errors[lane.job.name]}")
                        lane.in_flight.clear()
                        finish(lane)
                        continue
                    lane.in_flight.popleft()
                    outcome.generation_s += seconds
                    on_rows(lane.job.name, rows)
                    fill(lane)
                    if not lane.in_flight and not lane.todo:
                        finish(lane)
        finally:
            for lane in lanes:  # Stop, an exception, or normal end: no actor outlives the sweep
                if lane.actor is not None:
                    ray.kill(lane.actor)
                    lane.actor = None
        return outcome
