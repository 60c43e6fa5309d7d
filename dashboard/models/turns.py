"""Fair turns on one checkpoint: first come, first served, one generation per turn.

A ``threading.Lock``/``RLock`` makes no promise about who gets it next: a thread that releases
it and asks again at once usually wins against a thread that has been waiting (the waiter must
first be woken and get the GIL back). So every session generating on a shared model waits here
in arrival order instead, sees its place in the queue while it waits (``on_wait``), and gives up
with :class:`QueueTimeoutError` after ``wait_limit_s`` rather than hanging. A turn covers one
generation (one ``generate`` call); callers with many take one turn per call, so a long sweep
cannot hold a model while other sessions queue behind it.

Tickets, not threads, hold a turn: the thread that queued may hand the actual ``generate`` to a
worker thread (streaming does) without deadlocking on its own turn.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dashboard.models.loading import CheckpointLoadError

GIL_SWITCH_INTERVAL_S = 0.001
"""``sys.setswitchinterval`` for the app (Home.py; default 5 ms). A generating thread gives the GIL
back at every torch op and must win it back against the other sessions' script threads; a shorter
interval cut that wait ~4x (bench/RESULTS.md, "Session starvation", table E)."""

WaitCallback = Callable[[int, float], None]
"""``on_wait(ahead, waited_s)``: ``ahead`` turns (the one running included) are before yours."""


def waiting_text(ahead: int, waited_s: float) -> str:
    """Plain-text queue position for progress lines (sweeps); pages with room show their own notice."""
    return f"queued: {ahead} request(s) ahead (number {ahead + 1} in line) · waited {waited_s:.0f} s"


class QueueTimeoutError(CheckpointLoadError):
    """Waited longer than the limit for a turn on a busy checkpoint; nothing was run."""


class TurnQueue:
    """A FIFO queue of turns: one holder at a time, in the order callers arrived."""

    REPORT_EVERY_S = 1.0
    """A waiter is told its place at least this often (Streamlit can only stop a script at such calls)."""

    def __init__(self, name: str = "this checkpoint", poll_s: float = 0.25) -> None:
        self.name = name
        self.poll_s = poll_s
        """How often a waiter wakes to report its place (and to let Streamlit stop it)."""
        self.turns_served = 0
        self._cond = threading.Condition(threading.Lock())
        self._waiting: deque[object] = deque()
        self._holder: object | None = None

    @property
    def queued(self) -> int:
        """Callers waiting for a turn (not counting the one running)."""
        with self._cond:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._holder is not None

    @contextmanager
    def turn(self, wait_limit_s: float = 120.0, on_wait: WaitCallback | None = None) -> Iterator[None]:
        """Wait for this caller's turn in arrival order, hold it for the ``with`` block.

        ``on_wait`` is called (outside the queue's lock) when the caller has to wait and again
        whenever its place changes; an exception it raises (Streamlit stopping the script)
        leaves the queue cleanly.
        """
        ticket = object()
        began = time.monotonic()
        with self._cond:
            self._waiting.append(ticket)
        try:
            self._wait_for(ticket, began, wait_limit_s, on_wait)
        except BaseException:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._cond.notify_all()
            raise
        try:
            yield
        finally:
            with self._cond:
                self._holder = None
                self.turns_served += 1
                self._cond.notify_all()

    def _wait_for(self, ticket: object, began: float, wait_limit_s: float, on_wait: WaitCallback | None) -> None:
        reported: int | None = None
        reported_at = 0.0
        while True:
            with self._cond:
                if self._holder is None and self._waiting[0] is ticket:
                    self._waiting.popleft()
                    self._holder = ticket
                    return
                ahead = self._waiting.index(ticket) + (self._holder is not None)
                waited = time.monotonic() - began
                if waited >= wait_limit_s:
                    raise QueueTimeoutError(
                        f"{self.name} is busy: waited {waited:.0f} s in the queue ({ahead} request(s) still ahead) "
                        f"without getting a turn; nothing was run — try again in a moment")
                if reported == ahead and waited - reported_at < self.REPORT_EVERY_S:
                    self._cond.wait(min(self.poll_s, wait_limit_s - waited))
                    continue
            reported, reported_at = ahead, waited
            if on_wait is not None:
                on_wait(ahead, waited)
