"""Fair turns: FIFO order, positions shown to waiters, a bounded wait, clean cancellation."""

from __future__ import annotations

import threading
import time

import pytest

from dashboard.models.pool import ModelPool
from dashboard.models.turns import QueueTimeoutError, TurnQueue


def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def test_waiters_are_served_in_arrival_order():
    queue = TurnQueue("ckpt", poll_s=0.01)
    order: list[int] = []
    release = threading.Event()

    def first() -> None:
        with queue.turn():
            release.wait(5)
            order.append(0)

    def later(index: int) -> None:
        with queue.turn():
            order.append(index)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    _wait_until(lambda: queue.busy)
    for index in range(1, 6):
        thread = threading.Thread(target=later, args=(index,))
        thread.start()
        threads.append(thread)
        _wait_until(lambda n=index: queue.queued == n)  # arrival order is the start order
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4, 5]
    assert queue.turns_served == 6


def test_a_releasing_caller_that_asks_again_goes_behind_the_waiter():
    """The lock-based scheme let a session that just finished win again; a turn queue does not."""
    queue = TurnQueue("ckpt", poll_s=0.01)
    served: list[str] = []
    hog_started = threading.Event()
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            with queue.turn():
                hog_started.set()
                served.append("hog")
                time.sleep(0.002)

    def waiter() -> None:
        for _ in range(20):
            with queue.turn():
                served.append("waiter")

    hog_thread = threading.Thread(target=hog)
    hog_thread.start()
    hog_started.wait(5)
    waiter_thread = threading.Thread(target=waiter)
    waiter_thread.start()
    waiter_thread.join(20)
    stop.set()
    hog_thread.join(5)
    assert not waiter_thread.is_alive()
    first_waiter = served.index("waiter")
    # After the waiter arrives the two alternate: the hog never gets two turns in a row while it waits.
    tail = served[first_waiter:first_waiter + 38]
    assert "hog,hog" not in ",".join(tail)


def test_waiter_is_told_its_place_and_sees_it_shrink():
    queue = TurnQueue("ckpt", poll_s=0.01)
    gates = [threading.Event() for _ in range(2)]
    places: list[int] = []

    def hold(gate: threading.Event) -> None:
        with queue.turn():
            gate.wait(5)

    holders = [threading.Thread(target=hold, args=(g,)) for g in gates]
    holders[0].start()
    _wait_until(lambda: queue.busy)
    holders[1].start()
    _wait_until(lambda: queue.queued == 1)

    def watch() -> None:
        with queue.turn(on_wait=lambda ahead, _s: places.append(ahead)):
            pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    _wait_until(lambda: places[-1:] == [2])
    gates[0].set()
    _wait_until(lambda: places[-1:] == [1])
    gates[1].set()
    watcher.join(5)
    for holder in holders:
        holder.join(5)
    assert places[0] == 2 and places[-1] == 1 and sorted(set(places), reverse=True) == [2, 1]


def test_a_wait_past_the_limit_ends_with_a_clear_message():
    queue = TurnQueue("checkpoint-600", poll_s=0.01)
    release = threading.Event()

    def hold() -> None:
        with queue.turn():
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    _wait_until(lambda: queue.busy)
    began = time.monotonic()
    with pytest.raises(QueueTimeoutError, match=r"checkpoint-600 is busy: waited 0 s .*nothing was run"), \
            queue.turn(wait_limit_s=0.2):
        pass
    assert time.monotonic() - began < 2
    assert queue.queued == 0  # the timed-out caller left the queue
    release.set()
    holder.join(5)
    with queue.turn(wait_limit_s=1):  # and the queue still works
        pass


def test_a_waiter_stopped_from_its_callback_leaves_the_queue():
    """Streamlit stops a script by raising inside an ``st`` call: here, the on_wait callback."""
    queue = TurnQueue("ckpt", poll_s=0.01)
    release = threading.Event()

    def hold() -> None:
        with queue.turn():
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    _wait_until(lambda: queue.busy)

    def stop(_ahead: int, _waited: float) -> None:
        raise KeyboardInterrupt  # any BaseException

    with pytest.raises(KeyboardInterrupt), queue.turn(on_wait=stop):
        pass
    assert queue.queued == 0
    release.set()
    holder.join(5)
    assert not queue.busy


def test_pool_turn_queues_per_checkpoint(tiny_checkpoints):
    pool = ModelPool(2**30, device="cpu")
    a, b = tiny_checkpoints[:2]
    assert pool.queue_for(a) is pool.queue_for(str(a))
    assert pool.queue_for(a) is not pool.queue_for(b)
    with pool.turn(a) as loaded_a:
        assert loaded_a.path == a.resolve()
        assert pool.queue_for(a).busy and not pool.queue_for(b).busy
        with pool.turn(b, wait_limit_s=1) as loaded_b:  # another checkpoint is not blocked
            assert loaded_b.path == b.resolve()
        with pytest.raises(QueueTimeoutError), pool.turn(a, wait_limit_s=0.1):
            pass
    assert not pool.queue_for(a).busy
    assert pool.load_count == 2
