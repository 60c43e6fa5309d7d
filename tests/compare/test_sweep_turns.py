"""A Comparison sweep takes one FIFO turn per chunk: a session waiting on the same checkpoint is
served between two chunks instead of queueing behind the whole sweep (and never runs beside one)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from dashboard.compare import sweep
from dashboard.compare.sweep import LocalBackend, SweepJob
from dashboard.evalset import EvalExample
from dashboard.generation import GenerationSettings
from dashboard.models.pool import ModelPool


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dashboard.demo.modeling import save_tiny_llava

    path = tmp_path_factory.mktemp("turns") / "checkpoint-1"
    save_tiny_llava(path, words=["what", "colour", "?", "red"], seed=0)
    return path


def _examples(folder: Path, n: int) -> tuple[EvalExample, ...]:
    image = folder / "red.png"
    Image.new("RGB", (32, 32), "red").save(image)
    return tuple(EvalExample(id=str(i), image_path=image, prompt="what colour ?", answer="red") for i in range(n))


def _wait_until(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_waiting_session_gets_its_turn_between_two_chunks(checkpoint: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pool = ModelPool(budget_bytes=10**9, device="cpu")
    events: list[str] = []
    session_done = threading.Event()

    def session() -> None:  # what the Inference page does: one turn per generation
        with pool.turn(checkpoint, wait_limit_s=30):
            events.append("session")
        session_done.set()

    real_score_chunk = sweep.score_chunk

    def observed_chunk(loaded: Any, chunk: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        events.append(f"chunk {chunk[0].id} start")
        if chunk[0].id == "0":  # the session arrives while the first chunk generates
            threading.Thread(target=session, daemon=True).start()
            # Queued behind the sweep's turn — or, with no turns, already through (the unfair case).
            assert _wait_until(lambda: pool.queue_for(checkpoint).queued == 1 or session_done.is_set())
        rows = real_score_chunk(loaded, chunk, *args, **kwargs)
        events.append(f"chunk {chunk[0].id} end")
        return rows

    monkeypatch.setattr(sweep, "score_chunk", observed_chunk)
    outcome = LocalBackend(pool).run([SweepJob(checkpoint, _examples(tmp_path, 3))],
                                     GenerationSettings(max_new_tokens=2),
                                     batch_size=1, max_image_pixels=10**7, on_rows=lambda name, rows: None,
                                     on_status=lambda name, msg: None, should_stop=lambda: False)
    assert session_done.wait(30)
    assert not outcome.errors and not outcome.stopped
    # Never beside a chunk, and served right after the chunk it arrived during — not after the sweep.
    assert events == ["chunk 0 start", "chunk 0 end", "session", "chunk 1 start", "chunk 1 end",
                      "chunk 2 start", "chunk 2 end"]
    # Three chunk turns and the session's, all in the one queue of this checkpoint.
    assert pool.queue_for(checkpoint).turns_served == 4


def test_a_stopped_sweep_leaves_the_queue_while_waiting(checkpoint: Path, tmp_path: Path) -> None:
    """Stop pressed while the sweep waits for its turn: it gives up its place instead of running later."""
    pool = ModelPool(budget_bytes=10**9, device="cpu")
    stop = threading.Event()
    hold = threading.Event()
    holding = threading.Event()

    def holder() -> None:
        with pool.turn(checkpoint):
            holding.set()
            hold.wait(30)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert holding.wait(10)
    statuses: list[str] = []

    def on_status(name: str, message: str) -> None:
        statuses.append(message)
        if message.startswith("queued"):
            stop.set()

    outcome = LocalBackend(pool).run([SweepJob(checkpoint, _examples(tmp_path, 2))],
                                     GenerationSettings(max_new_tokens=2),
                                     batch_size=1, max_image_pixels=10**7, on_rows=lambda name, rows: None,
                                     on_status=on_status, should_stop=stop.is_set)
    hold.set()
    thread.join(10)
    assert outcome.stopped
    assert any(s.startswith("queued: 1 request(s) ahead") for s in statuses)
    assert pool.queue_for(checkpoint).queued == 0
